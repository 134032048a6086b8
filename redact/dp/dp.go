// Package dp adds differential-privacy noise to publications of the redact
// package, under a privacy budget kept in a ledger.
//
// A publication of redact is already thresholded: no figure covers fewer
// than k people, and no suppressed cell can be computed from the others.
// What thresholding does not do is blur: a figure of a large cell still
// changes by exactly one when one person posts one more message, and the
// margins still bound a suppressed cell, sometimes tightly. Noise from the
// Laplace mechanism, calibrated to how much one person can change the
// published figures, hides any single person's contribution.
//
// Each application of noise spends a privacy loss ε on each metric family
// (messages, edits, deletes, bytes, files, reactions, users) for each day the
// table covers. A Ledger keeps what was spent; once a family's budget for a
// day is used up, further publications about that day are refused, because
// averaging many noisy copies would remove the noise.
//
// The guarantee holds for people whose contribution to one cell stays within
// the configured bound of each family (Params.Bounds): the distinct-user
// count changes by at most one per person and cell, but counts of messages
// or bytes have no natural bound, and the aggregator counts exactly rather
// than clipping. Choose bounds that cover ordinary use; a person far above
// them is less protected. The suppression pattern of the table is not
// noised. Noisy values are clamped at zero.
//
// The noise comes from github.com/google/differential-privacy's noise
// package (a geometric sampler that avoids the floating-point artifacts of
// naive Laplace sampling). That module's logging dependency registers flags
// on the default flag set when imported; import this package only from
// code that does not define its own -v flag on flag.CommandLine.
package dp

import (
	"context"
	"fmt"
	"time"

	"github.com/google/differential-privacy/go/v3/noise"

	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

// Family is a metric family: one column of redact.Counts.
type Family string

const (
	Messages  Family = "messages"
	Edits     Family = "edits"
	Deletes   Family = "deletes"
	Bytes     Family = "bytes"
	Files     Family = "files"
	Reactions Family = "reactions"
	Users     Family = "users"
)

// Families lists every family, in column order.
var Families = []Family{Messages, Edits, Deletes, Bytes, Files, Reactions, Users}

// DefaultBounds are per-person, per-cell contribution bounds for an hourly
// or daily cell of ordinary chat use.
var DefaultBounds = map[Family]int64{
	Messages:  200,
	Edits:     50,
	Deletes:   50,
	Bytes:     200_000,
	Files:     20,
	Reactions: 200,
	Users:     1,
}

// ErrBudgetExhausted is wrapped by the error of a publication that would
// spend more privacy budget than is left. It is the store's error, so that
// callers need not import this package to recognise it.
var ErrBudgetExhausted = store.ErrBudgetExhausted

// Ledger keeps the privacy budget spent, per family and UTC day; the stores
// implement it (store.PrivacyLedger), so the budget survives restarts and is
// shared by every process that publishes from the same store.
type Ledger = store.PrivacyLedger

// Params configure the noise.
type Params struct {
	// Epsilon is the privacy loss one publication spends per family and
	// day it covers.
	Epsilon float64
	// Budget is the total privacy loss allowed per family and day.
	Budget float64
	// Bounds is the most one person adds to one cell, per family (the L∞
	// sensitivity). Every family needs one; see DefaultBounds.
	Bounds map[Family]int64
}

// Noiser applies noise to publications.
type Noiser struct {
	Params Params
	Ledger Ledger
}

// Apply returns a copy of t with Laplace noise on every figure of every
// shown row, after charging the ledger Epsilon per family for each day the
// table covers. Suppressed rows stay as they are. If the ledger refuses,
// nothing is returned but the error.
//
// The noise of one day's figures is calibrated to one person appearing in
// every shown cell of that day (the L0 sensitivity is the number of shown
// rows of the day), which is the worst case: a person can be counted in a
// cell, its margins and the day at once.
func (n *Noiser) Apply(ctx context.Context, t redact.Table) (redact.Table, error) {
	p := n.Params
	if !(p.Epsilon > 0) || !(p.Budget >= p.Epsilon) {
		return redact.Table{}, fmt.Errorf("dp: epsilon %.3g and budget %.3g: want 0 < epsilon <= budget", p.Epsilon, p.Budget)
	}
	for _, f := range Families {
		if p.Bounds[f] < 1 {
			return redact.Table{}, fmt.Errorf("dp: no contribution bound for %s", f)
		}
	}
	shown := map[string]int64{} // day -> shown rows
	var days []string
	for i := range t.Rows {
		d := t.Rows[i].Start.UTC().Format(time.DateOnly)
		if _, ok := shown[d]; !ok {
			shown[d] = 0
			days = append(days, d)
		}
		if !t.Rows[i].Suppressed {
			shown[d]++
		}
	}
	var charges []store.BudgetCharge
	for _, d := range days {
		for _, f := range Families {
			charges = append(charges, store.BudgetCharge{Family: string(f), Day: d, Epsilon: p.Epsilon})
		}
	}
	if len(charges) > 0 {
		if err := n.Ledger.SpendBudget(ctx, p.Budget, charges); err != nil {
			return redact.Table{}, fmt.Errorf("dp: %w", err)
		}
	}
	out := t
	out.Rows = make([]redact.Row, len(t.Rows))
	for i, r := range t.Rows {
		if !r.Suppressed {
			l0 := max(shown[r.Start.UTC().Format(time.DateOnly)], 1)
			c := &r.Counts
			for _, fv := range []struct {
				f Family
				v *int64
			}{{Messages, &c.Messages}, {Edits, &c.Edits}, {Deletes, &c.Deletes}, {Bytes, &c.Bytes}, {Files, &c.Files}, {Reactions, &c.Reactions}, {Users, &c.Users}} {
				x, err := Laplace(*fv.v, l0, p.Bounds[fv.f], p.Epsilon)
				if err != nil {
					return redact.Table{}, err
				}
				*fv.v = x
			}
			r.UsersAtLeast = false // a noisy count is no bound
		}
		out.Rows[i] = r
	}
	return out, nil
}

// Laplace returns x plus Laplace noise for a value that one person can
// change in at most l0 cells by at most lInf each, at privacy loss epsilon,
// clamped at zero.
func Laplace(x, l0, lInf int64, epsilon float64) (int64, error) {
	y, err := noise.Laplace().AddNoiseInt64(x, l0, lInf, epsilon, 0)
	if err != nil {
		return 0, fmt.Errorf("dp: laplace noise: %w", err)
	}
	return max(y, 0), nil
}
