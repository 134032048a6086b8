package storetest

// RunFiles is the contract suite for store.Files: sealed file contents,
// streamed in and out in chunks. It takes the same open function as Run;
// the stores it opens must implement store.Files.
//
// What it checks: byte-exact round trips of contents of 0 and 1 bytes and
// of sizes just under, at and over one and several 1 MiB chunks (the chunk
// of both stores), up to about 5 MiB of random bytes, with the row (tag,
// hour, key record id) read back as written and Size set by the store, not
// by the caller; reads of any size, Read(nil) and reads at EOF; HasFile
// false before and true after; ErrNotFound from OpenFile; a file sharing
// its ref with a record (its metadata record); a re-put of a stored ref
// storing nothing (stored == false, n == 0) and changing nothing, not even
// when its content and row differ; the limit (ErrFileTooLarge above it,
// storing nothing, exactly the limit allowed, a negative limit refused); a
// reader failing midway and a context canceled midway, before and after
// the first chunk, leaving nothing visible and the ref free for a later
// put; 8 goroutines racing to put one ref with different contents (exactly
// one stores, and its content and row are what is read); files surviving
// Close and reopen; that OpenFile and the first KiB of a 20 MiB file do not
// allocate anything like the file (this case runs alone, before the
// others, since it measures the process's allocations); readers closed
// early and readers interleaved; files not counting in Stats, in Records or
// HasRef; a canceled context failing, also for a reader already open;
// calls after Close failing, also reads of a reader opened before.
//
// What the contract cannot see from outside, that the chunks of a failed,
// canceled or losing upload do not stay behind, each store's own tests
// check.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math"
	mrand "math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// filesStore is what RunFiles needs from an opened store.
type filesStore interface {
	store.Store
	store.Files
}

// fileChunk is the chunk size of both stores. The suite does not depend on
// it, but sizes around it are where chunking mistakes show.
const fileChunk = 1 << 20

// RunFiles runs the files contract suite. See Run for what open must do.
func RunFiles(t *testing.T, open func(t *testing.T) store.Store) {
	// Not parallel: it measures allocations, which the other cases would
	// add to.
	t.Run("ReadsInChunks", func(t *testing.T) {
		testFilesReadsInChunks(t, openAs[filesStore](open, "store.Files"))
	})
	runSuite(t, open, "store.Files", []subtest[filesStore]{
		{"RoundTrip", testFilesRoundTrip},
		{"NotFound", testFilesNotFound},
		{"SharesRefWithRecord", testFilesSharedRef},
		{"RePutIsNoOp", testFilesRePut},
		{"Limit", testFilesLimit},
		{"ReaderFails", testFilesReaderFails},
		{"CanceledMidway", testFilesCanceledMidway},
		{"ConcurrentSameRef", testFilesConcurrent},
		{"SurvivesReopen", testFilesReopen},
		{"Readers", testFilesReaders},
		{"NotInStats", testFilesNotInStats},
		{"CanceledAndClosed", testFilesClosed},
	})
}

// ---- fixtures ----

func newFile() store.File {
	return store.File{
		Ref:         crypto.Ref(randID()),
		Tag:         crypto.Tag(randID()),
		Hour:        480000 + mrand.Int64N(1000),
		KeyRecordID: crypto.KeyRecordID(randID()),
	}
}

var errReader = errors.New("storetest: the content's reader failed")

// failingReader reads r and fails with errReader once it has returned
// after bytes.
type failingReader struct {
	r     io.Reader
	after int64
	n     int64
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n >= f.after {
		return 0, errReader
	}
	if rest := f.after - f.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

// cancelingReader reads r and calls cancel once it has returned after
// bytes, then goes on reading, as an uploader whose caller gave up would.
type cancelingReader struct {
	r      io.Reader
	after  int64
	n      int64
	cancel context.CancelFunc
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// genReader returns size pseudo-random bytes from seed, the same for the
// same seed, so that a large content need not be held to be compared.
func genReader(seed byte, size int64) io.Reader {
	return io.LimitReader(mrand.NewChaCha8([32]byte{seed}), size)
}

// ---- assertions ----

func mustPutFile(t *testing.T, s store.Files, f store.File, content []byte) {
	t.Helper()
	n, stored, err := s.PutFile(t.Context(), f, math.MaxInt64, bytes.NewReader(content))
	if err != nil {
		t.Fatalf("PutFile (%d bytes): %v", len(content), err)
	}
	if !stored || n != int64(len(content)) {
		t.Fatalf("PutFile (%d bytes) = %d, stored %v; want %d, stored", len(content), n, stored, len(content))
	}
}

func checkHasFile(t *testing.T, s store.Files, ref crypto.Ref, want bool) {
	t.Helper()
	got, err := s.HasFile(t.Context(), ref)
	if err != nil {
		t.Fatalf("HasFile: %v", err)
	}
	if got != want {
		t.Fatalf("HasFile(%x) = %v, want %v", ref[:4], got, want)
	}
}

// checkNoFile checks that nothing is visible under ref.
func checkNoFile(t *testing.T, s store.Files, ref crypto.Ref) {
	t.Helper()
	checkHasFile(t, s, ref, false)
	_, rc, err := s.OpenFile(t.Context(), ref)
	if err == nil {
		rc.Close()
		t.Fatalf("OpenFile(%x) of a file not stored succeeded", ref[:4])
	}
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("OpenFile(%x) of a file not stored: %v, want an error wrapping store.ErrNotFound", ref[:4], err)
	}
}

// checkFile checks that the file under want.Ref has want's row, Size
// len(content) and content content.
func checkFile(t *testing.T, s store.Files, want store.File, content []byte) {
	t.Helper()
	checkHasFile(t, s, want.Ref, true)
	got, rc, err := s.OpenFile(t.Context(), want.Ref)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer rc.Close()
	want.Size = int64(len(content))
	if got != want {
		t.Fatalf("OpenFile row = %+v, want %+v", got, want)
	}
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading a %d-byte file: %v", len(content), err)
	}
	if !bytes.Equal(data, content) {
		t.Fatalf("read %d bytes of a %d-byte file, or its bytes differ", len(data), len(content))
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close of a file reader: %v", err)
	}
}

// checkSmallReads reads the file in reads of many sizes, 1 byte to a few
// KiB, which end anywhere in a chunk.
func checkSmallReads(t *testing.T, s store.Files, ref crypto.Ref, content []byte) {
	t.Helper()
	_, rc, err := s.OpenFile(t.Context(), ref)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer rc.Close()
	if len(content) > 0 {
		if n, err := rc.Read(nil); n != 0 || err != nil {
			t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
		}
	}
	var got []byte
	buf := make([]byte, 5000)
	sizes := []int{1, 7, 4093, 512, 4999, 3}
	for i := 0; ; i++ {
		n, err := rc.Read(buf[:sizes[i%len(sizes)]])
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", len(got), err)
		}
	}
	if !bytes.Equal(got, content) {
		t.Fatalf("small reads returned %d bytes of a %d-byte file, or its bytes differ", len(got), len(content))
	}
	if n, err := rc.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read at EOF = %d, %v; want 0, EOF", n, err)
	}
}

// ---- tests ----

func testFilesReadsInChunks(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	const size = 20 << 20
	f := newFile()
	n, stored, err := s.PutFile(t.Context(), f, size, genReader(1, size))
	if err != nil || !stored || n != size {
		t.Fatalf("PutFile of 20 MiB = %d, stored %v, %v", n, stored, err)
	}

	head := make([]byte, 1024)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	got, rc, err := s.OpenFile(t.Context(), f.Ref)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	if _, err := io.ReadFull(rc, head); err != nil {
		t.Fatalf("reading the first KiB: %v", err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("OpenFile and reading the first KiB of a 20 MiB file allocated %d MiB; the reader must read one chunk at a time", alloc>>20)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close after 1 KiB of 20 MiB: %v", err)
	}
	want := make([]byte, len(head))
	io.ReadFull(genReader(1, size), want)
	if !bytes.Equal(head, want) {
		t.Fatal("the first KiB differs")
	}
	if got.Size != size {
		t.Fatalf("Size = %d, want %d", got.Size, size)
	}

	// And all of it, compared without holding it.
	_, rc, err = s.OpenFile(t.Context(), f.Ref)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	defer rc.Close()
	h, wh := sha256.New(), sha256.New()
	if n, err := io.Copy(h, rc); err != nil || n != size {
		t.Fatalf("reading 20 MiB: %d bytes, %v", n, err)
	}
	io.Copy(wh, genReader(1, size))
	if !bytes.Equal(h.Sum(nil), wh.Sum(nil)) {
		t.Fatal("the 20 MiB file read back differs")
	}
}

func testFilesRoundTrip(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	sizes := []int{0, 1, 1000, fileChunk - 1, fileChunk, fileChunk + 1, 2 * fileChunk, 4*fileChunk + 1, 5*fileChunk + 12345}
	hours := []int64{480000, -3, 0, math.MaxInt64, math.MinInt64}
	files := make([]store.File, len(sizes))
	contents := make([][]byte, len(sizes))
	for i, size := range sizes {
		f := newFile()
		f.Hour = hours[i%len(hours)]
		contents[i] = randBlob(size)
		checkNoFile(t, s, f.Ref)
		limit := int64(math.MaxInt64)
		if i%2 == 1 {
			limit = int64(size) // exactly the limit is allowed
		}
		in := f
		in.Size = 777 // ignored: the store sets Size
		n, stored, err := s.PutFile(t.Context(), in, limit, bytes.NewReader(contents[i]))
		if err != nil || !stored || n != int64(size) {
			t.Fatalf("PutFile of %d bytes = %d, stored %v, %v", size, n, stored, err)
		}
		files[i] = f
		checkFile(t, s, f, contents[i])
	}
	// Each file again, after all were written: none overwrote another.
	for i := range files {
		checkFile(t, s, files[i], contents[i])
	}
	for _, i := range []int{0, 1, 5, 7} {
		checkSmallReads(t, s, files[i].Ref, contents[i])
	}
}

func testFilesNotFound(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	checkNoFile(t, s, crypto.Ref(randID()))
	f := newFile()
	mustPutFile(t, s, f, randBlob(100))
	checkNoFile(t, s, crypto.Ref(randID()))
	// Neighbouring refs, to catch prefix mistakes.
	below, above := f.Ref, f.Ref
	below[15]--
	above[15]++
	checkNoFile(t, s, below)
	checkNoFile(t, s, above)
}

func testFilesSharedRef(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	// The metadata record first, then the content under its ref.
	fx := newFixture(1, 3)
	mustPut(t, s, &fx.batch, 3)
	r := fx.batch.Records[1]
	f := store.File{Ref: r.Ref, Tag: r.Tag, Hour: r.Hour, KeyRecordID: r.KeyRecordID}
	checkNoFile(t, s, f.Ref)
	content := randBlob(fileChunk + 5)
	mustPutFile(t, s, f, content)
	checkFile(t, s, f, content)
	checkAll(t, s, &fx.batch)

	// The content first, then its metadata record.
	g := newFile()
	gc := randBlob(10)
	mustPutFile(t, s, g, gc)
	checkHasRef(t, s, g.Ref, false)
	b := store.Batch{Records: []store.Record{{Ref: g.Ref, Tag: g.Tag, Hour: g.Hour, KeyRecordID: g.KeyRecordID, Blob: randBlob(50)}}}
	mustPut(t, s, &b, 1)
	checkAll(t, s, &b)
	checkFile(t, s, g, gc)
}

func testFilesRePut(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	f := newFile()
	content := randBlob(fileChunk + fileChunk/2)
	mustPutFile(t, s, f, content)
	for _, size := range []int{0, 10, len(content), 2*fileChunk + 3} {
		other := newFile()
		other.Ref = f.Ref
		n, stored, err := s.PutFile(t.Context(), other, math.MaxInt64, bytes.NewReader(randBlob(size)))
		if err != nil {
			t.Fatalf("re-PutFile (%d bytes): %v", size, err)
		}
		if stored || n != 0 {
			t.Fatalf("re-PutFile (%d bytes) = %d, stored %v; want 0, not stored", size, n, stored)
		}
		checkFile(t, s, f, content)
	}
	mustStats(t, s, store.Stats{})
}

func testFilesLimit(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	tooLarge := func(limit int64, content []byte) store.File {
		t.Helper()
		f := newFile()
		n, stored, err := s.PutFile(t.Context(), f, limit, bytes.NewReader(content))
		if !errors.Is(err, store.ErrFileTooLarge) {
			t.Fatalf("PutFile of %d bytes with limit %d: %v (%d, stored %v), want ErrFileTooLarge", len(content), limit, err, n, stored)
		}
		if stored {
			t.Fatalf("PutFile of %d bytes with limit %d failed but reported stored", len(content), limit)
		}
		checkNoFile(t, s, f.Ref)
		return f
	}

	empty := newFile()
	n, stored, err := s.PutFile(t.Context(), empty, 0, bytes.NewReader(nil))
	if err != nil || !stored || n != 0 {
		t.Fatalf("PutFile of 0 bytes with limit 0 = %d, stored %v, %v", n, stored, err)
	}
	checkFile(t, s, empty, nil)
	tooLarge(0, []byte{1})
	tooLarge(fileChunk-1, randBlob(fileChunk))
	tooLarge(fileChunk, randBlob(fileChunk+1))

	// Refused after several chunks; the ref stays free for the content
	// that fits.
	content := randBlob(3*fileChunk + 7)
	f := tooLarge(int64(len(content))-1, content)
	n, stored, err = s.PutFile(t.Context(), f, int64(len(content)), bytes.NewReader(content))
	if err != nil || !stored || n != int64(len(content)) {
		t.Fatalf("PutFile at exactly the limit = %d, stored %v, %v", n, stored, err)
	}
	checkFile(t, s, f, content)

	g := newFile()
	if _, stored, err := s.PutFile(t.Context(), g, -1, bytes.NewReader(nil)); err == nil || stored {
		t.Fatalf("PutFile with limit -1 = stored %v, %v; want an error", stored, err)
	}
	checkNoFile(t, s, g.Ref)
	mustStats(t, s, store.Stats{})
}

func testFilesReaderFails(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	content := randBlob(5*fileChunk + 99)
	for _, after := range []int64{0, 10, fileChunk, fileChunk + fileChunk/2, 2*fileChunk + 5, 4*fileChunk + 3, 5 * fileChunk} {
		f := newFile()
		r := &failingReader{r: bytes.NewReader(content), after: after}
		_, stored, err := s.PutFile(t.Context(), f, math.MaxInt64, r)
		if !errors.Is(err, errReader) {
			t.Fatalf("PutFile with a reader failing after %d bytes: %v, want the reader's error", after, err)
		}
		if stored {
			t.Fatalf("PutFile with a reader failing after %d bytes reported stored", after)
		}
		checkNoFile(t, s, f.Ref)
		// The ref is free: a retry stores the whole content.
		mustPutFile(t, s, f, content[:after+1])
		checkFile(t, s, f, content[:after+1])
	}
}

func testFilesCanceledMidway(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	content := randBlob(4*fileChunk + 1)
	for _, after := range []int64{0, 100, fileChunk + fileChunk/2, 3 * fileChunk, int64(len(content))} {
		f := newFile()
		ctx, cancel := context.WithCancel(t.Context())
		r := &cancelingReader{r: bytes.NewReader(content), after: after, cancel: cancel}
		if after == 0 {
			cancel()
		}
		_, stored, err := s.PutFile(ctx, f, math.MaxInt64, r)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("PutFile canceled after %d bytes: %v, want an error wrapping context.Canceled", after, err)
		}
		if stored {
			t.Fatalf("PutFile canceled after %d bytes reported stored", after)
		}
		checkNoFile(t, s, f.Ref)
		mustPutFile(t, s, f, content)
		checkFile(t, s, f, content)
	}
}

func testFilesConcurrent(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	const goroutines = 8
	ref := crypto.Ref(randID())
	type result struct {
		f       store.File
		content []byte
		n       int64
		stored  bool
		err     error
	}
	res := make([]result, goroutines)
	for i := range res {
		res[i].f = newFile()
		res[i].f.Ref = ref
		res[i].content = randBlob(fileChunk + fileChunk/2 + i)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range res {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := &res[i]
			r.n, r.stored, r.err = s.PutFile(context.Background(), r.f, math.MaxInt64, bytes.NewReader(r.content))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, r := range res {
		if r.err != nil {
			t.Fatalf("concurrent PutFile %d: %v", i, r.err)
		}
		switch {
		case r.stored && winner >= 0:
			t.Fatalf("concurrent PutFiles %d and %d of one ref both stored", winner, i)
		case r.stored:
			winner = i
			if r.n != int64(len(r.content)) {
				t.Fatalf("the storing PutFile returned %d, want %d", r.n, len(r.content))
			}
		case r.n != 0:
			t.Fatalf("a PutFile that did not store returned %d bytes", r.n)
		}
	}
	if winner < 0 {
		t.Fatal("none of the concurrent PutFiles of one ref stored")
	}
	checkFile(t, s, res[winner].f, res[winner].content)
}

func testFilesReopen(t *testing.T, open func(t *testing.T) filesStore) {
	s := open(t)
	f, g := newFile(), newFile()
	fc, gc := []byte{}, randBlob(2*fileChunk+fileChunk/2)
	mustPutFile(t, s, f, fc)
	mustPutFile(t, s, g, gc)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openClosed(t, open)
	checkFile(t, s, f, fc)
	checkFile(t, s, g, gc)
	// Still de-duplicating, and writable.
	n, stored, err := s.PutFile(t.Context(), g, math.MaxInt64, bytes.NewReader(randBlob(5)))
	if err != nil || stored || n != 0 {
		t.Fatalf("re-PutFile after reopen = %d, stored %v, %v; want 0, not stored", n, stored, err)
	}
	h := newFile()
	hc := randBlob(fileChunk + 1)
	mustPutFile(t, s, h, hc)
	checkFile(t, s, h, hc)
	checkFile(t, s, g, gc)
}

func testFilesReaders(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	f := newFile()
	content := randBlob(3*fileChunk + 17)
	mustPutFile(t, s, f, content)

	// Closed early, then read.
	_, rc, err := s.OpenFile(t.Context(), f.Ref)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1000)
	if _, err := io.ReadFull(rc, head); err != nil || !bytes.Equal(head, content[:1000]) {
		t.Fatalf("first 1000 bytes: %v, or they differ", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("Close after 1000 bytes: %v", err)
	}
	if n, err := rc.Read(head); err == nil || n != 0 {
		t.Fatalf("Read after Close = %d, %v; want 0 and an error", n, err)
	}

	// Two readers of one file, interleaved.
	_, r1, err := s.OpenFile(t.Context(), f.Ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	_, r2, err := s.OpenFile(t.Context(), f.Ref)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	var b1, b2 []byte
	buf := make([]byte, 300000)
	for done1, done2 := false, false; !done1 || !done2; {
		for _, x := range []struct {
			r    io.Reader
			b    *[]byte
			done *bool
		}{{r1, &b1, &done1}, {r2, &b2, &done2}} {
			if *x.done {
				continue
			}
			n, err := io.ReadFull(x.r, buf)
			*x.b = append(*x.b, buf[:n]...)
			switch {
			case err == io.EOF || err == io.ErrUnexpectedEOF:
				*x.done = true
			case err != nil:
				t.Fatalf("interleaved read: %v", err)
			}
		}
	}
	if !bytes.Equal(b1, content) || !bytes.Equal(b2, content) {
		t.Fatal("interleaved readers returned different bytes")
	}
}

func testFilesNotInStats(t *testing.T, open func(t *testing.T) filesStore) {
	s := openClosed(t, open)
	fx := newFixture(1, 5)
	mustPut(t, s, &fx.batch, 5)
	want := statsOf(&fx.batch)
	tag := fx.batch.Records[0].Tag
	for _, size := range []int{0, 100, fileChunk + 1} {
		f := newFile()
		f.Tag, f.Hour = tag, fx.batch.Records[0].Hour
		mustPutFile(t, s, f, randBlob(size))
		checkHasRef(t, s, f.Ref, false)
	}
	mustStats(t, s, want)
	checkRecords(t, s, fx.batch.Records, tag, math.MinInt64, math.MaxInt64)
}

func testFilesClosed(t *testing.T, open func(t *testing.T) filesStore) {
	s := open(t)
	f := newFile()
	content := randBlob(3 * fileChunk)
	mustPutFile(t, s, f, content)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	g := newFile()
	if _, stored, err := s.PutFile(ctx, g, math.MaxInt64, bytes.NewReader(content)); !errors.Is(err, context.Canceled) || stored {
		t.Errorf("PutFile with a canceled context = stored %v, %v; want an error wrapping context.Canceled", stored, err)
	}
	checkNoFile(t, s, g.Ref)
	if _, err := s.HasFile(ctx, f.Ref); err == nil {
		t.Error("HasFile with a canceled context succeeded")
	}
	if _, rc, err := s.OpenFile(ctx, f.Ref); err == nil {
		rc.Close()
		t.Error("OpenFile with a canceled context succeeded")
	}

	// A reader keeps the context it was opened with.
	ctx, cancel = context.WithCancel(t.Context())
	_, rc, err := s.OpenFile(ctx, f.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, rc); err == nil {
		t.Error("reading on after the reader's context was canceled succeeded")
	}
	rc.Close()

	// A reader opened before Close fails once it needs the store.
	_, rc, err = s.OpenFile(t.Context(), f.Ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := io.Copy(io.Discard, rc); err == nil {
		t.Error("reading a file on after the store was closed succeeded")
	}
	if _, _, err := s.PutFile(t.Context(), newFile(), math.MaxInt64, bytes.NewReader([]byte("x"))); err == nil {
		t.Error("PutFile after Close succeeded")
	}
	if _, err := s.HasFile(t.Context(), f.Ref); err == nil {
		t.Error("HasFile after Close succeeded")
	}
	if _, rc, err := s.OpenFile(t.Context(), f.Ref); err == nil {
		rc.Close()
		t.Error("OpenFile after Close succeeded")
	}
}
