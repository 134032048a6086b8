package dp

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store/boltstore"
)

// ledger is a real file store in a temporary directory: the ledger serve uses.
func ledger(t *testing.T) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(t.TempDir() + "/store.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func spent(t *testing.T, l Ledger, f Family, day string) float64 {
	t.Helper()
	v, err := l.BudgetSpent(context.Background(), string(f), day)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var day0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func table(days int) redact.Table {
	t := redact.Table{K: 5, By: redact.Day}
	for d := range days {
		start := day0.Add(time.Duration(d) * 24 * time.Hour)
		t.Rows = append(t.Rows,
			redact.Row{Start: start, Span: redact.Day, Team: redact.AllTeams, ChannelType: redact.AllTypes,
				Counts: redact.Counts{Messages: 5000, Edits: 300, Deletes: 40, Bytes: 900_000, Files: 60, Reactions: 700, Users: 180}},
			redact.Row{Start: start, Span: redact.Day, Team: "teamA", ChannelType: 'O',
				Counts: redact.Counts{Messages: 3000, Users: 90}},
			redact.Row{Start: start, Span: redact.Day, Team: "teamA", ChannelType: 'D', Suppressed: true},
		)
	}
	return t
}

func TestBudgetRefusal(t *testing.T) {
	ctx := context.Background()
	l := ledger(t)
	n := &Noiser{Params: Params{Epsilon: 0.4, Budget: 1, Bounds: DefaultBounds}, Ledger: l}
	for i := range 2 {
		if _, err := n.Apply(ctx, table(1)); err != nil {
			t.Fatalf("publication %d: %v", i, err)
		}
	}
	if _, err := n.Apply(ctx, table(1)); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("third publication: %v, want budget exhausted", err)
	}
	d0 := day0.Format(time.DateOnly)
	if got := spent(t, l, Messages, d0); math.Abs(got-0.8) > 1e-9 {
		t.Fatalf("spent %v on day 0, want 0.8", got)
	}
	// A table of days 0 and 1 is refused as a whole: day 1 is not charged.
	if _, err := n.Apply(ctx, table(2)); !errors.Is(err, ErrBudgetExhausted) {
		t.Fatalf("two-day publication: %v", err)
	}
	d1 := day0.Add(24 * time.Hour).Format(time.DateOnly)
	if got := spent(t, l, Users, d1); got != 0 {
		t.Fatalf("refused publication charged day 1: %v", got)
	}
	// Exactly budget/ε publications fit.
	l2 := ledger(t)
	n2 := &Noiser{Params: Params{Epsilon: 0.1, Budget: 1, Bounds: DefaultBounds}, Ledger: l2}
	for i := range 10 {
		if _, err := n2.Apply(ctx, table(1)); err != nil {
			t.Fatalf("publication %d of 10: %v", i, err)
		}
	}
	if _, err := n2.Apply(ctx, table(1)); err == nil {
		t.Fatal("eleventh publication accepted")
	}
}

func TestBadParams(t *testing.T) {
	ctx := context.Background()
	for _, p := range []Params{
		{Epsilon: 0, Budget: 1, Bounds: DefaultBounds},
		{Epsilon: 2, Budget: 1, Bounds: DefaultBounds},
		{Epsilon: 1, Budget: 1, Bounds: map[Family]int64{Messages: 1}},
	} {
		n := &Noiser{Params: p, Ledger: ledger(t)}
		if _, err := n.Apply(ctx, table(1)); err == nil {
			t.Errorf("params %+v accepted", p)
		}
	}
}

func TestNoiseApplied(t *testing.T) {
	ctx := context.Background()
	in := table(1)
	n := &Noiser{Params: Params{Epsilon: 1, Budget: 1e9, Bounds: DefaultBounds}, Ledger: ledger(t)}
	changed := 0
	for range 50 {
		out, err := n.Apply(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Rows) != len(in.Rows) {
			t.Fatal("rows lost")
		}
		for i, r := range out.Rows {
			if r.Suppressed {
				if r.Counts != (redact.Counts{}) || !in.Rows[i].Suppressed {
					t.Fatalf("suppressed row changed: %+v", r)
				}
				continue
			}
			c := r.Counts
			for _, v := range []int64{c.Messages, c.Edits, c.Deletes, c.Bytes, c.Files, c.Reactions, c.Users} {
				if v < 0 {
					t.Fatalf("negative output %+v", c)
				}
			}
			if c != in.Rows[i].Counts {
				changed++
			}
		}
	}
	if changed < 90 {
		t.Fatalf("only %d of 100 noisy rows differ from the input", changed)
	}
	if in.Rows[0].Counts.Messages != 5000 {
		t.Fatal("input table modified")
	}
}

// TestLaplaceStatistics: over many draws the noise is centred on the value
// with the Laplace variance 2(l0·lInf/ε)², and clamping keeps outputs ≥ 0.
func TestLaplaceStatistics(t *testing.T) {
	const draws = 50_000
	const x, l0, lInf, eps = 1000, 2, 3, 0.5
	scale := float64(l0*lInf) / eps // 12
	var sum, sum2 float64
	for range draws {
		y, err := Laplace(x, l0, lInf, eps)
		if err != nil {
			t.Fatal(err)
		}
		d := float64(y - x)
		sum += d
		sum2 += d * d
	}
	mean := sum / draws
	variance := sum2/draws - mean*mean
	want := 2 * scale * scale
	if math.Abs(mean) > 0.45 { // standard error ≈ 17/224 ≈ 0.076
		t.Errorf("mean noise %.3f, want ≈ 0", mean)
	}
	if variance < 0.9*want || variance > 1.1*want {
		t.Errorf("noise variance %.1f, want ≈ %.1f", variance, want)
	}
	zeros := 0
	for range 10_000 {
		y, err := Laplace(0, 1, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if y < 0 {
			t.Fatalf("negative output %d", y)
		}
		if y == 0 {
			zeros++
		}
	}
	if zeros < 5000 { // half the draws are ≤ 0 and clamp to 0
		t.Errorf("%d of 10000 draws at 0 clamped to 0, want more than half", zeros)
	}
	if _, err := Laplace(1, 1, 1, 0); err == nil {
		t.Error("epsilon 0 accepted")
	}
}
