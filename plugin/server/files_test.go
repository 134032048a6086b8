package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"

	"github.com/sealgate/sealgate/crypto"
)

// TestForwardFileContent: with ForwardFileContent on, a shared file's bytes
// reach sealgate's PUT /v1/files/{id} before its metadata event, which then
// says content_sealed; a second sharing of the same file is answered as a
// duplicate without its bytes being sent again; a file sealgate refuses as
// too large is forwarded as metadata with content_omitted, never
// dead-lettered.
func TestForwardFileContent(t *testing.T) {
	g := newSealgate(t)
	url := g.start(t)
	kv := newFakeKV()
	tp := newTestPlugin(t, kv, configuration{SealgateURL: url, IngestToken: testToken, ForwardFileContent: true})
	now := model.GetMillis()
	content := make([]byte, 2<<20+333)
	rand.Read(content)
	copy(content[1000:], "CANARY-forwarded-file")
	sum := sha256.Sum256(content)
	info := &model.FileInfo{Id: model.NewId(), CreatorId: "u", CreateAt: now, Name: "plan.pdf", Extension: "pdf", Size: int64(len(content)), MimeType: "application/pdf"}
	big := &model.FileInfo{Id: model.NewId(), CreatorId: "u", CreateAt: now, Name: "big.iso", Extension: "iso", Size: 9 << 20, MimeType: "application/octet-stream"}
	tp.api.On("GetFileInfo", info.Id).Return(info, nil)
	tp.api.On("GetFile", info.Id).Return(content, nil)
	tp.api.On("GetFileInfo", big.Id).Return(big, nil)
	tp.api.On("GetFile", big.Id).Return(make([]byte, 9<<20), nil)

	p := synthPost(1)
	p.FileIds = model.StringArray{info.Id, big.Id}
	tp.MessageHasBeenPosted(&plugin.Context{}, p)
	drained(t, tp)

	accepted, stored, _, _ := g.snapshot()
	if stored != 3 {
		t.Fatalf("stored %d events, want the post and two file events", stored)
	}
	files := map[string]fileEvent{}
	for _, raw := range accepted {
		var ev struct {
			Kind string    `json:"kind"`
			File fileEvent `json:"file"`
		}
		json.Unmarshal(raw, &ev)
		if ev.Kind == "file" {
			files[ev.File.ID] = ev.File
		}
	}
	if f := files[info.Id]; !f.ContentSealed || f.ContentOmitted != "" || f.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("forwarded file event %+v", f)
	}
	if f := files[big.Id]; f.ContentSealed || !strings.Contains(f.ContentOmitted, "413") {
		t.Fatalf("too large file event %+v", f)
	}
	if dead := kv.keys(deadPrefix); len(dead) != 0 {
		t.Fatalf("dead-lettered %v", dead)
	}
	ref := g.keys.Ref(info.Id, crypto.KindFile, now)
	row, rc, err := g.store.OpenFile(context.Background(), ref)
	if err != nil {
		t.Fatalf("the content is not in sealgate's store: %v", err)
	}
	rc.Close()
	if row.Size < int64(len(content)) || row.Size > int64(len(content))+4096 {
		t.Fatalf("sealed size %d for %d content bytes", row.Size, len(content))
	}
	g.mu.Lock()
	sentBefore := g.fileBytes
	g.mu.Unlock()

	// The same file shared again (a forwarded message): a duplicate, and
	// its bytes do not cross the network again.
	p2 := synthPost(2)
	p2.FileIds = model.StringArray{info.Id}
	tp.MessageHasBeenPosted(&plugin.Context{}, p2)
	drained(t, tp)
	g.mu.Lock()
	resent := g.fileBytes - sentBefore
	g.mu.Unlock()
	if resent != 0 {
		t.Fatalf("a file sealgate holds was sent again (%d bytes)", resent)
	}
	tp.api.logMu.Lock()
	defer tp.api.logMu.Unlock()
	for _, l := range tp.api.logs {
		if strings.Contains(l, "CANARY") || strings.Contains(l, "plan.pdf") {
			t.Fatalf("plugin log holds content: %s", l)
		}
	}
}
