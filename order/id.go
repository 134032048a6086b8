package order

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
)

// IDPrefix starts every order id.
const IDPrefix = "ord_"

// ErrBadID is wrapped by [ParseID] for anything that is not an order id.
var ErrBadID = errors.New("not an order id (ord_ and 26 lowercase base32 characters)")

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// idLen is the length of an order id: the prefix and 128 bits in base32.
var idLen = len(IDPrefix) + idEncoding.EncodedLen(16)

// NewID returns a fresh order id: "ord_" and 128 random bits from crypto/rand
// in lowercase base32 without padding. Ids cannot be guessed, so knowing one
// is not a way to find another order.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on supported platforms (Go ≥ 1.24 aborts
		// the program itself); never fall back to a guessable id.
		panic("order: crypto/rand: " + err.Error())
	}
	return IDPrefix + idEncoding.EncodeToString(b[:])
}

// ParseID checks that s is an order id in its one canonical spelling and
// returns its 128 bits. The error wraps [ErrBadID] and does not quote s.
func ParseID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != idLen || !strings.HasPrefix(s, IDPrefix) {
		return id, ErrBadID
	}
	enc := s[len(IDPrefix):]
	n, err := idEncoding.Decode(id[:], []byte(enc))
	// Re-encoding refuses non-zero trailing bits, so each id has one spelling.
	if err != nil || n != len(id) || idEncoding.EncodeToString(id[:]) != enc {
		return [16]byte{}, ErrBadID
	}
	return id, nil
}

// IsID reports whether s is an order id.
func IsID(s string) bool {
	_, err := ParseID(s)
	return err == nil
}
