// Command plugin-linux-amd64 is sealgate's Mattermost server plugin, the
// primary capture path: it forwards every post, edit, deletion and shared
// file to sealgate's POST /v1/ingest (and, with ForwardFileContent, each
// file's bytes to PUT /v1/files/{id} before its metadata), and registers
// /sealgate, which shows an employee the investigation orders that named
// them.
//
// The hooks never wait for sealgate and never alter anything: each event is
// written to the plugin's key-value store ("q:<seq>", the durable buffer) and
// handed to one background sender, which batches up to 100 events, posts
// them, and deletes the keys only after sealgate answered 200 (durably
// stored). Errors, 5xx and an unreachable sealgate are retried with
// exponential backoff (capped at a minute); an event sealgate refuses on its
// own (400/413 when sent alone) is moved to a "dead:<seq>" key and logged,
// never dropped silently. Queued keys survive restarts and are resumed on
// activation.
//
// Build the uploadable bundle with plugin/build.sh.
package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

// pluginID is the manifest id (plugin/plugin.json).
const pluginID = "com.sealgate.capture"

// Plugin is the sealgate capture plugin.
type Plugin struct {
	plugin.MattermostPlugin

	configMu sync.RWMutex
	config   *configuration

	runMu  sync.Mutex // guards the fields below against activate/deactivate races
	q      *queue
	snd    *sender
	cancel context.CancelFunc
	done   chan struct{}

	// Seams for tests; zero values mean the production defaults.
	now        func() time.Time // stamps deleted_at
	client     *http.Client     // ingest and order API requests
	fileClient *http.Client     // file contents: no overall timeout, waits for 100 Continue
	minBackoff time.Duration    // first retry delay (1s)
	maxBackoff time.Duration    // retry delay cap (1 minute)
}

func main() {
	plugin.ClientMain(&Plugin{})
}

// OnActivate resumes the durable buffer, starts the sender and registers
// /sealgate.
func (p *Plugin) OnActivate() error {
	if p.now == nil {
		p.now = time.Now
	}
	if p.client == nil {
		p.client = &http.Client{Timeout: 30 * time.Second}
	}
	if p.fileClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ExpectContinueTimeout = 5 * time.Second
		t.ResponseHeaderTimeout = 2 * time.Minute
		p.fileClient = &http.Client{Transport: t}
	}
	if p.minBackoff <= 0 {
		p.minBackoff = time.Second
	}
	if p.maxBackoff <= 0 {
		p.maxBackoff = time.Minute
	}
	q, err := openQueue(p.API)
	if err != nil {
		return err
	}
	if n := q.pending(); n > 0 {
		p.API.LogInfo("sealgate: resuming queued events", "pending", n)
	}
	if q.deadCount > 0 {
		p.API.LogWarn("sealgate: the key-value store holds events sealgate refused; see dead:* keys", "dead", q.deadCount)
	}
	if err := p.API.RegisterCommand(sealgateCommand()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{p: p, q: q, kick: make(chan struct{}, 1)}
	done := make(chan struct{})
	p.runMu.Lock()
	p.q, p.snd, p.cancel, p.done = q, s, cancel, done
	p.runMu.Unlock()
	go func() {
		defer close(done)
		s.run(ctx)
	}()
	return nil
}

// OnDeactivate stops the sender. Whatever it had not delivered stays in the
// key-value store for the next activation.
func (p *Plugin) OnDeactivate() error {
	p.runMu.Lock()
	cancel, done := p.cancel, p.done
	p.q, p.snd, p.cancel, p.done = nil, nil, nil, nil
	p.runMu.Unlock()
	if cancel != nil {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.API.LogWarn("sealgate: sender did not stop in 10s; its events stay queued")
		}
	}
	return nil
}

func (p *Plugin) activeQueue() *queue {
	p.runMu.Lock()
	defer p.runMu.Unlock()
	return p.q
}

func (p *Plugin) kickSender() {
	p.runMu.Lock()
	s := p.snd
	p.runMu.Unlock()
	if s != nil {
		s.wake()
	}
}

// MessageHasBeenPosted queues the post, and a reference to each attached
// file (its metadata and SHA-256 are read in the background).
func (p *Plugin) MessageHasBeenPosted(_ *plugin.Context, post *model.Post) {
	if post == nil {
		return
	}
	p.capture(&ingestEvent{Kind: "posted", Post: post})
	for _, id := range post.FileIds {
		p.captureFile(post, id)
	}
}

// MessageHasBeenUpdated queues the new version with the old one. The old
// post is Mattermost's archived copy: its id is new, original_id is the
// live post.
func (p *Plugin) MessageHasBeenUpdated(_ *plugin.Context, newPost, oldPost *model.Post) {
	if newPost == nil {
		return
	}
	p.capture(&ingestEvent{Kind: "updated", Post: newPost, OldPost: oldPost})
}

// MessageHasBeenDeleted queues the deletion. The hook's post is the
// pre-deletion post with delete_at 0, so the plugin stamps the time.
func (p *Plugin) MessageHasBeenDeleted(_ *plugin.Context, post *model.Post) {
	if post == nil {
		return
	}
	at := post.DeleteAt
	if at == 0 {
		at = p.now().UnixMilli()
	}
	p.capture(&ingestEvent{Kind: "deleted", Post: post, DeletedAt: at})
}
