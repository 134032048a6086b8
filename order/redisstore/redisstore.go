// Package redisstore keeps investigation orders, their approvals and their
// state in Redis, with every state change and the quorum check done by one
// Lua script each, so that concurrent approvers cannot race an order past its
// rules (never read-then-write).
//
// Keys, all ending when the order expires (plus a short grace for closure):
//
//	sg:order:{ID}            hash: state, body, quorum, requester, subject,
//	                         expires_at, approvals, activated_at, veto roles
//	sg:order:{ID}:approvals  hash: slot:N → approval, role:R → N, approver:P → N
//	sg:subject:{S}           the open order of subject pseudonym S
//
// The braces are Redis Cluster hash tags: an order's keys live on one shard.
// If Redis loses everything, pending orders and approvals are gone and
// nothing can be released: the order must be filed again. That is the safe
// failure; Redis never holds key material that could unseal on its own.
package redisstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/order"
)

// Errors callers branch on. Each comes back wrapped with the order id.
var (
	ErrNotFound          = errors.New("order not found (never filed, expired long ago, or lost with Redis: file it again)")
	ErrNotPending        = errors.New("order is not pending")
	ErrNotActive         = errors.New("order is not active")
	ErrExpired           = errors.New("order has expired")
	ErrSelfApproval      = order.ErrSelfApproval
	ErrSubjectApproval   = order.ErrSubjectApproval
	ErrDuplicateSlot     = order.ErrDuplicateSlot
	ErrDuplicateRole     = order.ErrDuplicateRole
	ErrDuplicateApprover = order.ErrDuplicateApprover
	ErrSubjectBusy       = order.ErrSubjectBusy
	ErrExists            = errors.New("an order with this id exists")
	ErrRenewed           = errors.New("the notice's deferral has already been renewed once")
	ErrDeferralPending   = errors.New("a renewal of the deferral is already awaiting approval")
	ErrNoDeferral        = errors.New("no such renewal of the deferral awaits approval")
)

var scriptErrors = map[string]error{
	"NOT_FOUND":          ErrNotFound,
	"NOT_PENDING":        ErrNotPending,
	"NOT_ACTIVE":         ErrNotActive,
	"EXPIRED":            ErrExpired,
	"SELF_APPROVAL":      ErrSelfApproval,
	"SUBJECT_APPROVAL":   ErrSubjectApproval,
	"DUPLICATE_SLOT":     ErrDuplicateSlot,
	"DUPLICATE_ROLE":     ErrDuplicateRole,
	"DUPLICATE_APPROVER": ErrDuplicateApprover,
	"SUBJECT_BUSY":       ErrSubjectBusy,
	"EXISTS":             ErrExists,
	"RENEWED":            ErrRenewed,
	"DEFERRAL_PENDING":   ErrDeferralPending,
	"NO_DEFERRAL":        ErrNoDeferral,
}

// Store is the Redis order store.
type Store struct {
	rdb   redis.UniversalClient
	grace time.Duration
	now   func() time.Time
}

// New returns a store. grace is how long an order's keys outlive its
// expiry, for closure (notices, audit); now defaults to time.Now.
func New(rdb redis.UniversalClient, grace time.Duration, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{rdb: rdb, grace: grace, now: now}
}

// Filing is what File stores.
type Filing struct {
	ID         string
	SubjectKey string // a pseudonym of the subject (keyed PRF), not the user id
	Subject    string // the subject's user id, to refuse self-approval by the subject
	Requester  string
	Quorum     int
	ExpiresAt  time.Time
	Body       []byte   // the signed order document
	NewFacts   bool     // the order cites new facts: it may join an open order on the same subject
	VetoRoles  []string // roles whose single rejection rejects the order
}

// Approval is one slot's approval.
type Approval struct {
	Slot     int
	Role     string
	Approver string
	Blob     []byte // the signed approval with its re-encrypted shares
}

// Result says where an approval left the order.
type Result struct {
	Approvals int
	Activated bool // this approval completed the quorum
}

// Status is an order as stored.
type Status struct {
	ID          string
	State       order.State
	Body        []byte
	Quorum      int
	ExpiresAt   time.Time
	ActivatedAt time.Time
	Approvals   []Approval
	Reason      string // rejection or revocation reason
	// DeferralUntil is the renewed end of the notice's deferral (zero if
	// never renewed).
	DeferralUntil time.Time
	// Renewal is a renewal of the deferral awaiting approval, or nil.
	Renewal *Renewal
}

// Renewal is a requested renewal of a deferred notice.
type Renewal struct {
	Until     time.Time
	Statement string // hex of the statement its signatures cover
	Ground    string
	Slots     []int // slots that approved it
}

func orderKey(id string) string     { return "sg:order:{" + id + "}" }
func approvalsKey(id string) string { return "sg:order:{" + id + "}:approvals" }
func subjectKey(s string) string    { return "sg:subject:{" + s + "}" }
func deferralKey(id string) string  { return "sg:order:{" + id + "}:deferral" }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func (s *Store) run(ctx context.Context, sc *redis.Script, id string, keys []string, args ...any) (any, error) {
	v, err := sc.Run(ctx, s.rdb, keys, args...).Result()
	if err != nil {
		// Redis may prefix a script's error reply with "ERR ".
		msg := strings.TrimPrefix(err.Error(), "ERR ")
		for code, e := range scriptErrors {
			if strings.HasPrefix(msg, code) {
				return nil, fmt.Errorf("order %s: %w", id, e)
			}
		}
		return nil, fmt.Errorf("order %s: redis: %w", id, err)
	}
	return v, nil
}

//go:embed file.lua
var fileLua string
var fileScript = redis.NewScript(fileLua)

// File stores a new pending order. It refuses an id that exists and, unless
// the filing cites new facts, a subject that already has an open order.
func (s *Store) File(ctx context.Context, f Filing) error {
	if f.ID == "" || f.SubjectKey == "" || f.Subject == "" || f.Requester == "" || f.Quorum < 2 || len(f.Body) == 0 {
		return fmt.Errorf("file order %s: incomplete filing", f.ID)
	}
	now := s.now()
	if !f.ExpiresAt.After(now) {
		return fmt.Errorf("order %s: %w", f.ID, ErrExpired)
	}
	newFacts := "0"
	if f.NewFacts {
		newFacts = "1"
	}
	_, err := s.run(ctx, fileScript, f.ID, []string{orderKey(f.ID), subjectKey(f.SubjectKey), approvalsKey(f.ID)},
		f.ID, f.Body, f.Quorum, f.Requester, f.Subject, ms(f.ExpiresAt), ms(f.ExpiresAt.Add(s.grace)),
		newFacts, strings.Join(f.VetoRoles, ","), f.SubjectKey)
	return err
}

//go:embed approve.lua
var approveLua string
var approveScript = redis.NewScript(approveLua)

// Approve adds one slot's approval and, atomically with it, activates the
// order when the quorum is reached. Exactly one approval ever activates an
// order, however many race.
func (s *Store) Approve(ctx context.Context, id string, a Approval) (Result, error) {
	if a.Slot < 0 || a.Role == "" || a.Approver == "" || len(a.Blob) == 0 {
		return Result{}, fmt.Errorf("approve order %s: incomplete approval", id)
	}
	v, err := s.run(ctx, approveScript, id, []string{orderKey(id), approvalsKey(id)},
		a.Slot, a.Role, a.Approver, a.Blob, ms(s.now()))
	if err != nil {
		return Result{}, err
	}
	out, ok := v.([]any)
	if !ok || len(out) != 2 {
		return Result{}, fmt.Errorf("approve order %s: unexpected script answer", id)
	}
	n, _ := out[0].(int64)
	act, _ := out[1].(int64)
	return Result{Approvals: int(n), Activated: act == 1}, nil
}

//go:embed defer.lua
var deferLua string
var deferScript = redis.NewScript(deferLua)

// RequestDeferral asks to renew an active order's deferred notice until
// the given time; statement is what the requester and the approvers sign.
// Once per order; one request at a time.
func (s *Store) RequestDeferral(ctx context.Context, id string, until time.Time, statement, ground string) error {
	_, err := s.run(ctx, deferScript, id, []string{orderKey(id), deferralKey(id)}, "request", ms(s.now()), ms(until), statement, ground)
	return err
}

// ApproveDeferral adds one slot's approval of the pending renewal; the one
// that completes the quorum applies it (Result.Activated).
func (s *Store) ApproveDeferral(ctx context.Context, id string, slot int, role, approver, statement string) (Result, error) {
	v, err := s.run(ctx, deferScript, id, []string{orderKey(id), deferralKey(id)}, "approve", ms(s.now()), slot, role, approver, statement)
	if err != nil {
		return Result{}, err
	}
	out, ok := v.([]any)
	if !ok || len(out) != 2 {
		return Result{}, fmt.Errorf("approve deferral of order %s: unexpected script answer", id)
	}
	n, _ := out[0].(int64)
	done, _ := out[1].(int64)
	return Result{Approvals: int(n), Activated: done == 1}, nil
}

//go:embed transition.lua
var transitionLua string
var transitionScript = redis.NewScript(transitionLua)

// Reject records a rejection. A veto role rejects the order on its own;
// another role's rejection is recorded but leaves the order pending. It
// reports whether the order is now rejected.
func (s *Store) Reject(ctx context.Context, id, role, approver, reason string) (bool, error) {
	v, err := s.run(ctx, transitionScript, id, []string{orderKey(id), approvalsKey(id)},
		"reject", ms(s.now()), role, approver, reason)
	if err != nil {
		return false, err
	}
	return v == "rejected", nil
}

// Revoke ends a pending or active order at once and deletes its approvals
// (and with them the re-encrypted shares).
func (s *Store) Revoke(ctx context.Context, id, reason string) error {
	_, err := s.run(ctx, transitionScript, id, []string{orderKey(id), approvalsKey(id)}, "revoke", ms(s.now()), "", "", reason)
	return err
}

// Get returns the order, marking it expired first if its time is up.
func (s *Store) Get(ctx context.Context, id string) (*Status, error) {
	if _, err := s.run(ctx, transitionScript, id, []string{orderKey(id), approvalsKey(id)}, "touch", ms(s.now()), "", "", ""); err != nil {
		return nil, err
	}
	pipe := s.rdb.TxPipeline()
	o := pipe.HGetAll(ctx, orderKey(id))
	ap := pipe.HGetAll(ctx, approvalsKey(id))
	df := pipe.HGetAll(ctx, deferralKey(id))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("order %s: redis: %w", id, err)
	}
	h := o.Val()
	if len(h) == 0 {
		return nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	st := &Status{ID: id, State: order.State(h["state"]), Body: []byte(h["body"]), Reason: h["reason"]}
	st.Quorum, _ = strconv.Atoi(h["quorum"])
	if v, err := strconv.ParseInt(h["expires_at"], 10, 64); err == nil {
		st.ExpiresAt = time.UnixMilli(v).UTC()
	}
	if v, err := strconv.ParseInt(h["activated_at"], 10, 64); err == nil {
		st.ActivatedAt = time.UnixMilli(v).UTC()
	}
	if v, err := strconv.ParseInt(h["deferral_until"], 10, 64); err == nil {
		st.DeferralUntil = time.UnixMilli(v).UTC()
	}
	if d := df.Val(); len(d) > 0 {
		r := &Renewal{Statement: d["statement"], Ground: d["ground"]}
		if v, err := strconv.ParseInt(d["until"], 10, 64); err == nil {
			r.Until = time.UnixMilli(v).UTC()
		}
		for k := range d {
			if n, ok := strings.CutPrefix(k, "slot:"); ok {
				if i, err := strconv.Atoi(n); err == nil {
					r.Slots = append(r.Slots, i)
				}
			}
		}
		slices.Sort(r.Slots)
		st.Renewal = r
	}
	apps := ap.Val()
	roles := map[string]string{}
	approvers := map[string]string{}
	for k, v := range apps {
		if r, ok := strings.CutPrefix(k, "role:"); ok {
			roles[v] = r
		} else if p, ok := strings.CutPrefix(k, "approver:"); ok {
			approvers[v] = p
		}
	}
	for k, v := range apps {
		slot, ok := strings.CutPrefix(k, "slot:")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(slot)
		if err != nil {
			continue
		}
		st.Approvals = append(st.Approvals, Approval{Slot: n, Role: roles[slot], Approver: approvers[slot], Blob: []byte(v)})
	}
	return st, nil
}
