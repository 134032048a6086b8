package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
)

const (
	hookID         = "eqgktysrr7gx3b7zabiy3674ca"
	adminID        = "s9oiufcdb3dmxrnidfnd46tree"
	townSquareID   = "8s6ug79ctbfp8bm4q1fdjfjxho"
	deletedPostID  = "wreeaewahpfwbdm17prjnwik8r"
	deletedRootID  = "3bjzjpsuwjdb8b93m6x9csxx8h"
	fixtureNowMsec = 1795346545000 // a little after the recording
)

func newClient(base string) (*model.Client4, *recorder) {
	c := model.NewAPIv4Client(base)
	rec := &recorder{rt: &http.Transport{DisableCompression: true}}
	c.HTTPClient = &http.Client{Transport: rec}
	c.SetToken("REDACTED")
	return c, rec
}

// fastLookups shortens the lookup retries for a test.
func fastLookups(t *testing.T) {
	old := lookupBackoff
	lookupBackoff = []time.Duration{0, time.Millisecond, 2 * time.Millisecond}
	t.Cleanup(func() { lookupBackoff = old })
}

// fixtureUpstream serves the recorded exchanges, plus GET of the incoming
// webhook (not recorded: the create response is the same object).
func fixtureUpstream(t *testing.T) (*replay, *httptest.Server) {
	hookCreate := loadExchange(t, "hooks-incoming-create")
	rp := &replay{t: t, exs: loadAllExchanges(t)}
	rp.ws = wsServer(t, loadFrames(t, "bob", "server->client"))
	rp.extra = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "GET" && r.URL.Path == "/api/v4/hooks/incoming/"+hookID {
			m := hookCreate.Response
			m.Status = 200
			writeRecorded(t, w, &m)
			return true
		}
		return false
	}
	up := httptest.NewServer(rp)
	t.Cleanup(up.Close)
	return rp, up
}

func mustURL(t testing.TB, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// collector gathers captured events.
type collector struct{ ch chan []byte }

func newCollector() *collector         { return &collector{ch: make(chan []byte, 1000)} }
func (c *collector) capture(ev []byte) { c.ch <- ev }
func (c *collector) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	var out [][]byte
	deadline := time.After(15 * time.Second)
	for len(out) < n {
		select {
		case ev := <-c.ch:
			out = append(out, ev)
		case <-deadline:
			t.Fatalf("captured %d events, want %d", len(out), n)
		}
	}
	select {
	case ev := <-c.ch:
		t.Fatalf("an extra event was captured: %.200s", ev)
	case <-time.After(200 * time.Millisecond):
	}
	return out
}

func sameResponse(t *testing.T, step string, direct, via recorded) {
	t.Helper()
	if direct.Status == 0 || via.Status == 0 {
		t.Fatalf("%s: no response recorded (direct %d, via %d)", step, direct.Status, via.Status)
	}
	if direct.Status != via.Status {
		t.Errorf("%s: status direct %d, via proxy %d", step, direct.Status, via.Status)
	}
	if !bytes.Equal(direct.Body, via.Body) {
		t.Errorf("%s: body differs:\ndirect %.300q\nvia    %.300q", step, direct.Body, via.Body)
	}
	dh, vh := direct.Header.Clone(), via.Header.Clone()
	dh.Del("Date")
	vh.Del("Date")
	if !reflect.DeepEqual(dh, vh) {
		t.Errorf("%s: headers differ:\ndirect %v\nvia    %v", step, dh, vh)
	}
}

// TestCaptureThroughProxy drives the recorded scenario through the proxy
// with Mattermost's own Go client and checks that the client sees exactly
// what it sees directly, and that exactly the right events are captured.
func TestCaptureThroughProxy(t *testing.T) { forModes(t, testCaptureThroughProxy) }

func testCaptureThroughProxy(t *testing.T, mode string) {
	fastLookups(t)
	rp, up := fixtureUpstream(t)
	admin := model.NewAPIv4Client(up.URL)
	admin.SetToken("REDACTED")
	col := newCollector()
	p := &Proxy{
		Upstream: mustURL(t, up.URL),
		Capture:  col.capture,
		PostLookup: func(ctx context.Context, id string) (*model.Post, error) {
			post, _, err := admin.GetPostIncludeDeleted(ctx, id, "")
			return post, err
		},
		HookLookup: func(ctx context.Context, id string) (*model.IncomingWebhook, error) {
			h, _, err := admin.GetIncomingWebhook(ctx, id, "")
			return h, err
		},
	}
	base, _ := startProxy(t, mode, p)
	defer p.Close(context.Background())

	direct, dRec := newClient(up.URL)
	via, vRec := newClient(base)
	ctx := context.Background()
	step := func(name string, call func(c *model.Client4) error) {
		t.Helper()
		errD := call(direct)
		rd := dRec.take()
		errV := call(via)
		rv := vRec.take()
		if (errD == nil) != (errV == nil) {
			t.Errorf("%s: direct error %v, via proxy error %v", name, errD, errV)
		}
		sameResponse(t, name, rd, rv)
	}

	type want struct {
		kind    crypto.Kind
		id      string
		version int64
	}
	var wants []want
	var webhookRequestIDs []string

	// Passthrough only.
	step("login", func(c *model.Client4) error { _, _, err := c.Login(ctx, "alice", "REDACTED"); return err })
	step("me", func(c *model.Client4) error { _, _, err := c.GetMe(ctx, ""); return err })
	step("since", func(c *model.Client4) error {
		r, err := c.DoAPIGet(ctx, "/channels/"+townSquareID+"/posts?since=1795346529680", "")
		if r != nil {
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
		}
		return err
	})

	// Creates, including refused ones (nothing captured for those).
	creates, _ := filepath.Glob(filepath.Join(fixtureDir, "http", "posts-create-*.json"))
	creates = append(creates, filepath.Join(fixtureDir, "http", "bots-posts-create-dm.json"))
	for _, f := range creates {
		ex := loadExchange(t, strings.TrimSuffix(filepath.Base(f), ".json"))
		if ex.Request.BodyFormat != "json" {
			continue // the malformed body is not something Client4 sends
		}
		var post model.Post
		if err := json.Unmarshal(ex.Request.Body, &post); err != nil {
			t.Fatalf("%s: %v", ex.Name, err)
		}
		step(ex.Name, func(c *model.Client4) error { _, _, err := c.CreatePost(ctx, &post); return err })
		if ex.Response.Status == 201 {
			var rp model.Post
			json.Unmarshal(ex.Response.Body, &rp)
			wants = append(wants, want{crypto.KindPosted, rp.Id, rp.UpdateAt})
		}
	}
	// The malformed one, raw through Client4.
	bad := loadExchange(t, "posts-create-400-malformed-json")
	step(bad.Name, func(c *model.Client4) error {
		r, err := c.DoAPIPost(ctx, "/posts", string(bad.Request.wire(t)))
		if r != nil {
			r.Body.Close()
		}
		return err
	})

	// Edits.
	for _, name := range []string{"posts-patch", "posts-patch-second"} {
		ex := loadExchange(t, name)
		var patch model.PostPatch
		json.Unmarshal(ex.Request.Body, &patch)
		id := strings.Split(ex.Request.Path, "/")[4]
		step(name, func(c *model.Client4) error { _, _, err := c.PatchPost(ctx, id, &patch); return err })
		var rp model.Post
		json.Unmarshal(ex.Response.Body, &rp)
		wants = append(wants, want{crypto.KindEdited, rp.Id, max(rp.UpdateAt, rp.EditAt)})
	}
	upd := loadExchange(t, "posts-update")
	var updPost model.Post
	json.Unmarshal(upd.Request.Body, &updPost)
	step(upd.Name, func(c *model.Client4) error { _, _, err := c.UpdatePost(ctx, updPost.Id, &updPost); return err })
	var updResp model.Post
	json.Unmarshal(upd.Response.Body, &updResp)
	wants = append(wants, want{crypto.KindEdited, updResp.Id, max(updResp.UpdateAt, updResp.EditAt)})

	// Not captured: ephemeral posts are never stored.
	eph := loadExchange(t, "posts-ephemeral-admin")
	var ephReq model.PostEphemeral
	json.Unmarshal(eph.Request.Body, &ephReq)
	step(eph.Name, func(c *model.Client4) error { _, _, err := c.CreatePostEphemeral(ctx, &ephReq); return err })

	// Deletes: the author comes from PostLookup after the fact.
	var deletedAt model.Post
	json.Unmarshal(loadExchange(t, "posts-get-deleted-include-deleted-admin").Response.Body, &deletedAt)
	step("posts-delete", func(c *model.Client4) error { _, err := c.DeletePost(ctx, deletedPostID); return err })
	wants = append(wants, want{crypto.KindDeleted, deletedPostID, gateway.TombstoneVersion})
	beforeRootDelete := time.Now().UnixMilli()
	step("posts-delete-thread-root", func(c *model.Client4) error { _, err := c.DeletePost(ctx, deletedRootID); return err })

	// Webhooks: JSON and form, posted the way integrations do.
	for _, name := range []string{"hooks-incoming-post", "hooks-incoming-post-form"} {
		ex := loadExchange(t, name)
		body := ex.Request.wire(t)
		ct := ex.Request.Headers["Content-Type"]
		step(name, func(c *model.Client4) error {
			r, err := c.HTTPClient.Post(c.URL+ex.Request.Path, ct, bytes.NewReader(body))
			if err == nil {
				r.Body.Close()
			}
			return err
		})
		webhookRequestIDs = append(webhookRequestIDs, ex.Response.Headers["X-Request-Id"])
	}

	// Every proxied request reached the upstream with X-Forwarded-* set and
	// nothing else changed; direct ones without them.
	var proxied int
	for _, s := range rp.requests() {
		if xff := s.Header.Get("X-Forwarded-For"); xff != "" {
			proxied++
			if xff != "127.0.0.1" || s.Header.Get("X-Forwarded-Proto") != "http" {
				t.Errorf("%s %s: X-Forwarded-For %q, -Proto %q", s.Method, s.Path, xff, s.Header.Get("X-Forwarded-Proto"))
			}
		}
	}
	if proxied == 0 {
		t.Error("no request reached the upstream through the proxy")
	}

	events := col.wait(t, len(wants)+1+len(webhookRequestIDs))
	t.Logf("%d events, %d expected through the gateway parser, %d proxied requests", len(events), len(wants), proxied)

	// Sort the events out: webhook posts (no post id, linked by request
	// id), the delete whose lookup found nothing, and the rest, which the
	// gateway's own parser must accept.
	var ingest [][]byte
	var hooks []map[string]any
	var bare []map[string]any
	for _, ev := range events {
		var m map[string]any
		if err := json.Unmarshal(ev, &m); err != nil {
			t.Fatalf("event is not JSON: %v", err)
		}
		switch {
		case m["webhook"] != nil:
			hooks = append(hooks, m)
		case m["kind"] == "deleted" && m["post"].(map[string]any)["user_id"] == nil:
			bare = append(bare, m)
		default:
			ingest = append(ingest, ev)
		}
	}
	batch, _ := json.Marshal(map[string]any{"events": rawMessages(ingest)})
	parsed, err := gateway.ParseBatch(batch, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, time.UnixMilli(fixtureNowMsec))
	if err != nil {
		t.Fatalf("gateway refuses the captured events: %v", err)
	}
	var gotW []want
	for _, e := range parsed {
		gotW = append(gotW, want{e.Kind, e.PostID, e.Version})
	}
	less := func(a, b want) int {
		return strings.Compare(fmt.Sprint(a.kind, a.id, a.version), fmt.Sprint(b.kind, b.id, b.version))
	}
	slices.SortFunc(gotW, less)
	slices.SortFunc(wants, less)
	if !reflect.DeepEqual(gotW, wants) {
		t.Errorf("captured events:\n got %v\nwant %v", gotW, wants)
	}
	// The created posts are captured byte for byte as the client got them.
	for _, ev := range ingest {
		var w struct {
			Kind      string          `json:"kind"`
			RequestID string          `json:"request_id"`
			Post      json.RawMessage `json:"post"`
		}
		json.Unmarshal(ev, &w)
		if w.RequestID == "" {
			t.Errorf("%s event without request_id", w.Kind)
		}
	}

	// The delete whose post the lookup cannot find carries what is known.
	if len(bare) != 1 {
		t.Fatalf("want one delete without author, got %d", len(bare))
	}
	if id := bare[0]["post"].(map[string]any)["id"]; id != deletedRootID {
		t.Errorf("bare delete of %v", id)
	}
	if at := int64(bare[0]["deleted_at"].(float64)); at < beforeRootDelete || at > time.Now().UnixMilli() {
		t.Errorf("deleted_at %d not stamped at the response", at)
	}
	if st := p.Stats(); mode == "serve" && (st.FastPath < 25 || st.HandedOff != 0) {
		t.Errorf("fast path not taken: %+v", st)
	}
	if p.Stats().LookupFailed != 1 {
		t.Errorf("stats %+v", p.Stats())
	}

	// Webhook posts match what the plugin saw, linked through request_id.
	plugin := pluginPostsByRequest(t)
	if len(hooks) != 2 {
		t.Fatalf("want 2 webhook events, got %d", len(hooks))
	}
	for _, h := range hooks {
		rid, _ := h["request_id"].(string)
		if !slices.Contains(webhookRequestIDs, rid) {
			t.Errorf("webhook event request_id %q", rid)
			continue
		}
		pp, ok := plugin[rid]
		if !ok {
			t.Errorf("no plugin post for request %s", rid)
			continue
		}
		post := h["post"].(map[string]any)
		for _, k := range []string{"user_id", "channel_id", "message", "props"} {
			if !reflect.DeepEqual(post[k], pp[k]) {
				t.Errorf("webhook %s: %s = %v, plugin saw %v", rid, k, post[k], pp[k])
			}
		}
		if h["webhook"].(map[string]any)["hook_id"] != hookID || h["kind"] != "posted" {
			t.Errorf("webhook event %v", h)
		}
	}
}

func rawMessages(evs [][]byte) []json.RawMessage {
	out := make([]json.RawMessage, len(evs))
	for i, e := range evs {
		out[i] = e
	}
	return out
}

// pluginPostsByRequest maps RequestId to the post the capture plugin got.
func pluginPostsByRequest(t *testing.T) map[string]map[string]any {
	f, err := os.Open(filepath.Join(fixtureDir, "plugin-hooks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Context struct{ RequestId string }
			Post    map[string]any `json:"post"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.Post != nil {
			out[l.Context.RequestId] = l.Post
		}
	}
	return out
}

// The ways to run the proxy: Serve (the fast path, net/http for the rest),
// as an http.Handler in a net/http server (lean upstream client), and as a
// handler with a Transport set (everything through the Transport).
var modes = []string{"serve", "handler", "transport"}

func forModes(t *testing.T, test func(t *testing.T, mode string)) {
	for _, m := range modes {
		t.Run(m, func(t *testing.T) { test(t, m) })
	}
}

// startProxy serves p as mode says and returns its base URL and address.
func startProxy(t *testing.T, mode string, p *Proxy) (base, addr string) {
	t.Helper()
	switch mode {
	case "serve":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- p.Serve(ln) }()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Shutdown(ctx)
			if err := <-done; err != http.ErrServerClosed {
				t.Errorf("Serve: %v", err)
			}
		})
		return "http://" + ln.Addr().String(), ln.Addr().String()
	case "transport":
		p.Transport = NewTransport()
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL, srv.Listener.Addr().String()
}
