package order

import "fmt"

// State is where an order is in its lifecycle. The package documentation
// lists the allowed transitions.
type State string

// The states of an order.
const (
	StatePending  State = "pending"  // filed, collecting approvals
	StateActive   State = "active"   // quorum reached: content may be read
	StateRejected State = "rejected" // refused by an approver; terminal
	StateExpired  State = "expired"  // expires_at passed; terminal
	StateRevoked  State = "revoked"  // withdrawn; terminal
	StateClosed   State = "closed"   // finished early; terminal
)

// transitions is the whole state machine: anything not listed is refused.
var transitions = map[State][]State{
	StatePending: {StateActive, StateRejected, StateExpired, StateRevoked},
	StateActive:  {StateExpired, StateRevoked, StateClosed},
}

// CanTransition reports whether an order may move from one state to the
// other.
func CanTransition(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// ParseState accepts exactly the names of the states.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("order state %q: not pending, active, rejected, expired, revoked or closed", s)
	}
	return st, nil
}

// Valid reports whether s is one of the states.
func (s State) Valid() bool {
	switch s {
	case StatePending, StateActive, StateRejected, StateExpired, StateRevoked, StateClosed:
		return true
	}
	return false
}

// Open reports whether the order still counts against its subject: pending
// or active (see [CheckOpenOrders]).
func (s State) Open() bool { return s == StatePending || s == StateActive }

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s.Valid() && len(transitions[s]) == 0 }

func (s State) String() string { return string(s) }
