package order

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Rules are the configured limits an order must respect. Start from
// [DefaultRules] and apply configuration with [Rules.Tighten]; the names in
// errors are the yaml names below.
type Rules struct {
	// MaxWindowDays bounds the window's length in days, both ends included.
	MaxWindowDays int `yaml:"max_window_days"`
	// MaxLookbackDays bounds how far before the filing date the window may
	// start.
	MaxLookbackDays int `yaml:"max_lookback_days"`
	// MaxValidity bounds expires_at − filed_at.
	MaxValidity time.Duration `yaml:"max_validity"`
	// MaxDeferral bounds how long after filing a deferred notice may wait.
	MaxDeferral time.Duration `yaml:"max_deferral"`
	// Purposes are the purposes an order may name.
	Purposes []string `yaml:"purposes"`
	// ExcludedChannels are channel ids that no order ever covers: works
	// council, union, confidential adviser, company doctor, whistleblower.
	ExcludedChannels []string `yaml:"excluded_channels"`
}

// DefaultRules are the loosest rules sealgate accepts.
func DefaultRules() Rules {
	return Rules{
		MaxWindowDays:   maxWindowDays,
		MaxLookbackDays: 90,
		MaxValidity:     14 * 24 * time.Hour,
		MaxDeferral:     30 * 24 * time.Hour,
		Purposes: []string{
			"fraud investigation",
			"data leak investigation",
			"harassment complaint",
			"legal hold",
		},
	}
}

// Tighten applies configuration cfg to the rules r and returns the result.
// Configuration may only make the rules stricter: a zero limit in cfg keeps
// r's, a smaller one replaces it, a larger or negative one is an error naming
// the field. A non-empty cfg.Purposes replaces r's and must be a subset of
// them. cfg.ExcludedChannels are added to r's; none is ever removed. All
// problems are reported at once.
func (r Rules) Tighten(cfg Rules) (Rules, error) {
	out := Rules{
		MaxWindowDays:    r.MaxWindowDays,
		MaxLookbackDays:  r.MaxLookbackDays,
		MaxValidity:      r.MaxValidity,
		MaxDeferral:      r.MaxDeferral,
		Purposes:         slices.Clone(r.Purposes),
		ExcludedChannels: slices.Clone(r.ExcludedChannels),
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	tightenInt := func(name string, base, c int, dst *int) {
		switch {
		case c < 0:
			bad("%s: %d is negative (0 keeps %d)", name, c, base)
		case c > base:
			bad("%s: %d is looser than %d; configuration may only make limits stricter", name, c, base)
		case c > 0:
			*dst = c
		}
	}
	tightenDur := func(name string, base, c time.Duration, dst *time.Duration) {
		switch {
		case c < 0:
			bad("%s: %s is negative (0 keeps %s)", name, c, base)
		case c > base:
			bad("%s: %s is looser than %s; configuration may only make limits stricter", name, c, base)
		case c > 0:
			*dst = c
		}
	}
	tightenInt("max_window_days", r.MaxWindowDays, cfg.MaxWindowDays, &out.MaxWindowDays)
	tightenInt("max_lookback_days", r.MaxLookbackDays, cfg.MaxLookbackDays, &out.MaxLookbackDays)
	tightenDur("max_validity", r.MaxValidity, cfg.MaxValidity, &out.MaxValidity)
	tightenDur("max_deferral", r.MaxDeferral, cfg.MaxDeferral, &out.MaxDeferral)

	if len(cfg.Purposes) > 0 {
		for i, p := range cfg.Purposes {
			switch {
			case strings.TrimSpace(p) == "":
				bad("purposes[%d]: empty", i)
			case !slices.Contains(r.Purposes, p):
				bad("purposes[%d]: %q is not an allowed purpose; configuration may only restrict the list", i, p)
			case slices.Index(cfg.Purposes, p) < i:
				bad("purposes[%d]: %q listed twice", i, p)
			}
		}
		out.Purposes = slices.Clone(cfg.Purposes)
	}

	for i, ch := range cfg.ExcludedChannels {
		if !IsMattermostID(ch) {
			bad("excluded_channels[%d]: not a Mattermost channel id", i)
			continue
		}
		if !slices.Contains(out.ExcludedChannels, ch) {
			out.ExcludedChannels = append(out.ExcludedChannels, ch)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Rules{}, fmt.Errorf("order rules: %w", err)
	}
	return out, nil
}

// check refuses rules that no Tighten of the defaults could have produced:
// a missing or looser limit, an unknown purpose, a malformed channel id.
func (r Rules) check() error {
	var errs []error
	if r.MaxWindowDays <= 0 {
		errs = append(errs, errors.New("max_window_days: not set"))
	}
	if r.MaxLookbackDays <= 0 {
		errs = append(errs, errors.New("max_lookback_days: not set"))
	}
	if r.MaxValidity <= 0 {
		errs = append(errs, errors.New("max_validity: not set"))
	}
	if r.MaxDeferral <= 0 {
		errs = append(errs, errors.New("max_deferral: not set"))
	}
	if len(r.Purposes) == 0 {
		errs = append(errs, errors.New("purposes: none configured"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("order rules: %w", err)
	}
	_, err := DefaultRules().Tighten(r)
	return err
}
