package proxy

import (
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// isUpgrade reports whether a request asks to switch protocols
// (Connection: Upgrade with an Upgrade field), as the websocket does.
func isUpgrade(h http.Header) bool {
	up, ok := h["Upgrade"]
	return ok && len(up) > 0 && up[0] != "" && tokenListContains(h["Connection"], "upgrade")
}

// serveUpgrade forwards an upgrade request. On 101 it relays the response
// and then copies bytes both ways between the client's hijacked connection
// and the upstream one until either side closes: no frame is parsed, so
// what one side sends the other receives byte for byte. Any other answer
// is relayed as an ordinary response.
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	out := p.outRequest(r)
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = r.Header["Upgrade"]
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		if r.Context().Err() == nil {
			p.log.Warn("proxy: upstream upgrade failed", "error_class", errClass(err))
			w.WriteHeader(http.StatusBadGateway)
		}
		return
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer resp.Body.Close()
		copyHeader(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		if copyBody(w, resp.Body, nil, true) != nil {
			panic(http.ErrAbortHandler)
		}
		return
	}
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		p.log.Error("proxy: transport does not support protocol switches")
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer back.Close()
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.log.Error("proxy: cannot take over the client connection", "error_class", errClass(err))
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Time{}) // the server's read/write timeouts are for requests, not tunnels
	untrack := p.track(conn, back)
	defer untrack()

	h := make(http.Header, len(resp.Header)+2)
	copyHeader(h, resp.Header)
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = resp.Header["Upgrade"]
	if _, err := brw.WriteString("HTTP/1.1 " + resp.Status + "\r\n"); err != nil {
		return
	}
	if err := h.Write(brw); err != nil {
		return
	}
	if _, err := brw.WriteString("\r\n"); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}

	done := make(chan struct{}, 2)
	go func() { // client → upstream, starting with what the server had buffered
		if n := brw.Reader.Buffered(); n > 0 {
			b, _ := brw.Reader.Peek(n)
			if _, err := back.Write(b); err != nil {
				done <- struct{}{}
				return
			}
		}
		tunnel(back, conn)
		done <- struct{}{}
	}()
	go func() { // upstream → client
		tunnel(conn, back)
		done <- struct{}{}
	}()
	<-done
	// One side is gone: closing both ends the other copy.
	conn.Close()
	back.Close()
	<-done
}

// tunnel copies src to dst through a pooled buffer until either fails.
func tunnel(dst io.Writer, src io.Reader) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// tunnels are the open protocol-switched connections, closed by Close.
type tunnels struct {
	mu sync.Mutex
	m  map[net.Conn]io.Closer
}

func (p *Proxy) track(conn net.Conn, back io.Closer) func() {
	p.tun.mu.Lock()
	if p.tun.m == nil {
		p.tun.m = map[net.Conn]io.Closer{}
	}
	p.tun.m[conn] = back
	p.tun.mu.Unlock()
	return func() {
		p.tun.mu.Lock()
		delete(p.tun.m, conn)
		p.tun.mu.Unlock()
	}
}

// closeTunnels ends every open websocket tunnel.
func (p *Proxy) closeTunnels() {
	p.tun.mu.Lock()
	defer p.tun.mu.Unlock()
	for c, b := range p.tun.m {
		c.Close()
		b.Close()
	}
}
