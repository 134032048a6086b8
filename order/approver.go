package order

import (
	"errors"
	"fmt"
	"strings"
)

// Errors of the approval and filing rules, wrapped with context; test with
// errors.Is.
var (
	ErrSubjectApproval   = errors.New("the subject of an order cannot approve it")
	ErrSelfApproval      = errors.New("the requester of an order cannot approve it")
	ErrDuplicateSlot     = errors.New("this slot has already approved the order")
	ErrDuplicateApprover = errors.New("this person has already approved the order in another slot")
	ErrDuplicateRole     = errors.New("this role has already approved the order; a quorum needs distinct roles")
	ErrBadApproval       = errors.New("malformed approval")
	ErrSubjectBusy       = errors.New("the subject already has an open order; a second one must cite new facts")
)

// ApprovalRef is what the approval rules need to know of one approval: the
// slot (index into the configured slots), its role and the Mattermost user id
// of the person who approved.
type ApprovalRef struct {
	Slot     int    `json:"slot"`
	Role     string `json:"role"`
	Approver string `json:"approver"`
}

// CheckApprover decides whether approval a may be added to the approvals
// already stored for order o. It refuses, in this order: a malformed
// approval ([ErrBadApproval]: negative slot, empty role, an approver that is
// not a Mattermost user id — the distinctness checks below compare user ids,
// so anything else would defeat them), the subject ([ErrSubjectApproval]),
// the requester ([ErrSelfApproval]), a slot that already approved
// ([ErrDuplicateSlot]), a person who already approved in another slot
// ([ErrDuplicateApprover]) and a role already present ([ErrDuplicateRole];
// roles compare without regard to case or surrounding space). The store calls
// it inside the atomic section that adds the approval.
func CheckApprover(o *Order, a ApprovalRef, existing []ApprovalRef) error {
	if o == nil {
		return fmt.Errorf("approval: no order: %w", ErrBadApproval)
	}
	ctx := fmt.Sprintf("approval of order %s by slot %d", o.ID, a.Slot)
	switch {
	case a.Slot < 0:
		return fmt.Errorf("%s: negative slot: %w", ctx, ErrBadApproval)
	case strings.TrimSpace(a.Role) == "":
		return fmt.Errorf("%s: no role: %w", ctx, ErrBadApproval)
	case !IsMattermostID(a.Approver):
		return fmt.Errorf("%s: approver is not a Mattermost user id: %w", ctx, ErrBadApproval)
	case a.Approver == o.Subject:
		return fmt.Errorf("%s: approver %s: %w", ctx, a.Approver, ErrSubjectApproval)
	case a.Approver == o.Requester:
		return fmt.Errorf("%s: approver %s: %w", ctx, a.Approver, ErrSelfApproval)
	}
	for _, e := range existing {
		if e.Slot == a.Slot {
			return fmt.Errorf("%s: %w", ctx, ErrDuplicateSlot)
		}
	}
	for _, e := range existing {
		if e.Approver == a.Approver {
			return fmt.Errorf("%s: approver %s already approved in slot %d: %w", ctx, a.Approver, e.Slot, ErrDuplicateApprover)
		}
	}
	for _, e := range existing {
		if sameRole(e.Role, a.Role) {
			return fmt.Errorf("%s: role %q already approved in slot %d: %w", ctx, strings.TrimSpace(a.Role), e.Slot, ErrDuplicateRole)
		}
	}
	return nil
}

func sameRole(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// CheckOpenOrders decides whether order o may be filed while open lists the
// ids of the subject's other open orders (pending or active, see
// [State.Open]); o's own id is ignored. A second open order needs non-empty
// new_facts, else the error wraps [ErrSubjectBusy]. The store calls it inside
// the atomic section that files the order.
func CheckOpenOrders(o *Order, open []string) error {
	if o == nil {
		return errors.New("file order: no order")
	}
	var others []string
	for _, id := range open {
		if id != o.ID {
			others = append(others, id)
		}
	}
	if len(others) > 0 && strings.TrimSpace(o.NewFacts) == "" {
		return fmt.Errorf("file order %s: open: %s: %w", o.ID, strings.Join(others, ", "), ErrSubjectBusy)
	}
	return nil
}
