package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/internal/synth"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
)

// The ingest benchmarks post batches of 100 synthetic events through real
// HTTP on loopback into the embedded file store, durably. BenchmarkIngest
// seals; BenchmarkIngestUnsealed is the same request path storing the
// events' JSON without sealing — the baseline for the sealing overhead.
// Compare: go test -bench Ingest -count 6 ./gateway | benchstat

var (
	benchOnce sync.Once
	benchBody [][]byte
)

// benchBatches encodes 1,500 batches of unique events once per process; each
// benchmark run gets its own fresh store, so nothing is de-duplicated away
// unless a run needs more than 150,000 events.
func benchBatches(b *testing.B) [][]byte {
	benchOnce.Do(func() {
		corpus := synth.New(7, 200, 40)
		events := corpus.Events(100*1500, time.Now().Add(-20*time.Hour), 1)
		benchBody = synth.Batches(events, 100)
	})
	runtime.GC()
	return benchBody
}

func runIngestBench(b *testing.B, h http.Handler, batches [][]byte) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var next atomic.Int64
	b.SetParallelism(8) // 16 concurrent clients on 2 cores
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1)-1) % len(batches)
			req, _ := http.NewRequest("POST", srv.URL+"/v1/ingest", bytes.NewReader(batches[i]))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "posts/s")
}

func BenchmarkIngest(b *testing.B) {
	batches := benchBatches(b)
	g := newBenchGateway(b, nil)
	runIngestBench(b, g, batches)
}

// BenchmarkIngestAggregated is BenchmarkIngest with the k-anonymous
// aggregates counting every stored event: the ratio of the two is the
// aggregation overhead on the ingest path.
func BenchmarkIngestAggregated(b *testing.B) {
	batches := benchBatches(b)
	// The corpus spans the last 20 hours: count all of it.
	agg, err := redact.New(redact.Config{K: redact.MinK, Start: time.Now().Add(-21 * time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	g := newBenchGateway(b, agg)
	runIngestBench(b, g, batches)
	if st := agg.Stats(); st.Observed == 0 || st.Late > 0 {
		b.Fatalf("aggregated %d events, dropped %d as late", st.Observed, st.Late)
	}
}

func newBenchGateway(b *testing.B, agg *redact.Aggregator) http.Handler {
	keys, _ := crypto.NewGatewayKeys()
	var slots []crypto.Recipient
	for i := 0; i < 5; i++ {
		id, _ := crypto.GenerateSlotKey(crypto.KEMMLKEM768X25519)
		slots = append(slots, id.Recipient())
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: slots, Quorum: 3, Grace: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	st := benchStore(b)
	s := &Server{Pipeline: &Pipeline{Sealer: sealer, Keys: keys, Store: st, Aggregates: agg}, Token: token,
		Limits: Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, MaxBodyBytes: 32 << 20, Log: discardLog()}
	return s.Handler(NewMetrics(func() float64 { return 0 }))
}

func benchStore(b *testing.B) *boltstore.Store {
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}

// BenchmarkIngestUnsealed is the baseline: same authentication, body read,
// parsing, refs and durable store write, with the event JSON stored as is.
func BenchmarkIngestUnsealed(b *testing.B) {
	batches := benchBatches(b)
	keys, _ := crypto.NewGatewayKeys()
	st := benchStore(b)
	s := &Server{Token: token, Limits: Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, MaxBodyBytes: 32 << 20}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			writeError(w, 401, "token")
			return
		}
		body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBodyBytes))
		events, err := ParseBatch(body, s.Limits, time.Now())
		if err != nil {
			writeError(w, 400, err.Error())
			return
		}
		batch := &store.Batch{}
		for i := range events {
			e := &events[i]
			ref := keys.Ref(e.PostID, e.Kind, e.Version)
			batch.Records = append(batch.Records, store.Record{Ref: ref, Hour: e.Time.Unix() / 3600, Blob: e.Body})
		}
		n, err := st.Put(r.Context(), batch)
		if err != nil {
			writeError(w, 503, "store")
			return
		}
		writeJSON(w, 200, map[string]int{"received": len(events), "stored": n})
	})
	runIngestBench(b, h, batches)
}
