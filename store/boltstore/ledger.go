package boltstore

// The differential-privacy budget (store.PrivacyLedger) lives in bucket
// "dp_ledger":
//
//	dp_ledger  family | 0x00 | day (YYYY-MM-DD) -> ε spent (float64 bits, big endian)
//
// SpendBudget checks and adds every charge in one write transaction, so
// concurrent calls (bbolt has one writer) are serialized.

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/store"
)

var bktLedger = []byte("dp_ledger")

var _ store.PrivacyLedger = (*Store)(nil)

func ledgerKey(family, day string) []byte {
	k := make([]byte, 0, len(family)+1+len(day))
	k = append(k, family...)
	k = append(k, 0)
	return append(k, day...)
}

func ledgerValue(v []byte) (float64, error) {
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt ledger entry (%d bytes)", len(v))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(v)), nil
}

// SpendBudget implements store.PrivacyLedger.
func (s *Store) SpendBudget(ctx context.Context, budget float64, charges []store.BudgetCharge) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("spend budget: %w", err)
	}
	sum, keys, err := store.CheckCharges(budget, charges)
	if err != nil {
		return fmt.Errorf("spend budget: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := tx.Bucket(bktLedger)
		spent := make([]float64, len(keys))
		for i, k := range keys {
			v, err := ledgerValue(b.Get(ledgerKey(k[0], k[1])))
			if err != nil {
				return err
			}
			if store.OverBudget(v, sum[k], budget) {
				return fmt.Errorf("%w: %s on %s: %.3g spent of %.3g, %.3g asked", store.ErrBudgetExhausted, k[0], k[1], v, budget, sum[k])
			}
			spent[i] = v
		}
		for i, k := range keys {
			var buf [8]byte
			binary.BigEndian.PutUint64(buf[:], math.Float64bits(spent[i]+sum[k]))
			if err := b.Put(ledgerKey(k[0], k[1]), buf[:]); err != nil {
				return err
			}
		}
		return nil
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
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		v, err = ledgerValue(tx.Bucket(bktLedger).Get(ledgerKey(family, day)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("budget spent: %w", err)
	}
	return v, nil
}
