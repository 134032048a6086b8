package privacyscan

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanFindsEveryOccurrence(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sub"), 0o700)
	os.WriteFile(filepath.Join(dir, "a"), []byte("xxCANARY-1yyCANARY-1"), 0o600)
	os.WriteFile(filepath.Join(dir, "sub", "b"), []byte("nothing here"), 0o600)
	os.WriteFile(filepath.Join(dir, "sub", "c"), []byte("..CANARY-2"), 0o600)
	hits, n, err := Dir(dir, []string{"CANARY-1", "CANARY-2", "CANARY-3"})
	if err != nil {
		t.Fatal(err)
	}
	if n != 20+12+10 {
		t.Fatalf("scanned %d bytes", n)
	}
	if len(hits) != 3 || hits[0].Offset != 2 || hits[1].Offset != 12 || hits[2].Canary != "CANARY-2" {
		t.Fatalf("hits %v", hits)
	}
}

// TestScanFindsEncodedCanaries: a canary that went through hex, base64
// (after any prefix) or UTF-16 is still found; random bytes are not.
func TestScanFindsEncodedCanaries(t *testing.T) {
	const c = "CANARY-MSG-abc123-4711"
	for name, data := range map[string][]byte{
		"hex":         []byte("id=" + hex.EncodeToString([]byte("x"+c+"y"))),
		"HEX":         []byte(strings.ToUpper(hex.EncodeToString([]byte(c)))),
		"base64 +0":   []byte(base64.StdEncoding.EncodeToString([]byte(c + "tail"))),
		"base64 +1":   []byte(base64.StdEncoding.EncodeToString([]byte("a" + c))),
		"base64 +2":   []byte(base64.StdEncoding.EncodeToString([]byte("ab" + c + "!"))),
		"base64url":   []byte(base64.URLEncoding.EncodeToString([]byte("\xff\xfe" + c))),
		"json in b64": []byte(`{"blob":"` + base64.StdEncoding.EncodeToString([]byte(`{"message":"`+c+`"}`)) + `"}`),
		"utf16": func() []byte {
			var b []byte
			for _, r := range "\ufeff" + c {
				b = append(b, byte(r), byte(r>>8))
			}
			return b
		}(),
	} {
		if hits := Bytes(name, data, []string{c}); len(hits) == 0 {
			t.Errorf("%s: not found in %q", name, data)
		}
	}
	noise := make([]byte, 1<<20)
	rand.Read(noise)
	enc := []byte(base64.StdEncoding.EncodeToString(noise) + hex.EncodeToString(noise))
	if hits := Bytes("random", append(noise, enc...), []string{c}); len(hits) != 0 {
		t.Errorf("random data: %v", hits)
	}
	// Short canaries are searched as written only.
	if got := len(Forms("CANARY-1")); got != 1 {
		t.Errorf("%d forms of a short canary", got)
	}
}
