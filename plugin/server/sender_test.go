package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

type eventKey struct{ kind, id string }

func keyOf(t *testing.T, raw json.RawMessage) eventKey {
	t.Helper()
	var ev struct {
		Kind string `json:"kind"`
		Post *struct {
			ID string `json:"id"`
		} `json:"post"`
		File *struct {
			ID string `json:"id"`
		} `json:"file"`
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.File != nil {
		return eventKey{ev.Kind, ev.File.ID}
	}
	return eventKey{ev.Kind, ev.Post.ID}
}

// TestBufferedWhileSealgateDown: with sealgate down the events stay in the
// plugin's KV store, across a plugin restart; once sealgate is back on its
// address every event arrives exactly once and the buffer is empty.
func TestBufferedWhileSealgateDown(t *testing.T) {
	addr := freeAddr(t) // nothing listens here yet
	cfg := configuration{SealgateURL: "http://" + addr, IngestToken: testToken}
	kv := newFakeKV()
	want := map[eventKey]bool{}

	first := newTestPlugin(t, kv, cfg)
	for i := range 150 {
		p := synthPost(i)
		first.MessageHasBeenPosted(&plugin.Context{}, p)
		want[eventKey{"posted", p.Id}] = true
		if i%10 == 0 {
			old := p.Clone()
			p.Message += " (edited)"
			p.EditAt = p.CreateAt + 1
			p.UpdateAt = p.EditAt
			first.MessageHasBeenUpdated(&plugin.Context{}, p, old)
			want[eventKey{"updated", p.Id}] = true
		}
	}
	// The sender tries, fails, backs off; nothing is lost.
	waitFor(t, "failed delivery attempts", 5*time.Second, func() bool {
		return first.api.logged("delivery failed") >= 2
	})
	if n := len(kv.keys(queuePrefix)); n != len(want) {
		t.Fatalf("%d events in the KV buffer, want %d", n, len(want))
	}

	// Mattermost restarts the plugin while sealgate is still down.
	if err := first.OnDeactivate(); err != nil {
		t.Fatal(err)
	}
	second := newTestPlugin(t, kv, cfg)
	if n := second.activeQueue().pending(); n != len(want) {
		t.Fatalf("resumed %d events, want %d", n, len(want))
	}
	for i := range 20 { // new events take new keys, never an old one
		p := synthPost(1000 + i)
		second.MessageHasBeenDeleted(&plugin.Context{}, p)
		want[eventKey{"deleted", p.Id}] = true
	}
	if n := len(kv.keys(queuePrefix)); n != len(want) {
		t.Fatalf("%d events in the KV buffer, want %d", n, len(want))
	}

	// sealgate comes back on the same address.
	g := newSealgate(t)
	g.serveAt(t, addr)
	drained(t, second)

	accepted, stored, dup, _ := g.snapshot()
	seen := map[eventKey]int{}
	for _, raw := range accepted {
		seen[keyOf(t, raw)]++
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("%v arrived %d times, want once", k, seen[k])
		}
	}
	if len(accepted) != len(want) || stored != len(want) || dup != 0 {
		t.Fatalf("accepted %d, stored %d, duplicate %d; want %d, %d, 0", len(accepted), stored, dup, len(want), len(want))
	}
	if n := g.records(t); n != int64(len(want)) {
		t.Fatalf("store holds %d records, want %d", n, len(want))
	}
	if kv.get(seqKey) == nil {
		t.Fatal("sequence counter not persisted")
	}
}

// TestHooksNeverWaitForSealgate: while sealgate holds a request open, hooks
// still return at once and their events are durably queued.
func TestHooksNeverWaitForSealgate(t *testing.T) {
	g := newSealgate(t)
	g.gate, g.inFlight = make(chan struct{}), make(chan struct{}, 1)
	url := g.start(t)
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{SealgateURL: url, IngestToken: testToken})

	tp.MessageHasBeenPosted(&plugin.Context{}, synthPost(0))
	select {
	case <-g.inFlight: // the sender is now stuck in a request
	case <-time.After(10 * time.Second):
		t.Fatal("the sender never reached sealgate")
	}
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		for i := 1; i <= 50; i++ {
			p := synthPost(i)
			tp.MessageHasBeenPosted(&plugin.Context{}, p)
			tp.MessageHasBeenUpdated(&plugin.Context{}, p, p)
			tp.MessageHasBeenDeleted(&plugin.Context{}, p)
		}
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("hooks blocked while sealgate was not answering")
	}
	if n := len(kv.keys(queuePrefix)); n != 151 {
		t.Fatalf("%d events queued, want 151", n)
	}
	close(g.gate)
	drained(t, tp)
	if _, stored, _, _ := g.snapshot(); stored != 151 {
		t.Fatalf("stored %d, want 151", stored)
	}
}

// TestRefusedEventIsDeadLettered: an event sealgate refuses (400) is moved
// to a dead: key with the reason, the rest of its batch is delivered, and
// the refusal is logged.
func TestRefusedEventIsDeadLettered(t *testing.T) {
	g := newSealgate(t)
	url := g.start(t)
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{}) // not configured yet: buffered
	bad := map[string]bool{}
	for i := range 42 {
		p := synthPost(i)
		if i == 7 || i == 33 {
			p.UserId = "" // sealgate: "events[i]: missing field post.user_id"
			bad[p.Id] = true
		}
		tp.MessageHasBeenPosted(&plugin.Context{}, p)
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(kv.keys(queuePrefix)); n != 42 {
		t.Fatalf("unconfigured plugin: %d queued, want 42", n)
	}
	tp.configure(t, configuration{SealgateURL: url, IngestToken: testToken}) // one batch of 42
	drained(t, tp)

	accepted, stored, _, refused := g.snapshot()
	if stored != 40 || len(accepted) != 40 || refused == 0 {
		t.Fatalf("stored %d, accepted %d, refused %d; want 40, 40, >0", stored, len(accepted), refused)
	}
	dead := kv.keys(deadPrefix)
	if len(dead) != 2 {
		t.Fatalf("dead keys %v, want 2", dead)
	}
	for _, k := range dead {
		var rec struct {
			Status int    `json:"status"`
			Reason string `json:"reason"`
			Event  struct {
				Post struct {
					ID string `json:"id"`
				} `json:"post"`
			} `json:"event"`
		}
		if err := json.Unmarshal(kv.get(k), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Status != http.StatusBadRequest || !strings.Contains(rec.Reason, "user_id") || !bad[rec.Event.Post.ID] {
			t.Fatalf("dead letter %+v", rec)
		}
	}
	if tp.api.logged("ERROR sealgate: sealgate refused an event") != 2 {
		t.Fatal("refusals not logged")
	}
	if tp.api.logged("message ") != 0 {
		t.Fatal("log holds message content")
	}
	// A later activation reports them.
	tp.OnDeactivate()
	again := newTestPlugin(t, kv, configuration{})
	if again.api.logged("dead") == 0 {
		t.Fatal("dead letters not reported at activation")
	}
}

// TestKVFailureKeepsEventInMemory: if the KV store refuses the write, the
// event is still delivered, and the failure is logged.
func TestKVFailureKeepsEventInMemory(t *testing.T) {
	g := newSealgate(t)
	url := g.start(t)
	kv := newFakeKV()
	kv.failSet = true
	tp := newTestPlugin(t, kv, configuration{SealgateURL: url, IngestToken: testToken})
	tp.MessageHasBeenPosted(&plugin.Context{}, synthPost(1))
	drained(t, tp)
	if _, stored, _, _ := g.snapshot(); stored != 1 {
		t.Fatalf("stored %d, want 1", stored)
	}
	if tp.api.logged("kept in memory only") == 0 {
		t.Fatal("KV failure not logged")
	}
}

// TestSharedFiles: a file that cannot be read yet is retried; a file that
// is gone is dead-lettered; the post itself is never held up by either.
func TestSharedFiles(t *testing.T) {
	g := newSealgate(t)
	url := g.start(t)
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{SealgateURL: url, IngestToken: testToken})
	now := model.GetMillis()
	later := &model.FileInfo{Id: model.NewId(), CreatorId: "u", CreateAt: now, Name: "a.pdf", Extension: "pdf", Size: 3, MimeType: "application/pdf"}
	gone := model.NewId()
	tp.api.On("GetFileInfo", later.Id).Return(nil, model.NewAppError("GetFileInfo", "app.file_info.get.app_error", nil, "", http.StatusInternalServerError)).Twice()
	tp.api.On("GetFileInfo", later.Id).Return(later, nil)
	tp.api.On("GetFile", later.Id).Return([]byte("abc"), nil)
	tp.api.On("GetFileInfo", gone).Return(nil, model.NewAppError("GetFileInfo", "app.file_info.get.app_error", nil, "", http.StatusNotFound))

	p := synthPost(1)
	p.FileIds = model.StringArray{later.Id, gone}
	tp.MessageHasBeenPosted(&plugin.Context{}, p)
	drained(t, tp)

	accepted, stored, _, _ := g.snapshot()
	if stored != 2 || len(accepted) != 2 {
		t.Fatalf("stored %d, want the post and one file", stored)
	}
	var ev struct {
		Kind string    `json:"kind"`
		File fileEvent `json:"file"`
	}
	json.Unmarshal(accepted[1], &ev)
	want := fileEvent{ID: later.Id, UserID: p.UserId, PostID: p.Id, ChannelID: p.ChannelId, CreateAt: now, Name: "a.pdf", Extension: "pdf", Size: 3,
		MIMEType: "application/pdf", SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}
	if ev.Kind != "file" || ev.File != want {
		t.Fatalf("file event %+v, want %+v", ev, want)
	}
	if dead := kv.keys(deadPrefix); len(dead) != 1 || !strings.Contains(string(kv.get(dead[0])), gone) {
		t.Fatalf("dead keys %v", dead)
	}
	tp.api.AssertNumberOfCalls(t, "GetFileInfo", 4)
}

// TestWrongTokenIsRetried: a 401 is not about one event: nothing is
// dead-lettered, and a corrected token delivers the queue.
func TestWrongTokenIsRetried(t *testing.T) {
	g := newSealgate(t)
	url := g.start(t)
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{SealgateURL: url, IngestToken: "wrong-token-0123456789"})
	tp.MessageHasBeenPosted(&plugin.Context{}, synthPost(1))
	waitFor(t, "refused attempts", 5*time.Second, func() bool { return tp.api.logged("sealgate answered 401") >= 2 })
	if len(kv.keys(queuePrefix)) != 1 || len(kv.keys(deadPrefix)) != 0 {
		t.Fatalf("queue %v dead %v", kv.keys(queuePrefix), kv.keys(deadPrefix))
	}
	tp.configure(t, configuration{SealgateURL: url + "/", IngestToken: testToken})
	drained(t, tp)
	if _, stored, _, _ := g.snapshot(); stored != 1 {
		t.Fatalf("stored %d", stored)
	}
}

func TestConfigurationRefusesBadURL(t *testing.T) {
	tp := newTestPlugin(t, newFakeKV(), configuration{SealgateURL: "http://127.0.0.1:1", IngestToken: testToken})
	tp.mu.Lock()
	tp.cfg.SealgateURL = "sealgate.internal:8081"
	tp.mu.Unlock()
	if err := tp.OnConfigurationChange(); err == nil {
		t.Fatal("a URL without scheme was accepted")
	}
	if got := tp.getConfiguration().SealgateURL; got != "http://127.0.0.1:1" {
		t.Fatalf("configuration changed to %q", got)
	}
	for base, want := range map[string]string{
		"https://s:8081":             "https://s:8081/v1/ingest",
		"https://s:8081/":            "https://s:8081/v1/ingest",
		"https://s:8081/v1/ingest":   "https://s:8081/v1/ingest",
		"https://s/prefix/":          "https://s/prefix/v1/ingest",
		"https://s/prefix/v1/ingest": "https://s/prefix/v1/ingest",
	} {
		c := configuration{SealgateURL: base, IngestToken: "t"}
		if got := c.ingestURL(); got != want {
			t.Errorf("%s: %s, want %s", base, got, want)
		}
	}
}
