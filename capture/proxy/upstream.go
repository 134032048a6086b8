package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// The lean path. Go's http.Transport runs two goroutines per upstream
// connection and hands every request and response across channels; for
// the small API calls that are most of Mattermost's traffic that costs as
// much as the rest of the proxy together. The lean path writes the request
// and reads the response on the handler's own goroutine over a pooled
// keep-alive connection. It serves requests to a plain-HTTP upstream whose
// body is known and small (≤ leanMaxBody: read whole first, which also
// makes them safe to send again); uploads, chunked bodies, trailers,
// protocol switches and custom Transports go through the Transport.

const (
	leanMaxBody  = 64 << 10
	leanIdleMax  = 30 * time.Second // drop idle connections before a typical upstream idle timeout
	leanIdleConn = 1024
)

// upConn is one pooled upstream connection.
type upConn struct {
	c     net.Conn
	rc    syscall.RawConn
	br    *bufio.Reader
	bw    *bufio.Writer
	idle  time.Time
	reuse bool // taken from the pool (else freshly dialed)
}

// upPool keeps idle connections to one upstream address.
type upPool struct {
	addr   string
	dialer net.Dialer
	mu     sync.Mutex
	idle   []*upConn
}

func newUpPool(addr string) *upPool {
	return &upPool{addr: addr, dialer: net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}}
}

// get returns an idle connection or dials a new one. With peek it checks
// an idle connection's liveness first; without, the caller must (sendAwait
// does, in the same callback as its write).
func (p *upPool) get(ctx context.Context, peek bool) (*upConn, error) {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		uc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if now.Sub(uc.idle) < leanIdleMax && uc.br.Buffered() == 0 && (!peek || uc.alive()) {
			uc.reuse = true
			return uc, nil
		}
		uc.c.Close()
	}
	c, err := p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	uc := &upConn{c: c, br: bufio.NewReaderSize(c, copyBufSize), bw: bufio.NewWriterSize(c, 8<<10)}
	if sc, ok := c.(syscall.Conn); ok {
		uc.rc, _ = sc.SyscallConn()
	}
	return uc, nil
}

// put returns a connection whose last response was read to its end.
func (p *upPool) put(uc *upConn) {
	uc.idle = time.Now()
	p.mu.Lock()
	if len(p.idle) < leanIdleConn {
		p.idle = append(p.idle, uc)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	uc.c.Close()
}

// alive tells whether an idle connection is still open: no buffered bytes
// (an idle HTTP/1.1 connection has nothing to say) and a non-blocking peek
// finds neither data nor end of stream.
func (uc *upConn) alive() bool {
	if uc.br.Buffered() > 0 {
		return false
	}
	if uc.rc == nil {
		return true
	}
	alive := true
	err := uc.rc.Read(func(fd uintptr) bool {
		alive = peekAlive(int(fd))
		return true
	})
	return err == nil && alive
}

// peekAlive is the non-blocking peek of alive on a socket.
func peekAlive(fd int) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(fd, b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	switch {
	case n > 0: // unsolicited bytes: not a clean connection
		return false
	case n == 0 && err == nil: // EOF
		return false
	case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
		return true
	}
	return false
}

var errStale = errors.New("proxy: pooled upstream connection closed while idle")

// sendAwait writes b (a whole request) and waits until the connection has
// something to read. Go's reads try the syscall first, and right after a
// request the response is never there yet: that failed read (EAGAIN) and
// the liveness peek of a reused connection would be two syscalls per
// request. Inside RawConn.Read the readiness state is reset before the
// callback runs, so writing from the callback and then waiting cannot
// miss the response's readiness, and the peek rides along in the same
// callback. A reused connection the upstream closed while idle is
// reported as errStale before anything is written.
func (uc *upConn) sendAwait(b []byte) (sent bool, err error) {
	if uc.rc == nil {
		if uc.reuse && !uc.alive() {
			return false, errStale
		}
		_, err = uc.c.Write(b)
		return true, err
	}
	rest, called := b, false
	var werr error
	rerr := uc.rc.Read(func(fd uintptr) bool {
		if called {
			return true // readable
		}
		called = true
		if uc.reuse && !peekAlive(int(fd)) {
			werr = errStale
			return true
		}
		sent = true
		for len(rest) > 0 {
			n, err := syscall.Write(int(fd), rest)
			if n > 0 {
				rest = rest[n:]
			}
			switch {
			case err == syscall.EINTR:
			case err == syscall.EAGAIN:
				return true // the socket buffer is full: finish with a blocking write
			case err != nil:
				werr = err
				return true
			case n == 0:
				werr = io.ErrShortWrite
				return true
			}
		}
		return false
	})
	if werr != nil {
		return sent, werr
	}
	if rerr != nil {
		return sent, rerr
	}
	if len(rest) > 0 {
		_, err = uc.c.Write(rest)
	}
	return sent, err
}

// leanBody is the response body on a pooled connection: at its end the
// connection goes back to the pool, unless the response ends it.
type leanBody struct {
	rc      io.ReadCloser
	uc      *upConn
	pool    *upPool
	keep    bool
	eof     bool
	stopCtx func() bool
}

func (b *leanBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *leanBody) Close() error {
	err := b.rc.Close()
	stopped := b.stopCtx == nil || b.stopCtx()
	if b.eof && b.keep && err == nil && stopped {
		b.pool.put(b.uc)
	} else {
		b.uc.c.Close()
	}
	return err
}

var errUpstreamGone = errors.New("proxy: upstream closed the connection")

// leanEligible tells whether a request can take the lean path.
func (p *Proxy) leanEligible(r *http.Request) bool {
	return p.pool != nil && r.ContentLength >= 0 && r.ContentLength <= leanMaxBody &&
		len(r.TransferEncoding) == 0 && len(r.Trailer) == 0 && r.ProtoMajor == 1
}

// roundTripLean sends r upstream on a pooled connection, with body (all of
// it, already read) and the forwarding headers, and reads the response
// head. Connections reused from the pool that turn out dead before any
// response byte are retried once on a new connection for requests that
// Mattermost does not act on twice: methods that are idempotent by
// definition.
func (p *Proxy) roundTripLean(r *http.Request, body []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		uc, err := p.pool.get(r.Context(), true)
		if err != nil {
			return nil, err
		}
		resp, sent, err := p.exchange(uc, r, body)
		if err == nil {
			return resp, nil
		}
		uc.c.Close()
		if attempt > 0 || !uc.reuse || (sent && !idempotent(r.Method)) || r.Context().Err() != nil {
			return nil, err
		}
	}
}

func idempotent(method string) bool {
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// exchange writes the request and reads the response head on uc. sent
// reports whether the request may have reached the upstream.
func (p *Proxy) exchange(uc *upConn, r *http.Request, body []byte) (resp *http.Response, sent bool, err error) {
	// A client that goes away stops the wait for the upstream.
	stop := context.AfterFunc(r.Context(), func() { uc.c.SetDeadline(time.Unix(1, 0)) })
	bw := uc.bw
	writeRequestHead(bw, r, p.Upstream.Host, len(body))
	bw.Write(body)
	sent = true
	if err = bw.Flush(); err != nil {
		stop()
		return nil, sent, err
	}
	for {
		resp, err = http.ReadResponse(uc.br, r)
		if err != nil {
			stop()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				err = errUpstreamGone
			}
			return nil, sent, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close() // 1xx: interim, the real answer follows
	}
	keep := !resp.Close && resp.ProtoAtLeast(1, 1)
	resp.Body = &leanBody{rc: resp.Body, uc: uc, pool: p.pool, keep: keep, stopCtx: stop}
	return resp, sent, nil
}

// writeRequestHead writes the request line and header fields: the client's
// request target and Host unchanged, its header fields minus hop-by-hop
// ones, X-Forwarded-For and X-Forwarded-Proto set, and the body length.
func writeRequestHead(bw *bufio.Writer, r *http.Request, upHost string, n int) {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	uri := r.RequestURI
	if uri == "" || (uri[0] != '/' && uri != "*") {
		uri = r.URL.RequestURI()
	}
	bw.WriteString(uri)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	host := r.Host
	if host == "" {
		host = upHost
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	var xff []string
	for k, vv := range r.Header {
		if isHop(k) || (len(conn) > 0 && tokenListContains(conn, k)) {
			if k == "Te" && tokenListContains(vv, "trailers") {
				bw.WriteString("Te: trailers\r\n")
			}
			continue
		}
		switch k {
		case "X-Forwarded-For":
			xff = vv
			continue
		case "X-Forwarded-Proto", "Content-Length", "Host":
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if ip := clientIP(r.RemoteAddr); ip != "" || len(xff) > 0 {
		bw.WriteString("X-Forwarded-For: ")
		for i, v := range xff {
			if i > 0 {
				bw.WriteString(", ")
			}
			bw.WriteString(v)
		}
		if ip != "" {
			if len(xff) > 0 {
				bw.WriteString(", ")
			}
			bw.WriteString(ip)
		}
		bw.WriteString("\r\n")
	}
	if isHTTPS(r) {
		bw.WriteString("X-Forwarded-Proto: https\r\n")
	} else {
		bw.WriteString("X-Forwarded-Proto: http\r\n")
	}
	if n > 0 || methodExpectsBody(r.Method) {
		var b [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(b[:0], int64(n), 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

func methodExpectsBody(m string) bool {
	return m == "POST" || m == "PUT" || m == "PATCH"
}
