package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sealgate/sealgate/gateway"
	"net/http"
	"sort"

	"github.com/mattermost/mattermost/server/public/model"
)

// event is one ingest event in the plugin's shape (plugin/server/event.go),
// with the channel facts the aggregates read and its origin.
type event struct {
	Kind        string      `json:"kind"`
	Post        *model.Post `json:"post"`
	OldPost     *model.Post `json:"old_post,omitempty"`
	DeletedAt   int64       `json:"deleted_at,omitempty"`
	TeamID      string      `json:"team_id,omitempty"`
	ChannelType string      `json:"channel_type,omitempty"`
	Source      string      `json:"source"`
	// OldPostBlanked says old_post's text was not available (the API
	// blanks superseded versions) and its message is empty for that reason.
	OldPostBlanked bool `json:"old_post_blanked,omitempty"`
}

// version is a superseded copy of a post: a row with original_id set.
type version struct {
	post *model.Post
	text bool // from edit_history, so message is the real text
}

// postCtx is one live post with what is known of its earlier versions.
type postCtx struct {
	ch           channelInfo
	live         *model.Post
	versions     []version // sorted by delete_at, the time each was superseded
	root         *model.Post
	historyTried bool
}

func (pc *postCtx) sort() {
	sort.Slice(pc.versions, func(i, j int) bool {
		a, b := pc.versions[i].post, pc.versions[j].post
		if a.DeleteAt != b.DeleteAt {
			return a.DeleteAt < b.DeleteAt
		}
		return a.Id < b.Id
	})
}

// original is the post's first version with its text, or nil.
func (pc *postCtx) original() *model.Post {
	if len(pc.versions) == 0 {
		if pc.live.EditAt == 0 && pc.live.DeleteAt == 0 {
			return pc.live
		}
		return nil
	}
	if v := pc.versions[0]; v.post.EditAt == 0 && v.text {
		return v.post
	}
	return nil
}

// next is the version that superseded versions[k]: the following version
// or, after the last edit, the live post. ok is false when its text is not
// available.
func (pc *postCtx) next(k int) (p *model.Post, editAt int64, ok bool) {
	if k+1 < len(pc.versions) {
		v := pc.versions[k+1]
		return v.post, v.post.EditAt, v.text
	}
	return pc.live, pc.live.EditAt, pc.live.DeleteAt == 0
}

// post rebuilds the missing events of one live post.
func (st *run) post(ctx context.Context, pc *postCtx) error {
	pc.sort()
	L := pc.live
	if L.DeleteAt == 0 {
		need, err := st.needsHistory(ctx, pc)
		if err != nil {
			return err
		}
		if need {
			st.loadHistory(ctx, pc)
		}
	}

	// posted
	if st.window(L.CreateAt) {
		seen, err := st.seen(ctx, L.Id, KindPosted, L.CreateAt)
		if err != nil {
			return err
		}
		switch {
		case seen:
			st.rep.AlreadySeen++
		case L.DeleteAt > 0:
			// Its text is gone: counted below as deleted_unrecovered.
		default:
			if orig := pc.original(); orig != nil {
				p := st.asLive(orig, L)
				p.UpdateAt, p.EditAt, p.DeleteAt = L.CreateAt, 0, 0
				if err := st.emit(ctx, pc, eventKey{L.Id, KindPosted, L.CreateAt}, &event{Kind: KindPosted, Post: p}); err != nil {
					return err
				}
			} else {
				st.rep.PostedUnrecovered++
			}
		}
	}

	// updated, one per superseded version
	for k, v := range pc.versions {
		t := v.post.DeleteAt
		if !st.window(t) {
			continue
		}
		seen, err := st.seen(ctx, L.Id, KindUpdated, t)
		if err != nil {
			return err
		}
		if seen {
			st.rep.AlreadySeen++
			continue
		}
		nx, editAt, ok := pc.next(k)
		if !ok {
			st.rep.EditsUnrecovered++
			continue
		}
		p := st.asLive(nx, L)
		p.UpdateAt, p.EditAt, p.DeleteAt = t, min(editAt, t), 0
		ev := &event{Kind: KindUpdated, Post: p, OldPost: v.post.Clone(), OldPostBlanked: !v.text}
		if err := st.emit(ctx, pc, eventKey{L.Id, KindUpdated, t}, ev); err != nil {
			return err
		}
	}

	// deleted
	if st.window(L.DeleteAt) {
		seen, err := st.seen(ctx, L.Id, KindDeleted, gateway.TombstoneVersion)
		if err != nil {
			return err
		}
		earlier, err := st.earlierStored(ctx, pc)
		if err != nil {
			return err
		}
		if !earlier {
			st.rep.DeletedUnrecovered++
		}
		if seen {
			st.rep.AlreadySeen++
			return nil
		}
		if L.RootId != "" && pc.root != nil && pc.root.DeleteAt == L.DeleteAt {
			st.rep.CascadeDeleted++
		}
		ev := &event{Kind: KindDeleted, Post: L.Clone(), DeletedAt: L.DeleteAt}
		if err := st.emit(ctx, pc, eventKey{L.Id, KindDeleted, gateway.TombstoneVersion}, ev); err != nil {
			return err
		}
	}
	return nil
}

// inWindow says whether an event at t (ms) is reconciled by this run.
func (st *run) inWindow(t int64) bool {
	return t > st.since && (st.until == 0 || t <= st.until)
}

// window is inWindow, and counts an event left for a later run by Lag.
func (st *run) window(t int64) bool {
	if t > st.since && st.until != 0 && t > st.until {
		st.rep.Deferred++
		return false
	}
	return st.inWindow(t)
}

// asLive copies version v as the live post L was at that version: L's id
// and identity, v's content.
func (st *run) asLive(v, L *model.Post) *model.Post {
	p := v.Clone()
	p.Id, p.OriginalId, p.CreateAt = L.Id, "", L.CreateAt
	p.UserId, p.ChannelId, p.RootId = L.UserId, L.ChannelId, L.RootId
	return p
}

// needsHistory says whether an event of a live post that is not stored yet
// needs the text of an earlier version, which only edit_history has.
func (st *run) needsHistory(ctx context.Context, pc *postCtx) (bool, error) {
	L, n := pc.live, len(pc.versions)
	if L.EditAt <= st.since && (n == 0 || pc.versions[n-1].post.DeleteAt <= st.since) {
		return false, nil // no edit in the window
	}
	if L.EditAt > st.since && (n == 0 || pc.versions[n-1].post.DeleteAt < L.EditAt) {
		return true, nil // an edit in the window whose version was not listed
	}
	if st.inWindow(L.CreateAt) && pc.original() == nil {
		seen, err := st.seen(ctx, L.Id, KindPosted, L.CreateAt)
		if err != nil || !seen {
			return !seen, err
		}
	}
	for k, v := range pc.versions {
		t := v.post.DeleteAt
		if !st.inWindow(t) {
			continue
		}
		if _, _, ok := pc.next(k); ok {
			continue
		}
		seen, err := st.seen(ctx, L.Id, KindUpdated, t)
		if err != nil || !seen {
			return !seen, err
		}
	}
	return false, nil
}

// loadHistory merges GET /posts/{id}/edit_history (versions with their
// text) into pc.versions. A refusal is counted, not fatal.
func (st *run) loadHistory(ctx context.Context, pc *postCtx) {
	if pc.historyTried {
		return
	}
	pc.historyTried = true
	hist, _, err := st.r.Client.GetEditHistoryForPost(ctx, pc.live.Id)
	if err != nil {
		switch statusOf(err) {
		case http.StatusForbidden, http.StatusNotFound:
			st.rep.HistoryDenied++
		default:
			st.fail("edit history", err, "channel_type", string(pc.ch.typ))
		}
		return
	}
	idx := map[string]int{}
	for i, v := range pc.versions {
		idx[v.post.Id] = i
	}
	for _, h := range hist {
		if h == nil || h.OriginalId != pc.live.Id || h.DeleteAt == 0 {
			continue
		}
		if i, ok := idx[h.Id]; ok {
			pc.versions[i] = version{post: h, text: true}
			continue
		}
		idx[h.Id] = len(pc.versions)
		pc.versions = append(pc.versions, version{post: h, text: true})
	}
	pc.sort()
}

// earlierStored says whether any version of the post before its deletion
// is stored: its posted event or one of its known edits.
func (st *run) earlierStored(ctx context.Context, pc *postCtx) (bool, error) {
	seen, err := st.seen(ctx, pc.live.Id, KindPosted, pc.live.CreateAt)
	if err != nil || seen {
		return seen, err
	}
	for _, v := range pc.versions {
		seen, err := st.seen(ctx, pc.live.Id, KindUpdated, v.post.DeleteAt)
		if err != nil || seen {
			return seen, err
		}
	}
	return false, nil
}

// seen asks Seen once per event per run; an event emitted in this run is
// seen.
func (st *run) seen(ctx context.Context, id, kind string, v int64) (bool, error) {
	k := eventKey{id, kind, v}
	if st.emitted[k] {
		return true, nil
	}
	if s, ok := st.known[k]; ok {
		return s, nil
	}
	s, err := st.r.Seen(ctx, id, kind, v)
	if err != nil {
		return false, fmt.Errorf("reconcile: seen: %w", err)
	}
	st.known[k] = s
	return s, nil
}

func (st *run) emit(ctx context.Context, pc *postCtx, k eventKey, ev *event) error {
	if st.emitted[k] {
		return nil
	}
	st.emitted[k] = true
	ev.TeamID, ev.ChannelType, ev.Source = pc.ch.team, string(pc.ch.typ), "reconcile"
	raw, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("reconcile: encode event: %w", err)
	}
	st.pending = append(st.pending, pendingEvent{kind: ev.Kind, raw: raw})
	if len(st.pending) >= st.r.batchSize() {
		return st.flush(ctx)
	}
	return nil
}

func (st *run) flush(ctx context.Context) error {
	if len(st.pending) == 0 {
		return nil
	}
	batch := st.pending
	st.pending = nil
	return st.ingest(ctx, batch)
}

// ingest hands a batch to Ingest; a refused batch is retried event by
// event so that one bad event does not hold back the others.
func (st *run) ingest(ctx context.Context, batch []pendingEvent) error {
	raws := make([]json.RawMessage, len(batch))
	for i, e := range batch {
		raws[i] = e.raw
	}
	err := st.r.Ingest(ctx, raws)
	switch {
	case err == nil:
		for _, e := range batch {
			st.rep.Ingested[e.kind]++
		}
		return nil
	case !errors.Is(err, ErrRejected):
		return fmt.Errorf("reconcile: ingest: %w", err)
	case len(batch) == 1:
		st.rep.Rejected++
		st.r.log().Warn("reconcile: event refused by the ingest target", "kind", batch[0].kind, "bytes", len(batch[0].raw))
		return nil
	}
	for _, e := range batch {
		if err := st.ingest(ctx, []pendingEvent{e}); err != nil {
			return err
		}
	}
	return nil
}
