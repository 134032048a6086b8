package proxy

// Benchmarks of the capture path against a plain connection, Go's stock
// httputil.ReverseProxy and nginx (Debian nginx-light, one worker,
// keepalive upstream), all in front of the same upstream serving recorded
// Mattermost responses (POST /api/v4/posts → 201 post, GET
// /api/v4/users/me → 200 user), all driven by the same lean keep-alive load
// generator (32 connections) on loopback. Targets:
//
//	direct            the upstream itself
//	sealgate          Proxy.Serve (fast path), capturing into a Sink, in this process
//	sealgate-proc     the same in its own process (TestProxyChild), as nginx is
//	sealgate-handler  Proxy as an http.Handler in net/http (lean upstream client)
//	stdlib            httputil.ReverseProxy with NewTransport()
//	nginx             /usr/sbin/nginx (skipped when missing: apt-get install nginx-light)
//
//	go test -run XXX -bench Compare -benchtime 1x -count 3 ./capture/proxy
//	go test -run XXX -bench 'Post$|Get$' -benchtime 40000x -count 5 ./capture/proxy
//
// BenchmarkCompare measures every target in interleaved rounds within one
// run and reports medians, the ratios against nginx (requests/s, p99
// difference) and the CPU time each proxy costs per request (the target's
// CPU, nginx's processes included, less the direct path's: robust to other
// load on the machine).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/internal/freeport"
)

const benchConns = 32

// benchUpstream serves the recorded POST /api/v4/posts and GET
// /api/v4/users/me responses over real TCP.
func benchUpstream(b testing.TB) (*httptest.Server, []byte) {
	post := loadExchange(b, "posts-create-public")
	me := loadExchange(b, "users-me")
	postBody, meBody := post.Response.wire(b), me.Response.wire(b)
	hdrs := func(m *message, n int) http.Header {
		h := http.Header{}
		for k, v := range m.Headers {
			h[k] = []string{v}
		}
		h["Content-Length"] = []string{strconv.Itoa(n)}
		return h
	}
	postH, meH := hdrs(&post.Response, len(postBody)), hdrs(&me.Response, len(meBody))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		if r.Method == "POST" {
			for k, v := range postH {
				h[k] = v
			}
			w.WriteHeader(201)
			w.Write(postBody)
			return
		}
		for k, v := range meH {
			h[k] = v
		}
		w.WriteHeader(200)
		w.Write(meBody)
	}))
	srv.Start()
	b.Cleanup(srv.Close)
	return srv, post.Request.wire(b)
}

// target is one way to reach the upstream.
type target struct {
	name string
	addr string
	stop func()
	pids []int // processes besides this one whose CPU time counts (nginx)
}

// cpuTime is the CPU time (user + system) used so far by this process
// and the target's own processes.
func (t target) cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	for _, pid := range t.pids {
		d += procCPU(pid)
	}
	return d
}

// procCPU reads utime + stime of a process and its children's threads
// from /proc (clock ticks of 10ms).
func procCPU(pid int) time.Duration {
	var total time.Duration
	for _, p := range append([]int{pid}, childPIDs(pid)...) {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(raw)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+2:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}

func childPIDs(pid int) []int {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(raw)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// sealgateTarget is the proxy as serve runs it, capturing into a Sink
// whose consumer takes everything: Serve (the fast path) or, with
// handler set, ServeHTTP in a net/http server.
func sealgateTarget(b testing.TB, upURL string, handler bool) (target, *Proxy) {
	sink := &Sink{Deliver: func([][]byte) error { return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	go sink.Run(ctx)
	p := &Proxy{Upstream: mustURL(b, upURL), Capture: sink.Capture}
	if handler {
		srv := httptest.NewServer(p)
		return target{name: "sealgate-handler", addr: srv.Listener.Addr().String(), stop: func() { srv.Close(); p.Close(context.Background()); cancel() }}, p
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(ln)
	return target{name: "sealgate", addr: ln.Addr().String(), stop: func() {
		p.Shutdown(context.Background())
		p.Close(context.Background())
		cancel()
	}}, p
}

// TestProxyChild is not a test: it is the proxy process the benchmarks
// start (sealgateProcTarget), run from this test binary. It serves until
// its standard input closes.
func TestProxyChild(t *testing.T) {
	up := os.Getenv("SEALGATE_PROXY_CHILD_UPSTREAM")
	if up == "" {
		t.Skip("the benchmarks' proxy process")
	}
	sink := &Sink{Deliver: func([][]byte) error { return nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go sink.Run(ctx)
	p := &Proxy{Upstream: mustURL(t, up), Capture: sink.Capture}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	fmt.Printf("ADDR %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	p.Shutdown(context.Background())
	if p.Stats().FastPath == 0 {
		t.Error("served nothing")
	}
}

// sealgateProcTarget runs the proxy in its own process, as sealgate serve
// runs (and as nginx runs): then neither shares a runtime with the load
// generator and the upstream.
func sealgateProcTarget(b testing.TB, upURL string) target {
	cmd := exec.Command(os.Args[0], "-test.run=^TestProxyChild$", "-test.v")
	cmd.Env = append(os.Environ(), "SEALGATE_PROXY_CHILD_UPSTREAM="+upURL)
	if extra := os.Getenv("SEALGATE_PROXY_CHILD_ENV"); extra != "" { // e.g. GOGC=400, for experiments
		cmd.Env = append(cmd.Env, strings.Fields(extra)...)
	}
	if prof := os.Getenv("SEALGATE_PROXY_CHILD_CPUPROFILE"); prof != "" {
		cmd.Args = append(cmd.Args, "-test.cpuprofile="+prof)
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		cmd.Process.Kill()
		cmd.Wait()
		b.Fatal("proxy process did not start")
	}
	go io.Copy(io.Discard, stdout)
	return target{name: "sealgate-proc", addr: addr, pids: []int{cmd.Process.Pid}, stop: func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}}
}

func stdlibTarget(b testing.TB, upURL string) target {
	rp := httputil.NewSingleHostReverseProxy(mustURL(b, upURL))
	rp.Transport = NewTransport()
	srv := httptest.NewServer(rp)
	return target{name: "stdlib", addr: srv.Listener.Addr().String(), stop: srv.Close}
}

const nginxBin = "/usr/sbin/nginx"

// nginxTarget starts nginx with one worker and a keepalive upstream.
func nginxTarget(b testing.TB, upAddr string) (target, bool) {
	if _, err := os.Stat(nginxBin); err != nil {
		return target{}, false
	}
	dir := b.TempDir()
	port, err := freeport.Get()
	if err != nil {
		b.Fatal(err)
	}
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  client_max_body_size 64m;
  keepalive_requests 1000000;
  upstream mattermost {
    server %[2]s;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:%[3]d;
    location / {
      proxy_pass http://mattermost;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`, dir, upAddr, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(nginxBin, "-c", path, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			cmd.Process.Kill()
			cmd.Wait()
			b.Fatalf("nginx did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return target{name: "nginx", addr: addr, pids: []int{cmd.Process.Pid}, stop: func() {
		cmd.Process.Signal(syscall.SIGQUIT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}}, true
}

// loadResult is one measurement.
type loadResult struct {
	rps      float64
	p50, p99 time.Duration
	cpu      time.Duration // CPU time per request, all processes involved
}

// load sends n requests over conns keep-alive connections to addr and
// measures throughput and latency. The client writes prebuilt request
// bytes and parses only the status line and Content-Length, so that it
// costs the same, and little, for every target.
func load(tb testing.TB, t target, req []byte, wantStatus, n, conns int) loadResult {
	addr := t.addr
	cpu0 := t.cpuTime()
	var wg sync.WaitGroup
	lat := make([][]time.Duration, conns)
	per := n / conns
	errs := make(chan error, conns)
	start := time.Now()
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			br := bufio.NewReaderSize(conn, 16<<10)
			l := make([]time.Duration, 0, per)
			for i := 0; i < per; i++ {
				t0 := time.Now()
				if _, err := conn.Write(req); err != nil {
					errs <- err
					return
				}
				if err := readResponse(br, wantStatus); err != nil {
					errs <- err
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[c] = l
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	cpu := t.cpuTime() - cpu0
	slices.Sort(all)
	return loadResult{
		rps: float64(len(all)) / elapsed.Seconds(),
		p50: all[len(all)/2],
		p99: all[len(all)*99/100],
		cpu: cpu / time.Duration(len(all)),
	}
}

var errBadResponse = errors.New("bench: unexpected response")

// readResponse reads one HTTP/1.1 response with a Content-Length body.
func readResponse(br *bufio.Reader, wantStatus int) error {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if len(line) < 12 || string(line[9:12]) != strconv.Itoa(wantStatus) {
		return fmt.Errorf("%w: %q", errBadResponse, line)
	}
	clen := -1
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > 16 && (line[0] == 'C' || line[0] == 'c') && bytes.EqualFold(line[:15], []byte("Content-Length:")) {
			clen, err = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
			if err != nil {
				return err
			}
		}
	}
	if clen < 0 {
		return fmt.Errorf("%w: no Content-Length", errBadResponse)
	}
	_, err = br.Discard(clen)
	return err
}

func postRequest(addr string, body []byte) []byte {
	return []byte(fmt.Sprintf("POST /api/v4/posts HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer REDACTED\r\nContent-Type: application/json\r\nUser-Agent: fixture-driver/1.0\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body))
}

func getRequest(addr string) []byte {
	return []byte(fmt.Sprintf("GET /api/v4/users/me HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer REDACTED\r\nUser-Agent: fixture-driver/1.0\r\n\r\n", addr))
}

func report(b *testing.B, r loadResult) {
	b.ReportMetric(r.rps, "req/s")
	b.ReportMetric(float64(r.p50.Microseconds()), "p50-µs")
	b.ReportMetric(float64(r.p99.Microseconds()), "p99-µs")
	b.ReportMetric(float64(r.cpu.Nanoseconds())/1000, "cpu-µs/req")
	b.ReportMetric(0, "ns/op")
}

func benchTarget(b *testing.B, kind string, get bool) {
	up, body := benchUpstream(b)
	var t target
	switch kind {
	case "direct":
		t = target{name: "direct", addr: up.Listener.Addr().String(), stop: func() {}}
	case "sealgate", "sealgate-handler":
		var p *Proxy
		t, p = sealgateTarget(b, up.URL, kind == "sealgate-handler")
		defer func() {
			if !get && p.Stats().Captured == 0 {
				b.Error("nothing captured")
			}
		}()
	case "stdlib":
		t = stdlibTarget(b, up.URL)
	case "sealgate-proc":
		t = sealgateProcTarget(b, up.URL)
	case "nginx":
		var ok bool
		if t, ok = nginxTarget(b, up.Listener.Addr().String()); !ok {
			b.Skip("no " + nginxBin + " (apt-get install nginx-light)")
		}
	}
	defer t.stop()
	req, status := postRequest(t.addr, body), 201
	if get {
		req, status = getRequest(t.addr), 200
	}
	load(b, t, req, status, 2000, benchConns) // warm connections and pools
	b.ResetTimer()
	r := load(b, t, req, status, max(b.N, benchConns), benchConns)
	b.StopTimer()
	report(b, r)
}

func BenchmarkDirectPost(b *testing.B)       { benchTarget(b, "direct", false) }
func BenchmarkProxyPost(b *testing.B)        { benchTarget(b, "sealgate", false) }
func BenchmarkStdlibProxyPost(b *testing.B)  { benchTarget(b, "stdlib", false) }
func BenchmarkNginxPost(b *testing.B)        { benchTarget(b, "nginx", false) }
func BenchmarkDirectGet(b *testing.B)        { benchTarget(b, "direct", true) }
func BenchmarkProxyGet(b *testing.B)         { benchTarget(b, "sealgate", true) }
func BenchmarkStdlibProxyGet(b *testing.B)   { benchTarget(b, "stdlib", true) }
func BenchmarkNginxGet(b *testing.B)         { benchTarget(b, "nginx", true) }
func BenchmarkHandlerProxyPost(b *testing.B) { benchTarget(b, "sealgate-handler", false) }
func BenchmarkProcProxyPost(b *testing.B)    { benchTarget(b, "sealgate-proc", false) }
func BenchmarkProcProxyGet(b *testing.B)     { benchTarget(b, "sealgate-proc", true) }

// BenchmarkCompare measures all targets on one upstream in interleaved
// rounds and reports medians and ratios against nginx (and the stdlib
// proxy when nginx is missing).
func BenchmarkCompare(b *testing.B) {
	for _, get := range []bool{false, true} {
		name := "post"
		if get {
			name = "get"
		}
		b.Run(name, func(b *testing.B) {
			up, body := benchUpstream(b)
			targets := []target{{name: "direct", addr: up.Listener.Addr().String(), stop: func() {}}}
			sg, p := sealgateTarget(b, up.URL, false)
			sh, _ := sealgateTarget(b, up.URL, true)
			targets = append(targets, sealgateProcTarget(b, up.URL), sg, sh, stdlibTarget(b, up.URL))
			if ng, ok := nginxTarget(b, up.Listener.Addr().String()); ok {
				targets = append(targets, ng)
			}
			defer func() {
				for _, t := range targets {
					t.stop()
				}
			}()
			const rounds, n = 5, 20000
			res := map[string][]loadResult{}
			for round := 0; round < rounds+1; round++ {
				for _, t := range targets {
					req, status := postRequest(t.addr, body), 201
					if get {
						req, status = getRequest(t.addr), 200
					}
					r := load(b, t, req, status, n, benchConns)
					if round > 0 { // round 0 warms up
						res[t.name] = append(res[t.name], r)
					}
				}
			}
			med := map[string]loadResult{}
			for name, rs := range res {
				med[name] = loadResult{
					rps: median(rs, func(r loadResult) float64 { return r.rps }),
					p50: time.Duration(median(rs, func(r loadResult) float64 { return float64(r.p50) })),
					p99: time.Duration(median(rs, func(r loadResult) float64 { return float64(r.p99) })),
					cpu: time.Duration(median(rs, func(r loadResult) float64 { return float64(r.cpu) })),
				}
				b.ReportMetric(med[name].rps, name+"-req/s")
				b.ReportMetric(float64(med[name].p50.Microseconds()), name+"-p50-µs")
				b.ReportMetric(float64(med[name].p99.Microseconds()), name+"-p99-µs")
				b.ReportMetric(float64(med[name].cpu.Nanoseconds())/1000, name+"-cpu-µs/req")
			}
			base := "nginx"
			if _, ok := med[base]; !ok {
				base = "stdlib"
			}
			bm := med[base]
			for _, sg := range []string{"sealgate", "sealgate-proc"} {
				b.ReportMetric(med[sg].rps/bm.rps, sg+"/"+base+"-x")
				b.ReportMetric(float64((med[sg].p99 - bm.p99).Microseconds()), sg+"-"+base+"-p99-Δµs")
			}
			b.ReportMetric(med["stdlib"].rps/bm.rps, "stdlib/"+base+"-x")
			// CPU the proxy itself costs per request: the target's total
			// less the direct path's (client and upstream), robust to other
			// load on the machine.
			own := func(n string) float64 { return float64((med[n].cpu - med["direct"].cpu).Nanoseconds()) / 1000 }
			b.ReportMetric(own("sealgate"), "sealgate-own-cpu-µs/req")
			b.ReportMetric(own("sealgate-proc"), "sealgate-proc-own-cpu-µs/req")
			b.ReportMetric(own(base), base+"-own-cpu-µs/req")
			b.ReportMetric(0, "ns/op")
			if !get && p.Stats().Captured == 0 {
				b.Error("nothing captured")
			}
		})
	}
}

func median(rs []loadResult, f func(loadResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
