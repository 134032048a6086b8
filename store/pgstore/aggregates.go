package pgstore

// The k-anonymous aggregates (store.Aggregates, package redact) are table
// aggregates (migration 4): one row per bucket, primary key (hour, span,
// release, team, channel_type), which also serves the range scan by hour.
// release is the bucket's uint64 stored as bigint (two's complement); team
// is bytea, so that any team id the aggregator counts can be stored and it
// orders bytewise as in bbolt; a suppressed row has zero counts (a CHECK
// holds it to that).

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

var _ store.Aggregates = (*Store)(nil)

// insertAggregates inserts in primary key order, so that concurrent,
// overlapping PutBuckets take their row locks in one order.
const insertAggregates = `INSERT INTO aggregates (hour, span, release, team, channel_type, suppressed, partial,
		messages, edits, deletes, bytes, files, reactions, users)
	SELECT * FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $4::bytea[], $5::text[], $6::boolean[], $7::boolean[],
		$8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[])
		AS u(hour, span, release, team, channel_type, suppressed, partial, messages, edits, deletes, bytes, files, reactions, users)
	ORDER BY hour, span, release, team, channel_type
	ON CONFLICT (hour, span, release, team, channel_type) DO NOTHING`

// PutBuckets implements store.Aggregates (and redact.Sink). The buckets go
// in one statement, so one implicit transaction.
func (s *Store) PutBuckets(ctx context.Context, buckets []redact.Bucket) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("put buckets: %w", err)
	}
	for i := range buckets {
		if err := store.CheckBucket(&buckets[i]); err != nil {
			return fmt.Errorf("put buckets: bucket %d: %w", i, err)
		}
	}
	n := len(buckets)
	if n == 0 {
		return nil
	}
	var (
		hours, releases                                   = make([]int64, n), make([]int64, n)
		spans                                             = make([]int16, n)
		teams                                             = make([][]byte, n)
		types                                             = make([]string, n)
		supp, partial                                     = make([]bool, n), make([]bool, n)
		msgs, edits, dels, bytes, files, reactions, users = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i := range buckets {
		b := &buckets[i]
		hours[i], spans[i], releases[i] = b.Hour, int16(b.Span), int64(b.Release)
		teams[i], types[i] = []byte(b.Team), string(rune(b.ChannelType))
		supp[i], partial[i] = b.Suppressed, b.Partial
		msgs[i], edits[i], dels[i], bytes[i] = b.Messages, b.Edits, b.Deletes, b.Bytes
		files[i], reactions[i], users[i] = b.Files, b.Reactions, b.Users
	}
	var err error
	for attempt := 1; ; attempt++ {
		_, err = s.pool.Exec(ctx, insertAggregates, hours, spans, releases, teams, types, supp, partial,
			msgs, edits, dels, bytes, files, reactions, users)
		if err == nil {
			return nil
		}
		if attempt == putAttempts || !retryable(err) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	return fmt.Errorf("put buckets: %w", err)
}

// Buckets implements store.Aggregates. The order is store.CompareBuckets':
// a release of 2^63 or more is a negative bigint, hence "release < 0"
// before release.
func (s *Store) Buckets(ctx context.Context, fromHour, toHour int64) ([]redact.Bucket, error) {
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("buckets: %w", err)
	}
	if fromHour > toHour {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT hour, span, release, team, channel_type, suppressed, partial,
			messages, edits, deletes, bytes, files, reactions, users
		FROM aggregates WHERE hour BETWEEN $1 AND $2
		ORDER BY hour, span, release < 0, release, team, channel_type`, fromHour, toHour)
	if err != nil {
		return nil, fmt.Errorf("buckets: %w", err)
	}
	var (
		out      []redact.Bucket
		b        redact.Bucket
		span     int16
		release  int64
		team     []byte
		ct       string
		internal = map[string]string{}
	)
	n := &b.Counts
	_, err = pgx.ForEachRow(rows, []any{&b.Hour, &span, &release, &team, &ct, &b.Suppressed, &b.Partial,
		&n.Messages, &n.Edits, &n.Deletes, &n.Bytes, &n.Files, &n.Reactions, &n.Users}, func() error {
		if len(ct) != 1 {
			return fmt.Errorf("stored channel type %q", ct)
		}
		b.Span, b.Release, b.ChannelType = redact.Span(span), uint64(release), ct[0]
		t, ok := internal[string(team)]
		if !ok {
			t = string(team)
			internal[t] = t
		}
		b.Team = t
		if err := store.CheckBucket(&b); err != nil {
			return fmt.Errorf("stored bucket at hour %d: %w", b.Hour, err)
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("buckets: %w", err)
	}
	return out, nil
}
