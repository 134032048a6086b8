package storetest

// RunAggregates is the contract suite for the store.Aggregates methods of a
// store (the k-anonymous buckets of package redact). It takes the same open
// function as Run; the stores it opens must implement store.Aggregates.
//
// What it checks: an empty store; exact round trips of buckets (both
// spans, every channel type, teams of 1 to 64 bytes of any byte value,
// negative hours, releases 0 and 2^64-1, counts up to MaxInt64, suppressed
// and partial flags) read back in store.CompareBuckets order; that a
// re-put of a release changes nothing, not even when its figures differ,
// and duplicates within one call are stored once; that a second release of
// the same cells is kept beside the first; inclusive hour bounds, of any
// span, and an empty range; a whole release from a real redact.Aggregator,
// which publishes the same from the store as from memory; refusal of
// invalid buckets, storing nothing of their call; 16 goroutines putting
// overlapping releases (each bucket once); data surviving Close and
// reopen; buckets not counting in Stats; a canceled context storing
// nothing; calls after Close failing.

import (
	"context"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

// aggStore is what RunAggregates needs from an opened store.
type aggStore interface {
	store.Store
	store.Aggregates
}

// RunAggregates runs the aggregates contract suite. See Run for what open
// must do.
func RunAggregates(t *testing.T, open func(t *testing.T) store.Store) {
	runSuite(t, open, "store.Aggregates", []subtest[aggStore]{
		{"Empty", testAggEmpty},
		{"RoundTrip", testAggRoundTrip},
		{"RePutIsNoOp", testAggRePut},
		{"TwoReleasesOfADay", testAggTwoReleases},
		{"Range", testAggRange},
		{"AggregatorRelease", testAggAggregator},
		{"RefusesInvalid", testAggRefusesInvalid},
		{"ConcurrentPuts", testAggConcurrent},
		{"SurvivesReopen", testAggReopen},
		{"NotInStats", testAggNotInStats},
		{"CanceledContext", testAggCanceled},
		{"AfterClose", testAggAfterClose},
	})
}

// ---- fixtures and assertions ----

// aggDay0 is the first hour of 2026-03-02 UTC.
const aggDay0 = int64(20514 * 24)

var aggTeams = []string{"team-a", "team-b", redact.OtherTeams, redact.AllTeams}

// aggRelease is one day's buckets under release rel: every hour and the
// day, every team of aggTeams, types O, D and all, some suppressed.
func aggRelease(rel uint64, day int64, seed uint64) []redact.Bucket {
	rng := mrand.New(mrand.NewPCG(rel, seed))
	var out []redact.Bucket
	for t := 0; t <= 24; t++ {
		span, hour := redact.Hour, day+int64(t)
		if t == 24 {
			span, hour = redact.Day, day
		}
		for _, team := range aggTeams {
			for _, ct := range []byte{'O', 'D', redact.AllTypes} {
				b := redact.Bucket{Release: rel, Span: span, Hour: hour, Team: team, ChannelType: ct}
				if rng.IntN(5) == 0 {
					b.Suppressed = true
				} else {
					b.Counts = redact.Counts{
						Messages: rng.Int64N(1000), Edits: rng.Int64N(50), Deletes: rng.Int64N(10),
						Bytes: rng.Int64N(1 << 30), Files: rng.Int64N(20), Reactions: rng.Int64N(300),
						Users: 5 + rng.Int64N(200),
					}
				}
				out = append(out, b)
			}
		}
	}
	return out
}

func mustPutBuckets(t *testing.T, s store.Aggregates, bs []redact.Bucket) {
	t.Helper()
	if err := s.PutBuckets(t.Context(), bs); err != nil {
		t.Fatalf("PutBuckets(%d buckets): %v", len(bs), err)
	}
}

func getBuckets(t *testing.T, s store.Aggregates, from, to int64) []redact.Bucket {
	t.Helper()
	bs, err := s.Buckets(t.Context(), from, to)
	if err != nil {
		t.Fatalf("Buckets(%d, %d): %v", from, to, err)
	}
	return bs
}

func sortBuckets(bs []redact.Bucket) []redact.Bucket {
	bs = slices.Clone(bs)
	slices.SortFunc(bs, func(a, b redact.Bucket) int { return store.CompareBuckets(&a, &b) })
	return bs
}

func bucketString(b *redact.Bucket) string {
	return fmt.Sprintf("{release %x %v hour %d team %q type %q supp %v partial %v %+v}",
		b.Release, b.Span, b.Hour, b.Team, b.ChannelType, b.Suppressed, b.Partial, b.Counts)
}

// checkBuckets checks that got is exactly want, in order.
func checkBuckets(t *testing.T, what string, got, want []redact.Bucket) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d buckets, want %d", what, len(got), len(want))
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: bucket %d is\n%s\nwant\n%s", what, i, bucketString(&got[i]), bucketString(&want[i]))
		}
	}
}

// checkAllBuckets checks that the store holds exactly want (in any order).
func checkAllBuckets(t *testing.T, s store.Aggregates, want []redact.Bucket) {
	t.Helper()
	checkBuckets(t, "all buckets", getBuckets(t, s, math.MinInt64, math.MaxInt64), sortBuckets(want))
}

// ---- tests ----

func testAggEmpty(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	checkAllBuckets(t, s, nil)
	mustPutBuckets(t, s, nil)
	mustPutBuckets(t, s, []redact.Bucket{})
	checkAllBuckets(t, s, nil)
}

func testAggRoundTrip(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	all := make([]byte, 0, 256)
	for i := 255; i >= 0; i-- {
		all = append(all, byte(i))
	}
	maxed := redact.Counts{Messages: math.MaxInt64, Edits: math.MaxInt64, Deletes: math.MaxInt64, Bytes: math.MaxInt64,
		Files: math.MaxInt64, Reactions: math.MaxInt64, Users: math.MaxInt64}
	want := []redact.Bucket{
		{Release: 1, Span: redact.Hour, Hour: aggDay0 + 9, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 1, Users: 5}},
		{Release: 1, Span: redact.Day, Hour: aggDay0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 1, Users: 5}},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'P', Suppressed: true},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'D', Partial: true, Counts: maxed},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'G', Suppressed: true, Partial: true},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: redact.UnknownType},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: redact.AllTypes, Counts: redact.Counts{Bytes: 1 << 40, Users: 7}},
		// Teams of 1 to 64 bytes, of any byte value; prefixes of one another.
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t1", ChannelType: 'O', Counts: redact.Counts{Edits: 2}},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "t0000", ChannelType: 'O', Counts: redact.Counts{Deletes: 3}},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "T", ChannelType: 'O', Counts: redact.Counts{Files: 4}},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: strings.Repeat("z", store.MaxBucketTeam), ChannelType: 'O', Counts: redact.Counts{Reactions: 5}},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: string(all[:64]), ChannelType: 'O'},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: string(all[192:]), ChannelType: 'O'},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "\x00", ChannelType: 'O'},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: "é", ChannelType: 'O'},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: redact.AllTeams, ChannelType: 'O'},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: redact.OtherTeams, ChannelType: 'O'},
		{Release: 1, Span: redact.Hour, Hour: aggDay0, Team: redact.UnknownTeam, ChannelType: 'O'},
		// Releases across the whole uint64 range (2^63 and up are negative
		// as int64).
		{Release: 0, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 10}},
		{Release: 1 << 63, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 11}},
		{Release: math.MaxUint64, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 12}},
		{Release: 1<<63 - 1, Span: redact.Hour, Hour: aggDay0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 13}},
		// Hours before 1970 and far ahead.
		{Release: 2, Span: redact.Hour, Hour: -1, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 14}},
		{Release: 2, Span: redact.Day, Hour: -24, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 15}},
		{Release: 2, Span: redact.Day, Hour: -48, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 16}},
		{Release: 2, Span: redact.Hour, Hour: 0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 17}},
		{Release: 2, Span: redact.Day, Hour: 0, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 18}},
		{Release: 2, Span: redact.Day, Hour: 24 * 1_000_000, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 19}},
	}
	mustPutBuckets(t, s, want)
	got := getBuckets(t, s, math.MinInt64, math.MaxInt64)
	checkBuckets(t, "round trip", got, sortBuckets(want))
	// The order, spelled out for the hour where it is subtle.
	var at0 []string
	for _, b := range got {
		if b.Hour == aggDay0 && b.Team == "t" && b.ChannelType == 'O' {
			at0 = append(at0, fmt.Sprintf("%v/%x", b.Span, b.Release))
		}
	}
	if w := "hour/0 hour/7fffffffffffffff hour/8000000000000000 hour/ffffffffffffffff day/1"; strings.Join(at0, " ") != w {
		t.Fatalf("buckets of one cell in order %s, want %s", strings.Join(at0, " "), w)
	}
	var teams []string
	for _, b := range got {
		if b.Hour == aggDay0 && b.Span == redact.Hour && b.Release == 1 && b.ChannelType == 'O' {
			teams = append(teams, b.Team)
		}
	}
	if !slices.IsSorted(teams) {
		t.Fatalf("teams of one hour, span, release and type not in bytewise order: %q", teams)
	}
}

func testAggRePut(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	rel := aggRelease(7, aggDay0, 1)
	mustPutBuckets(t, s, rel)
	mustPutBuckets(t, s, rel)
	// The same identities with other figures and flags change nothing.
	other := aggRelease(7, aggDay0, 2)
	for i := range other {
		other[i].Partial = true
	}
	mustPutBuckets(t, s, other)
	checkAllBuckets(t, s, rel)
	// A call holding known and new buckets stores only the new ones.
	next := aggRelease(8, aggDay0+24, 1)
	mustPutBuckets(t, s, append(slices.Clone(other[:10]), next...))
	checkAllBuckets(t, s, append(slices.Clone(rel), next...))
	// Duplicates within one call are stored once (either copy).
	dup := aggRelease(9, aggDay0+48, 1)
	twice := append(slices.Clone(dup), aggRelease(9, aggDay0+48, 3)...)
	mustPutBuckets(t, s, twice)
	got := getBuckets(t, s, aggDay0+48, aggDay0+71)
	if len(got) != len(dup) {
		t.Fatalf("%d buckets after a call holding each twice, want %d", len(got), len(dup))
	}
	for _, b := range got {
		i := slices.IndexFunc(dup, func(d redact.Bucket) bool { return store.CompareBuckets(&b, &d) == 0 })
		if i < 0 || (!reflect.DeepEqual(b, dup[i]) && !reflect.DeepEqual(b, twice[len(dup)+i])) {
			t.Fatalf("bucket %s is neither copy put", bucketString(&b))
		}
	}
}

func testAggTwoReleases(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	first := aggRelease(100, aggDay0, 1)
	second := aggRelease(200, aggDay0, 1) // the same cells, other figures
	for i := range first {
		first[i].Partial = true
	}
	mustPutBuckets(t, s, first)
	mustPutBuckets(t, s, second)
	checkAllBuckets(t, s, append(slices.Clone(first), second...))
	if got := getBuckets(t, s, aggDay0, aggDay0); len(got) != 2*len(aggTeams)*3*2 {
		t.Fatalf("%d buckets at the first hour of a day with two releases, want %d", len(got), 2*len(aggTeams)*3*2)
	}
}

func testAggRange(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	var all []redact.Bucket
	for d := int64(-2); d < 3; d++ {
		all = append(all, aggRelease(uint64(10+d), aggDay0+24*d, uint64(d+5))...)
	}
	// Days around 1970 too.
	all = append(all, aggRelease(1, -24, 1)...)
	all = append(all, aggRelease(2, 0, 1)...)
	mustPutBuckets(t, s, all)
	checkAllBuckets(t, s, all)
	within := func(from, to int64) []redact.Bucket {
		var out []redact.Bucket
		for _, b := range all {
			if b.Hour >= from && b.Hour <= to {
				out = append(out, b)
			}
		}
		return sortBuckets(out)
	}
	for _, r := range [][2]int64{
		{aggDay0, aggDay0},               // the day buckets and the first hour
		{aggDay0 + 1, aggDay0 + 23},      // hours only
		{aggDay0, aggDay0 + 23},          // one whole day
		{aggDay0 - 48, aggDay0 + 71},     // every day
		{aggDay0 + 23, aggDay0 + 24},     // across midnight
		{aggDay0 + 71, aggDay0 + 1000},   // the last hour, then nothing
		{aggDay0 - 1000, aggDay0 - 48},   // nothing, then the first bucket
		{-24, -1},                        // 1969
		{-1, 0},                          // across the epoch
		{math.MinInt64, -1},              // everything before 1970
		{aggDay0 + 5, aggDay0 + 5},       // one hour
		{aggDay0 + 1000, aggDay0 + 2000}, // nothing
	} {
		checkBuckets(t, fmt.Sprintf("Buckets(%d, %d)", r[0], r[1]), getBuckets(t, s, r[0], r[1]), within(r[0], r[1]))
	}
	if got := getBuckets(t, s, aggDay0+1, aggDay0); len(got) != 0 {
		t.Fatalf("Buckets with from > to returned %d buckets", len(got))
	}
}

// testAggAggregator stores what a real aggregator releases: two days, one
// of them with a second, partial release after a restart. Publications
// from the store equal those from the buckets in memory.
func testAggAggregator(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	day0 := time.Unix(aggDay0*3600, 0).UTC()
	rng := mrand.New(mrand.NewPCG(5, 6))
	events := func(a *redact.Aggregator, from time.Time, hours, n int) {
		types := []byte{'O', 'P', 'D', 'G'}
		for i := 0; i < n; i++ {
			u := rng.IntN(60)
			a.Observe(redact.Event{
				Time:        from.Add(time.Duration(rng.IntN(hours*3600)) * time.Second),
				Team:        fmt.Sprintf("team%02d", u%4),
				ChannelType: types[rng.IntN(4)],
				Kind:        redact.Kind(1 + rng.IntN(5)),
				Bytes:       rng.IntN(400),
				User:        fmt.Sprintf("user%03d", u),
			})
		}
	}
	a1, err := redact.New(redact.Config{Start: day0})
	if err != nil {
		t.Fatal(err)
	}
	events(a1, day0, 36, 3000)
	// Until noon of the second day, then a restart.
	first := a1.Flush(day0.Add(36 * time.Hour))
	a2, err := redact.New(redact.Config{Start: day0.Add(36 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	events(a2, day0.Add(36*time.Hour), 12, 1000)
	second := a2.Flush(day0.Add(72 * time.Hour))
	if len(first) == 0 || len(second) == 0 {
		t.Fatalf("the aggregators released %d and %d buckets", len(first), len(second))
	}
	// Through the Sink interface, as the aggregator's Persist does.
	var sink redact.Sink = s
	if err := sink.PutBuckets(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	if err := sink.PutBuckets(t.Context(), second); err != nil {
		t.Fatal(err)
	}
	mem := append(slices.Clone(first), second...)
	checkAllBuckets(t, s, mem)
	stored := getBuckets(t, s, aggDay0, aggDay0+47)
	for _, q := range []redact.Query{
		{From: day0, To: day0.Add(48 * time.Hour), By: redact.Hour},
		{From: day0, To: day0.Add(48 * time.Hour), By: redact.Day},
		{From: day0.Add(30 * time.Hour), To: day0.Add(40 * time.Hour), By: redact.Hour},
	} {
		for _, k := range []int{redact.MinK, 8} {
			want, err := redact.Publish(mem, q, k)
			if err != nil {
				t.Fatal(err)
			}
			got, err := redact.Publish(stored, q, k)
			if err != nil {
				t.Fatalf("Publish of the stored buckets: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("publication %+v k=%d differs between stored and released buckets", q, k)
			}
		}
	}
}

func testAggRefusesInvalid(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	ok := aggRelease(1, aggDay0, 1)
	mustPutBuckets(t, s, ok)
	good := redact.Bucket{Release: 2, Span: redact.Hour, Hour: aggDay0 + 24, Team: "t", ChannelType: 'O', Counts: redact.Counts{Messages: 1, Users: 5}}
	bad := map[string]func(b *redact.Bucket){
		"span 0":               func(b *redact.Bucket) { b.Span = 0 },
		"span 2":               func(b *redact.Bucket) { b.Span = 2 },
		"span 255":             func(b *redact.Bucket) { b.Span = 255 },
		"day not at midnight":  func(b *redact.Bucket) { b.Span, b.Hour = redact.Day, aggDay0+25 },
		"day at hour -1":       func(b *redact.Bucket) { b.Span, b.Hour = redact.Day, -1 },
		"empty team":           func(b *redact.Bucket) { b.Team = "" },
		"team of 65 bytes":     func(b *redact.Bucket) { b.Team = strings.Repeat("x", 65) },
		"channel type 0":       func(b *redact.Bucket) { b.ChannelType = 0 },
		"channel type o":       func(b *redact.Bucket) { b.ChannelType = 'o' },
		"negative messages":    func(b *redact.Bucket) { b.Messages = -1 },
		"negative users":       func(b *redact.Bucket) { b.Users = -1 },
		"negative bytes":       func(b *redact.Bucket) { b.Bytes = math.MinInt64 },
		"suppressed with data": func(b *redact.Bucket) { b.Suppressed = true },
	}
	for name, mutate := range bad {
		b := good
		mutate(&b)
		// The bad bucket last, after good ones: nothing of the call is stored.
		batch := append(aggRelease(3, aggDay0+48, 1), good, b)
		if err := s.PutBuckets(t.Context(), batch); !errors.Is(err, store.ErrInvalidBucket) {
			t.Errorf("PutBuckets with %s = %v, want an error wrapping store.ErrInvalidBucket", name, err)
		}
	}
	checkAllBuckets(t, s, ok)
}

// testAggConcurrent has 16 goroutines put overlapping releases, each in
// its own order: every bucket is stored once.
func testAggConcurrent(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	const goroutines = 16
	var releases [][]redact.Bucket
	for r := 0; r < 6; r++ {
		releases = append(releases, aggRelease(uint64(1000+r), aggDay0+24*int64(r%3), 1))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		start = make(chan struct{})
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(g), 1))
			<-start
			for _, i := range rng.Perm(len(releases)) {
				bs := slices.Clone(releases[i])
				rng.Shuffle(len(bs), func(a, b int) { bs[a], bs[b] = bs[b], bs[a] })
				if err := s.PutBuckets(context.Background(), bs[:len(bs)/2+rng.IntN(len(bs)/2+1)]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d concurrent puts failed, first: %v", len(errs), errs[0])
	}
	// Whatever halves were put, the rest now completes each release.
	for _, r := range releases {
		mustPutBuckets(t, s, r)
	}
	checkAllBuckets(t, s, slices.Concat(releases...))
}

func testAggReopen(t *testing.T, open func(t *testing.T) aggStore) {
	s := open(t)
	rel := aggRelease(42, aggDay0, 1)
	mustPutBuckets(t, s, rel)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openClosed(t, open)
	checkAllBuckets(t, s, rel)
	mustPutBuckets(t, s, rel) // still a no-op
	checkAllBuckets(t, s, rel)
}

func testAggNotInStats(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	f := newFixture(1, 5)
	mustPut(t, s, &f.batch, 5)
	mustPutBuckets(t, s, aggRelease(1, aggDay0, 1))
	mustStats(t, s, statsOf(&f.batch))
}

func testAggCanceled(t *testing.T, open func(t *testing.T) aggStore) {
	s := openClosed(t, open)
	rel := aggRelease(1, aggDay0, 1)
	mustPutBuckets(t, s, rel)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.PutBuckets(ctx, aggRelease(2, aggDay0, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutBuckets with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	if _, err := s.Buckets(ctx, aggDay0, aggDay0+23); !errors.Is(err, context.Canceled) {
		t.Fatalf("Buckets with a canceled context = %v, want an error wrapping context.Canceled", err)
	}
	checkAllBuckets(t, s, rel)
}

func testAggAfterClose(t *testing.T, open func(t *testing.T) aggStore) {
	s := open(t)
	mustPutBuckets(t, s, aggRelease(1, aggDay0, 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.PutBuckets(t.Context(), aggRelease(2, aggDay0, 1)); err == nil {
		t.Fatal("PutBuckets on a closed store succeeded")
	}
	if _, err := s.Buckets(t.Context(), aggDay0, aggDay0+23); err == nil {
		t.Fatal("Buckets on a closed store succeeded")
	}
}
