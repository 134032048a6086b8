// Package proxy is the reverse proxy mode of sealgate serve: it sits in
// front of Mattermost, passes every HTTP request and the websocket through
// unchanged and streamed, and captures posts from the responses of the post
// routes and from the bodies of incoming webhooks.
//
// The request path does only what passing the request through needs plus,
// on the capture routes, a bounded copy of the post JSON while it streams to
// the client. Parsing the copy, building the ingest event, looking up a
// deleted post's author and delivering the event all happen off the request
// path, on a queue. A capture failure never fails the user's request: an
// event that cannot be handed on goes to the durable, encrypted Spool, and a
// Sink delivers events to the ingest pipeline, spooling them while the store
// is down and replaying them when it is back.
//
// Captured routes (Mattermost REST API v4 and incoming webhooks):
//
//	POST   /api/v4/posts              "posted"  from the response post
//	PUT    /api/v4/posts/{id}         "updated" from the response post
//	PUT    /api/v4/posts/{id}/patch   "updated" from the response post
//	DELETE /api/v4/posts/{id}         "deleted" from PostLookup, stamped deleted_at
//	POST   /hooks/{id}                "posted"  the post the hook created (WebhookPosts), else from the payload
//
// Two ways to run it, capturing the same way:
//
//   - Serve(ln) — what serve should use: the proxy speaks HTTP/1.1 on the
//     listener itself (the fast path, fast.go) and hands connections it
//     does not handle (websocket, chunked or Expect bodies, HTTP/1.0,
//     odd framing, percent-encoded paths) to an embedded net/http server
//     running ServeHTTP. Shutdown(ctx) stops it.
//   - as an http.Handler (ServeHTTP) in any net/http server: small
//     requests go over the proxy's own pooled upstream connections
//     (upstream.go), the rest, and everything when Transport is set,
//     through an http.Transport.
//
// Wiring, for sealgate serve:
//
//	spool, _ := proxy.OpenSpool(dir, keys.AEAD("spool/v1"), log)
//	sink := &proxy.Sink{Deliver: ingest, Spool: spool, Log: log} // ingest: parse + Pipeline.Ingest; proxy.Permanent on 400/413
//	go sink.Run(ctx)
//	p := &proxy.Proxy{Upstream: u, Capture: sink.Capture, Spool: spool, Log: log, PostLookup: …, HookLookup: …}
//	go p.Serve(ln)
//	// on exit: p.Shutdown(ctx); p.Close(ctx); cancel sink ctx and wait for Run; spool.Close()
//
// Every event is one ingest event JSON object, as POST /v1/ingest takes it:
// {"kind", "post": model.Post JSON, "deleted_at"}, plus a top-level
// "request_id" (the response's X-Request-Id, which is also the RequestId
// the capture plugin sees in its hook context) and, for webhooks, a
// "webhook" object {"hook_id", "channel"}.
package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

// Proxy is an http.Handler that forwards everything to Upstream and
// captures posts. Set the exported fields before the first request; they
// are not changed afterwards.
type Proxy struct {
	// Upstream is the Mattermost server, scheme and host (a path, if any,
	// is ignored: the request path is passed on unchanged).
	Upstream *url.URL
	// Capture receives one ingest event JSON per captured post. It is
	// called from the proxy's capture worker, never on a request path, one
	// event at a time in capture order, and owns the slice. It should not
	// block for long (Sink.Capture does not): while it blocks, the capture
	// queue fills and further events go to Spool.
	Capture func(ev []byte)
	// Transport forwards requests upstream. Nil, with a plain-HTTP
	// Upstream, means the lean path: small requests (and every request
	// Serve handles itself) go over the proxy's own pooled keep-alive
	// connections, the rest through NewTransport(). A Transport set here
	// carries everything, and Serve hands every connection to net/http.
	Transport http.RoundTripper
	// Log gets counts and sizes, never ids or content; nil discards.
	Log *slog.Logger
	// PostLookup fetches a deleted post for its author, channel and times
	// (GET /api/v4/posts/{id}?include_deleted=true with an admin token:
	// Client4.GetPostIncludeDeleted). It is called off the request path,
	// after the DELETE has been answered, and retried with backoff. Nil, or
	// failing every retry, yields a deleted event with the post id only,
	// which the gateway refuses and the Sink keeps as a dead letter.
	PostLookup func(ctx context.Context, postID string) (*model.Post, error)
	// HookLookup, optional, fetches an incoming webhook for the creator
	// (the post's user_id) and default channel (Client4.GetIncomingWebhook
	// with an admin token). Results are cached for HookCacheTTL.
	HookLookup func(ctx context.Context, hookID string) (*model.IncomingWebhook, error)
	// WebhookPosts, optional, lists the posts created since `since` in the
	// channel a webhook posted to: channelID, or when the payload named
	// another channel, the channel of that name in teamID (Client4:
	// GetChannelByName, GetPostsSince, with the bot's token). The proxy
	// uses it to find the post a webhook created, which Mattermost's "ok"
	// does not name, so that the event carries the real post id and
	// de-duplicates with the plugin's and the reconciliation's copies.
	// Without it, or when no single post matches, the event gets a post
	// id derived from its request id (WebhookPostID).
	WebhookPosts func(ctx context.Context, teamID, channelID, channelName string, since time.Time) ([]*model.Post, error)
	// Spool takes events the capture queue has no room for. Nil drops them
	// (counted and logged).
	Spool *Spool
	// MaxCaptureBytes bounds the post JSON copied from one response (and a
	// webhook request body); a larger body streams through uncaptured.
	// Default 1000 KiB, leaving room under the gateway's 1 MiB event limit.
	MaxCaptureBytes int64
	// QueueSize is the capture queue's length; default 4096.
	QueueSize int
	// HookCacheTTL is how long a HookLookup result is trusted; default 5m.
	HookCacheTTL time.Duration
	// Now is the clock for deleted_at and webhook post times; nil: time.Now.
	Now func() time.Time
	// IdleTimeout bounds how long Serve waits for a client's next request
	// on a kept-alive connection; default 2 minutes.
	IdleTimeout time.Duration

	initOnce  sync.Once
	transport http.RoundTripper
	log       *slog.Logger
	qmu       sync.Mutex // the capture queue
	qjobs     []*job
	qclosed   bool
	qwake     chan struct{}
	worker    sync.WaitGroup // the capture worker
	lookups   sync.WaitGroup // PostLookup and HookLookup goroutines
	lookupSem chan struct{}
	stop      context.Context
	stopNow   context.CancelFunc
	hooks     hookCache
	claimed   claimedPosts // webhook posts already matched to a request
	pool      *upPool      // the lean path's connections; nil when it is off
	tun       tunnels
	fast      fastServer
	stats     counters
}

type counters struct {
	captured, spilled, dropped, skipped, lookupFailed atomic.Int64
	hooksResolved, hooksUnresolved                    atomic.Int64
	fast, handedOff                                   atomic.Int64
}

// Stats counts what the capture path did since start.
type Stats struct {
	Captured     int64 // events handed to Capture
	Spilled      int64 // events written to the Spool because the queue was full
	Dropped      int64 // events lost: queue full and no Spool, or the Spool failed
	Skipped      int64 // capture-route responses not captured: too large, unknown encoding, not a post
	LookupFailed int64 // deletes whose PostLookup failed every retry (emitted with the post id only)
	// HooksResolved and HooksUnresolved count webhook posts found through
	// WebhookPosts, and those emitted under WebhookPostID instead.
	HooksResolved, HooksUnresolved int64
	FastPath                       int64 // requests Serve's fast path forwarded itself
	HandedOff                      int64 // connections Serve handed to net/http
}

// Stats returns the capture counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Captured:      p.stats.captured.Load(),
		Spilled:       p.stats.spilled.Load(),
		Dropped:       p.stats.dropped.Load(),
		Skipped:       p.stats.skipped.Load(),
		LookupFailed:  p.stats.lookupFailed.Load(),
		HooksResolved: p.stats.hooksResolved.Load(), HooksUnresolved: p.stats.hooksUnresolved.Load(),
		FastPath:  p.stats.fast.Load(),
		HandedOff: p.stats.handedOff.Load(),
	}
}

const (
	defaultMaxCapture = 1000 << 10
	defaultQueue      = 4096
	copyBufSize       = 32 << 10
)

// NewTransport returns the upstream transport the proxy uses by default:
// HTTP/1.1 with many kept-alive connections, no proxy from the
// environment, no transparent compression (Accept-Encoding and
// Content-Encoding pass through untouched) and no response timeout (long
// polls and streams are the upstream's business).
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ExpectContinueTimeout: 0,
		ReadBufferSize:        copyBufSize,
		WriteBufferSize:       copyBufSize,
	}
}

func (p *Proxy) init() {
	p.initOnce.Do(func() {
		p.transport = p.Transport
		if p.transport == nil {
			p.transport = NewTransport()
			if p.Upstream.Scheme == "http" {
				p.pool = newUpPool(hostPort(p.Upstream))
			}
		}
		p.log = p.Log
		if p.log == nil {
			p.log = slog.New(slog.DiscardHandler)
		}
		if p.MaxCaptureBytes <= 0 {
			p.MaxCaptureBytes = defaultMaxCapture
		}
		if p.QueueSize <= 0 {
			p.QueueSize = defaultQueue
		}
		if p.HookCacheTTL <= 0 {
			p.HookCacheTTL = 5 * time.Minute
		}
		p.qwake = make(chan struct{}, 1)
		p.lookupSem = make(chan struct{}, 16)
		p.stop, p.stopNow = context.WithCancel(context.Background())
		p.worker.Add(1)
		go p.runWorker()
	})
}

func (p *Proxy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// Close stops capturing: it drains the capture queue into Capture and waits
// for pending lookups until ctx is done, then cancels them (their events are
// emitted with what is known), and ends open websocket tunnels (which
// http.Server.Shutdown does not track). Call it after the HTTP server has
// shut down; requests still in flight afterwards are passed through but
// not captured.
func (p *Proxy) Close(ctx context.Context) error {
	p.init()
	p.qmu.Lock()
	if p.qclosed {
		p.qmu.Unlock()
		return nil
	}
	p.qclosed = true
	p.qmu.Unlock()
	select {
	case p.qwake <- struct{}{}:
	default:
	}
	p.closeTunnels()
	done := make(chan struct{})
	go func() {
		p.worker.Wait()
		p.lookups.Wait()
		close(done)
	}()
	select {
	case <-done:
		p.stopNow()
		return nil
	case <-ctx.Done():
		p.stopNow()
		<-done
		return ctx.Err()
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// ServeHTTP forwards one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.init()
	if isUpgrade(r.Header) {
		p.serveUpgrade(w, r)
		return
	}
	route, id := classify(r.Method, r.URL.Path)

	var (
		resp    *http.Response
		err     error
		reqTee  *teeReadCloser
		reqBody *bytes.Buffer // lean path: the whole request body
	)
	if p.leanEligible(r) {
		reqBody = getBodyBuffer()
		defer putBodyBuffer(reqBody)
		if r.ContentLength > 0 {
			reqBody.Grow(int(r.ContentLength))
			b := reqBody.AvailableBuffer()[:r.ContentLength]
			if _, err := io.ReadFull(r.Body, b); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			reqBody.Write(b)
		}
		resp, err = p.roundTripLean(r, reqBody.Bytes())
	} else {
		out := p.outRequest(r)
		if route == routeHook && out.Body != nil && out.Body != http.NoBody &&
			(r.ContentLength < 0 || r.ContentLength <= p.MaxCaptureBytes) {
			reqTee = &teeReadCloser{rc: r.Body, tee: getCapBuffer(p.MaxCaptureBytes)}
			out.Body = reqTee
		}
		resp, err = p.transport.RoundTrip(out)
	}
	if err != nil {
		if r.Context().Err() == nil {
			p.log.Warn("proxy: upstream request failed", "method", r.Method, "error_class", errClass(err))
			w.WriteHeader(http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()

	h := w.Header()
	copyHeader(h, resp.Header)
	// What the upstream left out, the proxy's server must not add.
	if _, ok := resp.Header["Date"]; !ok {
		h["Date"] = nil
	}
	if _, ok := resp.Header["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = keys
	}
	w.WriteHeader(resp.StatusCode)

	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	var respTee *capBuffer
	if ok2xx && route.capturesResponse() && resp.ContentLength <= p.MaxCaptureBytes {
		respTee = getCapBuffer(p.MaxCaptureBytes)
	}
	flush := resp.ContentLength < 0 || isEventStream(resp.Header)
	if err := copyBody(w, resp.Body, respTee, flush); err != nil {
		putCapBuffer(respTee)
		// The status line is out: the only way left to tell the client
		// the body is incomplete is to break the connection.
		panic(http.ErrAbortHandler)
	}
	if len(resp.Trailer) > 0 {
		for k, vv := range resp.Trailer {
			if len(resp.Trailer) == announced {
				h[k] = vv
			} else {
				h[http.TrailerPrefix+k] = vv
			}
		}
	}

	if route == routeNone {
		return
	}
	if !ok2xx {
		putCapBuffer(respTee)
		return
	}
	j := &job{route: route, id: id, at: p.now(), requestID: resp.Header.Get("X-Request-Id")}
	switch route {
	case routeHook:
		var body *capBuffer
		if reqBody != nil {
			body = getCapBuffer(p.MaxCaptureBytes)
			body.Write(reqBody.Bytes())
		} else {
			body = reqTee.take()
		}
		if body == nil || body.over || body.Len() == 0 {
			putCapBuffer(body)
			p.stats.skipped.Add(1)
			return
		}
		j.body, j.contentType, j.encoding = body, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding")
	case routeDelete:
	default:
		if respTee == nil || respTee.over {
			putCapBuffer(respTee)
			p.stats.skipped.Add(1)
			return
		}
		j.body, j.encoding = respTee, resp.Header.Get("Content-Encoding")
	}
	p.enqueue(j)
}

// outRequest builds the upstream request: same method, path, query, Host,
// body and trailers; headers minus hop-by-hop ones; X-Forwarded-For and
// X-Forwarded-Proto set.
func (p *Proxy) outRequest(r *http.Request) *http.Request {
	out := new(http.Request)
	*out = *r // keeps r's context
	out.URL = &url.URL{
		Scheme:   p.Upstream.Scheme,
		Host:     p.Upstream.Host,
		Path:     r.URL.Path,
		RawPath:  r.URL.RawPath,
		RawQuery: r.URL.RawQuery,
	}
	out.RequestURI = ""
	out.Close = false
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Form, out.PostForm, out.MultipartForm = nil, nil, nil
	if r.ContentLength == 0 {
		out.Body = nil
	}
	hdr := make(http.Header, len(r.Header)+2)
	copyHeader(hdr, r.Header)
	if te, ok := r.Header["Te"]; ok && tokenListContains(te, "trailers") {
		hdr["Te"] = []string{"trailers"}
	}
	if _, ok := hdr["User-Agent"]; !ok {
		hdr["User-Agent"] = []string{""} // keep Go's transport from adding its own
	}
	if ip := clientIP(r.RemoteAddr); ip != "" {
		if prior, ok := hdr["X-Forwarded-For"]; ok && len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		hdr["X-Forwarded-For"] = []string{ip}
	}
	if isHTTPS(r) {
		hdr["X-Forwarded-Proto"] = []string{"https"}
	} else {
		hdr["X-Forwarded-Proto"] = []string{"http"}
	}
	out.Header = hdr
	return out
}

// hostPort is u's host with the scheme's default port if it has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return ""
	}
	return host
}

// copyBody streams src to w through a pooled buffer, keeping a bounded copy
// in tee when it is non-nil and flushing after every write when flush is set.
func copyBody(w http.ResponseWriter, src io.Reader, tee *capBuffer, flush bool) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if tee != nil {
				tee.Write(buf[:n])
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if rc != nil {
				if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && strings.HasPrefix(strings.ToLower(ct[0]), "text/event-stream")
}

// hopHeaders are the connection-specific header fields of RFC 9110 §7.6.1
// (and the older ones proxies still meet); they are not forwarded.
func isHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// copyHeader copies src into dst without the hop-by-hop fields and the
// fields named in src's Connection header. Value slices are shared; callers
// replace, never append to, them.
func copyHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHop(k) || (len(conn) > 0 && tokenListContains(conn, k)) {
			continue
		}
		dst[k] = vv
	}
}

// tokenListContains reports whether a comma-separated header value list
// holds tok, case-insensitively.
func tokenListContains(vv []string, tok string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), tok) {
				return true
			}
		}
	}
	return false
}

// errClass names a transport error without its text, which may hold a host.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return "net_" + oe.Op
	}
	return "other"
}

// capBuffer is a bounded copy of a body: once more than max bytes were
// written it drops what it had and only remembers that it overflowed.
type capBuffer struct {
	bytes.Buffer
	max  int64
	over bool
}

func (c *capBuffer) Write(b []byte) {
	if c.over {
		return
	}
	if int64(c.Len()+len(b)) > c.max {
		c.over = true
		c.Reset()
		return
	}
	c.Buffer.Write(b)
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBodyBuffer() *bytes.Buffer {
	b := bodyPool.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func putBodyBuffer(b *bytes.Buffer) {
	if b.Cap() <= leanMaxBody {
		bodyPool.Put(b)
	}
}

var capPool = sync.Pool{New: func() any { return new(capBuffer) }}

func getCapBuffer(max int64) *capBuffer {
	c := capPool.Get().(*capBuffer)
	c.max, c.over = max, false
	c.Reset()
	return c
}

func putCapBuffer(c *capBuffer) {
	if c == nil || c.Cap() > 64<<10 {
		return
	}
	capPool.Put(c)
}

// teeReadCloser copies what is read from a request body into a capBuffer.
// The transport may read it from its own goroutine, even after the response
// has arrived, so the copy is handed over under a lock and only once the
// body has been read to its end.
type teeReadCloser struct {
	rc  io.ReadCloser
	mu  sync.Mutex
	tee *capBuffer
	eof bool
}

func (t *teeReadCloser) Read(b []byte) (int, error) {
	n, err := t.rc.Read(b)
	t.mu.Lock()
	if t.tee != nil {
		if n > 0 {
			t.tee.Write(b[:n])
		}
		if err == io.EOF {
			t.eof = true
		}
	}
	t.mu.Unlock()
	return n, err
}

// take returns the copy if the whole body was read, else nil; either way
// the tee stops copying.
func (t *teeReadCloser) take() *capBuffer {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.tee
	t.tee = nil
	if !t.eof {
		return nil // still shared with the transport's writer: let it go
	}
	return c
}

func (t *teeReadCloser) Close() error { return t.rc.Close() }
