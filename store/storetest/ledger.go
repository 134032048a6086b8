package storetest

// RunLedger is the contract suite for store.PrivacyLedger: the privacy
// budget of noisy aggregate publications (package redact/dp).
//
// What it checks: an empty ledger; charges adding up per (family, day) and
// not spilling into other families or days; a call that would exceed the
// budget on any one of its charges recording none of them; a budget that is
// used up exactly (budget/ε publications fit despite rounding); refusal of
// malformed charges and budgets, recording nothing; 16 goroutines racing on
// one budget, exactly budget/ε of them succeeding; the ledger surviving
// Close and reopen; a canceled context and calls after Close failing.

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sealgate/sealgate/store"
)

type ledgerStore interface {
	store.Store
	store.PrivacyLedger
}

// RunLedger runs the privacy-ledger contract suite. See Run for what open
// must do.
func RunLedger(t *testing.T, open func(t *testing.T) store.Store) {
	runSuite(t, open, "store.PrivacyLedger", []subtest[ledgerStore]{
		{"Empty", testLedgerEmpty},
		{"AddsUp", testLedgerAddsUp},
		{"AllOrNothing", testLedgerAllOrNothing},
		{"ExactBudget", testLedgerExact},
		{"RefusesInvalid", testLedgerInvalid},
		{"Concurrent", testLedgerConcurrent},
		{"SurvivesReopen", testLedgerReopen},
		{"CanceledAndClosed", testLedgerClosed},
	})
}

func spent(t *testing.T, s store.PrivacyLedger, family, day string) float64 {
	t.Helper()
	v, err := s.BudgetSpent(context.Background(), family, day)
	if err != nil {
		t.Fatalf("BudgetSpent(%s, %s): %v", family, day, err)
	}
	return v
}

func wantSpent(t *testing.T, s store.PrivacyLedger, family, day string, want float64) {
	t.Helper()
	if got := spent(t, s, family, day); math.Abs(got-want) > 1e-12 {
		t.Errorf("spent on %s %s = %v, want %v", family, day, got, want)
	}
}

func testLedgerEmpty(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := openClosed(t, open)
	wantSpent(t, s, "messages", "2026-11-02", 0)
	if err := s.SpendBudget(context.Background(), 1, nil); err != nil {
		t.Errorf("SpendBudget with no charges: %v", err)
	}
}

func testLedgerAddsUp(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := openClosed(t, open)
	ctx := context.Background()
	if err := s.SpendBudget(ctx, 1, []store.BudgetCharge{
		{Family: "messages", Day: "2026-11-02", Epsilon: 0.25},
		{Family: "messages", Day: "2026-11-02", Epsilon: 0.125}, // same key twice in one call
		{Family: "users", Day: "2026-11-02", Epsilon: 0.5},
		{Family: "messages", Day: "2026-11-03", Epsilon: 0.75},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.SpendBudget(ctx, 1, []store.BudgetCharge{{Family: "messages", Day: "2026-11-02", Epsilon: 0.125}}); err != nil {
		t.Fatal(err)
	}
	wantSpent(t, s, "messages", "2026-11-02", 0.5)
	wantSpent(t, s, "users", "2026-11-02", 0.5)
	wantSpent(t, s, "messages", "2026-11-03", 0.75)
	wantSpent(t, s, "users", "2026-11-03", 0)
	wantSpent(t, s, "bytes", "2026-11-02", 0)
}

func testLedgerAllOrNothing(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := openClosed(t, open)
	ctx := context.Background()
	if err := s.SpendBudget(ctx, 1, []store.BudgetCharge{{Family: "users", Day: "2026-11-02", Epsilon: 0.9}}); err != nil {
		t.Fatal(err)
	}
	err := s.SpendBudget(ctx, 1, []store.BudgetCharge{
		{Family: "messages", Day: "2026-11-02", Epsilon: 0.2}, // fits
		{Family: "users", Day: "2026-11-02", Epsilon: 0.2},    // does not
		{Family: "edits", Day: "2026-11-04", Epsilon: 0.2},    // fits, new row
	})
	if !errors.Is(err, store.ErrBudgetExhausted) {
		t.Fatalf("over budget: err = %v, want ErrBudgetExhausted", err)
	}
	wantSpent(t, s, "users", "2026-11-02", 0.9)
	wantSpent(t, s, "messages", "2026-11-02", 0)
	wantSpent(t, s, "edits", "2026-11-04", 0)
	// Two charges that fit alone but not together.
	err = s.SpendBudget(ctx, 1, []store.BudgetCharge{
		{Family: "bytes", Day: "2026-11-05", Epsilon: 0.6},
		{Family: "bytes", Day: "2026-11-05", Epsilon: 0.6},
	})
	if !errors.Is(err, store.ErrBudgetExhausted) {
		t.Fatalf("two charges over budget: err = %v, want ErrBudgetExhausted", err)
	}
	wantSpent(t, s, "bytes", "2026-11-05", 0)
}

func testLedgerExact(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := openClosed(t, open)
	ctx := context.Background()
	// 0.1 is not exact in binary: ten of them must still fit a budget of 1.
	for i := range 10 {
		if err := s.SpendBudget(ctx, 1, []store.BudgetCharge{{Family: "files", Day: "2026-11-02", Epsilon: 0.1}}); err != nil {
			t.Fatalf("publication %d of 10: %v", i+1, err)
		}
	}
	err := s.SpendBudget(ctx, 1, []store.BudgetCharge{{Family: "files", Day: "2026-11-02", Epsilon: 0.1}})
	if !errors.Is(err, store.ErrBudgetExhausted) {
		t.Fatalf("11th publication: err = %v, want ErrBudgetExhausted", err)
	}
}

func testLedgerInvalid(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := openClosed(t, open)
	ctx := context.Background()
	good := store.BudgetCharge{Family: "messages", Day: "2026-11-02", Epsilon: 0.1}
	for name, tc := range map[string]struct {
		budget float64
		c      store.BudgetCharge
	}{
		"zero budget":     {0, good},
		"negative budget": {-1, good},
		"NaN budget":      {math.NaN(), good},
		"inf budget":      {math.Inf(1), good},
		"empty family":    {1, store.BudgetCharge{Family: "", Day: "2026-11-02", Epsilon: 0.1}},
		"odd family":      {1, store.BudgetCharge{Family: "Messages'--", Day: "2026-11-02", Epsilon: 0.1}},
		"long family":     {1, store.BudgetCharge{Family: "abcdefghijklmnopqrstuvwxyzabcdefg", Day: "2026-11-02", Epsilon: 0.1}},
		"bad day":         {1, store.BudgetCharge{Family: "messages", Day: "2026-13-02", Epsilon: 0.1}},
		"no day":          {1, store.BudgetCharge{Family: "messages", Epsilon: 0.1}},
		"zero epsilon":    {1, store.BudgetCharge{Family: "messages", Day: "2026-11-02"}},
		"negative ε":      {1, store.BudgetCharge{Family: "messages", Day: "2026-11-02", Epsilon: -0.1}},
		"NaN ε":           {1, store.BudgetCharge{Family: "messages", Day: "2026-11-02", Epsilon: math.NaN()}},
	} {
		err := s.SpendBudget(ctx, tc.budget, []store.BudgetCharge{good, tc.c})
		if !errors.Is(err, store.ErrInvalidCharge) {
			t.Errorf("%s: err = %v, want ErrInvalidCharge", name, err)
		}
	}
	wantSpent(t, s, "messages", "2026-11-02", 0)
}

func testLedgerConcurrent(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := openClosed(t, open)
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each call charges two keys, in opposite orders for half of them.
			cs := []store.BudgetCharge{{Family: "messages", Day: "2026-11-02", Epsilon: 1}, {Family: "users", Day: "2026-11-02", Epsilon: 1}}
			if ok.Load()%2 == 0 {
				cs[0], cs[1] = cs[1], cs[0]
			}
			switch err := s.SpendBudget(context.Background(), 5, cs); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, store.ErrBudgetExhausted):
				refused.Add(1)
			default:
				t.Errorf("SpendBudget: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 5 || refused.Load() != 11 {
		t.Errorf("%d spent, %d refused; want 5 and 11", ok.Load(), refused.Load())
	}
	wantSpent(t, s, "messages", "2026-11-02", 5)
	wantSpent(t, s, "users", "2026-11-02", 5)
}

func testLedgerReopen(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := open(t)
	if err := s.SpendBudget(context.Background(), 2, []store.BudgetCharge{{Family: "deletes", Day: "2026-11-02", Epsilon: 1.5}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openClosed(t, open)
	wantSpent(t, s, "deletes", "2026-11-02", 1.5)
	err := s.SpendBudget(context.Background(), 2, []store.BudgetCharge{{Family: "deletes", Day: "2026-11-02", Epsilon: 1}})
	if !errors.Is(err, store.ErrBudgetExhausted) {
		t.Errorf("after reopen: err = %v, want ErrBudgetExhausted", err)
	}
}

func testLedgerClosed(t *testing.T, open func(t *testing.T) ledgerStore) {
	s := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := []store.BudgetCharge{{Family: "messages", Day: "2026-11-02", Epsilon: 0.5}}
	if err := s.SpendBudget(ctx, 1, c); err == nil {
		t.Error("SpendBudget with a canceled context succeeded")
	}
	wantSpent(t, s, "messages", "2026-11-02", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.SpendBudget(context.Background(), 1, c); err == nil {
		t.Error("SpendBudget after Close succeeded")
	}
	if _, err := s.BudgetSpent(context.Background(), "messages", "2026-11-02"); err == nil {
		t.Error("BudgetSpent after Close succeeded")
	}
}
