package pgstore

// The differential-privacy budget (store.PrivacyLedger) is table dp_ledger
// (migration 5): one row per (family, day) with the ε spent. SpendBudget
// runs in one transaction: it creates the missing rows, locks every row it
// charges (in key order, so that concurrent calls cannot deadlock), checks
// them all and only then adds, so a refused call changes nothing.

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sealgate/sealgate/store"
)

var _ store.PrivacyLedger = (*Store)(nil)

// SpendBudget implements store.PrivacyLedger.
func (s *Store) SpendBudget(ctx context.Context, budget float64, charges []store.BudgetCharge) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("spend budget: %w", err)
	}
	sum, keys, err := store.CheckCharges(budget, charges)
	if err != nil {
		return fmt.Errorf("spend budget: %w", err)
	}
	families, days, adds := make([]string, len(keys)), make([]string, len(keys)), make([]float64, len(keys))
	for i, k := range keys {
		families[i], days[i], adds[i] = k[0], k[1], sum[k]
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO dp_ledger (family, day, spent)
			SELECT f, d::date, 0 FROM unnest($1::text[], $2::text[]) AS u(f, d)
			ORDER BY f, d
			ON CONFLICT (family, day) DO NOTHING`, families, days); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT family, to_char(day, 'YYYY-MM-DD'), spent FROM dp_ledger
			WHERE (family, day) IN (SELECT f, d::date FROM unnest($1::text[], $2::text[]) AS u(f, d))
			ORDER BY family, day FOR UPDATE`, families, days)
		if err != nil {
			return err
		}
		spent := map[[2]string]float64{}
		for rows.Next() {
			var f, d string
			var v float64
			if err := rows.Scan(&f, &d, &v); err != nil {
				rows.Close()
				return err
			}
			spent[[2]string{f, d}] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, k := range keys {
			if v := spent[k]; store.OverBudget(v, sum[k], budget) {
				return fmt.Errorf("%w: %s on %s: %.3g spent of %.3g, %.3g asked", store.ErrBudgetExhausted, k[0], k[1], v, budget, sum[k])
			}
		}
		_, err = tx.Exec(ctx, `UPDATE dp_ledger SET spent = spent + u.a
			FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(f, d, a)
			WHERE dp_ledger.family = u.f AND dp_ledger.day = u.d::date`, families, days, adds)
		return err
	})
	if err != nil {
		return fmt.Errorf("spend budget: %w", err)
	}
	return nil
}

// BudgetSpent implements store.PrivacyLedger.
func (s *Store) BudgetSpent(ctx context.Context, family, day string) (float64, error) {
	if err := s.check(ctx); err != nil {
		return 0, fmt.Errorf("budget spent: %w", err)
	}
	var v float64
	err := s.pool.QueryRow(ctx, `SELECT spent FROM dp_ledger WHERE family = $1 AND day = $2::date`, family, day).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("budget spent: %w", err)
	}
	return v, nil
}
