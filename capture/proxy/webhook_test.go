package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/sealgate/sealgate/gateway"
)

// recordedHookPosts returns the posts the recorded webhooks created, as the
// plugin saw them, by request id, and the latest create_at among them.
func recordedHookPosts(t *testing.T) (map[string]*model.Post, int64) {
	out := map[string]*model.Post{}
	var latest int64
	for rid, m := range pluginPostsByRequest(t) {
		raw, _ := json.Marshal(m)
		var p model.Post
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		if p.GetProp(model.PostPropsFromWebhook) == "true" {
			out[rid] = &p
			latest = max(latest, p.CreateAt)
		}
	}
	if len(out) != 2 {
		t.Fatalf("%d recorded webhook posts, want 2", len(out))
	}
	return out, latest
}

// sendHooks posts the two recorded webhook requests through the proxy and
// returns their request ids.
func sendHooks(t *testing.T, base string) []string {
	var rids []string
	for _, name := range []string{"hooks-incoming-post", "hooks-incoming-post-form"} {
		ex := loadExchange(t, name)
		resp, err := http.Post(base+ex.Request.Path, ex.Request.Headers["Content-Type"], bytes.NewReader(ex.Request.wire(t)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		rids = append(rids, ex.Response.Headers["X-Request-Id"])
	}
	return rids
}

// TestWebhookPostResolved: with WebhookPosts, the proxy finds the post each
// webhook request created — among a decoy by the same hook with other text
// and a post by someone else — and emits it under its real id, so that the
// gateway gives it the same (post id, kind, version) as the plugin's copy:
// one record, whichever path comes first. Without a match the event gets a
// request-derived id the gateway accepts, and a replay keeps it.
func TestWebhookPostResolved(t *testing.T) {
	fastLookups(t)
	byRID, latest := recordedHookPosts(t)
	_, up := fixtureUpstream(t)
	admin := model.NewAPIv4Client(up.URL)
	admin.SetToken("REDACTED")

	var mu sync.Mutex
	var asked []string
	listed := func(resolve bool) func(ctx context.Context, teamID, channelID, channelName string, since time.Time) ([]*model.Post, error) {
		return func(ctx context.Context, teamID, channelID, channelName string, since time.Time) ([]*model.Post, error) {
			mu.Lock()
			asked = append(asked, teamID+"|"+channelID+"|"+channelName)
			mu.Unlock()
			if !resolve {
				return nil, nil
			}
			var out []*model.Post
			for _, p := range byRID {
				decoy := p.Clone()
				decoy.Id, decoy.Message = "decoydecoydecoydecoydecoy"+p.Id[25:], "another run of the same hook"
				other := p.Clone()
				other.Id, other.UserId = "otherotherotherotherother"+p.Id[25:], "someoneelsesomeoneelsesom"
				out = append(out, decoy, p.Clone(), other)
			}
			return out, nil
		}
	}
	for _, resolve := range []bool{true, false} {
		col := newCollector()
		p := &Proxy{
			Upstream: mustURL(t, up.URL),
			Capture:  col.capture,
			HookLookup: func(ctx context.Context, id string) (*model.IncomingWebhook, error) {
				h, _, err := admin.GetIncomingWebhook(ctx, id, "")
				return h, err
			},
			WebhookPosts: listed(resolve),
			Now:          func() time.Time { return time.UnixMilli(latest + 300) },
		}
		base, _ := startProxy(t, "serve", p)
		rids := sendHooks(t, base)
		events := col.wait(t, len(rids))
		p.Close(context.Background())

		batch, _ := json.Marshal(map[string]any{"events": rawMessages(events)})
		parsed, err := gateway.ParseBatch(batch, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, time.UnixMilli(fixtureNowMsec))
		if err != nil {
			t.Fatalf("resolve=%v: the gateway refuses the webhook events: %v", resolve, err)
		}
		for i, raw := range events {
			var ev struct {
				RequestID string `json:"request_id"`
				Post      struct {
					ID string `json:"id"`
				} `json:"post"`
			}
			json.Unmarshal(raw, &ev)
			want, ok := byRID[ev.RequestID]
			if !ok {
				t.Fatalf("event with request id %q", ev.RequestID)
			}
			if !resolve {
				if ev.Post.ID != WebhookPostID(ev.RequestID, hookID, 0) || !strings.HasPrefix(ev.Post.ID, "webhook-") || len(ev.Post.ID) != 26 {
					t.Errorf("unresolved webhook post id %q", ev.Post.ID)
				}
				continue
			}
			// The plugin's own event for that post, through the same parser.
			pe, _ := json.Marshal(map[string]any{"events": []any{map[string]any{"kind": "posted", "request_id": ev.RequestID, "post": want}}})
			pp, err := gateway.ParseBatch(pe, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, time.UnixMilli(fixtureNowMsec))
			if err != nil {
				t.Fatal(err)
			}
			g, w := parsed[i].Event, pp[0].Event
			if g.PostID != w.PostID || g.Kind != w.Kind || g.Version != w.Version || g.Employee != w.Employee || !g.Time.Equal(w.Time) {
				t.Errorf("webhook event %+v, the plugin's %+v", g, w)
			}
		}
		st := p.Stats()
		if resolve && (st.HooksResolved != 2 || st.HooksUnresolved != 0) || !resolve && (st.HooksResolved != 0 || st.HooksUnresolved != 2) {
			t.Errorf("resolve=%v: stats %+v", resolve, st)
		}
	}
	// The hook posts to its own channel: asked by id, never by name.
	for _, a := range asked {
		if parts := strings.Split(a, "|"); parts[1] == "" || parts[2] != "" {
			t.Errorf("WebhookPosts asked %q", a)
		}
	}
}

// TestWebhookPostClaimedOnce: two requests of one hook with the same text
// and one matching post: the first gets it, the second is not given the
// same post twice.
func TestWebhookPostClaimedOnce(t *testing.T) {
	var c claimedPosts
	if !c.claim("a") || c.claim("a") || !c.has("a") || c.has("b") {
		t.Fatal("claim")
	}
	p := &Proxy{Upstream: mustURL(t, "http://127.0.0.1:1"), WebhookPosts: func(context.Context, string, string, string, time.Time) ([]*model.Post, error) {
		q := &model.Post{Id: "postpostpostpostpostpostpo", UserId: "u", CreateAt: 1000, Message: "deploy done"}
		q.AddProp(model.PostPropsFromWebhook, "true")
		return []*model.Post{q}, nil
	}}
	p.init()
	hook := &model.IncomingWebhook{UserId: "u", ChannelId: "c"}
	pl := &hookPayload{Text: "deploy done"}
	if got := p.findHookPost(hook, "c", "", pl, time.UnixMilli(1500)); got == nil {
		t.Fatal("first request: no post")
	}
	if got := p.findHookPost(hook, "c", "", pl, time.UnixMilli(1600)); got != nil {
		t.Fatalf("second request got the claimed post %s", got.Id)
	}
	// Outside the window, or not from a webhook: no match.
	fresh := Proxy{Upstream: p.Upstream, WebhookPosts: p.WebhookPosts}
	fresh.init()
	if got := fresh.findHookPost(hook, "c", "", pl, time.UnixMilli(1000).Add(2*hookPostWindow)); got != nil {
		t.Fatal("a post from long before the request matched")
	}
}
