package audit_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
)

// memBackend is an in-memory audit.Backend for the tests of Log's own
// logic; the tamper tests use the real stores.
type memBackend struct {
	mu      sync.Mutex
	entries []audit.Entry
	// beforeAppend, if set, runs at the start of each AppendAudit (outside
	// the lock), e.g. to let "another writer" append first.
	beforeAppend func()
}

func (m *memBackend) AppendAudit(_ context.Context, e audit.Entry) error {
	if m.beforeAppend != nil {
		m.beforeAppend()
	}
	if err := e.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var last audit.Entry
	if n := len(m.entries); n > 0 {
		last = m.entries[n-1]
	}
	if e.Seq != last.Seq+1 || e.Prev != last.Hash {
		return fmt.Errorf("%w: entry %d after %d", audit.ErrConflict, e.Seq, last.Seq)
	}
	m.entries = append(m.entries, e)
	return nil
}

func (m *memBackend) LastAudit(context.Context) (audit.Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.entries) == 0 {
		return audit.Entry{}, false, nil
	}
	return m.entries[len(m.entries)-1], true, nil
}

func (m *memBackend) AuditEntries(_ context.Context, from uint64, fn func(audit.Entry) error) error {
	m.mu.Lock()
	es := append([]audit.Entry(nil), m.entries...)
	m.mu.Unlock()
	for _, e := range es {
		if e.Seq >= from {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// sample is an entry with every field set.
func sample() audit.Entry {
	e := audit.Entry{
		Seq:            42,
		Time:           time.Date(2026, 5, 17, 9, 30, 0, 123456000, time.UTC),
		ActorRole:      "legal",
		ActorPseudonym: "ps_5f1c0e",
		Action:         audit.ActionApproved,
		OrderID:        "ord_7Qm2",
		Object:         "slot 2",
		Detail:         "days=11",
	}
	for i := range e.Prev {
		e.Prev[i] = byte(i)
	}
	e.Hash = e.ComputeHash()
	return e
}

// TestCanonicalEncoding rebuilds the canonical encoding by hand from the
// package documentation and checks Canonical and ComputeHash against it,
// and pins the hash of a fixed entry so that a change of format is noticed.
func TestCanonicalEncoding(t *testing.T) {
	e := sample()
	var want []byte
	want = binary.BigEndian.AppendUint64(want, 42)
	want = binary.BigEndian.AppendUint64(want, uint64(e.Time.UnixMicro()))
	for _, s := range []string{"legal", "ps_5f1c0e", "approved", "ord_7Qm2", "slot 2", "days=11"} {
		want = binary.BigEndian.AppendUint32(want, uint32(len(s)))
		want = append(want, s...)
	}
	want = append(want, e.Prev[:]...)
	if got := e.Canonical(); string(got) != string(want) {
		t.Fatalf("Canonical =\n%x\nwant\n%x", got, want)
	}
	sum := sha256.Sum256(append([]byte("sealgate/audit/v1\n"), want...))
	if e.ComputeHash() != sum {
		t.Fatalf("ComputeHash = %x, want SHA-256(domain || canonical) = %x", e.ComputeHash(), sum)
	}
	const golden = "bc711becd726a4276dadf322252c053e74f11c5a3ca5a11250254dfb01b49511" // also computed independently in Python
	if got := hex.EncodeToString(sum[:]); got != golden {
		t.Errorf("hash of the sample entry changed: %s (pinned %s); a format change needs a new domain (v2)", got, golden)
	}
}

// TestEveryFieldIsHashed changes each field in turn, including shifting a
// byte across a field boundary, and expects a different hash each time.
func TestEveryFieldIsHashed(t *testing.T) {
	base := sample()
	h0 := base.ComputeHash()
	mods := map[string]func(*audit.Entry){
		"seq":             func(e *audit.Entry) { e.Seq++ },
		"time":            func(e *audit.Entry) { e.Time = e.Time.Add(time.Microsecond) },
		"actor role":      func(e *audit.Entry) { e.ActorRole = "hr" },
		"actor pseudonym": func(e *audit.Entry) { e.ActorPseudonym += "0" },
		"action":          func(e *audit.Entry) { e.Action = audit.ActionRejected },
		"order id":        func(e *audit.Entry) { e.OrderID = "ord_7Qm3" },
		"object":          func(e *audit.Entry) { e.Object = "" },
		"detail":          func(e *audit.Entry) { e.Detail = "days=12" },
		"prev":            func(e *audit.Entry) { e.Prev[31] ^= 0x80 },
		"boundary role/pseudonym": func(e *audit.Entry) {
			e.ActorRole, e.ActorPseudonym = "legalp", "s_5f1c0e"
		},
		"boundary object/detail": func(e *audit.Entry) {
			e.Object, e.Detail = "slot 2days=11", ""
		},
	}
	for name, mod := range mods {
		e := base
		mod(&e)
		if e.ComputeHash() == h0 {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	// Hash itself is not hashed; the time zone is not part of the instant.
	e := base
	e.Hash = [32]byte{1}
	e.Time = e.Time.In(time.FixedZone("x", 3600))
	if e.ComputeHash() != h0 {
		t.Error("hash depends on the Hash field or the time zone")
	}
}

func TestRecordValidate(t *testing.T) {
	ok := audit.Record{ActorRole: "requester", ActorPseudonym: "p1", Action: audit.ActionViewed, OrderID: "o", Object: "page 3", Detail: "posts=50"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	for _, a := range audit.Actions() {
		r := ok
		r.Action = a
		if err := r.Validate(); err != nil {
			t.Errorf("action %s refused: %v", a, err)
		}
	}
	bad := map[string]func(*audit.Record){
		"empty role":          func(r *audit.Record) { r.ActorRole = "" },
		"empty action":        func(r *audit.Record) { r.Action = "" },
		"unknown action":      func(r *audit.Record) { r.Action = "read" },
		"NUL":                 func(r *audit.Record) { r.Detail = "a\x00" },
		"newline":             func(r *audit.Record) { r.Detail = "line1\nline2" },
		"escape sequence":     func(r *audit.Record) { r.Object = "\x1b[2J" },
		"C1 control":          func(r *audit.Record) { r.OrderID = "o\u0085" },
		"invalid UTF-8":       func(r *audit.Record) { r.ActorPseudonym = "\xc3\x28" },
		"too long":            func(r *audit.Record) { r.Detail = strings.Repeat("a", audit.MaxFieldLen+1) },
		"too long multi-byte": func(r *audit.Record) { r.Detail = strings.Repeat("é", audit.MaxFieldLen/2+1) },
	}
	for name, mod := range bad {
		r := ok
		mod(&r)
		err := r.Validate()
		if !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("%s: Validate = %v, want ErrInvalid", name, err)
		}
	}
	// The refusal does not echo the value, which might be what must not leak.
	r := ok
	r.Detail = "secret canary text\x00"
	if err := r.Validate(); err == nil || strings.Contains(err.Error(), "canary") {
		t.Errorf("Validate error %v echoes the refused value", err)
	}
}

func TestCheckpointText(t *testing.T) {
	c := audit.Checkpoint{Seq: 1234, Time: time.Date(2026, 5, 17, 12, 0, 5, 0, time.UTC)}
	for i := range c.Hash {
		c.Hash[i] = byte(0xa0 + i)
	}
	s := c.String()
	want := "sealgate-audit-checkpoint-v1 seq=1234 hash=a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf time=2026-05-17T12:00:05Z"
	if s != want {
		t.Fatalf("String =\n%s\nwant\n%s", s, want)
	}
	got, err := audit.ParseCheckpoint("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != c.Seq || got.Hash != c.Hash || !got.Time.Equal(c.Time) {
		t.Fatalf("round trip = %+v, want %+v", got, c)
	}
	// Another zone parses to the same instant.
	if got, err := audit.ParseCheckpoint(strings.Replace(s, "12:00:05Z", "14:00:05+02:00", 1)); err != nil || !got.Time.Equal(c.Time) {
		t.Fatalf("offset time: %v, %v", got.Time, err)
	}
	empty := audit.Checkpoint{Time: c.Time}
	if got, err := audit.ParseCheckpoint(empty.String()); err != nil || got.Seq != 0 {
		t.Fatalf("empty-log checkpoint: %+v, %v", got, err)
	}

	hx := hex.EncodeToString(c.Hash[:])
	for _, bad := range []string{
		"",
		"sealgate-audit-checkpoint-v2 seq=1234 hash=" + hx + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + hx,
		"sealgate-audit-checkpoint-v1 hash=" + hx + " seq=1234 time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=-1 hash=" + hx + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=01234 hash=" + hx + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + hx[:62] + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + strings.ToUpper(hx) + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + hx[:63] + "g time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + hx + " time=yesterday",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + strings.Repeat("0", 64) + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=0 hash=" + hx + " time=2026-05-17T12:00:05Z",
		"sealgate-audit-checkpoint-v1 seq=1234 hash=" + hx + " time=2026-05-17T12:00:05Z extra",
	} {
		if _, err := audit.ParseCheckpoint(bad); err == nil {
			t.Errorf("ParseCheckpoint(%q) succeeded", bad)
		}
	}
}

func TestLogAppend(t *testing.T) {
	m := &memBackend{}
	now := time.Date(2026, 5, 17, 11, 0, 0, 999, time.FixedZone("CEST", 7200))
	l := audit.New(m, func() time.Time { return now })
	c, err := l.Checkpoint(t.Context())
	if err != nil || c.Seq != 0 || c.Hash != ([32]byte{}) {
		t.Fatalf("checkpoint of an empty log = %+v, %v", c, err)
	}
	r := audit.Record{ActorRole: "requester", ActorPseudonym: "p1", Action: audit.ActionOrderFiled, OrderID: "o1", Detail: "window=11d"}
	e1, err := l.Append(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if e1.Seq != 1 || e1.Prev != ([32]byte{}) || e1.Hash != e1.ComputeHash() {
		t.Fatalf("first entry = %+v", e1)
	}
	if !e1.Time.Equal(now.Truncate(time.Microsecond)) || e1.Time.Location() != time.UTC {
		t.Fatalf("time = %v, want %v in UTC to the microsecond", e1.Time, now)
	}
	if e1.ActorRole != r.ActorRole || e1.ActorPseudonym != r.ActorPseudonym || e1.Action != r.Action ||
		e1.OrderID != r.OrderID || e1.Object != r.Object || e1.Detail != r.Detail {
		t.Fatalf("entry fields %+v do not match the record %+v", e1, r)
	}
	e2, err := l.Append(t.Context(), audit.Record{ActorRole: "legal", Action: audit.ActionApproved, OrderID: "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if e2.Seq != 2 || e2.Prev != e1.Hash {
		t.Fatalf("second entry seq %d prev %x, want 2 and %x", e2.Seq, e2.Prev, e1.Hash)
	}
	c, err = l.Checkpoint(t.Context())
	if err != nil || c.Seq != 2 || c.Hash != e2.Hash || !c.Time.Equal(now.Truncate(time.Second)) {
		t.Fatalf("checkpoint = %+v, %v", c, err)
	}

	// An invalid record is refused before anything is written.
	if _, err := l.Append(t.Context(), audit.Record{ActorRole: "x", Action: "peeked"}); !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("Append(unknown action) = %v, want ErrInvalid", err)
	}
	if len(m.entries) != 2 {
		t.Fatalf("%d entries stored, want 2", len(m.entries))
	}
	if rep, err := audit.Verify(t.Context(), m, &c); err != nil || !rep.CheckpointOK || rep.Entries != 2 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// TestLogRetriesConflicts lets another writer append just before each of
// the Log's first attempts; the Log must land on the new head.
func TestLogRetriesConflicts(t *testing.T) {
	m := &memBackend{}
	other := audit.New(m, nil)
	l := audit.New(m, nil)
	interfere, inOther := 3, false
	m.beforeAppend = func() {
		if interfere > 0 && !inOther { // other's own appends pass through here too
			interfere--
			inOther = true
			if _, err := other.Append(context.Background(), audit.Record{ActorRole: "system", Action: audit.ActionExpired}); err != nil {
				t.Error(err)
			}
			inOther = false
		}
	}
	e, err := l.Append(t.Context(), audit.Record{ActorRole: "requester", Action: audit.ActionViewed})
	if err != nil {
		t.Fatalf("Append after conflicts: %v", err)
	}
	if e.Seq != 4 || e.Prev != m.entries[2].Hash {
		t.Fatalf("entry seq %d, want 4 linked to entry 3", e.Seq)
	}
	if _, err := audit.Verify(t.Context(), m, nil); err != nil {
		t.Fatal(err)
	}

	// A writer that always wins: Append gives up with ErrConflict, having
	// stored nothing of its own.
	m.beforeAppend = func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		last := m.entries[len(m.entries)-1]
		e := audit.Entry{Seq: last.Seq + 1, Prev: last.Hash, Time: last.Time, ActorRole: "system", Action: audit.ActionExpired}
		e.Hash = e.ComputeHash()
		m.entries = append(m.entries, e)
	}
	before := len(m.entries)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err = l.Append(ctx, audit.Record{ActorRole: "requester", Action: audit.ActionExported})
	if !errors.Is(err, audit.ErrConflict) {
		t.Fatalf("Append against an always-faster writer = %v, want ErrConflict", err)
	}
	for _, e := range m.entries[before:] {
		if e.Action == audit.ActionExported {
			t.Fatal("the refused append was stored")
		}
	}
	if n := len(m.entries) - before; n < 3 {
		t.Fatalf("Append made %d attempts before giving up; want retries", n)
	}
}

func TestVerifyErrorText(t *testing.T) {
	err := error(&audit.VerifyError{Seq: 7, Problem: audit.ProblemMissing, Detail: "entry 7 is missing (deleted or moved)"})
	if got := err.Error(); got != "audit entry 7: missing: entry 7 is missing (deleted or moved)" {
		t.Fatalf("Error() = %q", got)
	}
	var ve *audit.VerifyError
	if !errors.As(fmt.Errorf("wrapped: %w", err), &ve) || ve.Seq != 7 {
		t.Fatal("VerifyError does not survive wrapping")
	}
}
