package pgstore

// The notice outbox (notice.OutboxBackend) is table outbox (migration 3):
// id (text, "C" collation so that it orders bytewise as in bbolt), due
// (bigint, Unix milliseconds), attempts and blob (the sealed notice,
// opaque here), with an index on (due, id) for DueNotices. Every call is
// one statement, so one implicit transaction.

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealgate/sealgate/notice"
)

var _ notice.OutboxBackend = (*Store)(nil)

// PutNotice implements notice.OutboxBackend.
func (s *Store) PutNotice(ctx context.Context, id string, due time.Time, blob []byte) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("put notice: %w", err)
	}
	if err := notice.CheckOutboxID(id); err != nil {
		return fmt.Errorf("put notice: %w", err)
	}
	if len(blob) == 0 {
		return fmt.Errorf("put notice %s: %w: empty blob", id, notice.ErrInvalidRow)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO outbox (id, due, attempts, blob) VALUES ($1, $2, 0, $3)
		ON CONFLICT (id) DO NOTHING`, id, due.UnixMilli(), blob)
	if err != nil {
		return fmt.Errorf("put notice %s: %w", id, err)
	}
	return nil
}

// DueNotices implements notice.OutboxBackend.
func (s *Store) DueNotices(ctx context.Context, now time.Time, limit int) ([]notice.OutboxRow, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("due notices: %w", err)
	}
	if limit <= 0 {
		return nil, fmt.Errorf("due notices: limit %d", limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, due, attempts, blob FROM outbox
		WHERE due <= $1 ORDER BY due, id LIMIT $2`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("due notices: %w", err)
	}
	var (
		out      []notice.OutboxRow
		id       string
		due      int64
		attempts int32
		blob     []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &due, &attempts, &blob}, func() error {
		out = append(out, notice.OutboxRow{ID: id, Due: time.UnixMilli(due).UTC(), Attempts: int(attempts), Blob: nonNil(blob)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("due notices: %w", err)
	}
	return out, nil
}

// RescheduleNotice implements notice.OutboxBackend.
func (s *Store) RescheduleNotice(ctx context.Context, id string, due time.Time, attempts int) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("reschedule notice: %w", err)
	}
	if err := notice.CheckOutboxID(id); err != nil {
		return fmt.Errorf("reschedule notice: %w", err)
	}
	if err := notice.CheckOutboxAttempts(attempts); err != nil {
		return fmt.Errorf("reschedule notice %s: %w", id, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE outbox SET due = $2, attempts = $3 WHERE id = $1`, id, due.UnixMilli(), int32(attempts))
	if err != nil {
		return fmt.Errorf("reschedule notice %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("reschedule notice %s: %w", id, notice.ErrNotQueued)
	}
	return nil
}

// DeleteNotice implements notice.OutboxBackend.
func (s *Store) DeleteNotice(ctx context.Context, id string) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("delete notice: %w", err)
	}
	if err := notice.CheckOutboxID(id); err != nil {
		return fmt.Errorf("delete notice: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete notice %s: %w", id, err)
	}
	return nil
}
