package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The recorded Mattermost 9.11 traffic (see its README).
const fixtureDir = "../../../shared/fixtures/mattermost-9.11"

type message struct {
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	Query        string            `json:"query"`
	Status       int               `json:"status"`
	Headers      map[string]string `json:"headers"`
	BodyFormat   string            `json:"body_format"`
	Body         json.RawMessage   `json:"body"`
	BodyRaw      *string           `json:"body_raw"`
	BodyTrailing string            `json:"body_trailing"`
}

// wire returns the body bytes as they were on the wire.
func (m *message) wire(t testing.TB) []byte {
	if m.BodyRaw != nil {
		return []byte(*m.BodyRaw)
	}
	switch m.BodyFormat {
	case "json":
		var b bytes.Buffer
		if err := json.Compact(&b, m.Body); err != nil {
			t.Fatalf("fixture body: %v", err)
		}
		b.WriteString(m.BodyTrailing)
		return b.Bytes()
	case "text":
		var s string
		if err := json.Unmarshal(m.Body, &s); err != nil {
			t.Fatalf("fixture text body: %v", err)
		}
		return append([]byte(s), m.BodyTrailing...)
	}
	return nil
}

type exchange struct {
	Name     string
	Request  message `json:"request"`
	Response message `json:"response"`
}

func loadExchange(t testing.TB, name string) *exchange {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "http", name+".json"))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var ex exchange
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	ex.Name = name
	return &ex
}

func loadAllExchanges(t testing.TB) []*exchange {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(fixtureDir, "http", "*.json"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no fixtures in %s: %v", fixtureDir, err)
	}
	var out []*exchange
	for _, n := range names {
		out = append(out, loadExchange(t, strings.TrimSuffix(filepath.Base(n), ".json")))
	}
	return out
}

// seenRequest is what the replaying upstream received.
type seenRequest struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// replay is an upstream that answers with the recorded responses: a
// request is matched by method, path and query, and among several
// candidates by the message (or webhook text) in its body.
type replay struct {
	t     testing.TB
	exs   []*exchange
	ws    http.Handler
	mu    sync.Mutex
	seen  []seenRequest
	extra func(w http.ResponseWriter, r *http.Request) bool
}

func (rp *replay) requests() []seenRequest {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return append([]seenRequest(nil), rp.seen...)
}

func bodyMessage(b []byte) (string, bool) {
	var v struct {
		Message *string `json:"message"`
		Text    *string `json:"text"`
	}
	if json.Unmarshal(b, &v) != nil {
		return "", false
	}
	switch {
	case v.Message != nil:
		return *v.Message, true
	case v.Text != nil:
		return *v.Text, true
	}
	return "", true
}

func (rp *replay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rp.ws != nil && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		rp.ws.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	rp.mu.Lock()
	rp.seen = append(rp.seen, seenRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	rp.mu.Unlock()
	if rp.extra != nil && rp.extra(w, r) {
		return
	}
	var cands []*exchange
	for _, ex := range rp.exs {
		if ex.Request.Method == r.Method && ex.Request.Path == r.URL.Path && ex.Request.Query == r.URL.RawQuery {
			cands = append(cands, ex)
		}
	}
	var pick *exchange
	if len(cands) == 1 {
		pick = cands[0]
	} else if len(cands) > 1 {
		msg, isJSON := bodyMessage(body)
		for _, ex := range cands {
			want := ex.Request.wire(rp.t)
			if ex.Request.BodyFormat == "text" && bytes.Equal(want, body) {
				pick = ex
				break
			}
			if m, ok := bodyMessage(want); ok && isJSON && ex.Request.BodyFormat == "json" && m == msg {
				pick = ex
				break
			}
		}
	}
	if pick == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"id":"test.no_fixture","message":"no recorded exchange","status_code":404}`+"\n")
		return
	}
	writeRecorded(rp.t, w, &pick.Response)
}

func writeRecorded(t testing.TB, w http.ResponseWriter, m *message) {
	body := m.wire(t)
	h := w.Header()
	for k, v := range m.Headers {
		switch k {
		case "Content-Length":
			continue
		case "Set-Cookie":
			h[k] = strings.Split(v, "\n")
		default:
			h[k] = []string{v}
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(m.Status)
	w.Write(body)
}

// wsFrame is one line of websocket-events.jsonl.
type wsFrame struct {
	Conn  string          `json:"conn"`
	Dir   string          `json:"dir"`
	Frame json.RawMessage `json:"frame"`
	Raw   *string         `json:"raw"`
}

func (f *wsFrame) bytes() []byte {
	if f.Raw != nil {
		return []byte(*f.Raw)
	}
	return f.Frame
}

func loadFrames(t testing.TB, conn, dir string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "websocket-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var f wsFrame
		if err := json.Unmarshal(line, &f); err != nil {
			t.Fatal(err)
		}
		if f.Conn == conn && f.Dir == dir {
			out = append(out, f.bytes())
		}
	}
	return out
}

// A minimal RFC 6455 peer, enough for tests: text, binary and close
// frames, unfragmented.

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// appendFrame appends one frame; a non-nil mask masks it (client frames).
func appendFrame(dst []byte, opcode byte, payload []byte, mask []byte) []byte {
	dst = append(dst, 0x80|opcode)
	mbit := byte(0)
	if mask != nil {
		mbit = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		dst = append(dst, mbit|byte(n))
	case n <= 0xffff:
		dst = append(dst, mbit|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, mbit|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if mask == nil {
		return append(dst, payload...)
	}
	dst = append(dst, mask...)
	for i, c := range payload {
		dst = append(dst, c^mask[i%4])
	}
	return dst
}

// readFrame reads one frame and returns its opcode, unmasked payload and
// the exact bytes it occupied on the wire.
func readFrame(r *bufio.Reader) (opcode byte, payload, wire []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(r, h[:]); err != nil {
		return
	}
	wire = append(wire, h[:]...)
	opcode = h[0] & 0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		wire = append(wire, b[:]...)
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(r, b[:]); err != nil {
			return
		}
		wire = append(wire, b[:]...)
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return 0, nil, nil, errors.New("frame too large")
	}
	var mask []byte
	if masked {
		mask = make([]byte, 4)
		if _, err = io.ReadFull(r, mask); err != nil {
			return
		}
		wire = append(wire, mask...)
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(r, payload); err != nil {
		return
	}
	wire = append(wire, payload...)
	for i := range payload {
		if masked {
			payload[i] ^= mask[i%4]
		}
	}
	return
}

// wsServer answers the upgrade by hand, waits for the client's first frame
// (authentication_challenge), sends the recorded frames, then echoes every
// data frame until the client closes.
func wsServer(t testing.TB, frames [][]byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Sec-Websocket-Key")
		if key == "" || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "not a websocket request", http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + wsAccept(key) + "\r\n\r\n")
		brw.Flush()
		if _, _, _, err := readFrame(brw.Reader); err != nil {
			return
		}
		var out []byte
		for _, f := range frames {
			out = appendFrame(out, 0x1, f, nil)
		}
		if _, err := conn.Write(out); err != nil {
			return
		}
		for {
			op, payload, _, err := readFrame(brw.Reader)
			if err != nil {
				return
			}
			if op == 0x8 {
				conn.Write(appendFrame(nil, 0x8, payload, nil))
				return
			}
			if op == 0x1 || op == 0x2 {
				if _, err := conn.Write(appendFrame(nil, op, payload, nil)); err != nil {
					return
				}
			}
		}
	})
}

// rawWSSession opens a websocket at addr by hand, sends the first frame,
// reads want frames, sends echo frames and reads their echoes, closes,
// and returns the 101 response and every byte received after it.
func rawWSSession(t testing.TB, addr string, first []byte, want int, echo [][]byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	key := base64.StdEncoding.EncodeToString([]byte("sealgate-test-key"))
	req := "GET /api/v4/websocket HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + "\r\nUser-Agent: fixture-driver/1.0\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != wsAccept(key) {
		t.Fatalf("upgrade: %d %v", resp.StatusCode, resp.Header)
	}
	mask := []byte{1, 2, 3, 4}
	if _, err := conn.Write(appendFrame(nil, 0x1, first, mask)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i := 0; i < want; i++ {
		_, _, wire, err := readFrame(br)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got = append(got, wire...)
	}
	for _, e := range echo {
		op := byte(0x1)
		if !json.Valid(e) {
			op = 0x2
		}
		if _, err := conn.Write(appendFrame(nil, op, e, mask)); err != nil {
			t.Fatal(err)
		}
		_, _, wire, err := readFrame(br)
		if err != nil {
			t.Fatalf("echo: %v", err)
		}
		got = append(got, wire...)
	}
	conn.Write(appendFrame(nil, 0x8, []byte{0x03, 0xe8}, mask))
	_, _, wire, err := readFrame(br)
	if err != nil {
		t.Fatalf("close: %v", err)
	}
	got = append(got, wire...)
	return resp, got
}

// recorder keeps the raw bytes of every response a client receives.
type recorder struct {
	rt   http.RoundTripper
	mu   sync.Mutex
	last []recorded
}

type recorded struct {
	Status int
	Header http.Header
	Body   []byte
}

func (rc *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rc.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rc.mu.Lock()
	rc.last = append(rc.last, recorded{Status: resp.StatusCode, Header: resp.Header.Clone(), Body: body})
	rc.mu.Unlock()
	return resp, nil
}

func (rc *recorder) take() recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.last) == 0 {
		return recorded{}
	}
	r := rc.last[len(rc.last)-1]
	rc.last = nil
	return r
}
