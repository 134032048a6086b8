package crypto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrMalformed is returned (wrapped) for any input that does not parse as the
// format it claims to be. Callers branch on it to tell corruption from
// authentication failures.
var ErrMalformed = errors.New("malformed")

// ErrAuth is returned (wrapped) when authenticated decryption or a signature
// check fails: wrong key, wrong employee or day, moved or modified bytes.
var ErrAuth = errors.New("authentication failed")

const dayLayout = "2006-01-02"

// Day is the UTC calendar day of an event, the unit of key rotation.
func Day(t time.Time) string { return t.UTC().Format(dayLayout) }

// ParseDay checks that s is a day in the "YYYY-MM-DD" form.
func ParseDay(s string) (time.Time, error) {
	t, err := time.Parse(dayLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("day %q: %w", s, ErrMalformed)
	}
	return t, nil
}

// appendLP appends a 2-byte length prefix and b. Lengths above 65535 are a
// programming error for the short identifiers this is used for.
func appendLP(dst []byte, b []byte) []byte {
	if len(b) > 0xffff {
		panic("crypto: length-prefixed field too long")
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

func appendLPString(dst []byte, s string) []byte {
	if len(s) > 0xffff {
		panic("crypto: length-prefixed field too long")
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// reader consumes a byte slice and remembers the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b) < n {
		r.err = ErrMalformed
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte1() byte {
	b := r.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) uint64() uint64 {
	b := r.take(8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func (r *reader) lp() []byte {
	b := r.take(2)
	if b == nil {
		return nil
	}
	return r.take(int(binary.BigEndian.Uint16(b)))
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
