package redact

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func newTestAggregator(t testing.TB, k int) *Aggregator {
	t.Helper()
	a, err := New(Config{K: k, Start: epoch0.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func iterations(t *testing.T, n int) int {
	if testing.Short() {
		return max(n/10, 5)
	}
	return n
}

// TestPropertyRelease: over random populations, the persisted buckets
// (what a store administrator sees) show no cell of fewer than k users,
// name no team of fewer than k users, and let no suppressed cell be
// computed from the others; every figure equals a brute-force recount.
func TestPropertyRelease(t *testing.T) {
	for it := range iterations(t, 150) {
		seed := uint64(it)
		rng := rand.New(rand.NewPCG(seed, 1))
		w := genWorld(rng, 4000)
		k := MinK
		if rng.IntN(4) == 0 {
			k = MinK + rng.IntN(6)
		}
		a := newTestAggregator(t, k)
		for _, ev := range w.events {
			a.Observe(ev)
		}
		bs := a.Close(epoch0.Add(10 * 24 * time.Hour))
		if st := a.Stats(); st.Cells != 0 || st.Late != 0 || st.Observed != int64(len(w.events)) {
			t.Fatalf("seed %d: stats %+v after closing all of %d events", seed, st, len(w.events))
		}
		tr := &truth{events: w.events}
		for day, cells := range byDay(cellsFromBuckets(bs)) {
			checkRelease(t, tr, day, cells, k)
		}
		if t.Failed() {
			t.Fatalf("seed %d (%s, k=%d)", seed, describe(w), k)
		}
	}
	t.Logf("checker: %+v", checkerStats)
}

// TestPropertyPublish: the same over publications, hourly and daily views
// of the same range joined (as an observer would), at the release's k and
// at a raised k, and a raised k never shows what a lower one hid.
func TestPropertyPublish(t *testing.T) {
	for it := range iterations(t, 100) {
		seed := uint64(1000 + it)
		rng := rand.New(rand.NewPCG(seed, 2))
		w := genWorld(rng, 3000)
		a := newTestAggregator(t, MinK)
		for _, ev := range w.events {
			a.Observe(ev)
		}
		bs := a.Close(epoch0.Add(10 * 24 * time.Hour))
		rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
		tr := &truth{events: w.events}
		from := epoch0.Add(-24 * time.Hour)
		to := epoch0.Add(6 * 24 * time.Hour)
		var prev map[cellID]pubCell
		for _, k := range []int{MinK, MinK + 2, MinK + 7} {
			hours, err := Publish(bs, Query{From: from, To: to, By: Hour}, k)
			if err != nil {
				t.Fatal(err)
			}
			days, err := Publish(bs, Query{From: from, To: to, By: Day}, k)
			if err != nil {
				t.Fatal(err)
			}
			cells := append(cellsFromRows(hours.Rows), cellsFromRows(days.Rows)...)
			for day, dc := range byDay(cells) {
				checkRelease(t, tr, day, dc, k)
			}
			cur := indexCells(cells)
			if k == MinK {
				// At the release's own k, a publication is the release.
				if want := indexCells(cellsFromBuckets(bs)); !sameShown(cur, want) {
					t.Errorf("publication at k=%d differs from the release", k)
				}
			}
			if prev != nil {
				for id, c := range cur {
					if c.suppressed || id.team == OtherTeams {
						continue
					}
					p, ok := prev[id]
					if !ok || p.suppressed || p.n.Messages != c.n.Messages || p.n.Bytes != c.n.Bytes {
						t.Errorf("k=%d shows %+v which the smaller k did not show as such (%+v)", k, c, p)
					}
				}
			}
			prev = cur
		}
		if t.Failed() {
			t.Fatalf("seed %d (%s)", seed, describe(w))
		}
	}
	t.Logf("checker: %+v", checkerStats)
}

type cellID struct {
	span Span
	hour int64
	team string
	ct   byte
}

func indexCells(cells []pubCell) map[cellID]pubCell {
	m := map[cellID]pubCell{}
	for _, c := range cells {
		m[cellID{c.span, c.hour, c.team, c.ct}] = c
	}
	return m
}

func sameShown(a, b map[cellID]pubCell) bool {
	if len(a) != len(b) {
		return false
	}
	for id, x := range a {
		y, ok := b[id]
		if !ok || x.suppressed != y.suppressed || x.n != y.n {
			return false
		}
	}
	return true
}

// TestRecount: 100,000 random events from concurrent writers; with nothing
// suppressed (k=1, possible only inside the package) every cell of every
// release, margins included, equals a naive recount; with k=5 every shown
// cell does.
func TestRecount(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var w world
	for i := range 300 {
		w.users = append(w.users, "user"+string(rune('A'+i%26))+string(rune('a'+i/26)))
	}
	for i := range 12 {
		w.teams = append(w.teams, "team"+string(rune('a'+i)))
	}
	types := []byte{'O', 'P', 'D', 'G'}
	for range 100_000 {
		ev := Event{
			Time:        epoch0.Add(time.Duration(rng.Int64N(int64(3 * 24 * time.Hour)))),
			Team:        w.teams[rng.IntN(len(w.teams))],
			ChannelType: types[rng.IntN(4)],
			Kind:        Kind(1 + rng.IntN(5)),
			Bytes:       rng.IntN(2000),
			Files:       rng.IntN(2),
			User:        w.users[rng.IntN(len(w.users))],
		}
		if rng.IntN(20) == 0 {
			ev.Team = ""
		}
		w.events = append(w.events, ev)
	}
	tr := &truth{events: w.events}
	for _, k := range []int{1, MinK} {
		a := newTestAggregator(t, MinK)
		a.k = k
		var wg sync.WaitGroup
		const writers = 8
		for g := range writers {
			wg.Go(func() {
				for i := g; i < len(w.events); i += writers {
					a.Observe(w.events[i])
				}
			})
		}
		wg.Wait()
		bs := a.Close(epoch0.Add(4*24*time.Hour + time.Hour))
		// The naive recount, cell by cell, in one pass.
		type rkey struct {
			span Span
			hour int64
			team string
			ct   byte
		}
		want := map[rkey]*Counts{}
		wantUsers := map[rkey]map[string]bool{}
		for _, ev := range w.events {
			h := floorDiv(ev.Time.Unix(), 3600)
			team := normTeam(ev.Team)
			var n Counts
			switch ev.Kind {
			case Posted:
				n.Messages = 1
			case Edited:
				n.Edits = 1
			case Deleted:
				n.Deletes = 1
			case File:
				if ev.Files < 1 {
					n.Files = 1
				}
			case Reaction:
				n.Reactions = 1
			}
			n.Bytes = int64(ev.Bytes)
			n.Files += int64(ev.Files)
			for _, sp := range []Span{Hour, Day} {
				start := h
				if sp == Day {
					start = floorDiv(h, 24) * 24
				}
				for _, tm := range []string{team, AllTeams} {
					for _, ct := range []byte{ev.ChannelType, AllTypes} {
						key := rkey{sp, start, tm, ct}
						if want[key] == nil {
							want[key] = &Counts{}
							wantUsers[key] = map[string]bool{}
						}
						want[key].add(&n)
						wantUsers[key][ev.User] = true
					}
				}
			}
		}
		shown := 0
		for _, b := range bs {
			if b.Suppressed {
				continue
			}
			shown++
			if b.Team == OtherTeams {
				t.Fatalf("k=%d: every team has more than k users, yet %+v", k, b)
			}
			key := rkey{b.Span, b.Hour, b.Team, b.ChannelType}
			wn := want[key]
			if wn == nil {
				t.Fatalf("k=%d: bucket %+v has no events in the recount", k, b)
			}
			got := b.Counts
			wc := *wn
			wc.Users = int64(len(wantUsers[key]))
			if got != wc {
				t.Fatalf("k=%d: bucket %v %d %s %c = %+v, recount %+v", k, b.Span, b.Hour, b.Team, b.ChannelType, got, wc)
			}
		}
		if k == 1 && shown != len(want) {
			t.Fatalf("k=1: %d buckets shown, the recount has %d cells", shown, len(want))
		}
		if k == MinK {
			// Through the public path too, on the whole property check.
			for day, cells := range byDay(cellsFromBuckets(bs)) {
				checkRelease(t, tr, day, cells, k)
			}
		}
		t.Logf("k=%d: %d buckets, %d shown", k, len(bs), shown)
	}
}

// TestRestart: a gateway flushed at shutdown and a new one started in the
// same day make two releases of that day; a publication combines them and
// stays safe and exact.
func TestRestart(t *testing.T) {
	for it := range iterations(t, 40) {
		seed := uint64(5000 + it)
		rng := rand.New(rand.NewPCG(seed, 3))
		w := genWorld(rng, 3000)
		cut := w.events[len(w.events)/2].Time.Truncate(time.Minute).Add(time.Minute)
		a1, _ := New(Config{Start: epoch0.Add(-24 * time.Hour)})
		a2, _ := New(Config{Start: cut})
		var kept []Event
		for _, ev := range w.events {
			if ev.Time.Before(cut) {
				a1.Observe(ev)
			} else {
				a2.Observe(ev)
			}
			kept = append(kept, ev)
		}
		var sink memSink
		if _, err := a1.FlushTo(context.Background(), cut, &sink); err != nil {
			t.Fatal(err)
		}
		a1.Observe(Event{Time: cut.Add(-time.Second), Kind: Posted, User: "late"})
		if a1.Stats().Late != 1 {
			t.Fatal("a flushed aggregator accepted an event")
		}
		if _, err := a2.Persist(context.Background(), epoch0.Add(10*24*time.Hour), &sink); err != nil {
			t.Fatal(err)
		}
		tr := &truth{events: kept}
		from, to := epoch0.Add(-24*time.Hour), epoch0.Add(6*24*time.Hour)
		hours, err := Publish(sink.got, Query{From: from, To: to, By: Hour}, MinK)
		if err != nil {
			t.Fatal(err)
		}
		days, err := Publish(sink.got, Query{From: from, To: to, By: Day}, MinK)
		if err != nil {
			t.Fatal(err)
		}
		cutDay := floorDiv(cut.Unix(), 86400)
		releases := map[uint64]bool{}
		for _, b := range sink.got {
			if floorDiv(b.Hour, 24) == cutDay {
				releases[b.Release] = true
			}
		}
		for day, dc := range byDay(append(cellsFromRows(hours.Rows), cellsFromRows(days.Rows)...)) {
			checkRelease(t, tr, day, dc, MinK)
			for _, c := range dc {
				if day == cutDay && len(releases) == 2 && c.span == Day && c.team == AllTeams && c.ct == AllTypes && !c.suppressed && !c.atLeast {
					// merged across releases: users are a lower bound
					t.Errorf("combined cell %+v not marked as a lower bound", c)
				}
			}
		}
		for _, r := range days.Rows {
			if floorDiv(r.Start.Unix(), 86400) == cutDay && len(releases) == 2 && !r.Partial {
				t.Errorf("row of the restart day not marked partial: %+v", r)
			}
		}
		if t.Failed() {
			t.Fatalf("seed %d (%s)", seed, describe(w))
		}
	}
}

type memSink struct {
	got   []Bucket
	fails int
}

func (s *memSink) PutBuckets(_ context.Context, bs []Bucket) error {
	if s.fails > 0 {
		s.fails--
		return errors.New("store down")
	}
	s.got = append(s.got, bs...)
	return nil
}

func TestPersistRetries(t *testing.T) {
	a := newTestAggregator(t, MinK)
	for i := range 50 {
		a.Observe(Event{Time: epoch0.Add(time.Duration(i) * time.Minute), Team: "t", ChannelType: 'O', Kind: Posted, User: string(rune('a' + i%10))})
	}
	sink := &memSink{fails: 1}
	now := epoch0.Add(25 * time.Hour)
	if _, err := a.Persist(context.Background(), now, sink); err == nil {
		t.Fatal("no error from a failing sink")
	}
	if a.Pending() == 0 {
		t.Fatal("buckets dropped after a failed write")
	}
	n, err := a.Persist(context.Background(), now, sink)
	if err != nil || n == 0 || a.Pending() != 0 || len(sink.got) != n {
		t.Fatalf("retry: n=%d err=%v pending=%d got=%d", n, err, a.Pending(), len(sink.got))
	}
}

func TestLateAndInvalid(t *testing.T) {
	a := newTestAggregator(t, MinK)
	a.Observe(Event{Time: epoch0, Kind: 0, User: "x"})
	a.Observe(Event{Kind: Posted, User: "x"})
	a.Observe(Event{Time: epoch0.Add(-72 * time.Hour), Kind: Posted, User: "x"}) // of a day released before Start
	for i := range 10 {
		a.Observe(Event{Time: epoch0.Add(time.Hour), Kind: Posted, User: string(rune('a' + i))})
	}
	// Within the lateness allowance the day is still open.
	if bs := a.Close(epoch0.Add(24*time.Hour + 5*time.Minute)); bs != nil {
		t.Fatalf("day released within the lateness allowance: %d buckets", len(bs))
	}
	a.Observe(Event{Time: epoch0.Add(23 * time.Hour), Kind: Posted, User: "a"})
	bs := a.Close(epoch0.Add(24*time.Hour + 11*time.Minute))
	if len(bs) == 0 {
		t.Fatal("day not released after the lateness allowance")
	}
	a.Observe(Event{Time: epoch0.Add(23 * time.Hour), Kind: Posted, User: "a"})
	st := a.Stats()
	if st.Invalid != 2 || st.Late != 2 || st.Observed != 11 || st.Cells != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, b := range bs {
		if b.Partial {
			t.Fatalf("complete day marked partial: %+v", b)
		}
	}
}

func TestConfig(t *testing.T) {
	if _, err := New(Config{K: 4}); err == nil {
		t.Fatal("k=4 accepted")
	}
	a, err := New(Config{})
	if err != nil || a.K() != MinK {
		t.Fatalf("default k: %v %v", a, err)
	}
	if _, err := New(Config{K: 9, Lateness: -time.Second}); err == nil {
		t.Fatal("negative lateness accepted")
	}
}

// TestSmallTeamNeverNamed: a team of four people, however busy, never
// appears by id, and its activity is only visible merged with others.
func TestSmallTeamNeverNamed(t *testing.T) {
	a := newTestAggregator(t, MinK)
	for i := range 2000 {
		u := []string{"a", "b", "c", "d"}[i%4]
		a.Observe(Event{Time: epoch0.Add(time.Duration(i) * 40 * time.Second), Team: "smallteam", ChannelType: 'P', Kind: Posted, User: u})
	}
	for i := range 200 {
		a.Observe(Event{Time: epoch0.Add(time.Duration(i) * 7 * time.Minute), Team: "bigteam", ChannelType: 'O', Kind: Posted, User: string(rune('e' + i%10))})
	}
	bs := a.Close(epoch0.Add(3 * 24 * time.Hour))
	for _, b := range bs {
		if b.Team == "smallteam" {
			t.Fatalf("small team named: %+v", b)
		}
		if b.Team == OtherTeams && !b.Suppressed {
			t.Fatalf("other teams row of four users shown: %+v", b)
		}
	}
	tab, err := Publish(bs, Query{From: epoch0, To: epoch0.Add(48 * time.Hour), By: Day}, 9)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tab.Rows {
		if r.Team == "smallteam" || (r.Team == "bigteam" && !r.Suppressed && r.Users < 9) {
			t.Fatalf("row %+v", r)
		}
	}
}

func TestPublishRefusesMalformed(t *testing.T) {
	good := Bucket{Release: 1, Span: Day, Hour: 24 * 20000, Team: AllTeams, ChannelType: AllTypes, Counts: Counts{Messages: 1, Users: 9}}
	q := Query{From: time.Unix(0, 0), To: time.Unix(86400*30000, 0), By: Day}
	if _, err := Publish([]Bucket{good}, q, 5); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Bucket){
		"span":       func(b *Bucket) { b.Span = 3 },
		"midnight":   func(b *Bucket) { b.Hour++ },
		"type":       func(b *Bucket) { b.ChannelType = 'x' },
		"team":       func(b *Bucket) { b.Team = "" },
		"negative":   func(b *Bucket) { b.Messages = -1 },
		"suppressed": func(b *Bucket) { b.Suppressed = true },
	} {
		b := good
		mut(&b)
		if _, err := Publish([]Bucket{b}, q, 5); err == nil {
			t.Errorf("%s: malformed bucket accepted", name)
		}
	}
	if _, err := Publish([]Bucket{good, good}, q, 5); err == nil {
		t.Error("duplicate cell accepted")
	}
	if _, err := Publish(nil, Query{From: q.To, To: q.From, By: Day}, 5); err == nil {
		t.Error("inverted query accepted")
	}
	if _, err := Publish(nil, Query{From: q.From, To: q.To, By: 2}, 5); err == nil {
		t.Error("bad granularity accepted")
	}
}

// TestAuditFindsBridge: a two-way pattern the line rule cannot see — two
// rings of hidden cells joined by one hidden cell — is caught by the audit.
func TestAuditFindsBridge(t *testing.T) {
	// Rows r1..r4 and columns c1..c4 of a 4×4 table; hidden: the ring
	// (r1,c1),(r1,c2),(r2,c1),(r2,c2), the ring (r3,c3),(r3,c4),(r4,c3),(r4,c4),
	// and the bridge (r1,c3). One equation per row and per column.
	hiddenCells := [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {2, 2}, {2, 3}, {3, 2}, {3, 3}, {0, 2}}
	col := map[[2]int]int32{}
	for i, c := range hiddenCells {
		col[c] = int32(i)
	}
	var rows [][]entry
	for r := range 4 {
		var row []entry
		for c := range 4 {
			if j, ok := col[[2]int{r, c}]; ok {
				row = append(row, entry{j, 1})
			}
		}
		rows = append(rows, row)
	}
	for c := range 4 {
		var row []entry
		for r := range 4 {
			if j, ok := col[[2]int{r, c}]; ok {
				row = append(row, entry{j, 1})
			}
		}
		slices.SortFunc(row, func(a, b entry) int { return int(a.col - b.col) })
		rows = append(rows, row)
	}
	got := determinedColumns(rows, len(hiddenCells))
	if !slices.Equal(got, []int{8}) {
		t.Fatalf("determined %v, want the bridge [8]", got)
	}
}

// TestDeterminedColumnsAgainstRationals cross-checks the sparse modular
// elimination with exact rational elimination on random sparse systems.
func TestDeterminedColumnsAgainstRationals(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	for range iterations(t, 300) {
		n := 1 + rng.IntN(25)
		m := 1 + rng.IntN(30)
		dense := make([][]int64, m)
		var rows [][]entry
		for i := range dense {
			dense[i] = make([]int64, n)
			var row []entry
			for j := range n {
				if rng.IntN(4) == 0 {
					v := int64(1)
					if rng.IntN(3) == 0 {
						v = -1
					}
					dense[i][j] = v
					mv := uint64(1)
					if v < 0 {
						mv = modP - 1
					}
					row = append(row, entry{int32(j), mv})
				}
			}
			if v := dense[i]; true {
				for j := range v {
					if v[j] == -1 {
						v[j] = testP - 1
					}
				}
			}
			rows = append(rows, row)
		}
		got := determinedColumns(rows, n)
		want := ratDetermined(dense, n)
		if !slices.Equal(got, want) {
			t.Fatalf("determined %v, rationals say %v", got, want)
		}
	}
}

// TestPublishLargeK: a large k costs one pass per threshold that changes
// something, and hides everything below it.
func TestPublishLargeK(t *testing.T) {
	rng := rand.New(rand.NewPCG(99, 1))
	w := genWorld(rng, 3000)
	a := newTestAggregator(t, MinK)
	for _, ev := range w.events {
		a.Observe(ev)
	}
	bs := a.Close(epoch0.Add(10 * 24 * time.Hour))
	start := time.Now()
	tab, err := Publish(bs, Query{From: epoch0.Add(-24 * time.Hour), To: epoch0.Add(6 * 24 * time.Hour), By: Day}, 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Publish with k=100000 took %v", d)
	}
	for _, r := range tab.Rows {
		if !r.Suppressed {
			t.Fatalf("row %+v shown at k=100000", r)
		}
		if r.Team != AllTeams && r.Team != OtherTeams {
			t.Fatalf("team named at k=100000: %+v", r)
		}
	}
}

// TestCountsOpenDayFromBeforeStart: a process started mid-day counts the
// events of that day that happened before it started (a capture path's
// buffer replayed after a restart), and of the day before while its
// lateness allowance runs; not those of days already over.
func TestCountsOpenDayFromBeforeStart(t *testing.T) {
	start := epoch0.Add(5 * time.Minute) // 00:05 on day 0: day -1 is within its lateness
	a, err := New(Config{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	a.Observe(Event{Time: epoch0.Add(time.Minute), Kind: Posted, User: "a"})                 // day 0, before Start
	a.Observe(Event{Time: epoch0.Add(-time.Minute), Kind: Posted, User: "b"})                // day -1, late but allowed
	a.Observe(Event{Time: epoch0.Add(-24*time.Hour - time.Minute), Kind: Posted, User: "c"}) // day -2: over
	if st := a.Stats(); st.Observed != 2 || st.Late != 1 {
		t.Fatalf("stats %+v, want 2 observed and 1 late", st)
	}
}
