package pgstore_test

import (
	"testing"

	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/storetest"
)

// TestAggregates runs the aggregates contract against its own private
// cluster; each subtest uses its own database.
func TestAggregates(t *testing.T) {
	cluster := testpg.Start(t)
	storetest.RunAggregates(t, storetest.Keyed(
		func(t *testing.T) string { return testpg.CreateDB(t, cluster) },
		func(t *testing.T, dsn string) store.Store { return open(t, dsn) },
	))
}

// TestLedger runs the privacy-ledger contract against its own cluster.
func TestLedger(t *testing.T) {
	cluster := testpg.Start(t)
	storetest.RunLedger(t, storetest.Keyed(
		func(t *testing.T) string { return testpg.CreateDB(t, cluster) },
		func(t *testing.T, dsn string) store.Store { return open(t, dsn) },
	))
}
