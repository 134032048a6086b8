package order

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultRules(t *testing.T) {
	r := DefaultRules()
	if r.MaxWindowDays != 90 || r.MaxLookbackDays != 90 || r.MaxValidity != 14*24*time.Hour || r.MaxDeferral != 30*24*time.Hour {
		t.Fatalf("defaults changed: %+v", r)
	}
	if len(r.Purposes) == 0 || len(r.ExcludedChannels) != 0 {
		t.Fatalf("defaults: %+v", r)
	}
	if err := r.check(); err != nil {
		t.Fatalf("defaults do not pass their own check: %v", err)
	}
	// DefaultRules returns a fresh copy each time.
	r.Purposes[0] = "changed"
	if DefaultRules().Purposes[0] == "changed" {
		t.Fatal("DefaultRules shares its purposes slice")
	}
}

func TestTightenAcceptsStricter(t *testing.T) {
	base := DefaultRules()
	got, err := base.Tighten(Rules{
		MaxWindowDays:    30,
		MaxLookbackDays:  60,
		MaxValidity:      7 * 24 * time.Hour,
		MaxDeferral:      90 * time.Hour,
		Purposes:         []string{"legal hold", "fraud investigation"},
		ExcludedChannels: []string{hrChannel},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Rules{30, 60, 7 * 24 * time.Hour, 90 * time.Hour, []string{"legal hold", "fraud investigation"}, []string{hrChannel}}
	if !rulesEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	// Equal values are allowed, zero keeps the base.
	same, err := base.Tighten(Rules{MaxWindowDays: 90, MaxValidity: 14 * 24 * time.Hour})
	if err != nil || !rulesEqual(same, base) {
		t.Fatalf("equal/zero: %+v %v", same, err)
	}

	// Chained: tightening tightened rules keeps the stricter limits and
	// only adds exclusions.
	again, err := got.Tighten(Rules{MaxWindowDays: 10, Purposes: []string{"legal hold"}, ExcludedChannels: []string{unionChannel, hrChannel}})
	if err != nil {
		t.Fatal(err)
	}
	want = Rules{10, 60, 7 * 24 * time.Hour, 90 * time.Hour, []string{"legal hold"}, []string{hrChannel, unionChannel}}
	if !rulesEqual(again, want) {
		t.Fatalf("got %+v\nwant %+v", again, want)
	}
	// The inputs are not modified.
	if got.MaxWindowDays != 30 || len(got.ExcludedChannels) != 1 || len(got.Purposes) != 2 {
		t.Fatalf("Tighten modified its receiver: %+v", got)
	}
}

func TestTightenRefusesLooser(t *testing.T) {
	base, err := DefaultRules().Tighten(Rules{MaxWindowDays: 30, Purposes: []string{"legal hold"}, ExcludedChannels: []string{hrChannel}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		cfg   Rules
		field string
	}{
		{"window 31 after 30", Rules{MaxWindowDays: 31}, "max_window_days"},
		{"window 91 over default", Rules{MaxWindowDays: 91}, "max_window_days"},
		{"negative window", Rules{MaxWindowDays: -1}, "max_window_days"},
		{"look-back 91", Rules{MaxLookbackDays: 91}, "max_lookback_days"},
		{"negative look-back", Rules{MaxLookbackDays: -5}, "max_lookback_days"},
		{"validity 14 days + 1ns", Rules{MaxValidity: 14*24*time.Hour + 1}, "max_validity"},
		{"negative validity", Rules{MaxValidity: -time.Hour}, "max_validity"},
		{"deferral 31 days", Rules{MaxDeferral: 31 * 24 * time.Hour}, "max_deferral"},
		{"purpose outside the base list", Rules{Purposes: []string{"fraud investigation"}}, "purposes[0]"},
		{"invented purpose", Rules{Purposes: []string{"legal hold", "curiosity"}}, "purposes[1]"},
		{"blank purpose", Rules{Purposes: []string{" "}}, "purposes[0]"},
		{"purpose twice", Rules{Purposes: []string{"legal hold", "legal hold"}}, "purposes[1]"},
		{"exclusion not an id", Rules{ExcludedChannels: []string{"works-council"}}, "excluded_channels[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := base.Tighten(c.cfg)
			if err == nil {
				t.Fatalf("accepted: %+v", got)
			}
			if !strings.Contains(err.Error(), c.field+": ") {
				t.Fatalf("error does not name %s: %v", c.field, err)
			}
		})
	}
	// Several problems are all reported.
	_, err = base.Tighten(Rules{MaxWindowDays: 100, MaxDeferral: 100 * 24 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "max_window_days") || !strings.Contains(err.Error(), "max_deferral") {
		t.Fatalf("not all problems reported: %v", err)
	}
}

// TestTightenNeverRemovesExclusions: an empty or different exclusion list
// in the configuration leaves the base exclusions in place.
func TestTightenNeverRemovesExclusions(t *testing.T) {
	base, err := DefaultRules().Tighten(Rules{ExcludedChannels: []string{hrChannel, unionChannel}})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Rules{{}, {ExcludedChannels: []string{}}, {ExcludedChannels: []string{privateChan}}} {
		got, err := base.Tighten(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(got.ExcludedChannels, hrChannel) || !slices.Contains(got.ExcludedChannels, unionChannel) {
			t.Fatalf("exclusion removed: %v", got.ExcludedChannels)
		}
	}
}

func rulesEqual(a, b Rules) bool {
	return a.MaxWindowDays == b.MaxWindowDays && a.MaxLookbackDays == b.MaxLookbackDays &&
		a.MaxValidity == b.MaxValidity && a.MaxDeferral == b.MaxDeferral &&
		slices.Equal(a.Purposes, b.Purposes) && slices.Equal(a.ExcludedChannels, b.ExcludedChannels)
}
