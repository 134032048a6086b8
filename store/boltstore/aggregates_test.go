package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/storetest"
)

func TestAggregatesContract(t *testing.T) {
	storetest.RunAggregates(t, storetest.Keyed(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		func(t *testing.T, path string) store.Store {
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
	))
}

func TestLedgerContract(t *testing.T) {
	storetest.RunLedger(t, storetest.Keyed(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		func(t *testing.T, path string) store.Store {
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
	))
}
