package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

const fixtures = "../../../shared/fixtures/mattermost-9.11"

// hookLine is one line of plugin-hooks.jsonl: the JSON of a *model.Post a
// real Mattermost 9.11 passed to a v0.4.2 plugin's hook.
type hookLine struct {
	TS      int64           `json:"ts"`
	Hook    string          `json:"hook"`
	Post    json.RawMessage `json:"post"`
	NewPost json.RawMessage `json:"new_post"`
	OldPost json.RawMessage `json:"old_post"`
}

func readHookLines(tb testing.TB) []hookLine {
	tb.Helper()
	f, err := os.Open(fixtures + "/plugin-hooks.jsonl")
	if err != nil {
		tb.Fatalf("fixtures: %v", err)
	}
	defer f.Close()
	var out []hookLine
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var h hookLine
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			tb.Fatal(err)
		}
		out = append(out, h)
	}
	if len(out) != 25 {
		tb.Fatalf("%d recorded hooks, want 25", len(out))
	}
	return out
}

// recordedFile is the file of the recording (http/files-upload.json): its
// FileInfo as Mattermost answered the upload, and its content from the
// multipart request.
func recordedFile(tb testing.TB) (*model.FileInfo, []byte) {
	tb.Helper()
	raw, err := os.ReadFile(fixtures + "/http/files-upload.json")
	if err != nil {
		tb.Fatal(err)
	}
	var x struct {
		Request struct {
			Headers map[string]string `json:"headers"`
			Body    string            `json:"body"`
		} `json:"request"`
		Response struct {
			Body struct {
				FileInfos []*model.FileInfo `json:"file_infos"`
			} `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		tb.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(x.Request.Headers["Content-Type"])
	if err != nil {
		tb.Fatal(err)
	}
	mr := multipart.NewReader(strings.NewReader(x.Request.Body), params["boundary"])
	var content []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		if part.FormName() == "files" {
			content, _ = io.ReadAll(part)
		}
	}
	info := x.Response.Body.FileInfos[0]
	if int64(len(content)) != info.Size {
		tb.Fatalf("recorded file: %d bytes of content, FileInfo says %d", len(content), info.Size)
	}
	return info, content
}

// callHook calls the plugin's hook for one recorded line, as Mattermost
// would, and returns the ingest events the plugin must send for it.
func callHook(tb testing.TB, p *Plugin, h hookLine, file *model.FileInfo, content []byte) []map[string]any {
	tb.Helper()
	post := func(raw json.RawMessage) *model.Post {
		var p model.Post
		if err := json.Unmarshal(raw, &p); err != nil {
			tb.Fatal(err)
		}
		// The server holds message attachments typed
		// ([]*model.SlackAttachment, as ParseSlackAttachment leaves them)
		// and passes them to the plugin that way over gob; decoded from
		// JSON they would be maps with sorted keys.
		if _, ok := p.GetProp(model.PostPropsAttachments).([]any); ok {
			p.AddProp(model.PostPropsAttachments, p.Attachments())
		}
		return &p
	}
	var want []map[string]any
	c := &plugin.Context{RequestId: "r"}
	switch h.Hook {
	case "MessageHasBeenPosted":
		pp := post(h.Post)
		p.MessageHasBeenPosted(c, pp)
		want = append(want, map[string]any{"kind": "posted", "post": h.Post})
		for _, id := range pp.FileIds {
			if id != file.Id {
				tb.Fatalf("unknown file %s", id)
			}
			sum := sha256.Sum256(content)
			want = append(want, map[string]any{"kind": "file", "file": map[string]any{
				"id": file.Id, "user_id": pp.UserId, "post_id": pp.Id, "channel_id": pp.ChannelId,
				"create_at": file.CreateAt, "name": file.Name, "extension": file.Extension,
				"size": file.Size, "mime_type": file.MimeType, "sha256": hex.EncodeToString(sum[:]),
			}})
		}
	case "MessageHasBeenUpdated":
		p.MessageHasBeenUpdated(c, post(h.NewPost), post(h.OldPost))
		want = append(want, map[string]any{"kind": "updated", "post": h.NewPost, "old_post": h.OldPost})
	case "MessageHasBeenDeleted":
		pp := post(h.Post)
		if pp.DeleteAt != 0 {
			tb.Fatalf("recorded delete hook has delete_at %d; the plugin must stamp the time", pp.DeleteAt)
		}
		p.MessageHasBeenDeleted(c, pp)
		want = append(want, map[string]any{"kind": "deleted", "post": h.Post, "deleted_at": h.TS})
	default:
		tb.Fatalf("unknown hook %q", h.Hook)
	}
	return want
}

// normalize round-trips v through JSON so that equal JSON compares equal.
func normalize(tb testing.TB, v any) any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestRecordedHooks feeds every recorded hook payload into the plugin and
// checks, against a real sealgate gateway, that each yields exactly the
// expected ingest event, that the recorded post JSON is forwarded byte for
// byte, and that all of them are stored once.
func TestRecordedHooks(t *testing.T) {
	g := newSealgate(t)
	url := g.start(t)
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{SealgateURL: url, IngestToken: testToken})
	info, content := recordedFile(t)
	// The plugin reads the shared file's metadata and content back through
	// the plugin API (in the background, after the post was made).
	attached := *info
	attached.PostId = "p979mndzqjrhtmg7fs43mnbhae"
	tp.api.On("GetFileInfo", info.Id).Return(&attached, nil)
	tp.api.On("GetFile", info.Id).Return(content, nil)

	lines := readHookLines(t)
	type row struct {
		name string
		want map[string]any
	}
	var rows []row
	for i, h := range lines {
		stamp := h.TS
		tp.now = func() time.Time { return time.UnixMilli(stamp) } // the delete time the plugin stamps
		for _, w := range callHook(t, tp.Plugin, h, info, content) {
			rows = append(rows, row{fmt.Sprintf("%02d-%s-%s", i, h.Hook, w["kind"]), w})
		}
	}
	drained(t, tp)

	accepted, stored, dup, refused := g.snapshot()
	if len(accepted) != len(rows) || len(rows) != 26 {
		t.Fatalf("sealgate accepted %d events, want %d (25 hooks + 1 shared file)", len(accepted), len(rows))
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			got := normalize(t, accepted[i])
			if want := normalize(t, r.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("event\n got %s\nwant %s", accepted[i], mustJSON(r.want))
			}
			// The post is Mattermost's own JSON, unchanged.
			var ev map[string]json.RawMessage
			json.Unmarshal(accepted[i], &ev)
			for _, f := range []string{"post", "old_post"} {
				if w, ok := r.want[f].(json.RawMessage); ok && !bytes.Equal(ev[f], w) {
					t.Fatalf("%s differs from the recorded JSON:\n got %s\nwant %s", f, ev[f], w)
				}
			}
			if r.want["kind"] == "deleted" && ev["deleted_at"] == nil {
				t.Fatal("deleted event without deleted_at")
			}
		})
	}
	if stored != 26 || dup != 0 || refused != 0 {
		t.Fatalf("sealgate stored %d, duplicate %d, refused %d; want 26, 0, 0", stored, dup, refused)
	}
	if n := g.records(t); n != 26 {
		t.Fatalf("store holds %d records, want 26", n)
	}
	if keys := kv.keys(deadPrefix); len(keys) != 0 {
		t.Fatalf("dead-lettered: %v", keys)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDeleteStampsTime checks that a deletion carries the time the hook
// ran: the hook's post has delete_at 0.
func TestDeleteStampsTime(t *testing.T) {
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{}) // not configured: events stay queued
	var h hookLine
	for _, l := range readHookLines(t) {
		if l.Hook == "MessageHasBeenDeleted" {
			h = l
			break
		}
	}
	var post model.Post
	json.Unmarshal(h.Post, &post)
	before := time.Now().UnixMilli()
	tp.MessageHasBeenDeleted(&plugin.Context{}, &post)
	after := time.Now().UnixMilli()
	keys := kv.keys(queuePrefix)
	if len(keys) != 1 {
		t.Fatalf("queued %v", keys)
	}
	var ev struct {
		Kind      string `json:"kind"`
		DeletedAt int64  `json:"deleted_at"`
		Post      struct {
			ID       string `json:"id"`
			DeleteAt int64  `json:"delete_at"`
			Message  string `json:"message"`
		} `json:"post"`
	}
	if err := json.Unmarshal(kv.get(keys[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Kind != "deleted" || ev.DeletedAt < before || ev.DeletedAt > after || ev.Post.ID != post.Id || ev.Post.DeleteAt != 0 || ev.Post.Message != post.Message {
		t.Fatalf("got %+v, want deleted_at in [%d, %d] and the pre-deletion post", ev, before, after)
	}
}

// TestImplementedHooks checks the plugin implements the hooks it relies on
// with the exact v0.4.2 signatures (the RPC layer silently skips a method
// whose signature differs).
func TestImplementedHooks(t *testing.T) {
	hooks := reflect.TypeFor[plugin.Hooks]()
	impl := reflect.TypeFor[*Plugin]()
	for _, name := range []string{"OnActivate", "OnDeactivate", "OnConfigurationChange", "ExecuteCommand",
		"MessageHasBeenPosted", "MessageHasBeenUpdated", "MessageHasBeenDeleted"} {
		want, _ := hooks.MethodByName(name)
		got, ok := impl.MethodByName(name)
		if !ok {
			t.Fatalf("%s not implemented", name)
		}
		if got.Type.NumIn() != want.Type.NumIn()+1 || got.Type.NumOut() != want.Type.NumOut() {
			t.Fatalf("%s: signature %s, want %s", name, got.Type, want.Type)
		}
		for i := 0; i < want.Type.NumIn(); i++ {
			if got.Type.In(i+1) != want.Type.In(i) {
				t.Fatalf("%s: signature %s, want %s", name, got.Type, want.Type)
			}
		}
		for i := 0; i < want.Type.NumOut(); i++ {
			if got.Type.Out(i) != want.Type.Out(i) {
				t.Fatalf("%s: signature %s, want %s", name, got.Type, want.Type)
			}
		}
	}
	// The plugin never rewrites posts or uploads.
	for _, name := range []string{"MessageWillBePosted", "MessageWillBeUpdated", "FileWillBeUploaded"} {
		if _, ok := impl.MethodByName(name); ok {
			t.Fatalf("%s is implemented: the plugin must never sit in the posting path", name)
		}
	}
}
