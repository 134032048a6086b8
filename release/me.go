package release

import (
	"context"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
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
		case audit.ActionViewed, audit.ActionExported:
			o.Accesses = append(o.Accesses, Access{Time: e.Time, Role: e.ActorRole, Action: string(e.Action), Messages: detailInt(e.Detail, "messages")})
		case audit.ActionRevoked, audit.ActionExpired, audit.ActionClosed:
			if o.Ended == "" {
				o.Ended, o.EndedAt = string(e.Action), e.Time
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
