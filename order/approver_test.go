package order

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckApprover(t *testing.T) {
	o := validOrder()
	legal := ApprovalRef{Slot: 0, Role: "legal", Approver: carol}
	cases := []struct {
		name     string
		a        ApprovalRef
		existing []ApprovalRef
		want     error // nil: accepted
	}{
		{"first approval", legal, nil, nil},
		{"second slot, other role, other person", ApprovalRef{1, "hr", dave}, []ApprovalRef{legal}, nil},
		{"the subject", ApprovalRef{1, "hr", alice}, []ApprovalRef{legal}, ErrSubjectApproval},
		{"the subject, first", ApprovalRef{0, "legal", alice}, nil, ErrSubjectApproval},
		{"the requester", ApprovalRef{1, "hr", bob}, []ApprovalRef{legal}, ErrSelfApproval},
		{"the requester, first", ApprovalRef{0, "legal", bob}, nil, ErrSelfApproval},
		{"same slot again, other person", ApprovalRef{0, "legal", dave}, []ApprovalRef{legal}, ErrDuplicateSlot},
		{"same approval replayed", legal, []ApprovalRef{legal}, ErrDuplicateSlot},
		{"same person, another slot", ApprovalRef{1, "hr", carol}, []ApprovalRef{legal}, ErrDuplicateApprover},
		{"same role, another slot", ApprovalRef{2, "legal", dave}, []ApprovalRef{legal}, ErrDuplicateRole},
		{"same role, other case and spaces", ApprovalRef{2, " Legal ", dave}, []ApprovalRef{legal}, ErrDuplicateRole},
		{"negative slot", ApprovalRef{-1, "hr", dave}, nil, ErrBadApproval},
		{"no role", ApprovalRef{1, " ", dave}, nil, ErrBadApproval},
		{"no approver", ApprovalRef{1, "hr", ""}, nil, ErrBadApproval},
		{"approver is a username", ApprovalRef{1, "hr", "dave"}, nil, ErrBadApproval},
	}
	sentinels := []error{ErrSubjectApproval, ErrSelfApproval, ErrDuplicateSlot, ErrDuplicateApprover, ErrDuplicateRole, ErrBadApproval}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckApprover(o, c.a, c.existing)
			if c.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			for _, s := range sentinels {
				if s != c.want && errors.Is(err, s) {
					t.Fatalf("%v also matches %v", err, s)
				}
			}
			if err == c.want || !strings.Contains(err.Error(), o.ID) {
				t.Fatalf("error without context: %v", err)
			}
		})
	}
	if err := CheckApprover(nil, legal, nil); !errors.Is(err, ErrBadApproval) {
		t.Fatalf("nil order: %v", err)
	}
}

// TestQuorumOfDistinctRoles builds a 3-of-5 quorum one approval at a time,
// the way the store does, and checks that every shortcut is refused.
func TestQuorumOfDistinctRoles(t *testing.T) {
	o := validOrder()
	erin, frank := "78wwaimorifnzfrojxa9ozqjmo", "wreeaewahpfwbdm17prjnwik8r"
	var stored []ApprovalRef
	for _, a := range []ApprovalRef{{0, "legal", carol}, {2, "works council", dave}, {4, "hr", erin}} {
		if err := CheckApprover(o, a, stored); err != nil {
			t.Fatalf("approval %+v refused: %v", a, err)
		}
		stored = append(stored, a)
	}
	for _, a := range []ApprovalRef{{1, "hr", frank}, {3, "security", carol}, {4, "security", frank}} {
		if err := CheckApprover(o, a, stored); err == nil {
			t.Fatalf("approval %+v accepted after %v", a, stored)
		}
	}
}

func TestCheckOpenOrders(t *testing.T) {
	o := validOrder()
	other := NewID()
	cases := []struct {
		name     string
		newFacts string
		open     []string
		busy     bool
	}{
		{"no open order", "", nil, false},
		{"only itself", "", []string{o.ID}, false},
		{"another open order", "", []string{other}, true},
		{"another open order, blank new facts", "  ", []string{o.ID, other}, true},
		{"another open order, new facts", "a second leak on 2026-03-10", []string{other}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o.NewFacts = c.newFacts
			err := CheckOpenOrders(o, c.open)
			if c.busy != errors.Is(err, ErrSubjectBusy) || (!c.busy && err != nil) {
				t.Fatalf("got %v, busy %v", err, c.busy)
			}
			if c.busy && !strings.Contains(err.Error(), other) {
				t.Fatalf("error does not name the open order: %v", err)
			}
		})
	}
	if err := CheckOpenOrders(nil, nil); err == nil {
		t.Fatal("nil order accepted")
	}
}
