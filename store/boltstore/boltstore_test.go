package boltstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Keyed(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		func(t *testing.T, path string) store.Store {
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
	))
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "store.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Fatalf("store file mode %v is readable by others", perm)
	}
}

func TestSecondOpenFailsWhileLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if s2, err := boltstore.Open(path); err == nil {
		s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Open took %v to fail", d)
	}
}

func TestRejectsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	if err := os.WriteFile(path, []byte("not a bolt file, definitely not"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := boltstore.Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a non-bbolt file succeeded")
	}
}

// BenchmarkPut writes batches of 100 records with ~400-byte blobs. The
// Serial case is one writer (one sync per Put); Parallel runs many writers
// (b.SetParallelism) whose Puts are group-committed.
func BenchmarkPut(b *testing.B) {
	b.Run("Serial", func(b *testing.B) { benchPut(b, 0) })
	for _, p := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("Parallel/writers=%d", p*runtime.GOMAXPROCS(0)), func(b *testing.B) { benchPut(b, p) })
	}
}

func benchPut(b *testing.B, parallelism int) {
	s, err := boltstore.Open(filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	b.SetBytes(100 * 400)
	b.ResetTimer()
	start := time.Now()
	if parallelism > 0 {
		b.SetParallelism(parallelism) // parallelism × GOMAXPROCS writers, like concurrent HTTP requests
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Put(ctx, newBatch(100)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			if _, err := s.Put(ctx, newBatch(100)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*100/time.Since(start).Seconds(), "records/s")
}

func newBatch(n int) *store.Batch {
	var tag crypto.Tag
	var kr crypto.KeyRecordID
	rand.Read(tag[:])
	rand.Read(kr[:])
	b := &store.Batch{
		KeyRecords: []store.KeyRecord{{ID: kr, Tag: tag, Blob: make([]byte, 200)}},
	}
	blobs := make([]byte, n*400)
	rand.Read(blobs)
	for i := 0; i < n; i++ {
		r := store.Record{Tag: tag, Hour: 480000 + int64(i%24), KeyRecordID: kr, Blob: blobs[i*400 : (i+1)*400]}
		rand.Read(r.Ref[:])
		b.Records = append(b.Records, r)
	}
	return b
}
