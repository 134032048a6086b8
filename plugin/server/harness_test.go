package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin/plugintest"
	"github.com/stretchr/testify/mock"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/store/boltstore"
)

const testToken = "plugin-test-token-0123456789"

// fakeKV is the plugin key-value store: Mattermost keeps it in its database,
// here a map that outlives plugin instances (like the database outlives a
// plugin restart).
type fakeKV struct {
	mu      sync.Mutex
	m       map[string][]byte
	failSet bool // KVSet of q: keys fails
}

func newFakeKV() *fakeKV { return &fakeKV{m: map[string][]byte{}} }

func (kv *fakeKV) keys(prefix string) []string {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	var out []string
	for k := range kv.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (kv *fakeKV) get(k string) []byte {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	return kv.m[k]
}

// testAPI is Mattermost's plugintest API mock (every call the plugin makes
// must be expected, except the ones below) with the KV store methods backed
// by a fakeKV and the logs recorded.
type testAPI struct {
	*plugintest.API
	kv *fakeKV

	logMu sync.Mutex
	logs  []string
}

func (a *testAPI) KVSet(key string, value []byte) *model.AppError {
	a.kv.mu.Lock()
	defer a.kv.mu.Unlock()
	if a.kv.failSet && strings.HasPrefix(key, queuePrefix) {
		return model.NewAppError("KVSet", "test.kv.down", nil, "", http.StatusInternalServerError)
	}
	a.kv.m[key] = bytes.Clone(value)
	return nil
}

func (a *testAPI) KVGet(key string) ([]byte, *model.AppError) {
	a.kv.mu.Lock()
	defer a.kv.mu.Unlock()
	return bytes.Clone(a.kv.m[key]), nil
}

func (a *testAPI) KVDelete(key string) *model.AppError {
	a.kv.mu.Lock()
	defer a.kv.mu.Unlock()
	delete(a.kv.m, key)
	return nil
}

func (a *testAPI) KVCompareAndSet(key string, oldValue, newValue []byte) (bool, *model.AppError) {
	a.kv.mu.Lock()
	defer a.kv.mu.Unlock()
	cur, ok := a.kv.m[key]
	if (oldValue == nil && ok) || (oldValue != nil && (!ok || !bytes.Equal(cur, oldValue))) {
		return false, nil
	}
	a.kv.m[key] = bytes.Clone(newValue)
	return true, nil
}

func (a *testAPI) KVList(page, perPage int) ([]string, *model.AppError) {
	all := a.kv.keys("")
	lo := min(page*perPage, len(all))
	hi := min(lo+perPage, len(all))
	return all[lo:hi], nil
}

func (a *testAPI) log(level, msg string, kv []any) {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	a.logs = append(a.logs, fmt.Sprintf("%s %s %v", level, msg, kv))
}

func (a *testAPI) LogError(msg string, kv ...any) { a.log("ERROR", msg, kv) }
func (a *testAPI) LogWarn(msg string, kv ...any)  { a.log("WARN", msg, kv) }
func (a *testAPI) LogInfo(msg string, kv ...any)  { a.log("INFO", msg, kv) }
func (a *testAPI) LogDebug(msg string, kv ...any) { a.log("DEBUG", msg, kv) }

func (a *testAPI) logged(sub string) int {
	a.logMu.Lock()
	defer a.logMu.Unlock()
	n := 0
	for _, l := range a.logs {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// testPlugin is an activated plugin on a fakeKV.
type testPlugin struct {
	*Plugin
	api *testAPI
	cfg *configuration // what LoadPluginConfiguration returns
	mu  sync.Mutex
}

// newTestPlugin activates a plugin the way Mattermost does:
// OnConfigurationChange, then OnActivate; OnDeactivate at cleanup.
func newTestPlugin(tb testing.TB, kv *fakeKV, cfg configuration) *testPlugin {
	tb.Helper()
	api := &testAPI{API: &plugintest.API{}, kv: kv}
	tp := &testPlugin{api: api, cfg: &cfg}
	api.On("LoadPluginConfiguration", mock.Anything).Return(func(dest any) error {
		tp.mu.Lock()
		defer tp.mu.Unlock()
		*dest.(*configuration) = *tp.cfg
		return nil
	})
	api.On("RegisterCommand", mock.MatchedBy(func(c *model.Command) bool { return c.Trigger == "sealgate" })).Return(nil)
	p := &Plugin{minBackoff: 5 * time.Millisecond, maxBackoff: 50 * time.Millisecond}
	p.SetAPI(api)
	tp.Plugin = p
	if err := p.OnConfigurationChange(); err != nil {
		tb.Fatal(err)
	}
	if err := p.OnActivate(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.OnDeactivate()
		if tb.Failed() {
			api.logMu.Lock()
			for _, l := range api.logs {
				tb.Log(l)
			}
			api.logMu.Unlock()
		}
	})
	return tp
}

// configure changes the settings as the System Console would.
func (tp *testPlugin) configure(tb testing.TB, cfg configuration) {
	tb.Helper()
	tp.mu.Lock()
	*tp.cfg = cfg
	tp.mu.Unlock()
	if err := tp.OnConfigurationChange(); err != nil {
		tb.Fatal(err)
	}
}

// sealgate is a real sealgate gateway (gateway.Server, sealing into a real
// boltstore) behind a handler that records what it accepted.
type sealgate struct {
	store   *boltstore.Store
	keys    *crypto.GatewayKeys
	server  *gateway.Server
	handler http.Handler

	mu        sync.Mutex
	accepted  []json.RawMessage // events of requests answered 200
	fileBytes int64             // content bytes PUT /v1/files/ read from the plugin
	files     int               // PUT /v1/files/ requests
	stored    int
	duplicate int
	requests  int
	refused   int
	gate      chan struct{} // non-nil: requests wait for it to close
	inFlight  chan struct{} // receives when a request reaches the gate
}

func newSealgate(tb testing.TB) *sealgate {
	tb.Helper()
	keys, err := crypto.NewGatewayKeys()
	if err != nil {
		tb.Fatal(err)
	}
	var slots []crypto.Recipient
	for range 3 {
		id, err := crypto.GenerateSlotKey(crypto.KEMX25519)
		if err != nil {
			tb.Fatal(err)
		}
		slots = append(slots, id.Recipient())
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: slots, Quorum: 2, Grace: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(tb.TempDir(), "sealgate.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	srv := &gateway.Server{
		Pipeline:     &gateway.Pipeline{Sealer: sealer, Keys: keys, Store: st},
		Token:        testToken,
		Limits:       gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000},
		MaxBodyBytes: 32 << 20,
		MaxFileBytes: 8 << 20,
		Log:          slog.New(slog.NewJSONHandler(io.Discard, nil)),
	}
	g := &sealgate{store: st, keys: keys, server: srv}
	g.handler = srv.Handler(gateway.NewMetrics(func() float64 { return float64(sealer.Live()) }))
	return g
}

func (g *sealgate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.requests++
	gate, inFlight := g.gate, g.inFlight
	g.mu.Unlock()
	if gate != nil {
		if inFlight != nil {
			select {
			case inFlight <- struct{}{}:
			default:
			}
		}
		<-gate
	}
	if strings.HasPrefix(r.URL.Path, "/v1/files/") {
		// Streamed as sealgate gets it: the handler decides whether to
		// read the body at all (a duplicate is answered without).
		// A shallow copy: the server must keep seeing its own body on the
		// original request, or it cannot tell that 100 Continue was never
		// sent and the client waits out its ExpectContinueTimeout.
		cr := &countingReader{r: r.Body}
		r2 := r.WithContext(r.Context())
		r2.Body = io.NopCloser(cr)
		g.handler.ServeHTTP(w, r2)
		g.mu.Lock()
		g.files++
		g.fileBytes += cr.n
		g.mu.Unlock()
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	g.handler.ServeHTTP(rec, r)
	g.mu.Lock()
	if rec.Code == http.StatusOK && r.URL.Path == "/v1/ingest" {
		var b struct {
			Events []json.RawMessage `json:"events"`
		}
		var ans struct{ Stored, Duplicate int }
		json.Unmarshal(body, &b)
		json.Unmarshal(rec.Body.Bytes(), &ans)
		g.accepted = append(g.accepted, b.Events...)
		g.stored += ans.Stored
		g.duplicate += ans.Duplicate
	} else {
		g.refused++
	}
	g.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// start serves on a fresh loopback port and returns the base URL.
func (g *sealgate) start(tb testing.TB) string {
	hs := httptest.NewServer(g)
	tb.Cleanup(hs.Close)
	return hs.URL
}

// serveAt serves on addr (a port that was free a moment ago).
func (g *sealgate) serveAt(tb testing.TB, addr string) {
	tb.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("listen again on %s: %v", addr, err)
	}
	hs := &http.Server{Handler: g}
	go hs.Serve(ln)
	tb.Cleanup(func() { hs.Close() })
}

func (g *sealgate) records(tb testing.TB) int64 {
	tb.Helper()
	st, err := g.store.Stats(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return st.Records
}

func (g *sealgate) snapshot() (accepted []json.RawMessage, stored, duplicate, refused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]json.RawMessage(nil), g.accepted...), g.stored, g.duplicate, g.refused
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// drained waits until the plugin's buffer is empty.
func drained(tb testing.TB, tp *testPlugin) {
	tb.Helper()
	waitFor(tb, "the queue to drain", 20*time.Second, func() bool {
		return len(tp.api.kv.keys(queuePrefix)) == 0 && tp.activeQueue().pending() == 0
	})
}

// synthPost is a post made now.
func synthPost(i int) *model.Post {
	now := model.GetMillis()
	return &model.Post{
		Id: model.NewId(), UserId: fmt.Sprintf("user%022d", i%7), ChannelId: "chan0000000000000000000000",
		CreateAt: now, UpdateAt: now, Message: fmt.Sprintf("message %d", i), Props: model.StringInterface{},
	}
}
