package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

// TestWebsocketThroughProxy: a websocket session through the proxy
// receives byte for byte what a direct one receives: the recorded frames
// of bob's stream, then echoes of text and binary frames (one above 64 KiB,
// for the 64-bit length form), then the close handshake.
func TestWebsocketThroughProxy(t *testing.T) { forModes(t, testWebsocketThroughProxy) }

func testWebsocketThroughProxy(t *testing.T, mode string) {
	frames := loadFrames(t, "bob", "server->client")
	first := loadFrames(t, "bob", "client->server")[0]
	_, up := fixtureUpstream(t)
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	_, addr := startProxy(t, mode, p)
	defer p.Close(context.Background())

	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 20000)
	echo := [][]byte{loadFrames(t, "alice", "client->server")[1], big, []byte("{}")}
	dResp, direct := rawWSSession(t, up.Listener.Addr().String(), first, len(frames), echo)
	vResp, via := rawWSSession(t, addr, first, len(frames), echo)
	if !bytes.Equal(direct, via) {
		t.Fatalf("frames differ: direct %d bytes, via proxy %d bytes", len(direct), len(via))
	}
	// And they are the recorded frames.
	br := bufio.NewReader(bytes.NewReader(via))
	for i, want := range frames {
		_, payload, _, err := readFrame(br)
		if err != nil || !bytes.Equal(payload, want) {
			t.Fatalf("frame %d: %v\n got %.200q\nwant %.200q", i, err, payload, want)
		}
	}
	dResp.Header.Del("Date")
	vResp.Header.Del("Date")
	if fmt.Sprint(dResp.Header) != fmt.Sprint(vResp.Header) {
		t.Errorf("101 headers differ:\ndirect %v\nvia    %v", dResp.Header, vResp.Header)
	}

	// Mattermost's own websocket client, through the proxy.
	wsc, err := model.NewWebSocketClient4("ws://"+addr, "REDACTED")
	if err != nil {
		t.Fatal(err)
	}
	defer wsc.Close()
	wsc.Listen()
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(frames)-1 { // the seq_reply ack arrives on ResponseChannel
		select {
		case ev := <-wsc.EventChannel:
			got = append(got, string(ev.EventType()))
		case <-wsc.ResponseChannel:
		case <-timeout:
			t.Fatalf("websocket client got %d events: %v", len(got), got)
		}
	}
	if got[0] != "hello" || !strings.Contains(strings.Join(got, " "), "posted") {
		t.Errorf("events %v", got)
	}
}

// TestUpgradeRefused: an upgrade the upstream refuses comes back as the
// upstream's answer.
func TestUpgradeRefused(t *testing.T) { forModes(t, testUpgradeRefused) }

func testUpgradeRefused(t *testing.T, mode string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Why", "no")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "denied")
	}))
	defer up.Close()
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	base, _ := startProxy(t, mode, p)
	req, _ := http.NewRequest("GET", base+"/api/v4/websocket", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || string(body) != "denied" || resp.Header.Get("X-Why") != "no" {
		t.Errorf("got %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

// patternReader yields an endless, cheap, non-zero byte stream.
type patternReader struct{ n byte }

func (r *patternReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = r.n
		r.n = r.n*31 + 7
	}
	return len(b), nil
}

// procStatus reads one kB field of /proc/self/status.
func procStatus(field string) (int64, bool) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n << 10, err == nil
		}
	}
	return 0, false
}

// rssGrowth runs fn and returns how far the resident set rose above where
// it started: from the peak (VmHWM, reset through clear_refs) where the
// kernel allows, else from the end.
func rssGrowth(t *testing.T, fn func()) int64 {
	runtime.GC()
	debug.FreeOSMemory()
	before, ok := procStatus("VmRSS")
	if !ok {
		t.Skip("no /proc/self/status")
	}
	peak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	fn()
	field := "VmRSS"
	if peak {
		field = "VmHWM"
	}
	after, _ := procStatus(field)
	t.Logf("%s grew %.1f MiB (before %.1f MiB)", field, float64(after-before)/(1<<20), float64(before)/(1<<20))
	return after - before
}

const streamBytes = 50 << 20

// TestLargeUploadStreams: a 50 MB upload (and a 50 MB chunked download)
// pass through without the proxy holding them: resident memory grows by
// less than 32 MiB for the whole process (client, proxy and upstream).
func TestLargeUploadStreams(t *testing.T) { forModes(t, testLargeUploadStreams) }

func testLargeUploadStreams(t *testing.T, mode string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			w.Header().Set("Content-Type", "application/octet-stream")
			io.Copy(w, io.LimitReader(&patternReader{}, streamBytes)) // no Content-Length: chunked
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, `{"received":%d}`, n)
	}))
	defer up.Close()
	p := &Proxy{Upstream: mustURL(t, up.URL), Capture: func([]byte) {}}
	base, _ := startProxy(t, mode, p)
	defer p.Close(context.Background())
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}

	growth := rssGrowth(t, func() {
		req, _ := http.NewRequest("POST", base+"/api/v4/files?channel_id=x", io.LimitReader(&patternReader{}, streamBytes))
		req.ContentLength = streamBytes
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprintf(`{"received":%d}`, streamBytes) {
			t.Fatalf("upstream answered %s", body)
		}
	})
	if growth >= 32<<20 {
		t.Errorf("upload: RSS grew %d MiB, want < 32", growth>>20)
	}

	growth = rssGrowth(t, func() {
		resp, err := client.Get(base + "/api/v4/files/x")
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != streamBytes {
			t.Fatalf("download: %d bytes, %v", n, err)
		}
	})
	if growth >= 32<<20 {
		t.Errorf("download: RSS grew %d MiB, want < 32", growth>>20)
	}
}

// TestStreamingFlushAndTrailers: a chunked response reaches the client as
// it is written, not when it ends, and trailers (announced or not) and
// request trailers are passed on.
func TestStreamingFlushAndTrailers(t *testing.T) { forModes(t, testStreamingFlushAndTrailers) }

func testStreamingFlushAndTrailers(t *testing.T, mode string) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/reqtrailer" {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Sum"))
			return
		}
		w.Header().Set("Trailer", "X-Announced")
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "data: two\n\n")
		w.Header().Set("X-Announced", "a")
		w.Header().Set(http.TrailerPrefix+"X-Late", "b")
	}))
	defer up.Close()
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	base, _ := startProxy(t, mode, p)

	resp, err := http.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event before the stream ends: %q %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "\ndata: two\n\n" {
		t.Errorf("rest %q", rest)
	}
	if resp.Trailer.Get("X-Announced") != "a" || resp.Trailer.Get("X-Late") != "b" {
		t.Errorf("trailers %v", resp.Trailer)
	}

	req, _ := http.NewRequest("POST", base+"/reqtrailer", io.MultiReader(strings.NewReader("abc")))
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Sum": []string{"42"}}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Got-Trailer"); got != "42" {
		t.Errorf("request trailer reached upstream as %q", got)
	}
}

// TestHopByHopHeaders: connection-specific fields are not forwarded either
// way, end-to-end ones are, including ones Go would otherwise add or
// change (User-Agent, Date, Content-Type).
func TestHopByHopHeaders(t *testing.T) { forModes(t, testHopByHopHeaders) }

func testHopByHopHeaders(t *testing.T, mode string) {
	var seen http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		h := w.Header()
		h.Set("Connection", "X-Private")
		h.Set("X-Private", "hop")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("X-End", "end")
		h["Date"] = nil         // no Date from upstream: none from the proxy either
		h["Content-Type"] = nil // no type: the proxy must not sniff one
		w.Write([]byte("<html>not sniffed</html>"))
	}))
	defer up.Close()
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	base, _ := startProxy(t, mode, p)
	req, _ := http.NewRequest("GET", base+"/x", nil)
	req.Header.Set("Connection", "X-Secret, keep-alive")
	req.Header.Set("X-Secret", "hop")
	req.Header.Set("Proxy-Authorization", "Basic eA==")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header["User-Agent"] = nil
	req.Header.Set("Cookie", "MMAUTHTOKEN=x")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, k := range []string{"X-Secret", "Proxy-Authorization", "Connection", "User-Agent"} {
		if v, ok := seen[k]; ok && !(k == "Connection" && len(v) == 0) {
			t.Errorf("upstream got %s: %v", k, v)
		}
	}
	if seen.Get("Cookie") != "MMAUTHTOKEN=x" || seen.Get("X-Forwarded-For") != "203.0.113.9, 127.0.0.1" {
		t.Errorf("upstream headers %v", seen)
	}
	for _, k := range []string{"X-Private", "Keep-Alive", "Date", "Content-Type"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("client got %s: %q", k, v)
		}
	}
	if resp.Header.Get("X-End") != "end" {
		t.Errorf("client headers %v", resp.Header)
	}
}

// TestUpstreamDown: no upstream, 502; a response cut short upstream is cut
// short for the client too.
func TestUpstreamDown(t *testing.T) { forModes(t, testUpstreamDown) }

func testUpstreamDown(t *testing.T, mode string) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("short"))
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	}))
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	base, _ := startProxy(t, mode, p)
	resp, err := http.Get(base + "/x")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("truncated upstream body read as complete")
	}
	up.Close()
	resp, err = http.Get(base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status %d", resp.StatusCode)
	}
}
