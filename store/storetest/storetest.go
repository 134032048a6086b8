// Package storetest is the contract suite every store.Store implementation
// must pass. A backend's test calls Run with a function that opens a store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, storetest.Keyed(
//			func(t *testing.T) string { return filepath.Join(t.TempDir(), "s.db") },
//			func(t *testing.T, path string) store.Store { ... Open(path) ... },
//		))
//	}
//
// The open function receives a subtest's t. The first call for a t must
// return a store over new, empty storage that belongs to that test; a later
// call with the same t (made after the earlier store was closed) must reopen
// that same storage, which is how the suite checks that data survives Close.
// Keyed builds such a function from a create hook and a connect hook.
//
// The suite closes every store it opens. Subtests run in parallel, so open
// is called from several goroutines at once.
//
// What it checks: byte-exact round trips through every method; that a
// re-Put changes nothing and a mixed batch inserts only what is new (without
// overwriting what exists); de-duplication within a batch; inclusive hour
// bounds, (hour, ref) order, negative hours and neighbouring tags in
// Records, across more than one page of results; ErrNotFound from Epoch;
// that a callback error stops Records and is returned, and that a callback
// may call the store; 20 goroutines putting overlapping batches (each ref
// inserted exactly once, Stats consistent); empty batches; data surviving
// Close and reopen; a canceled context storing nothing; Put after Close
// failing.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// Keyed returns an open function for Run. create makes new, empty backing
// storage for a test and returns a handle to it (a file path, a DSN);
// connect opens a store on a handle. The handle is remembered per test, so a
// second call with the same t reconnects to the same storage.
func Keyed[H any](create func(t *testing.T) H, connect func(t *testing.T, h H) store.Store) func(t *testing.T) store.Store {
	var (
		mu      sync.Mutex
		handles = map[*testing.T]H{}
	)
	return func(t *testing.T) store.Store {
		t.Helper()
		mu.Lock()
		h, ok := handles[t]
		mu.Unlock()
		if !ok {
			h = create(t)
			mu.Lock()
			handles[t] = h
			mu.Unlock()
			t.Cleanup(func() {
				mu.Lock()
				delete(handles, t)
				mu.Unlock()
			})
		}
		return connect(t, h)
	}
}

// Run runs the contract suite. See the package doc for what open must do.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	runSuite(t, open, "store.Store", []subtest[store.Store]{
		{"RoundTrip", testRoundTrip},
		{"RePutIsNoOp", testRePut},
		{"MixedNewAndExisting", testMixed},
		{"DuplicatesWithinBatch", testDuplicatesWithinBatch},
		{"RecordsRange", testRecordsRange},
		{"RecordsManyPages", testRecordsManyPages},
		{"OtherTag", testOtherTag},
		{"EpochNotFound", testEpochNotFound},
		{"CallbackErrorStopsScan", testCallbackError},
		{"CallbackMayUseStore", testCallbackUsesStore},
		{"ConcurrentOverlappingPuts", testConcurrent},
		{"EmptyBatch", testEmptyBatch},
		{"SurvivesReopen", testReopen},
		{"CanceledContext", testCanceled},
		{"PutAfterClose", testPutAfterClose},
	})
}

// ---- fixtures ----

func randID() (b [16]byte) {
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return b
}

func randBlob(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func newRecord(tag crypto.Tag, hour int64, kr crypto.KeyRecordID) store.Record {
	return store.Record{
		Ref:         crypto.Ref(randID()),
		Tag:         tag,
		Hour:        hour,
		KeyRecordID: kr,
		Blob:        randBlob(64 + mrand.IntN(400)),
	}
}

// fixture is a batch plus a model of what it stores.
type fixture struct {
	batch store.Batch
}

// newFixture builds a batch over nTags tags with nPerTag records each, one
// key record per tag and one epoch. It includes a record with an empty blob,
// one with a nil blob (read back as empty) and one holding every byte value.
func newFixture(nTags, nPerTag int) fixture {
	ep := store.Epoch{ID: crypto.EpochID(randID()), Blob: randBlob(200)}
	var f fixture
	f.batch.Epochs = append(f.batch.Epochs, ep)
	for i := 0; i < nTags; i++ {
		tag := crypto.Tag(randID())
		kr := store.KeyRecord{ID: crypto.KeyRecordID(randID()), Tag: tag, EpochID: ep.ID, Blob: randBlob(150)}
		f.batch.KeyRecords = append(f.batch.KeyRecords, kr)
		for j := 0; j < nPerTag; j++ {
			f.batch.Records = append(f.batch.Records, newRecord(tag, 480000+int64(j%5), kr.ID))
		}
	}
	if len(f.batch.Records) >= 2 {
		f.batch.Records[0].Blob = []byte{}
		all := make([]byte, 256)
		for i := range all {
			all[i] = byte(i)
		}
		f.batch.Records[1].Blob = all
	}
	if len(f.batch.Records) >= 3 {
		f.batch.Records[2].Blob = nil
	}
	return f
}

func statsOf(batches ...*store.Batch) store.Stats {
	var s store.Stats
	refs := map[crypto.Ref]bool{}
	krs := map[crypto.KeyRecordID]bool{}
	eps := map[crypto.EpochID]bool{}
	for _, b := range batches {
		for _, r := range b.Records {
			if !refs[r.Ref] {
				refs[r.Ref] = true
				s.Records++
				s.Bytes += int64(len(r.Blob))
			}
		}
		for _, k := range b.KeyRecords {
			if !krs[k.ID] {
				krs[k.ID] = true
				s.KeyRecords++
				s.Bytes += int64(len(k.Blob))
			}
		}
		for _, e := range b.Epochs {
			if !eps[e.ID] {
				eps[e.ID] = true
				s.Epochs++
				s.Bytes += int64(len(e.Blob))
			}
		}
	}
	return s
}

// ---- assertions ----

func mustPut(t *testing.T, s store.Store, b *store.Batch, want int) {
	t.Helper()
	n, err := s.Put(t.Context(), b)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if n != want {
		t.Fatalf("Put inserted %d, want %d", n, want)
	}
	// Inserted lists each inserted record once, and only records of the batch.
	inBatch := map[crypto.Ref]bool{}
	for _, r := range b.Records {
		inBatch[r.Ref] = true
	}
	seen := map[crypto.Ref]bool{}
	for _, ref := range b.Inserted {
		if !inBatch[ref] || seen[ref] {
			t.Fatalf("Inserted lists ref %x twice or not of the batch", ref[:4])
		}
		seen[ref] = true
	}
	if len(b.Inserted) != want {
		t.Fatalf("Inserted lists %d refs, Put said %d", len(b.Inserted), want)
	}
}

func mustStats(t *testing.T, s store.Store, want store.Stats) {
	t.Helper()
	got, err := s.Stats(t.Context())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func scan(t *testing.T, s store.Store, tag crypto.Tag, from, to int64) []store.Record {
	t.Helper()
	var out []store.Record
	err := s.Records(t.Context(), tag, from, to, func(r store.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("Records(%d, %d): %v", from, to, err)
	}
	return out
}

func cmpRecord(a, b store.Record) int {
	if c := cmpInt(a.Hour, b.Hour); c != 0 {
		return c
	}
	return bytes.Compare(a.Ref[:], b.Ref[:])
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func recordEqual(a, b store.Record) bool {
	return a.Ref == b.Ref && a.Tag == b.Tag && a.Hour == b.Hour &&
		a.KeyRecordID == b.KeyRecordID && bytes.Equal(a.Blob, b.Blob)
}

// wantRecords returns the records of rs under tag within [from, to], in
// (hour, ref) order.
func wantRecords(rs []store.Record, tag crypto.Tag, from, to int64) []store.Record {
	var out []store.Record
	for _, r := range rs {
		if r.Tag == tag && r.Hour >= from && r.Hour <= to {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, cmpRecord)
	return out
}

func checkRecords(t *testing.T, s store.Store, all []store.Record, tag crypto.Tag, from, to int64) {
	t.Helper()
	got := scan(t, s, tag, from, to)
	want := wantRecords(all, tag, from, to)
	if len(got) != len(want) {
		t.Fatalf("Records(%d, %d) returned %d records, want %d", from, to, len(got), len(want))
	}
	for i := range got {
		if !recordEqual(got[i], want[i]) {
			t.Fatalf("Records(%d, %d)[%d] = ref %x hour %d, want ref %x hour %d (or contents differ)",
				from, to, i, got[i].Ref, got[i].Hour, want[i].Ref, want[i].Hour)
		}
	}
}

func checkKeyRecords(t *testing.T, s store.Store, all []store.KeyRecord, tag crypto.Tag) {
	t.Helper()
	got, err := s.KeyRecords(t.Context(), tag)
	if err != nil {
		t.Fatalf("KeyRecords: %v", err)
	}
	var want []store.KeyRecord
	for _, k := range all {
		if k.Tag == tag {
			want = append(want, k)
		}
	}
	byID := func(a, b store.KeyRecord) int { return bytes.Compare(a.ID[:], b.ID[:]) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	if len(got) != len(want) {
		t.Fatalf("KeyRecords returned %d, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.Tag != w.Tag || g.EpochID != w.EpochID || !bytes.Equal(g.Blob, w.Blob) {
			t.Fatalf("KeyRecords[%d] = id %x, want id %x (or contents differ)", i, g.ID, w.ID)
		}
	}
}

func checkEpoch(t *testing.T, s store.Store, want store.Epoch) {
	t.Helper()
	got, err := s.Epoch(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Epoch: %v", err)
	}
	if got.ID != want.ID || !bytes.Equal(got.Blob, want.Blob) {
		t.Fatalf("Epoch %x: contents differ", want.ID)
	}
}

func checkHasRef(t *testing.T, s store.Store, ref crypto.Ref, want bool) {
	t.Helper()
	got, err := s.HasRef(t.Context(), ref)
	if err != nil {
		t.Fatalf("HasRef: %v", err)
	}
	if got != want {
		t.Fatalf("HasRef(%x) = %v, want %v", ref, got, want)
	}
}

// checkAll checks that everything in b is stored byte-exact.
func checkAll(t *testing.T, s store.Store, b *store.Batch) {
	t.Helper()
	tags := map[crypto.Tag]bool{}
	for _, r := range b.Records {
		checkHasRef(t, s, r.Ref, true)
		tags[r.Tag] = true
	}
	for _, k := range b.KeyRecords {
		tags[k.Tag] = true
	}
	for tag := range tags {
		checkRecords(t, s, b.Records, tag, math.MinInt64, math.MaxInt64)
		checkKeyRecords(t, s, b.KeyRecords, tag)
	}
	for _, e := range b.Epochs {
		checkEpoch(t, s, e)
	}
}

// ---- tests ----

func testRoundTrip(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	mustStats(t, s, store.Stats{})
	f := newFixture(3, 20)
	mustPut(t, s, &f.batch, len(f.batch.Records))
	checkAll(t, s, &f.batch)
	checkHasRef(t, s, crypto.Ref(randID()), false)
	mustStats(t, s, statsOf(&f.batch))
}

func testRePut(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(2, 15)
	mustPut(t, s, &f.batch, len(f.batch.Records))
	want := statsOf(&f.batch)
	mustPut(t, s, &f.batch, 0)
	mustStats(t, s, want)
	checkAll(t, s, &f.batch)
}

func testMixed(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	a := newFixture(2, 10)
	mustPut(t, s, &a.batch, len(a.batch.Records))

	// The second batch repeats every object of a with different contents
	// (which must be ignored) and adds new ones.
	b := newFixture(2, 7)
	var mixed store.Batch
	for _, r := range a.batch.Records {
		r.Blob = randBlob(33)
		r.Hour++
		mixed.Records = append(mixed.Records, r)
	}
	for _, k := range a.batch.KeyRecords {
		k.Blob = randBlob(10)
		mixed.KeyRecords = append(mixed.KeyRecords, k)
	}
	for _, e := range a.batch.Epochs {
		e.Blob = randBlob(10)
		mixed.Epochs = append(mixed.Epochs, e)
	}
	mixed.Records = append(mixed.Records, b.batch.Records...)
	mixed.KeyRecords = append(mixed.KeyRecords, b.batch.KeyRecords...)
	mixed.Epochs = append(mixed.Epochs, b.batch.Epochs...)
	mrand.Shuffle(len(mixed.Records), func(i, j int) {
		mixed.Records[i], mixed.Records[j] = mixed.Records[j], mixed.Records[i]
	})

	mustPut(t, s, &mixed, len(b.batch.Records))
	for _, ref := range mixed.Inserted {
		if !slices.ContainsFunc(b.batch.Records, func(r store.Record) bool { return r.Ref == ref }) {
			t.Fatalf("Inserted lists a record that was already stored")
		}
	}
	checkAll(t, s, &a.batch)
	checkAll(t, s, &b.batch)
	mustStats(t, s, statsOf(&a.batch, &b.batch))
}

func testDuplicatesWithinBatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(1, 5)
	b := f.batch
	b.Records = append(b.Records, b.Records...)
	b.KeyRecords = append(b.KeyRecords, b.KeyRecords...)
	b.Epochs = append(b.Epochs, b.Epochs...)
	mustPut(t, s, &b, len(f.batch.Records))
	checkAll(t, s, &f.batch)
	mustStats(t, s, statsOf(&f.batch))
}

func testRecordsRange(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	tag, other := crypto.Tag(randID()), crypto.Tag(randID())
	kr := crypto.KeyRecordID(randID())
	hours := []int64{-3, 0, 1, 2, 5, 10, 480000}
	var b store.Batch
	for _, h := range hours {
		for i := 0; i < 4; i++ {
			b.Records = append(b.Records, newRecord(tag, h, kr))
		}
		// Neighbours under another tag, interleaved in key order.
		b.Records = append(b.Records, newRecord(other, h, kr))
	}
	// Tags one above and one below tag, to catch prefix-bound mistakes.
	below, above := tag, tag
	below[15]--
	above[15]++
	b.Records = append(b.Records, newRecord(below, 1, kr), newRecord(above, 1, kr))
	mrand.Shuffle(len(b.Records), func(i, j int) { b.Records[i], b.Records[j] = b.Records[j], b.Records[i] })
	mustPut(t, s, &b, len(b.Records))

	ranges := [][2]int64{
		{1, 5},   // both ends inclusive
		{5, 5},   // one hour
		{0, 0},   // hour zero
		{-3, -3}, // negative hour
		{-10, 1}, // crossing zero
		{3, 4},   // gap: nothing
		{6, 9},   // gap: nothing
		{11, 479999},
		{5, 1}, // inverted: nothing
		{math.MinInt64, math.MaxInt64},
		{480000, math.MaxInt64},
		{math.MinInt64, -3},
	}
	for _, r := range ranges {
		checkRecords(t, s, b.Records, tag, r[0], r[1])
	}
	checkRecords(t, s, b.Records, other, math.MinInt64, math.MaxInt64)
	checkRecords(t, s, b.Records, below, math.MinInt64, math.MaxInt64)
	checkRecords(t, s, b.Records, above, math.MinInt64, math.MaxInt64)
	if got := scan(t, s, tag, 1, 5); len(got) != 3*4 { // hours 1, 2 and 5
		t.Fatalf("Records(1, 5) returned %d, want 12", len(got))
	}
}

func testRecordsManyPages(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	tag := crypto.Tag(randID())
	kr := crypto.KeyRecordID(randID())
	var b store.Batch
	for i := 0; i < 1100; i++ {
		r := newRecord(tag, int64(i%3), kr)
		r.Blob = r.Blob[:16]
		b.Records = append(b.Records, r)
	}
	mustPut(t, s, &b, len(b.Records))
	checkRecords(t, s, b.Records, tag, 0, 2)
	checkRecords(t, s, b.Records, tag, 1, 1)
}

func testOtherTag(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(2, 10)
	mustPut(t, s, &f.batch, len(f.batch.Records))
	other := crypto.Tag(randID())
	if got := scan(t, s, other, math.MinInt64, math.MaxInt64); len(got) != 0 {
		t.Fatalf("Records(other tag) returned %d records", len(got))
	}
	krs, err := s.KeyRecords(t.Context(), other)
	if err != nil {
		t.Fatalf("KeyRecords: %v", err)
	}
	if len(krs) != 0 {
		t.Fatalf("KeyRecords(other tag) returned %d", len(krs))
	}
}

func testEpochNotFound(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(1, 1)
	mustPut(t, s, &f.batch, 1)
	_, err := s.Epoch(t.Context(), crypto.EpochID(randID()))
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Epoch(unknown) error = %v, want one wrapping store.ErrNotFound", err)
	}
}

func testCallbackError(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(1, 50)
	mustPut(t, s, &f.batch, 50)
	tag := f.batch.Records[0].Tag
	stop := errors.New("stop here")
	calls := 0
	err := s.Records(t.Context(), tag, math.MinInt64, math.MaxInt64, func(store.Record) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("Records error = %v, want the callback's error", err)
	}
	if calls != 3 {
		t.Fatalf("callback called %d times after returning an error at call 3", calls)
	}
}

func testCallbackUsesStore(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(1, 30)
	mustPut(t, s, &f.batch, 30)
	tag := f.batch.Records[0].Tag
	var extra store.Batch
	err := s.Records(t.Context(), tag, math.MinInt64, math.MaxInt64, func(r store.Record) error {
		ok, err := s.HasRef(t.Context(), r.Ref)
		if err != nil || !ok {
			return fmt.Errorf("HasRef inside callback = %v, %v", ok, err)
		}
		b := store.Batch{Records: []store.Record{newRecord(crypto.Tag(randID()), r.Hour, r.KeyRecordID)}}
		if _, err := s.Put(t.Context(), &b); err != nil {
			return fmt.Errorf("Put inside callback: %w", err)
		}
		extra.Records = append(extra.Records, b.Records...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mustStats(t, s, statsOf(&f.batch, &extra))
}

func testConcurrent(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	const (
		goroutines = 20
		nTags      = 4
		perTag     = 100
		perPut     = 60 // records per Put; Puts overlap about 3 times
	)
	pool := newFixture(nTags, perTag)
	for i := 0; i < 5; i++ {
		pool.batch.Epochs = append(pool.batch.Epochs, store.Epoch{ID: crypto.EpochID(randID()), Blob: randBlob(50)})
	}
	all := &pool.batch
	n := len(all.Records)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		errs  []error
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sum := 0
			for p := 0; p < 2; p++ {
				var b store.Batch
				start := g*n/goroutines + p*perPut/2
				for i := 0; i < perPut; i++ {
					b.Records = append(b.Records, all.Records[(start+i)%n])
				}
				for i := 0; i < 3; i++ {
					b.KeyRecords = append(b.KeyRecords, all.KeyRecords[(g+i+p)%len(all.KeyRecords)])
					b.Epochs = append(b.Epochs, all.Epochs[(g+i+p)%len(all.Epochs)])
				}
				mrand.Shuffle(len(b.Records), func(i, j int) { b.Records[i], b.Records[j] = b.Records[j], b.Records[i] })
				mrand.Shuffle(len(b.KeyRecords), func(i, j int) { b.KeyRecords[i], b.KeyRecords[j] = b.KeyRecords[j], b.KeyRecords[i] })
				mrand.Shuffle(len(b.Epochs), func(i, j int) { b.Epochs[i], b.Epochs[j] = b.Epochs[j], b.Epochs[i] })
				k, err := s.Put(context.Background(), &b)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				sum += k
			}
			mu.Lock()
			total += sum
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent Puts failed, first: %v", len(errs), errs[0])
	}
	if total != n {
		t.Fatalf("concurrent Puts reported %d inserted in total, want %d (each ref once)", total, n)
	}
	checkAll(t, s, all)
	mustStats(t, s, statsOf(all))
}

func testEmptyBatch(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	mustPut(t, s, &store.Batch{}, 0)
	mustStats(t, s, store.Stats{})

	// A batch without records still stores its key records and epochs.
	f := newFixture(2, 0)
	mustPut(t, s, &f.batch, 0)
	checkAll(t, s, &f.batch)
	mustStats(t, s, statsOf(&f.batch))
}

func testReopen(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	f := newFixture(2, 25)
	mustPut(t, s, &f.batch, len(f.batch.Records))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openClosed(t, open)
	checkAll(t, s, &f.batch)
	mustStats(t, s, statsOf(&f.batch))

	// The reopened store is writable and still de-duplicates.
	g := newFixture(1, 5)
	both := g.batch
	both.Records = append(both.Records, f.batch.Records...)
	mustPut(t, s, &both, len(g.batch.Records))
	mustStats(t, s, statsOf(&f.batch, &g.batch))
}

func testCanceled(t *testing.T, open func(t *testing.T) store.Store) {
	s := openClosed(t, open)
	f := newFixture(2, 10)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	n, err := s.Put(ctx, &f.batch)
	if err == nil {
		t.Fatalf("Put with a canceled context succeeded (inserted %d)", n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: error %v does not wrap context.Canceled", err)
	}
	if n != 0 {
		t.Errorf("Put with a canceled context reported %d inserted", n)
	}
	mustStats(t, s, store.Stats{})
	checkHasRef(t, s, f.batch.Records[0].Ref, false)
	if _, err := s.Epoch(t.Context(), f.batch.Epochs[0].ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Epoch after canceled Put: %v, want ErrNotFound", err)
	}
}

func testPutAfterClose(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	f := newFixture(1, 3)
	if _, err := s.Put(t.Context(), &f.batch); err == nil {
		t.Fatal("Put on a closed store succeeded")
	}
}

// subtest is one case of a contract suite over stores that implement S.
type subtest[S store.Store] struct {
	name string
	fn   func(t *testing.T, open func(t *testing.T) S)
}

// runSuite runs the cases in parallel. Each case opens its stores through
// open, and each of them must implement S; iface names S for the failure.
func runSuite[S store.Store](t *testing.T, open func(t *testing.T) store.Store, iface string, tests []subtest[S]) {
	openS := openAs[S](open, iface)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, openS)
		})
	}
}

// openAs wraps open for stores that must implement S; iface names S for the
// failure.
func openAs[S store.Store](open func(t *testing.T) store.Store, iface string) func(t *testing.T) S {
	return func(t *testing.T) S {
		t.Helper()
		s := open(t)
		ss, ok := s.(S)
		if !ok {
			s.Close()
			t.Fatalf("%T does not implement %s", s, iface)
		}
		return ss
	}
}

// openClosed opens a store that is closed, and its Close checked, when the
// test ends.
func openClosed[S store.Store](t *testing.T, open func(t *testing.T) S) S {
	t.Helper()
	s := open(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
