package boltstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/store"
)

// These tests look at what the contract suite cannot: that no chunk of an
// upload that failed, was canceled, lost a race or was cut off by Close
// stays in the file.

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func randFile() store.File {
	var f store.File
	rand.Read(f.Ref[:])
	rand.Read(f.Tag[:])
	rand.Read(f.KeyRecordID[:])
	f.Hour = 480000
	return f
}

// countChunks returns the number of chunks and of listed uploads in db.
func countChunks(t *testing.T, db *bolt.DB) (chunks, uploads int) {
	t.Helper()
	err := db.View(func(tx *bolt.Tx) error {
		chunks = tx.Bucket(bktFileChunks).Stats().KeyN
		uploads = tx.Bucket(bktFileUploads).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return chunks, uploads
}

func wantChunks(t *testing.T, db *bolt.DB, chunks, uploads int, when string) {
	t.Helper()
	c, u := countChunks(t, db)
	if c != chunks || u != uploads {
		t.Fatalf("%s: %d chunks and %d uploads listed, want %d and %d", when, c, u, chunks, uploads)
	}
}

// gatedReader reads r and, once it has returned at bytes, closes reached
// and waits for release before going on.
type gatedReader struct {
	r       io.Reader
	at, n   int64
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGatedReader(content []byte, at int64) *gatedReader {
	return &gatedReader{r: bytes.NewReader(content), at: at, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.n >= g.at {
		g.once.Do(func() {
			close(g.reached)
			<-g.release
		})
	} else if rest := g.at - g.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := g.r.Read(p)
	g.n += int64(n)
	return n, err
}

type failAfter struct {
	r     io.Reader
	after int64
}

var errBoom = errors.New("boom")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errBoom
	}
	if int64(len(p)) > f.after {
		p = p[:f.after]
	}
	n, err := f.r.Read(p)
	f.after -= int64(n)
	return n, err
}

func TestFailedUploadsLeaveNoChunks(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	big := randBytes(10*store.FileChunk + 3) // more than two groups of chunks

	// The reader fails after the first group has committed.
	if _, _, err := s.PutFile(ctx, randFile(), math.MaxInt64, &failAfter{bytes.NewReader(big), 6*store.FileChunk + 1}); !errors.Is(err, errBoom) {
		t.Fatalf("failing reader: %v", err)
	}
	wantChunks(t, s.db, 0, 0, "after a failed read")

	// Too large, found out after two groups.
	if _, _, err := s.PutFile(ctx, randFile(), 9*store.FileChunk, bytes.NewReader(big)); !errors.Is(err, store.ErrFileTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	wantChunks(t, s.db, 0, 0, "after a content over the limit")

	// Canceled midway, between groups.
	cctx, cancel := context.WithCancel(ctx)
	g := newGatedReader(big, 5*store.FileChunk)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.PutFile(cctx, randFile(), math.MaxInt64, g)
		done <- err
	}()
	<-g.reached
	if c, u := countChunks(t, s.db); c == 0 || u != 1 {
		t.Fatalf("midway: %d chunks, %d uploads listed; the test wants the first group committed", c, u)
	}
	cancel()
	close(g.release)
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	wantChunks(t, s.db, 0, 0, "after a canceled upload")

	// Losing a race, found out by a middle group (10 chunks) and by the
	// final transaction (6 chunks and a bit).
	stored := 0
	for _, size := range []int{len(big), 6*store.FileChunk + 1} {
		f := randFile()
		g := newGatedReader(big[:size], 5*store.FileChunk)
		type res struct {
			n      int64
			stored bool
			err    error
		}
		done := make(chan res, 1)
		go func() {
			n, stored, err := s.PutFile(ctx, f, math.MaxInt64, g)
			done <- res{n, stored, err}
		}()
		<-g.reached
		winner := randBytes(store.FileChunk + 1)
		if _, ok, err := s.PutFile(ctx, f, math.MaxInt64, bytes.NewReader(winner)); err != nil || !ok {
			t.Fatalf("winning PutFile: stored %v, %v", ok, err)
		}
		stored += 2
		close(g.release)
		if r := <-done; r.err != nil || r.stored || r.n != 0 {
			t.Fatalf("losing PutFile of %d bytes = %d, stored %v, %v", size, r.n, r.stored, r.err)
		}
		wantChunks(t, s.db, stored, 0, "after a lost race")
		_, rc, err := s.OpenFile(ctx, f.Ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, winner) {
			t.Fatalf("after a lost race: %v, or the winner's content differs", err)
		}
	}

	// And what succeeds leaves exactly its chunks.
	for _, size := range []int{0, 1, store.FileChunk, 4 * store.FileChunk, 4*store.FileChunk + 1} {
		if _, ok, err := s.PutFile(ctx, randFile(), math.MaxInt64, bytes.NewReader(big[:size])); err != nil || !ok {
			t.Fatalf("PutFile of %d bytes: stored %v, %v", size, ok, err)
		}
		stored += (size + store.FileChunk - 1) / store.FileChunk
	}
	wantChunks(t, s.db, stored, 0, "after successful uploads")
}

// TestOpenSweepsCutOffUploads: an upload that Close cut off between groups
// leaves its chunks (its cleanup cannot run on a closed file); the next Open
// deletes them and nothing else.
func TestOpenSweepsCutOffUploads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keep := randFile()
	keepContent := randBytes(2*store.FileChunk + store.FileChunk/2)
	if _, ok, err := s.PutFile(t.Context(), keep, math.MaxInt64, bytes.NewReader(keepContent)); err != nil || !ok {
		t.Fatalf("PutFile: stored %v, %v", ok, err)
	}
	cut := randFile()
	g := newGatedReader(randBytes(7*store.FileChunk), 5*store.FileChunk)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.PutFile(t.Context(), cut, math.MaxInt64, g)
		done <- err
	}()
	<-g.reached
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	close(g.release)
	if err := <-done; err == nil {
		t.Fatal("an upload cut off by Close succeeded")
	}

	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantChunks(t, db, 3+chunksPerTx, 1, "after Close cut an upload off")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantChunks(t, s.db, 3, 0, "after reopening")
	if ok, err := s.HasFile(t.Context(), cut.Ref); err != nil || ok {
		t.Fatalf("HasFile(cut off upload) = %v, %v", ok, err)
	}
	_, rc, err := s.OpenFile(t.Context(), keep.Ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, keepContent) {
		t.Fatalf("the stored file after the sweep: %v, or its content differs", err)
	}
	// The cut-off ref is free.
	content := randBytes(store.FileChunk + 2)
	if _, ok, err := s.PutFile(t.Context(), cut, math.MaxInt64, bytes.NewReader(content)); err != nil || !ok {
		t.Fatalf("PutFile after the sweep: stored %v, %v", ok, err)
	}
	wantChunks(t, s.db, 5, 0, "after a new upload")
}
