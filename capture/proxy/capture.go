package proxy

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/sealgate/sealgate/order"
)

type route uint8

const (
	routeNone   route = iota
	routeCreate       // POST /api/v4/posts
	routeUpdate       // PUT /api/v4/posts/{id}
	routePatch        // PUT /api/v4/posts/{id}/patch
	routeDelete       // DELETE /api/v4/posts/{id}
	routeHook         // POST /hooks/{id}
)

func (r route) capturesResponse() bool {
	return r == routeCreate || r == routeUpdate || r == routePatch
}

// classify maps a request to its capture route and the id in its path.
// Anything else, including POST /api/v4/posts/ephemeral (never stored by
// Mattermost), is routeNone.
func classify(method, path string) (route, string) {
	switch method {
	case "POST":
		if path == "/api/v4/posts" {
			return routeCreate, ""
		}
		if id, ok := strings.CutPrefix(path, "/hooks/"); ok && order.IsMattermostID(id) {
			return routeHook, id
		}
	case "PUT":
		rest, ok := strings.CutPrefix(path, "/api/v4/posts/")
		if !ok {
			return routeNone, ""
		}
		if order.IsMattermostID(rest) {
			return routeUpdate, rest
		}
		if id, ok := strings.CutSuffix(rest, "/patch"); ok && order.IsMattermostID(id) {
			return routePatch, id
		}
	case "DELETE":
		if id, ok := strings.CutPrefix(path, "/api/v4/posts/"); ok && order.IsMattermostID(id) {
			return routeDelete, id
		}
	}
	return routeNone, ""
}

// job is one captured exchange on its way to an event.
type job struct {
	route       route
	id          string // post id (update, patch, delete) or hook id
	at          time.Time
	requestID   string
	body        *capBuffer // response post JSON, or the webhook request body
	contentType string     // webhook request Content-Type
	encoding    string     // Content-Encoding of body
}

// enqueue hands a job to the capture worker without blocking. When the
// queue is full the event is built here and written to the Spool (deletes
// and webhooks go to their own lookup goroutines instead).
func (p *Proxy) enqueue(j *job) {
	p.qmu.Lock()
	if p.qclosed {
		p.qmu.Unlock()
		putCapBuffer(j.body)
		p.stats.dropped.Add(1)
		p.log.Warn("proxy: capture after close, event dropped")
		return
	}
	if len(p.qjobs) < p.QueueSize {
		p.qjobs = append(p.qjobs, j)
		first := len(p.qjobs) == 1
		p.qmu.Unlock()
		if first {
			select {
			case p.qwake <- struct{}{}:
			default:
			}
		}
		return
	}
	p.qmu.Unlock()
	switch j.route {
	case routeDelete, routeHook:
		p.startLookup(j, p.spill)
	default:
		ev := p.buildPostEvent(j)
		if ev != nil {
			p.spill(ev)
		}
	}
}

// spill writes one event to the Spool, synchronously.
func (p *Proxy) spill(ev []byte) {
	if p.Spool == nil {
		p.stats.dropped.Add(1)
		p.log.Error("proxy: capture queue full and no spool, event dropped", "bytes", len(ev))
		return
	}
	if err := p.Spool.Append([][]byte{ev}); err != nil {
		p.stats.dropped.Add(1)
		p.log.Error("proxy: capture queue full and spool failed, event dropped", "bytes", len(ev), "error_class", errClass(err))
		return
	}
	p.stats.spilled.Add(1)
}

func (p *Proxy) deliver(ev []byte) {
	if p.Capture == nil {
		p.stats.dropped.Add(1)
		return
	}
	p.stats.captured.Add(1)
	p.Capture(ev)
}

// captureLinger is how long the worker lets jobs gather after a wake-up:
// under load it then takes them by the hundred instead of being woken for
// each (a wake-up costs about what parsing a post does).
const captureLinger = 5 * time.Millisecond

func (p *Proxy) runWorker() {
	defer p.worker.Done()
	var batch []*job
	for {
		<-p.qwake
		time.Sleep(captureLinger)
		for {
			p.qmu.Lock()
			batch, p.qjobs = p.qjobs, batch[:0]
			closed := p.qclosed
			p.qmu.Unlock()
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
			for i, j := range batch {
				batch[i] = nil
				switch j.route {
				case routeDelete, routeHook:
					p.startLookup(j, p.deliver)
				default:
					if ev := p.buildPostEvent(j); ev != nil {
						p.deliver(ev)
					}
				}
			}
		}
	}
}

// startLookup finishes a delete or webhook event in its own goroutine (it
// may wait on the Mattermost API) and hands it to emit.
func (p *Proxy) startLookup(j *job, emit func([]byte)) {
	p.lookups.Add(1)
	go func() {
		defer p.lookups.Done()
		select {
		case p.lookupSem <- struct{}{}:
			defer func() { <-p.lookupSem }()
		case <-p.stop.Done():
		}
		var ev []byte
		if j.route == routeDelete {
			ev = p.buildDeleteEvent(j)
		} else {
			ev = p.buildHookEvent(j)
		}
		if ev != nil {
			emit(ev)
		}
	}()
}

// postHeader holds the model.Post fields the capture checks.
type postHeader struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	ChannelID string `json:"channel_id"`
}

var kindPosted, kindUpdated = []byte("posted"), []byte("updated")

// buildPostEvent turns a captured response post into
// {"kind","request_id","post"}; nil if the body is not a post.
func (p *Proxy) buildPostEvent(j *job) []byte {
	defer putCapBuffer(j.body)
	body, ok := p.decoded(j.body.Bytes(), j.encoding)
	if !ok {
		p.stats.skipped.Add(1)
		return nil
	}
	body = bytes.TrimSpace(body)
	h, ok := scanPostHeader(body)
	if !ok || h.ID == "" || h.UserID == "" || h.ChannelID == "" {
		p.stats.skipped.Add(1)
		p.log.Warn("proxy: captured response is not a post", "bytes", len(body))
		return nil
	}
	if j.route != routeCreate && h.ID != j.id {
		p.stats.skipped.Add(1)
		p.log.Warn("proxy: updated post id differs from the path")
		return nil
	}
	kind := kindPosted
	if j.route != routeCreate {
		kind = kindUpdated
	}
	ev := make([]byte, 0, len(body)+len(j.requestID)+48)
	ev = append(ev, `{"kind":"`...)
	ev = append(ev, kind...)
	ev = append(ev, '"')
	ev = appendRequestID(ev, j.requestID)
	ev = append(ev, `,"post":`...)
	ev = append(ev, body...)
	ev = append(ev, '}')
	return ev
}

func appendRequestID(ev []byte, id string) []byte {
	if id == "" {
		return ev
	}
	ev = append(ev, `,"request_id":`...)
	return strconv.AppendQuote(ev, id)
}

// decoded undoes a gzip Content-Encoding, bounded by MaxCaptureBytes.
func (p *Proxy) decoded(b []byte, encoding string) ([]byte, bool) {
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "", "identity":
		return b, true
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, false
		}
		out, err := io.ReadAll(io.LimitReader(zr, p.MaxCaptureBytes+1))
		if err != nil || int64(len(out)) > p.MaxCaptureBytes {
			return nil, false
		}
		return out, true
	}
	return nil, false
}

// deleteEvent is the "deleted" event: the post as PostLookup found it
// (after deletion: delete_at set, message blanked by the API) and the time
// the proxy saw the DELETE answered.
type deleteEvent struct {
	Kind      string          `json:"kind"`
	RequestID string          `json:"request_id,omitempty"`
	Post      json.RawMessage `json:"post"`
	DeletedAt int64           `json:"deleted_at"`
}

var lookupBackoff = []time.Duration{0, 250 * time.Millisecond, time.Second, 4 * time.Second, 15 * time.Second, 30 * time.Second}

// lookup calls fn with backoff until it succeeds, the retries run out or
// the proxy is closed.
func (p *Proxy) lookup(fn func(ctx context.Context) error) error {
	var err error
	for _, d := range lookupBackoff {
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-p.stop.Done():
				t.Stop()
				return err
			}
		}
		ctx, cancel := context.WithTimeout(p.stop, 10*time.Second)
		err = fn(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.stop.Err() != nil {
			return err
		}
	}
	return err
}

func (p *Proxy) buildDeleteEvent(j *job) []byte {
	ev := deleteEvent{Kind: "deleted", RequestID: j.requestID, DeletedAt: j.at.UnixMilli()}
	var post *model.Post
	err := errors.New("no PostLookup")
	if p.PostLookup != nil {
		err = p.lookup(func(ctx context.Context) error {
			var e error
			post, e = p.PostLookup(ctx, j.id)
			if e == nil && (post == nil || post.Id != j.id || post.UserId == "") {
				e = errors.New("lookup returned another or an empty post")
			}
			return e
		})
	}
	if err != nil {
		p.stats.lookupFailed.Add(1)
		p.log.Warn("proxy: deleted post lookup failed; event has the post id only", "error_class", errClass(err))
		ev.Post, _ = json.Marshal(map[string]string{"id": j.id})
	} else if ev.Post, err = json.Marshal(post); err != nil {
		p.stats.skipped.Add(1)
		return nil
	}
	b, err := json.Marshal(ev)
	if err != nil {
		p.stats.skipped.Add(1)
		return nil
	}
	return b
}

// hookEvent is the "posted" event of an incoming webhook. The response
// carries no post id; request_id links it to the plugin's copy.
type hookEvent struct {
	Kind      string   `json:"kind"`
	RequestID string   `json:"request_id,omitempty"`
	Webhook   hookRef  `json:"webhook"`
	Post      hookPost `json:"post"`
}

type hookRef struct {
	HookID  string `json:"hook_id"`
	Channel string `json:"channel,omitempty"` // the payload's channel override, a name
}

type hookPost struct {
	ID        string         `json:"id"`
	UserID    string         `json:"user_id,omitempty"`
	ChannelID string         `json:"channel_id,omitempty"`
	CreateAt  int64          `json:"create_at"`
	UpdateAt  int64          `json:"update_at"`
	RootID    string         `json:"root_id,omitempty"`
	Message   string         `json:"message"`
	Type      string         `json:"type,omitempty"`
	Props     map[string]any `json:"props"`
}

// hookPayload is Mattermost's IncomingWebhookRequest with the parts kept
// raw that the event carries through as they came.
type hookPayload struct {
	Text        string          `json:"text"`
	Username    string          `json:"username"`
	IconURL     string          `json:"icon_url"`
	ChannelName string          `json:"channel"`
	RootID      string          `json:"root_id"`
	Props       map[string]any  `json:"props"`
	Attachments json.RawMessage `json:"attachments"`
	Type        string          `json:"type"`
	IconEmoji   string          `json:"icon_emoji"`
	Priority    json.RawMessage `json:"priority"`
}

// parseHookPayload reads a webhook body the way Mattermost does: a form
// (urlencoded or multipart) field payload=, or else the body as JSON.
func parseHookPayload(body []byte, contentType string) (*hookPayload, error) {
	mt, params, _ := mime.ParseMediaType(contentType)
	raw := body
	switch mt {
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		raw = []byte(v.Get("payload"))
	case "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		raw = nil
		for {
			part, err := mr.NextPart()
			if err != nil {
				return nil, errors.New("multipart webhook without payload")
			}
			if part.FormName() == "payload" {
				raw, err = io.ReadAll(part)
				if err != nil {
					return nil, err
				}
				break
			}
		}
	}
	var pl hookPayload
	if err := json.Unmarshal(raw, &pl); err != nil {
		return nil, err
	}
	return &pl, nil
}

func (p *Proxy) buildHookEvent(j *job) []byte {
	defer putCapBuffer(j.body)
	body, ok := p.decoded(j.body.Bytes(), j.encoding)
	if !ok {
		p.stats.skipped.Add(1)
		return nil
	}
	pl, err := parseHookPayload(body, j.contentType)
	if err != nil {
		p.stats.skipped.Add(1)
		p.log.Warn("proxy: webhook payload not understood", "bytes", len(body))
		return nil
	}
	at := j.at.UnixMilli()
	ev := hookEvent{Kind: "posted", RequestID: j.requestID, Webhook: hookRef{HookID: j.id, Channel: pl.ChannelName}}
	props := pl.Props
	if props == nil {
		props = map[string]any{}
	}
	props["from_webhook"] = "true"
	if len(pl.Attachments) > 0 && string(pl.Attachments) != "null" {
		props["attachments"] = pl.Attachments
	}
	username, icon := pl.Username, pl.IconURL
	hook := p.hook(j.id)
	if hook != nil {
		ev.Post.UserID = hook.UserId
		if pl.ChannelName == "" || hook.ChannelLocked {
			ev.Post.ChannelID = hook.ChannelId
		}
		if hook.DisplayName != "" {
			props["webhook_display_name"] = hook.DisplayName
		}
		if username == "" {
			username = hook.Username
		}
		if icon == "" {
			icon = hook.IconURL
		}
	}
	if username == "" {
		username = "webhook"
	}
	props["override_username"] = username
	if icon != "" {
		props["override_icon_url"] = icon
	}
	if pl.IconEmoji != "" {
		props["override_icon_emoji"] = pl.IconEmoji
	}
	ev.Post = hookPost{UserID: ev.Post.UserID, ChannelID: ev.Post.ChannelID, CreateAt: at, UpdateAt: at,
		RootID: pl.RootID, Message: pl.Text, Type: pl.Type, Props: props}
	if hook != nil && p.WebhookPosts != nil {
		channelID, channelName := ev.Post.ChannelID, ""
		if channelID == "" {
			channelName = pl.ChannelName
		}
		if post := p.findHookPost(hook, channelID, channelName, pl, j.at); post != nil {
			p.stats.hooksResolved.Add(1)
			return p.resolvedHookEvent(j, post)
		}
	}
	// Not found: the post id is derived from the request id, so a replay
	// of this event is still one record; the plugin's copy, under the real
	// id, carries the same request id inside its sealed record.
	p.stats.hooksUnresolved.Add(1)
	ev.Post.ID = WebhookPostID(j.requestID, j.id, at)
	b, err := json.Marshal(ev)
	if err != nil {
		p.stats.skipped.Add(1)
		return nil
	}
	return b
}

// WebhookPostID is the post id of a webhook event whose post the proxy
// could not find: "webhook-" and 18 characters of a hash of the request id
// (or, without one, of the hook id and time). The "-" is not in
// Mattermost's id alphabet, so it never equals a real post id, and an
// export shows it for what it is.
func WebhookPostID(requestID, hookID string, at int64) string {
	h := sha256.New()
	h.Write([]byte("sealgate/webhook-post/v1\x00"))
	if requestID != "" {
		h.Write([]byte(requestID))
	} else {
		fmt.Fprintf(h, "%s\x00%d", hookID, at)
	}
	sum := h.Sum(nil)
	return "webhook-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum))[:18]
}

// hookPostWindow is how long before the proxy saw the "ok" a webhook's
// post may have been created: the request's own duration, generously.
const hookPostWindow = time.Minute

// findHookPost finds the post a webhook request created: in its channel,
// created in the window before the answer, by the hook's creator, marked
// from_webhook, in the payload's thread, not yet claimed by another
// request. Among several, the one with the payload's text; among several
// of those, the earliest (they are the same message, so which request it
// is linked to does not matter). nil when none or when it stays ambiguous.
func (p *Proxy) findHookPost(hook *model.IncomingWebhook, channelID, channelName string, pl *hookPayload, answered time.Time) *model.Post {
	var posts []*model.Post
	err := p.lookup(func(ctx context.Context) error {
		var e error
		posts, e = p.WebhookPosts(ctx, hook.TeamId, channelID, channelName, answered.Add(-hookPostWindow))
		return e
	})
	if err != nil {
		p.log.Warn("proxy: webhook post lookup failed; event keeps a request-derived post id", "error_class", errClass(err))
		return nil
	}
	lo, hi := answered.Add(-hookPostWindow).UnixMilli(), answered.Add(time.Second).UnixMilli()
	var cands, sameText []*model.Post
	for _, q := range posts {
		if q == nil || q.UserId != hook.UserId || q.RootId != pl.RootID || q.OriginalId != "" ||
			q.CreateAt < lo || q.CreateAt > hi || q.GetProp(model.PostPropsFromWebhook) != "true" || p.claimed.has(q.Id) {
			continue
		}
		cands = append(cands, q)
		if q.Message == pl.Text {
			sameText = append(sameText, q)
		}
	}
	var pick *model.Post
	switch {
	case len(sameText) > 0:
		pick = sameText[0]
		for _, q := range sameText[1:] {
			if q.CreateAt < pick.CreateAt {
				pick = q
			}
		}
	case len(cands) == 1:
		pick = cands[0] // the server changed the text (markdown of attachments, mentions)
	default:
		return nil
	}
	if !p.claimed.claim(pick.Id) {
		return nil // another request took it meanwhile
	}
	return pick
}

// resolvedHookEvent is the plugin's event for the webhook's post: the post
// as it was created (update_at = create_at, as the plugin's hook sees it),
// with the request id that links it to the plugin's copy.
func (p *Proxy) resolvedHookEvent(j *job, post *model.Post) []byte {
	q := post.Clone()
	q.UpdateAt, q.EditAt = q.CreateAt, 0
	raw, err := json.Marshal(q)
	if err != nil {
		p.stats.skipped.Add(1)
		return nil
	}
	b, err := json.Marshal(struct {
		Kind      string          `json:"kind"`
		RequestID string          `json:"request_id,omitempty"`
		Webhook   hookRef         `json:"webhook"`
		Post      json.RawMessage `json:"post"`
	}{"posted", j.requestID, hookRef{HookID: j.id}, raw})
	if err != nil {
		p.stats.skipped.Add(1)
		return nil
	}
	return b
}

// claimedPosts remembers, for a while, the webhook posts already matched,
// so that two requests of one hook are never given the same post.
type claimedPosts struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (c *claimedPosts) has(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[id]
	return ok
}

func (c *claimedPosts) claim(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.m == nil {
		c.m = map[string]time.Time{}
	}
	if len(c.m) > 10000 {
		for k, t := range c.m {
			if now.Sub(t) > 2*hookPostWindow {
				delete(c.m, k)
			}
		}
	}
	if _, ok := c.m[id]; ok {
		return false
	}
	c.m[id] = now
	return true
}

// hookCache remembers HookLookup answers.
type hookCache struct {
	mu sync.Mutex
	m  map[string]hookEntry
}

type hookEntry struct {
	hook *model.IncomingWebhook
	exp  time.Time
}

func (p *Proxy) hook(id string) *model.IncomingWebhook {
	if p.HookLookup == nil {
		return nil
	}
	now := time.Now()
	p.hooks.mu.Lock()
	e, ok := p.hooks.m[id]
	p.hooks.mu.Unlock()
	if ok && now.Before(e.exp) {
		return e.hook
	}
	var hook *model.IncomingWebhook
	err := p.lookup(func(ctx context.Context) error {
		var e error
		hook, e = p.HookLookup(ctx, id)
		if e == nil && hook == nil {
			e = errors.New("no webhook")
		}
		return e
	})
	if err != nil {
		p.log.Warn("proxy: webhook lookup failed; event has no user and channel", "error_class", errClass(err))
		return nil
	}
	p.hooks.mu.Lock()
	if p.hooks.m == nil {
		p.hooks.m = map[string]hookEntry{}
	}
	if len(p.hooks.m) > 10000 {
		clear(p.hooks.m)
	}
	p.hooks.m[id] = hookEntry{hook: hook, exp: now.Add(p.HookCacheTTL)}
	p.hooks.mu.Unlock()
	return hook
}

// scanPostHeader reads the id, user_id and channel_id of a post from its
// JSON without decoding the rest: one pass over the bytes checking the
// object's structure (strings closed, brackets balanced, one top-level
// object), taking the three fields when they are plain strings at the top
// level. It is the capture path's only look at the body; the gateway parses
// the whole event later. ok is false for anything that is not an object.
func scanPostHeader(b []byte) (h postHeader, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return h, false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return h, skipWS(b, i+1) == len(b)
	}
	for {
		// key
		if i >= len(b) || b[i] != '"' {
			return h, false
		}
		kEnd, plain := scanString(b, i)
		if kEnd < 0 {
			return h, false
		}
		key := b[i+1 : kEnd-1]
		if !plain {
			key = nil // an escaped key is none of ours
		}
		i = skipWS(b, kEnd)
		if i >= len(b) || b[i] != ':' {
			return h, false
		}
		i = skipWS(b, i+1)
		// value
		if i >= len(b) {
			return h, false
		}
		var vEnd int
		switch c := b[i]; {
		case c == '"':
			var vplain bool
			vEnd, vplain = scanString(b, i)
			if vEnd < 0 {
				return h, false
			}
			if vplain {
				switch string(key) {
				case "id":
					h.ID = string(b[i+1 : vEnd-1])
				case "user_id":
					h.UserID = string(b[i+1 : vEnd-1])
				case "channel_id":
					h.ChannelID = string(b[i+1 : vEnd-1])
				}
			}
		case c == '{' || c == '[':
			vEnd = scanNested(b, i)
		default:
			vEnd = i
			for vEnd < len(b) && b[vEnd] != ',' && b[vEnd] != '}' && b[vEnd] != ' ' && b[vEnd] != '\n' && b[vEnd] != '\t' && b[vEnd] != '\r' {
				c := b[vEnd]
				if !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && c != '-' && c != '+' && c != '.' && c != 'E' {
					return h, false
				}
				vEnd++
			}
			if vEnd == i {
				return h, false
			}
		}
		if vEnd < 0 {
			return h, false
		}
		i = skipWS(b, vEnd)
		if i >= len(b) {
			return h, false
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case '}':
			return h, skipWS(b, i+1) == len(b)
		default:
			return h, false
		}
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// scanString returns the index after the string starting at b[i] == '"'
// (or -1 if it does not end) and whether it is plain: ASCII, no escapes
// (ids are ASCII; anything else is not taken as one).
func scanString(b []byte, i int) (int, bool) {
	plain := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, plain
		case c == '\\':
			plain = false
			j++
		case c < 0x20:
			return -1, false
		case c >= 0x80:
			plain = false
		}
	}
	return -1, false
}

// scanNested returns the index after the object or array starting at b[i],
// or -1 if its brackets do not balance.
func scanNested(b []byte, i int) int {
	var stack [64]byte
	depth := 0
	for j := i; j < len(b); j++ {
		switch c := b[j]; c {
		case '"':
			end, _ := scanString(b, j)
			if end < 0 {
				return -1
			}
			j = end - 1
		case '{', '[':
			if depth == len(stack) {
				return -1
			}
			stack[depth] = c
			depth++
		case '}', ']':
			if depth == 0 || (c == '}') != (stack[depth-1] == '{') {
				return -1
			}
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return -1
}
