// Package pgstore is the PostgreSQL retention store, for deployments that
// outgrow one local file. It uses pgx with a connection pool.
//
// Open migrates the schema: migrations are embedded, numbered from 1, and
// applied in one transaction under a PostgreSQL advisory lock, so gateways
// starting at the same time do not race; the version reached is kept in
// schema_migrations.
//
// Put sends each batch as one pipelined round trip that runs as a single
// implicit transaction: one INSERT … SELECT FROM unnest(…) ON CONFLICT DO
// NOTHING per table. Rows are inserted in key order so that concurrent,
// overlapping Puts cannot deadlock on each other's uncommitted rows; a
// deadlock or serialization failure is retried nonetheless. A Put is durable
// when it returns (Open turns synchronous_commit back on for its sessions if
// it is configured off), and concurrent Puts on different connections share
// WAL flushes.
package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// migrations are applied in order; migrations[i] brings the schema to
// version i+1. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: the three tables.
	`CREATE TABLE records (
		ref           bytea  PRIMARY KEY CHECK (length(ref) = 16),
		tag           bytea  NOT NULL CHECK (length(tag) = 16),
		hour          bigint NOT NULL,
		key_record_id bytea  NOT NULL CHECK (length(key_record_id) = 16),
		blob          bytea  NOT NULL
	);
	CREATE INDEX records_tag_hour_ref ON records (tag, hour, ref);

	CREATE TABLE key_records (
		id       bytea PRIMARY KEY CHECK (length(id) = 16),
		tag      bytea NOT NULL CHECK (length(tag) = 16),
		epoch_id bytea NOT NULL CHECK (length(epoch_id) = 16),
		blob     bytea NOT NULL
	);
	CREATE INDEX key_records_tag ON key_records (tag);

	CREATE TABLE epochs (
		id   bytea PRIMARY KEY CHECK (length(id) = 16),
		blob bytea NOT NULL
	);`,

	// 2: the audit log (see audit.go). The trigger refuses UPDATE, DELETE
	// and TRUNCATE, against mistakes; it is no defence against the database
	// administrator, who can drop it: the hash chain and published
	// checkpoints are.
	`CREATE TABLE audit (
		seq             bigint      PRIMARY KEY CHECK (seq > 0),
		time            timestamptz NOT NULL,
		actor_role      text        NOT NULL,
		actor_pseudonym text        NOT NULL,
		action          text        NOT NULL,
		order_id        text        NOT NULL,
		object          text        NOT NULL,
		detail          text        NOT NULL,
		prev            bytea       NOT NULL CHECK (length(prev) = 32),
		hash            bytea       NOT NULL CHECK (length(hash) = 32)
	);

	CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
	END
	$$;
	CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit
		FOR EACH ROW EXECUTE FUNCTION audit_append_only();
	CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
		FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();`,

	// 3: the notice outbox (see outbox.go): id and schedule in clear, the
	// notice sealed in blob.
	`CREATE TABLE outbox (
		id       text COLLATE "C" PRIMARY KEY CHECK (octet_length(id) BETWEEN 1 AND 64),
		due      bigint  NOT NULL,
		attempts integer NOT NULL CHECK (attempts >= 0),
		blob     bytea   NOT NULL CHECK (length(blob) > 0)
	);
	CREATE INDEX outbox_due_id ON outbox (due, id);`,

	// 4: the k-anonymous aggregates (see aggregates.go): counts of released
	// days by hour or day, team id and channel type; no user.
	`CREATE TABLE aggregates (
		hour         bigint   NOT NULL,
		span         smallint NOT NULL CHECK (span IN (1, 24) AND (span = 1 OR hour % 24 = 0)),
		release      bigint   NOT NULL,
		team         bytea    NOT NULL CHECK (length(team) BETWEEN 1 AND 64),
		channel_type text COLLATE "C" NOT NULL CHECK (channel_type IN ('O', 'P', 'D', 'G', '?', '*')),
		suppressed   boolean  NOT NULL,
		partial      boolean  NOT NULL,
		messages     bigint   NOT NULL CHECK (messages >= 0),
		edits        bigint   NOT NULL CHECK (edits >= 0),
		deletes      bigint   NOT NULL CHECK (deletes >= 0),
		bytes        bigint   NOT NULL CHECK (bytes >= 0),
		files        bigint   NOT NULL CHECK (files >= 0),
		reactions    bigint   NOT NULL CHECK (reactions >= 0),
		users        bigint   NOT NULL CHECK (users >= 0),
		CHECK (NOT suppressed OR (messages, edits, deletes, bytes, files, reactions, users) = (0, 0, 0, 0, 0, 0, 0)),
		PRIMARY KEY (hour, span, release, team, channel_type)
	);`,

	// 5: the differential-privacy budget of published aggregates (see
	// ledger.go): ε spent per metric family and day; no figure, no person.
	`CREATE TABLE dp_ledger (
		family text COLLATE "C" NOT NULL CHECK (family ~ '^[a-z_]{1,32}$'),
		day    date NOT NULL,
		spent  double precision NOT NULL CHECK (spent >= 0),
		PRIMARY KEY (family, day)
	);`,

	// 6: sealed file contents (see files.go): the row as records have it,
	// and the content in chunks of one upload each. upload is unique, so no
	// two files share chunks and the sweep's lookup is indexed; created_at
	// only lets the sweep tell an abandoned upload from one still running.
	`CREATE TABLE files (
		ref           bytea   PRIMARY KEY CHECK (length(ref) = 16),
		tag           bytea   NOT NULL CHECK (length(tag) = 16),
		hour          bigint  NOT NULL,
		key_record_id bytea   NOT NULL CHECK (length(key_record_id) = 16),
		upload        bytea   NOT NULL UNIQUE CHECK (length(upload) = 16),
		size          bigint  NOT NULL CHECK (size >= 0),
		chunks        integer NOT NULL CHECK (chunks >= 0)
	);

	CREATE TABLE file_chunks (
		upload     bytea       NOT NULL CHECK (length(upload) = 16),
		seq        integer     NOT NULL CHECK (seq >= 0),
		data       bytea       NOT NULL CHECK (length(data) > 0),
		created_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (upload, seq)
	);`,
}

// migrationLock is the pg_advisory_xact_lock key serializing migrations
// ("sealgate" in ASCII).
const migrationLock int64 = 0x7365616c67617465

const (
	// defaultMaxConns is the pool size unless the DSN sets pool_max_conns.
	// Puts spend most of their time waiting for the commit's WAL flush, so
	// more connections than CPUs let more of them share each flush.
	defaultMaxConns = 16

	// scanPage is how many records Records fetches per query. No connection
	// is held while the callback runs, so it may use the store.
	scanPage = 500

	putAttempts = 4
)

const (
	insertEpochs = `INSERT INTO epochs (id, blob)
		SELECT * FROM unnest($1::bytea[], $2::bytea[]) AS u(id, blob)
		ORDER BY id
		ON CONFLICT (id) DO NOTHING`
	insertKeyRecords = `INSERT INTO key_records (id, tag, epoch_id, blob)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[]) AS u(id, tag, epoch_id, blob)
		ORDER BY id
		ON CONFLICT (id) DO NOTHING`
	insertRecords = `INSERT INTO records (ref, tag, hour, key_record_id, blob)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bytea[], $5::bytea[]) AS u(ref, tag, hour, key_record_id, blob)
		ORDER BY ref
		ON CONFLICT (ref) DO NOTHING
		RETURNING ref`
)

var errClosed = errors.New("store is closed")

// Store is a PostgreSQL-backed store.Store. It is safe for concurrent use.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or a
// key=value string; pool settings such as pool_max_conns are honoured),
// brings its schema up to date and sweeps abandoned file uploads (see
// files.go).
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("open store: invalid DSN")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	cfg.AfterConnect = ensureDurableCommits
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := sweepChunks(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// ensureDurableCommits turns synchronous_commit back on for the session if
// the server or role has it off, since Put promises durability. Other values
// (local, remote_write, on, remote_apply) all flush the local WAL and are
// left alone.
func ensureDurableCommits(ctx context.Context, conn *pgx.Conn) error {
	var v string
	if err := conn.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
		return fmt.Errorf("read synchronous_commit: %w", err)
	}
	if v != "off" {
		return nil
	}
	if _, err := conn.Exec(ctx, `SET synchronous_commit = on`); err != nil {
		return fmt.Errorf("set synchronous_commit: %w", err)
	}
	return nil
}

// SchemaVersion is the schema version this package migrates to.
func SchemaVersion() int { return len(migrations) }

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer     PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("migrate: read version: %w", err)
		}
		if current > len(migrations) {
			return fmt.Errorf("migrate: database schema version %d is newer than this gateway supports (%d)", current, len(migrations))
		}
		for v := current + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migrate: version %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
				return fmt.Errorf("migrate: record version %d: %w", v, err)
			}
		}
		return nil
	})
}

// Close closes the pool. Calls made after Close return an error; closing
// twice is harmless.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return nil
}

func (s *Store) check(ctx context.Context) error {
	if s.closed.Load() {
		return errClosed
	}
	return ctx.Err()
}

// Put implements store.Store.
func (s *Store) Put(ctx context.Context, b *store.Batch) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, fmt.Errorf("put batch: %w", err)
	}
	if b == nil {
		return 0, nil
	}
	batch := buildBatch(b)
	if batch.Len() == 0 {
		return 0, nil
	}
	var err error
	for attempt := 1; ; attempt++ {
		var inserted []crypto.Ref
		inserted, err = s.send(ctx, batch, len(b.Records) > 0)
		if err == nil {
			b.Inserted = inserted
			return len(inserted), nil
		}
		if attempt == putAttempts || !retryable(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("put batch: %w", err)
}

// send runs the batch as one implicit transaction and returns the refs of
// the records inserted (what the last statement returns when hasRecords).
func (s *Store) send(ctx context.Context, batch *pgx.Batch, hasRecords bool) ([]crypto.Ref, error) {
	br := s.pool.SendBatch(ctx, batch)
	var inserted []crypto.Ref
	var err error
	for i := 0; i < batch.Len() && err == nil; i++ {
		if i < batch.Len()-1 || !hasRecords {
			_, err = br.Exec()
			continue
		}
		var rows pgx.Rows
		if rows, err = br.Query(); err != nil {
			break
		}
		for rows.Next() {
			var ref []byte
			if err = rows.Scan(&ref); err != nil {
				break
			}
			var r crypto.Ref
			copy(r[:], ref)
			inserted = append(inserted, r)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	return inserted, nil
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40P01" || pgErr.Code == "40001" // deadlock_detected, serialization_failure
	}
	return false
}

// buildBatch turns b into up to three statements, epochs first, then key
// records, then records, each table's rows de-duplicated and in key order.
// Every Put takes row locks in this one global order, so two Puts cannot
// wait on each other in a cycle.
func buildBatch(b *store.Batch) *pgx.Batch {
	batch := &pgx.Batch{}

	if eps := dedupSorted(b.Epochs, func(e store.Epoch) [16]byte { return e.ID }); len(eps) > 0 {
		ids, blobs := make([][]byte, len(eps)), make([][]byte, len(eps))
		for i, e := range eps {
			ids[i], blobs[i] = slice16(e.ID), nonNil(e.Blob)
		}
		batch.Queue(insertEpochs, ids, blobs)
	}

	if krs := dedupSorted(b.KeyRecords, func(k store.KeyRecord) [16]byte { return k.ID }); len(krs) > 0 {
		n := len(krs)
		ids, tags, eids, blobs := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
		for i, k := range krs {
			ids[i], tags[i], eids[i], blobs[i] = slice16(k.ID), slice16(k.Tag), slice16(k.EpochID), nonNil(k.Blob)
		}
		batch.Queue(insertKeyRecords, ids, tags, eids, blobs)
	}

	if recs := dedupSorted(b.Records, func(r store.Record) [16]byte { return r.Ref }); len(recs) > 0 {
		n := len(recs)
		refs, tags, hours, krids, blobs := make([][]byte, n), make([][]byte, n), make([]int64, n), make([][]byte, n), make([][]byte, n)
		for i, r := range recs {
			refs[i], tags[i], hours[i], krids[i], blobs[i] = slice16(r.Ref), slice16(r.Tag), r.Hour, slice16(r.KeyRecordID), nonNil(r.Blob)
		}
		batch.Queue(insertRecords, refs, tags, hours, krids, blobs)
	}
	return batch
}

// dedupSorted returns xs sorted by key, keeping the first of equal keys.
func dedupSorted[T any](xs []T, key func(T) [16]byte) []T {
	if len(xs) == 0 {
		return nil
	}
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int {
		ki, kj := key(xs[i]), key(xs[j])
		return bytes.Compare(ki[:], kj[:])
	})
	out := make([]T, 0, len(xs))
	var last [16]byte
	for n, i := range idx {
		k := key(xs[i])
		if n > 0 && k == last {
			continue
		}
		out = append(out, xs[i])
		last = k
	}
	return out
}

// HasRef implements store.Store.
func (s *Store) HasRef(ctx context.Context, ref crypto.Ref) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, fmt.Errorf("has ref: %w", err)
	}
	var found bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM records WHERE ref = $1)`, ref[:]).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("has ref: %w", err)
	}
	return found, nil
}

// KeyRecords implements store.Store. Key records come back in id order.
func (s *Store) KeyRecords(ctx context.Context, tag crypto.Tag) ([]store.KeyRecord, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("key records: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, epoch_id, blob FROM key_records WHERE tag = $1 ORDER BY id`, tag[:])
	if err != nil {
		return nil, fmt.Errorf("key records: %w", err)
	}
	var (
		out           []store.KeyRecord
		id, eid, blob []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &eid, &blob}, func() error {
		kr := store.KeyRecord{Tag: tag, Blob: nonNil(blob)}
		if err := copy16(kr.ID[:], id); err != nil {
			return err
		}
		if err := copy16(kr.EpochID[:], eid); err != nil {
			return err
		}
		out = append(out, kr)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("key records: %w", err)
	}
	return out, nil
}

// Epoch implements store.Store.
func (s *Store) Epoch(ctx context.Context, id crypto.EpochID) (store.Epoch, error) {
	if err := s.check(ctx); err != nil {
		return store.Epoch{}, fmt.Errorf("epoch: %w", err)
	}
	var blob []byte
	err := s.pool.QueryRow(ctx, `SELECT blob FROM epochs WHERE id = $1`, id[:]).Scan(&blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Epoch{}, fmt.Errorf("epoch: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Epoch{}, fmt.Errorf("epoch: %w", err)
	}
	return store.Epoch{ID: id, Blob: nonNil(blob)}, nil
}

// Records implements store.Store. It reads pages of scanPage records by
// keyset pagination and runs fn with no query open, so fn may call the
// store; records committed during the scan may or may not be seen, but
// order holds.
func (s *Store) Records(ctx context.Context, tag crypto.Tag, fromHour, toHour int64, fn func(store.Record) error) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	if fromHour > toHour {
		return nil
	}
	const (
		first = `SELECT ref, hour, key_record_id, blob FROM records
			WHERE tag = $1 AND hour >= $2 AND hour <= $3
			ORDER BY hour, ref LIMIT $4`
		next = `SELECT ref, hour, key_record_id, blob FROM records
			WHERE tag = $1 AND (hour, ref) > ($2, $5) AND hour <= $3
			ORDER BY hour, ref LIMIT $4`
	)
	page := make([]store.Record, 0, scanPage)
	var last *store.Record
	for {
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("records: %w", err)
		}
		var rows pgx.Rows
		var err error
		if last == nil {
			rows, err = s.pool.Query(ctx, first, tag[:], fromHour, toHour, scanPage)
		} else {
			rows, err = s.pool.Query(ctx, next, tag[:], last.Hour, toHour, scanPage, last.Ref[:])
		}
		if err != nil {
			return fmt.Errorf("records: %w", err)
		}
		page = page[:0]
		var (
			ref, krid, blob []byte
			hour            int64
		)
		// pgx scans bytea into a new slice per row, so rows do not alias.
		_, err = pgx.ForEachRow(rows, []any{&ref, &hour, &krid, &blob}, func() error {
			r := store.Record{Tag: tag, Hour: hour, Blob: nonNil(blob)}
			if err := copy16(r.Ref[:], ref); err != nil {
				return err
			}
			if err := copy16(r.KeyRecordID[:], krid); err != nil {
				return err
			}
			page = append(page, r)
			return nil
		})
		if err != nil {
			return fmt.Errorf("records: %w", err)
		}
		for _, r := range page {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(page) < scanPage {
			return nil
		}
		r := page[len(page)-1]
		last = &r
	}
}

// Stats implements store.Store. It counts rows, so it costs a scan of each
// table; it is meant for occasional monitoring, not per request.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	if err := s.check(ctx); err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	var st store.Stats
	var recBytes, krBytes, epBytes int64
	// One statement, so one snapshot.
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM records), (SELECT coalesce(sum(length(blob)), 0) FROM records),
		(SELECT count(*) FROM key_records), (SELECT coalesce(sum(length(blob)), 0) FROM key_records),
		(SELECT count(*) FROM epochs), (SELECT coalesce(sum(length(blob)), 0) FROM epochs)`,
	).Scan(&st.Records, &recBytes, &st.KeyRecords, &krBytes, &st.Epochs, &epBytes)
	if err != nil {
		return store.Stats{}, fmt.Errorf("stats: %w", err)
	}
	st.Bytes = recBytes + krBytes + epBytes
	return st, nil
}

func slice16(a [16]byte) []byte { return a[:] }

// nonNil maps nil to an empty slice: pgx sends a nil []byte as NULL, and
// the blob columns are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func copy16(dst, src []byte) error {
	if len(src) != 16 {
		return fmt.Errorf("stored id has %d bytes, want 16", len(src))
	}
	copy(dst, src)
	return nil
}
