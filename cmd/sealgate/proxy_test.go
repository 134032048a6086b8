package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/sealgate/sealgate/capture/proxy"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/store/boltstore"
)

// The recorded Mattermost 9.11 traffic stands in for the server behind the
// proxy (see its README for the file format).
const mmFixtures = "../../../shared/fixtures/mattermost-9.11/http"

// The ids and times of the recorded exchanges the tests replay.
const (
	fxAlice       = "g6e8xk8t6t86tjy8nrqyeqmm5c"
	fxTownSquare  = "8s6ug79ctbfp8bm4q1fdjfjxho"
	fxPublicPost  = "xr7brgscspdxmn79rz96hep1gh" // posts-create-public, then posts-patch
	fxDeletedPost = "wreeaewahpfwbdm17prjnwik8r" // posts-create-to-delete, then posts-delete
	fxPrivatePost = "jhf5m8yys3gz9ydn943d9y3sta" // posts-create-private
	fxPublicAt    = 1795346530484
	fxPatchedAt   = 1795346535231
	fxDeletedAt   = 1795346536524
	fxDeleteAt    = 1795346536945 // delete_at of the looked-up deleted post
	fxPrivateAt   = 1795346530907
	fxHook        = "eqgktysrr7gx3b7zabiy3674ca" // the incoming webhook of town-square
	proxyBotToken = "bot-token-for-the-proxy-lookups"
	aliceToken    = "alice-session-token"
)

// fxMessage is one side of a recorded exchange.
type fxMessage struct {
	Method       string            `json:"method"`
	Path         string            `json:"path"`
	Query        string            `json:"query"`
	Status       int               `json:"status"`
	Headers      map[string]string `json:"headers"`
	BodyFormat   string            `json:"body_format"`
	Body         json.RawMessage   `json:"body"`
	BodyTrailing string            `json:"body_trailing"`
}

// wire is the body as it was on the wire: compact JSON plus the trailing
// bytes (Mattermost ends every JSON body in a newline).
func (m *fxMessage) wire(t testing.TB) []byte {
	switch m.BodyFormat {
	case "json":
		var b bytes.Buffer
		if err := json.Compact(&b, m.Body); err != nil {
			t.Fatalf("fixture body: %v", err)
		}
		return append(b.Bytes(), m.BodyTrailing...)
	case "text":
		var s string
		if err := json.Unmarshal(m.Body, &s); err != nil {
			t.Fatalf("fixture body: %v", err)
		}
		return append([]byte(s), m.BodyTrailing...)
	}
	return nil
}

func (m *fxMessage) message(t testing.TB) string {
	var v struct {
		Message string `json:"message"`
	}
	if m.BodyFormat == "json" {
		if err := json.Unmarshal(m.Body, &v); err != nil {
			t.Fatalf("fixture body: %v", err)
		}
	}
	return v.Message
}

type fxExchange struct {
	Request  fxMessage `json:"request"`
	Response fxMessage `json:"response"`
}

func loadFixture(t testing.TB, name string) *fxExchange {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(mmFixtures, name+".json"))
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	var ex fxExchange
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return &ex
}

// sentResponse is what the upstream answered, byte for byte.
type sentResponse struct {
	status int
	header http.Header
	body   []byte
}

// mattermost is the upstream: it answers the post routes, the lookup of a
// deleted post and /users/me with the recorded responses. Like the real
// server it echoes the message it was sent (that is how the test's canary
// reaches the responses the proxy captures); everything else is the
// recording.
type mattermost struct {
	t   *testing.T
	srv *httptest.Server

	creates map[string]*fxExchange // by pending_post_id
	patch   *fxExchange
	delete  *fxExchange
	lookup  *fxExchange
	me      *fxExchange
	hook    *fxExchange // POST /hooks/{id}
	hookGet *fxExchange // the webhook, as GET /api/v4/hooks/incoming/{id} answers

	mu      sync.Mutex
	sent    map[string]sentResponse // by X-Request-Id
	auth    map[string][]string     // Authorization headers seen, by route
	proto   []string                // X-Forwarded-Proto of the proxied requests
	lookups int
	// hookPosts are the posts webhooks created, as the server stores them.
	hookPosts []*model.Post
}

func newMattermost(t *testing.T) *mattermost {
	mm := &mattermost{t: t, creates: map[string]*fxExchange{}, sent: map[string]sentResponse{}, auth: map[string][]string{}}
	for _, name := range []string{"posts-create-public", "posts-create-to-delete", "posts-create-private"} {
		ex := loadFixture(t, name)
		var req struct {
			PendingPostID string `json:"pending_post_id"`
		}
		json.Unmarshal(ex.Request.Body, &req)
		mm.creates[req.PendingPostID] = ex
	}
	mm.patch = loadFixture(t, "posts-patch")
	mm.delete = loadFixture(t, "posts-delete")
	mm.lookup = loadFixture(t, "posts-get-deleted-include-deleted-admin")
	mm.me = loadFixture(t, "users-me")
	mm.hook = loadFixture(t, "hooks-incoming-post")
	mm.hookGet = loadFixture(t, "hooks-incoming-create")
	mm.hookGet.Response.Status = http.StatusOK // recorded as the create's 201
	mm.srv = httptest.NewServer(mm)
	t.Cleanup(mm.srv.Close)
	return mm
}

// The recorded webhook: its creator and its channel.
const (
	fxHookCreator = "s9oiufcdb3dmxrnidfnd46tree"
	fxHookChannel = "8s6ug79ctbfp8bm4q1fdjfjxho"
)

// createHookPost stores the post a webhook request creates, as Mattermost
// does: by the hook's creator, in its channel, marked from_webhook.
func (mm *mattermost) createHookPost(body []byte) {
	var pl struct {
		Text     string `json:"text"`
		Username string `json:"username"`
	}
	json.Unmarshal(body, &pl)
	now := model.GetMillis()
	q := &model.Post{Id: model.NewId(), UserId: fxHookCreator, ChannelId: fxHookChannel, CreateAt: now, UpdateAt: now, Message: pl.Text}
	q.AddProp(model.PostPropsFromWebhook, "true")
	q.AddProp(model.PostPropsOverrideUsername, pl.Username)
	q.AddProp("webhook_display_name", "CI pipeline")
	mm.mu.Lock()
	mm.hookPosts = append(mm.hookPosts, q)
	mm.mu.Unlock()
}

// pending returns the pending_post_id of a recorded create.
func (mm *mattermost) pending(postID string) string {
	for p, ex := range mm.creates {
		if strings.Contains(string(ex.Response.Body), postID) {
			return p
		}
	}
	mm.t.Fatalf("no recorded create of %s", postID)
	return ""
}

func (mm *mattermost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Message       *string `json:"message"`
		PendingPostID string  `json:"pending_post_id"`
	}
	json.Unmarshal(body, &in)
	var ex *fxExchange
	route := r.Method + " " + r.URL.Path
	switch {
	case route == "POST /api/v4/posts":
		ex = mm.creates[in.PendingPostID]
	case route == "PUT "+mm.patch.Request.Path:
		ex = mm.patch
	case route == "DELETE "+mm.delete.Request.Path:
		ex = mm.delete
	case route == "GET "+mm.lookup.Request.Path && r.URL.RawQuery == mm.lookup.Request.Query:
		ex = mm.lookup
		mm.mu.Lock()
		mm.lookups++
		mm.mu.Unlock()
		route = "lookup"
	case route == "GET "+mm.me.Request.Path:
		ex = mm.me
	case route == "POST "+mm.hook.Request.Path:
		ex = mm.hook
		mm.createHookPost(body)
	case r.Method == "GET" && r.URL.Path == "/api/v4/channels/"+fxHookChannel+"/posts" && r.URL.Query().Has("since"):
		// The bot lists the hook's channel to find the post it created.
		mm.mu.Lock()
		mm.auth["lookup"] = append(mm.auth["lookup"], r.Header.Get("Authorization"))
		list := model.NewPostList()
		since, _ := strconv.ParseInt(r.URL.Query().Get("since"), 10, 64)
		for _, q := range mm.hookPosts {
			if q.UpdateAt > since {
				list.AddPost(q)
				list.AddOrder(q.Id)
			}
		}
		mm.mu.Unlock()
		if scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " "); !strings.EqualFold(scheme, "bearer") || token != proxyBotToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
		return
	case route == "GET "+mm.hookGet.Request.Path+"/"+fxHook:
		ex = mm.hookGet
		route = "lookup"
	}
	mm.mu.Lock()
	mm.auth[route] = append(mm.auth[route], r.Header.Get("Authorization"))
	if route != "lookup" {
		mm.proto = append(mm.proto, r.Header.Get("X-Forwarded-Proto"))
	}
	mm.mu.Unlock()
	// Mattermost takes the scheme in any case; Client4 sends "BEARER".
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if ex == nil || (route == "lookup" && (!strings.EqualFold(scheme, "bearer") || token != proxyBotToken)) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"id":"test.no_fixture","message":"no recorded exchange","status_code":404}`+"\n")
		return
	}
	out := ex.Response.wire(mm.t)
	if in.Message != nil && r.Method != "GET" {
		// Echo the message sent, as Mattermost does, in place of the
		// recorded one.
		old, _ := json.Marshal(ex.Request.message(mm.t))
		now, _ := json.Marshal(*in.Message)
		out = bytes.Replace(out, old, now, 1)
	}
	h := w.Header()
	for k, v := range ex.Response.Headers {
		if k != "Content-Length" {
			h[k] = []string{v}
		}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(out))}
	h["Date"] = []string{"Sun, 22 Nov 2026 11:22:10 GMT"}
	mm.mu.Lock()
	mm.sent[h.Get("X-Request-Id")] = sentResponse{status: ex.Response.Status, header: h.Clone(), body: out}
	mm.mu.Unlock()
	w.WriteHeader(ex.Response.Status)
	w.Write(out)
}

// received records the responses as the client got them off the wire.
type received struct {
	rt http.RoundTripper
	mu sync.Mutex
	by map[string]sentResponse // by X-Request-Id
}

func (rc *received) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := rc.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	rc.mu.Lock()
	rc.by[resp.Header.Get("X-Request-Id")] = sentResponse{status: resp.StatusCode, header: resp.Header.Clone(), body: body}
	rc.mu.Unlock()
	return resp, nil
}

// checkUnchanged fails unless the client got exactly what the upstream
// sent for the exchange: status, every header, the body's bytes.
func checkUnchanged(t *testing.T, mm *mattermost, rc *received, resp *model.Response) {
	t.Helper()
	if resp == nil || resp.RequestId == "" {
		t.Fatalf("no response or no request id: %+v", resp)
	}
	mm.mu.Lock()
	want, ok := mm.sent[resp.RequestId]
	mm.mu.Unlock()
	rc.mu.Lock()
	got := rc.by[resp.RequestId]
	rc.mu.Unlock()
	if !ok {
		t.Fatalf("upstream never answered %s", resp.RequestId)
	}
	if got.status != want.status || !bytes.Equal(got.body, want.body) {
		t.Errorf("%s: client got %d %q, upstream sent %d %q", resp.RequestId, got.status, got.body, want.status, want.body)
	}
	if fmt.Sprint(got.header) != fmt.Sprint(want.header) {
		t.Errorf("%s: client got headers\n%v\nupstream sent\n%v", resp.RequestId, got.header, want.header)
	}
}

// proxyDeployment is a `sealgate init` deployment with the proxy on in
// front of mm and a real redis-server.
func proxyDeployment(t *testing.T, mm *mattermost, edit func(dep string, c *config.Config)) *config.Config {
	t.Helper()
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	dep := filepath.Join(t.TempDir(), "dep")
	if _, err := sealgate(t, carol, "init", "--dir", dep, "--approvers", "3", "--quorum", "2", "--kem", "x25519"); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dep, "sealgate.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rs := testredis.Start(t)
	cfg.Redis.Addr = rs.Addr()
	cfg.Listen.Admin = addr(t)
	cfg.Proxy.Listen, cfg.Proxy.Upstream = addr(t), mm.srv.URL
	cfg.Mattermost.URL, cfg.Mattermost.BotToken = mm.srv.URL, proxyBotToken
	if edit != nil {
		edit(dep, cfg)
	}
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// served is one run of serveConfig.
type served struct {
	cancel    context.CancelFunc
	done      chan error
	out, logs lockedBuffer
}

func startServe(t *testing.T, cfg *config.Config) *served {
	t.Helper()
	s := &served{done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- serveConfig(ctx, cfg, &s.out, &s.logs) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	waitServing(t, "http://"+cfg.Listen.Admin+"/healthz", s.done)
	if !strings.Contains(s.out.String(), "proxy on "+cfg.Proxy.Listen) {
		t.Fatalf("serve did not say it runs the proxy: %q", s.out.String())
	}
	return s
}

// stop ends the run and returns what it logged.
func (s *served) stop(t *testing.T) string {
	t.Helper()
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	s.done <- nil // for the cleanup
	return s.logs.String()
}

// metric reads one sample from /metrics ("name" or `name{label="v"}`).
func metric(t *testing.T, cfg *config.Config, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + cfg.Listen.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sample, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", sample)
	return 0
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// wantRecord is a record the store must hold, by its ref.
type wantRecord struct {
	postID  string
	kind    crypto.Kind
	version int64
}

// checkStored opens the store serve left behind and checks that it holds
// exactly the records in want.
func checkStored(t *testing.T, cfg *config.Config, want []wantRecord) {
	t.Helper()
	s := openRcStore(t, cfg)
	defer s.st.Close()
	if n := s.records(); n != int64(len(want)) {
		t.Errorf("store holds %d records, want %d", n, len(want))
	}
	for _, w := range want {
		if !s.has(w.postID, w.kind, w.version) {
			t.Errorf("record of %s kind %d version %d not stored", w.postID, w.kind, w.version)
		}
	}
}

// spoolPending opens the spool serve left behind and counts its events.
func spoolPending(t *testing.T, cfg *config.Config) int64 {
	t.Helper()
	sp := openTestSpool(t, cfg)
	defer sp.Close()
	return sp.Pending()
}

func openTestSpool(t *testing.T, cfg *config.Config) *proxy.Spool {
	t.Helper()
	keys, err := readGatewayKeys(cfg.Path(cfg.GatewayKeys))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := keys.AEAD(spoolPurpose)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := proxy.OpenSpool(cfg.Path(cfg.Proxy.SpoolDir), aead, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// checkNoCanary scans every file of the deployment (store, spool, keys,
// config) and the given outputs for the canary.
func checkNoCanary(t *testing.T, cfg *config.Config, canary string, outputs map[string]string) {
	t.Helper()
	dep := filepath.Dir(cfg.Path(cfg.GatewayKeys))
	hits, scanned, err := privacyscan.Dir(dep, []string{canary})
	if err != nil || scanned == 0 {
		t.Fatalf("scan: %v, %d bytes", err, scanned)
	}
	if _, err := os.Stat(cfg.Path(cfg.Proxy.SpoolDir)); err != nil {
		t.Fatalf("no spool directory: %v", err)
	}
	for where, s := range outputs {
		hits = append(hits, privacyscan.Bytes(where, []byte(s), []string{canary})...)
	}
	for _, h := range hits {
		t.Errorf("in clear: %s", h)
	}
}

func newCanary(t *testing.T) string {
	b := make([]byte, 8)
	rand.Read(b)
	return "CANARY-proxy-" + hex.EncodeToString(b)
}

// TestServeProxy: serve with the proxy on in front of (recorded)
// Mattermost. model.Client4 creates, edits and deletes posts through it:
// every response reaches the client exactly as the upstream sent it, each
// event is sealed into the store exactly once (a re-sent create adds
// nothing), the deleted post's author comes from a lookup with the bot's
// token, and the canary in the messages is nowhere in clear.
func TestServeProxy(t *testing.T) {
	mm := newMattermost(t)
	cfg := proxyDeployment(t, mm, nil)
	s := startServe(t, cfg)
	canary := newCanary(t)

	rc := &received{rt: http.DefaultTransport.(*http.Transport).Clone(), by: map[string]sentResponse{}}
	c := model.NewAPIv4Client("http://" + cfg.Proxy.Listen)
	c.SetToken(aliceToken)
	c.HTTPClient = &http.Client{Transport: rc}
	ctx := context.Background()

	me, resp, err := c.GetMe(ctx, "")
	if err != nil || me.Id != fxAlice {
		t.Fatalf("GetMe through the proxy: %v, %+v", err, me)
	}
	checkUnchanged(t, mm, rc, resp)

	create := &model.Post{ChannelId: fxTownSquare, UserId: fxAlice, Message: canary + " the weekly sync starts at 10:00",
		PendingPostId: mm.pending(fxPublicPost)}
	post, resp, err := c.CreatePost(ctx, create)
	if err != nil || resp.StatusCode != http.StatusCreated || post.Id != fxPublicPost || post.Message != create.Message {
		t.Fatalf("CreatePost: %v, %+v, %+v", err, resp, post)
	}
	checkUnchanged(t, mm, rc, resp)

	edited := canary + " the weekly sync starts at 10:30 (moved)"
	post, resp, err = c.PatchPost(ctx, fxPublicPost, &model.PostPatch{Message: &edited})
	if err != nil || resp.StatusCode != http.StatusOK || post.Message != edited || post.EditAt != fxPatchedAt {
		t.Fatalf("PatchPost: %v, %+v, %+v", err, resp, post)
	}
	checkUnchanged(t, mm, rc, resp)

	doomed := &model.Post{ChannelId: fxTownSquare, UserId: fxAlice, Message: canary + " oops, wrong channel",
		PendingPostId: mm.pending(fxDeletedPost)}
	post, resp, err = c.CreatePost(ctx, doomed)
	if err != nil || post.Id != fxDeletedPost {
		t.Fatalf("CreatePost: %v, %+v", err, post)
	}
	checkUnchanged(t, mm, rc, resp)
	resp, err = c.DeletePost(ctx, fxDeletedPost)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DeletePost: %v, %+v", err, resp)
	}
	checkUnchanged(t, mm, rc, resp)

	// A client retrying its create (same pending_post_id) gets the same
	// post from Mattermost: the proxy captures it again, the store keeps
	// one.
	if _, resp, err = c.CreatePost(ctx, create); err != nil {
		t.Fatal(err)
	}
	checkUnchanged(t, mm, rc, resp)

	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", s.logs.String())
			mm.mu.Lock()
			t.Logf("upstream saw %v", mm.auth)
			mm.mu.Unlock()
		}
	}()
	eventually(t, "5 captures delivered", func() bool {
		return metric(t, cfg, `sealgate_proxy_events_total{outcome="captured"}`) == 5 &&
			metric(t, cfg, `sealgate_proxy_sink_events_total{outcome="delivered"}`) == 5
	})
	if n := metric(t, cfg, "sealgate_proxy_spool_pending"); n != 0 {
		t.Errorf("spool holds %v events", n)
	}
	metrics := func() string {
		r, err := http.Get("http://" + cfg.Listen.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return string(b)
	}()
	logs := s.stop(t)

	checkStored(t, cfg, []wantRecord{
		{fxPublicPost, crypto.KindPosted, fxPublicAt},
		{fxPublicPost, crypto.KindEdited, fxPatchedAt},
		{fxDeletedPost, crypto.KindPosted, fxDeletedAt},
		{fxDeletedPost, crypto.KindDeleted, gateway.TombstoneVersion},
	})
	if n := spoolPending(t, cfg); n != 0 {
		t.Errorf("spool holds %d events after a clean stop", n)
	}
	if _, err := os.Stat(filepath.Join(cfg.Path(cfg.Proxy.SpoolDir), "dead")); err == nil {
		t.Error("events went to the dead letters")
	}
	mm.mu.Lock()
	lookups, auth := mm.lookups, mm.auth
	mm.mu.Unlock()
	if lookups != 1 {
		t.Errorf("deleted post looked up %d times, want 1", lookups)
	}
	for route, seen := range auth {
		want := model.HeaderBearer + " " + aliceToken
		if route == "lookup" {
			want = model.HeaderBearer + " " + proxyBotToken
		}
		for _, a := range seen {
			if a != want {
				t.Errorf("%s: upstream saw Authorization %q, want %q", route, a, want)
			}
		}
	}
	checkNoCanary(t, cfg, canary, map[string]string{"log": logs, "stdout": s.out.String(), "metrics": metrics})
}

// capturedEvent is a posted event as the proxy builds it from a create's
// response (see the capture/proxy package doc).
func capturedEvent(t *testing.T, ex *fxExchange, message string) []byte {
	out := ex.Response.wire(t)
	old, _ := json.Marshal(ex.Request.message(t))
	now, _ := json.Marshal(message)
	out = bytes.TrimSpace(bytes.Replace(out, old, now, 1))
	id, _ := json.Marshal(ex.Response.Headers["X-Request-Id"])
	return []byte(`{"kind":"posted","request_id":` + string(id) + `,"post":` + string(out) + `}`)
}

// TestServeProxyRestart: serve stopped right after the requests and started
// again on the same configuration stores every event exactly once: what
// the first run had not stored yet waits in the encrypted spool and is
// replayed by the second. The spool is also handed what a crashed run
// leaves: an event never stored and one stored already; the second run
// stores the first and not the second again.
func TestServeProxyRestart(t *testing.T) {
	mm := newMattermost(t)
	cfg := proxyDeployment(t, mm, nil)
	canary := newCanary(t)

	s := startServe(t, cfg)
	c := model.NewAPIv4Client("http://" + cfg.Proxy.Listen)
	c.SetToken(aliceToken)
	ctx := context.Background()
	for _, p := range []*model.Post{
		{ChannelId: fxTownSquare, UserId: fxAlice, Message: canary + " first", PendingPostId: mm.pending(fxPublicPost)},
		{ChannelId: fxTownSquare, UserId: fxAlice, Message: canary + " doomed", PendingPostId: mm.pending(fxDeletedPost)},
	} {
		if _, _, err := c.CreatePost(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	edited := canary + " edited"
	if _, _, err := c.PatchPost(ctx, fxPublicPost, &model.PostPatch{Message: &edited}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeletePost(ctx, fxDeletedPost); err != nil {
		t.Fatal(err)
	}
	logs1 := s.stop(t)

	st, err := boltstore.Open(cfg.Path(cfg.Store.Path))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats(ctx)
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	pending := spoolPending(t, cfg)
	if stats.Records+pending != 4 {
		t.Fatalf("after the first run: %d records stored and %d events spooled, want 4 in all", stats.Records, pending)
	}
	t.Logf("first run: %d events stored, %d left in the spool", stats.Records, pending)

	sp := openTestSpool(t, cfg)
	fresh := capturedEvent(t, mm.creates[mm.pending(fxPrivatePost)], canary+" never stored")
	again := capturedEvent(t, mm.creates[mm.pending(fxPublicPost)], canary+" first")
	if err := sp.Append([][]byte{fresh, again}); err != nil {
		t.Fatal(err)
	}
	sp.Close()

	// Fresh ports: another test's server may have taken the old ones.
	cfg.Listen.Admin, cfg.Proxy.Listen = addr(t), addr(t)
	s = startServe(t, cfg)
	eventually(t, "the spool replayed", func() bool { return metric(t, cfg, "sealgate_proxy_spool_pending") == 0 })
	logs2 := s.stop(t)

	checkStored(t, cfg, []wantRecord{
		{fxPublicPost, crypto.KindPosted, fxPublicAt},
		{fxPublicPost, crypto.KindEdited, fxPatchedAt},
		{fxDeletedPost, crypto.KindPosted, fxDeletedAt},
		{fxDeletedPost, crypto.KindDeleted, gateway.TombstoneVersion},
		{fxPrivatePost, crypto.KindPosted, fxPrivateAt},
	})
	if n := spoolPending(t, cfg); n != 0 {
		t.Errorf("spool holds %d events after the replay", n)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.Path(cfg.Proxy.SpoolDir), "*.seg"))
	if len(segs) != 0 {
		t.Errorf("spool segments left after the replay: %v", segs)
	}
	if !strings.Contains(logs2, "replaying") {
		t.Errorf("second run did not say it replays the spool")
	}
	checkNoCanary(t, cfg, canary, map[string]string{"log 1": logs1, "log 2": logs2})
}

// TestServeProxyTLS: with proxy.cert_file and proxy.key_file the proxy
// speaks TLS to its clients and tells Mattermost so (X-Forwarded-Proto).
func TestServeProxyTLS(t *testing.T) {
	mm := newMattermost(t)
	var roots *x509.CertPool
	cfg := proxyDeployment(t, mm, func(dep string, c *config.Config) {
		roots = writeCert(t, dep)
		c.Proxy.CertFile, c.Proxy.KeyFile = "intake.crt", "intake.key"
	})
	startServe(t, cfg)
	c := model.NewAPIv4Client("https://" + cfg.Proxy.Listen)
	c.SetToken(aliceToken)
	c.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}}
	canary := newCanary(t)
	post, resp, err := c.CreatePost(context.Background(), &model.Post{ChannelId: fxTownSquare, UserId: fxAlice,
		Message: canary, PendingPostId: mm.pending(fxPublicPost)})
	if err != nil || resp.StatusCode != http.StatusCreated || post.Message != canary {
		t.Fatalf("CreatePost over TLS: %v, %+v", err, post)
	}
	eventually(t, "the capture delivered", func() bool {
		return metric(t, cfg, `sealgate_proxy_sink_events_total{outcome="delivered"}`) == 1
	})
	mm.mu.Lock()
	proto := mm.proto
	mm.mu.Unlock()
	if len(proto) != 1 || proto[0] != "https" {
		t.Errorf("X-Forwarded-Proto %q, want https", proto)
	}
}

// TestServeProxyWebhook: a post through an incoming webhook passes the
// proxy unchanged. Mattermost's answer ("ok") names no post, so the proxy
// finds the post the hook created by listing the hook's channel with the
// bot's token, and stores it under its real id: the plugin's copy of the
// same post, sent to /v1/ingest afterwards, is a duplicate.
func TestServeProxyWebhook(t *testing.T) {
	mm := newMattermost(t)
	cfg := proxyDeployment(t, mm, nil)
	s := startServe(t, cfg)
	canary := newCanary(t)
	rc := &received{rt: http.DefaultTransport.(*http.Transport).Clone(), by: map[string]sentResponse{}}
	hc := &http.Client{Transport: rc}
	resp, err := hc.Post("http://"+cfg.Proxy.Listen+"/hooks/"+fxHook, "application/json",
		strings.NewReader(`{"text": "`+canary+` build passed", "username": "ci"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	checkUnchanged(t, mm, rc, model.BuildResponse(resp))
	eventually(t, "the webhook's post stored", func() bool {
		return metric(t, cfg, `sealgate_proxy_sink_events_total{outcome="delivered"}`) == 1
	})
	if n := metric(t, cfg, `sealgate_proxy_events_total{outcome="webhook_resolved"}`); n != 1 {
		t.Errorf("%v webhook posts resolved, want 1", n)
	}
	mm.mu.Lock()
	if len(mm.hookPosts) != 1 {
		t.Fatalf("%d webhook posts created", len(mm.hookPosts))
	}
	post := mm.hookPosts[0].Clone()
	lookups := append([]string(nil), mm.auth["lookup"]...)
	mm.mu.Unlock()
	for _, a := range lookups {
		if a != model.HeaderBearer+" "+proxyBotToken {
			t.Errorf("a lookup without the bot's token: %q", a)
		}
	}
	if len(lookups) != 2 { // the hook, then its channel's posts
		t.Errorf("%d lookups, want 2", len(lookups))
	}

	// The plugin's copy of the same post: nothing new is stored.
	raw, _ := json.Marshal(map[string]any{"events": []any{map[string]any{"kind": "posted", "post": post, "request_id": resp.Header.Get("X-Request-Id")}}})
	req, _ := http.NewRequest(http.MethodPost, "http://"+cfg.Listen.Admin+"/v1/ingest", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+cfg.IngestToken)
	ir, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]int
	json.NewDecoder(ir.Body).Decode(&res)
	ir.Body.Close()
	if ir.StatusCode != http.StatusOK || res["stored"] != 0 || res["duplicate"] != 1 {
		t.Fatalf("the plugin's copy: %d %v, want a duplicate", ir.StatusCode, res)
	}
	logs := s.stop(t)
	checkStored(t, cfg, []wantRecord{{post.Id, crypto.KindPosted, post.CreateAt}})
	if _, err := os.Stat(filepath.Join(cfg.Path(cfg.Proxy.SpoolDir), "dead")); err == nil {
		t.Error("a dead letter was written")
	}
	checkNoCanary(t, cfg, canary, map[string]string{"log": logs})
}
