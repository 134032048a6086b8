package release

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/order/redisstore"
)

// The kinds of refusal. Every error the desk returns for a refused call is a
// *Refusal wrapping one of them; the order API maps them to HTTP statuses.
var (
	ErrForbidden = errors.New("forbidden")
	ErrNotFound  = errors.New("no such order")
	ErrInvalid   = errors.New("invalid request")
	ErrConflict  = errors.New("conflict")
	ErrGone      = errors.New("order is not live")
)

// Refusal is a refused call: its Kind (one of the errors above), a short
// Code for the audit log (never content) and the error that says why.
type Refusal struct {
	Kind error
	Code string
	Err  error
}

func (r *Refusal) Error() string   { return r.Err.Error() }
func (r *Refusal) Unwrap() []error { return []error{r.Kind, r.Err} }

func refuse(kind error, code, msg string) error {
	return &Refusal{Kind: kind, Code: code, Err: errors.New(msg)}
}

// storeRefusal turns the order store's errors into refusals.
func storeRefusal(err error) error {
	codes := []struct {
		err  error
		kind error
		code string
	}{
		{redisstore.ErrNotFound, ErrNotFound, "not_found"},
		{redisstore.ErrExpired, ErrGone, "expired"},
		{redisstore.ErrNotPending, ErrGone, "not_pending"},
		{redisstore.ErrNotActive, ErrGone, "not_active"},
		{redisstore.ErrSelfApproval, ErrForbidden, "self_approval"},
		{redisstore.ErrSubjectApproval, ErrForbidden, "subject_approval"},
		{redisstore.ErrDuplicateSlot, ErrConflict, "duplicate_slot"},
		{redisstore.ErrDuplicateRole, ErrConflict, "duplicate_role"},
		{redisstore.ErrDuplicateApprover, ErrConflict, "duplicate_approver"},
		{redisstore.ErrSubjectBusy, ErrConflict, "subject_busy"},
		{redisstore.ErrExists, ErrConflict, "exists"},
		{redisstore.ErrRenewed, ErrConflict, "renewed"},
		{redisstore.ErrDeferralPending, ErrConflict, "deferral_pending"},
		{redisstore.ErrNoDeferral, ErrGone, "no_renewal"},
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return &Refusal{Kind: c.kind, Code: c.code, Err: err}
		}
	}
	return err
}

// Roles as the audit log names them. Slot holders act in their slot's role.
const (
	roleRequester = "requester"
	roleAuditor   = "auditor"
	roleDPO       = "dpo"
	roleSystem    = "system"
	roleUnknown   = "unknown"
)

// actor is an authenticated caller as the audit log records them.
type actor struct {
	user, role, pseudonym string
}

// actor names the caller in the given role, or in the first configured role
// they hold when role is empty.
func (d *Desk) actor(user, role string) actor {
	a := actor{user: user, role: role}
	if user != "" {
		a.pseudonym = d.cfg.Keys.Pseudonym("audit", user)
	}
	if a.role == "" {
		switch {
		case d.cfg.Requesters[user] != nil:
			a.role = roleRequester
		case slices.Contains(d.cfg.DPO, user):
			a.role = roleDPO
		case slices.Contains(d.cfg.Auditors, user):
			a.role = roleAuditor
		default:
			for _, s := range d.cfg.Slots {
				if slices.Contains(s.Holders, user) {
					a.role = s.Role
					break
				}
			}
		}
	}
	return a
}

// actorFor names the caller in their role towards one order; role is empty
// if they have none.
func (d *Desk) actorFor(user string, o *order.Order) actor {
	a := actor{user: user, pseudonym: d.cfg.Keys.Pseudonym("audit", user)}
	switch {
	case user == o.Requester:
		a.role = roleRequester
	case slices.Contains(d.cfg.DPO, user):
		a.role = roleDPO
	case slices.Contains(d.cfg.Auditors, user):
		a.role = roleAuditor
	default:
		for _, s := range d.cfg.Slots {
			if slices.Contains(s.Holders, user) {
				a.role = s.Role
				break
			}
		}
	}
	return a
}

func (d *Desk) holds(user string, slot int) bool {
	return user != "" && slot >= 0 && slot < len(d.cfg.Slots) && slices.Contains(d.cfg.Slots[slot].Holders, user)
}

func (d *Desk) slotRole(slot int) string {
	if slot >= 0 && slot < len(d.cfg.Slots) {
		return d.cfg.Slots[slot].Role
	}
	return ""
}

// audit appends an entry; the caller acts only if it succeeds.
func (d *Desk) audit(ctx context.Context, a actor, action audit.Action, orderID, object, detail string) error {
	role := a.role
	if role == "" {
		role = roleUnknown
	}
	_, err := d.cfg.Audit.Append(ctx, audit.Record{
		ActorRole: role, ActorPseudonym: a.pseudonym, Action: action,
		OrderID: orderID, Object: object, Detail: detail,
	})
	if err != nil {
		return fmt.Errorf("audit %s of order %s: %w", action, orderID, err)
	}
	return nil
}

// refused audits a refused call (invariant 9: refused attempts are on the
// record too). Other errors (Redis down, store errors) are logged.
func (d *Desk) refused(ctx context.Context, a actor, orderID, object string, err error) {
	if err == nil {
		return
	}
	var r *Refusal
	if !errors.As(err, &r) {
		d.cfg.Log.Warn("order call failed", "order", orderID, "call", object, "err", err)
		return
	}
	if !order.IsID(orderID) {
		orderID = "" // never write caller-chosen junk into the log
	}
	if aerr := d.audit(ctx, a, audit.ActionRefused, orderID, object, r.Code); aerr != nil {
		d.cfg.Log.Error("audit refusal", "order", orderID, "err", aerr)
	}
}
