package pgstore

// The audit log (package audit) is table audit (migration 2), one row per
// entry, seq as the primary key, prev and hash as 32-byte bytea, time as
// timestamptz (microseconds, which is the precision audit entries carry).
//
// AppendAudit runs one transaction that takes a transaction-level advisory
// lock (auditLock), reads the last row, checks that the new entry extends
// it, and inserts; the lock is released at commit. Appends from every
// connection and every gateway replica are thereby serialized, so the chain
// cannot fork. A unique violation on seq (which the lock should make
// impossible) is reported as a conflict as well.

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sealgate/sealgate/audit"
)

// auditLock is the pg_advisory_xact_lock key serializing audit appends
// ("sgaudit" in ASCII; distinct from migrationLock).
const auditLock int64 = 0x0073676175646974

// auditPage is how many entries AuditEntries fetches per query.
const auditPage = 500

const auditColumns = `seq, time, actor_role, actor_pseudonym, action, order_id, object, detail, prev, hash`

var _ audit.Backend = (*Store)(nil)

// AppendAudit implements audit.Backend.
func (s *Store) AppendAudit(ctx context.Context, e audit.Entry) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, auditLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		var (
			lastSeq  int64
			lastHash []byte
		)
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&lastSeq, &lastHash)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			lastHash = make([]byte, 32)
		case err != nil:
			return fmt.Errorf("read last entry: %w", err)
		case len(lastHash) != 32:
			return fmt.Errorf("%w: entry %d: hash of %d bytes", audit.ErrCorrupt, lastSeq, len(lastHash))
		}
		if e.Seq != uint64(lastSeq)+1 {
			return fmt.Errorf("%w: entry %d does not follow the last stored entry %d", audit.ErrConflict, e.Seq, lastSeq)
		}
		if [32]byte(lastHash) != e.Prev {
			return fmt.Errorf("%w: entry %d: prev is not the hash of entry %d", audit.ErrConflict, e.Seq, lastSeq)
		}
		_, err = tx.Exec(ctx, `INSERT INTO audit (`+auditColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			int64(e.Seq), e.Time, e.ActorRole, e.ActorPseudonym, string(e.Action), e.OrderID, e.Object, e.Detail, e.Prev[:], e.Hash[:])
		return err
	})
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
			return fmt.Errorf("append audit: %w: entry %d already exists", audit.ErrConflict, e.Seq)
		}
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// LastAudit implements audit.Backend.
func (s *Store) LastAudit(ctx context.Context) (audit.Entry, bool, error) {
	if err := s.check(ctx); err != nil {
		return audit.Entry{}, false, fmt.Errorf("last audit: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit ORDER BY seq DESC LIMIT 1`)
	if err != nil {
		return audit.Entry{}, false, fmt.Errorf("last audit: %w", err)
	}
	es, err := scanAudit(rows)
	if err != nil {
		return audit.Entry{}, false, fmt.Errorf("last audit: %w", err)
	}
	if len(es) == 0 {
		return audit.Entry{}, false, nil
	}
	return es[0], true, nil
}

// AuditEntries implements audit.Backend. It reads pages by keyset
// pagination and runs fn with no query open, so fn may use the store.
func (s *Store) AuditEntries(ctx context.Context, fromSeq uint64, fn func(audit.Entry) error) error {
	if fromSeq > math.MaxInt64 { // no such entry can exist
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		return nil
	}
	const (
		first = `SELECT ` + auditColumns + ` FROM audit WHERE seq >= $1 ORDER BY seq LIMIT $2`
		next  = `SELECT ` + auditColumns + ` FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2`
	)
	q, from := first, int64(fromSeq)
	for {
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		rows, err := s.pool.Query(ctx, q, from, auditPage)
		if err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		page, err := scanAudit(rows)
		for _, e := range page { // the entries before an undecodable one
			if err := fn(e); err != nil {
				return err
			}
		}
		if err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		if len(page) < auditPage {
			return nil
		}
		q, from = next, int64(page[len(page)-1].Seq)
	}
}

// scanAudit reads rows of auditColumns. On an undecodable row it returns the
// entries before it and an error wrapping audit.ErrCorrupt.
func scanAudit(rows pgx.Rows) ([]audit.Entry, error) {
	var (
		out        []audit.Entry
		seq        int64
		e          audit.Entry
		action     string
		prev, hash []byte
	)
	_, err := pgx.ForEachRow(rows, []any{&seq, &e.Time, &e.ActorRole, &e.ActorPseudonym, &action, &e.OrderID, &e.Object, &e.Detail, &prev, &hash}, func() error {
		if seq <= 0 {
			return fmt.Errorf("%w: sequence number %d", audit.ErrCorrupt, seq)
		}
		if len(prev) != 32 || len(hash) != 32 {
			return fmt.Errorf("%w: entry %d: prev of %d and hash of %d bytes", audit.ErrCorrupt, seq, len(prev), len(hash))
		}
		x := e
		x.Seq = uint64(seq)
		x.Time = x.Time.UTC()
		x.Action = audit.Action(action)
		x.Prev, x.Hash = [32]byte(prev), [32]byte(hash)
		out = append(out, x)
		return nil
	})
	return out, err
}
