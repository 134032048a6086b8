package boltstore

// The notice outbox (notice.OutboxBackend) lives in two buckets:
//
//	outbox      id -> version (1 byte, 1) | due (8) | attempts (4) | blob
//	outbox_due  due (8) | id -> empty
//
// due is Unix milliseconds with the sign bit flipped (as hours are), so
// that outbox_due's byte order is (due, id) order; the blob is the sealed
// notice (package notice), opaque here. Each call runs in its own write
// transaction, which keeps both buckets in step.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/notice"
)

var (
	bktOutbox    = []byte("outbox")
	bktOutboxDue = []byte("outbox_due")
)

const (
	outboxVersion   = 1
	outboxHeaderLen = 1 + 8 + 4
	dueLen          = 8
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
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := tx.Bucket(bktOutbox)
		if b.Get([]byte(id)) != nil {
			return nil
		}
		if err := b.Put([]byte(id), encodeOutbox(due, 0, blob)); err != nil {
			return err
		}
		return tx.Bucket(bktOutboxDue).Put(dueKey(due, id), []byte{})
	})
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
	end := binary.BigEndian.AppendUint64(nil, encMilli(now))
	var out []notice.OutboxRow
	err := s.db.View(func(tx *bolt.Tx) error {
		rows := tx.Bucket(bktOutbox)
		c := tx.Bucket(bktOutboxDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < limit; k, _ = c.Next() {
			if len(k) <= dueLen {
				return fmt.Errorf("corrupt outbox index entry (%d bytes)", len(k))
			}
			if bytes.Compare(k[:dueLen], end) > 0 {
				break
			}
			id := string(k[dueLen:])
			r, err := decodeOutbox(id, rows.Get(k[dueLen:]))
			if err != nil {
				return err
			}
			if !bytes.Equal(dueKey(r.Due, id), k) {
				return fmt.Errorf("corrupt outbox: index and row of notice %s disagree on its due time", id)
			}
			out = append(out, r)
		}
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
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := tx.Bucket(bktOutbox)
		old, err := decodeOutbox(id, b.Get([]byte(id)))
		if err != nil {
			return err
		}
		idx := tx.Bucket(bktOutboxDue)
		if err := idx.Delete(dueKey(old.Due, id)); err != nil {
			return err
		}
		if err := b.Put([]byte(id), encodeOutbox(due, attempts, old.Blob)); err != nil {
			return err
		}
		return idx.Put(dueKey(due, id), []byte{})
	})
	if err != nil {
		return fmt.Errorf("reschedule notice %s: %w", id, err)
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
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := tx.Bucket(bktOutbox)
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		old, err := decodeOutbox(id, v)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bktOutboxDue).Delete(dueKey(old.Due, id)); err != nil {
			return err
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete notice %s: %w", id, err)
	}
	return nil
}

func encodeOutbox(due time.Time, attempts int, blob []byte) []byte {
	v := make([]byte, 0, outboxHeaderLen+len(blob))
	v = append(v, outboxVersion)
	v = binary.BigEndian.AppendUint64(v, encMilli(due))
	v = binary.BigEndian.AppendUint32(v, uint32(attempts))
	return append(v, blob...)
}

// decodeOutbox decodes a stored row (nil: not queued), copying out of v.
func decodeOutbox(id string, v []byte) (notice.OutboxRow, error) {
	switch {
	case v == nil:
		return notice.OutboxRow{}, notice.ErrNotQueued
	case len(v) <= outboxHeaderLen:
		return notice.OutboxRow{}, fmt.Errorf("corrupt outbox row %s (%d bytes)", id, len(v))
	case v[0] != outboxVersion:
		return notice.OutboxRow{}, fmt.Errorf("corrupt outbox row %s: unknown format version %d", id, v[0])
	}
	return notice.OutboxRow{
		ID:       id,
		Due:      decMilli(binary.BigEndian.Uint64(v[1:9])),
		Attempts: int(binary.BigEndian.Uint32(v[9:13])),
		Blob:     clone(v[outboxHeaderLen:]),
	}, nil
}

func dueKey(due time.Time, id string) []byte {
	k := make([]byte, 0, dueLen+len(id))
	k = binary.BigEndian.AppendUint64(k, encMilli(due))
	return append(k, id...)
}

// encMilli maps t to Unix milliseconds (rounded down) with the sign bit
// flipped, so that byte order is time order.
func encMilli(t time.Time) uint64 { return uint64(t.UnixMilli()) ^ (1 << 63) }
func decMilli(u uint64) time.Time { return time.UnixMilli(int64(u ^ (1 << 63))).UTC() }
