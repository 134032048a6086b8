// Package privacyscan searches bytes that sealgate wrote (store files, spool,
// Redis dumps, logs, metrics) for canary strings that must never appear
// there in clear. Tests and the demo use it to show invariant 1 holds.
package privacyscan

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Hit is one occurrence of a canary.
type Hit struct {
	Where  string // file path or a name for an in-memory source
	Offset int64
	Canary string
}

func (h Hit) String() string { return fmt.Sprintf("%s@%d: %q", h.Where, h.Offset, h.Canary) }

// Bytes returns every occurrence of any canary in b.
func Bytes(where string, b []byte, canaries []string) []Hit {
	var hits []Hit
	for _, c := range canaries {
		if c == "" {
			continue
		}
		needle := []byte(c)
		off := 0
		for {
			i := bytes.Index(b[off:], needle)
			if i < 0 {
				break
			}
			hits = append(hits, Hit{Where: where, Offset: int64(off + i), Canary: c})
			off += i + 1
		}
	}
	return hits
}

// Dir scans every regular file under dir and returns the hits and the number
// of bytes scanned.
func Dir(dir string, canaries []string) ([]Hit, int64, error) {
	var hits []Hit
	var scanned int64
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
		hits = append(hits, Bytes(path, b, canaries)...)
		return nil
	})
	if err != nil {
		return nil, scanned, fmt.Errorf("privacy scan %s: %w", dir, err)
	}
	return hits, scanned, nil
}
