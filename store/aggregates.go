package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sealgate/sealgate/redact"
)

// Aggregates is implemented by the stores that keep the k-anonymous
// aggregates of package redact: the buckets of released days, counts and
// suppression markers only.
type Aggregates interface {
	// PutBuckets stores buckets in one transaction: all of them or, on
	// error, none. A bucket is identified by (Release, Span, Hour, Team,
	// ChannelType); one already stored is left as it is, so a re-put of a
	// release is a no-op, while a second release of the same day is kept
	// beside the first. An invalid bucket (see CheckBucket) fails the call.
	PutBuckets(ctx context.Context, buckets []redact.Bucket) error
	// Buckets returns every bucket, of any span, with fromHour <= Hour <=
	// toHour (hours since the Unix epoch, UTC), in the order of
	// CompareBuckets.
	Buckets(ctx context.Context, fromHour, toHour int64) ([]redact.Bucket, error)
}

// ErrInvalidBucket is wrapped by the error of a PutBuckets that was given a
// bucket that is not well formed.
var ErrInvalidBucket = errors.New("invalid aggregate bucket")

// MaxBucketTeam is the longest team a bucket may hold, in bytes (the
// aggregator counts a longer team id as redact.UnknownTeam).
const MaxBucketTeam = 64

// CheckBucket reports whether b may be stored: span Hour or Day (a Day
// bucket starting at midnight UTC), a team of 1 to MaxBucketTeam bytes, a
// known channel type, no negative count, and no figures on a suppressed
// bucket. The error wraps ErrInvalidBucket.
func CheckBucket(b *redact.Bucket) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s", ErrInvalidBucket, why)
	}
	switch b.Span {
	case redact.Hour:
	case redact.Day:
		if b.Hour%24 != 0 {
			return bad(fmt.Sprintf("day bucket at hour %d, not at midnight UTC", b.Hour))
		}
	default:
		return bad(fmt.Sprintf("span %d, want 1 or 24", int(b.Span)))
	}
	if b.Team == "" || len(b.Team) > MaxBucketTeam {
		return bad(fmt.Sprintf("team of %d bytes, want 1 to %d", len(b.Team), MaxBucketTeam))
	}
	switch b.ChannelType {
	case 'O', 'P', 'D', 'G', redact.UnknownType, redact.AllTypes:
	default:
		return bad(fmt.Sprintf("channel type %q", b.ChannelType))
	}
	n := &b.Counts
	if n.Messages < 0 || n.Edits < 0 || n.Deletes < 0 || n.Bytes < 0 || n.Files < 0 || n.Reactions < 0 || n.Users < 0 {
		return bad("negative count")
	}
	if b.Suppressed && *n != (redact.Counts{}) {
		return bad("suppressed bucket with figures")
	}
	return nil
}

// CompareBuckets orders buckets as Buckets returns them: by Hour, Span,
// Release (unsigned), Team (bytewise), then ChannelType.
func CompareBuckets(a, b *redact.Bucket) int {
	if c := cmp.Compare(a.Hour, b.Hour); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Span, b.Span); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Release, b.Release); c != 0 {
		return c
	}
	if c := strings.Compare(a.Team, b.Team); c != 0 {
		return c
	}
	return cmp.Compare(a.ChannelType, b.ChannelType)
}

// PrivacyLedger is implemented by the stores that keep the differential
// privacy budget of published aggregates (package redact/dp): for each
// metric family and UTC day, the privacy loss ε already spent. It holds no
// figure and no person, only how much noisy publication a day has had.
type PrivacyLedger interface {
	// SpendBudget records every charge or none, atomically with respect to
	// concurrent calls from this and other processes: if for any (family,
	// day) what was spent plus the new charges would exceed budget, it
	// records nothing and returns an error wrapping ErrBudgetExhausted.
	SpendBudget(ctx context.Context, budget float64, charges []BudgetCharge) error
	// BudgetSpent returns the ε spent on family for day (0 if none).
	BudgetSpent(ctx context.Context, family, day string) (float64, error)
}

// BudgetCharge is a privacy loss spent on one metric family for one day.
type BudgetCharge struct {
	Family  string  // a metric family, e.g. "messages"; 1 to 32 bytes of [a-z_]
	Day     string  // UTC day, YYYY-MM-DD
	Epsilon float64 // > 0
}

// ErrBudgetExhausted is wrapped by the error of a SpendBudget that would
// spend more than the budget.
var ErrBudgetExhausted = errors.New("privacy budget exhausted")

// ErrInvalidCharge is wrapped by the error of a SpendBudget given a charge
// that is not well formed.
var ErrInvalidCharge = errors.New("invalid budget charge")

// BudgetTolerance lets budget/ε publications fit exactly despite rounding.
const BudgetTolerance = 1e-9

// CheckCharges reports whether a SpendBudget call may proceed, and sums the
// charges per (family, day): budget positive and finite, each charge a
// known-shaped family, a valid day and a positive finite ε. The error wraps
// ErrInvalidCharge. keys are the (family, day) pairs in order, so that
// concurrent calls lock them in one order.
func CheckCharges(budget float64, charges []BudgetCharge) (sum map[[2]string]float64, keys [][2]string, err error) {
	if !(budget > 0) || math.IsInf(budget, 0) {
		return nil, nil, fmt.Errorf("%w: budget %v, want a positive number", ErrInvalidCharge, budget)
	}
	sum = make(map[[2]string]float64, len(charges))
	for i, c := range charges {
		if c.Family == "" || len(c.Family) > 32 || strings.Trim(c.Family, "abcdefghijklmnopqrstuvwxyz_") != "" {
			return nil, nil, fmt.Errorf("%w: charge %d: family of %d bytes, want 1 to 32 of [a-z_]", ErrInvalidCharge, i, len(c.Family))
		}
		if _, err := time.Parse(time.DateOnly, c.Day); err != nil {
			return nil, nil, fmt.Errorf("%w: charge %d: day is not YYYY-MM-DD", ErrInvalidCharge, i)
		}
		if !(c.Epsilon > 0) || math.IsInf(c.Epsilon, 0) {
			return nil, nil, fmt.Errorf("%w: charge %d: epsilon %v, want a positive number", ErrInvalidCharge, i, c.Epsilon)
		}
		sum[[2]string{c.Family, c.Day}] += c.Epsilon
	}
	keys = make([][2]string, 0, len(sum))
	for k := range sum {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	})
	return sum, keys, nil
}

// OverBudget reports whether spending add on top of spent exceeds budget.
func OverBudget(spent, add, budget float64) bool {
	return spent+add > budget*(1+BudgetTolerance)
}
