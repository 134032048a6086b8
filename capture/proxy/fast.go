package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The fast path: Serve speaks HTTP/1.1 on the listener itself, the way
// nginx does. It reads a request head, forwards its bytes with the
// hop-by-hop fields taken out and X-Forwarded-For/-Proto put in, relays
// the body by its framing, and relays the response head and body the same
// way: no header maps, no goroutines besides the connection's own. Only
// the plain, common form of request takes this path (see
// head.parseRequest); any other request — chunked or Expect bodies,
// websocket and other upgrades, HTTP/1.0, odd or repeated framing fields,
// a percent-encoded path — hands its connection, with the bytes already
// read, to an embedded net/http server running ServeHTTP. Both paths
// capture the same way.

const (
	clientBufSize = 16 << 10
	maxHeadBytes  = clientBufSize
)

// fastServer is the state of Serve.
type fastServer struct {
	mu    sync.Mutex
	conns map[net.Conn]*atomic.Bool // true while between requests
	lns   map[net.Listener]struct{}
	// closing is set under mu and read without it on every request: a
	// connection stores its idle flag, then loads closing; Shutdown stores
	// closing, then loads the flags. Either the connection sees closing or
	// Shutdown sees it idle, without a lock per request.
	closing  atomic.Bool
	hs       *http.Server
	handoff  *chanListener
	wg       sync.WaitGroup
	hsDone   chan struct{}
	hsOnce   sync.Once
	shutdown chan struct{}
}

// Serve accepts connections on ln and proxies them (the fast path, with
// net/http for what it does not handle). It returns when ln fails or after
// Shutdown, with http.ErrServerClosed. IdleTimeout (default 2 minutes)
// bounds the wait for a client's next request; a TLS listener is fine.
func (p *Proxy) Serve(ln net.Listener) error {
	p.init()
	f := &p.fast
	f.mu.Lock()
	if f.closing.Load() {
		f.mu.Unlock()
		return http.ErrServerClosed
	}
	if f.conns == nil {
		f.conns = map[net.Conn]*atomic.Bool{}
		f.lns = map[net.Listener]struct{}{}
		f.shutdown = make(chan struct{})
	}
	f.lns[ln] = struct{}{}
	f.hsOnce.Do(func() {
		f.handoff = &chanListener{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
		f.hs = &http.Server{Handler: p, ReadHeaderTimeout: time.Minute, IdleTimeout: p.idleTimeout(),
			ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn), ConnContext: connContext}
		f.hsDone = make(chan struct{})
		go func() { f.hs.Serve(f.handoff); close(f.hsDone) }()
	})
	f.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if f.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		idle := new(atomic.Bool)
		idle.Store(true)
		if !f.track(c, idle) {
			c.Close()
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			p.serveConn(c, idle)
		}()
	}
}

// track adds a connection with its idle flag; false when shutting down.
func (f *fastServer) track(c net.Conn, idle *atomic.Bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		return false
	}
	f.conns[c] = idle
	return true
}

// setIdle marks a tracked connection idle or busy; false when shutting
// down.
func (f *fastServer) setIdle(idle *atomic.Bool, v bool) bool {
	idle.Store(v)
	return !f.closing.Load()
}

func (f *fastServer) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// Shutdown stops Serve: closes the listeners and idle connections, lets
// requests in progress finish until ctx is done (then closes them), and
// shuts the embedded net/http server down the same way. Call Close
// afterwards to drain the capture.
func (p *Proxy) Shutdown(ctx context.Context) error {
	f := &p.fast
	f.mu.Lock()
	if f.conns == nil {
		f.closing.Store(true)
		f.mu.Unlock()
		return nil
	}
	if !f.closing.Load() {
		f.closing.Store(true)
		close(f.shutdown)
	}
	for ln := range f.lns {
		ln.Close()
	}
	for c, idle := range f.conns {
		if idle.Load() {
			c.Close()
		}
	}
	f.mu.Unlock()
	err := f.hs.Shutdown(ctx)
	f.handoff.Close()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		<-done
		if err == nil {
			err = ctx.Err()
		}
	}
	return err
}

func (p *Proxy) idleTimeout() time.Duration {
	if p.IdleTimeout > 0 {
		return p.IdleTimeout
	}
	return 2 * time.Minute
}

// clientConn is one client connection on the fast path.
type clientConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	ip    string
	https bool
	h     head
	uh    head
	// deadlineAt is when the read deadline was last set (zero: none is
	// set): it is renewed only when older than idleSlack, not twice per
	// request.
	deadlineAt time.Time
}

// idleSlack is how much shorter than IdleTimeout the wait for a client's
// next request may be: the read deadline is renewed at most that often.
func idleSlack(idle time.Duration) time.Duration {
	return min(time.Second, idle/16)
}

var clientConnPool = sync.Pool{New: func() any {
	return &clientConn{br: bufio.NewReaderSize(nil, clientBufSize), bw: bufio.NewWriterSize(nil, 8<<10)}
}}

func (p *Proxy) serveConn(c net.Conn, idleFlag *atomic.Bool) {
	f := &p.fast
	cc := clientConnPool.Get().(*clientConn)
	cc.c = c
	cc.br.Reset(c)
	cc.bw.Reset(c)
	cc.ip = clientIP(c.RemoteAddr().String())
	cc.deadlineAt = time.Time{}
	_, cc.https = c.(*tls.Conn)
	handedOff := false
	defer func() {
		f.untrack(c)
		if !handedOff {
			c.Close()
		}
		cc.c = nil
		cc.br.Reset(nil)
		cc.bw.Reset(nil)
		clientConnPool.Put(cc)
	}()
	if p.pool == nil { // a custom Transport or a TLS upstream: all of it through net/http
		handedOff = p.handOff(cc)
		return
	}
	idle := p.idleTimeout()
	slack := idleSlack(idle)
	for {
		if !f.setIdle(idleFlag, true) {
			return
		}
		// The deadline also bounds the reads of a small request body; a
		// streamed one clears it (fastExchange1). Responses only write to
		// the client, so a deadline passing during a long one is harmless.
		if now := time.Now(); cc.deadlineAt.IsZero() || now.Sub(cc.deadlineAt) > slack {
			c.SetReadDeadline(now.Add(idle))
			cc.deadlineAt = now
		}
		n, err := readHead(cc.br)
		if err != nil && err != errHeadTooLarge {
			return
		}
		if !f.setIdle(idleFlag, false) {
			return
		}
		buf, _ := cc.br.Peek(n)
		if err == errHeadTooLarge || !cc.h.parseRequest(buf) {
			c.SetReadDeadline(time.Time{})
			handedOff = p.handOff(cc)
			return
		}
		keep, handoff := p.fastExchange(cc)
		if handoff {
			c.SetReadDeadline(time.Time{})
			handedOff = p.handOff(cc)
			return
		}
		if !keep {
			return
		}
		select {
		case <-f.shutdown:
			return
		default:
		}
	}
}

var errHeadTooLarge = errors.New("proxy: request head too large for the fast path")

// readHead waits until br holds a whole message head and returns its
// length (through CRLF CRLF).
func readHead(br *bufio.Reader) (int, error) {
	from := 0
	for {
		b, err := br.Peek(br.Buffered())
		if len(b) > 0 {
			if i := bytes.Index(b[max(0, from-3):], []byte("\r\n\r\n")); i >= 0 {
				return max(0, from-3) + i + 4, nil
			}
			from = len(b)
			if len(b) >= br.Size() {
				return 0, errHeadTooLarge
			}
		}
		if err != nil {
			return 0, err
		}
		if _, err := br.Peek(len(b) + 1); err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, errHeadTooLarge
			}
			return 0, err
		}
	}
}

// handOff gives the connection, with what was read of it, to the embedded
// net/http server.
func (p *Proxy) handOff(cc *clientConn) bool {
	buffered, _ := cc.br.Peek(cc.br.Buffered())
	pc := &prefixConn{Conn: cc.c, pre: bytes.Clone(buffered), https: cc.https}
	select {
	case p.fast.handoff.ch <- pc:
		p.stats.handedOff.Add(1)
		return true
	case <-p.fast.handoff.done:
		return false
	}
}

// fastExchange forwards one request and its response. It returns whether
// the client connection can carry another request, or, before it has
// consumed anything, that the request is net/http's after all.
func (p *Proxy) fastExchange(cc *clientConn) (keep, handoff bool) {
	keep = p.fastExchange1(cc, &handoff)
	return keep, handoff
}

func (p *Proxy) fastExchange1(cc *clientConn, handoff *bool) bool {
	h := &cc.h
	headLen := len(h.buf)
	target := h.target
	path := target
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	route, id := classify(string(h.method), string(path))
	if route == routeHook && h.clen > leanMaxBody && h.clen <= p.MaxCaptureBytes {
		*handoff = true // a large webhook body: net/http's path keeps a copy while streaming it
		return false
	}
	p.stats.fast.Add(1)
	method := string(h.method)
	isHead := method == "HEAD"
	clientClose := h.connClose

	// Read a small body whole (retry-safe, and the webhook's copy) into
	// the upstream request right after its head, so that the request goes
	// out in one write; stream a large one.
	stream := h.clen > leanMaxBody

	// The upstream head is built first: the client's head bytes are only
	// valid until the body is read.
	out := getBodyBuffer()
	defer putBodyBuffer(out)
	writeUpstreamHead(out, h, cc)
	outHead := out.Len()
	reqCL := h.clen
	var hookType, hookEncoding string
	if route == routeHook {
		hookType, hookEncoding = string(h.ctype), string(h.encoding)
	}
	cc.br.Discard(headLen)
	var body []byte // nil when streamed
	if !stream {
		if reqCL > 0 {
			out.Grow(int(reqCL))
			b := out.AvailableBuffer()[:reqCL]
			if _, err := io.ReadFull(cc.br, b); err != nil {
				return false
			}
			out.Write(b)
		}
		body = out.Bytes()[outHead:]
	}

	var uc *upConn
	var err error
	for attempt := 0; ; attempt++ {
		uc, err = p.pool.get(context.Background(), stream)
		if err != nil {
			break
		}
		if stream {
			if !cc.deadlineAt.IsZero() {
				cc.c.SetReadDeadline(time.Time{}) // an upload may take longer than IdleTimeout
				cc.deadlineAt = time.Time{}
			}
			bw := uc.bw
			bw.Write(out.Bytes())
			err = copyN(bw, cc.br, reqCL)
			if err != nil {
				// The client's body broke off: nothing sensible to answer.
				uc.c.Close()
				return false
			}
			err = bw.Flush()
		} else {
			_, err = uc.sendAwait(out.Bytes())
			if err == errStale {
				uc.c.Close()
				attempt-- // not sent: as if the pool had not offered it
				continue
			}
		}
		if err == nil {
			err = p.readUpstreamHead(uc, &cc.uh, isHead, cc.bw)
		}
		if err == nil {
			break
		}
		uc.c.Close()
		if attempt > 0 || !uc.reuse || stream || !idempotent(method) {
			break
		}
	}
	if err != nil {
		p.log.Warn("proxy: upstream request failed", "method", method, "error_class", errClass(err))
		cc.bw.WriteString("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
		cc.bw.Flush()
		return false
	}
	uh := &cc.uh
	status := uh.status

	// Framing of the response body.
	noBody := isHead || status == 204 || status == 304
	closeDelimited := !noBody && !uh.chunked && (uh.clen < 0 || (uh.te && !uh.chunked))
	keepClient := !clientClose && !closeDelimited
	writeClientHead(cc.bw, uh, !keepClient)
	var requestID, encoding string
	if route != routeNone {
		requestID, encoding = string(uh.requestID), string(uh.encoding)
	}
	keepUp := !uh.connClose && !uh.http10 && !closeDelimited
	ubuflen := len(uh.buf)
	uc.br.Discard(ubuflen)

	ok2xx := status >= 200 && status < 300
	var tee *capBuffer
	if ok2xx && route.capturesResponse() && uh.clen <= p.MaxCaptureBytes {
		tee = getCapBuffer(p.MaxCaptureBytes)
	}
	switch {
	case noBody:
		err = cc.bw.Flush()
	case uh.chunked:
		err = relayChunked(cc.bw, uc.br, tee)
	case closeDelimited:
		err = relayUntilEOF(cc.bw, uc.br, tee)
		keepUp = false
	default:
		err = relayN(cc.bw, uc.br, uh.clen, tee)
	}
	if err != nil {
		putCapBuffer(tee)
		uc.c.Close()
		return false
	}
	if keepUp {
		p.pool.put(uc)
	} else {
		uc.c.Close()
	}

	if route != routeNone && ok2xx {
		j := &job{route: route, id: id, at: p.now(), requestID: requestID}
		switch route {
		case routeHook:
			if len(body) == 0 || int64(len(body)) > p.MaxCaptureBytes {
				p.stats.skipped.Add(1)
				return keepClient
			}
			cb := getCapBuffer(p.MaxCaptureBytes)
			cb.Write(body)
			j.body, j.contentType, j.encoding = cb, hookType, hookEncoding
		case routeDelete:
		default:
			if tee == nil || tee.over {
				putCapBuffer(tee)
				p.stats.skipped.Add(1)
				return keepClient
			}
			j.body, j.encoding = tee, encoding
		}
		p.enqueue(j)
	} else {
		putCapBuffer(tee)
	}
	return keepClient
}

// writeUpstreamHead copies the request line and header fields but the
// hop-by-hop ones, merges X-Forwarded-For and sets X-Forwarded-Proto.
func writeUpstreamHead(out *bytes.Buffer, h *head, cc *clientConn) {
	b := h.buf
	out.Write(b[:h.line0+2])
	var xff [][]byte
	for i := range h.lines {
		name, v := h.field(i)
		if h.hop(name, false) {
			continue
		}
		if eqFold(name, "X-Forwarded-For") {
			xff = append(xff, v)
			continue
		}
		if eqFold(name, "X-Forwarded-Proto") {
			continue
		}
		out.Write(b[h.lines[i][0] : h.lines[i][2]+2])
	}
	if h.trailers {
		out.WriteString("Te: trailers\r\n")
	}
	if len(xff) > 0 || cc.ip != "" {
		out.WriteString("X-Forwarded-For: ")
		for i, v := range xff {
			if i > 0 {
				out.WriteString(", ")
			}
			out.Write(v)
		}
		if cc.ip != "" {
			if len(xff) > 0 {
				out.WriteString(", ")
			}
			out.WriteString(cc.ip)
		}
		out.WriteString("\r\n")
	}
	if cc.https {
		out.WriteString("X-Forwarded-Proto: https\r\n\r\n")
	} else {
		out.WriteString("X-Forwarded-Proto: http\r\n\r\n")
	}
}

// readUpstreamHead reads the response head into uh, relaying interim (1xx)
// responses to the client.
func (p *Proxy) readUpstreamHead(uc *upConn, uh *head, isHead bool, cbw *bufio.Writer) error {
	for {
		n, err := readHead(uc.br)
		if err != nil {
			if err == io.EOF {
				return errUpstreamGone
			}
			return err
		}
		buf, _ := uc.br.Peek(n)
		if !uh.parseResponse(buf) {
			return errors.New("proxy: malformed upstream response head")
		}
		if uh.status >= 200 {
			return nil
		}
		if uh.status == http.StatusSwitchingProtocols {
			return errors.New("proxy: upstream switched protocols unasked")
		}
		cbw.Write(buf)
		uc.br.Discard(n)
		if err := cbw.Flush(); err != nil {
			return err
		}
	}
}

// writeClientHead writes the response status line and fields but the
// hop-by-hop ones; closing adds Connection: close.
func writeClientHead(bw *bufio.Writer, uh *head, closing bool) {
	b := uh.buf
	if uh.http10 {
		bw.WriteString("HTTP/1.1")
		bw.Write(b[8 : uh.line0+2])
	} else {
		bw.Write(b[:uh.line0+2])
	}
	for i := range uh.lines {
		if uh.hop(uh.name(i), true) {
			continue
		}
		bw.Write(b[uh.lines[i][0] : uh.lines[i][2]+2])
	}
	if closing {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// relayN copies an n-byte body, flushing to the client whenever the
// upstream has nothing more buffered (so streams stream, and a small
// response goes out in one write with its head).
func relayN(cbw *bufio.Writer, ubr *bufio.Reader, n int64, tee *capBuffer) error {
	for n > 0 {
		if ubr.Buffered() == 0 {
			if err := cbw.Flush(); err != nil {
				return err
			}
		}
		b, err := ubr.Peek(int(min(n, int64(max(ubr.Buffered(), 1)))))
		if len(b) == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if tee != nil {
			tee.Write(b)
		}
		if _, err := cbw.Write(b); err != nil {
			return err
		}
		ubr.Discard(len(b))
		n -= int64(len(b))
	}
	return cbw.Flush()
}

// relayUntilEOF copies a body delimited by the upstream closing.
func relayUntilEOF(cbw *bufio.Writer, ubr *bufio.Reader, tee *capBuffer) error {
	for {
		if ubr.Buffered() == 0 {
			if err := cbw.Flush(); err != nil {
				return err
			}
		}
		b, err := ubr.Peek(max(ubr.Buffered(), 1))
		if len(b) > 0 {
			if tee != nil {
				tee.Write(b)
			}
			if _, werr := cbw.Write(b); werr != nil {
				return werr
			}
			ubr.Discard(len(b))
		}
		if err == io.EOF {
			return cbw.Flush()
		}
		if err != nil && len(b) == 0 {
			return err
		}
	}
}

// relayChunked copies a chunked body as it is, framing and trailers
// included, keeping the decoded data in tee.
func relayChunked(cbw *bufio.Writer, ubr *bufio.Reader, tee *capBuffer) error {
	for {
		if ubr.Buffered() == 0 {
			if err := cbw.Flush(); err != nil {
				return err
			}
		}
		line, err := readLine(ubr)
		if err != nil {
			return err
		}
		size, ok := chunkSize(line)
		if !ok {
			return errors.New("proxy: malformed chunk size")
		}
		if _, err := cbw.Write(line); err != nil {
			return err
		}
		if size == 0 {
			// Trailer fields, then the empty line.
			for {
				line, err := readLine(ubr)
				if err != nil {
					return err
				}
				if len(line) > 2 && !validField(bytes.TrimSuffix(line, crlf)) {
					return errors.New("proxy: malformed trailer")
				}
				if _, err := cbw.Write(line); err != nil {
					return err
				}
				if len(line) == 2 {
					return cbw.Flush()
				}
			}
		}
		if err := relayN(cbw, ubr, size, tee); err != nil {
			return err
		}
		line, err = readLine(ubr)
		if err != nil {
			return err
		}
		if len(line) != 2 {
			return errors.New("proxy: malformed chunk end")
		}
		cbw.Write(line)
	}
}

// readLine returns the next CRLF-terminated line, CRLF included; the slice
// is valid until the next read from br.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errors.New("proxy: bare LF in chunked framing")
	}
	return line, nil
}

// chunkSize parses "hex[;ext]\r\n".
func chunkSize(line []byte) (int64, bool) {
	l := line[:len(line)-2]
	if i := bytes.IndexByte(l, ';'); i >= 0 {
		l = l[:i]
	}
	l = bytes.TrimRight(l, " \t")
	if len(l) == 0 || len(l) > 15 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(l), 16, 64)
	return n, err == nil && n >= 0
}

// copyN streams n bytes of a request body upstream.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) error {
	for n > 0 {
		b, err := src.Peek(int(min(n, int64(max(src.Buffered(), 1)))))
		if len(b) == 0 {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// prefixConn replays bytes already read before reading on.
type prefixConn struct {
	net.Conn
	pre   []byte
	https bool // a TLS connection (net/http cannot see it through the wrapper)
}

type httpsKey struct{}

// connContext marks handed-off TLS connections for X-Forwarded-Proto.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if pc, ok := c.(*prefixConn); ok && pc.https {
		return context.WithValue(ctx, httpsKey{}, true)
	}
	return ctx
}

// isHTTPS reports whether the client reached the proxy over TLS.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || r.Context().Value(httpsKey{}) != nil
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// chanListener is the embedded net/http server's listener: connections
// handed over by the fast path.
type chanListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
