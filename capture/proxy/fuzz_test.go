package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"testing"
)

// FuzzSpoolRecord feeds arbitrary bytes to the spool's record parser, as a
// damaged or hostile segment would: it must never panic or read past its
// input, a frame it accepts must re-encode to the same bytes, and no
// accepted frame may open under the spool's AEAD unless it was sealed
// there (the fuzzer cannot forge GCM tags).
func FuzzSpoolRecord(f *testing.F) {
	aead := testAEAD(f)
	s := &Spool{aead: aead}
	// A fixed nonce, so that the seed is the same in every fuzz worker.
	nonce := bytes.Repeat([]byte{9}, aead.NonceSize())
	good := appendRecord(nil, aead.Seal(bytes.Clone(nonce), nonce, []byte(`{"kind":"posted","post":{"id":"x"}}`), recordAD(1, segHeader)))
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), good...))
	flipped := bytes.Clone(good)
	flipped[recHeader+3] ^= 0x40
	f.Add(flipped)
	f.Add(binary.BigEndian.AppendUint32(nil, maxRecord+1))
	f.Add([]byte{0, 0, 0, 28, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		off := 0
		for off < len(data) {
			sealed, n, err := parseRecord(data[off:])
			if err != nil {
				if err != errShort && err != errCorrupt {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if n <= recHeader || off+n > len(data) || len(sealed) != n-recHeader {
				t.Fatalf("frame size %d at %d of %d", n, off, len(data))
			}
			if !bytes.Equal(appendRecord(nil, sealed), data[off:off+n]) {
				t.Fatal("accepted frame does not re-encode to its bytes")
			}
			ev, err := s.open(sealed, 1, int64(segHeader+off))
			if err == nil && !bytes.Equal(data[off:off+n], good) {
				t.Fatalf("a frame not sealed by the spool opened: %q", ev)
			}
			off += n
		}
	})
}

// FuzzPostHeader checks the capture's one-pass scan of a post against
// encoding/json: on JSON that json accepts as an object the scan must
// accept it and find the same plain-string ids; whatever it accepts must
// at least be balanced.
func FuzzPostHeader(f *testing.F) {
	for _, name := range []string{"posts-create-public", "posts-create-non-ascii", "posts-create-with-attachment-props", "posts-update"} {
		f.Add(loadExchange(f, name).Response.wire(f))
	}
	f.Add([]byte(`{"id":"a\"b","user_id":"u","channel_id":"c","x":[1,{"y":"]"}],"n":null}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"id":"x"} trailing`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := scanPostHeader(bytes.TrimSpace(b))
		var m map[string]any
		jerr := json.Unmarshal(b, &m)
		if jerr == nil && m != nil && !ok {
			t.Fatalf("valid JSON object refused: %q", b)
		}
		if !ok || jerr != nil {
			return
		}
		for k, got := range map[string]string{"id": h.ID, "user_id": h.UserID, "channel_id": h.ChannelID} {
			want, _ := m[k].(string)
			if got != "" && got != want {
				t.Fatalf("%s = %q, json says %q", k, got, want)
			}
			if got == "" && want != "" && !bytes.Contains(b, []byte(`\`)) && isASCII(b) {
				// json found a plain value the scan missed: only escapes excuse that
				if bytes.Count(b, []byte(`"`+k+`"`)) == 1 {
					t.Fatalf("%s missed: json says %q in %q", k, want, b)
				}
			}
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzParseHead checks the fast path's request head parser against
// net/http's, which is what Mattermost runs: whatever the fast path takes
// as a request, net/http must read as the same request (method, target,
// Host, body length), or the two could frame a connection differently
// (request smuggling). And the upstream head the fast path writes must
// parse too, with the same framing.
func FuzzParseHead(f *testing.F) {
	f.Add([]byte("POST /api/v4/posts HTTP/1.1\r\nHost: mm\r\nContent-Length: 2\r\nAuthorization: Bearer x\r\n\r\n"))
	f.Add([]byte("GET /api/v4/users/me?x=1 HTTP/1.1\r\nHost: mm\r\nConnection: close, X-A\r\nX-A: 1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"))
	f.Add([]byte("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost : a\r\n\r\n"))
	f.Add([]byte("GET /%61pi/v4/posts HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h head
		if !h.parseRequest(b) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("fast path takes what net/http refuses (%v): %q", err, b)
		}
		wantLen := h.clen
		if wantLen < 0 {
			wantLen = 0
		}
		if req.Method != string(h.method) || req.RequestURI != string(h.target) || req.ContentLength != wantLen || len(req.TransferEncoding) != 0 {
			t.Fatalf("net/http reads %s %s len %d te %v; fast path %s %s len %d: %q",
				req.Method, req.RequestURI, req.ContentLength, req.TransferEncoding, h.method, h.target, h.clen, b)
		}
		var out bytes.Buffer
		writeUpstreamHead(&out, &h, &clientConn{ip: "127.0.0.1"})
		up, err := http.ReadRequest(bufio.NewReader(&out))
		if err != nil {
			t.Fatalf("upstream head does not parse (%v): %q", err, out.Bytes())
		}
		if up.ContentLength != req.ContentLength || up.Host != req.Host || up.RequestURI != req.RequestURI || up.Header.Get("Connection") != "" {
			t.Fatalf("upstream head frames differently: %q", out.Bytes())
		}
		for k := range req.Header {
			if h.hop([]byte(k), false) && up.Header.Get(k) != "" {
				t.Fatalf("hop-by-hop %s forwarded: %q", k, out.Bytes())
			}
		}
		var rh head
		if rh.parseResponse(b) {
			t.Fatal("a request parsed as a response")
		}
	})
}
