package redact

import (
	"context"
	"fmt"
	"time"
)

// MinK is the smallest k the package accepts: a figure about fewer than
// MinK distinct people is never released. Configuration may raise k, never
// lower it.
const MinK = 5

// Row and column names that are not team ids or channel types.
const (
	// AllTeams names the margin over every team.
	AllTeams = "*"
	// OtherTeams names the merged row of the teams that cannot be named:
	// fewer than k distinct active users on that day.
	OtherTeams = "(other)"
	// UnknownTeam is where events without a team (a DM or group message has
	// none in Mattermost) or with an unusable team id are counted.
	UnknownTeam = "(unknown)"
	// AllTypes names the margin over every channel type.
	AllTypes byte = '*'
	// UnknownType is where events with a channel type other than O, P, D
	// and G are counted.
	UnknownType byte = '?'
)

// Span is the length of a bucket, in hours.
type Span int

const (
	Hour Span = 1
	Day  Span = 24
)

func (s Span) String() string {
	switch s {
	case Hour:
		return "hour"
	case Day:
		return "day"
	}
	return fmt.Sprintf("span(%d)", int(s))
}

// Counts are the figures of one cell.
type Counts struct {
	Messages  int64 // posts created
	Edits     int64 // posts edited
	Deletes   int64 // posts deleted
	Bytes     int64 // sum of Event.Bytes
	Files     int64 // files attached or uploaded
	Reactions int64 // reactions added
	Users     int64 // distinct active users (see Row.UsersAtLeast)
}

// events is the number of events counted; it is the cost of suppressing a
// cell when choosing complementary suppressions.
func (c *Counts) events() int64 {
	return c.Messages + c.Edits + c.Deletes + c.Reactions + c.Files
}

func (c *Counts) add(o *Counts) {
	c.Messages += o.Messages
	c.Edits += o.Edits
	c.Deletes += o.Deletes
	c.Bytes += o.Bytes
	c.Files += o.Files
	c.Reactions += o.Reactions
}

// Bucket is one persisted cell of a day's release. It holds counts only:
// no user id, no user hash, no channel id. A suppressed bucket says that the
// cell exists and was withheld, and carries no figures at all.
//
// Every bucket a Sink receives already passed the k-rule and complementary
// suppression: a bucket with figures has at least k distinct users, and no
// suppressed bucket can be computed from the others.
type Bucket struct {
	// Release identifies the release the bucket belongs to: every bucket
	// of one day from one Aggregator shares it. A day has two releases when
	// the gateway restarted during it; a store must keep both (its key is
	// Release, Span, Hour, Team, ChannelType).
	Release uint64
	// Span is Hour or Day.
	Span Span
	// Hour is the start of the bucket in hours since the Unix epoch (UTC);
	// a multiple of 24 for a Day bucket.
	Hour int64
	// Team is a team id, OtherTeams, UnknownTeam or AllTeams.
	Team string
	// ChannelType is 'O', 'P', 'D', 'G', UnknownType or AllTypes.
	ChannelType byte
	// Suppressed cells carry zero Counts.
	Suppressed bool
	// Partial is set when the release did not see the whole day: the
	// aggregator started after the day began or was flushed before it
	// ended. Its figures may fall short.
	Partial bool
	Counts
}

// Start returns the start of the bucket.
func (b *Bucket) Start() time.Time { return time.Unix(b.Hour*3600, 0).UTC() }

// Sink persists the buckets of closed days. PutBuckets must store all of
// them or none (one transaction), and keep buckets of distinct releases
// apart even when their other key fields are equal.
type Sink interface {
	PutBuckets(ctx context.Context, buckets []Bucket) error
}

func validType(ct byte) bool {
	switch ct {
	case 'O', 'P', 'D', 'G', UnknownType:
		return true
	}
	return false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
