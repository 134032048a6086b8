package redact

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// benchEvents is a steady-state workload: 2,000 users in 20 teams, all four
// channel types, within one hour (every cell and user already known after
// the first pass).
func benchEvents(n int) []Event {
	rng := rand.New(rand.NewPCG(1, 2))
	users := make([]string, 2000)
	for i := range users {
		users[i] = fmt.Sprintf("%026d", i)
	}
	teams := make([]string, 20)
	for i := range teams {
		teams[i] = fmt.Sprintf("team%022d", i)
	}
	types := []byte{'O', 'P', 'D', 'G'}
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{
			Time:        epoch0.Add(time.Duration(rng.IntN(3600)) * time.Second),
			Team:        teams[rng.IntN(len(teams))],
			ChannelType: types[rng.IntN(4)],
			Kind:        Kind(1 + rng.IntN(5)),
			Bytes:       rng.IntN(500),
			User:        users[rng.IntN(len(users))],
		}
	}
	return evs
}

// BenchmarkObserve is the per-event cost on the ingest path, one writer.
func BenchmarkObserve(b *testing.B) {
	evs := benchEvents(1 << 16)
	a := newTestAggregator(b, MinK)
	for _, ev := range evs {
		a.Observe(ev)
	}
	for range 3 { // fill every cell's user set
		for _, ev := range evs {
			a.Observe(ev)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a.Observe(evs[i&(len(evs)-1)])
		i++
	}
}

// BenchmarkObserveParallel is the same with GOMAXPROCS writers.
func BenchmarkObserveParallel(b *testing.B) {
	evs := benchEvents(1 << 16)
	a := newTestAggregator(b, MinK)
	for range 4 {
		for _, ev := range evs {
			a.Observe(ev)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1) * 7919)
		for pb.Next() {
			a.Observe(evs[i&(len(evs)-1)])
			i++
		}
	})
}

// BenchmarkReleaseDay is the cost of releasing one busy day: 24 hours of
// 2,000 users in 20 teams (runs once a day, off the ingest path).
func BenchmarkReleaseDay(b *testing.B) {
	base := benchEvents(200_000)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range base {
		base[i].Time = base[i].Time.Add(time.Duration(rng.IntN(24)) * time.Hour)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		a := newTestAggregator(b, MinK)
		for _, ev := range base {
			a.Observe(ev)
		}
		b.StartTimer()
		if bs := a.Close(epoch0.Add(25 * time.Hour)); len(bs) == 0 {
			b.Fatal("nothing released")
		}
	}
}

// TestObserveDoesNotAllocate: the hot path allocates nothing once the cell
// and the user are known.
func TestObserveDoesNotAllocate(t *testing.T) {
	evs := benchEvents(1024)
	a := newTestAggregator(t, MinK)
	for _, ev := range evs {
		a.Observe(ev)
	}
	i := 0
	if n := testing.AllocsPerRun(2000, func() {
		a.Observe(evs[i%len(evs)])
		i++
	}); n != 0 {
		t.Fatalf("Observe allocates %.2f times per event in steady state", n)
	}
}
