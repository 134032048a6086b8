package boltstore

// The k-anonymous aggregates (store.Aggregates, package redact) live in
// bucket "aggregates":
//
//	aggregates  hour (8) | span (1) | release (8) | team | channel type (1) -> value
//
// hour has its sign bit flipped, as in records, so that byte order is hour
// order; the team is what is left between the fixed fields. The value is
//
//	version (1 byte, 1) | flags (1: 1 suppressed, 2 partial)
//	messages | edits | deletes | bytes | files | reactions | users   (uvarints)
//
// A suppressed bucket stores no counts. PutBuckets runs in its own write
// transaction (not the group commit of Put); Buckets reads one range in one
// read transaction. Neither touches the Stats counters.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

var bktAggregates = []byte("aggregates")

const (
	aggVersion      = 1
	aggKeyFixed     = hourLen + 1 + 8 + 1 // hour | span | release | type
	aggFlagSupp     = 1
	aggFlagPartial  = 2
	aggValueMaxSize = 2 + 7*binary.MaxVarintLen64
)

var _ store.Aggregates = (*Store)(nil)

// PutBuckets implements store.Aggregates (and redact.Sink).
func (s *Store) PutBuckets(ctx context.Context, buckets []redact.Bucket) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("put buckets: %w", err)
	}
	for i := range buckets {
		if err := store.CheckBucket(&buckets[i]); err != nil {
			return fmt.Errorf("put buckets: bucket %d: %w", i, err)
		}
	}
	if len(buckets) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := tx.Bucket(bktAggregates)
		for i := range buckets {
			k := aggKey(&buckets[i])
			if b.Get(k) != nil {
				continue
			}
			if err := b.Put(k, aggValue(&buckets[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put buckets: %w", err)
	}
	return nil
}

// Buckets implements store.Aggregates.
func (s *Store) Buckets(ctx context.Context, fromHour, toHour int64) ([]redact.Bucket, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("buckets: %w", err)
	}
	if fromHour > toHour {
		return nil, nil
	}
	seek := binary.BigEndian.AppendUint64(nil, encHour(fromHour))
	var out []redact.Bucket
	err := s.db.View(func(tx *bolt.Tx) error {
		// A day's release is a few thousand buckets, and their teams
		// repeat: share one string per team instead of one per bucket.
		teams := map[string]string{}
		c := tx.Bucket(bktAggregates).Cursor()
		n := 0
		for k, v := c.Seek(seek); k != nil; k, v = c.Next() {
			if len(k) < hourLen {
				return fmt.Errorf("corrupt aggregate key (%d bytes)", len(k))
			}
			if decHour(binary.BigEndian.Uint64(k)) > toHour {
				break
			}
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			b, err := decodeAgg(k, v, teams)
			if err != nil {
				return err
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buckets: %w", err)
	}
	// Key order is (hour, span, release, team|type); the team and type
	// are sorted apart only where one team is a prefix of another, so this
	// is nearly sorted already.
	slices.SortFunc(out, func(a, b redact.Bucket) int { return store.CompareBuckets(&a, &b) })
	return out, nil
}

func aggKey(b *redact.Bucket) []byte {
	k := make([]byte, 0, aggKeyFixed+len(b.Team))
	k = binary.BigEndian.AppendUint64(k, encHour(b.Hour))
	k = append(k, byte(b.Span))
	k = binary.BigEndian.AppendUint64(k, b.Release)
	k = append(k, b.Team...)
	return append(k, b.ChannelType)
}

func aggValue(b *redact.Bucket) []byte {
	v := make([]byte, 0, aggValueMaxSize)
	var flags byte
	if b.Suppressed {
		flags |= aggFlagSupp
	}
	if b.Partial {
		flags |= aggFlagPartial
	}
	v = append(v, aggVersion, flags)
	if b.Suppressed {
		return v
	}
	n := &b.Counts
	for _, x := range [...]int64{n.Messages, n.Edits, n.Deletes, n.Bytes, n.Files, n.Reactions, n.Users} {
		v = binary.AppendUvarint(v, uint64(x))
	}
	return v
}

var errCorruptAgg = errors.New("corrupt aggregate")

// decodeAgg decodes one stored bucket, copying out of k and v (valid only
// inside the transaction); teams interns the team strings.
func decodeAgg(k, v []byte, teams map[string]string) (redact.Bucket, error) {
	var b redact.Bucket
	if len(k) <= aggKeyFixed {
		return b, fmt.Errorf("%w: key of %d bytes", errCorruptAgg, len(k))
	}
	b.Hour = decHour(binary.BigEndian.Uint64(k))
	b.Span = redact.Span(k[hourLen])
	b.Release = binary.BigEndian.Uint64(k[hourLen+1:])
	tk := k[hourLen+1+8 : len(k)-1]
	team, ok := teams[string(tk)]
	if !ok {
		team = string(tk)
		teams[team] = team
	}
	b.Team = team
	b.ChannelType = k[len(k)-1]
	if len(v) < 2 || v[0] != aggVersion {
		return b, fmt.Errorf("%w: bucket at hour %d: bad value header", errCorruptAgg, b.Hour)
	}
	b.Suppressed = v[1]&aggFlagSupp != 0
	b.Partial = v[1]&aggFlagPartial != 0
	rest := v[2:]
	if !b.Suppressed {
		n := &b.Counts
		for _, p := range [...]*int64{&n.Messages, &n.Edits, &n.Deletes, &n.Bytes, &n.Files, &n.Reactions, &n.Users} {
			x, m := binary.Uvarint(rest)
			if m <= 0 {
				return b, fmt.Errorf("%w: bucket at hour %d: bad counts", errCorruptAgg, b.Hour)
			}
			*p = int64(x)
			rest = rest[m:]
		}
	}
	if len(rest) != 0 {
		return b, fmt.Errorf("%w: bucket at hour %d: %d trailing bytes", errCorruptAgg, b.Hour, len(rest))
	}
	if err := store.CheckBucket(&b); err != nil {
		return b, fmt.Errorf("%w: bucket at hour %d: %v", errCorruptAgg, b.Hour, err)
	}
	return b, nil
}
