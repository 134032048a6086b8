package release

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/order"
)

// Notices is where the desk queues notices to subjects: the durable
// outbox (notice.Outbox). Enqueue is idempotent by notice id.
type Notices interface {
	Enqueue(ctx context.Context, n *notice.Notice) error
	Reschedule(ctx context.Context, id string, due time.Time) error
}

// The two notices of an order have fixed ids, so that queueing them again
// (a restored activation, a retried call) changes nothing.
func activatedNoticeID(orderID string) string {
	return "ntc_" + strings.TrimPrefix(orderID, "ord_") + "_a"
}
func endedNoticeID(orderID string) string { return "ntc_" + strings.TrimPrefix(orderID, "ord_") + "_e" }

// queueNotices runs at activation: the activation notice, due now or when
// the deferral ends, and the closing notice, due when the order expires
// (brought forward if it ends earlier). Both are queued before anything is
// readable, so no access goes untold.
func (d *Desk) queueNotices(ctx context.Context, o *order.Order, approvedBy []string, activatedAt time.Time) error {
	if d.cfg.Notices == nil {
		return nil
	}
	base := notice.Notice{
		UserID: o.Subject, OrderID: o.ID, WindowFrom: o.Window.From, WindowTo: o.Window.To,
		Channels: len(o.Channels), Purpose: o.Purpose, LegalBasis: o.LegalBasis, PolicyClause: o.Suspicion.PolicyClause,
		ApprovedBy: approvedBy, ActivatedAt: activatedAt.UTC(), ValidUntil: o.ExpiresAt.UTC(),
	}
	act := base
	act.ID, act.Kind, act.DueAt = activatedNoticeID(o.ID), notice.Activated, activatedAt.UTC()
	if o.Notice.Mode == order.NoticeDeferred {
		until, err := crypto.ParseDay(o.Notice.DeferUntil)
		if err != nil {
			return fmt.Errorf("order %s: defer_until: %w", o.ID, err)
		}
		act.DueAt = until
	}
	end := base
	end.ID, end.Kind, end.Ended, end.DueAt = endedNoticeID(o.ID), notice.Ended, "expired", o.ExpiresAt.UTC()
	if err := d.cfg.Notices.Enqueue(ctx, &act); err != nil {
		return fmt.Errorf("queue notice of order %s: %w", o.ID, err)
	}
	if err := d.cfg.Notices.Enqueue(ctx, &end); err != nil {
		return fmt.Errorf("queue notice of order %s: %w", o.ID, err)
	}
	return nil
}

// noticesNow brings both notices of an ended order forward: a notice is
// always sent at closure, whatever the deferral said.
func (d *Desk) noticesNow(ctx context.Context, orderID string) {
	if d.cfg.Notices == nil {
		return
	}
	now := d.cfg.Now().UTC()
	for _, id := range []string{activatedNoticeID(orderID), endedNoticeID(orderID)} {
		// A notice already delivered is no longer queued: nothing to do.
		if err := d.cfg.Notices.Reschedule(ctx, id, now); err != nil && !errors.Is(err, notice.ErrNotQueued) {
			d.cfg.Log.Error("bring notice forward", "order", orderID, "err", err)
		}
	}
}

// CompleteNotice fills in what is known only when a notice is sent: what
// was accessed under the order until now and, for the closing notice, how
// and when the order ended. The dispatcher calls it before rendering.
func (d *Desk) CompleteNotice(ctx context.Context, n *notice.Notice) error {
	acc, end, endedAt, err := d.history(ctx, n.OrderID)
	if err != nil {
		return err
	}
	n.Accessed = acc
	if n.Kind == notice.Ended {
		if end != "" {
			n.Ended, n.EndedAt = end, endedAt
		} else {
			n.Ended, n.EndedAt = "expired", n.ValidUntil
		}
	}
	return nil
}

// history reads the audit log for one order: what was accessed, and how
// and when it ended ("" while it has not).
func (d *Desk) history(ctx context.Context, orderID string) (acc notice.Accessed, ended string, endedAt time.Time, err error) {
	err = d.cfg.Audit.Entries(ctx, 1, func(e audit.Entry) error {
		if e.OrderID != orderID {
			return nil
		}
		switch e.Action {
		case audit.ActionViewed, audit.ActionExported, audit.ActionFileRead:
			// A file download is an export of released content.
			if e.Action == audit.ActionViewed {
				acc.Views++
			} else {
				acc.Exports++
			}
			acc.Messages += detailInt(e.Detail, "messages")
			if acc.First.IsZero() {
				acc.First = e.Time
			}
			acc.Last = e.Time
		case audit.ActionRevoked, audit.ActionExpired, audit.ActionClosed:
			if ended == "" {
				ended, endedAt = string(e.Action), e.Time
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("history of order %s: %w", orderID, err)
	}
	return acc, ended, endedAt, err
}

// detailInt reads "key=N" from an audit detail.
func detailInt(detail, key string) int {
	for _, f := range strings.Fields(detail) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

// detailString reads "key=value" from an audit detail; the last key may
// hold spaces ("purpose=data leak investigation").
func detailString(detail, key string) string {
	i := strings.Index(detail, key+"=")
	if i < 0 || (i > 0 && detail[i-1] != ' ') {
		return ""
	}
	v := detail[i+len(key)+1:]
	if key != "purpose" {
		v, _, _ = strings.Cut(v, " ")
	}
	return v
}
