package release_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"log"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/release"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/unseal"
)

// The release benchmarks run on one 90-day world, built once per test
// binary: alice (the subject) wrote 50,000 posts in scope over the 90 days
// before today, about 556 a day between 07:00 and 19:00 UTC, every fifth
// mentioning a co-participant, plus one post a day in the excluded channel
// (opened by the desk and filtered out); bob wrote 50 posts a day in the same
// channels and hours (other tags: never scanned). Everything goes through
// gateway.ParseBatch and gateway.Pipeline one day per batch, so each
// employee-day has exactly one key record, as on a gateway that ran all day.
// An order on alice for the whole window (90 days, the longest the rules
// allow) is filed and activated by slots 0, 1 and 2.
//
// Figures are ratios against baselines measured in the same run:
//
//	go test -run '^$' -bench . -benchtime 3x -count 5 ./release/
//
// BenchmarkUnseal90Days/desk is the requester reading the window page by page
// (release.MaxPage); store-scan is the store walk alone over the same tags and
// hours; raw-gcm is AES-256-GCM opening as many records of the same sizes;
// scan-open is the store walk plus crypto.OpenRecord with the same day keys
// (recovered here with unseal.DayKeys), without filters, views or audit.
// Every op covers the same 50,090 sealed records; posts/s counts the 50,000
// the desk serves.

const (
	benchDays       = 90
	benchPosts      = 50_000 // alice's posts in scope, over the window
	benchBobPerDay  = 50
	benchFirstPage  = 100
	benchActivating = 2 // the third slot: 0 and 1 approve first
)

// benchWorld is the shared 90-day setup.
type benchWorld struct {
	f       *fixture
	active  string // alice's 90-day order, activated by slots 0, 1, 2
	pending string // a second 90-day order on alice (new facts), left pending
	days    []string
	tags    []crypto.Tag
	records int   // alice's records in the window
	sizes   []int // their blob sizes, in scan order
	keys    []map[crypto.KeyRecordID]*crypto.DayKey
}

var (
	benchMu       sync.Mutex
	benchShared   *benchWorld
	benchCleanups []func() // run by TestMain, last first
)

// TestMain tears down the shared benchmark world (its redis-server, store
// and temporary directory) after every test and benchmark has run.
func TestMain(m *testing.M) {
	code := m.Run()
	for _, fn := range slices.Backward(benchCleanups) {
		fn()
	}
	os.Exit(code)
}

// processTB gives the shared world the lifetime of the test binary: a
// benchmark's own cleanups run each time its function returns (and a
// benchmark function runs several times), so the fixture's cleanups and
// temporary directories are collected here for TestMain instead. Everything
// else goes to the benchmark that builds the world.
type processTB struct{ testing.TB }

func (p processTB) Cleanup(fn func()) { benchCleanups = append(benchCleanups, fn) }

func (p processTB) TempDir() string {
	p.Helper()
	dir, err := os.MkdirTemp("", "sealgate-bench-")
	if err != nil {
		p.Fatal(err)
	}
	benchCleanups = append(benchCleanups, func() { os.RemoveAll(dir) })
	return dir
}

// Failed is asked by cleanups at teardown, after the benchmark that built
// the world has ended; a failed setup never leaves a world behind.
func (p processTB) Failed() bool { return false }

// world returns the shared world, building it on first use, with its
// fixture reporting to b.
func world(b *testing.B) *benchWorld {
	b.Helper()
	benchMu.Lock()
	defer benchMu.Unlock()
	if benchShared == nil {
		start := time.Now()
		benchShared = buildWorld(b) // stays nil if b fails on the way
		b.Logf("90-day world built in %s: %d records of alice in the window (%d served), mean record %d bytes",
			time.Since(start).Round(time.Millisecond), benchShared.records, benchPosts, mean(benchShared.sizes))
	}
	benchShared.f.t = b
	return benchShared
}

func buildWorld(b *testing.B) *benchWorld {
	f := func() *fixture {
		defer quietDefaultLogger()()
		return newFixture(processTB{b})
	}()
	f.t = b
	y, m, d := time.Now().UTC().AddDate(0, 0, -benchDays).Date()
	f.base = time.Date(y, m, d, 0, 0, 0, 0, time.UTC) // day 0 .. day 89 = yesterday
	w := &benchWorld{f: f}

	n := 0
	for day := range benchDays {
		count := (day+1)*benchPosts/benchDays - day*benchPosts/benchDays
		var evs []map[string]any
		for i := range count {
			n++
			at := f.base.AddDate(0, 0, day).Add(7*time.Hour + time.Duration(i)*12*time.Hour/time.Duration(count))
			ch := channel1
			if i%3 == 0 {
				ch = channel2
			}
			text := fmt.Sprintf("post %d of day %d: the revised figures for the Q3 forecast are in the shared folder, please check the totals", n, day)
			if i%5 == 0 {
				text += " with @bob and @Dave.Smith."
			}
			evs = append(evs, f.post("posted", alice, ch, fmt.Sprintf("a%025d", n), text, at))
		}
		evs = append(evs, f.post("posted", alice, excluded, fmt.Sprintf("x%025d", day), "works council matter", f.at(day, 11, 0)))
		for i := range benchBobPerDay {
			at := f.base.AddDate(0, 0, day).Add(7*time.Hour + time.Duration(i)*12*time.Hour/benchBobPerDay + time.Second)
			evs = append(evs, f.post("posted", bob, channel1, fmt.Sprintf("b%07d%018d", day, i), "lunch at noon? @alice", at))
		}
		f.ingest(evs)
	}
	if n != benchPosts {
		b.Fatalf("generated %d posts, want %d", n, benchPosts)
	}

	// The 90-day order, approved by slots 0..2.
	o := f.draft(alice, 0, benchDays-1)
	w.active = f.file(o).Order.ID
	w.days = o.Days()
	if len(w.days) != benchDays {
		b.Fatalf("window of %d days", len(w.days))
	}
	for slot := range 3 {
		res, err := f.approve(w.active, slot)
		if err != nil {
			b.Fatalf("approve slot %d: %v", slot, err)
		}
		if slot == 2 && (!res.Activated || res.Days != benchDays || res.KeyRecords != benchDays) {
			b.Fatalf("activation: %+v", res)
		}
	}
	// A second order on alice, citing new facts, stays pending for the
	// approval benchmark.
	o2 := f.draft(alice, 0, benchDays-1)
	o2.NewFacts = "a second leak"
	w.pending = f.file(o2).Order.ID

	// The baselines' material: tags, record sizes and the day keys.
	slots := []unseal.Slot{{Index: 0, Identity: f.slots[0]}, {Index: 1, Identity: f.slots[1]}, {Index: 2, Identity: f.slots[2]}}
	for _, day := range w.days {
		tag := f.keys.Tag(alice, day)
		w.tags = append(w.tags, tag)
		keys, err := unseal.DayKeys(f.ctx, f.store, f.keys.Verifier(), unseal.Day{Employee: alice, Day: day, Tag: tag}, slots)
		if err != nil {
			b.Fatal(err)
		}
		w.keys = append(w.keys, keys)
	}
	benchCleanups = append(benchCleanups, func() {
		for _, k := range w.keys {
			unseal.Wipe(k)
		}
	})
	w.records = w.scan(b, func(r store.Record) { w.sizes = append(w.sizes, len(r.Blob)) })
	if want := benchPosts + benchDays; w.records != want {
		b.Fatalf("%d records of alice in the window, want %d", w.records, want)
	}
	if got := w.readWindow(b); got != benchPosts {
		b.Fatalf("the desk served %d messages, want %d", got, benchPosts)
	}
	return w
}

// quietDefaultLogger makes slog's default logger discard until the
// returned function restores it (and the log package's output and flags,
// which slog.SetDefault changes). The desk takes its logger from it when it
// is made and logs every activation, which would otherwise break the
// benchmark result lines apart.
func quietDefaultLogger() (restore func()) {
	old, out, flags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	return func() {
		slog.SetDefault(old)
		log.SetOutput(out)
		log.SetFlags(flags)
	}
}

// scan walks alice's records of the window as the desk does (per day tag,
// the day's 24 hour buckets) and returns how many it saw.
func (w *benchWorld) scan(b *testing.B, fn func(store.Record)) int {
	n := 0
	for i, day := range w.days {
		t, err := crypto.ParseDay(day)
		if err != nil {
			b.Fatal(err)
		}
		from := t.Unix() / 3600
		err = w.f.store.Records(w.f.ctx, w.tags[i], from, from+23, func(r store.Record) error {
			n++
			if fn != nil {
				fn(r)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return n
}

// readWindow reads the whole window as the requester, page by page, and
// returns the number of messages served.
func (w *benchWorld) readWindow(b *testing.B) int {
	n, cursor := 0, ""
	for {
		p, err := w.f.desk.Messages(w.f.ctx, carol, w.active, cursor, release.MaxPage)
		if err != nil {
			b.Fatal(err)
		}
		n += len(p.Messages)
		if p.Next == "" {
			return n
		}
		cursor = p.Next
	}
}

func mean(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	s := 0
	for _, x := range xs {
		s += x
	}
	return s / len(xs)
}

func reportPosts(b *testing.B) {
	b.ReportMetric(float64(benchPosts)*float64(b.N)/b.Elapsed().Seconds(), "posts/s")
}

// BenchmarkUnseal90Days reads alice's whole 90-day window (50,000 posts). The
// issue's goal: at least 200,000 posts/s on the desk path.
func BenchmarkUnseal90Days(b *testing.B) {
	w := world(b)
	b.Run("desk", func(b *testing.B) {
		w.f.t = b
		b.ReportAllocs()
		for b.Loop() {
			if n := w.readWindow(b); n != benchPosts {
				b.Fatalf("served %d messages, want %d", n, benchPosts)
			}
		}
		reportPosts(b)
	})
	b.Run("store-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if n := w.scan(b, nil); n != w.records {
				b.Fatalf("scanned %d records, want %d", n, w.records)
			}
		}
		reportPosts(b)
	})
	b.Run("raw-gcm", func(b *testing.B) {
		key := make([]byte, 32)
		rand.Read(key)
		blk, err := aes.NewCipher(key)
		if err != nil {
			b.Fatal(err)
		}
		g, err := cipher.NewGCM(blk)
		if err != nil {
			b.Fatal(err)
		}
		// Records of the same sizes: header (17 bytes) then nonce,
		// ciphertext and tag; an AAD as long as a record's (94 bytes).
		const header = 17
		aad := make([]byte, 94)
		cts := make([][]byte, len(w.sizes))
		maxPT := 0
		for i, size := range w.sizes {
			pt := make([]byte, size-header-g.NonceSize()-g.Overhead())
			maxPT = max(maxPT, len(pt))
			nonce := make([]byte, g.NonceSize())
			rand.Read(nonce)
			cts[i] = g.Seal(nonce, nonce, pt, aad)
		}
		buf := make([]byte, 0, maxPT)
		b.ReportAllocs()
		for b.Loop() {
			for _, ct := range cts {
				ns := g.NonceSize()
				if _, err := g.Open(buf[:0], ct[:ns], ct[ns:], aad); err != nil {
					b.Fatal(err)
				}
			}
		}
		reportPosts(b)
	})
	b.Run("scan-open", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			n := 0
			for i, day := range w.days {
				err := unseal.Records(w.f.ctx, w.f.store, unseal.Day{Employee: alice, Day: day, Tag: w.tags[i]}, w.keys[i], func(*crypto.Event) error {
					n++
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			if n != w.records {
				b.Fatalf("opened %d records, want %d", n, w.records)
			}
		}
		reportPosts(b)
	})
}

// BenchmarkTimeToFirstPage is the requester's first page (100 messages) of
// the active 90-day order.
func BenchmarkTimeToFirstPage(b *testing.B) {
	w := world(b)
	b.ReportAllocs()
	for b.Loop() {
		p, err := w.f.desk.Messages(w.f.ctx, carol, w.active, "", benchFirstPage)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Messages) != benchFirstPage || p.Next == "" {
			b.Fatalf("first page: %d messages, next %q", len(p.Messages), p.Next)
		}
	}
}

// BenchmarkApproval90Days is one slot making its approval of a pending
// 90-day order: fetching the escrow from the desk and running
// release.MakeApproval (what `sealgate approve` does after reading the
// order).
func BenchmarkApproval90Days(b *testing.B) {
	w := world(b)
	f := w.f
	doc, err := f.desk.Get(f.ctx, holder(0), w.pending)
	if err != nil {
		b.Fatal(err)
	}
	var size, shares int
	b.ReportAllocs()
	for b.Loop() {
		esc, err := f.desk.Escrow(f.ctx, holder(0), w.pending, 0)
		if err != nil {
			b.Fatal(err)
		}
		blob, n, err := release.MakeApproval(doc, esc, 0, f.slots[0], f.keys.Verifier(), f.requester.Recipient())
		if err != nil {
			b.Fatal(err)
		}
		size, shares = len(blob), n
	}
	if shares != benchDays {
		b.Fatalf("%d shares, want %d", shares, benchDays)
	}
	b.ReportMetric(float64(size), "bytes/approval")
}

// BenchmarkActivation is the approval that completes the quorum of a fresh
// 90-day order: desk.Approve checking it, Redis activating the order and the
// desk opening all three approvals and recovering the 90 day keys. Filing,
// the first two approvals, making the third and revoking the order afterwards
// are not timed.
func BenchmarkActivation(b *testing.B) {
	w := world(b)
	f := w.f
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		o := f.draft(alice, 0, benchDays-1)
		o.NewFacts = fmt.Sprintf("activation benchmark %d", i)
		id := f.file(o).Order.ID
		for slot := range benchActivating {
			if _, err := f.approve(id, slot); err != nil {
				b.Fatalf("approve slot %d: %v", slot, err)
			}
		}
		blob, err := f.approval(holder(benchActivating), id, benchActivating)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := f.desk.Approve(f.ctx, holder(benchActivating), id, benchActivating, blob)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if !res.Activated || res.Days != benchDays || res.KeyRecords != benchDays {
			b.Fatalf("activation: %+v", res)
		}
		if err := f.desk.Revoke(f.ctx, carol, id, "benchmark done"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(benchDays, "day-keys/op")
}
