package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// macPool hands out HMAC-SHA256 instances keyed once, so the hot path does
// not rebuild the HMAC state per call.
type macPool struct{ p sync.Pool }

func newMACPool(key []byte) *macPool {
	k := append([]byte(nil), key...)
	return &macPool{p: sync.Pool{New: func() any { return hmac.New(sha256.New, k) }}}
}

// sum16 writes the first 16 bytes of HMAC(key, in) to dst.
func (m *macPool) sum16(dst, in []byte) {
	h := m.p.Get().(hash.Hash)
	h.Reset()
	h.Write(in)
	var out [32]byte
	copy(dst, h.Sum(out[:0])[:16])
	m.p.Put(h)
}
