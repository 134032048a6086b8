// Package audit is sealgate's append-only, hash-chained audit log
// (DESIGN.md invariant 7: nothing is unsealed silently).
//
// Every order filing, approval, rejection, activation, view, export,
// deferral, revocation, expiry, closure, notice and refused attempt is
// appended as an Entry. Each entry carries the hash of the one before it, so
// changing, deleting or reordering any stored entry breaks the chain, and
// Verify says which entry and what is wrong. Deleting entries at the end
// (truncation) or recomputing the whole chain after a change leaves a chain
// that is consistent in itself; that is caught by comparing with a
// Checkpoint (the head's sequence number and hash) published earlier outside
// the store, e.g. posted by the sealgate bot to a Mattermost channel;
// PublishLoop does that periodically (MattermostPublisher posts it).
// Summarize counts the log's entries per period for a Transparency report
// that holds no names, order ids or content.
//
// # What an entry may hold
//
// The audit log is stored next to the sealed records and is readable by the
// store administrator, so it holds no personal data in clear and no content:
//
//   - ActorRole is a configured role name (requester, a slot name, auditor,
//     dpo, system).
//   - ActorPseudonym is an opaque string the caller derives from the user id
//     with a keyed PRF (e.g. HMAC-SHA-256 under a key the store never sees).
//     This package never receives, stores or derives real user ids, names or
//     e-mail addresses; whoever holds the PRF key can recompute a user's
//     pseudonym to find that user's entries, nobody else can.
//   - OrderID is the order's unguessable id; Object names what was acted on
//     without content (a page number, an export id, an approval slot).
//   - Detail is a short non-content string: counts, a reason code, the field
//     an invalid order missed. Never message text, file names, channel names
//     or props.
//
// Strings must be valid UTF-8 without control characters and at most
// MaxFieldLen bytes; Append refuses anything else.
//
// # Hash
//
//	Hash = SHA-256("sealgate/audit/v1\n" || canonical(entry))
//
// where canonical (Entry.Canonical) covers every field except Hash:
//
//	u64be(Seq)
//	i64be(Time as Unix microseconds)
//	str(ActorRole) str(ActorPseudonym) str(Action) str(OrderID) str(Object) str(Detail)
//	Prev (32 bytes)
//
// with str(s) = u32be(len(s)) || s. The length prefixes make the encoding
// unambiguous ("ab","c" and "a","bc" differ). Times are kept to the
// microsecond (what PostgreSQL's timestamptz holds) and are only as good as
// the writer's clock: Seq, not Time, orders the log. The first entry has
// Seq 1 and a Prev of 32 zero bytes.
//
// # Storage
//
// A Backend stores entries; boltstore and pgstore implement it. The backend
// enforces the chain itself: AppendAudit checks, in the same transaction as
// the write, that the new entry's Seq is the last Seq + 1 and its Prev is the
// last Hash, so two writers (goroutines, or gateway replicas sharing one
// PostgreSQL) cannot fork the chain; the loser gets ErrConflict and Log
// retries it on the new head.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Action says what an entry records.
type Action string

// The actions. Refused records an attempt that was refused (invariant 9):
// refused attempts are audited too, with the reason in Detail. Checkpoint
// records that a checkpoint was published.
const (
	ActionOrderFiled Action = "order_filed"
	ActionApproved   Action = "approved"
	ActionRejected   Action = "rejected"
	ActionActivated  Action = "activated"
	ActionViewed     Action = "viewed"
	ActionExported   Action = "exported"
	ActionDeferred   Action = "deferred"
	ActionRevoked    Action = "revoked"
	ActionExpired    Action = "expired"
	ActionClosed     Action = "closed"
	ActionNoticeSent Action = "notice_sent"
	ActionRefused    Action = "refused"
	ActionCheckpoint Action = "checkpoint"
	ActionOrderRead  Action = "order_read"  // an order document was read (for review)
	ActionEscrowRead Action = "escrow_read" // a slot fetched the subject's key records to approve
	// ActionNoticeEscalated: a notice to a subject could not be delivered
	// after repeated attempts; it keeps being retried.
	ActionNoticeEscalated Action = "notice_escalated"
	// ActionSelfService: an employee looked at the orders that named them.
	ActionSelfService Action = "self_service"
	// ActionFileRead: the requester downloaded the content of one shared
	// file released under the order.
	ActionFileRead Action = "file_read"
)

// Actions lists every action, in the order above.
func Actions() []Action {
	return []Action{
		ActionOrderFiled, ActionApproved, ActionRejected, ActionActivated,
		ActionViewed, ActionExported, ActionDeferred, ActionRevoked,
		ActionExpired, ActionClosed, ActionNoticeSent, ActionRefused,
		ActionCheckpoint, ActionOrderRead, ActionEscrowRead,
		ActionNoticeEscalated, ActionSelfService, ActionFileRead,
	}
}

// Valid reports whether a is one of the actions above.
func (a Action) Valid() bool {
	for _, k := range Actions() {
		if a == k {
			return true
		}
	}
	return false
}

// MaxFieldLen bounds each string field, in bytes.
const MaxFieldLen = 1024

// HashDomain is prefixed to the canonical encoding before hashing.
const HashDomain = "sealgate/audit/v1\n"

// Entry is one stored audit entry. See the package doc for what each field
// may hold and how Hash is computed.
type Entry struct {
	Seq            uint64    // 1 for the first entry, then +1
	Time           time.Time // UTC, microsecond precision
	ActorRole      string
	ActorPseudonym string // opaque keyed-PRF output made by the caller; never a user id
	Action         Action
	OrderID        string
	Object         string
	Detail         string // short, never content
	Prev           [32]byte
	Hash           [32]byte
}

// Canonical returns the deterministic encoding of every field but Hash
// (see the package doc).
func (e Entry) Canonical() []byte {
	strs := [...]string{e.ActorRole, e.ActorPseudonym, string(e.Action), e.OrderID, e.Object, e.Detail}
	n := 8 + 8 + len(strs)*4 + len(e.Prev)
	for _, s := range strs {
		n += len(s)
	}
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint64(b, e.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMicro()))
	for _, s := range strs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return append(b, e.Prev[:]...)
}

// ComputeHash returns SHA-256(HashDomain || e.Canonical()), the value Hash
// must hold.
func (e Entry) ComputeHash() [32]byte {
	h := sha256.New()
	h.Write([]byte(HashDomain))
	h.Write(e.Canonical())
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Record is what a caller appends; Log fills in Seq, Time, Prev and Hash.
type Record struct {
	ActorRole      string // required
	ActorPseudonym string // keyed-PRF output, or empty for the system itself
	Action         Action // required, one of the Action constants
	OrderID        string
	Object         string
	Detail         string
}

// ErrInvalid is wrapped by the errors that say an entry or record is not
// well-formed.
var ErrInvalid = errors.New("invalid audit entry")

// ErrConflict is wrapped by a Backend's AppendAudit error when the entry
// does not extend the stored chain: its Seq is not the last Seq + 1 or its
// Prev is not the last Hash (another writer appended first).
var ErrConflict = errors.New("audit chain conflict")

// ErrCorrupt is wrapped by a Backend's error when a stored entry cannot be
// decoded at all (as opposed to decoding into an entry that fails Verify).
var ErrCorrupt = errors.New("corrupt audit entry")

// Validate checks the caller's fields: required ones present, action known,
// strings well-formed and short.
func (r Record) Validate() error {
	if r.ActorRole == "" {
		return fmt.Errorf("%w: actor role is empty", ErrInvalid)
	}
	if !r.Action.Valid() {
		return fmt.Errorf("%w: unknown action %q", ErrInvalid, r.Action)
	}
	fields := [...]struct{ name, v string }{
		{"actor role", r.ActorRole},
		{"actor pseudonym", r.ActorPseudonym},
		{"action", string(r.Action)},
		{"order id", r.OrderID},
		{"object", r.Object},
		{"detail", r.Detail},
	}
	for _, f := range fields {
		if err := checkString(f.v); err != nil {
			// The value itself is not quoted: it might be what must not leak.
			return fmt.Errorf("%w: %s %v", ErrInvalid, f.name, err)
		}
	}
	return nil
}

func checkString(s string) error {
	if len(s) > MaxFieldLen {
		return fmt.Errorf("is %d bytes long (at most %d)", len(s), MaxFieldLen)
	}
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("holds control character %U", r)
		}
	}
	return nil
}

// Validate checks that e is well-formed and that Hash is the hash of its
// content. Backends call it before storing an entry, so every backend
// refuses the same entries; it does not check the chain (that needs the
// stored head).
func (e Entry) Validate() error {
	if e.Seq == 0 || e.Seq > math.MaxInt64 {
		return fmt.Errorf("%w: sequence number %d out of range", ErrInvalid, e.Seq)
	}
	if e.Time.IsZero() || e.Time.Year() < 1 || e.Time.Year() > 9999 {
		return fmt.Errorf("%w: entry %d: time %v out of range", ErrInvalid, e.Seq, e.Time)
	}
	if !e.Time.Equal(e.Time.Truncate(time.Microsecond)) {
		return fmt.Errorf("%w: entry %d: time is finer than a microsecond", ErrInvalid, e.Seq)
	}
	if err := e.record().Validate(); err != nil {
		return fmt.Errorf("entry %d: %w", e.Seq, err)
	}
	if e.Hash != e.ComputeHash() {
		return fmt.Errorf("%w: entry %d: hash does not match its content", ErrInvalid, e.Seq)
	}
	return nil
}

func (e Entry) record() Record {
	return Record{
		ActorRole:      e.ActorRole,
		ActorPseudonym: e.ActorPseudonym,
		Action:         e.Action,
		OrderID:        e.OrderID,
		Object:         e.Object,
		Detail:         e.Detail,
	}
}
