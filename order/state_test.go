package order

import (
	"fmt"
	"testing"
)

func TestCanTransition(t *testing.T) {
	all := []State{StatePending, StateActive, StateRejected, StateExpired, StateRevoked, StateClosed, "", "unknown"}
	allowed := map[[2]State]bool{
		{StatePending, StateActive}:   true,
		{StatePending, StateRejected}: true,
		{StatePending, StateExpired}:  true,
		{StatePending, StateRevoked}:  true,
		{StateActive, StateExpired}:   true,
		{StateActive, StateRevoked}:   true,
		{StateActive, StateClosed}:    true,
	}
	for _, from := range all {
		for _, to := range all {
			if got, want := CanTransition(from, to), allowed[[2]State{from, to}]; got != want {
				t.Errorf("CanTransition(%q, %q) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestStates(t *testing.T) {
	cases := []struct {
		s                     State
		valid, open, terminal bool
	}{
		{StatePending, true, true, false},
		{StateActive, true, true, false},
		{StateRejected, true, false, true},
		{StateExpired, true, false, true},
		{StateRevoked, true, false, true},
		{StateClosed, true, false, true},
		{"", false, false, false},
		{"Active", false, false, false},
	}
	for _, c := range cases {
		if c.s.Valid() != c.valid || c.s.Open() != c.open || c.s.Terminal() != c.terminal {
			t.Errorf("%q: valid %v open %v terminal %v", c.s, c.s.Valid(), c.s.Open(), c.s.Terminal())
		}
		got, err := ParseState(string(c.s))
		if (err == nil) != c.valid || (c.valid && got != c.s) {
			t.Errorf("ParseState(%q) = %q, %v", c.s, got, err)
		}
		if fmt.Sprint(c.s) != string(c.s) {
			t.Errorf("String(%q)", c.s)
		}
	}
}
