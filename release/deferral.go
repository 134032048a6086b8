package release

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/order"
)

// A deferred notice may be renewed once: the requester asks, with a
// documented ground and a new end date at most the configured deferral
// limit (30 days) after the current end, and the same quorum of distinct
// roles approves, each signing the same statement (crypto.DeferralStatement).
// Until the quorum, the notice keeps its date.

// deferralEnd is when the activation notice of an order is due: the end of
// its (possibly renewed) deferral.
func deferralEnd(o *order.Order, renewed time.Time) (time.Time, bool) {
	if o.Notice.Mode != order.NoticeDeferred {
		return time.Time{}, false
	}
	if !renewed.IsZero() {
		return renewed, true
	}
	t, err := crypto.ParseDay(o.Notice.DeferUntil)
	return t, err == nil
}

// RequestDeferral asks to renew an active order's deferred notice until a
// later date ("YYYY-MM-DD"); sig is the requester's signature over the
// statement.
func (d *Desk) RequestDeferral(ctx context.Context, actor, id, until, ground string, sig []byte) (err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, id, "request_deferral", err) }()
	st, f, err := d.load(ctx, id)
	if err != nil {
		return err
	}
	o := f.Order
	if a = d.actorFor(actor, o); a.role != roleRequester {
		return refuse(ErrForbidden, "not_requester", "only the order's requester may ask to renew its deferral")
	}
	if ground == "" {
		return refuse(ErrInvalid, "no_ground", "a renewal needs a documented ground")
	}
	end, ok := deferralEnd(o, st.DeferralUntil)
	if !ok {
		return refuse(ErrInvalid, "not_deferred", "the order's notice is not deferred: the subject has been told")
	}
	now := d.cfg.Now()
	if !now.Before(end) {
		return refuse(ErrGone, "deferral_over", "the deferral has ended: the notice is due")
	}
	t, err := crypto.ParseDay(until)
	if err != nil || !t.After(end) || t.After(end.Add(d.cfg.Rules.MaxDeferral)) {
		return refuse(ErrInvalid, "bad_until", fmt.Sprintf("until must be a date after %s and at most %s later", end.Format("2006-01-02"), d.cfg.Rules.MaxDeferral))
	}
	statement := crypto.DeferralStatement(o.Hash(), until, ground)
	if err := crypto.VerifyDeferralRequest(d.cfg.Requesters[actor], statement, sig); err != nil {
		return &Refusal{Kind: ErrForbidden, Code: "bad_signature", Err: err}
	}
	if err := d.audit(ctx, a, audit.ActionDeferred, id, "renewal", "requested until="+until); err != nil {
		return err
	}
	if err := d.cfg.Orders.RequestDeferral(ctx, id, t, hex.EncodeToString(statement[:]), ground); err != nil {
		return storeRefusal(err)
	}
	return nil
}

// ApproveDeferral records one slot's approval of the pending renewal; the
// approval that completes the quorum moves the notice's date.
func (d *Desk) ApproveDeferral(ctx context.Context, actor, id string, slot int, sig []byte) (res ApproveResult, err error) {
	a := d.actor(actor, d.slotRole(slot))
	defer func() { d.refused(ctx, a, id, fmt.Sprintf("approve_deferral slot=%d", slot), err) }()
	if !d.holds(actor, slot) {
		return res, refuse(ErrForbidden, "not_slot_holder", "the caller does not hold this slot")
	}
	st, f, err := d.load(ctx, id)
	if err != nil {
		return res, err
	}
	o := f.Order
	switch {
	case actor == o.Subject:
		return res, refuse(ErrForbidden, "subject_approval", order.ErrSubjectApproval.Error())
	case actor == o.Requester:
		return res, refuse(ErrForbidden, "self_approval", order.ErrSelfApproval.Error())
	case st.Renewal == nil:
		return res, refuse(ErrGone, "no_renewal", "no renewal of the deferral awaits approval")
	}
	raw, err := hex.DecodeString(st.Renewal.Statement)
	var statement [32]byte
	if err != nil || len(raw) != len(statement) {
		return res, fmt.Errorf("order %s: stored renewal statement is malformed", id)
	}
	copy(statement[:], raw)
	until := st.Renewal.Until.Format("2006-01-02")
	if statement != crypto.DeferralStatement(o.Hash(), until, st.Renewal.Ground) {
		return res, refuse(ErrForbidden, "bad_renewal", "the stored renewal does not match its statement")
	}
	if err := crypto.VerifyDeferralApproval(d.cfg.Slots[slot].Recipient, slot, statement, sig); err != nil {
		return res, &Refusal{Kind: ErrForbidden, Code: "bad_approval", Err: err}
	}
	r, err := d.cfg.Orders.ApproveDeferral(ctx, id, slot, d.cfg.Slots[slot].Role, actor, st.Renewal.Statement)
	if err != nil {
		return res, storeRefusal(err)
	}
	res = ApproveResult{Approvals: r.Approvals, Quorum: d.cfg.Quorum, Activated: r.Activated}
	detail := fmt.Sprintf("approvals=%d/%d", r.Approvals, d.cfg.Quorum)
	if r.Activated {
		detail = "renewed until=" + until
	}
	if err := d.audit(ctx, a, audit.ActionDeferred, id, fmt.Sprintf("slot=%d", slot), detail); err != nil {
		return res, err
	}
	if r.Activated && d.cfg.Notices != nil {
		if err := d.cfg.Notices.Reschedule(ctx, activatedNoticeID(id), st.Renewal.Until); err != nil {
			return res, fmt.Errorf("renew deferral of order %s: %w", id, err)
		}
	}
	return res, nil
}
