package reconcile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"
)

// fixtures is the recorded Mattermost 9.11 traffic, from capture/reconcile.
const fixtures = "../../../shared/fixtures/mattermost-9.11"

const adminToken = "admin-token-for-the-fake-server"

// Ids of the recording (fixtures/ids.json).
var ids struct {
	AliceID, BobID, CarolID                  string
	TeamID, TownSquareID, PrivateChannelID   string
	HRChannelID, DMChannelID, GMChannelID    string
	BotDMChannelID                           string
	PublicPostID, PrivatePostID, ReplyPostID string
	DeletedPostID, DeletedRootID             string
	DeletedRootReplyID, DMPostID, GMPostID   string
	BotPostID, MentionPostID                 string
	Since                                    int64
}

func loadIDs(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, "ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	str := func(k string) string {
		var s string
		if err := json.Unmarshal(m[k], &s); err != nil || s == "" {
			t.Fatalf("ids.json: %s: %v", k, err)
		}
		return s
	}
	ids.AliceID, ids.BobID, ids.CarolID = str("alice_id"), str("bob_id"), str("carol_id")
	ids.TeamID, ids.TownSquareID, ids.PrivateChannelID = str("team_id"), str("town_square_id"), str("private_channel_id")
	ids.HRChannelID, ids.DMChannelID, ids.GMChannelID = str("hr_channel_id"), str("dm_channel_id"), str("gm_channel_id")
	ids.BotDMChannelID = str("bot_dm_channel_id")
	ids.PublicPostID, ids.PrivatePostID, ids.ReplyPostID = str("public_post_id"), str("private_post_id"), str("reply_post_id")
	ids.DeletedPostID, ids.DeletedRootID = str("deleted_post_id"), str("deleted_root_id")
	ids.DeletedRootReplyID, ids.DMPostID, ids.GMPostID = str("deleted_root_reply_id"), str("dm_post_id"), str("gm_post_id")
	ids.BotPostID, ids.MentionPostID = str("bot_post_id"), str("mention_post_id")
	if err := json.Unmarshal(m["since"], &ids.Since); err != nil {
		t.Fatal(err)
	}
}

// exchange is one recorded HTTP exchange (fixtures/README.md).
type exchange struct {
	Request struct {
		Method string `json:"method"`
		Path   string `json:"path"`
		Query  string `json:"query"`
	} `json:"request"`
	Response struct {
		Status       int               `json:"status"`
		Headers      map[string]string `json:"headers"`
		BodyFormat   string            `json:"body_format"`
		Body         json.RawMessage   `json:"body"`
		BodyTrailing string            `json:"body_trailing"`
	} `json:"response"`
}

func loadExchange(t *testing.T, name string) exchange {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(fixtures, "http", name))
	if err != nil {
		t.Fatal(err)
	}
	var x exchange
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return x
}

// wire is the response body as it was on the wire.
func (x exchange) wire(t *testing.T) []byte {
	t.Helper()
	switch x.Response.BodyFormat {
	case "empty":
		return nil
	case "json":
		var b bytes.Buffer
		if err := json.Compact(&b, x.Response.Body); err != nil {
			t.Fatal(err)
		}
		b.WriteString(x.Response.BodyTrailing)
		return b.Bytes()
	case "text":
		var s string
		if err := json.Unmarshal(x.Response.Body, &s); err != nil {
			t.Fatal(err)
		}
		return []byte(s + x.Response.BodyTrailing)
	}
	t.Fatalf("body format %q", x.Response.BodyFormat)
	return nil
}

// responsePost is the model.Post a recorded exchange answered with.
func responsePost(t *testing.T, name string) *model.Post {
	t.Helper()
	var p model.Post
	if err := json.Unmarshal(loadExchange(t, name).Response.Body, &p); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &p
}

// hookLine is one line of plugin-hooks.jsonl.
type hookLine struct {
	TS      int64           `json:"ts"`
	Hook    string          `json:"hook"`
	Post    json.RawMessage `json:"post"`
	NewPost json.RawMessage `json:"new_post"`
	OldPost json.RawMessage `json:"old_post"`
}

func loadHooks(t *testing.T) []hookLine {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, "plugin-hooks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []hookLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var h hookLine
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// pluginEvents are the events the sealgate plugin builds from the recorded
// hooks (plugin/server/plugin.go): the hook's post JSON as it is, and for a
// deletion deleted_at from the plugin's clock, which the recording's ts
// (the moment the hook ran) stands for.
func pluginEvents(t *testing.T) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, h := range loadHooks(t) {
		var ev map[string]any
		switch h.Hook {
		case "MessageHasBeenPosted":
			ev = map[string]any{"kind": "posted", "post": h.Post}
		case "MessageHasBeenUpdated":
			ev = map[string]any{"kind": "updated", "post": h.NewPost, "old_post": h.OldPost}
		case "MessageHasBeenDeleted":
			ev = map[string]any{"kind": "deleted", "post": h.Post, "deleted_at": h.TS}
		default:
			t.Fatalf("hook %q", h.Hook)
		}
		raw, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, raw)
	}
	return out
}

// fakeMM serves recorded responses routed by method, path and query.
// Query parameters set to "false" are dropped before matching: they are
// Client4's defaults (collapsedThreads=false, exclude_policy_constrained=
// false) and the server's.
type fakeMM struct {
	t      *testing.T
	mu     sync.Mutex
	routes map[string]fakeResponse
	hits   map[string]int
}

type fakeResponse struct {
	status int
	body   []byte
}

func newFakeMM(t *testing.T) (*fakeMM, *httptest.Server) {
	f := &fakeMM{t: t, routes: map[string]fakeResponse{}, hits: map[string]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func routeKey(method, path, rawQuery string) string {
	q, _ := url.ParseQuery(rawQuery)
	for k, v := range q {
		if len(v) == 1 && v[0] == "false" {
			delete(q, k)
		}
	}
	return method + " " + path + "?" + q.Encode()
}

// recorded serves a recorded exchange for its own request.
func (f *fakeMM) recorded(name string) {
	x := loadExchange(f.t, name)
	f.recordedAs(name, x.Request.Method, x.Request.Path, x.Request.Query)
}

// recordedAs serves a recorded exchange's response for another request.
func (f *fakeMM) recordedAs(name, method, path, query string) {
	x := loadExchange(f.t, name)
	f.routes[routeKey(method, path, query)] = fakeResponse{x.Response.Status, x.wire(f.t)}
}

// json serves v, built by the test from recorded objects.
func (f *fakeMM) json(method, path, query string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	f.routes[routeKey(method, path, query)] = fakeResponse{200, append(b, '\n')}
}

func (f *fakeMM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := routeKey(r.Method, r.URL.Path, r.URL.RawQuery)
	f.mu.Lock()
	f.hits[key]++
	resp, ok := f.routes[key]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	// Client4 sends "BEARER <token>"; the scheme is case-insensitive.
	if auth := r.Header.Get("Authorization"); !strings.EqualFold(auth, "Bearer "+adminToken) || !strings.HasSuffix(auth, " "+adminToken) {
		w.WriteHeader(401)
		w.Write([]byte(`{"id":"api.context.session_expired.app_error","message":"Invalid or expired session, please login again.","detailed_error":"","request_id":"","status_code":401}`))
		return
	}
	if !ok {
		f.t.Errorf("fake Mattermost: unrouted request %s", key)
		w.WriteHeader(404)
		w.Write([]byte(`{"id":"api.context.404.app_error","message":"Sorry, we could not find the page.","detailed_error":"","request_id":"","status_code":404}`))
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(resp.body)))
	w.WriteHeader(resp.status)
	w.Write(resp.body)
}

func (f *fakeMM) hitCount(method, path, query string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[routeKey(method, path, query)]
}

// postList is what GET /channels/{id}/posts?since= answers for these
// posts: all of them in posts, those changed after since in order, newest
// first.
func postList(since int64, posts ...*model.Post) *model.PostList {
	pl := model.NewPostList()
	sort.Slice(posts, func(i, j int) bool { return posts[i].CreateAt > posts[j].CreateAt })
	for _, p := range posts {
		pl.AddPost(p)
		if p.UpdateAt > since {
			pl.AddOrder(p.Id)
		}
	}
	return pl
}

// world is the recorded server as the admin sees it, served by a fakeMM:
//
//   - the posts of town-square and of the alice–bob DM, and the edit
//     history of the public post, are the recorded responses;
//   - the channel, user and per-user channel lists (never recorded) are
//     built from the recorded channel and user objects (setup/*.json,
//     channels-*-create.json);
//   - the posts of project-x, the GM and the bot's DM (not recorded as
//     lists) are built from the recorded post responses, plus for project-x
//     the superseded version from the MessageHasBeenUpdated hook, blanked
//     as the API blanks it;
//   - edit_history of the private post answers the recorded 403 error
//     shape: the author-only check refuses the admin.
type world struct {
	fake     *fakeMM
	srv      *httptest.Server
	pageSize int
}

func newWorld(t *testing.T, pageSize int) *world {
	t.Helper()
	loadIDs(t)
	f, srv := newFakeMM(t)
	w := &world{fake: f, srv: srv, pageSize: pageSize}
	per := strconv.Itoa(pageSize)

	team := responseBody[model.Team](t, "setup/create-team.json")
	withTeam := func(name string) *model.ChannelWithTeamData {
		ch := responseBody[model.Channel](t, name)
		return &model.ChannelWithTeamData{Channel: *ch, TeamDisplayName: team.DisplayName, TeamName: team.Name, TeamUpdateAt: team.UpdateAt}
	}
	town, project, hr := withTeam("setup/get-town-square.json"), withTeam("setup/create-private-project.json"), withTeam("setup/create-private-hr.json")
	f.json("GET", "/api/v4/channels", "include_deleted=true&page=0&per_page="+per, model.ChannelListWithTeamData{town, project, hr})

	var users []*model.User
	for _, n := range []string{"create-admin", "create-user-alice", "create-user-bob", "create-user-carol"} {
		users = append(users, responseBody[model.User](t, "setup/"+n+".json"))
	}
	f.json("GET", "/api/v4/users", "page=0&per_page="+per, users)
	dm := responseBody[model.Channel](t, "channels-direct-create.json")
	gm := responseBody[model.Channel](t, "channels-group-create.json")
	botDM := responseBody[model.Channel](t, "bots-channels-direct-create.json")
	member := map[string][]*model.Channel{
		users[0].Id: {&town.Channel, &hr.Channel},
		ids.AliceID: {&town.Channel, &project.Channel, dm, gm},
		ids.BobID:   {&town.Channel, &project.Channel, dm, gm, botDM},
		ids.CarolID: {&town.Channel, &project.Channel, gm},
	}
	for _, u := range users {
		f.json("GET", "/api/v4/users/"+u.Id+"/channels", "include_deleted=true", member[u.Id])
	}

	since := "include_deleted=true&since=" + strconv.FormatInt(ids.Since, 10)
	f.recorded("channels-posts-since-include-deleted-admin.json")
	// Recorded by bob without include_deleted, which since mode ignores.
	f.recordedAs("channels-posts-since-dm.json", "GET", "/api/v4/channels/"+ids.DMChannelID+"/posts", since)
	f.json("GET", "/api/v4/channels/"+ids.HRChannelID+"/posts", since, postList(ids.Since))
	f.json("GET", "/api/v4/channels/"+ids.GMChannelID+"/posts", since, postList(ids.Since, responsePost(t, "posts-create-group.json")))
	f.json("GET", "/api/v4/channels/"+ids.BotDMChannelID+"/posts", since, postList(ids.Since, responsePost(t, "bots-posts-create-dm.json")))
	var archived *model.Post
	for _, h := range loadHooks(t) {
		if h.Hook != "MessageHasBeenUpdated" {
			continue
		}
		var np, op model.Post
		if err := json.Unmarshal(h.NewPost, &np); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(h.OldPost, &op); err != nil {
			t.Fatal(err)
		}
		if np.Id == ids.PrivatePostID {
			op.Message = "" // the API blanks superseded versions
			archived = &op
		}
	}
	if archived == nil {
		t.Fatal("no MessageHasBeenUpdated hook for the private post")
	}
	f.json("GET", "/api/v4/channels/"+ids.PrivateChannelID+"/posts", since, postList(ids.Since, responsePost(t, "posts-update.json"), archived))

	f.recorded("posts-edit-history.json")
	f.recordedAs("posts-ephemeral-403-regular-user.json", "GET", "/api/v4/posts/"+ids.PrivatePostID+"/edit_history", "")
	f.recorded("channels-posts-page-include-deleted-admin.json")
	return w
}

func responseBody[T any](t *testing.T, name string) *T {
	t.Helper()
	var v T
	if err := json.Unmarshal(loadExchange(t, name).Response.Body, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &v
}

// recorder is an Ingest and a Seen over a set of stored events.
type recorder struct {
	mu      sync.Mutex
	stored  map[eventKey]bool
	batches [][]json.RawMessage
	seen    int // Seen calls
}

func newRecorder() *recorder { return &recorder{stored: map[eventKey]bool{}} }

func (r *recorder) ingest(t *testing.T) func(context.Context, []json.RawMessage) error {
	return func(_ context.Context, evs []json.RawMessage) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.batches = append(r.batches, evs)
		for _, raw := range evs {
			k := keyOf(t, raw)
			r.stored[k] = true
		}
		return nil
	}
}

func (r *recorder) seenFn(_ context.Context, id, kind string, v int64) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen++
	return r.stored[eventKey{id, kind, v}], nil
}

func (r *recorder) events() []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []json.RawMessage
	for _, b := range r.batches {
		out = append(out, b...)
	}
	return out
}
