package release_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/release"
)

// sharedFile ingests a file's metadata event and, if content is not nil,
// stores its content through a fresh pipeline: another sealer, so under
// another key record of the same day, as after a gateway restart between
// the two.
func (f *fixture) sharedFile(employee, channel, fileID string, at time.Time, content []byte) {
	f.t.Helper()
	sum := sha256.Sum256(content)
	meta := map[string]any{"id": fileID, "user_id": employee, "post_id": "p" + fileID[1:], "channel_id": channel,
		"create_at": at.UnixMilli(), "name": "plan-" + fileID + ".pdf", "mime_type": "application/pdf", "size": len(content), "sha256": hex.EncodeToString(sum[:])}
	if content != nil {
		meta["content_sealed"] = true
	}
	f.ingest([]map[string]any{{"kind": "file", "file": meta}})
	if content == nil {
		return
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: f.keys, Slots: f.recipients(), Quorum: 3, Grace: 2 * time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	p := &gateway.Pipeline{Sealer: sealer, Keys: f.keys, Store: f.store}
	res, err := p.StoreFile(f.ctx, gateway.FileUpload{Employee: employee, FileID: fileID, CreateAt: at, SHA256: sum, Limit: 16 << 20}, bytes.NewReader(content))
	if err != nil || !res.Stored {
		f.t.Fatalf("store file: %+v, %v", res, err)
	}
}

func TestSharedFile(t *testing.T) {
	f := newFixture(t)
	content := make([]byte, 3<<20+99)
	rand.Read(content)
	const (
		inWindow   = "f1111111111111111111111111"
		metaOnly   = "f2222222222222222222222222"
		bobs       = "f3333333333333333333333333"
		outside    = "f4444444444444444444444444"
		inExcluded = "f5555555555555555555555555"
	)
	f.sharedFile(alice, channel1, inWindow, f.at(12, 9, 30), content)
	f.sharedFile(alice, channel1, metaOnly, f.at(13, 9, 30), nil)
	f.sharedFile(bob, channel1, bobs, f.at(12, 10, 0), []byte("bob's file"))
	f.sharedFile(alice, channel1, outside, f.at(25, 10, 0), []byte("outside the window"))
	f.sharedFile(alice, excluded, inExcluded, f.at(12, 11, 0), []byte("works council file"))

	o := f.draft(alice, 10, 20)
	f.file(o)
	// Before the quorum nothing is released.
	_, err := f.desk.SharedFile(f.ctx, carol, o.ID, inWindow)
	f.refused(err, release.ErrGone, "not_active")
	for _, slot := range []int{0, 1, 2} {
		if _, err := f.approve(o.ID, slot); err != nil {
			t.Fatal(err)
		}
	}

	// The export says which files can be downloaded.
	var exp bytes.Buffer
	if _, err := f.desk.Export(f.ctx, carol, o.ID, "json", &exp); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(exp.Bytes(), []byte(`"content_sealed": true`)) {
		t.Fatal("the export does not mark the file whose content is held")
	}

	rf, err := f.desk.SharedFile(f.ctx, carol, o.ID, inWindow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rf.Content)
	rf.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("released content differs (%d bytes, %v)", len(got), err)
	}
	if rf.Meta.ID != inWindow || rf.Meta.Name != "plan-"+inWindow+".pdf" || !rf.Meta.ContentSealed {
		t.Fatalf("metadata %+v", rf.Meta)
	}
	var reads int
	for _, e := range f.audited() {
		if e.Action == audit.ActionFileRead && e.OrderID == o.ID && e.ActorRole == "requester" {
			reads++
		}
	}
	if reads != 1 {
		t.Fatalf("%d file_read audit entries, want 1", reads)
	}

	// Refusals, each audited.
	_, err = f.desk.SharedFile(f.ctx, bob, o.ID, inWindow)
	f.refused(err, release.ErrForbidden, "not_requester")
	_, err = f.desk.SharedFile(f.ctx, alice, o.ID, inWindow)
	f.refused(err, release.ErrForbidden, "not_requester")
	for _, id := range []string{bobs, outside, inExcluded, "f9999999999999999999999999"} {
		_, err = f.desk.SharedFile(f.ctx, carol, o.ID, id)
		f.refused(err, release.ErrNotFound, "no_file")
	}
	_, err = f.desk.SharedFile(f.ctx, carol, o.ID, metaOnly)
	f.refused(err, release.ErrNotFound, "no_content")

	// After a gateway restart the requester's read restores the keys.
	f.restart()
	rf, err = f.desk.SharedFile(f.ctx, carol, o.ID, inWindow)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rf.Content)
	rf.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("after restart: %v", err)
	}
}
