package proxy

import (
	"bytes"
)

// A strict parser for HTTP/1.1 message heads (RFC 9112), for the fast
// path. It accepts only the plain, common form and says "not mine" for
// everything else, which then goes to net/http: the fast path never has to
// guess.

const maxHeadLines = 100

// head is one parsed message head; the slices point into buf.
type head struct {
	buf   []byte     // the head, request or status line to the final CRLF CRLF
	lines [][3]int32 // header field lines: start, colon, end (without CRLF)
	line0 int        // end of the start line (without CRLF)

	// request
	method, target []byte
	// response
	status int
	http10 bool // an HTTP/1.0 response

	clen      int64 // Content-Length, -1 when absent
	chunked   bool  // Transfer-Encoding ends in chunked
	te        bool  // any Transfer-Encoding
	connClose bool  // Connection: close
	hosts     int
	upgrade   bool
	expect    bool
	conn      [][]byte // Connection tokens (lower-case names to drop)
	encoding  []byte   // Content-Encoding
	ctype     []byte   // Content-Type
	requestID []byte   // X-Request-Id
	trailers  bool     // Te: trailers asked
}

func (h *head) reset(buf []byte) {
	lines := h.lines[:0]
	conn := h.conn[:0]
	*h = head{buf: buf, lines: lines, conn: conn, clen: -1}
}

// tchars are the token characters of RFC 9110 §5.6.2; a table, because
// every byte of every field name is looked up.
var tchars = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		}
		switch c {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			t[c] = true
		}
	}
	return t
}()

func isTchar(c byte) bool { return tchars[c] }

// splitLines records the header field lines after the start line; false
// if a line is not "name: value" with a token name and a clean value.
func (h *head) splitLines() bool {
	b := h.buf
	i := bytes.Index(b, crlf)
	if i <= 0 {
		return false
	}
	h.line0 = i
	pos := i + 2
	for {
		// A bare LF ends nothing: it fails here as it would in fieldColon.
		j := bytes.IndexByte(b[pos:], '\n') - 1
		if j < 0 || b[pos+j] != '\r' {
			return false
		}
		if j == 0 {
			return pos+2 == len(b)
		}
		line := b[pos : pos+j]
		colon := fieldColon(line)
		if len(h.lines) == maxHeadLines || colon < 0 {
			return false
		}
		h.lines = append(h.lines, [3]int32{int32(pos), int32(pos + colon), int32(pos + j)})
		pos += j + 2
	}
}

var crlf = []byte("\r\n")

// validField checks "token: value" with no control characters but HTAB in
// the value and no whitespace before the colon (obs-fold and friends are
// not for the fast path).
func validField(line []byte) bool { return fieldColon(line) > 0 }

// fieldColon is validField returning the colon's index, or -1.
func fieldColon(line []byte) int {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return -1
	}
	for _, c := range line[:colon] {
		if !tchars[c] {
			return -1
		}
	}
	for _, c := range line[colon+1:] {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return -1
		}
	}
	return colon
}

// field returns the name and the trimmed value of header line i.
func (h *head) field(i int) (name, value []byte) {
	l := h.lines[i]
	return h.buf[l[0]:l[1]], trimOWS(h.buf[l[1]+1 : l[2]])
}

// name returns the name of header line i.
func (h *head) name(i int) []byte {
	l := h.lines[i]
	return h.buf[l[0]:l[1]]
}

// trimOWS trims spaces and tabs (bytes.Trim builds a set per call).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// classifyFields reads the fields that decide framing and forwarding.
func (h *head) classifyFields() bool {
	for i := range h.lines {
		name, v := h.field(i)
		switch {
		case eqFold(name, "Content-Length"):
			if h.clen >= 0 || len(v) == 0 || len(v) > 15 {
				return false // repeated or absurd: net/http decides
			}
			var n int64
			for _, c := range v {
				if c < '0' || c > '9' {
					return false
				}
				n = n*10 + int64(c-'0')
			}
			h.clen = n
		case eqFold(name, "Transfer-Encoding"):
			h.te = true
			last := v
			if k := bytes.LastIndexByte(v, ','); k >= 0 {
				last = trimOWS(v[k+1:])
			}
			h.chunked = eqFold(last, "chunked")
		case eqFold(name, "Connection"):
			for len(v) > 0 {
				var tok []byte
				if k := bytes.IndexByte(v, ','); k >= 0 {
					tok, v = v[:k], v[k+1:]
				} else {
					tok, v = v, nil
				}
				tok = trimOWS(tok)
				switch {
				case len(tok) == 0, eqFold(tok, "keep-alive"):
				case eqFold(tok, "close"):
					h.connClose = true
				default:
					h.conn = append(h.conn, tok)
				}
			}
		case eqFold(name, "Host"):
			h.hosts++
		case eqFold(name, "Upgrade"):
			h.upgrade = true
		case eqFold(name, "Expect"):
			h.expect = true
		case eqFold(name, "Te"):
			h.trailers = h.trailers || tokenIn(v, "trailers")
		case eqFold(name, "Content-Encoding"):
			h.encoding = v
		case eqFold(name, "Content-Type"):
			h.ctype = v
		case eqFold(name, "X-Request-Id"):
			h.requestID = v
		}
	}
	return true
}

func tokenIn(v []byte, tok string) bool {
	for _, t := range bytes.Split(v, []byte(",")) {
		if eqFold(trimOWS(t), tok) {
			return true
		}
	}
	return false
}

func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// hop reports whether header line i is not forwarded: the fixed
// connection-specific fields and those named in Connection. Trailer and
// Transfer-Encoding are kept on responses, whose chunked framing is relayed
// as it is.
func (h *head) hop(name []byte, response bool) bool {
	switch {
	case eqFold(name, "Connection"), eqFold(name, "Proxy-Connection"), eqFold(name, "Keep-Alive"),
		eqFold(name, "Upgrade"), eqFold(name, "Te"), eqFold(name, "Proxy-Authorization"),
		eqFold(name, "Proxy-Authenticate"):
		return true
	case !response && (eqFold(name, "Transfer-Encoding") || eqFold(name, "Trailer")):
		return true
	}
	for _, t := range h.conn {
		if bytes.EqualFold(name, t) {
			return true
		}
	}
	return false
}

// parseRequest parses a request head; false means "hand it to net/http":
// anything but origin-form HTTP/1.1 with one Host, no Transfer-Encoding,
// no Upgrade, no Expect and a path without percent-encoding.
func (h *head) parseRequest(buf []byte) bool {
	h.reset(buf)
	if !h.splitLines() {
		return false
	}
	l := buf[:h.line0]
	sp := bytes.IndexByte(l, ' ')
	if sp <= 0 || sp > 16 {
		return false
	}
	h.method = l[:sp]
	for _, c := range h.method {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	rest := l[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 || string(rest[sp+1:]) != "HTTP/1.1" {
		return false
	}
	h.target = rest[:sp]
	if h.target[0] != '/' {
		return false
	}
	path := h.target
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	for _, c := range h.target {
		if c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	if bytes.IndexByte(path, '%') >= 0 {
		return false // the route must be matched on the decoded path: net/http does that
	}
	if !h.classifyFields() {
		return false
	}
	return h.hosts == 1 && !h.te && !h.upgrade && !h.expect
}

// parseResponse parses a response status line and head.
func (h *head) parseResponse(buf []byte) bool {
	h.reset(buf)
	if !h.splitLines() {
		return false
	}
	l := buf[:h.line0]
	if len(l) < 12 || string(l[:7]) != "HTTP/1." || (l[7] != '1' && l[7] != '0') || l[8] != ' ' || (len(l) > 12 && l[12] != ' ') {
		return false
	}
	h.http10 = l[7] == '0'
	for _, c := range l[9:12] {
		if c < '0' || c > '9' {
			return false
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 100 {
		return false
	}
	return h.classifyFields()
}
