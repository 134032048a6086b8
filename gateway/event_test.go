package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/sealgate/sealgate/crypto"
)

const fixtures = "../../shared/fixtures/mattermost-9.11"

var testLimits = Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}

// hookLine is one line of plugin-hooks.jsonl.
type hookLine struct {
	TS      int64           `json:"ts"`
	Hook    string          `json:"hook"`
	Post    json.RawMessage `json:"post"`
	NewPost json.RawMessage `json:"new_post"`
	OldPost json.RawMessage `json:"old_post"`
}

// fixtureBatch turns the recorded plugin hook payloads into one ingest batch
// the way the plugin forwards them, and returns what each event must become.
func fixtureBatch(t *testing.T) ([]byte, []crypto.Event) {
	t.Helper()
	f, err := os.Open(fixtures + "/plugin-hooks.jsonl")
	if err != nil {
		t.Fatalf("fixtures: %v", err)
	}
	defer f.Close()
	var events []map[string]any
	var want []crypto.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var h hookLine
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatal(err)
		}
		var p model.Post
		ev := map[string]any{}
		switch h.Hook {
		case "MessageHasBeenPosted":
			json.Unmarshal(h.Post, &p)
			ev["kind"], ev["post"] = "posted", h.Post
			want = append(want, crypto.Event{Employee: p.UserId, PostID: p.Id, Kind: crypto.KindPosted, Version: p.UpdateAt, Time: time.UnixMilli(p.CreateAt)})
		case "MessageHasBeenUpdated":
			json.Unmarshal(h.NewPost, &p)
			ev["kind"], ev["post"], ev["old_post"] = "updated", h.NewPost, h.OldPost
			// update_at, not edit_at, is the version: it also moves on
			// pin changes, and a full PUT sets it a millisecond after edit_at.
			v := max(p.UpdateAt, p.EditAt)
			want = append(want, crypto.Event{Employee: p.UserId, PostID: p.Id, Kind: crypto.KindEdited, Version: v, Time: time.UnixMilli(v)})
		case "MessageHasBeenDeleted":
			json.Unmarshal(h.Post, &p)
			if p.DeleteAt != 0 {
				t.Fatalf("fixture delete hook carries delete_at %d; the plugin must stamp it", p.DeleteAt)
			}
			ev["kind"], ev["post"], ev["deleted_at"] = "deleted", h.Post, h.TS
			want = append(want, crypto.Event{Employee: p.UserId, PostID: p.Id, Kind: crypto.KindDeleted, Version: TombstoneVersion, Time: time.UnixMilli(h.TS)})
		default:
			t.Fatalf("unknown hook %q", h.Hook)
		}
		events = append(events, ev)
	}
	body, _ := json.Marshal(map[string]any{"events": events})
	return body, want
}

func TestParseRecordedHooks(t *testing.T) {
	body, want := fixtureBatch(t)
	got, err := ParseBatch(body, testLimits, time.UnixMilli(1795346540000))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(got) != 25 {
		t.Fatalf("%d events, want %d (25 recorded hooks)", len(got), len(want))
	}
	kinds := map[crypto.Kind]int{}
	for i := range got {
		g, w := got[i], want[i]
		if g.Employee != w.Employee || g.PostID != w.PostID || g.Kind != w.Kind || g.Version != w.Version || !g.Time.Equal(w.Time) {
			t.Errorf("event %d: got %s %s %s v%d %s, want %s %s %s v%d %s", i, g.Employee, g.PostID, g.Kind, g.Version, g.Time, w.Employee, w.PostID, w.Kind, w.Version, w.Time)
		}
		if !json.Valid(g.Body) {
			t.Errorf("event %d: sealed body is not the event JSON", i)
		}
		kinds[g.Kind]++
	}
	if kinds[crypto.KindPosted] != 20 || kinds[crypto.KindEdited] != 3 || kinds[crypto.KindDeleted] != 2 {
		t.Fatalf("kinds %v", kinds)
	}
}

// TestPostHeaderFollowsModelPost keeps the JSON names the gateway reads in
// step with Mattermost's own model.Post.
func TestPostHeaderFollowsModelPost(t *testing.T) {
	p := model.Post{Id: "p", UserId: "u", ChannelId: "c", CreateAt: 1, UpdateAt: 2, EditAt: 3, DeleteAt: 4, FileIds: model.StringArray{"f1", "f2"}}
	raw, _ := json.Marshal(&p)
	var h postHeader
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, postHeader{ID: "p", UserID: "u", ChannelID: "c", CreateAt: 1, UpdateAt: 2, EditAt: 3, DeleteAt: 4, FileIDs: []string{"f1", "f2"}}) {
		t.Fatalf("got %+v", h)
	}
	f := model.FileInfo{Id: "f", CreatorId: "u", PostId: "p", ChannelId: "c", CreateAt: 5}
	raw, _ = json.Marshal(&f)
	var fh fileHeader
	json.Unmarshal(raw, &fh)
	// FileInfo names its author creator_id, so the file event carries user_id
	// explicitly; the other names match.
	if fh.ID != "f" || fh.PostID != "p" || fh.ChannelID != "c" || fh.CreateAt != 5 {
		t.Fatalf("got %+v", fh)
	}
}

func TestParseRefusals(t *testing.T) {
	now := time.UnixMilli(1795346540000)
	post := func(extra string) string {
		return `{"kind":"posted","post":{"id":"p1","user_id":"u1","channel_id":"c1","create_at":1795346528366,"message":"CANARY-secret"` + extra + `}}`
	}
	big := `{"kind":"posted","post":{"id":"p1","user_id":"u1","channel_id":"c1","create_at":1795346528366,"message":"` + strings.Repeat("x", 2000) + `"}}`
	cases := []struct {
		name, body string
		status     int
		reason     string
	}{
		{"empty", ``, 400, "empty or truncated"},
		{"truncated", `{"events":[` + post(""), 400, "truncated"},
		{"malformed", `{"events":[{"kind":"posted",,}]}`, 400, "malformed JSON at byte"},
		{"not an object", `[1,2]`, 400, "wrong type"},
		{"trailing data", `{"events":[]} {}`, 400, "data after"},
		{"missing events", `{"evts":[]}`, 400, "missing field events"},
		{"missing kind", `{"events":[{"post":{"id":"p"}}]}`, 400, "events[0]: missing field kind"},
		{"unknown kind", `{"events":[` + post("") + `,{"kind":"reacted","post":{}}]}`, 400, "events[1]: unknown kind"},
		{"missing post", `{"events":[{"kind":"posted"}]}`, 400, "missing field post"},
		{"missing post id", `{"events":[{"kind":"posted","post":{"user_id":"u","channel_id":"c","create_at":5}}]}`, 400, "missing field post.id"},
		{"missing user id", `{"events":[{"kind":"posted","post":{"id":"p","channel_id":"c","create_at":5}}]}`, 400, "missing field post.user_id"},
		{"missing channel id", `{"events":[{"kind":"posted","post":{"id":"p","user_id":"u","create_at":5}}]}`, 400, "missing field post.channel_id"},
		{"missing time", `{"events":[{"kind":"posted","post":{"id":"p","user_id":"u","channel_id":"c"}}]}`, 400, "missing event time"},
		{"delete without time", `{"events":[{"kind":"deleted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":5}}]}`, 400, "missing delete time"},
		{"future", `{"events":[{"kind":"posted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":9999999999999}}]}`, 400, "future"},
		{"wrong type", `{"events":[{"kind":"posted","post":{"id":5}}]}`, 400, "wrong type"},
		{"file without file", `{"events":[{"kind":"file"}]}`, 400, "missing field file"},
		{"oversize event", `{"events":[` + big + `]}`, 413, "limit is 1024 per event"},
		{"too many events", `{"events":[` + post("") + `,` + post("") + `,` + post("") + `]}`, 413, "limit is 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseBatch([]byte(c.body), Limits{MaxPostBytes: 1024, MaxBatchEvents: 2}, now)
			var bad *BadRequestError
			if !errors.As(err, &bad) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if bad.Status != c.status || !strings.Contains(bad.Reason, c.reason) {
				t.Fatalf("got %d %q, want %d containing %q", bad.Status, bad.Reason, c.status, c.reason)
			}
			if strings.Contains(bad.Reason, "CANARY") || strings.Contains(bad.Reason, "xxxx") {
				t.Fatalf("reason quotes content: %q", bad.Reason)
			}
		})
	}
}

func TestParseKinds(t *testing.T) {
	now := time.UnixMilli(1795346540000)
	body := `{"events":[
	 {"kind":"posted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000,"update_at":0}},
	 {"kind":"updated","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000,"update_at":2000,"edit_at":2000}},
	 {"kind":"deleted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000,"delete_at":3000}},
	 {"kind":"file","file":{"id":"f","user_id":"u","post_id":"p","channel_id":"c","create_at":1500,"name":"x.pdf"}}]}`
	evs, err := ParseBatch([]byte(body), testLimits, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind    crypto.Kind
		id      string
		version int64
	}{{crypto.KindPosted, "p", 1000}, {crypto.KindEdited, "p", 2000}, {crypto.KindDeleted, "p", TombstoneVersion}, {crypto.KindFile, "f", 1500}}
	for i, w := range want {
		if evs[i].Kind != w.kind || evs[i].PostID != w.id || evs[i].Version != w.version || evs[i].Employee != "u" {
			t.Errorf("event %d: %+v", i, evs[i])
		}
	}
	if !evs[2].Time.Equal(time.UnixMilli(3000)) {
		t.Errorf("tombstone time %v, want the delete time", evs[2].Time)
	}
}

// TestOneTombstoneAcrossPaths: the plugin (its own clock, delete_at 0), the
// proxy and the reconciliation (the server's delete_at) report one deletion
// at three different times; all three are the same tombstone (same post,
// kind and version), so the store keeps one.
func TestOneTombstoneAcrossPaths(t *testing.T) {
	now := time.UnixMilli(1795346540000)
	body := `{"events":[
	 {"kind":"deleted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000,"delete_at":0},"deleted_at":3004},
	 {"kind":"deleted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000,"delete_at":3000},"request_id":"r"},
	 {"kind":"deleted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000,"delete_at":3000},"source":"reconcile"}]}`
	evs, err := ParseBatch([]byte(body), testLimits, now)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		if evs[i].PostID != evs[0].PostID || evs[i].Kind != evs[0].Kind || evs[i].Version != evs[0].Version {
			t.Fatalf("event %d is another tombstone: %+v vs %+v", i, evs[i].Event, evs[0].Event)
		}
	}
}
