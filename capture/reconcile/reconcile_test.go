package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
)

var testLimits = gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}

// testNow is after the recording (2026-11-22), so that no event is in the
// future for gateway.ParseBatch.
var testNow = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

var kindNames = map[crypto.Kind]string{crypto.KindPosted: KindPosted, crypto.KindEdited: KindUpdated, crypto.KindDeleted: KindDeleted}

// parsed is a rebuilt event as the gateway reads it, with its JSON.
type parsed struct {
	key eventKey
	ev  event
	raw json.RawMessage
}

// parse runs the gateway's own parser over one event: its version rules
// are the ones the refs are computed with.
func parse(t *testing.T, raw json.RawMessage) parsed {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"events": []json.RawMessage{raw}})
	evs, err := gateway.ParseBatch(body, testLimits, testNow)
	if err != nil {
		t.Fatalf("gateway refuses a rebuilt event: %v", err)
	}
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	e := evs[0].Event
	return parsed{key: eventKey{e.PostID, kindNames[e.Kind], e.Version}, ev: ev, raw: raw}
}

func keyOf(t *testing.T, raw json.RawMessage) eventKey { return parse(t, raw).key }

func (w *world) reconciler(rec *recorder) *Reconciler {
	return &Reconciler{
		Client:   NewClient(w.srv.URL, adminToken, 10*time.Second),
		Ingest:   rec.ingest(w.fake.t),
		Seen:     rec.seenFn,
		PageSize: w.pageSize,
		Now:      func() time.Time { return testNow },
	}
}

func sinceTime() time.Time { return time.UnixMilli(ids.Since) }

func (k eventKey) String() string { return fmt.Sprintf("%s %s %d", k.kind, k.id, k.version) }

// wantFromEmpty is every event a run over the recording rebuilds for an
// empty store, in order: channel by channel (town-square, project-x, hr,
// then the DM, GM and bot DM found through alice and bob), post by post in
// creation order.
func wantFromEmpty() []eventKey {
	return []eventKey{
		// town-square: the public post, its two patches (the recorded
		// MessageHasBeenUpdated versions), bob's reply, the other posts.
		{ids.PublicPostID, KindPosted, 1795346530484},
		{ids.PublicPostID, KindUpdated, 1795346535231},
		{ids.PublicPostID, KindUpdated, 1795346535664},
		{ids.ReplyPostID, KindPosted, 1795346531321},
		{"p979mndzqjrhtmg7fs43mnbhae", KindPosted, 1795346532604},
		{"f7qusb4eii8rub8rc4atxfim6e", KindPosted, 1795346533021},
		{ids.MentionPostID, KindPosted, 1795346533472},
		{"miwwwyyi4jnijbes6ai1bxypnw", KindPosted, 1795346533907},
		{"wex8nqaz4pyjinj7tqjp5n9por", KindPosted, 1795346534361},
		// deleted post, deleted root and its silently deleted reply:
		// tombstones only, their text is gone.
		{ids.DeletedPostID, KindDeleted, gateway.TombstoneVersion},
		{ids.DeletedRootID, KindDeleted, gateway.TombstoneVersion},
		{ids.DeletedRootReplyID, KindDeleted, gateway.TombstoneVersion},
		// the two webhook posts
		{"9bjgzb5ojintukeepzrbq3qn3e", KindPosted, 1795346538705},
		{"7tidofhdkirntmysssunfmexdy", KindPosted, 1795346539114},
		// project-x: the PUT edit (update_at one ms after edit_at); the
		// original text is author-only history: not rebuilt.
		{ids.PrivatePostID, KindUpdated, 1795346536086},
		{ids.DMPostID, KindPosted, 1795346531755},
		{ids.GMPostID, KindPosted, 1795346532189},
		{ids.BotPostID, KindPosted, 1795346539559},
	}
}

func keys(t *testing.T, raws []json.RawMessage) []eventKey {
	var out []eventKey
	for _, r := range raws {
		out = append(out, keyOf(t, r))
	}
	return out
}

func sameKeys(t *testing.T, got, want []eventKey) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d events, want %d", len(got), len(want))
	}
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i].String()
		}
		if i < len(want) {
			w = want[i].String()
		}
		if g != w {
			t.Errorf("event %d: got %q, want %q", i, g, w)
		}
	}
}

func TestRunFromEmptyStore(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	rep, err := w.reconciler(rec).Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatalf("Run: %v (report %+v)", err, rep)
	}
	evs := rec.events()
	sameKeys(t, keys(t, evs), wantFromEmpty())

	want := Report{Channels: 6, DirectChannels: 3, Users: 4, Posts: 16, Versions: 3,
		Ingested:           map[string]int{KindPosted: 12, KindUpdated: 3, KindDeleted: 3},
		DeletedUnrecovered: 3, CascadeDeleted: 1, PostedUnrecovered: 1, HistoryDenied: 1}
	checkReport(t, rep, want)
	if rep.Since != sinceTime().UTC() || rep.Started != testNow || rep.Finished != testNow {
		t.Errorf("report times %v %v %v", rep.Since, rep.Started, rep.Finished)
	}
	for _, b := range rec.batches {
		if len(b) > DefaultBatchSize {
			t.Errorf("batch of %d events", len(b))
		}
	}
	if n := w.fake.hitCount("GET", "/api/v4/posts/"+ids.PublicPostID+"/edit_history", ""); n != 1 {
		t.Errorf("edit history of the public post read %d times, want 1", n)
	}
}

func checkReport(t *testing.T, got, want Report) {
	t.Helper()
	got.Since, got.Started, got.Finished = time.Time{}, time.Time{}, time.Time{}
	if len(got.Ingested) == 0 {
		got.Ingested = nil
	}
	if len(want.Ingested) == 0 {
		want.Ingested = nil
	}
	g, _ := json.Marshal(got)
	wj, _ := json.Marshal(want)
	if string(g) != string(wj) {
		t.Errorf("report\n got %s\nwant %s", g, wj)
	}
}

// byKey finds the rebuilt event with this key.
func byKey(t *testing.T, raws []json.RawMessage, k eventKey) parsed {
	t.Helper()
	for _, r := range raws {
		if p := parse(t, r); p.key == k {
			return p
		}
	}
	t.Fatalf("no event %s", k)
	return parsed{}
}

// hookPosts indexes the plugin hooks' posts: "posted id", "updated id
// update_at" (new and old post), "deleted id".
func hookPosts(t *testing.T) map[string][2]*model.Post {
	out := map[string][2]*model.Post{}
	dec := func(raw json.RawMessage) *model.Post {
		var p model.Post
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	for _, h := range loadHooks(t) {
		switch h.Hook {
		case "MessageHasBeenPosted":
			p := dec(h.Post)
			out["posted "+p.Id] = [2]*model.Post{p}
		case "MessageHasBeenUpdated":
			n := dec(h.NewPost)
			out[fmt.Sprintf("updated %s %d", n.Id, n.UpdateAt)] = [2]*model.Post{n, dec(h.OldPost)}
		case "MessageHasBeenDeleted":
			p := dec(h.Post)
			out["deleted "+p.Id] = [2]*model.Post{p}
		}
	}
	return out
}

// samePost compares the fields the plugin's hook and a rebuilt event must
// agree on.
func samePost(t *testing.T, what string, got, want *model.Post) {
	t.Helper()
	type view struct {
		Id, UserId, ChannelId, RootId, OriginalId, Message string
		CreateAt, UpdateAt, EditAt, DeleteAt               int64
	}
	g := view{got.Id, got.UserId, got.ChannelId, got.RootId, got.OriginalId, got.Message, got.CreateAt, got.UpdateAt, got.EditAt, got.DeleteAt}
	w := view{want.Id, want.UserId, want.ChannelId, want.RootId, want.OriginalId, want.Message, want.CreateAt, want.UpdateAt, want.EditAt, want.DeleteAt}
	if g != w {
		t.Errorf("%s:\n got %+v\nwant %+v", what, g, w)
	}
}

func TestNormalPost(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	if _, err := w.reconciler(rec).Run(context.Background(), sinceTime()); err != nil {
		t.Fatal(err)
	}
	p := byKey(t, rec.events(), eventKey{ids.MentionPostID, KindPosted, 1795346533472})
	listed := responsePost(t, "posts-create-mention-hashtag.json")
	if p.ev.Kind != "posted" || p.ev.OldPost != nil || p.ev.DeletedAt != 0 {
		t.Errorf("event shape: %+v", p.ev)
	}
	if p.ev.TeamID != ids.TeamID || p.ev.ChannelType != "O" || p.ev.Source != "reconcile" {
		t.Errorf("channel facts: team %q type %q source %q", p.ev.TeamID, p.ev.ChannelType, p.ev.Source)
	}
	samePost(t, "posted", p.ev.Post, hookPosts(t)["posted "+ids.MentionPostID][0])
	if p.ev.Post.Message != listed.Message || p.ev.Post.Hashtags != listed.Hashtags {
		t.Errorf("content differs from the created post")
	}
	// The exact JSON: the plugin's fields, then the reconciler's.
	for _, s := range []string{`{"kind":"posted","post":{"id":"` + ids.MentionPostID + `","create_at":1795346533472,"update_at":1795346533472,"edit_at":0,"delete_at":0,`,
		`"team_id":"` + ids.TeamID + `","channel_type":"O","source":"reconcile"}`} {
		if !strings.Contains(string(p.raw), s) {
			t.Errorf("event JSON lacks %s:\n%s", s, p.raw)
		}
	}
}

func TestEditWithHistory(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	if _, err := w.reconciler(rec).Run(context.Background(), sinceTime()); err != nil {
		t.Fatal(err)
	}
	evs, hooks := rec.events(), hookPosts(t)

	// posted: the original text from edit_history, as the hook saw it.
	p := byKey(t, evs, eventKey{ids.PublicPostID, KindPosted, 1795346530484})
	samePost(t, "posted", p.ev.Post, hooks["posted "+ids.PublicPostID][0])

	// each patch: new and old version as MessageHasBeenUpdated had them.
	for _, at := range []int64{1795346535231, 1795346535664} {
		u := byKey(t, evs, eventKey{ids.PublicPostID, KindUpdated, at})
		h := hooks[fmt.Sprintf("updated %s %d", ids.PublicPostID, at)]
		samePost(t, fmt.Sprintf("updated %d post", at), u.ev.Post, h[0])
		if u.ev.OldPost == nil {
			t.Fatalf("updated %d: no old_post", at)
		}
		samePost(t, fmt.Sprintf("updated %d old_post", at), u.ev.OldPost, h[1])
		if u.ev.OldPostBlanked {
			t.Errorf("updated %d: old_post_blanked with the history read", at)
		}
	}

	// project-x's PUT: the new version is the live post; the old one only
	// blanked (history refused), and the version is update_at, not edit_at.
	u := byKey(t, evs, eventKey{ids.PrivatePostID, KindUpdated, 1795346536086})
	h := hooks[fmt.Sprintf("updated %s %d", ids.PrivatePostID, 1795346536086)]
	samePost(t, "PUT post", u.ev.Post, h[0])
	old := h[1].Clone()
	old.Message = ""
	samePost(t, "PUT old_post", u.ev.OldPost, old)
	if !u.ev.OldPostBlanked {
		t.Error("PUT: old_post_blanked not set")
	}
}

func TestDeletes(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	if _, err := w.reconciler(rec).Run(context.Background(), sinceTime()); err != nil {
		t.Fatal(err)
	}
	evs := rec.events()
	d := byKey(t, evs, eventKey{ids.DeletedPostID, KindDeleted, gateway.TombstoneVersion})
	if d.ev.DeletedAt != 1795346536945 || d.ev.Post.DeleteAt != 1795346536945 || d.ev.Post.Message != "" {
		t.Errorf("tombstone: deleted_at %d delete_at %d message %q", d.ev.DeletedAt, d.ev.Post.DeleteAt, d.ev.Post.Message)
	}
	if d.ev.Post.GetProp("deleteBy") != ids.AliceID {
		t.Errorf("tombstone deleteBy %v", d.ev.Post.GetProp("deleteBy"))
	}
	for _, raw := range evs {
		p := parse(t, raw)
		if p.key.kind != KindDeleted && p.ev.Post.DeleteAt != 0 {
			t.Errorf("%s: a deleted post's blanked text ingested as a version", p.key)
		}
	}
}

// TestThreadRootDelete replays the cascade: the root and bob's reply were
// captured when posted and the root's deletion by its hook, but DELETE
// answers {"status":"OK"} with no post and nothing reports the reply. The
// reconciler adds exactly the reply's tombstone.
func TestThreadRootDelete(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	del := loadExchange(t, "posts-delete-thread-root.json")
	if del.Request.Path != "/api/v4/posts/"+ids.DeletedRootID || string(del.wire(t)) != "{\"status\":\"OK\"}" {
		t.Fatalf("the recorded DELETE is not the root's, or answers with more than a status: %s", del.wire(t))
	}
	root := responsePost(t, "posts-create-thread-root-to-delete.json")
	reply := responsePost(t, "posts-create-reply-of-deleted-root.json")
	if reply.RootId != root.Id || root.Id != ids.DeletedRootID || reply.Id != ids.DeletedRootReplyID {
		t.Fatal("fixtures: reply is not under the deleted root")
	}
	rec := newRecorder()
	// Captured before: both posts (versions as created) and the root's
	// deletion, stamped by the plugin's clock when its hook ran.
	var rootDeletedAt int64
	for _, h := range loadHooks(t) {
		if h.Hook == "MessageHasBeenDeleted" && strings.Contains(string(h.Post), root.Id) {
			rootDeletedAt = h.TS
		}
	}
	rec.stored[eventKey{root.Id, KindPosted, root.UpdateAt}] = true
	rec.stored[eventKey{reply.Id, KindPosted, reply.UpdateAt}] = true
	rec.stored[eventKey{root.Id, KindDeleted, gateway.TombstoneVersion}] = true
	// Everything else of the recording is stored too, so that only the
	// thread is left to reconcile.
	for _, k := range wantFromEmpty() {
		if k.id != root.Id && k.id != reply.Id {
			rec.stored[k] = true
		}
	}
	rec.stored[eventKey{ids.DeletedPostID, KindPosted, 1795346536524}] = true

	rep, err := w.reconciler(rec).Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	evs := rec.events()
	sameKeys(t, keys(t, evs), []eventKey{{reply.Id, KindDeleted, gateway.TombstoneVersion}})
	if len(evs) == 1 {
		e := parse(t, evs[0]).ev
		if e.Post.RootId != root.Id || e.DeletedAt != 1795346538287 || e.Post.Message != "" || e.Post.UserId != ids.BobID {
			t.Errorf("reply tombstone: %+v", e.Post)
		}
	}
	if rep.CascadeDeleted != 1 || rep.DeletedUnrecovered != 0 || rep.Total() != 1 {
		t.Errorf("report %+v", rep)
	}
	if rootDeletedAt <= 1795346538287 {
		t.Errorf("the plugin stamped the root's deletion %d ms after delete_at", rootDeletedAt-1795346538287)
	}
}

func TestAlreadySeenNotReingested(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	r := w.reconciler(rec)
	if _, err := r.Run(context.Background(), sinceTime()); err != nil {
		t.Fatal(err)
	}
	n := len(rec.batches)
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.batches) != n {
		t.Errorf("second run called Ingest %d times", len(rec.batches)-n)
	}
	checkReport(t, rep, Report{Channels: 6, DirectChannels: 3, Users: 4, Posts: 16, Versions: 3,
		AlreadySeen: 18, DeletedUnrecovered: 3, PostedUnrecovered: 1, HistoryDenied: 1})
	// The history of the public post is not read again: nothing needs it.
	if n := w.fake.hitCount("GET", "/api/v4/posts/"+ids.PublicPostID+"/edit_history", ""); n != 1 {
		t.Errorf("edit history read %d times over two runs, want 1", n)
	}
}

// TestPageMode: a channel whose since listing hits the row cap is read in
// page mode with include_deleted (the recorded page), with the same result.
func TestPageMode(t *testing.T) {
	w := newWorld(t, 60)
	rec := newRecorder()
	r := w.reconciler(rec)
	r.sinceLimit = 14 // the recorded town-square since listing has 14 rows
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Paged != 1 {
		t.Errorf("paged %d channels, want 1", rep.Paged)
	}
	if n := w.fake.hitCount("GET", "/api/v4/channels/"+ids.TownSquareID+"/posts", "page=0&per_page=60&include_deleted=true"); n != 1 {
		t.Errorf("page mode read %d times", n)
	}
	// The system_join_team posts of the page are older than since.
	sameKeys(t, keys(t, rec.events()), wantFromEmpty())
}

func TestRejectedEventSkipped(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	r := w.reconciler(rec)
	inner := r.Ingest
	r.Ingest = func(ctx context.Context, evs []json.RawMessage) error {
		for _, e := range evs {
			if strings.Contains(string(e), ids.BotPostID) {
				return fmt.Errorf("%w: too large", ErrRejected)
			}
		}
		return inner(ctx, evs)
	}
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 1 || rep.Total() != 17 {
		t.Errorf("rejected %d, ingested %d", rep.Rejected, rep.Total())
	}
	// A failing store stops the run.
	r.Ingest = func(context.Context, []json.RawMessage) error { return errors.New("disk full") }
	if _, err := r.Run(context.Background(), sinceTime()); err == nil || errors.Is(err, ErrIncomplete) {
		t.Errorf("store failure: %v", err)
	}
}

func TestUnreadableChannelIsIncomplete(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	delete(w.fake.routes, routeKey("GET", "/api/v4/channels/"+ids.HRChannelID+"/posts", "include_deleted=true&since="+fmt.Sprint(ids.Since)))
	w.fake.recordedAs("channels-posts-include-deleted-403-regular-user.json", "GET", "/api/v4/channels/"+ids.HRChannelID+"/posts", "include_deleted=true&since="+fmt.Sprint(ids.Since))
	rec := newRecorder()
	rep, err := w.reconciler(rec).Run(context.Background(), sinceTime())
	if !errors.Is(err, ErrIncomplete) || rep.Errors != 1 || rep.Channels != 5 || rep.Total() != 18 {
		t.Errorf("err %v, report %+v", err, rep)
	}
}

func TestNotAdmin(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	r := w.reconciler(rec)
	r.Client = NewClient(w.srv.URL, "someone-else", time.Second)
	_, err := r.Run(context.Background(), sinceTime())
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("err %v", err)
	}
	if _, err := r.Run(context.Background(), time.UnixMilli(0)); err == nil {
		t.Error("since 1970 accepted")
	}
}

func TestSkipDirect(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	r := w.reconciler(rec)
	r.SkipDirect = true
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Channels != 3 || rep.DirectChannels != 0 || rep.Users != 0 || rep.Total() != 15 {
		t.Errorf("report %+v", rep)
	}
}

// TestLag: events newer than Now()-Lag wait for a later run.
func TestLag(t *testing.T) {
	w := newWorld(t, MaxPageSize)
	rec := newRecorder()
	r := w.reconciler(rec)
	// Now is 1795346536000 plus the lag: events up to 11:22:16.000 UTC.
	r.Now = func() time.Time { return time.UnixMilli(1795346536000).Add(5 * time.Minute) }
	r.Lag = 5 * time.Minute
	rep, err := r.Run(context.Background(), sinceTime())
	if err != nil {
		t.Fatal(err)
	}
	// A tombstone's version is fixed; its time is the recorded delete_at.
	deletedAt := map[string]int64{ids.DeletedPostID: 1795346536945, ids.DeletedRootID: 1795346538287, ids.DeletedRootReplyID: 1795346538287}
	var want []eventKey
	for _, k := range wantFromEmpty() {
		at := k.version
		if k.kind == KindDeleted {
			at = deletedAt[k.id]
		}
		if at <= 1795346536000 {
			want = append(want, k)
		}
	}
	sameKeys(t, keys(t, rec.events()), want)
	// Deferred counts changes, so also the creation of the three deleted
	// posts, whose posted events are never rebuilt.
	if d := len(wantFromEmpty()) - len(want) + 3; rep.Deferred != d {
		t.Errorf("deferred %d, want %d", rep.Deferred, d)
	}
	r.Lag = 0
	if _, err := r.Run(context.Background(), sinceTime()); err != nil {
		t.Fatal(err)
	}
	sameKeys(t, keys(t, rec.events()), append(want, remaining(wantFromEmpty(), want)...))
}

func remaining(all, done []eventKey) []eventKey {
	have := map[eventKey]bool{}
	for _, k := range done {
		have[k] = true
	}
	var out []eventKey
	for _, k := range all {
		if !have[k] {
			out = append(out, k)
		}
	}
	return out
}
