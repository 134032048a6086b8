package privacyscan

import (
	"os"
	"path/filepath"
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
