package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/sealgate/sealgate/gateway"
)

// store stands in for the ingest pipeline: down or up, and counting what
// it durably took. It parses events with the gateway's own parser.
type store struct {
	down      atomic.Bool
	mu        sync.Mutex
	delivered map[string]int
	calls     atomic.Int64
}

func (s *store) deliver(batch [][]byte) error {
	s.calls.Add(1)
	if s.down.Load() {
		return errors.New("store: connection refused")
	}
	for _, ev := range batch {
		if !bytes.Contains(ev, []byte(`"webhook"`)) && !bytes.Contains(ev, []byte(`"post":{"id":"`+deletedRootID+`"}`)) {
			body, _ := json.Marshal(map[string]any{"events": []json.RawMessage{ev}})
			if _, err := gateway.ParseBatch(body, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, time.UnixMilli(fixtureNowMsec)); err != nil {
				return Permanent(err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range batch {
		s.delivered[string(ev)]++
	}
	return nil
}

func (s *store) count() (events, deliveries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.delivered {
		deliveries += n
	}
	return len(s.delivered), deliveries
}

// TestStoreDownSpoolsAndRecovers: with the store down, chat requests
// through the proxy still succeed and every captured event lands in the
// (encrypted) spool; across a restart of the gateway during the outage and
// a flaky recovery, each event is delivered exactly once.
func TestStoreDownSpoolsAndRecovers(t *testing.T) { forModes(t, testStoreDownSpoolsAndRecovers) }

func testStoreDownSpoolsAndRecovers(t *testing.T, mode string) {
	fastLookups(t)
	_, up := fixtureUpstream(t)
	admin := model.NewAPIv4Client(up.URL)
	admin.SetToken("REDACTED")
	dir := t.TempDir()
	sp := openTestSpool(t, dir)
	st := &store{delivered: map[string]int{}}
	st.down.Store(true)

	startSink := func(sp *Spool) (*Sink, func()) {
		sink := &Sink{Deliver: st.deliver, Spool: sp, MaxDelay: time.Millisecond}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { sink.Run(ctx); close(done) }()
		return sink, func() { cancel(); <-done }
	}
	sink, stopSink := startSink(sp)
	p := &Proxy{
		Upstream: mustURL(t, up.URL),
		Capture:  sink.Capture,
		Spool:    sp,
		PostLookup: func(ctx context.Context, id string) (*model.Post, error) {
			post, _, err := admin.GetPostIncludeDeleted(ctx, id, "")
			return post, err
		},
	}
	base, _ := startProxy(t, mode, p)
	via, rec := newClient(base)
	ctx := context.Background()

	var sent int
	creates, _ := filepath.Glob(filepath.Join(fixtureDir, "http", "posts-create-*.json"))
	for _, f := range creates {
		ex := loadExchange(t, strings.TrimSuffix(filepath.Base(f), ".json"))
		if ex.Request.BodyFormat != "json" {
			continue
		}
		var post model.Post
		json.Unmarshal(ex.Request.Body, &post)
		start := time.Now()
		_, resp, err := via.CreatePost(ctx, &post)
		r := rec.take()
		if resp == nil || resp.StatusCode != ex.Response.Status || !bytes.Equal(r.Body, ex.Response.wire(t)) {
			t.Fatalf("%s with the store down: %v %v", ex.Name, resp, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s took %v with the store down", ex.Name, d)
		}
		if ex.Response.Status == 201 {
			sent++
		}
	}
	patch := loadExchange(t, "posts-patch")
	var pp model.PostPatch
	json.Unmarshal(patch.Request.Body, &pp)
	if _, _, err := via.PatchPost(ctx, "xr7brgscspdxmn79rz96hep1gh", &pp); err != nil {
		t.Fatal(err)
	}
	if _, err := via.DeletePost(ctx, deletedPostID); err != nil {
		t.Fatal(err)
	}
	if _, err := via.DeletePost(ctx, deletedRootID); err != nil { // its lookup fails: a bare delete
		t.Fatal(err)
	}
	hook := loadExchange(t, "hooks-incoming-post")
	if r, err := via.HTTPClient.Post(base+hook.Request.Path, "application/json", bytes.NewReader(hook.Request.wire(t))); err != nil || r.StatusCode != 200 {
		t.Fatalf("webhook: %v", err)
	} else {
		r.Body.Close()
	}
	sent += 4

	waitFor(t, "events spooled", func() bool { return sp.Pending() == int64(sent) })
	if n, _ := st.count(); n != 0 {
		t.Fatalf("%d events delivered while the store was down", n)
	}
	if st.calls.Load() == 0 {
		t.Error("the sink never tried the store")
	}
	// Spooled, and not in clear.
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, canary := range []string{"Goedemorgen", "budget", "xr7brgscspdxmn79rz96hep1gh", "g6e8xk8t6t86tjy8nrqyeqmm5c", "posted"} {
			if bytes.Contains(b, []byte(canary)) {
				t.Errorf("%s holds %q in clear", path, canary)
			}
		}
		return nil
	})

	// The gateway restarts during the outage.
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	stopSink()
	sp.Close()
	sp2 := openTestSpool(t, dir)
	if sp2.Pending() != int64(sent) {
		t.Fatalf("after restart %d pending, want %d", sp2.Pending(), sent)
	}

	// The store comes back, flaky at first.
	var flaky atomic.Int64
	st.down.Store(false)
	sink2 := &Sink{Spool: sp2, MaxDelay: time.Millisecond, Deliver: func(b [][]byte) error {
		if flaky.Add(1)%3 == 1 {
			return errors.New("store: timeout")
		}
		return st.deliver(b)
	}}
	ctx2, cancel2 := context.WithCancel(ctx)
	done2 := make(chan struct{})
	go func() { sink2.Run(ctx2); close(done2) }()
	defer func() { cancel2(); <-done2 }()

	waitFor(t, "all delivered", func() bool { n, _ := st.count(); return n == sent })
	time.Sleep(50 * time.Millisecond)
	events, deliveries := st.count()
	if events != sent || deliveries != sent {
		t.Errorf("%d distinct events in %d deliveries, want %d once each", events, deliveries, sent)
	}
	if sp2.Pending() != 0 || len(segFiles(t, dir, ".seg")) != 0 {
		t.Errorf("spool left: %d pending, %v", sp2.Pending(), segFiles(t, dir, ".seg"))
	}
	st.mu.Lock()
	for ev, n := range st.delivered {
		if n != 1 {
			t.Errorf("delivered %d times: %.120s", n, ev)
		}
	}
	st.mu.Unlock()
}

// TestSinkDeliversDirectly: with the store up, events go straight through
// in batches and nothing touches the disk.
func TestSinkDeliversDirectly(t *testing.T) {
	dir := t.TempDir()
	sp := openTestSpool(t, dir)
	c := &consumer{}
	sink := &Sink{Deliver: c.deliver, Spool: sp, MaxBatch: 10}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sink.Run(ctx); close(done) }()
	for _, e := range evs("s", 95) {
		sink.Capture(e)
	}
	waitFor(t, "delivered", func() bool { return len(c.delivered()) == 95 })
	cancel()
	<-done
	if len(segFiles(t, dir, ".seg")) != 0 || sink.Stats().Delivered != 95 {
		t.Errorf("stats %+v, segments %v", sink.Stats(), segFiles(t, dir, ".seg"))
	}
}

// TestSinkShutdownSpools: what is queued at shutdown is spooled, not lost.
func TestSinkShutdownSpools(t *testing.T) {
	dir := t.TempDir()
	sp := openTestSpool(t, dir)
	block := make(chan struct{})
	sink := &Sink{Spool: sp, MaxBatch: 1, Deliver: func([][]byte) error { <-block; return errors.New("down") }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { sink.Run(ctx); close(done) }()
	for _, e := range evs("x", 20) {
		sink.Capture(e)
	}
	cancel()
	close(block)
	<-done
	sp.Close()
	if n := openTestSpool(t, dir).Pending(); n != 20 {
		t.Errorf("after shutdown %d spooled, want 20", n)
	}
}

// TestProxySpillsWhenQueueFull: a Capture that blocks fills the queue; the
// requests still pass and further events go to the spool.
func TestProxySpillsWhenQueueFull(t *testing.T) { forModes(t, testProxySpillsWhenQueueFull) }

func testProxySpillsWhenQueueFull(t *testing.T, mode string) {
	_, up := fixtureUpstream(t)
	sp := openTestSpool(t, t.TempDir())
	block := make(chan struct{})
	var got atomic.Int64
	p := &Proxy{Upstream: mustURL(t, up.URL), Spool: sp, QueueSize: 1,
		Capture: func([]byte) { <-block; got.Add(1) }}
	base, _ := startProxy(t, mode, p)
	via, _ := newClient(base)
	ex := loadExchange(t, "posts-create-public")
	var post model.Post
	json.Unmarshal(ex.Request.Body, &post)
	for i := 0; i < 6; i++ {
		if _, _, err := via.CreatePost(context.Background(), &post); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "spilled", func() bool { return p.Stats().Spilled >= 4 })
	close(block)
	p.Close(context.Background())
	st := p.Stats()
	if st.Captured+st.Spilled != 6 || got.Load() != st.Captured || sp.Pending() != st.Spilled || st.Dropped != 0 {
		t.Errorf("stats %+v, delivered %d, spool %d", st, got.Load(), sp.Pending())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
