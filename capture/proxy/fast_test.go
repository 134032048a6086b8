package proxy

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawExchange writes raw request bytes on a fresh connection and reads
// n responses.
func rawExchange(t *testing.T, addr, raw string, n int, method string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for i := 0; i < n; i++ {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		for err == nil && resp.StatusCode < 200 { // interim (100 Continue)
			resp, err = http.ReadResponse(br, &http.Request{Method: method})
		}
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, resp)
	}
	return out
}

// echoUpstream answers with what it received.
func echoUpstream(t *testing.T) (*httptest.Server, *[]*http.Request) {
	var mu sync.Mutex
	var seen []*http.Request
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Request-Id", "reqid")
		if r.Method == "HEAD" {
			w.Header().Set("Content-Length", "1234")
			return
		}
		w.Write(body)
	}))
	t.Cleanup(up.Close)
	return up, &seen
}

// TestServeFastAndHandOff: plain requests are served on the fast path,
// pipelined too; everything else goes to net/http on the same connection
// and still works, and a percent-encoded post route is still captured.
func TestServeFastAndHandOff(t *testing.T) {
	up, _ := echoUpstream(t)
	col := newCollector()
	p := &Proxy{Upstream: mustURL(t, up.URL), Capture: col.capture}
	_, addr := startProxy(t, "serve", p)
	post := loadExchange(t, "posts-create-public").Response.wire(t)

	// Pipelined plain requests: fast path, in order.
	raw := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
	rs := rawExchange(t, addr, raw, 1, "GET")
	rs = append(rs, rawExchange(t, addr, raw, 2, "HEAD")[1])
	if rs[0].Header.Get("X-Path") != "/a" || rs[1].Header.Get("X-Path") != "/b" || rs[1].ContentLength != 1234 {
		t.Errorf("pipelined: %v %v", rs[0].Header, rs[1].Header)
	}
	all := rawExchange(t, addr, strings.Replace(raw, "HEAD", "GET", 1), 3, "GET")
	if b, _ := io.ReadAll(all[2].Body); string(b) != "abc" {
		t.Errorf("third pipelined body %q", b)
	}
	if st := p.Stats(); st.FastPath < 5 || st.HandedOff != 0 {
		t.Errorf("stats %+v", st)
	}

	// Handed off: HTTP/1.0, Expect, chunked, percent-encoded path.
	r := rawExchange(t, addr, "GET /old HTTP/1.0\r\nHost: x\r\n\r\n", 1, "GET")[0]
	if r.Header.Get("X-Path") != "/old" {
		t.Errorf("HTTP/1.0: %v", r.Header)
	}
	rs = rawExchange(t, addr, "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi", 1, "POST")
	if b, _ := io.ReadAll(rs[0].Body); string(b) != "hi" {
		t.Errorf("expect: %q", b)
	}
	rs = rawExchange(t, addr, "POST /ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 1, "POST")
	if b, _ := io.ReadAll(rs[0].Body); string(b) != "ok" {
		t.Errorf("chunked: %q", b)
	}
	// Smuggling shapes are net/http's to refuse.
	rs = rawExchange(t, addr, "POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 1, "POST")
	if rs[0].StatusCode != 400 {
		t.Errorf("conflicting Content-Length: %d", rs[0].StatusCode)
	}
	enc := "POST /api/v4/%70osts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
		itoa(len(post)) + "\r\n\r\n" + string(post)
	rs = rawExchange(t, addr, enc, 1, "POST")
	if rs[0].Header.Get("X-Path") != "/api/v4/posts" {
		t.Errorf("encoded path reached upstream as %q", rs[0].Header.Get("X-Path"))
	}
	ev := col.wait(t, 1)[0]
	if !bytes.Contains(ev, []byte(`"kind":"posted"`)) || !bytes.Contains(ev, []byte("xr7brgscspdxmn79rz96hep1gh")) {
		t.Errorf("encoded route not captured: %.200s", ev)
	}
	if st := p.Stats(); st.HandedOff < 4 {
		t.Errorf("stats %+v", st)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestServeShutdown: idle connections close at once, a request in
// progress finishes, Serve returns ErrServerClosed.
func TestServeShutdown(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "done")
	}))
	defer up.Close()
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- p.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	idle, _ := net.Dial("tcp", ln.Addr().String())
	defer idle.Close()
	got := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	waitFor(t, "request in flight", func() bool { return p.Stats().FastPath == 1 })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- p.Shutdown(ctx)
	}()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil {
		t.Error("idle connection not closed")
	}
	close(release)
	if s := <-got; s != "done" {
		t.Errorf("in-flight request: %q", s)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != http.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
}

// TestServeTLS: over a TLS listener the fast path and the hand-off both
// say X-Forwarded-Proto: https.
func TestServeTLS(t *testing.T) {
	up, seen := echoUpstream(t)
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	tlsSrv := httptest.NewUnstartedServer(nil)
	tlsSrv.StartTLS() // for its certificate
	cfg := tlsSrv.TLS
	defer tlsSrv.Close()
	ln, _ := tls.Listen("tcp", "127.0.0.1:0", cfg)
	go p.Serve(ln)
	defer p.Shutdown(context.Background())
	client := tlsSrv.Client()
	for _, path := range []string{"/plain", "/%70ercent"} {
		resp, err := client.Get("https://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for _, r := range *seen {
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("%s: X-Forwarded-Proto %q", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
		}
	}
	if st := p.Stats(); st.FastPath != 1 || st.HandedOff != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestCaptureGzip(t *testing.T) { forModes(t, testCaptureGzip) }

// testCaptureGzip: Mattermost gzips responses by default (WebserverMode
// gzip); the proxy passes the compressed bytes through and captures the
// post from them.
func testCaptureGzip(t *testing.T, mode string) {
	ex := loadExchange(t, "posts-create-public")
	plain := ex.Response.wire(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "gzreq")
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(201)
		zw := gzip.NewWriter(w)
		zw.Write(plain)
		zw.Close()
	}))
	defer up.Close()
	col := newCollector()
	p := &Proxy{Upstream: mustURL(t, up.URL), Capture: col.capture}
	base, _ := startProxy(t, mode, p)
	resp, err := http.Post(base+"/api/v4/posts", "application/json", strings.NewReader(`{"message":"x"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body) // the client's transport unzips
	resp.Body.Close()
	if !bytes.Equal(body, plain) || !resp.Uncompressed {
		t.Fatalf("client got %q (uncompressed by transport: %v)", body, resp.Uncompressed)
	}
	ev := col.wait(t, 1)[0]
	want := `{"kind":"posted","request_id":"gzreq","post":` + string(bytes.TrimSpace(plain)) + `}`
	if string(ev) != want {
		t.Errorf("event\n got %s\nwant %s", ev, want)
	}
}

// TestServeUpstreamClosedIdle: a pooled connection the upstream closed
// while idle is noticed before a request goes on it, so a POST (not
// retried once sent) still gets through, once.
func TestServeUpstreamClosedIdle(t *testing.T) {
	up, seen := echoUpstream(t)
	p := &Proxy{Upstream: mustURL(t, up.URL)}
	_, addr := startProxy(t, "serve", p)
	for i := 0; i < 3; i++ {
		for _, m := range []string{"POST", "GET"} {
			raw := m + " /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
			if r := rawExchange(t, addr, raw, 1, m)[0]; r.StatusCode != 200 {
				t.Fatalf("round %d %s: status %d", i, m, r.StatusCode)
			}
		}
		up.CloseClientConnections() // what an upstream's idle timeout does
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(*seen); n != 6 {
		t.Errorf("upstream saw %d requests, want 6", n)
	}
}

// TestServeIdleTimeout: a kept-alive client that sends nothing more is
// closed after about IdleTimeout, even though the read deadline is not
// renewed on every request.
func TestServeIdleTimeout(t *testing.T) {
	up, _ := echoUpstream(t)
	p := &Proxy{Upstream: mustURL(t, up.URL), IdleTimeout: 300 * time.Millisecond}
	_, addr := startProxy(t, "serve", p)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		time.Sleep(100 * time.Millisecond) // shorter than IdleTimeout: kept open
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want EOF", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("closed after %v, want about 300ms less the 100ms since the last response", d)
	}
}
