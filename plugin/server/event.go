package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/mattermost/mattermost/server/public/model"
)

// ingestEvent is one event of POST /v1/ingest (gateway/event.go). Post and
// OldPost are Mattermost's own model.Post JSON, exactly as the hook got
// them; the gateway seals the whole event as received.
type ingestEvent struct {
	Kind      string      `json:"kind"`
	Post      *model.Post `json:"post,omitempty"`
	OldPost   *model.Post `json:"old_post,omitempty"`
	DeletedAt int64       `json:"deleted_at,omitempty"`
	File      *fileEvent  `json:"file,omitempty"`
}

// fileEvent describes a file shared in a post: model.FileInfo's JSON names,
// the post's author, post and channel, and the SHA-256 of the content. The
// file bytes themselves are not forwarded.
type fileEvent struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	PostID    string `json:"post_id"`
	ChannelID string `json:"channel_id"`
	CreateAt  int64  `json:"create_at"`
	Name      string `json:"name"`
	Extension string `json:"extension"`
	Size      int64  `json:"size"`
	MIMEType  string `json:"mime_type"`
	SHA256    string `json:"sha256,omitempty"`
	// SHA256Omitted says why SHA256 is missing (a file above maxHashBytes).
	SHA256Omitted string `json:"sha256_omitted,omitempty"`
}

// fileRef is what the hook queues for an attached file: reading the file
// to hash it is the sender's job, off the hook. Its queued JSON starts with
// fileRefPrefix, an event's with `{"kind":`.
type fileRef struct {
	FileID    string `json:"file_id"`
	PostID    string `json:"post_id"`
	UserID    string `json:"user_id"`
	ChannelID string `json:"channel_id"`
	CreateAt  int64  `json:"create_at"`
}

type fileRefEnvelope struct {
	Ref fileRef `json:"file_ref"`
}

var fileRefPrefix = []byte(`{"file_ref":`)

func isFileRef(data []byte) bool { return bytes.HasPrefix(data, fileRefPrefix) }

// maxHashBytes bounds the file the plugin reads back to hash (the plugin
// API returns a file's bytes in one piece). Larger files are forwarded
// with their metadata and sha256_omitted.
const maxHashBytes = 512 << 20

// capture queues one event. It never calls sealgate.
func (p *Plugin) capture(ev *ingestEvent) {
	data, err := json.Marshal(ev)
	if err != nil {
		p.API.LogError("sealgate: event not captured: cannot encode it", "kind", ev.Kind, "err", err.Error())
		return
	}
	p.enqueue(ev.Kind, data)
}

func (p *Plugin) captureFile(post *model.Post, fileID string) {
	data, err := json.Marshal(fileRefEnvelope{Ref: fileRef{FileID: fileID, PostID: post.Id, UserID: post.UserId, ChannelID: post.ChannelId, CreateAt: post.CreateAt}})
	if err != nil {
		p.API.LogError("sealgate: file not captured: cannot encode it", "err", err.Error())
		return
	}
	p.enqueue("file", data)
}

func (p *Plugin) enqueue(kind string, data []byte) {
	q := p.activeQueue()
	if q == nil {
		// Hooks only arrive between OnActivate and OnDeactivate.
		p.API.LogError("sealgate: event not captured: plugin is not active", "kind", kind)
		return
	}
	q.add(data)
}

// resolveFile turns a queued file reference into a file event: the file's
// metadata from Mattermost and the SHA-256 of its content. permanent says
// the file cannot be resolved ever (it is gone), as opposed to a transient
// error worth retrying.
func (p *Plugin) resolveFile(data []byte) (event []byte, permanent bool, err error) {
	var env fileRefEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, true, fmt.Errorf("unreadable file reference: %v", err)
	}
	ref := env.Ref
	info, appErr := p.API.GetFileInfo(ref.FileID)
	if appErr != nil {
		return nil, appErr.StatusCode == http.StatusNotFound, fmt.Errorf("file info: %s (status %d)", appErr.Id, appErr.StatusCode)
	}
	f := &fileEvent{
		ID: info.Id, UserID: ref.UserID, PostID: ref.PostID, ChannelID: ref.ChannelID, CreateAt: info.CreateAt,
		Name: info.Name, Extension: info.Extension, Size: info.Size, MIMEType: info.MimeType,
	}
	if f.ID == "" {
		f.ID = ref.FileID
	}
	if f.CreateAt == 0 {
		f.CreateAt = ref.CreateAt
	}
	if info.Size > maxHashBytes {
		f.SHA256Omitted = fmt.Sprintf("file larger than %d bytes", maxHashBytes)
	} else {
		content, appErr := p.API.GetFile(ref.FileID)
		if appErr != nil {
			return nil, appErr.StatusCode == http.StatusNotFound, fmt.Errorf("file content: %s (status %d)", appErr.Id, appErr.StatusCode)
		}
		sum := sha256.Sum256(content)
		f.SHA256 = hex.EncodeToString(sum[:])
		f.Size = int64(len(content))
	}
	out, err := json.Marshal(&ingestEvent{Kind: "file", File: f})
	return out, false, err
}
