package redact

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Kind says what an Event is.
type Kind uint8

const (
	Posted   Kind = iota + 1 // a post was created: one message
	Edited                   // a post was edited
	Deleted                  // a post was deleted
	File                     // a file was uploaded (Event.Files of them, at least one)
	Reaction                 // a reaction was added
)

func (k Kind) valid() bool { return k >= Posted && k <= Reaction }

func (k Kind) String() string {
	switch k {
	case Posted:
		return "posted"
	case Edited:
		return "edited"
	case Deleted:
		return "deleted"
	case File:
		return "file"
	case Reaction:
		return "reaction"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is what the aggregator learns about one captured event. It lives
// only for the call to Observe: the aggregator keeps Team (a team is not a
// person) and a keyed hash of User, never User itself.
type Event struct {
	Time        time.Time
	Team        string // Mattermost team id; "" (DMs, group messages, unknown) counts as UnknownTeam
	ChannelType byte   // 'O', 'P', 'D' or 'G'; anything else counts as UnknownType
	Kind        Kind
	Bytes       int    // size of the message, added to Counts.Bytes
	Files       int    // files attached (on a Posted event) or uploaded (on a File event, at least one); not both for one file
	User        string // Mattermost user id of the actor; "" is no one
}

// Config configures an Aggregator.
type Config struct {
	// K is the minimum number of distinct users of a released cell.
	// 0 means MinK; a value below MinK is refused.
	K int
	// Lateness is how long after the end of a UTC day events of that day
	// are still accepted; the day is released after it. 0 means 10 minutes.
	Lateness time.Duration
	// Start is when the aggregator starts counting. Days that ended more
	// than Lateness before it are released already (by a previous process,
	// or lost to the aggregates) and their events are late; events of the
	// days still open are counted, whenever they happened: the pipeline
	// observes only newly stored events, so none was counted before. The
	// zero value means time.Now().
	Start time.Time
}

// Stats are the aggregator's own counters, for metrics.
type Stats struct {
	Observed int64 // events counted
	Late     int64 // events dropped: before Start, or of a day already released
	Invalid  int64 // events dropped: unknown Kind or zero Time
	Cells    int64 // open (hour, team, channel type) cells in memory
}

const (
	nShards   = 32
	maxTeamID = 64
	dayHours  = 24
)

type cellKey struct {
	hour int64
	team string
	ct   byte
}

// cell is one open (hour, team, channel type) atom within one shard: its
// counts, and the keyed hashes of its users that this shard has seen.
type cell struct {
	n     Counts
	users map[uint64]struct{}
}

type shard struct {
	mu       sync.Mutex
	cells    map[cellKey]*cell
	observed int64
	_        [64]byte // keep shards on separate cache lines
}

// Aggregator counts events into hour cells of (team, channel type) and
// releases each UTC day, thresholded and protected, once it is over. It is
// safe for concurrent use.
type Aggregator struct {
	k        int
	lateness time.Duration
	start    time.Time
	seed     maphash.Seed

	// released: days (since the Unix epoch) below it are released; events
	// for them are late. Written under closeMu, read under shard locks.
	released atomic.Int64
	late     atomic.Int64
	invalid  atomic.Int64

	closeMu sync.Mutex
	pending []Bucket // released but not yet accepted by a Sink
	shards  [nShards]shard
}

// New returns an Aggregator.
func New(cfg Config) (*Aggregator, error) {
	switch {
	case cfg.K == 0:
		cfg.K = MinK
	case cfg.K < MinK:
		return nil, fmt.Errorf("redact: k is %d, must be at least %d", cfg.K, MinK)
	}
	switch {
	case cfg.Lateness == 0:
		cfg.Lateness = 10 * time.Minute
	case cfg.Lateness < 0:
		return nil, errors.New("redact: negative lateness")
	case cfg.Lateness > 7*24*time.Hour:
		return nil, errors.New("redact: lateness longer than a week")
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	a := &Aggregator{k: cfg.K, lateness: cfg.Lateness, start: cfg.Start, seed: maphash.MakeSeed()}
	a.released.Store(floorDiv(cfg.Start.Add(-cfg.Lateness).Unix(), 86400))
	for i := range a.shards {
		a.shards[i].cells = make(map[cellKey]*cell)
	}
	return a, nil
}

// K returns the aggregator's k.
func (a *Aggregator) K() int { return a.k }

// Observe counts one event. It does not allocate once the event's cell and
// user are known to the aggregator.
func (a *Aggregator) Observe(ev Event) {
	if !ev.Kind.valid() || ev.Time.IsZero() {
		a.invalid.Add(1)
		return
	}
	hour := floorDiv(ev.Time.Unix(), 3600)
	var uh uint64
	if ev.User != "" {
		uh = maphash.String(a.seed, ev.User)
	}
	team := ev.Team
	if team == "" || len(team) > maxTeamID || team == AllTeams || team == OtherTeams {
		team = UnknownTeam
	}
	ct := ev.ChannelType
	if !validType(ct) {
		ct = UnknownType
	}
	// The same user always lands on the same shard, so the shards' user
	// sets of one cell are disjoint and their sizes add up.
	s := &a.shards[uh%nShards]
	s.mu.Lock()
	if floorDiv(hour, dayHours) < a.released.Load() {
		s.mu.Unlock()
		a.late.Add(1)
		return
	}
	key := cellKey{hour: hour, team: team, ct: ct}
	c := s.cells[key]
	if c == nil {
		c = &cell{users: make(map[uint64]struct{}, 4)}
		key.team = strings.Clone(team) // do not pin the caller's buffer
		s.cells[key] = c
	}
	switch ev.Kind {
	case Posted:
		c.n.Messages++
	case Edited:
		c.n.Edits++
	case Deleted:
		c.n.Deletes++
	case File:
		if ev.Files < 1 {
			c.n.Files++
		}
	case Reaction:
		c.n.Reactions++
	}
	if ev.Bytes > 0 {
		c.n.Bytes += int64(ev.Bytes)
	}
	if ev.Files > 0 {
		c.n.Files += int64(ev.Files)
	}
	if ev.User != "" {
		c.users[uh] = struct{}{}
	}
	s.observed++
	s.mu.Unlock()
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() Stats {
	st := Stats{Late: a.late.Load(), Invalid: a.invalid.Load()}
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		st.Observed += s.observed
		st.Cells += int64(len(s.cells))
		s.mu.Unlock()
	}
	return st
}

// Close releases every day that ended more than the lateness allowance
// before now, and returns the buckets of those days (nil when there is none).
// The distinct-user sets of a released day are dropped; events of that day
// that arrive later are counted in Stats.Late and otherwise ignored.
func (a *Aggregator) Close(now time.Time) []Bucket {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	return a.releaseBefore(floorDiv(now.Add(-a.lateness).Unix(), 86400), now)
}

// Flush releases every open day, complete or not, and stops the aggregator:
// every later event is late. Call it on shutdown. Days not yet over are
// released with Partial set.
func (a *Aggregator) Flush(now time.Time) []Bucket {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	return a.releaseBefore(math.MaxInt64, now)
}

// Persist closes days as Close does and writes their buckets to sink. When
// the sink fails, the buckets are kept (they hold counts only) and offered
// again, before any newer ones, on the next call. It returns the number of
// buckets the sink accepted.
func (a *Aggregator) Persist(ctx context.Context, now time.Time, sink Sink) (int, error) {
	return a.persist(ctx, sink, func() []Bucket {
		return a.releaseBefore(floorDiv(now.Add(-a.lateness).Unix(), 86400), now)
	})
}

// FlushTo is Flush followed by writing every pending bucket to sink.
func (a *Aggregator) FlushTo(ctx context.Context, now time.Time, sink Sink) (int, error) {
	return a.persist(ctx, sink, func() []Bucket { return a.releaseBefore(math.MaxInt64, now) })
}

func (a *Aggregator) persist(ctx context.Context, sink Sink, release func() []Bucket) (int, error) {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	a.pending = append(a.pending, release()...)
	if len(a.pending) == 0 {
		return 0, nil
	}
	if err := sink.PutBuckets(ctx, a.pending); err != nil {
		return 0, fmt.Errorf("redact: persist %d buckets: %w", len(a.pending), err)
	}
	n := len(a.pending)
	a.pending = nil
	return n, nil
}

// Pending returns the number of released buckets a Sink has not accepted yet.
func (a *Aggregator) Pending() int {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	return len(a.pending)
}

// dayAtoms is what the shards hold of one day: its cells with their user
// sets, still split by shard.
type dayAtoms struct {
	keys  []cellKey
	cells []*cell
}

// releaseBefore releases the days below day (days since the epoch). The
// caller holds closeMu.
func (a *Aggregator) releaseBefore(day int64, now time.Time) []Bucket {
	if day <= a.released.Load() {
		return nil
	}
	a.released.Store(day)
	byDay := map[int64]*dayAtoms{}
	for i := range a.shards {
		s := &a.shards[i]
		s.mu.Lock()
		for k, c := range s.cells {
			d := floorDiv(k.hour, dayHours)
			if d >= day {
				continue
			}
			da := byDay[d]
			if da == nil {
				da = &dayAtoms{}
				byDay[d] = da
			}
			da.keys = append(da.keys, k)
			da.cells = append(da.cells, c)
			delete(s.cells, k)
		}
		s.mu.Unlock()
	}
	days := make([]int64, 0, len(byDay))
	for d := range byDay {
		days = append(days, d)
	}
	slices.Sort(days)
	var out []Bucket
	for _, d := range days {
		dayStart := time.Unix(d*86400, 0)
		partial := a.start.After(dayStart) || now.Before(dayStart.Add(24*time.Hour))
		g := prepareDay(d, byDay[d]).release(a.k)
		out = g.appendBuckets(out, rand.Uint64(), partial)
		byDay[d] = nil // drop the user sets now
	}
	return out
}
