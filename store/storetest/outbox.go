package storetest

// RunOutbox is the contract suite for the notice.OutboxBackend methods of a
// store. It takes the same open function as Run; the stores it opens must
// implement notice.OutboxBackend.
//
// What it checks: an empty outbox; byte-exact round trips of rows (blobs
// from 1 byte to 64 KiB, ids of every allowed length, due times before 1970
// and far ahead, read back in UTC at millisecond precision, rounded down);
// that PutNotice of a queued id changes nothing; DueNotices' inclusive
// bound, (due, id) order with ids compared bytewise, and limit, over a
// thousand rows; RescheduleNotice moving a row (and only it) and setting
// its attempts, and failing with ErrNotQueued for an id not queued;
// DeleteNotice, also of an id not queued; refusal of invalid ids, attempt
// counts, blobs and limits, storing nothing; 16 goroutines racing to queue
// the same ids (one row each); data surviving Close and reopen; outbox
// rows not counting in Stats; a canceled context storing nothing; calls
// after Close failing.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/store"
)

// outboxStore is what RunOutbox needs from an opened store.
type outboxStore interface {
	store.Store
	notice.OutboxBackend
}

// RunOutbox runs the outbox backend contract suite. See Run for what open
// must do.
func RunOutbox(t *testing.T, open func(t *testing.T) store.Store) {
	runSuite(t, open, "notice.OutboxBackend", []subtest[outboxStore]{
		{"Empty", testOutboxEmpty},
		{"RoundTrip", testOutboxRoundTrip},
		{"PutIsIdempotent", testOutboxPutIdempotent},
		{"DueBoundOrderLimit", testOutboxDueOrder},
		{"ManyRows", testOutboxManyRows},
		{"Reschedule", testOutboxReschedule},
		{"Delete", testOutboxDelete},
		{"RefusesInvalid", testOutboxRefusesInvalid},
		{"ConcurrentPuts", testOutboxConcurrent},
		{"SurvivesReopen", testOutboxReopen},
		{"NotInStats", testOutboxNotInStats},
		{"CanceledContext", testOutboxCanceled},
		{"AfterClose", testOutboxAfterClose},
	})
}

// ---- fixtures and assertions ----

var (
	outboxT0  = time.Date(2026, 5, 17, 10, 11, 12, 123000000, time.UTC)
	farFuture = time.Date(9999, 12, 31, 23, 59, 59, 999000000, time.UTC)
)

func outboxRow(id string, due time.Time, blob []byte) notice.OutboxRow {
	return notice.OutboxRow{ID: id, Due: due.Truncate(time.Millisecond).UTC(), Blob: blob}
}

func mustPutNotice(t *testing.T, s notice.OutboxBackend, r notice.OutboxRow) {
	t.Helper()
	if err := s.PutNotice(t.Context(), r.ID, r.Due, r.Blob); err != nil {
		t.Fatalf("PutNotice(%s): %v", r.ID, err)
	}
}

func mustReschedule(t *testing.T, s notice.OutboxBackend, id string, due time.Time, attempts int) {
	t.Helper()
	if err := s.RescheduleNotice(t.Context(), id, due, attempts); err != nil {
		t.Fatalf("RescheduleNotice(%s): %v", id, err)
	}
}

func dueNotices(t *testing.T, s notice.OutboxBackend, now time.Time, limit int) []notice.OutboxRow {
	t.Helper()
	rows, err := s.DueNotices(t.Context(), now, limit)
	if err != nil {
		t.Fatalf("DueNotices(%v, %d): %v", now, limit, err)
	}
	return rows
}

// sortRows sorts rows as DueNotices must return them.
func sortRows(rows []notice.OutboxRow) {
	slices.SortFunc(rows, func(a, b notice.OutboxRow) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func rowString(r notice.OutboxRow) string {
	return fmt.Sprintf("{%s due %s attempts %d blob %d bytes}", r.ID, r.Due.Format(time.RFC3339Nano), r.Attempts, len(r.Blob))
}

// checkRows checks that got is exactly want, in order.
func checkRows(t *testing.T, what string, got, want []notice.OutboxRow) {
	t.Helper()
	if len(got) != len(want) {
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		t.Fatalf("%s: %d rows %v, want %d", what, len(got), ids, len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || !g.Due.Equal(w.Due) || g.Attempts != w.Attempts || !bytes.Equal(g.Blob, w.Blob) {
			t.Fatalf("%s: row %d is\n%s\nwant\n%s", what, i, rowString(g), rowString(w))
		}
		if g.Due.Location() != time.UTC {
			t.Fatalf("%s: row %s: due read back in %v, want UTC", what, g.ID, g.Due.Location())
		}
	}
}

// checkOutbox checks that the outbox holds exactly want (in any order).
func checkOutbox(t *testing.T, s notice.OutboxBackend, want []notice.OutboxRow) {
	t.Helper()
	want = slices.Clone(want)
	sortRows(want)
	checkRows(t, "outbox", dueNotices(t, s, farFuture, len(want)+10), want)
}

func blobOf(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// ---- tests ----

func testOutboxEmpty(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	checkOutbox(t, s, nil)
	if err := s.DeleteNotice(t.Context(), "ntc_none"); err != nil {
		t.Fatalf("DeleteNotice on an empty outbox: %v", err)
	}
}

func testOutboxRoundTrip(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	var want []notice.OutboxRow
	add := func(id string, due time.Time, blob []byte) {
		r := outboxRow(id, due, blob)
		if err := s.PutNotice(t.Context(), id, due, blob); err != nil {
			t.Fatalf("PutNotice(%s): %v", id, err)
		}
		want = append(want, r)
	}
	add("ntc_1", outboxT0, []byte{0})
	add("ntc_2", outboxT0.Add(999*time.Microsecond), blobOf(64<<10, 3)) // rounded down to the millisecond
	add("ntc_3", time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), blobOf(100, 9))
	add("ntc_4", time.Date(1900, 1, 1, 0, 0, 0, 1, time.UTC), blobOf(33, 1))
	add("ntc_5", time.Date(2030, 1, 2, 3, 4, 5, 6000000, zone), blobOf(17, 2))
	add("ntc_6", farFuture, blobOf(5, 4))
	add("x", outboxT0, []byte("\x00\xff\x00"))
	add(strings.Repeat("z", notice.MaxOutboxIDLen), outboxT0, blobOf(12, 5))
	add("ntc_!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", outboxT0, blobOf(12, 6))
	if got := want[2].Due; !got.Equal(time.Date(1969, 12, 31, 23, 59, 59, 999000000, time.UTC)) {
		t.Fatalf("fixture: %v", got)
	}
	checkOutbox(t, s, want)
}

func testOutboxPutIdempotent(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	r := outboxRow("ntc_a", outboxT0, blobOf(40, 1))
	mustPutNotice(t, s, r)
	mustPutNotice(t, s, r)
	// Another blob and due under the same id change nothing.
	if err := s.PutNotice(t.Context(), r.ID, outboxT0.Add(-time.Hour), blobOf(50, 2)); err != nil {
		t.Fatalf("PutNotice of a queued id: %v", err)
	}
	checkOutbox(t, s, []notice.OutboxRow{r})
	// Nor does it reset attempts.
	mustReschedule(t, s, r.ID, outboxT0.Add(time.Minute), 3)
	r.Due, r.Attempts = outboxT0.Add(time.Minute), 3
	mustPutNotice(t, s, outboxRow(r.ID, outboxT0, blobOf(40, 1)))
	checkOutbox(t, s, []notice.OutboxRow{r})
}

func testOutboxDueOrder(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	now := outboxT0
	rows := []notice.OutboxRow{
		outboxRow("ntc_late", now.Add(time.Millisecond), blobOf(8, 1)), // not due
		outboxRow("ntc_a0", now, blobOf(8, 2)),                         // due exactly now
		outboxRow("ntc_~", now, blobOf(8, 3)),
		outboxRow("ntc_B", now, blobOf(8, 4)), // 'B' < 'a' bytewise, whatever the locale says
		outboxRow("ntc_a", now, blobOf(8, 5)),
		outboxRow("ntc_old", now.Add(-24*time.Hour), blobOf(8, 6)),
		outboxRow("ntc_before1970", time.Unix(-3600, 0), blobOf(8, 7)),
		outboxRow("ntc_future", now.Add(365*24*time.Hour), blobOf(8, 8)),
	}
	for _, r := range rows {
		mustPutNotice(t, s, r)
	}
	byID := map[string]notice.OutboxRow{}
	for _, r := range rows {
		byID[r.ID] = r
	}
	pick := func(ids ...string) []notice.OutboxRow {
		var out []notice.OutboxRow
		for _, id := range ids {
			out = append(out, byID[id])
		}
		return out
	}
	checkRows(t, "due now", dueNotices(t, s, now, 100),
		pick("ntc_before1970", "ntc_old", "ntc_B", "ntc_a", "ntc_a0", "ntc_~"))
	// Sub-millisecond now: the bound is in whole milliseconds.
	checkRows(t, "due now+0.9ms", dueNotices(t, s, now.Add(900*time.Microsecond), 100),
		pick("ntc_before1970", "ntc_old", "ntc_B", "ntc_a", "ntc_a0", "ntc_~"))
	checkRows(t, "due now+1ms", dueNotices(t, s, now.Add(time.Millisecond), 100),
		pick("ntc_before1970", "ntc_old", "ntc_B", "ntc_a", "ntc_a0", "ntc_~", "ntc_late"))
	checkRows(t, "limit 3", dueNotices(t, s, now, 3), pick("ntc_before1970", "ntc_old", "ntc_B"))
	checkRows(t, "limit 1", dueNotices(t, s, now, 1), pick("ntc_before1970"))
	checkRows(t, "due in 1969", dueNotices(t, s, time.Unix(-1, 0), 100), pick("ntc_before1970"))
	checkRows(t, "due long ago", dueNotices(t, s, time.Unix(-7200, 0), 100), nil)
	checkOutbox(t, s, rows)
}

func testOutboxManyRows(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	rng := mrand.New(mrand.NewPCG(1, 2))
	var rows []notice.OutboxRow
	for i := 0; i < 1000; i++ {
		due := outboxT0.Add(time.Duration(rng.IntN(200)-100) * time.Second) // many ties
		rows = append(rows, outboxRow(fmt.Sprintf("ntc_%04x", rng.Uint32()&0xffff)+fmt.Sprint(i), due, blobOf(1+rng.IntN(300), byte(i))))
	}
	for _, r := range rows {
		mustPutNotice(t, s, r)
	}
	sortRows(rows)
	checkRows(t, "all", dueNotices(t, s, farFuture, 5000), rows)
	var want []notice.OutboxRow
	for _, r := range rows {
		if !r.Due.After(outboxT0) {
			want = append(want, r)
		}
	}
	checkRows(t, "due at t0", dueNotices(t, s, outboxT0, 5000), want)
	checkRows(t, "first 100 due at t0", dueNotices(t, s, outboxT0, 100), want[:100])
}

func testOutboxReschedule(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	a := outboxRow("ntc_a", outboxT0, blobOf(20, 1))
	b := outboxRow("ntc_b", outboxT0.Add(time.Second), blobOf(20, 2))
	c := outboxRow("ntc_c", outboxT0.Add(2*time.Second), blobOf(20, 3))
	for _, r := range []notice.OutboxRow{a, b, c} {
		mustPutNotice(t, s, r)
	}
	// Later, with attempts.
	mustReschedule(t, s, a.ID, outboxT0.Add(time.Hour+time.Microsecond), 1)
	a.Due, a.Attempts = outboxT0.Add(time.Hour), 1
	checkRows(t, "after moving a later", dueNotices(t, s, farFuture, 10), []notice.OutboxRow{b, c, a})
	checkRows(t, "due at t0+2s", dueNotices(t, s, outboxT0.Add(2*time.Second), 10), []notice.OutboxRow{b, c})
	// Sooner, attempts back to 0.
	mustReschedule(t, s, a.ID, outboxT0.Add(-time.Minute), 0)
	a.Due, a.Attempts = outboxT0.Add(-time.Minute), 0
	checkRows(t, "after moving a sooner", dueNotices(t, s, farFuture, 10), []notice.OutboxRow{a, b, c})
	// Same due, new attempts; the largest count.
	mustReschedule(t, s, c.ID, c.Due, math.MaxInt32)
	c.Attempts = math.MaxInt32
	// Onto another row's due time: ordered by id.
	mustReschedule(t, s, a.ID, b.Due, 7)
	a.Due, a.Attempts = b.Due, 7
	checkRows(t, "after tying a with b", dueNotices(t, s, farFuture, 10), []notice.OutboxRow{a, b, c})
	checkRows(t, "due at b's time, limit 1", dueNotices(t, s, b.Due, 1), []notice.OutboxRow{a})

	err := s.RescheduleNotice(t.Context(), "ntc_none", outboxT0, 1)
	if !errors.Is(err, notice.ErrNotQueued) {
		t.Fatalf("RescheduleNotice of an id not queued = %v, want an error wrapping notice.ErrNotQueued", err)
	}
	mustDelete(t, s, b.ID)
	err = s.RescheduleNotice(t.Context(), b.ID, outboxT0, 1)
	if !errors.Is(err, notice.ErrNotQueued) {
		t.Fatalf("RescheduleNotice of a deleted id = %v, want an error wrapping notice.ErrNotQueued", err)
	}
	for _, n := range []int{-1, math.MaxInt32 + 1} {
		if err := s.RescheduleNotice(t.Context(), a.ID, outboxT0, n); !errors.Is(err, notice.ErrInvalidRow) {
			t.Fatalf("RescheduleNotice with %d attempts = %v, want an error wrapping notice.ErrInvalidRow", n, err)
		}
	}
	checkOutbox(t, s, []notice.OutboxRow{a, c})
}

func mustDelete(t *testing.T, s notice.OutboxBackend, id string) {
	t.Helper()
	if err := s.DeleteNotice(t.Context(), id); err != nil {
		t.Fatalf("DeleteNotice(%s): %v", id, err)
	}
}

func testOutboxDelete(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	a := outboxRow("ntc_a", outboxT0, blobOf(20, 1))
	b := outboxRow("ntc_b", outboxT0, blobOf(20, 2))
	mustPutNotice(t, s, a)
	mustPutNotice(t, s, b)
	mustReschedule(t, s, a.ID, outboxT0.Add(time.Hour), 2)
	mustDelete(t, s, a.ID)
	checkOutbox(t, s, []notice.OutboxRow{b})
	mustDelete(t, s, a.ID) // again
	mustDelete(t, s, "ntc_never")
	checkOutbox(t, s, []notice.OutboxRow{b})
	// A deleted id may be queued anew.
	a2 := outboxRow(a.ID, outboxT0.Add(time.Minute), blobOf(30, 9))
	mustPutNotice(t, s, a2)
	checkOutbox(t, s, []notice.OutboxRow{b, a2})
	mustDelete(t, s, b.ID)
	mustDelete(t, s, a.ID)
	checkOutbox(t, s, nil)
}

func testOutboxRefusesInvalid(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	ok := outboxRow("ntc_ok", outboxT0, blobOf(10, 1))
	mustPutNotice(t, s, ok)
	badIDs := []string{"", strings.Repeat("z", notice.MaxOutboxIDLen+1), "ntc a", "ntc_\x00", "ntc_\n", "ntc_é", "ntc_\x7f", "\xff"}
	for _, id := range badIDs {
		if err := s.PutNotice(t.Context(), id, outboxT0, blobOf(10, 2)); !errors.Is(err, notice.ErrInvalidRow) {
			t.Errorf("PutNotice(%q) = %v, want an error wrapping notice.ErrInvalidRow", id, err)
		}
		if err := s.RescheduleNotice(t.Context(), id, outboxT0, 1); !errors.Is(err, notice.ErrInvalidRow) {
			t.Errorf("RescheduleNotice(%q) = %v, want an error wrapping notice.ErrInvalidRow", id, err)
		}
		if err := s.DeleteNotice(t.Context(), id); !errors.Is(err, notice.ErrInvalidRow) {
			t.Errorf("DeleteNotice(%q) = %v, want an error wrapping notice.ErrInvalidRow", id, err)
		}
	}
	for _, blob := range [][]byte{nil, {}} {
		if err := s.PutNotice(t.Context(), "ntc_empty", outboxT0, blob); !errors.Is(err, notice.ErrInvalidRow) {
			t.Errorf("PutNotice with blob %#v = %v, want an error wrapping notice.ErrInvalidRow", blob, err)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, err := s.DueNotices(t.Context(), farFuture, limit); err == nil {
			t.Errorf("DueNotices with limit %d succeeded", limit)
		}
	}
	checkOutbox(t, s, []notice.OutboxRow{ok})
}

// testOutboxConcurrent has 16 goroutines queue the same ids with their own
// blobs: each id is stored once, with one writer's blob and due time.
func testOutboxConcurrent(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	const (
		goroutines = 16
		ids        = 40
	)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		start = make(chan struct{})
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < ids; i++ {
				id := fmt.Sprintf("ntc_%02d", (i+g)%ids)
				due := outboxT0.Add(time.Duration(g) * time.Second)
				if err := s.PutNotice(context.Background(), id, due, []byte{byte(g), byte(i)}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent puts failed, first: %v", len(errs), errs[0])
	}
	rows := dueNotices(t, s, farFuture, 1000)
	if len(rows) != ids {
		t.Fatalf("%d rows after concurrent puts of %d ids", len(rows), ids)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.ID] {
			t.Fatalf("id %s stored twice", r.ID)
		}
		seen[r.ID] = true
		if len(r.Blob) != 2 || int(r.Blob[0]) >= goroutines {
			t.Fatalf("row %s: blob %x is no writer's", r.ID, r.Blob)
		}
		g := int(r.Blob[0])
		if want := outboxT0.Add(time.Duration(g) * time.Second); !r.Due.Equal(want) || r.Attempts != 0 {
			t.Fatalf("row %s: due %v attempts %d, not as writer %d put it", r.ID, r.Due, r.Attempts, g)
		}
	}
	if !slices.IsSortedFunc(rows, func(a, b notice.OutboxRow) int {
		if c := a.Due.Compare(b.Due); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}) {
		t.Fatal("rows not in (due, id) order")
	}
}

func testOutboxReopen(t *testing.T, open func(t *testing.T) outboxStore) {
	s := open(t)
	a := outboxRow("ntc_a", outboxT0, blobOf(20, 1))
	b := outboxRow("ntc_b", outboxT0.Add(time.Second), blobOf(20, 2))
	c := outboxRow("ntc_c", outboxT0.Add(2*time.Second), blobOf(20, 3))
	for _, r := range []notice.OutboxRow{a, b, c} {
		mustPutNotice(t, s, r)
	}
	mustReschedule(t, s, a.ID, outboxT0.Add(time.Hour), 4)
	a.Due, a.Attempts = outboxT0.Add(time.Hour), 4
	mustDelete(t, s, b.ID)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openClosed(t, open)
	checkOutbox(t, s, []notice.OutboxRow{a, c})
	checkRows(t, "due at t0+2s after reopen", dueNotices(t, s, outboxT0.Add(2*time.Second), 10), []notice.OutboxRow{c})
}

func testOutboxNotInStats(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	f := newFixture(1, 5)
	mustPut(t, s, &f.batch, 5)
	for i := 0; i < 4; i++ {
		mustPutNotice(t, s, outboxRow(fmt.Sprintf("ntc_%d", i), outboxT0, blobOf(1000, byte(i))))
	}
	mustStats(t, s, statsOf(&f.batch))
}

func testOutboxCanceled(t *testing.T, open func(t *testing.T) outboxStore) {
	s := openClosed(t, open)
	a := outboxRow("ntc_a", outboxT0, blobOf(20, 1))
	mustPutNotice(t, s, a)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutNotice(ctx, "ntc_b", outboxT0, blobOf(20, 2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutNotice with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	if err := s.RescheduleNotice(ctx, a.ID, farFuture, 9); !errors.Is(err, context.Canceled) {
		t.Fatalf("RescheduleNotice with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	if err := s.DeleteNotice(ctx, a.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("DeleteNotice with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	if _, err := s.DueNotices(ctx, farFuture, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("DueNotices with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	checkOutbox(t, s, []notice.OutboxRow{a})
}

func testOutboxAfterClose(t *testing.T, open func(t *testing.T) outboxStore) {
	s := open(t)
	mustPutNotice(t, s, outboxRow("ntc_a", outboxT0, blobOf(20, 1)))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.PutNotice(t.Context(), "ntc_b", outboxT0, blobOf(20, 2)); err == nil {
		t.Fatal("PutNotice on a closed store succeeded")
	}
	if _, err := s.DueNotices(t.Context(), farFuture, 10); err == nil {
		t.Fatal("DueNotices on a closed store succeeded")
	}
	if err := s.RescheduleNotice(t.Context(), "ntc_a", outboxT0, 1); err == nil {
		t.Fatal("RescheduleNotice on a closed store succeeded")
	}
	if err := s.DeleteNotice(t.Context(), "ntc_a"); err == nil {
		t.Fatal("DeleteNotice on a closed store succeeded")
	}
}
