// Package privacyscan searches bytes that sealgate wrote (store files, spool,
// Redis dumps, logs, metrics) for canary strings that must never appear
// there in clear. Tests and the demo use it to show invariant 1 holds.
package privacyscan

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Hit is one occurrence of a canary.
type Hit struct {
	Where  string // file path or a name for an in-memory source
	Offset int64
	Canary string
}

func (h Hit) String() string { return fmt.Sprintf("%s@%d: %q", h.Where, h.Offset, h.Canary) }

// Bytes returns every occurrence of any canary in b: as written, and in
// the encodings that would carry it unnoticed through a careless code path
// (hex, base64 in any alignment, UTF-16). A hit's Canary names the
// encoding, e.g. "base64(CANARY-…)".
func Bytes(where string, b []byte, canaries []string) []Hit {
	return NewScanner(canaries).Bytes(where, b)
}

// Scanner searches many sources for one set of canaries, their forms
// computed once.
type Scanner struct{ forms []Form }

// NewScanner returns a Scanner for canaries.
func NewScanner(canaries []string) *Scanner { return &Scanner{forms: allForms(canaries)} }

// Bytes is the package's Bytes for the Scanner's canaries.
func (s *Scanner) Bytes(where string, b []byte) []Hit { return scan(where, b, s.forms) }

func allForms(canaries []string) []Form {
	var fs []Form
	for _, c := range canaries {
		fs = append(fs, Forms(c)...)
	}
	return fs
}

func scan(where string, b []byte, forms []Form) []Hit {
	var hits []Hit
	for _, f := range forms {
		needle := []byte(f.Text)
		off := 0
		for {
			i := bytes.Index(b[off:], needle)
			if i < 0 {
				break
			}
			hits = append(hits, Hit{Where: where, Offset: int64(off + i), Canary: f.Name})
			off += i + 1
		}
	}
	return hits
}

// Form is one way a canary can appear in bytes.
type Form struct {
	Name string // "CANARY", "hex(CANARY)", "base64(CANARY)", …
	Text string
}

// minEncoded is the shortest canary searched in encoded forms: a shorter one
// would match random ciphertext too often.
const minEncoded = 12

// Forms returns the forms of a canary that Bytes searches. For base64 it
// takes the canary from each of its first three bytes, cut to whole 3-byte
// groups: whatever precedes the canary in the encoded data, one of them
// starts on a group boundary and appears verbatim.
func Forms(c string) []Form {
	if c == "" {
		return nil
	}
	out := []Form{{c, c}}
	if len(c) < minEncoded {
		return out
	}
	out = append(out,
		Form{"hex(" + c + ")", hex.EncodeToString([]byte(c))},
		Form{"HEX(" + c + ")", strings.ToUpper(hex.EncodeToString([]byte(c)))},
	)
	for s := range 3 {
		sub := c[s:]
		sub = sub[:len(sub)/3*3]
		out = append(out,
			Form{"base64(" + c + ")", base64.StdEncoding.EncodeToString([]byte(sub))},
			Form{"base64url(" + c + ")", base64.URLEncoding.EncodeToString([]byte(sub))},
		)
	}
	u16 := make([]byte, 0, 2*len(c))
	for _, r := range c {
		if r > 0xff {
			return dedupe(out) // not Latin-1: no simple UTF-16 form
		}
		u16 = append(u16, byte(r), 0)
	}
	return dedupe(append(out, Form{"utf16(" + c + ")", string(u16)}))
}

func dedupe(fs []Form) []Form {
	seen := map[string]bool{}
	out := fs[:0]
	for _, f := range fs {
		if !seen[f.Text] {
			seen[f.Text] = true
			out = append(out, f)
		}
	}
	return out
}

// Dir scans every regular file under dir and returns the hits and the number
// of bytes scanned.
func Dir(dir string, canaries []string) ([]Hit, int64, error) {
	var hits []Hit
	var scanned int64
	forms := allForms(canaries)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned += int64(len(b))
		hits = append(hits, scan(path, b, forms)...)
		return nil
	})
	if err != nil {
		return nil, scanned, fmt.Errorf("privacy scan %s: %w", dir, err)
	}
	return hits, scanned, nil
}
