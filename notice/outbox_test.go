package notice_test

import (
	"bytes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/store/boltstore"
)

var obT0 = time.Date(2026, 5, 17, 10, 0, 0, 0, time.UTC)

// obStore opens a bbolt store in t's temporary directory, closed at the
// end of the test.
func obStore(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// obAEAD is GatewayKeys.AEAD("notice/v1") of fresh gateway keys.
func obAEAD(t *testing.T) cipher.AEAD {
	t.Helper()
	keys, err := crypto.NewGatewayKeys()
	if err != nil {
		t.Fatal(err)
	}
	a, err := keys.AEAD("notice/v1")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func obNotice(id string, due time.Time) *notice.Notice {
	return &notice.Notice{
		ID: id, Kind: notice.Activated, UserID: "u-" + id, Email: id + "@example.com", Locale: "nl",
		OrderID: "ord_" + id, WindowFrom: "2026-05-01", WindowTo: "2026-05-10", Channels: 2,
		Purpose: "data leak investigation", LegalBasis: "art. 6(1)(f) GDPR", PolicyClause: "4.2 confidentiality",
		ApprovedBy: []string{"hr", "legal"}, ActivatedAt: obT0.Add(-time.Hour), ValidUntil: obT0.AddDate(0, 0, 14),
		Accessed: notice.Accessed{Views: 1, First: obT0.Add(-time.Minute), Last: obT0.Add(-time.Minute)},
		DueAt:    due,
	}
}

func obJSON(t *testing.T, n *notice.Notice) string {
	t.Helper()
	b, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func obEnqueue(t *testing.T, ob *notice.Outbox, n *notice.Notice) {
	t.Helper()
	if err := ob.Enqueue(t.Context(), n); err != nil {
		t.Fatalf("Enqueue(%s): %v", n.ID, err)
	}
}

// obRows reads every queued row straight from the backend.
func obRows(t *testing.T, b notice.OutboxBackend) []notice.OutboxRow {
	t.Helper()
	rows, err := b.DueNotices(t.Context(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), 10000)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func obRow(t *testing.T, b notice.OutboxBackend, id string) (notice.OutboxRow, bool) {
	t.Helper()
	for _, r := range obRows(t, b) {
		if r.ID == id {
			return r, true
		}
	}
	return notice.OutboxRow{}, false
}

func TestOutboxRoundTrip(t *testing.T) {
	s := obStore(t)
	ob := notice.NewOutbox(s, obAEAD(t))
	a := obNotice("ntc_a", obT0)
	b := obNotice("ntc_b", obT0.Add(-time.Minute))
	b.Kind, b.Ended, b.EndedAt, b.Email = notice.Ended, "revoked", obT0, ""
	c := obNotice("ntc_c", obT0.Add(time.Hour))
	for _, n := range []*notice.Notice{a, b, c} {
		obEnqueue(t, ob, n)
	}
	ps, err := ob.Due(t.Context(), obT0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 {
		t.Fatalf("Due returned %d notices, want 2", len(ps))
	}
	for i, want := range []*notice.Notice{b, a} {
		if got := obJSON(t, ps[i].Notice); got != obJSON(t, want) {
			t.Fatalf("notice %d opened as\n%s\nwant\n%s", i, got, obJSON(t, want))
		}
		if !ps[i].Due.Equal(want.DueAt) || ps[i].Attempts != 0 {
			t.Fatalf("notice %s: due %v attempts %d", want.ID, ps[i].Due, ps[i].Attempts)
		}
	}
	// Only the id and schedule are in clear.
	for _, r := range obRows(t, s) {
		for _, clear := range []string{"u-ntc_", "@example.com", "ord_ntc", "leak", "legal"} {
			if bytes.Contains(r.Blob, []byte(clear)) {
				t.Fatalf("row %s: blob holds %q in clear", r.ID, clear)
			}
		}
	}
}

func TestOutboxEnqueueIsIdempotent(t *testing.T) {
	s := obStore(t)
	ob := notice.NewOutbox(s, obAEAD(t))
	n := obNotice("ntc_a", obT0)
	obEnqueue(t, ob, n)
	other := obNotice("ntc_a", obT0.Add(-time.Hour))
	other.Purpose = "something else"
	obEnqueue(t, ob, other)
	ps, err := ob.Due(t.Context(), obT0, 10)
	if err != nil || len(ps) != 1 || ps[0].Notice.Purpose != n.Purpose || !ps[0].Due.Equal(obT0) {
		t.Fatalf("Due after a second Enqueue = %d notices, %v; want the first one unchanged", len(ps), err)
	}
}

func TestOutboxNeverEarly(t *testing.T) {
	s := obStore(t)
	ob := notice.NewOutbox(s, obAEAD(t))
	due := obT0.Add(500 * time.Microsecond)
	obEnqueue(t, ob, obNotice("ntc_a", due))
	if ps, err := ob.Due(t.Context(), due, 10); err != nil || len(ps) != 0 {
		t.Fatalf("Due at a sub-millisecond due time = %d notices, %v; want none until the next millisecond", len(ps), err)
	}
	if ps, err := ob.Due(t.Context(), obT0.Add(time.Millisecond), 10); err != nil || len(ps) != 1 {
		t.Fatalf("Due a millisecond later = %d notices, %v", len(ps), err)
	}
}

func TestOutboxEnqueueRefuses(t *testing.T) {
	ob := notice.NewOutbox(obStore(t), obAEAD(t))
	mod := func(f func(n *notice.Notice)) *notice.Notice {
		n := obNotice("ntc_a", obT0)
		f(n)
		return n
	}
	for name, n := range map[string]*notice.Notice{
		"nil":          nil,
		"no id":        mod(func(n *notice.Notice) { n.ID = "" }),
		"long id":      mod(func(n *notice.Notice) { n.ID = strings.Repeat("x", 65) }),
		"id w/ space":  mod(func(n *notice.Notice) { n.ID = "ntc a" }),
		"unknown kind": mod(func(n *notice.Notice) { n.Kind = "reminder" }),
		"no recipient": mod(func(n *notice.Notice) { n.UserID, n.Email = "", "" }),
		"no due time":  mod(func(n *notice.Notice) { n.DueAt = time.Time{} }),
	} {
		if err := ob.Enqueue(t.Context(), n); err == nil {
			t.Errorf("Enqueue(%s) succeeded", name)
		}
	}
	if err := ob.Enqueue(t.Context(), mod(func(n *notice.Notice) { n.UserID = "" })); err != nil {
		t.Errorf("Enqueue of a notice with only an e-mail address: %v", err)
	}
}

// TestOutboxUnreadable: a blob moved to another id, or sealed under other
// keys, does not open; Due names it, returns the others, and drops nothing.
func TestOutboxUnreadable(t *testing.T) {
	s := obStore(t)
	aead := obAEAD(t)
	ob := notice.NewOutbox(s, aead)
	obEnqueue(t, ob, obNotice("ntc_a", obT0))
	obEnqueue(t, ob, obNotice("ntc_c", obT0))
	rowA, _ := obRow(t, s, "ntc_a")
	if err := s.PutNotice(t.Context(), "ntc_b", obT0, rowA.Blob); err != nil { // a's blob under b's id
		t.Fatal(err)
	}
	ps, err := ob.Due(t.Context(), obT0, 10)
	var ue *notice.UnreadableError
	if !errors.As(err, &ue) || !errors.Is(err, notice.ErrUnreadable) {
		t.Fatalf("Due error = %v, want an *UnreadableError wrapping ErrUnreadable", err)
	}
	if len(ue.Rows) != 1 || ue.Rows[0].ID != "ntc_b" || !strings.Contains(err.Error(), "ntc_b") {
		t.Fatalf("unreadable rows %+v (%v), want ntc_b named", ue.Rows, err)
	}
	if len(ps) != 2 || ps[0].Notice.ID != "ntc_a" || ps[1].Notice.ID != "ntc_c" {
		t.Fatalf("Due returned %d notices, want ntc_a and ntc_c", len(ps))
	}
	if len(obRows(t, s)) != 3 {
		t.Fatal("an unreadable row was dropped")
	}

	// Under other keys nothing opens, and nothing is dropped.
	other := notice.NewOutbox(s, obAEAD(t))
	ps, err = other.Due(t.Context(), obT0, 10)
	if !errors.As(err, &ue) || len(ue.Rows) != 3 || len(ps) != 0 {
		t.Fatalf("Due under other keys = %d notices, %v; want 3 unreadable", len(ps), err)
	}
	if len(obRows(t, s)) != 3 {
		t.Fatal("an unreadable row was dropped")
	}
}

func TestOutboxRescheduleDoneRetry(t *testing.T) {
	s := obStore(t)
	ob := notice.NewOutbox(s, obAEAD(t))
	obEnqueue(t, ob, obNotice("ntc_a", obT0))
	obEnqueue(t, ob, obNotice("ntc_b", obT0.AddDate(0, 0, 30)))

	ps, err := ob.Due(t.Context(), obT0, 10)
	if err != nil || len(ps) != 1 {
		t.Fatal(len(ps), err)
	}
	if err := ob.Retry(t.Context(), "ntc_a", obT0.Add(time.Minute), 1); err != nil {
		t.Fatal(err)
	}
	if r, _ := obRow(t, s, "ntc_a"); !r.Due.Equal(obT0.Add(time.Minute)) || r.Attempts != 1 {
		t.Fatalf("after Retry: %+v", r)
	}
	// A renewed deferral, and a notice brought forward; attempts start afresh.
	if err := ob.Reschedule(t.Context(), "ntc_a", obT0.AddDate(0, 0, 10)); err != nil {
		t.Fatal(err)
	}
	if err := ob.Reschedule(t.Context(), "ntc_b", obT0); err != nil {
		t.Fatal(err)
	}
	if r, _ := obRow(t, s, "ntc_a"); !r.Due.Equal(obT0.AddDate(0, 0, 10)) || r.Attempts != 0 {
		t.Fatalf("after Reschedule: %+v", r)
	}
	ps, err = ob.Due(t.Context(), obT0, 10)
	if err != nil || len(ps) != 1 || ps[0].Notice.ID != "ntc_b" {
		t.Fatalf("Due after Reschedule = %d notices, %v; want ntc_b", len(ps), err)
	}
	if err := ob.Done(t.Context(), "ntc_b"); err != nil {
		t.Fatal(err)
	}
	if err := ob.Reschedule(t.Context(), "ntc_b", obT0); !errors.Is(err, notice.ErrNotQueued) {
		t.Fatalf("Reschedule of a delivered notice = %v, want ErrNotQueued", err)
	}
	if _, ok := obRow(t, s, "ntc_b"); ok {
		t.Fatal("Done left the notice queued")
	}
}

// TestOutboxRescheduleWhileInFlight: a deferral renewed while a delivery is
// failing is not overwritten by the dispatcher's retry time.
func TestOutboxRescheduleWhileInFlight(t *testing.T) {
	s := obStore(t)
	ob := notice.NewOutbox(s, obAEAD(t))
	obEnqueue(t, ob, obNotice("ntc_a", obT0))
	if _, err := ob.Due(t.Context(), obT0, 10); err != nil {
		t.Fatal(err)
	}
	later := obT0.AddDate(0, 0, 10)
	if err := ob.Reschedule(t.Context(), "ntc_a", later); err != nil {
		t.Fatal(err)
	}
	if err := ob.Retry(t.Context(), "ntc_a", obT0.Add(time.Minute), 3); err != nil {
		t.Fatal(err)
	}
	if r, _ := obRow(t, s, "ntc_a"); !r.Due.Equal(later) || r.Attempts != 0 {
		t.Fatalf("after a Retry that followed a Reschedule: due %v attempts %d, want %v and 0", r.Due, r.Attempts, later)
	}
	// The override is spent: a later Retry is taken as given.
	if _, err := ob.Due(t.Context(), later, 10); err != nil {
		t.Fatal(err)
	}
	if err := ob.Retry(t.Context(), "ntc_a", later.Add(time.Minute), 1); err != nil {
		t.Fatal(err)
	}
	if r, _ := obRow(t, s, "ntc_a"); !r.Due.Equal(later.Add(time.Minute)) || r.Attempts != 1 {
		t.Fatalf("after a plain Retry: due %v attempts %d", r.Due, r.Attempts)
	}
}
