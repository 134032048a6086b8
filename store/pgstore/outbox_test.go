package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/storetest"
)

// TestOutbox runs the notice outbox backend contract against its own
// private cluster; each subtest uses its own database.
func TestOutbox(t *testing.T) {
	cluster := testpg.Start(t)
	t.Run("Contract", func(t *testing.T) {
		storetest.RunOutbox(t, storetest.Keyed(
			func(t *testing.T) string { return testpg.CreateDB(t, cluster) },
			func(t *testing.T, dsn string) store.Store { return open(t, dsn) },
		))
	})
	t.Run("IDOrdersBytewise", func(t *testing.T) { testOutboxCollation(t, cluster) })
}

// testOutboxCollation: DueNotices breaks ties by id bytewise, as bbolt
// does, whatever the database's collation; the contract suite cannot see
// this on a cluster whose default collation is C already.
func testOutboxCollation(t *testing.T, cluster string) {
	dsn := testpg.CreateDB(t, cluster)
	open(t, dsn).Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var coll string
	err = conn.QueryRow(t.Context(), `SELECT coalesce(collation_name, '') FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = 'outbox' AND column_name = 'id'`).Scan(&coll)
	if err != nil {
		t.Fatal(err)
	}
	if coll != "C" {
		t.Fatalf("outbox.id has collation %q, want C", coll)
	}
}
