package notice

// The outbox is a durable queue of sealed notices in the retention store.
//
// A row holds the notice id, when it is due (Unix milliseconds), how many
// delivery attempts failed so far, and the blob:
//
//	blob = nonce (12, random) | AES-256-GCM(notice JSON, AAD = "sealgate/notice/v1" | id)
//
// under GatewayKeys.AEAD("notice/v1"). Only the id and the schedule are in
// clear, because the store must order rows by them; the recipient (user id,
// e-mail), the order and everything else are in the blob, so the store's
// administrator does not learn who is being investigated. A blob moved to
// another id does not open. The schedule is not authenticated: whoever can
// write the store can change when a notice is sent, as they can delete it;
// the audit log, not the outbox, is the evidence that notices were queued.

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// MaxOutboxIDLen is the longest notice id the outbox stores, in bytes.
const MaxOutboxIDLen = 64

// ErrInvalidRow is wrapped by the errors for an outbox row the backends
// refuse: a bad id, a negative attempt count, an empty blob.
var ErrInvalidRow = errors.New("invalid outbox row")

// ErrNotQueued is wrapped by the error for rescheduling a notice that is not
// in the outbox: it was delivered already, or never queued.
var ErrNotQueued = errors.New("notice is not in the outbox")

// ErrUnreadable is wrapped by the error for a queued notice whose blob does
// not open (other gateway keys, a damaged or tampered row).
var ErrUnreadable = errors.New("queued notice cannot be opened")

// OutboxRow is one queued notice as the store holds it.
type OutboxRow struct {
	ID       string
	Due      time.Time // UTC, millisecond precision
	Attempts int       // failed delivery attempts so far
	Blob     []byte    // the sealed notice
}

// OutboxBackend is the outbox's storage; boltstore.Store and pgstore.Store
// implement it (contract: storetest.RunOutbox). Every write is durable when
// it returns. Due times are kept in Unix milliseconds, rounded down.
type OutboxBackend interface {
	// PutNotice inserts a row with zero attempts. If the id is already
	// queued, the stored row is left unchanged and PutNotice succeeds.
	PutNotice(ctx context.Context, id string, due time.Time, blob []byte) error
	// DueNotices returns up to limit (> 0) rows with due <= now, ordered by
	// due, then by id (bytewise).
	DueNotices(ctx context.Context, now time.Time, limit int) ([]OutboxRow, error)
	// RescheduleNotice sets a queued row's due time and attempt count; for
	// an id not queued it fails with an error wrapping ErrNotQueued.
	RescheduleNotice(ctx context.Context, id string, due time.Time, attempts int) error
	// DeleteNotice removes a row; deleting an id not queued succeeds.
	DeleteNotice(ctx context.Context, id string) error
}

// CheckOutboxID reports whether id can be stored: 1 to MaxOutboxIDLen
// printable ASCII characters (no space). Backends call it.
func CheckOutboxID(id string) error {
	if id == "" || len(id) > MaxOutboxIDLen {
		return fmt.Errorf("%w: id of %d bytes (want 1 to %d)", ErrInvalidRow, len(id), MaxOutboxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("%w: id has a byte 0x%02x (want printable ASCII)", ErrInvalidRow, c)
		}
	}
	return nil
}

// CheckOutboxAttempts reports whether n can be stored as an attempt count:
// 0 to math.MaxInt32. Backends call it.
func CheckOutboxAttempts(n int) error {
	if n < 0 || n > math.MaxInt32 {
		return fmt.Errorf("%w: %d attempts", ErrInvalidRow, n)
	}
	return nil
}

// noticeAAD prefixes the id in the associated data of a sealed notice.
const noticeAAD = "sealgate/notice/v1"

// Outbox queues notices, sealed, in an OutboxBackend. It is safe for
// concurrent use; one Dispatcher should drain it per store.
type Outbox struct {
	b    OutboxBackend
	aead cipher.AEAD

	// mu serializes Reschedule with the dispatcher's Due/Retry/Done, and
	// inflight holds the ids Due returned that are not yet Done or Retried,
	// with the schedule a Reschedule made meanwhile, so that a failing
	// delivery's Retry does not overwrite a renewed deferral.
	mu       sync.Mutex
	inflight map[string]*schedule
}

type schedule struct{ due time.Time }

// Pending is a queued notice that is due.
type Pending struct {
	Notice   *Notice
	Due      time.Time // as scheduled (may differ from Notice.DueAt after a Reschedule)
	Attempts int       // failed delivery attempts so far
}

// NewOutbox returns an outbox over b that seals with aead, which must be
// GatewayKeys.AEAD("notice/v1") (a 12-byte-nonce AEAD).
func NewOutbox(b OutboxBackend, aead cipher.AEAD) *Outbox {
	return &Outbox{b: b, aead: aead, inflight: map[string]*schedule{}}
}

// Enqueue seals n and queues it, due at n.DueAt (rounded up to the
// millisecond, so never early). Enqueuing an id that is queued already
// changes nothing.
func (o *Outbox) Enqueue(ctx context.Context, n *Notice) error {
	if n == nil {
		return errors.New("enqueue notice: nil notice")
	}
	if err := CheckOutboxID(n.ID); err != nil {
		return fmt.Errorf("enqueue notice: %w", err)
	}
	switch {
	case n.Kind != Activated && n.Kind != Ended:
		return fmt.Errorf("enqueue notice %s: unknown kind %q", n.ID, n.Kind)
	case n.UserID == "" && n.Email == "":
		return fmt.Errorf("enqueue notice %s: no recipient", n.ID)
	case n.DueAt.IsZero():
		return fmt.Errorf("enqueue notice %s: no due time", n.ID)
	}
	blob, err := o.seal(n)
	if err != nil {
		return fmt.Errorf("enqueue notice %s: %w", n.ID, err)
	}
	if err := o.b.PutNotice(ctx, n.ID, ceilMilli(n.DueAt), blob); err != nil {
		return fmt.Errorf("enqueue notice %s: %w", n.ID, err)
	}
	return nil
}

// UnreadableError is returned by Due, next to the notices that did open,
// for rows whose blob did not open. Those rows stay queued; it wraps
// ErrUnreadable.
type UnreadableError struct {
	Rows []UnreadableRow
}

// UnreadableRow is one row that did not open.
type UnreadableRow struct {
	ID       string
	Due      time.Time
	Attempts int
	Err      error
}

func (e *UnreadableError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d queued notices cannot be opened:", len(e.Rows))
	for i, r := range e.Rows {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %s: %v", r.ID, r.Err)
	}
	return b.String()
}

func (e *UnreadableError) Unwrap() error { return ErrUnreadable }

// Due returns up to limit notices due at now, opened, in (due, id) order.
// If some rows do not open, it returns the others and an *UnreadableError
// naming each; nothing is dropped. Every notice returned must be followed
// by Done or Retry.
func (o *Outbox) Due(ctx context.Context, now time.Time, limit int) ([]*Pending, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rows, err := o.b.DueNotices(ctx, now, limit)
	if err != nil {
		return nil, fmt.Errorf("due notices: %w", err)
	}
	out := make([]*Pending, 0, len(rows))
	var bad []UnreadableRow
	for _, r := range rows {
		n, err := o.open(r.ID, r.Blob)
		if err != nil {
			bad = append(bad, UnreadableRow{ID: r.ID, Due: r.Due, Attempts: r.Attempts, Err: err})
			continue
		}
		out = append(out, &Pending{Notice: n, Due: r.Due, Attempts: r.Attempts})
		o.inflight[r.ID] = nil
	}
	for _, r := range bad {
		o.inflight[r.ID] = nil
	}
	if len(bad) > 0 {
		return out, &UnreadableError{Rows: bad}
	}
	return out, nil
}

// Done removes a delivered notice.
func (o *Outbox) Done(ctx context.Context, id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.b.DeleteNotice(ctx, id); err != nil {
		return fmt.Errorf("notice %s done: %w", id, err)
	}
	delete(o.inflight, id)
	return nil
}

// Retry records a failed delivery: attempts failed so far, next try at next.
// If the notice was rescheduled while it was being delivered, that schedule
// wins (a renewed deferral is kept; a notice brought forward is tried then).
func (o *Outbox) Retry(ctx context.Context, id string, next time.Time, attempts int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.inflight[id]; s != nil {
		next, attempts = s.due, 0
	}
	if err := o.b.RescheduleNotice(ctx, id, next, attempts); err != nil {
		return fmt.Errorf("retry notice %s: %w", id, err)
	}
	delete(o.inflight, id)
	return nil
}

// Reschedule moves a queued notice to due (rounded up to the millisecond):
// later for a renewed deferral, sooner when an order ends. Its count of
// failed attempts starts afresh. A notice not queued (already delivered)
// gives an error wrapping ErrNotQueued. A delivery in progress is not
// recalled: if it succeeds, the notice is sent; if it fails, the next try
// is at due.
func (o *Outbox) Reschedule(ctx context.Context, id string, due time.Time) error {
	due = ceilMilli(due)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.b.RescheduleNotice(ctx, id, due, 0); err != nil {
		return fmt.Errorf("reschedule notice %s: %w", id, err)
	}
	if _, ok := o.inflight[id]; ok {
		o.inflight[id] = &schedule{due: due}
	}
	return nil
}

func (o *Outbox) seal(n *Notice) ([]byte, error) {
	msg, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	ns := o.aead.NonceSize()
	blob := make([]byte, ns, ns+len(msg)+o.aead.Overhead())
	if _, err := rand.Read(blob); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	blob = o.aead.Seal(blob, blob[:ns], msg, aad(n.ID))
	clear(msg)
	return blob, nil
}

func (o *Outbox) open(id string, blob []byte) (*Notice, error) {
	ns := o.aead.NonceSize()
	if len(blob) < ns+o.aead.Overhead() {
		return nil, fmt.Errorf("%w: blob of %d bytes", ErrUnreadable, len(blob))
	}
	msg, err := o.aead.Open(nil, blob[:ns], blob[ns:], aad(id))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	defer clear(msg)
	var n Notice
	if err := json.Unmarshal(msg, &n); err != nil {
		// json errors may quote the input; say only where it failed.
		return nil, fmt.Errorf("%w: notice does not decode", ErrUnreadable)
	}
	if n.ID != id {
		return nil, fmt.Errorf("%w: sealed notice has another id", ErrUnreadable)
	}
	return &n, nil
}

func aad(id string) []byte { return append([]byte(noticeAAD), id...) }

// ceilMilli rounds t up to a whole millisecond.
func ceilMilli(t time.Time) time.Time {
	r := t.Truncate(time.Millisecond)
	if r.Before(t) {
		r = r.Add(time.Millisecond)
	}
	return r
}
