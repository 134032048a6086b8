package pgstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"math"
	"sync"
	"testing"

	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/pgstore"
	"github.com/sealgate/sealgate/store/storetest"
)

const chunk = 1 << 20

// TestFiles runs the files contract against its own private cluster, each
// subtest in its own database, and checks what the contract cannot see:
// that no chunk of a failed, canceled or losing upload stays, and what
// Open's sweep removes and keeps.
func TestFiles(t *testing.T) {
	cluster := testpg.Start(t)
	t.Run("Contract", func(t *testing.T) {
		storetest.RunFiles(t, storetest.Keyed(
			func(t *testing.T) string { return testpg.CreateDB(t, cluster) },
			func(t *testing.T, dsn string) store.Store { return open(t, dsn) },
		))
	})
	t.Run("FailedUploadsLeaveNoChunks", func(t *testing.T) { testFilesNoChunksLeft(t, testpg.CreateDB(t, cluster)) })
	t.Run("OpenSweepsAbandonedUploads", func(t *testing.T) { testFilesSweep(t, testpg.CreateDB(t, cluster)) })
}

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

func wantChunkRows(t *testing.T, dsn string, want int, when string) {
	t.Helper()
	if got := queryInts(t, dsn, `SELECT count(*) FROM file_chunks`)[0]; got != want {
		t.Fatalf("%s: %d chunk rows, want %d", when, got, want)
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

var errBoom = errors.New("boom")

type failAfter struct {
	r     io.Reader
	after int64
}

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

type putResult struct {
	n      int64
	stored bool
	err    error
}

func goPut(ctx context.Context, s *pgstore.Store, f store.File, r io.Reader) chan putResult {
	done := make(chan putResult, 1)
	go func() {
		n, stored, err := s.PutFile(ctx, f, math.MaxInt64, r)
		done <- putResult{n, stored, err}
	}()
	return done
}

func testFilesNoChunksLeft(t *testing.T, dsn string) {
	s := open(t, dsn)
	defer s.Close()
	ctx := t.Context()
	big := randBytes(4*chunk + 3)

	if _, _, err := s.PutFile(ctx, randFile(), math.MaxInt64, &failAfter{bytes.NewReader(big), 2*chunk + chunk/2}); !errors.Is(err, errBoom) {
		t.Fatalf("failing reader: %v", err)
	}
	wantChunkRows(t, dsn, 0, "after a failed read")

	if _, _, err := s.PutFile(ctx, randFile(), 3*chunk, bytes.NewReader(big)); !errors.Is(err, store.ErrFileTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	wantChunkRows(t, dsn, 0, "after a content over the limit")

	cctx, cancel := context.WithCancel(ctx)
	g := newGatedReader(big, 2*chunk)
	done := goPut(cctx, s, randFile(), g)
	<-g.reached
	wantChunkRows(t, dsn, 2, "midway") // the test wants chunks to clean up
	cancel()
	close(g.release)
	if r := <-done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("canceled: %v", r.err)
	}
	wantChunkRows(t, dsn, 0, "after a canceled upload")

	// Losing a race, found out by a chunk's insert (the gate is midway)
	// and by the row's (the gate is at the end).
	stored := 0
	for _, at := range []int64{2 * chunk, int64(len(big))} {
		f := randFile()
		g := newGatedReader(big, at)
		done := goPut(ctx, s, f, g)
		<-g.reached
		winner := randBytes(chunk + 1)
		if _, ok, err := s.PutFile(ctx, f, math.MaxInt64, bytes.NewReader(winner)); err != nil || !ok {
			t.Fatalf("winning PutFile: stored %v, %v", ok, err)
		}
		stored += 2
		close(g.release)
		if r := <-done; r.err != nil || r.stored || r.n != 0 {
			t.Fatalf("losing PutFile gated at %d = %d, stored %v, %v", at, r.n, r.stored, r.err)
		}
		wantChunkRows(t, dsn, stored, "after a lost race")
		_, rc, err := s.OpenFile(ctx, f.Ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, winner) {
			t.Fatalf("after a lost race: %v, or the winner's content differs", err)
		}
	}

	for _, size := range []int{0, 1, chunk, 4*chunk + 1} {
		if _, ok, err := s.PutFile(ctx, randFile(), math.MaxInt64, bytes.NewReader(big[:size])); err != nil || !ok {
			t.Fatalf("PutFile of %d bytes: stored %v, %v", size, ok, err)
		}
		stored += (size + chunk - 1) / chunk
	}
	wantChunkRows(t, dsn, stored, "after successful uploads")
}

// testFilesSweep: an upload cut off by Close leaves its chunks (its cleanup
// cannot run on a closed pool). Open keeps them while they may be an
// upload still running on another gateway, and deletes them once they are
// a day old; it never deletes the chunks of a stored file, however old.
func testFilesSweep(t *testing.T, dsn string) {
	s := open(t, dsn)
	keep := randFile()
	keepContent := randBytes(2*chunk + chunk/2)
	if _, ok, err := s.PutFile(t.Context(), keep, math.MaxInt64, bytes.NewReader(keepContent)); err != nil || !ok {
		t.Fatalf("PutFile: stored %v, %v", ok, err)
	}
	cut := randFile()
	g := newGatedReader(randBytes(4*chunk), 2*chunk)
	done := goPut(t.Context(), s, cut, g)
	<-g.reached
	s.Close()
	close(g.release)
	if r := <-done; r.err == nil {
		t.Fatal("an upload cut off by Close succeeded")
	}
	wantChunkRows(t, dsn, 3+2, "after Close cut an upload off")

	open(t, dsn).Close()
	wantChunkRows(t, dsn, 3+2, "after reopening within the day")

	execSQL(t, dsn, `UPDATE file_chunks SET created_at = now() - interval '25 hours'`)
	s = open(t, dsn)
	defer s.Close()
	wantChunkRows(t, dsn, 3, "after reopening a day later")
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
	content := randBytes(chunk + 2)
	if _, ok, err := s.PutFile(t.Context(), cut, math.MaxInt64, bytes.NewReader(content)); err != nil || !ok {
		t.Fatalf("PutFile after the sweep: stored %v, %v", ok, err)
	}
	wantChunkRows(t, dsn, 5, "after a new upload")
}
