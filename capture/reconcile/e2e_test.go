package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/store/boltstore"
)

// newPipeline is a real sealing pipeline over a bbolt store, set up as
// gateway/server_test.go does.
func newPipeline(t *testing.T) (*gateway.Pipeline, *boltstore.Store) {
	t.Helper()
	keys, err := crypto.NewGatewayKeys()
	if err != nil {
		t.Fatal(err)
	}
	var slots []crypto.Recipient
	for i := 0; i < 3; i++ {
		id, err := crypto.GenerateSlotKey(crypto.KEMX25519)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, id.Recipient())
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: slots, Quorum: 2, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &gateway.Pipeline{Sealer: sealer, Keys: keys, Store: st}, st
}

func (w *world) pipelineReconciler(p *gateway.Pipeline) *Reconciler {
	return &Reconciler{
		Client:   NewClient(w.srv.URL, adminToken, 10*time.Second),
		Ingest:   PipelineIngest(p, testLimits, func() time.Time { return testNow }),
		Seen:     StoreSeen(p.Store, p.Keys),
		PageSize: w.pageSize,
		Now:      func() time.Time { return testNow },
	}
}

func records(t *testing.T, st *boltstore.Store) int64 {
	t.Helper()
	s, err := st.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Records
}

// TestEndToEndEmptyStore: everything the API still has is sealed and
// stored once; a second run stores nothing.
func TestEndToEndEmptyStore(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	p, st := newPipeline(t)
	r := w.pipelineReconciler(p)
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := records(t, st), int64(len(wantFromEmpty())); got != want || int64(rep.Total()) != want {
		t.Errorf("stored %d records, reported %d, want %d", got, rep.Total(), want)
	}
	rep, err = r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total() != 0 || rep.AlreadySeen != len(wantFromEmpty()) || records(t, st) != int64(len(wantFromEmpty())) {
		t.Errorf("second run: %+v, %d records", rep, records(t, st))
	}
}

// TestEndToEndAfterPlugin: the store holds every event the plugin sent
// during the recording (its 25 hooks). The reconciler's rebuilt events
// have the same refs, so the only thing it adds is the tombstone of the
// reply that the thread-root deletion removed without a hook.
func TestEndToEndAfterPlugin(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	p, st := newPipeline(t)
	evs := pluginEvents(t)
	body, _ := json.Marshal(map[string]any{"events": evs})
	parsed, err := gateway.ParseBatch(body, testLimits, testNow)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Ingest(context.Background(), parsed)
	if err != nil || res.Stored != 25 {
		t.Fatalf("plugin events: %+v %v", res, err)
	}

	r := w.pipelineReconciler(p)
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total() != 1 || rep.Ingested[KindDeleted] != 1 || rep.CascadeDeleted != 1 || rep.DeletedUnrecovered != 0 || records(t, st) != 26 {
		t.Errorf("after the plugin: %+v, %d records", rep, records(t, st))
	}
	// Nothing is unrecovered: the plugin had every version, so the
	// author-only history is not even asked for.
	if rep.PostedUnrecovered != 0 || rep.EditsUnrecovered != 0 || rep.HistoryDenied != 0 {
		t.Errorf("unrecovered after the plugin: %+v", rep)
	}
	for _, id := range []string{ids.PublicPostID, ids.PrivatePostID} {
		if n := w.fake.hitCount("GET", "/api/v4/posts/"+id+"/edit_history", ""); n != 0 {
			t.Errorf("edit history read %d times", n)
		}
	}
	ok, err := r.Seen(context.Background(), ids.DeletedRootReplyID, KindDeleted, gateway.TombstoneVersion)
	if err != nil || !ok {
		t.Errorf("reply tombstone not stored: %v", err)
	}

	rep, err = r.Run(context.Background(), sinceTime())
	if err != nil || rep.Total() != 0 || records(t, st) != 26 {
		t.Errorf("second run: %+v %v, %d records", rep, err, records(t, st))
	}
}

func TestPeriodic(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	r := w.reconciler(rec)
	const overlap = time.Minute
	// The clock stands still one overlap after the recording's since, so
	// every run after the first starts from the same since again.
	r.Now = func() time.Time { return sinceTime().Add(overlap) }
	var logBuf syncBuffer
	r.Log = slog.New(slog.NewJSONHandler(&logBuf, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Periodic(ctx, sinceTime(), 5*time.Millisecond, overlap)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logBuf.String(), "reconcile: run done") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	out := logBuf.String()
	if n := strings.Count(out, "reconcile: run done"); n < 3 {
		t.Fatalf("%d runs logged:\n%s", n, out)
	}
	if len(rec.events()) != len(wantFromEmpty()) {
		t.Errorf("%d events over the runs, want %d once", len(rec.events()), len(wantFromEmpty()))
	}
	first := strings.SplitN(out, "\n", 2)[0]
	if !strings.Contains(first, `"ingested":18`) || strings.Contains(out, "Goedemorgen") {
		t.Errorf("first run log: %s", first)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
