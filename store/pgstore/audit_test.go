package pgstore_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/storetest"
)

// TestAudit runs the audit backend contract against its own private
// cluster; each subtest uses its own database.
func TestAudit(t *testing.T) {
	cluster := testpg.Start(t)
	t.Run("Contract", func(t *testing.T) {
		storetest.RunAudit(t, storetest.Keyed(
			func(t *testing.T) string { return testpg.CreateDB(t, cluster) },
			func(t *testing.T, dsn string) store.Store { return open(t, dsn) },
		))
	})
	t.Run("AppendOnlyTrigger", func(t *testing.T) { testAuditTrigger(t, cluster) })
}

// testAuditTrigger checks that the schema refuses UPDATE, DELETE and
// TRUNCATE of audit rows (a guard against mistakes; the hash chain is what
// catches a database administrator who drops it).
func testAuditTrigger(t *testing.T, cluster string) {
	dsn := testpg.CreateDB(t, cluster)
	s := open(t, dsn)
	defer s.Close()
	log := audit.New(s, nil)
	for i := 0; i < 3; i++ {
		if _, err := log.Append(t.Context(), audit.Record{ActorRole: "system", Action: audit.ActionExpired, OrderID: "o1"}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	for _, sql := range []string{
		`UPDATE audit SET detail = 'x' WHERE seq = 2`,
		`UPDATE audit SET seq = seq + 10`,
		`DELETE FROM audit WHERE seq = 3`,
		`TRUNCATE audit`,
	} {
		_, err := conn.Exec(t.Context(), sql)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: error %v, want the append-only refusal", sql, err)
		}
	}
	rep, err := audit.Verify(t.Context(), s, nil)
	if err != nil || rep.Entries != 3 {
		t.Fatalf("after refused changes: Verify = %d entries, %v", rep.Entries, err)
	}
}
