package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealgate/sealgate/capture/reconcile"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/store/boltstore"
)

// rcFixtures is the recorded Mattermost 9.11 traffic.
const rcFixtures = "../../../shared/fixtures/mattermost-9.11"

const (
	rcAdminToken = "rc-admin-token-of-a-system-admin"
	rcUserToken  = "rc-token-of-a-regular-user-alice"
	// rcCanary is put in front of the text of every post the fake serves.
	rcCanary = "CANARY-reconcile-q7Zx"
)

// rcIDs are the recording's ids (fixtures/ids.json) by role.
type rcIDs map[string]any

func (m rcIDs) s(role string) string {
	s, _ := m[role].(string)
	return s
}

func (m rcIDs) since() int64 { return int64(m["since"].(float64)) }

func loadRcIDs(t *testing.T) rcIDs {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(rcFixtures, "ids.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m rcIDs
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// rcExchange is the response of one recorded HTTP exchange
// (fixtures/README.md), as it was on the wire.
func rcExchange(t *testing.T, name string) (status int, wire []byte, body json.RawMessage) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(rcFixtures, "http", name))
	if err != nil {
		t.Fatal(err)
	}
	var x struct {
		Response struct {
			Status       int             `json:"status"`
			BodyFormat   string          `json:"body_format"`
			Body         json.RawMessage `json:"body"`
			BodyTrailing string          `json:"body_trailing"`
		} `json:"response"`
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if x.Response.BodyFormat != "json" {
		t.Fatalf("%s: body format %q", name, x.Response.BodyFormat)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, x.Response.Body); err != nil {
		t.Fatal(err)
	}
	b.WriteString(x.Response.BodyTrailing)
	return x.Response.Status, b.Bytes(), x.Response.Body
}

func rcBody[T any](t *testing.T, name string) *T {
	t.Helper()
	_, _, body := rcExchange(t, name)
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &v
}

// rcHook is one line of plugin-hooks.jsonl.
type rcHook struct {
	TS      int64           `json:"ts"`
	Hook    string          `json:"hook"`
	Post    json.RawMessage `json:"post"`
	NewPost json.RawMessage `json:"new_post"`
	OldPost json.RawMessage `json:"old_post"`
}

func loadRcHooks(t *testing.T) []rcHook {
	t.Helper()
	f, err := os.Open(filepath.Join(rcFixtures, "plugin-hooks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rcHook
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var h rcHook
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

// rcPluginEvents are the events the sealgate plugin sent for the recorded
// hooks (plugin/server): the hook's post as it is; a deletion stamped with
// the plugin's clock, which the line's ts stands for.
func rcPluginEvents(t *testing.T) []json.RawMessage {
	t.Helper()
	var out []json.RawMessage
	for _, h := range loadRcHooks(t) {
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

// rcMattermost is Mattermost 9.11 as a system administrator sees it after
// the recording, built from the recorded responses:
//
//   - town-square's rows and the alice–bob DM's are the recorded
//     GET /channels/{id}/posts?since= answers; project-x's are the recorded
//     PUT answer plus the superseded version of its MessageHasBeenUpdated
//     hook, blanked as the API blanks it; the group message and the bot's DM
//     hold their recorded post; hr-confidential is empty;
//   - the channel, user and per-user channel lists (never recorded as
//     lists) are the recorded channel and user objects;
//   - GET /users/me answers the recorded admin or alice; an unknown token
//     gets the recorded 401, alice's token the recorded 403 on everything an
//     administrator alone may read;
//   - edit_history answers the recorded 403 shape to everyone: the server
//     shows it to the post's author only, and the admin wrote none of the
//     edited posts.
//
// A since listing holds every row changed after since, with the roots of
// its replies; rows from before the recording are not in it (nothing the
// tests read changed then). Every non-empty message starts with rcCanary;
// texts lists a piece of each recorded one, to look for as well.
type rcMattermost struct {
	t        *testing.T
	srv      *httptest.Server
	ids      rcIDs
	admin    []byte
	user     []byte
	channels model.ChannelListWithTeamData
	users    []*model.User
	member   map[string][]*model.Channel
	rows     map[string][]*model.Post
	texts    []string

	mu       sync.Mutex
	unrouted []string
	requests int
}

func newRcMattermost(t *testing.T) *rcMattermost {
	t.Helper()
	ids := loadRcIDs(t)
	f := &rcMattermost{t: t, ids: ids, member: map[string][]*model.Channel{}, rows: map[string][]*model.Post{}}
	_, f.admin, _ = rcExchange(t, "setup/create-admin.json")
	_, f.user, _ = rcExchange(t, "users-me.json")

	team := rcBody[model.Team](t, "setup/create-team.json")
	withTeam := func(name string) *model.ChannelWithTeamData {
		ch := rcBody[model.Channel](t, name)
		return &model.ChannelWithTeamData{Channel: *ch, TeamDisplayName: team.DisplayName, TeamName: team.Name, TeamUpdateAt: team.UpdateAt}
	}
	town, project, hr := withTeam("setup/get-town-square.json"), withTeam("setup/create-private-project.json"), withTeam("setup/create-private-hr.json")
	f.channels = model.ChannelListWithTeamData{town, project, hr}
	for _, n := range []string{"create-admin", "create-user-alice", "create-user-bob", "create-user-carol"} {
		f.users = append(f.users, rcBody[model.User](t, "setup/"+n+".json"))
	}
	dm := rcBody[model.Channel](t, "channels-direct-create.json")
	gm := rcBody[model.Channel](t, "channels-group-create.json")
	botDM := rcBody[model.Channel](t, "bots-channels-direct-create.json")
	f.member[f.users[0].Id] = []*model.Channel{&town.Channel, &hr.Channel}
	f.member[ids.s("alice_id")] = []*model.Channel{&town.Channel, &project.Channel, dm, gm}
	f.member[ids.s("bob_id")] = []*model.Channel{&town.Channel, &project.Channel, dm, gm, botDM}
	f.member[ids.s("carol_id")] = []*model.Channel{&town.Channel, &project.Channel, gm}

	for id, name := range map[string]string{town.Id: "channels-posts-since-include-deleted-admin.json", dm.Id: "channels-posts-since-dm.json"} {
		pl := rcBody[model.PostList](t, name)
		for _, p := range pl.Posts {
			f.rows[id] = append(f.rows[id], p)
		}
	}
	f.rows[gm.Id] = []*model.Post{rcBody[model.Post](t, "posts-create-group.json")}
	f.rows[botDM.Id] = []*model.Post{rcBody[model.Post](t, "bots-posts-create-dm.json")}
	updated := rcBody[model.Post](t, "posts-update.json")
	for _, h := range loadRcHooks(t) {
		var np, op model.Post
		if h.Hook != "MessageHasBeenUpdated" || json.Unmarshal(h.NewPost, &np) != nil || np.Id != updated.Id {
			continue
		}
		if err := json.Unmarshal(h.OldPost, &op); err != nil {
			t.Fatal(err)
		}
		op.Message = "" // the API blanks superseded versions
		f.rows[project.Id] = []*model.Post{updated, &op}
	}
	if len(f.rows[project.Id]) != 2 {
		t.Fatal("fixtures: no MessageHasBeenUpdated hook for the private post")
	}
	for _, rows := range f.rows {
		for _, p := range rows {
			if p.Message == "" {
				continue
			}
			if len(p.Message) >= 12 {
				f.texts = append(f.texts, p.Message[:12])
			}
			p.Message = rcCanary + " " + p.Message
		}
	}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, u := range f.unrouted {
			t.Errorf("fake Mattermost: unrouted request %s", u)
		}
	})
	return f
}

// canaries are the strings that must never be written in clear: the
// canary, pieces of the recorded texts, the channel and team names and every
// id of the recording.
func (f *rcMattermost) canaries() []string {
	out := append([]string{rcCanary}, f.texts...)
	for _, ch := range f.channels {
		out = append(out, ch.Name, ch.DisplayName, ch.TeamName)
	}
	for k, v := range f.ids {
		if s, ok := v.(string); ok && k != "since" {
			out = append(out, s)
		}
	}
	return out
}

func (f *rcMattermost) write(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func (f *rcMattermost) recorded(w http.ResponseWriter, name string) {
	status, wire, _ := rcExchange(f.t, name)
	f.write(w, status, wire)
}

func (f *rcMattermost) json(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Error(err)
	}
	f.write(w, http.StatusOK, append(b, '\n'))
}

// rcPage is one page of a list, as ?page=&per_page= cut it.
func rcPage[T any](list []T, q map[string][]string) []T {
	p, _ := strconv.Atoi(rcFirst(q["page"]))
	per, _ := strconv.Atoi(rcFirst(q["per_page"]))
	if per <= 0 {
		per = 60
	}
	lo, hi := min(p*per, len(list)), min((p+1)*per, len(list))
	return list[lo:hi]
}

func rcFirst(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (f *rcMattermost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	// Client4 sends "BEARER <token>"; the scheme is case-insensitive.
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	admin := strings.EqualFold(scheme, "bearer") && tok == rcAdminToken
	if !admin && !(strings.EqualFold(scheme, "bearer") && tok == rcUserToken) {
		f.recorded(w, "posts-create-401-bad-token.json")
		return
	}
	path, q := r.URL.Path, r.URL.Query()
	if r.Method == http.MethodGet && path == "/api/v4/users/me" {
		if admin {
			f.write(w, http.StatusOK, f.admin)
		} else {
			f.write(w, http.StatusOK, f.user)
		}
		return
	}
	if !admin {
		f.recorded(w, "channels-posts-include-deleted-403-regular-user.json")
		return
	}
	rest, _ := strings.CutPrefix(path, "/api/v4/")
	parts := strings.Split(rest, "/")
	switch {
	case r.Method != http.MethodGet:
	case rest == "channels" && q.Get("include_deleted") == "true":
		f.json(w, rcPage(f.channels, q))
		return
	case rest == "users":
		f.json(w, rcPage(f.users, q))
		return
	case len(parts) == 3 && parts[0] == "users" && parts[2] == "channels" && q.Get("include_deleted") == "true":
		f.json(w, f.member[parts[1]])
		return
	case len(parts) == 3 && parts[0] == "channels" && parts[2] == "posts" && q.Has("since"):
		since, err := strconv.ParseInt(q.Get("since"), 10, 64)
		if err == nil {
			f.json(w, f.since(parts[1], since))
			return
		}
	case len(parts) == 3 && parts[0] == "posts" && parts[2] == "edit_history":
		f.recorded(w, "posts-ephemeral-403-regular-user.json")
		return
	}
	f.mu.Lock()
	f.unrouted = append(f.unrouted, r.Method+" "+r.URL.String())
	f.mu.Unlock()
	f.write(w, http.StatusNotFound, []byte(`{"id":"api.context.404.app_error","message":"Sorry, we could not find the page.","detailed_error":"","request_id":"","status_code":404}`+"\n"))
}

// since is GET /channels/{id}/posts?since=: the rows changed after since,
// newest first in order, and the roots of their replies for context.
func (f *rcMattermost) since(channel string, since int64) *model.PostList {
	pl := model.NewPostList()
	all := map[string]*model.Post{}
	var changed []*model.Post
	for _, p := range f.rows[channel] {
		all[p.Id] = p
		if p.UpdateAt > since {
			changed = append(changed, p)
		}
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].CreateAt > changed[j].CreateAt })
	for _, p := range changed {
		pl.AddPost(p)
		pl.AddOrder(p.Id)
		if root, ok := all[p.RootId]; ok {
			pl.AddPost(root)
		}
	}
	return pl
}

// rcDeployment is a `sealgate init` deployment whose mattermost.url is mm.
func rcDeployment(t *testing.T, mm string) (cfgPath string, cfg *config.Config) {
	t.Helper()
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	dir := filepath.Join(t.TempDir(), "dep")
	if err := cmdInit([]string{"--dir", dir, "--approvers", "2", "--quorum", "2", "--kem", "x25519"}, io.Discard); err != nil {
		t.Fatalf("init: %v", err)
	}
	cfgPath = filepath.Join(dir, "sealgate.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Mattermost.URL = mm
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	return cfgPath, cfg
}

// rcRun runs one command line as the binary would.
func rcRun(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// rcStore is the deployment's file store, opened with its gateway keys
// (the reconciliation and proxy tests read what serve stored).
type rcStore struct {
	t    *testing.T
	st   *boltstore.Store
	keys *crypto.GatewayKeys
}

func openRcStore(t *testing.T, cfg *config.Config) *rcStore {
	t.Helper()
	keys, err := readGatewayKeys(cfg.Path(cfg.GatewayKeys))
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(cfg.Path(cfg.Store.Path))
	if err != nil {
		t.Fatal(err)
	}
	return &rcStore{t: t, st: st, keys: keys}
}

func (s *rcStore) records() int64 {
	s.t.Helper()
	stats, err := s.st.Stats(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return stats.Records
}

func (s *rcStore) has(postID string, kind crypto.Kind, version int64) bool {
	s.t.Helper()
	ok, err := s.st.HasRef(context.Background(), s.keys.Ref(postID, kind, version))
	if err != nil {
		s.t.Fatal(err)
	}
	return ok
}

// rcWant is an event of the recording the reconciliation must store.
type rcWant struct {
	what, role string
	kind       crypto.Kind
	version    int64
}

// rcFromEmpty is what a run over the recording stores in an empty store,
// as the admin sees it: every live post as posted, the edits whose new text
// is live, every tombstone. The original versions of the two edited posts
// and the public post's first edit are not among them: their text is only
// in the author-only edit history.
var rcFromEmpty = []rcWant{
	{"reply", "reply_post_id", crypto.KindPosted, 1795346531321},
	{"file post", "file_post_id", crypto.KindPosted, 1795346532604},
	{"attachment post", "attachment_post_id", crypto.KindPosted, 1795346533021},
	{"mention post", "mention_post_id", crypto.KindPosted, 1795346533472},
	{"non-ASCII post", "non_ascii_post_id", crypto.KindPosted, 1795346533907},
	{"long post", "long_post_id", crypto.KindPosted, 1795346534361},
	{"DM post", "dm_post_id", crypto.KindPosted, 1795346531755},
	{"group post", "gm_post_id", crypto.KindPosted, 1795346532189},
	{"bot post", "bot_post_id", crypto.KindPosted, 1795346539559},
	{"second patch of the public post", "public_post_id", crypto.KindEdited, 1795346535664},
	{"PUT edit of the private post", "private_post_id", crypto.KindEdited, 1795346536086},
	{"deleted post", "deleted_post_id", crypto.KindDeleted, gateway.TombstoneVersion},
	{"deleted thread root", "deleted_root_id", crypto.KindDeleted, gateway.TombstoneVersion},
	{"reply deleted with its root", "deleted_root_reply_id", crypto.KindDeleted, gateway.TombstoneVersion},
}

// rcWebhookPosts are the two webhook posts (their ids are not in ids.json).
var rcWebhookPosts = []string{"9bjgzb5ojintukeepzrbq3qn3e", "7tidofhdkirntmysssunfmexdy"}

const rcFromEmptyTotal = 16 // rcFromEmpty and the two webhook posts

func (s *rcStore) checkFromEmpty(ids rcIDs) {
	s.t.Helper()
	for _, w := range rcFromEmpty {
		if !s.has(ids.s(w.role), w.kind, w.version) {
			s.t.Errorf("%s not stored", w.what)
		}
	}
	if !s.has(rcWebhookPosts[0], crypto.KindPosted, 1795346538705) || !s.has(rcWebhookPosts[1], crypto.KindPosted, 1795346539114) {
		s.t.Error("webhook posts not stored")
	}
}

// scanClear fails the test for every canary in the data directory or in
// the given outputs.
func scanClear(t *testing.T, dataDir string, canaries []string, outputs map[string]string) {
	t.Helper()
	hits, scanned, err := privacyscan.Dir(dataDir, canaries)
	if err != nil || scanned == 0 {
		t.Fatalf("scan %s: %v, %d bytes", dataDir, err, scanned)
	}
	for name, out := range outputs {
		hits = append(hits, privacyscan.Bytes(name, []byte(out), canaries)...)
	}
	for _, h := range hits {
		t.Errorf("in clear: %s", h)
	}
}

func rcSinceArg(ids rcIDs) string {
	return time.UnixMilli(ids.since()).UTC().Format(time.RFC3339Nano)
}

// TestReconcileCommandFromEmptyStore: after an outage of every capture
// path, `sealgate reconcile` stores the missing posts, edits and tombstones
// (the silently deleted reply of a thread root included) sealed, prints
// counts only, and a second run adds nothing.
func TestReconcileCommandFromEmptyStore(t *testing.T) {
	mm := newRcMattermost(t)
	cfgPath, cfg := rcDeployment(t, mm.srv.URL)
	t.Setenv("SEALGATE_RECONCILE_TOKEN", rcAdminToken)

	// The fake serves the canary: the scan at the end would see it.
	req, _ := http.NewRequest(http.MethodGet, mm.srv.URL+"/api/v4/channels/"+mm.ids.s("town_square_id")+"/posts?since=1", nil)
	req.Header.Set("Authorization", "Bearer "+rcAdminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(privacyscan.Bytes("fake", b, []string{rcCanary})) < 9 { // the 9 town-square posts with text
			t.Fatalf("the fake's posts lack the canary: %.200s", b)
		}
	}

	out, errOut, code := rcRun("reconcile", "--config", cfgPath, "--since", rcSinceArg(mm.ids))
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`channels read\s+6\s+\(3 direct or group, found through 4 users`),
		regexp.MustCompile(`ingested\s+16\s+\(posted 11, updated 2, deleted 3, of which 1 replies deleted with their thread root\)`),
		regexp.MustCompile(`already stored\s+0\n`),
		regexp.MustCompile(`deleted, no version kept\s+3\n`),
		regexp.MustCompile(`original versions\s+2\n`),
		regexp.MustCompile(`edits\s+1\n`),
		regexp.MustCompile(`edit histories refused\s+2 `),
		regexp.MustCompile(`read errors\s+0\n`),
	} {
		if !want.MatchString(out) {
			t.Errorf("summary lacks %s:\n%s", want, out)
		}
	}
	s := openRcStore(t, cfg)
	if n := s.records(); n != rcFromEmptyTotal {
		t.Errorf("%d records stored, want %d", n, rcFromEmptyTotal)
	}
	s.checkFromEmpty(mm.ids)
	s.st.Close()

	out2, errOut2, code := rcRun("reconcile", "--config", cfgPath, "--since", rcSinceArg(mm.ids), "--json")
	if code != 0 {
		t.Fatalf("second run: exit %d: %s", code, errOut2)
	}
	var rep struct {
		Ingested    map[string]int `json:"ingested"`
		AlreadySeen int            `json:"already_seen"`
	}
	if err := json.Unmarshal([]byte(out2), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out2)
	}
	if len(rep.Ingested) != 0 || rep.AlreadySeen != rcFromEmptyTotal {
		t.Errorf("second run: %s", out2)
	}
	s = openRcStore(t, cfg)
	if n := s.records(); n != rcFromEmptyTotal {
		t.Errorf("second run: %d records, want %d", n, rcFromEmptyTotal)
	}
	s.st.Close()

	scanClear(t, filepath.Dir(cfg.Path(cfg.Store.Path)), mm.canaries(),
		map[string]string{"stdout": out + out2, "stderr": errOut + errOut2})
}

// TestReconcileCommandAfterPlugin: the store holds every event the plugin
// sent during the recording; the reconciliation's rebuilt events have the
// same refs, so all it adds is the tombstone of the reply that the thread
// root's deletion removed without a hook.
func TestReconcileCommandAfterPlugin(t *testing.T) {
	mm := newRcMattermost(t)
	cfgPath, cfg := rcDeployment(t, mm.srv.URL)
	t.Setenv("SEALGATE_RECONCILE_TOKEN", rcAdminToken)

	gw, err := openGateway(context.Background(), cfg, newLogger(io.Discard, "error"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"events": rcPluginEvents(t)})
	evs, err := gateway.ParseBatch(body, gateway.Limits{MaxPostBytes: cfg.Limits.MaxPostBytes, MaxBatchEvents: cfg.Limits.MaxBatchEvents}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := gw.server.Pipeline.Ingest(context.Background(), evs)
	gw.store.Close()
	if err != nil || res.Stored != 25 {
		t.Fatalf("plugin events: %+v %v", res, err)
	}

	out, errOut, code := rcRun("reconcile", "--config", cfgPath, "--since", rcSinceArg(mm.ids))
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errOut, out)
	}
	if !regexp.MustCompile(`ingested\s+1\s+\(posted 0, updated 0, deleted 1, of which 1 replies deleted with their thread root\)`).MatchString(out) ||
		!regexp.MustCompile(`already stored\s+21\n`).MatchString(out) || !regexp.MustCompile(`edit histories refused\s+0 `).MatchString(out) {
		t.Errorf("summary:\n%s", out)
	}
	s := openRcStore(t, cfg)
	if n := s.records(); n != 26 {
		t.Errorf("%d records, want the plugin's 25 and the reply's tombstone", n)
	}
	if !s.has(mm.ids.s("deleted_root_reply_id"), crypto.KindDeleted, gateway.TombstoneVersion) {
		t.Error("the tombstone of the reply deleted with its root is not stored")
	}
	s.st.Close()

	out, _, code = rcRun("reconcile", "--config", cfgPath, "--since", rcSinceArg(mm.ids))
	if code != 0 || !regexp.MustCompile(`ingested\s+0\s`).MatchString(out) {
		t.Errorf("second run: exit %d\n%s", code, out)
	}
}

// TestReconcileCommandRefusesBadSince: a --since that is missing, not a
// time, not in the past or not positive is a usage error (exit 2) naming
// the flag, before anything is read or opened.
func TestReconcileCommandRefusesBadSince(t *testing.T) {
	mm := newRcMattermost(t)
	cfgPath, cfg := rcDeployment(t, mm.srv.URL)
	t.Setenv("SEALGATE_RECONCILE_TOKEN", rcAdminToken)
	for _, c := range []struct{ since, want string }{
		{"", "--since T is required"},
		{"yesterday", "is not an RFC 3339 time"},
		{"2026-11-31", "is not an RFC 3339 time"},
		{"-24h", "must be positive"},
		{"0s", "must be positive"},
		{"2999-01-01T00:00:00Z", "is not in the past"},
		{"1960-01-01", "before 1970"},
		{"1.5d", "is not an RFC 3339 time"},
	} {
		args := []string{"reconcile", "--config", cfgPath}
		if c.since != "" {
			args = append(args, "--since", c.since)
		}
		_, errOut, code := rcRun(args...)
		if code != 2 || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "--since") {
			t.Errorf("--since %q: exit %d, %q; want exit 2 and %q", c.since, code, errOut, c.want)
		}
	}
	if _, errOut, code := rcRun("reconcile", "--since", "24h"); code != 2 || !strings.Contains(errOut, "--config FILE is required") {
		t.Errorf("no --config: exit %d, %s", code, errOut)
	}
	if mm.requests != 0 {
		t.Errorf("%d requests to Mattermost for refused command lines", mm.requests)
	}
	if _, err := os.Stat(cfg.Path(cfg.Store.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store was opened: %v", err)
	}
	// The duration and date forms.
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"90m": now.Add(-90 * time.Minute), "7d": now.AddDate(0, 0, -7), "2026-11-22": time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC),
		"2026-11-22T11:22:09.68Z": time.UnixMilli(1795346529680), "2026-11-22T12:22:09+01:00": time.Date(2026, 11, 22, 11, 22, 9, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

// TestReconcileCommandRefusesToken: a regular user's token, an invalid
// token and no token are refused with a message saying what is wrong, and
// nothing is stored.
func TestReconcileCommandRefusesToken(t *testing.T) {
	mm := newRcMattermost(t)
	cfgPath, cfg := rcDeployment(t, mm.srv.URL)
	for _, c := range []struct{ token, want string }{
		{rcUserToken, "reconcile.token was refused: it is not a system administrator's token"},
		{"no-such-token-at-all", "reconcile.token was refused by Mattermost (HTTP 401)"},
		{"", "reconcile.token (or SEALGATE_RECONCILE_TOKEN): missing"},
	} {
		t.Setenv("SEALGATE_RECONCILE_TOKEN", c.token)
		_, errOut, code := rcRun("reconcile", "--config", cfgPath, "--since", rcSinceArg(mm.ids))
		if code != 1 || !strings.Contains(errOut, c.want) {
			t.Errorf("token %q: exit %d, %q; want exit 1 and %q", c.token, code, errOut, c.want)
		}
		if strings.Contains(errOut, c.token) && c.token != "" {
			t.Errorf("the token is in the error: %s", errOut)
		}
	}
	if _, err := os.Stat(cfg.Path(cfg.Store.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the store was opened: %v", err)
	}
	// Had the check passed, the server's own 403 would say the same.
	err := explainReconcileError(fmt.Errorf("list channels: %w", model.NewAppError("", "api.context.permissions.app_error", nil, "", http.StatusForbidden)))
	if !strings.Contains(err.Error(), "lacks the system administrator's permissions") {
		t.Errorf("403: %v", err)
	}
}

// TestReconcileCommandStoreLockedByServe: the file store held by serve is
// refused with what to do instead.
func TestReconcileCommandStoreLockedByServe(t *testing.T) {
	mm := newRcMattermost(t)
	cfgPath, cfg := rcDeployment(t, mm.srv.URL)
	t.Setenv("SEALGATE_RECONCILE_TOKEN", rcAdminToken)
	st, err := boltstore.Open(cfg.Path(cfg.Store.Path)) // as a running serve holds it
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, errOut, code := rcRun("reconcile", "--config", cfgPath, "--since", rcSinceArg(mm.ids))
	if code != 1 || !strings.Contains(errOut, "sealgate serve running") || !strings.Contains(errOut, "reconcile.every") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// rcMetric is the value of one sample line of the Prometheus text format.
func rcMetric(t *testing.T, metrics, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

func rcGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestReconcileServePeriodic: serve with reconcile.every set and a real
// Redis reconciles on its own, beside an ingest that is answered at once;
// the events arrive in the store, later runs add nothing, and the log and
// the metrics carry counts only.
func TestReconcileServePeriodic(t *testing.T) {
	mm := newRcMattermost(t)
	cfgPath, cfg := rcDeployment(t, mm.srv.URL)
	rs := testredis.Start(t)
	cfg.Redis.Addr = rs.Addr()
	cfg.Listen.Admin = addr(t)
	cfg.Reconcile.Token = rcAdminToken
	cfg.Reconcile.Every = config.Duration{Duration: time.Minute}
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Below the minimum a config file may set: the test cannot wait minutes.
	cfg.Reconcile.Every.Duration = 150 * time.Millisecond
	// The recording lies further back than any lookback: the job's clock
	// stands half an hour after it.
	reconcileNow = func() time.Time { return time.UnixMilli(mm.ids.since()).Add(30 * time.Minute) }
	t.Cleanup(func() { reconcileNow = time.Now })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var out, logs lockedBuffer
	go func() { done <- serveConfig(ctx, cfg, &out, &logs) }()
	base := "http://" + cfg.Listen.Admin
	waitFor(t, base+"/healthz")

	// The plugin delivers the public post meanwhile: answered at once, and
	// the one event the reconciliation cannot rebuild (its original text is
	// author-only).
	var ev json.RawMessage
	for _, e := range rcPluginEvents(t) {
		var pe struct {
			Kind string
			Post struct{ ID string }
		}
		if json.Unmarshal(e, &pe) == nil && pe.Kind == "posted" && pe.Post.ID == mm.ids.s("public_post_id") {
			ev = e
		}
	}
	if ev == nil {
		t.Fatal("fixtures: no MessageHasBeenPosted hook of the public post")
	}
	body, _ := json.Marshal(map[string]any{"events": []json.RawMessage{ev}})
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/ingest", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cfg.IngestToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || time.Since(start) > 5*time.Second {
		t.Fatalf("ingest beside the job: HTTP %d after %s", resp.StatusCode, time.Since(start))
	}

	var metrics string
	deadline := time.Now().Add(30 * time.Second)
	for {
		metrics = rcGet(t, base+"/metrics")
		if rcMetric(t, metrics, `sealgate_reconcile_runs_total{outcome="ok"}`) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no three complete runs:\n%s\n%s", logs.String(), metrics)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	for series, want := range map[string]float64{
		`sealgate_reconcile_ingested_total{kind="posted"}`:    11,
		`sealgate_reconcile_ingested_total{kind="updated"}`:   2,
		`sealgate_reconcile_ingested_total{kind="deleted"}`:   3,
		`sealgate_reconcile_events_total{outcome="ingested"}`: 16,
		`sealgate_reconcile_runs_total{outcome="failed"}`:     0,
	} {
		if got := rcMetric(t, metrics, series); got != want {
			t.Errorf("%s = %g, want %g", series, got, want)
		}
	}
	if rcMetric(t, metrics, "sealgate_reconcile_last_complete_timestamp_seconds") <= 0 {
		t.Error("no last complete run in the metrics")
	}
	s := openRcStore(t, cfg)
	if n := s.records(); n != rcFromEmptyTotal+1 {
		t.Errorf("%d records, want the reconciliation's %d and the plugin's public post", n, rcFromEmptyTotal)
	}
	s.checkFromEmpty(mm.ids)
	if !s.has(mm.ids.s("public_post_id"), crypto.KindPosted, 1795346530484) {
		t.Error("the ingested public post is not stored")
	}
	s.st.Close()

	l := logs.String()
	if n := strings.Count(l, `"msg":"reconcile: run done"`); n < 3 || !strings.Contains(l, `"ingested":16`) || !strings.Contains(l, `"cascade_deleted":1`) {
		t.Errorf("%d runs logged:\n%s", n, l)
	}
	if !strings.Contains(l, `"msg":"reconcile: periodic job on"`) {
		t.Errorf("the job's start is not logged:\n%s", l)
	}
	scanClear(t, filepath.Dir(cfg.Path(cfg.Store.Path)), mm.canaries(), map[string]string{"log": l, "stdout": out.String(), "metrics": metrics})
}

// TestReconcileServeWindow: a run reads lookback back from its start, and
// never leaves a gap after the last complete run, whether runs fail or
// the interval is longer than the lookback.
func TestReconcileServeWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	j := &reconcileJob{lookback: 2 * time.Hour, lag: 5 * time.Minute}
	if got := j.since(t0); !got.Equal(t0.Add(-2 * time.Hour)) {
		t.Errorf("first run from %v", got)
	}
	// The first run failed: the next one still starts there.
	if got := j.since(t0.Add(3 * time.Hour)); !got.Equal(t0.Add(-2 * time.Hour)) {
		t.Errorf("after a failure from %v", got)
	}
	// A complete run at t0+3h covers up to t0+3h-lag-skew; with a 6h
	// interval the next run reads from there, not from 2h before it.
	j.covered = t0.Add(3*time.Hour - j.lag - reconcileSkew)
	if got := j.since(t0.Add(9 * time.Hour)); !got.Equal(j.covered) {
		t.Errorf("after a long interval from %v", got)
	}
	if got := j.since(t0.Add(3*time.Hour + 15*time.Minute)); !got.Equal(t0.Add(75 * time.Minute)) {
		t.Errorf("after a short interval from %v", got)
	}
}

// TestReconcileServeJobNotRun: a refused token and an unreachable
// Mattermost are logged and counted, and the job goes on; the window is
// kept for the next run.
func TestReconcileServeJobNotRun(t *testing.T) {
	mm := newRcMattermost(t)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	var logs lockedBuffer
	for _, c := range []struct{ url, token, outcome string }{
		{mm.srv.URL, rcUserToken, "refused"},
		{mm.srv.URL, "no-such-token-at-all", "refused"},
		{down.URL, rcAdminToken, "failed"},
	} {
		reg := prometheus.NewRegistry()
		t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
		now := t0
		j := &reconcileJob{
			r: &reconcile.Reconciler{}, client: reconcile.NewClient(c.url, c.token, time.Second),
			log: newLogger(&logs, "info"), now: func() time.Time { return now },
			every: time.Minute, lookback: time.Hour, lag: time.Minute, metrics: newReconcileMetrics(reg),
		}
		j.once(context.Background())
		now = now.Add(2 * time.Hour)
		j.once(context.Background())
		if got := rcCounter(t, reg, "sealgate_reconcile_runs_total", c.outcome); got != 2 {
			t.Errorf("%s: %g runs counted %s", c.token, got, c.outcome)
		}
		if got := j.since(now); !got.Equal(t0.Add(-time.Hour)) {
			t.Errorf("%s: the next run reads from %v, want the first window's start", c.token, got)
		}
	}
	l := logs.String()
	if strings.Count(l, `"msg":"reconcile: not run; tried again next interval"`) != 6 || strings.Contains(l, rcAdminToken) || strings.Contains(l, rcUserToken) {
		t.Errorf("log:\n%s", l)
	}
}

// rcCounter is the value of the counter name{outcome=outcome} in reg.
func rcCounter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}
