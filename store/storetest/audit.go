package storetest

// RunAudit is the contract suite for the audit.Backend methods of a store.
// It takes the same open function as Run; the stores it opens must
// implement audit.Backend.
//
// What it checks: an empty log; byte-exact round trips of entries (every
// action, empty and maximal fields, non-ASCII text, times before 1970 and in
// other zones, read back in UTC); AuditEntries from any sequence number,
// across more than one page; that the backend refuses, with ErrConflict and
// without storing anything, an entry that repeats, skips or forks the chain;
// that it refuses malformed entries (bad hash, control characters, invalid
// UTF-8, sub-microsecond time, unknown action) with ErrInvalid; that a
// callback error stops AuditEntries and that a callback may append; 20
// goroutines racing to append (one winner per sequence number, one unbroken
// chain); data surviving Close and reopen; audit entries not counting in
// Stats; a canceled context storing nothing; appends after Close failing.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/store"
)

// auditStore is what RunAudit needs from an opened store.
type auditStore interface {
	store.Store
	audit.Backend
}

// RunAudit runs the audit backend contract suite. See Run for what open
// must do.
func RunAudit(t *testing.T, open func(t *testing.T) store.Store) {
	runSuite(t, open, "audit.Backend", []subtest[auditStore]{
		{"Empty", testAuditEmpty},
		{"RoundTrip", testAuditRoundTrip},
		{"FromSeq", testAuditFromSeq},
		{"ManyPages", testAuditManyPages},
		{"RefusesBrokenChain", testAuditRefusesBrokenChain},
		{"RefusesInvalid", testAuditRefusesInvalid},
		{"CallbackErrorStopsScan", testAuditCallbackError},
		{"CallbackMayAppend", testAuditCallbackAppends},
		{"ConcurrentAppends", testAuditConcurrent},
		{"SurvivesReopen", testAuditReopen},
		{"NotInStats", testAuditNotInStats},
		{"CanceledContext", testAuditCanceled},
		{"AppendAfterClose", testAuditAfterClose},
	})
}

// ---- fixtures ----

var auditT0 = time.Date(2026, 5, 17, 10, 11, 12, 123456000, time.UTC)

// nextEntry returns the entry that follows prev (nil: the first entry),
// with content varied by its sequence number.
func nextEntry(prev *audit.Entry) audit.Entry {
	e := audit.Entry{Seq: 1}
	if prev != nil {
		e.Seq, e.Prev = prev.Seq+1, prev.Hash
	}
	actions := audit.Actions()
	e.Time = auditT0.Add(time.Duration(e.Seq) * 1001 * time.Microsecond)
	e.ActorRole = []string{"requester", "legal", "hr", "works-council", "system"}[e.Seq%5]
	e.ActorPseudonym = fmt.Sprintf("p-%032x", e.Seq*0x9e3779b97f4a7c15)
	e.Action = actions[int(e.Seq)%len(actions)]
	e.OrderID = fmt.Sprintf("ord_%d", e.Seq/3)
	e.Object = fmt.Sprintf("page %d", e.Seq%7)
	e.Detail = fmt.Sprintf("count=%d", e.Seq*11)
	e.Hash = e.ComputeHash()
	return e
}

func rehash(e audit.Entry) audit.Entry {
	e.Hash = e.ComputeHash()
	return e
}

// specialEntries returns a chain of entries with unusual but valid content.
func specialEntries() []audit.Entry {
	long := strings.Repeat("é", audit.MaxFieldLen/2) // 2 bytes each: exactly the limit
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	var out []audit.Entry
	add := func(mod func(*audit.Entry)) {
		var prev *audit.Entry
		if len(out) > 0 {
			prev = &out[len(out)-1]
		}
		e := nextEntry(prev)
		mod(&e)
		out = append(out, rehash(e))
	}
	for _, a := range audit.Actions() {
		add(func(e *audit.Entry) { e.Action = a })
	}
	add(func(e *audit.Entry) { e.ActorPseudonym, e.OrderID, e.Object, e.Detail = "", "", "", "" })
	add(func(e *audit.Entry) {
		e.ActorRole, e.ActorPseudonym, e.OrderID, e.Object, e.Detail = long, long, long, long, long
	})
	add(func(e *audit.Entry) { e.Detail = "reason: ondernemingsraad — 委員会 🔒 \"quoted\" 'x' \\ %s" })
	add(func(e *audit.Entry) { e.Time = time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC) })
	add(func(e *audit.Entry) { e.Time = time.Date(2030, 1, 2, 3, 4, 5, 6000, zone) })
	add(func(e *audit.Entry) { e.Time = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC) })
	return out
}

// ---- assertions ----

func mustAppend(t *testing.T, s audit.Backend, e audit.Entry) {
	t.Helper()
	if err := s.AppendAudit(t.Context(), e); err != nil {
		t.Fatalf("AppendAudit(entry %d): %v", e.Seq, err)
	}
}

// appendChain appends n new entries after the current head and returns
// them.
func appendChain(t *testing.T, s audit.Backend, n int) []audit.Entry {
	t.Helper()
	last, ok, err := s.LastAudit(t.Context())
	if err != nil {
		t.Fatalf("LastAudit: %v", err)
	}
	var prev *audit.Entry
	if ok {
		prev = &last
	}
	out := make([]audit.Entry, 0, n)
	for i := 0; i < n; i++ {
		e := nextEntry(prev)
		mustAppend(t, s, e)
		out = append(out, e)
		prev = &out[len(out)-1]
	}
	return out
}

func auditEntryEqual(a, b audit.Entry) bool {
	return a.Seq == b.Seq && a.Time.Equal(b.Time) && a.ActorRole == b.ActorRole &&
		a.ActorPseudonym == b.ActorPseudonym && a.Action == b.Action && a.OrderID == b.OrderID &&
		a.Object == b.Object && a.Detail == b.Detail && a.Prev == b.Prev && a.Hash == b.Hash
}

func readAudit(t *testing.T, s audit.Backend, from uint64) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	if err := s.AuditEntries(t.Context(), from, func(e audit.Entry) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("AuditEntries(%d): %v", from, err)
	}
	return out
}

// checkAudit checks that the stored log is exactly want.
func checkAudit(t *testing.T, s audit.Backend, want []audit.Entry) {
	t.Helper()
	got := readAudit(t, s, 0)
	if len(got) != len(want) {
		t.Fatalf("AuditEntries returned %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		if !auditEntryEqual(got[i], want[i]) {
			t.Fatalf("entry %d read back as\n%+v\nwant\n%+v", want[i].Seq, got[i], want[i])
		}
		if got[i].Time.Location() != time.UTC {
			t.Fatalf("entry %d: time read back in %v, want UTC", got[i].Seq, got[i].Time.Location())
		}
		if got[i].ComputeHash() != got[i].Hash {
			t.Fatalf("entry %d read back does not hash to its hash", got[i].Seq)
		}
	}
	last, ok, err := s.LastAudit(t.Context())
	if err != nil {
		t.Fatalf("LastAudit: %v", err)
	}
	switch {
	case len(want) == 0 && ok:
		t.Fatalf("LastAudit on an empty log returned entry %d", last.Seq)
	case len(want) > 0 && !ok:
		t.Fatal("LastAudit found no entry")
	case len(want) > 0 && !auditEntryEqual(last, want[len(want)-1]):
		t.Fatalf("LastAudit = entry %d, want entry %d (or contents differ)", last.Seq, want[len(want)-1].Seq)
	}
}

// ---- tests ----

func testAuditEmpty(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	checkAudit(t, s, nil)
	if got := readAudit(t, s, 1); len(got) != 0 {
		t.Fatalf("AuditEntries(1) on an empty log returned %d entries", len(got))
	}
}

func testAuditRoundTrip(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	es := specialEntries()
	for _, e := range es {
		mustAppend(t, s, e)
	}
	checkAudit(t, s, es)
}

func testAuditFromSeq(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	es := appendChain(t, s, 7)
	for _, from := range []uint64{0, 1, 2, 5, 7, 8, 100, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64} {
		got := readAudit(t, s, from)
		var want []audit.Entry
		for _, e := range es {
			if e.Seq >= from {
				want = append(want, e)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("AuditEntries(%d) returned %d entries, want %d", from, len(got), len(want))
		}
		for i := range got {
			if !auditEntryEqual(got[i], want[i]) {
				t.Fatalf("AuditEntries(%d)[%d] = entry %d, want entry %d", from, i, got[i].Seq, want[i].Seq)
			}
		}
	}
}

func testAuditManyPages(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	es := appendChain(t, s, 1100) // more than two pages of either store
	checkAudit(t, s, es)
	if got := readAudit(t, s, 600); len(got) != 501 || got[0].Seq != 600 || got[500].Seq != 1100 {
		t.Fatalf("AuditEntries(600) returned %d entries", len(got))
	}
}

func testAuditRefusesBrokenChain(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	mustConflict := func(what string, e audit.Entry) {
		t.Helper()
		err := s.AppendAudit(t.Context(), e)
		if !errors.Is(err, audit.ErrConflict) {
			t.Fatalf("AppendAudit(%s) = %v, want an error wrapping audit.ErrConflict", what, err)
		}
	}

	// On the empty log.
	first := nextEntry(nil)
	second := nextEntry(&first)
	mustConflict("seq 2 on an empty log", second)
	forked := first
	forked.Prev[0] = 1
	mustConflict("seq 1 with a non-zero prev", rehash(forked))
	checkAudit(t, s, nil)

	es := appendChain(t, s, 3)
	last := es[2]
	next := nextEntry(&last)

	again := es[2]
	again.Detail = "a second entry 3"
	mustConflict("a second entry 3 (a fork)", rehash(again))
	mustConflict("entry 3 again, identical", es[2])
	mustConflict("seq 1 again", es[0])
	gap := next
	gap.Seq = 5
	mustConflict("seq 5 after 3 (a gap)", rehash(gap))
	wrongPrev := next
	wrongPrev.Prev = es[1].Hash
	mustConflict("seq 4 linked to entry 2", rehash(wrongPrev))
	zeroPrev := next
	zeroPrev.Prev = [32]byte{}
	mustConflict("seq 4 with a zero prev", rehash(zeroPrev))
	checkAudit(t, s, es)

	mustAppend(t, s, next)
	checkAudit(t, s, append(es, next))
}

func testAuditRefusesInvalid(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	es := appendChain(t, s, 2)
	next := nextEntry(&es[1])
	cases := []struct {
		name string
		e    audit.Entry
	}{
		{"wrong hash", func() audit.Entry { e := next; e.Hash[31] ^= 1; return e }()},
		{"zero hash", func() audit.Entry { e := next; e.Hash = [32]byte{}; return e }()},
		{"NUL in detail", func() audit.Entry { e := next; e.Detail = "a\x00b"; return rehash(e) }()},
		{"newline in object", func() audit.Entry { e := next; e.Object = "a\nb"; return rehash(e) }()},
		{"invalid UTF-8 in order id", func() audit.Entry { e := next; e.OrderID = "\xff\xfe"; return rehash(e) }()},
		{"field too long", func() audit.Entry { e := next; e.Detail = strings.Repeat("x", audit.MaxFieldLen+1); return rehash(e) }()},
		{"unknown action", func() audit.Entry { e := next; e.Action = "peeked"; return rehash(e) }()},
		{"empty role", func() audit.Entry { e := next; e.ActorRole = ""; return rehash(e) }()},
		{"nanosecond time", func() audit.Entry { e := next; e.Time = e.Time.Add(1); return rehash(e) }()},
		{"zero time", func() audit.Entry { e := next; e.Time = time.Time{}; return rehash(e) }()},
		{"seq 0", func() audit.Entry { e := next; e.Seq = 0; return rehash(e) }()},
		{"seq beyond int64", func() audit.Entry { e := next; e.Seq = math.MaxInt64 + 1; return rehash(e) }()},
	}
	for _, c := range cases {
		err := s.AppendAudit(t.Context(), c.e)
		if !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("AppendAudit(%s) = %v, want an error wrapping audit.ErrInvalid", c.name, err)
		}
	}
	checkAudit(t, s, es)
	mustAppend(t, s, next)
}

func testAuditCallbackError(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	appendChain(t, s, 10)
	stop := errors.New("stop here")
	calls := 0
	err := s.AuditEntries(t.Context(), 1, func(audit.Entry) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("AuditEntries error = %v, want the callback's error", err)
	}
	if calls != 3 {
		t.Fatalf("callback called %d times after returning an error at call 3", calls)
	}
}

func testAuditCallbackAppends(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	es := appendChain(t, s, 300)
	// Each callback appends a large entry, which grows the file (in bbolt,
	// a remap that would deadlock with a read transaction still open).
	long := strings.Repeat("x", audit.MaxFieldLen)
	err := s.AuditEntries(t.Context(), 1, func(e audit.Entry) error {
		if e.Seq > 300 {
			return nil // appended by this scan; seeing them or not are both fine
		}
		last, _, err := s.LastAudit(t.Context())
		if err != nil {
			return err
		}
		n := nextEntry(&last)
		n.Detail, n.Object, n.OrderID = long, long, long
		n = rehash(n)
		if err := s.AppendAudit(t.Context(), n); err != nil {
			return fmt.Errorf("AppendAudit inside callback: %w", err)
		}
		es = append(es, n)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checkAudit(t, s, es)
}

// testAuditConcurrent has 20 goroutines race to append, each retrying on
// conflict as audit.Log does (but without its in-process mutex, so the
// backend alone must keep the chain whole).
func testAuditConcurrent(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	const (
		goroutines = 20
		perG       = 10
	)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		won       = map[uint64]audit.Entry{}
		conflicts int
		errs      []error
		start     = make(chan struct{})
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for n, tries := 0, 0; n < perG; tries++ {
				if tries == 1000*perG { // a backend that refuses everything must not hang the suite
					mu.Lock()
					errs = append(errs, fmt.Errorf("writer %d: %d of %d appends after %d tries", g, n, perG, tries))
					mu.Unlock()
					return
				}
				last, ok, err := s.LastAudit(context.Background())
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				var prev *audit.Entry
				if ok {
					prev = &last
				}
				e := nextEntry(prev)
				e.Object = fmt.Sprintf("writer %d", g)
				e = rehash(e)
				err = s.AppendAudit(context.Background(), e)
				mu.Lock()
				switch {
				case errors.Is(err, audit.ErrConflict):
					conflicts++
				case err != nil:
					errs = append(errs, err)
				default:
					if w, dup := won[e.Seq]; dup {
						errs = append(errs, fmt.Errorf("entry %d appended twice: by %q and by %q", e.Seq, w.Object, e.Object))
					}
					won[e.Seq] = e
					n++
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, audit.ErrConflict) {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent appends failed, first: %v", len(errs), errs[0])
	}
	want := make([]audit.Entry, 0, len(won))
	for seq := uint64(1); seq <= goroutines*perG; seq++ {
		e, ok := won[seq]
		if !ok {
			t.Fatalf("no append of entry %d succeeded (%d succeeded in all)", seq, len(won))
		}
		want = append(want, e)
	}
	// Every successful append is stored as appended, and the links hold.
	checkAudit(t, s, want)
	for i := 1; i < len(want); i++ {
		if want[i].Prev != want[i-1].Hash {
			t.Fatalf("entry %d does not link to entry %d", want[i].Seq, want[i-1].Seq)
		}
	}
	t.Logf("%d appends, %d conflicts refused", len(want), conflicts)
}

func testAuditReopen(t *testing.T, open func(t *testing.T) auditStore) {
	s := open(t)
	es := appendChain(t, s, 5)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openClosed(t, open)
	checkAudit(t, s, es)
	mustConflict := s.AppendAudit(t.Context(), nextEntry(nil))
	if !errors.Is(mustConflict, audit.ErrConflict) {
		t.Fatalf("appending a first entry to a reopened log: %v, want a conflict", mustConflict)
	}
	es = append(es, appendChain(t, s, 2)...)
	checkAudit(t, s, es)
}

func testAuditNotInStats(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	f := newFixture(1, 5)
	mustPut(t, s, &f.batch, 5)
	appendChain(t, s, 4)
	mustStats(t, s, statsOf(&f.batch))
}

func testAuditCanceled(t *testing.T, open func(t *testing.T) auditStore) {
	s := openClosed(t, open)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.AppendAudit(ctx, nextEntry(nil))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("AppendAudit with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	checkAudit(t, s, nil)
}

func testAuditAfterClose(t *testing.T, open func(t *testing.T) auditStore) {
	s := open(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.AppendAudit(t.Context(), nextEntry(nil)); err == nil {
		t.Fatal("AppendAudit on a closed store succeeded")
	}
	if _, _, err := s.LastAudit(t.Context()); err == nil {
		t.Fatal("LastAudit on a closed store succeeded")
	}
}
