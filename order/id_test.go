package order

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var idForm = regexp.MustCompile(`^ord_[a-z2-7]{26}$`)

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id := NewID()
		if !idForm.MatchString(id) {
			t.Fatalf("id %q has the wrong form", id)
		}
		if seen[id] {
			t.Fatalf("id %q drawn twice", id)
		}
		seen[id] = true
		raw, err := ParseID(id)
		if err != nil {
			t.Fatalf("ParseID(%q): %v", id, err)
		}
		if IDPrefix+idEncoding.EncodeToString(raw[:]) != id {
			t.Fatalf("ParseID(%q) does not round-trip", id)
		}
	}
	// 128 random bits: over 10000 ids every bit position takes both values.
	var or, and [16]byte
	for i := range and {
		and[i] = 0xff
	}
	for id := range seen {
		raw, _ := ParseID(id)
		for i := range raw {
			or[i] |= raw[i]
			and[i] &= raw[i]
		}
	}
	if or != [16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff} || and != [16]byte{} {
		t.Fatalf("some bits never vary: or %x and %x", or, and)
	}
}

func TestParseIDRefuses(t *testing.T) {
	good := "ord_3p5ynbrxrhn4kxkyqzbo2wjkwe"
	if _, err := ParseID(good); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		"",
		"ord_",
		strings.TrimPrefix(good, "ord_"),
		"ORD_" + good[4:],
		strings.ToUpper(good),
		"sub_" + good[4:],
		good[:len(good)-1],
		good + "a",
		good + "======",
		good[:len(good)-1] + "f",    // non-zero padding bits: a second spelling of some id
		good[:10] + "0" + good[11:], // 0, 1, 8, 9 are not base32
		good[:10] + "1" + good[11:],
		good[:10] + "8" + good[11:],
		good[:10] + " " + good[11:],
		" " + good[:len(good)-1],
	} {
		if _, err := ParseID(s); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q) = %v, want ErrBadID", s, err)
		}
		if IsID(s) {
			t.Errorf("IsID(%q)", s)
		}
	}
}

func TestIsMattermostID(t *testing.T) {
	for _, s := range []string{alice, bob, townSquare, "abcdefghijklmnopqrstuvwxyz", "01234567890123456789012345"} {
		if !IsMattermostID(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", alice[:25], alice + "a", strings.ToUpper(alice), alice[:25] + "-", alice[:25] + "é"[:1], "@" + alice[:25]} {
		if IsMattermostID(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
