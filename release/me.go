package release

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/export"
	"github.com/sealgate/sealgate/order"
)

// subjectObject is how the audit log names the subject of a filed order: a
// keyed pseudonym, so that only the gateway can find a person's orders.
func subjectObject(keys *crypto.GatewayKeys, subject string) string {
	return "subject:" + keys.Pseudonym("subject", subject)
}

// MyOrder is an order as its subject may see it (art. 15 GDPR): when and
// why, who approved (roles), and every access made under it.
type MyOrder struct {
	OrderID     string    `json:"order_id"`
	FiledAt     time.Time `json:"filed_at"`
	WindowFrom  string    `json:"window_from"`
	WindowTo    string    `json:"window_to"`
	Purpose     string    `json:"purpose"`
	ApprovedBy  []string  `json:"approved_by"`
	ActivatedAt time.Time `json:"activated_at"`
	Ended       string    `json:"ended,omitempty"` // revoked, expired, closed
	EndedAt     time.Time `json:"ended_at,omitzero"`
	Accesses    []Access  `json:"accesses"`
}

// Access is one read under an order: when, by which role, what, how many
// messages.
type Access struct {
	Time     time.Time `json:"time"`
	Role     string    `json:"role"`
	Action   string    `json:"action"` // viewed, exported
	Messages int       `json:"messages"`
}

// MyOrders returns the orders that named the caller and were activated,
// once any deferral of their notice has ended (or the order has). Pending
// and rejected orders are not shown: nothing was read under them, and
// telling could defeat an investigation that was never approved. The call
// is audited.
func (d *Desk) MyOrders(ctx context.Context, user string) (out []MyOrder, err error) {
	a := actor{user: user, role: "employee", pseudonym: d.cfg.Keys.Pseudonym("audit", user)}
	defer func() { d.refused(ctx, a, "", "my_orders", err) }()
	if !order.IsMattermostID(user) {
		return nil, refuse(ErrForbidden, "no_user", "not a Mattermost user")
	}
	me := subjectObject(d.cfg.Keys, user)
	byID := map[string]*MyOrder{}
	deferred := map[string]time.Time{}
	var ids []string
	err = d.cfg.Audit.Entries(ctx, 1, func(e audit.Entry) error {
		if e.Action == audit.ActionOrderFiled && e.Object == me {
			win := detailString(e.Detail, "window")
			from, to, _ := cutRange(win)
			byID[e.OrderID] = &MyOrder{OrderID: e.OrderID, FiledAt: e.Time, WindowFrom: from, WindowTo: to,
				Purpose: detailString(e.Detail, "purpose"), Accesses: []Access{}}
			ids = append(ids, e.OrderID)
			if plan := detailString(e.Detail, "notice"); len(plan) > len("deferred:") && plan[:9] == "deferred:" {
				if t, err := crypto.ParseDay(plan[9:]); err == nil {
					deferred[e.OrderID] = t
				}
			}
			return nil
		}
		o := byID[e.OrderID]
		if o == nil {
			return nil
		}
		switch e.Action {
		case audit.ActionApproved:
			o.ApprovedBy = append(o.ApprovedBy, e.ActorRole)
		case audit.ActionActivated:
			if o.ActivatedAt.IsZero() {
				o.ActivatedAt = e.Time
			}
		case audit.ActionViewed, audit.ActionExported, audit.ActionFileRead:
			o.Accesses = append(o.Accesses, Access{Time: e.Time, Role: e.ActorRole, Action: string(e.Action), Messages: detailInt(e.Detail, "messages")})
		case audit.ActionRevoked, audit.ActionExpired, audit.ActionClosed:
			if o.Ended == "" {
				o.Ended, o.EndedAt = string(e.Action), e.Time
			}
		case audit.ActionDeferred:
			if v, ok := strings.CutPrefix(e.Detail, "renewed until="); ok {
				if t, err := crypto.ParseDay(v); err == nil {
					deferred[e.OrderID] = t
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	now := d.cfg.Now()
	for _, id := range ids {
		o := byID[id]
		if o.ActivatedAt.IsZero() {
			continue
		}
		if until, ok := deferred[id]; ok && now.Before(until) && o.Ended == "" {
			continue
		}
		out = append(out, *o)
	}
	if err := d.audit(ctx, a, audit.ActionSelfService, "", "", ""); err != nil {
		return nil, err
	}
	return out, nil
}

func cutRange(s string) (string, string, bool) {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == '.' && s[i+1] == '.' {
			return s[:i], s[i+2:], true
		}
	}
	return "", "", false
}

// MyMessages writes to its subject a copy of their own messages that an
// active order released (art. 15(3) GDPR), once the notice is no longer
// deferred. It is refused after the order ends: the keys are gone then.
func (d *Desk) MyMessages(ctx context.Context, user, id string, f export.Format, w io.Writer) (n int, err error) {
	a := actor{user: user, role: "employee", pseudonym: d.cfg.Keys.Pseudonym("audit", user)}
	defer func() { d.refused(ctx, a, id, "my_messages", err) }()
	if err := d.checkLive(ctx, id); err != nil {
		return 0, err
	}
	d.mu.Lock()
	rel := d.released[id]
	d.mu.Unlock()
	if rel == nil || rel.order.Subject != user {
		// Not "forbidden": whether an order names someone else is not the
		// caller's business.
		return 0, refuse(ErrNotFound, "not_subject", "no such order about you")
	}
	if o := rel.order; o.Notice.Mode == order.NoticeDeferred {
		if until, err := crypto.ParseDay(o.Notice.DeferUntil); err == nil && d.cfg.Now().Before(until) {
			return 0, refuse(ErrNotFound, "deferred", "no such order about you")
		}
	}
	all, err := d.readAll(ctx, rel)
	if err != nil {
		return 0, err
	}
	exportID, err := newExportID()
	if err != nil {
		return 0, err
	}
	h := d.header(rel, exportID)
	h.Requester = user // the copy is watermarked for the subject who asked for it
	if err := d.audit(ctx, a, audit.ActionSelfService, id, exportID, fmt.Sprintf("format=%s messages=%d", f, len(all))); err != nil {
		return 0, err
	}
	if err := export.Write(w, f, h, all); err != nil {
		return 0, fmt.Errorf("copy of order %s for its subject: %w", id, err)
	}
	return len(all), nil
}
