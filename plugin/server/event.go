package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

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
// bytes themselves go apart, to PUT /v1/files/{id}, and only when
// ForwardFileContent is on; ContentSealed says sealgate holds them.
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
	// ContentSealed: sealgate stored the bytes (sealed) before this event.
	ContentSealed bool `json:"content_sealed,omitempty"`
	// ContentOmitted says why the bytes were not forwarded although
	// ForwardFileContent is on (too large, refused by sealgate).
	ContentOmitted string `json:"content_omitted,omitempty"`
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
// metadata from Mattermost and the SHA-256 of its content, and, with
// ForwardFileContent on, the content sent to sealgate first. permanent says
// the file cannot be resolved ever (it is gone), as opposed to a transient
// error worth retrying (Mattermost or sealgate not answering).
func (p *Plugin) resolveFile(ctx context.Context, cfg *configuration, data []byte) (event []byte, permanent bool, err error) {
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
		if cfg.ForwardFileContent {
			f.ContentOmitted = f.SHA256Omitted
		}
	} else {
		content, appErr := p.API.GetFile(ref.FileID)
		if appErr != nil {
			return nil, appErr.StatusCode == http.StatusNotFound, fmt.Errorf("file content: %s (status %d)", appErr.Id, appErr.StatusCode)
		}
		sum := sha256.Sum256(content)
		f.SHA256 = hex.EncodeToString(sum[:])
		f.Size = int64(len(content))
		if cfg.ForwardFileContent {
			refused, err := p.sendFileContent(ctx, cfg, f, content)
			if err != nil {
				return nil, false, err
			}
			f.ContentSealed, f.ContentOmitted = refused == "", refused
		}
	}
	out, err := json.Marshal(&ingestEvent{Kind: "file", File: f})
	return out, false, err
}

// sendFileContent PUTs the content to sealgate. It returns the reason when
// sealgate refused this content on its own (too large, 400): the metadata
// event then says so instead of being held back forever. Anything else
// that is not 200 is an error to retry. The request waits for sealgate's
// 100 Continue, so a file sealgate already holds is not sent again.
func (p *Plugin) sendFileContent(ctx context.Context, cfg *configuration, f *fileEvent, content []byte) (refused string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, cfg.filesURL(f.ID), bytes.NewReader(content))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.IngestToken)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Expect", "100-continue")
	req.Header.Set("User-Agent", "sealgate-mattermost-plugin")
	req.Header.Set("X-Sealgate-Employee", f.UserID)
	req.Header.Set("X-Sealgate-Create-At", strconv.FormatInt(f.CreateAt, 10))
	req.Header.Set("X-Sealgate-Content-SHA256", f.SHA256)
	resp, err := p.fileClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("send file content: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &e) != nil || e.Error == "" {
		e.Error = http.StatusText(resp.StatusCode)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return "", nil
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		p.API.LogWarn("sealgate: sealgate refused a file's content; its metadata is forwarded without it", "status", resp.StatusCode, "reason", e.Error)
		return fmt.Sprintf("sealgate refused the content (%d): %s", resp.StatusCode, e.Error), nil
	}
	return "", &statusError{status: resp.StatusCode, reason: e.Error}
}
