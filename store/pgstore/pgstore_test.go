package pgstore_test

import (
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/pgstore"
	"github.com/sealgate/sealgate/store/storetest"
)

func open(t testing.TB, dsn string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// TestPostgres runs everything that needs a server against one private
// cluster; each subtest uses its own database.
func TestPostgres(t *testing.T) {
	cluster := testpg.Start(t)
	t.Run("Contract", func(t *testing.T) {
		storetest.Run(t, storetest.Keyed(
			func(t *testing.T) string { return testpg.CreateDB(t, cluster) },
			func(t *testing.T, dsn string) store.Store { return open(t, dsn) },
		))
	})
	t.Run("Migrations", func(t *testing.T) { testMigrations(t, cluster) })
	t.Run("SchemaHasNoClearColumns", func(t *testing.T) { testSchemaColumns(t, cluster) })
	t.Run("ForcesSynchronousCommit", func(t *testing.T) {
		dsn := testpg.CreateDB(t, cluster) + "&synchronous_commit=off"
		s := open(t, dsn)
		defer s.Close()
		v, err := s.Setting(t.Context(), "synchronous_commit")
		if err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Fatalf("synchronous_commit = %q on a store connection, want on", v)
		}
	})
}

func testMigrations(t *testing.T, cluster string) {
	t.Run("ConcurrentOpens", func(t *testing.T) {
		dsn := testpg.CreateDB(t, cluster)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := pgstore.Open(t.Context(), dsn)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Open %d: %v", i, err)
			}
		}
		versions := queryInts(t, dsn, `SELECT version FROM schema_migrations ORDER BY version`)
		if len(versions) != pgstore.SchemaVersion() || versions[len(versions)-1] != pgstore.SchemaVersion() {
			t.Fatalf("schema_migrations = %v, want 1..%d once each", versions, pgstore.SchemaVersion())
		}
	})

	t.Run("ReopenKeepsVersion", func(t *testing.T) {
		dsn := testpg.CreateDB(t, cluster)
		for i := 0; i < 2; i++ {
			open(t, dsn).Close()
		}
		if got := queryInts(t, dsn, `SELECT count(*) FROM schema_migrations`); got[0] != pgstore.SchemaVersion() {
			t.Fatalf("schema_migrations has %d rows after two opens", got[0])
		}
	})

	t.Run("RefusesNewerSchema", func(t *testing.T) {
		dsn := testpg.CreateDB(t, cluster)
		open(t, dsn).Close()
		execSQL(t, dsn, `INSERT INTO schema_migrations (version) VALUES (9999)`)
		s, err := pgstore.Open(t.Context(), dsn)
		if err == nil {
			s.Close()
			t.Fatal("Open succeeded on a schema newer than the package")
		}
		if !strings.Contains(err.Error(), "newer") {
			t.Fatalf("Open error %q does not say the schema is newer", err)
		}
	})
}

func TestBadDSNDoesNotEchoPassword(t *testing.T) {
	_, err := pgstore.Open(t.Context(), "postgres://u:hunter2@127.0.0.1:1/x?sslmode=bogus")
	if err == nil {
		t.Fatal("Open accepted an invalid DSN")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error echoes the password: %v", err)
	}
}

// testSchemaColumns checks that the schema holds only the columns store.go
// lists: nothing in clear that names a person.
func testSchemaColumns(t *testing.T, cluster string) {
	dsn := testpg.CreateDB(t, cluster)
	open(t, dsn).Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), `SELECT table_name || '.' || column_name FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name <> 'schema_migrations' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := "aggregates.bytes aggregates.channel_type aggregates.deletes aggregates.edits aggregates.files aggregates.hour " +
		"aggregates.messages aggregates.partial aggregates.reactions aggregates.release aggregates.span aggregates.suppressed " +
		"aggregates.team aggregates.users " +
		"audit.action audit.actor_pseudonym audit.actor_role audit.detail audit.hash audit.object audit.order_id audit.prev audit.seq audit.time " +
		"dp_ledger.day dp_ledger.family dp_ledger.spent epochs.blob epochs.id " +
		"file_chunks.created_at file_chunks.data file_chunks.seq file_chunks.upload " +
		"files.chunks files.hour files.key_record_id files.ref files.size files.tag files.upload " +
		"key_records.blob key_records.epoch_id key_records.id key_records.tag " +
		"outbox.attempts outbox.blob outbox.due outbox.id " +
		"records.blob records.hour records.key_record_id records.ref records.tag"
	if got := strings.Join(cols, " "); got != want {
		t.Fatalf("columns:\n got %s\nwant %s", got, want)
	}
}

func queryInts(t *testing.T, dsn, sql string) []int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPut: see storetest.BenchPut; against a private cluster with fsync
// on, each run in a fresh database.
func BenchmarkPut(b *testing.B) {
	cluster := testpg.Start(b)
	storetest.BenchPut(b, func(b *testing.B) store.Store { return open(b, testpg.CreateDB(b, cluster)) })
}
