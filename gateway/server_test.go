package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store/boltstore"
)

const token = "test-token-0123456789abcdef"

type testGateway struct {
	srv   *httptest.Server
	store *boltstore.Store
	path  string // the store's file
	log   *bytes.Buffer
	keys  *crypto.GatewayKeys
	ids   []*crypto.HPKEIdentity // the approver slots (quorum 2)
}

func newTestGateway(t *testing.T) *testGateway {
	t.Helper()
	keys, err := crypto.NewGatewayKeys()
	if err != nil {
		t.Fatal(err)
	}
	var slots []crypto.Recipient
	var ids []*crypto.HPKEIdentity
	for i := 0; i < 3; i++ {
		id, err := crypto.GenerateSlotKey(crypto.KEMX25519)
		if err != nil {
			t.Fatal(err)
		}
		slots = append(slots, id.Recipient())
		ids = append(ids, id)
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: slots, Quorum: 2, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logBuf := &bytes.Buffer{}
	s := &Server{
		Pipeline:     &Pipeline{Sealer: sealer, Keys: keys, Store: st},
		Token:        token,
		Limits:       Limits{MaxPostBytes: 64 << 10, MaxBatchEvents: 100},
		MaxBodyBytes: 256 << 10,
		MaxFileBytes: 8 << 20,
		Log:          slog.New(slog.NewJSONHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	hs := httptest.NewServer(s.Handler(NewMetrics(func() float64 { return float64(sealer.Live()) })))
	t.Cleanup(hs.Close)
	return &testGateway{srv: hs, store: st, path: path, log: logBuf, keys: keys, ids: ids}
}

func (g *testGateway) do(t *testing.T, method, tok, ctype, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, g.srv.URL+"/v1/ingest", strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestIngestHTTP(t *testing.T) {
	g := newTestGateway(t)
	body, want := fixtureBatch(t)
	ctx := context.Background()
	authors := map[string]bool{}
	for _, e := range want {
		authors[e.Employee] = true
	}

	code, ans := g.do(t, "POST", token, "application/json", string(body))
	if code != 200 {
		t.Fatalf("%d %s", code, ans)
	}
	var res map[string]int
	json.Unmarshal([]byte(ans), &res)
	if res["received"] != 25 || res["stored"] != 25 {
		t.Fatalf("answer %v", res)
	}
	stats, _ := g.store.Stats(ctx)
	// One day in the recording: one epoch, one day key per author.
	if stats.Records != 25 || stats.Epochs != 1 || stats.KeyRecords != int64(len(authors)) {
		t.Fatalf("stats %+v, %d authors", stats, len(authors))
	}
	// Idempotent.
	code, ans = g.do(t, "POST", token, "application/json", string(body))
	json.Unmarshal([]byte(ans), &res)
	if code != 200 || res["stored"] != 0 || res["duplicate"] != 25 {
		t.Fatalf("re-send: %d %s", code, ans)
	}
	if after, _ := g.store.Stats(ctx); after != stats {
		t.Fatalf("re-send changed the store: %+v → %+v", stats, after)
	}

	refusals := []struct {
		name, method, tok, ctype, body string
		code                           int
	}{
		{"no token", "POST", "", "application/json", string(body), 401},
		{"wrong token", "POST", "test-token-0123456789abcdeX", "application/json", string(body), 401},
		{"wrong method", "GET", token, "", "", 405},
		{"wrong content type", "POST", token, "text/plain", string(body), 415},
		{"malformed", "POST", token, "application/json", `{"events":[{`, 400},
		{"oversize body", "POST", token, "application/json", `{"events":["` + strings.Repeat("a", 300<<10) + `"]}`, 413},
		{"unknown kind", "POST", token, "application/json", `{"events":[{"kind":"liked","post":{"id":"p"}}]}`, 400},
	}
	for _, r := range refusals {
		code, ans := g.do(t, r.method, r.tok, r.ctype, r.body)
		if code != r.code || !strings.Contains(ans, `"error"`) {
			t.Errorf("%s: %d %s, want %d with a reason", r.name, code, ans, r.code)
		}
	}
	if after, _ := g.store.Stats(ctx); after != stats {
		t.Fatalf("a refused request changed the store: %+v → %+v", stats, after)
	}

	// A store that cannot commit answers 503, never 200.
	g.store.Close()
	if code, ans := g.do(t, "POST", token, "application/json", strings.Replace(string(body), "9da1gibgibgtfbw6dt4u3smkzh", "zzzzgibgibgtfbw6dt4u3smkzh", 1)); code != 503 {
		t.Fatalf("closed store: %d %s", code, ans)
	}

	// Logs carry no content of the recorded posts.
	for _, s := range []string{"Please add me", "joined the channel", "9da1gibgibgtfbw6dt4u3smkzh"} {
		if bytes.Contains(g.log.Bytes(), []byte(s)) {
			t.Fatalf("log holds %q", s)
		}
	}
}

func TestMetricsHaveNoIdentifiers(t *testing.T) {
	g := newTestGateway(t)
	body, _ := fixtureBatch(t)
	g.do(t, "POST", token, "application/json", string(body))
	resp, err := http.Get(g.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(m, []byte(`sealgate_ingest_events_total{outcome="stored"} 25`)) {
		t.Fatalf("metrics lack the stored count:\n%s", m)
	}
	for _, id := range []string{"g6e8xk8t6t86tjy8nrqyeqmm5c", "9da1gibgibgtfbw6dt4u3smkzh", "qgrjjwpm6frgznmapkpze56dfe"} {
		if bytes.Contains(m, []byte(id)) {
			t.Fatalf("metrics hold id %s", id)
		}
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }
