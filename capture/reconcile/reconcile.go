package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

// Event kinds, as the plugin names them (gateway/event.go).
const (
	KindPosted  = "posted"
	KindUpdated = "updated"
	KindDeleted = "deleted"
)

const (
	// SinceLimit is how many rows GET /channels/{id}/posts?since= returns
	// at most (the 9.11 store query's LIMIT 1000, unordered, no paging).
	SinceLimit = 1000
	// MaxPageSize is the API's per_page maximum.
	MaxPageSize = 200
	// DefaultBatchSize bounds one Ingest call.
	DefaultBatchSize = 100
)

// ErrIncomplete is returned by Run, with the full Report, when some
// channels or users could not be read: what was read was reconciled, but
// the window must be run again.
var ErrIncomplete = errors.New("reconcile: incomplete")

// ErrRejected marks an Ingest error that refuses the events themselves
// (gateway.ParseBatch's 4xx), not a failing store. Run then retries the
// batch event by event and skips, counting them, the events refused alone.
var ErrRejected = errors.New("reconcile: events rejected")

// Reconciler rebuilds missing events from Mattermost's REST API.
type Reconciler struct {
	// Client talks to Mattermost with a system administrator's token (see
	// NewClient).
	Client *model.Client4
	// Ingest parses and stores a batch of events in the plugin's JSON (see
	// PipelineIngest). An error wrapping ErrRejected refuses the events;
	// any other error stops the run.
	Ingest func(ctx context.Context, events []json.RawMessage) error
	// Seen says whether the event with this post id, kind (KindPosted,
	// KindUpdated, KindDeleted) and version is stored (see StoreSeen).
	Seen func(ctx context.Context, postID string, kind string, version int64) (bool, error)
	// PageSize is per_page for every paged list; default and maximum 200.
	PageSize int
	// BatchSize bounds the events of one Ingest call; default 100.
	BatchSize int
	// Lag leaves events newer than Now()-Lag for a later run, so that the
	// capture paths' own events for recent changes, which carry more (the
	// old version's text, the deleted text), are stored first: an event
	// stored by the reconciler takes the ref. 0 reconciles up to now.
	Lag time.Duration
	// SkipDirect skips the per-user listing that finds direct and group
	// message channels.
	SkipDirect bool
	Log        *slog.Logger
	Now        func() time.Time

	sinceLimit int // tests lower it to force page mode
}

// Report says what one run did, in counts only.
type Report struct {
	Since    time.Time `json:"since"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`

	Channels       int `json:"channels"`        // channels scanned
	DirectChannels int `json:"direct_channels"` // of which direct and group messages
	Users          int `json:"users"`           // users listed to find them
	Paged          int `json:"paged"`           // channels whose since listing hit SinceLimit and were read in page mode
	Posts          int `json:"posts"`           // posts changed in the window
	Versions       int `json:"versions"`        // superseded edit versions listed in the window

	Deferred    int            `json:"deferred"`     // changes (creations, edits, deletions) newer than Now()-Lag, left for a later run
	Ingested    map[string]int `json:"ingested"`     // events handed to Ingest and accepted, by kind
	AlreadySeen int            `json:"already_seen"` // events rebuilt but already stored
	Rejected    int            `json:"rejected"`     // events the ingest target refused alone

	// The unrecovered counts are gaps the API cannot fill; they describe
	// the window, so a later run over the same window counts them again.
	//
	// DeletedUnrecovered counts posts deleted in the window of which no
	// version before the deletion is stored: only their tombstone is (or
	// is ingested now), their content is lost.
	DeletedUnrecovered int `json:"deleted_unrecovered"`
	// PostedUnrecovered and EditsUnrecovered count posted and updated
	// events of the window that are not stored and were not ingested
	// because the text of that version is no longer available (posted
	// events of deleted posts are in DeletedUnrecovered instead).
	PostedUnrecovered int `json:"posted_unrecovered"`
	EditsUnrecovered  int `json:"edits_unrecovered"`
	// CascadeDeleted counts tombstones ingested for replies deleted
	// together with their thread root, for which Mattermost emits nothing.
	CascadeDeleted int `json:"cascade_deleted"`
	// HistoryDenied counts edit_history requests the server refused
	// (author-only, or the post is deleted).
	HistoryDenied int `json:"history_denied"`
	// Errors counts channels, users and histories that could not be read.
	Errors int `json:"errors"`
}

// Total is the number of events ingested.
func (r *Report) Total() int {
	n := 0
	for _, v := range r.Ingested {
		n += v
	}
	return n
}

type channelInfo struct {
	id   string
	team string
	typ  model.ChannelType
}

// run is the state of one Run.
type run struct {
	r       *Reconciler
	rep     *Report
	since   int64 // ms; events strictly after it are in the window
	until   int64 // ms; events after it are deferred (0: no bound)
	known   map[eventKey]bool
	emitted map[eventKey]bool
	pending []pendingEvent
}

type eventKey struct {
	id      string
	kind    string
	version int64
}

type pendingEvent struct {
	kind string
	raw  json.RawMessage
}

// Run reconciles every change strictly after since (the API's since is
// exclusive). It returns ErrIncomplete (with the report) when part of
// Mattermost could not be read, and stops with an error when listing the
// channels or users, Seen or Ingest fails.
func (r *Reconciler) Run(ctx context.Context, since time.Time) (Report, error) {
	now := r.now()
	rep := Report{Since: since.UTC(), Started: now.UTC(), Ingested: map[string]int{}}
	if r.Client == nil || r.Ingest == nil || r.Seen == nil {
		return rep, errors.New("reconcile: Client, Ingest and Seen are required")
	}
	ms := since.UnixMilli()
	if ms <= 0 {
		// since=0 is page mode for the API, not "everything".
		return rep, errors.New("reconcile: since must be after 1970-01-01")
	}
	st := &run{r: r, rep: &rep, since: ms, known: map[eventKey]bool{}, emitted: map[eventKey]bool{}}
	if r.Lag > 0 {
		st.until = now.Add(-r.Lag).UnixMilli()
	}
	err := st.all(ctx)
	if err == nil {
		err = st.flush(ctx)
	}
	rep.Finished = r.now().UTC()
	if err == nil && rep.Errors > 0 {
		err = fmt.Errorf("%w: %d errors", ErrIncomplete, rep.Errors)
	}
	return rep, err
}

func (st *run) all(ctx context.Context) error {
	channels, err := st.listChannels(ctx)
	if err != nil {
		return err
	}
	for _, ch := range channels {
		if err := ctx.Err(); err != nil {
			return err
		}
		posts, err := st.channelPosts(ctx, ch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			st.fail("channel posts", err, "channel_type", string(ch.typ))
			continue
		}
		st.rep.Channels++
		if ch.typ == model.ChannelTypeDirect || ch.typ == model.ChannelTypeGroup {
			st.rep.DirectChannels++
		}
		if err := st.channel(ctx, ch, posts); err != nil {
			return err
		}
	}
	return nil
}

// fail counts and logs a read error without ids or content.
func (st *run) fail(what string, err error, attrs ...any) {
	st.rep.Errors++
	attrs = append(attrs, "what", what, "status", statusOf(err))
	var ae *model.AppError
	if errors.As(err, &ae) {
		attrs = append(attrs, "error_id", ae.Id)
	} else {
		inner := err
		if u := errors.Unwrap(err); u != nil {
			inner = u
		}
		attrs = append(attrs, "error_class", fmt.Sprintf("%T", inner))
	}
	st.r.log().Warn("reconcile: read failed", attrs...)
}

func statusOf(err error) int {
	var ae *model.AppError
	if errors.As(err, &ae) {
		return ae.StatusCode
	}
	return 0
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Reconciler) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

func (r *Reconciler) pageSize() int {
	if r.PageSize <= 0 || r.PageSize > MaxPageSize {
		return MaxPageSize
	}
	return r.PageSize
}

func (r *Reconciler) batchSize() int {
	if r.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return r.BatchSize
}

// listChannels lists every public and private channel (archived too) and,
// unless SkipDirect, the direct and group channels of every user.
func (st *run) listChannels(ctx context.Context) ([]channelInfo, error) {
	c, per := st.r.Client, st.r.pageSize()
	var out []channelInfo
	have := map[string]bool{}
	for page := 0; ; page++ {
		list, _, err := c.GetAllChannelsIncludeDeleted(ctx, page, per, "")
		if err != nil {
			return nil, fmt.Errorf("reconcile: list channels (HTTP %d): %w", statusOf(err), err)
		}
		for _, ch := range list {
			if ch == nil || have[ch.Id] {
				continue
			}
			have[ch.Id] = true
			out = append(out, channelInfo{id: ch.Id, team: ch.TeamId, typ: ch.Type})
		}
		if len(list) < per {
			break
		}
	}
	if st.r.SkipDirect {
		return out, nil
	}
	for page := 0; ; page++ {
		users, _, err := c.GetUsers(ctx, page, per, "")
		if err != nil {
			return nil, fmt.Errorf("reconcile: list users (HTTP %d): %w", statusOf(err), err)
		}
		for _, u := range users {
			if u == nil {
				continue
			}
			st.rep.Users++
			chs, err := st.userChannels(ctx, u.Id)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				st.fail("user channels", err)
				continue
			}
			for _, ch := range chs {
				if ch == nil || have[ch.Id] || (ch.Type != model.ChannelTypeDirect && ch.Type != model.ChannelTypeGroup) {
					continue
				}
				have[ch.Id] = true
				out = append(out, channelInfo{id: ch.Id, team: ch.TeamId, typ: ch.Type})
			}
		}
		if len(users) < per {
			break
		}
	}
	return out, nil
}

// userChannels is GET /users/{id}/channels?include_deleted=true: all of a
// user's channels on all teams, direct and group messages included.
func (st *run) userChannels(ctx context.Context, userID string) ([]*model.Channel, error) {
	q := url.Values{"include_deleted": {"true"}}
	resp, err := st.r.Client.DoAPIGet(ctx, "/users/"+url.PathEscape(userID)+"/channels?"+q.Encode(), "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var chs []*model.Channel
	if err := json.NewDecoder(resp.Body).Decode(&chs); err != nil {
		return nil, fmt.Errorf("decode channels: %w", err)
	}
	return chs, nil
}

// channelPosts reads the rows of one channel changed after since: the since
// listing, completed by page mode when it hit SinceLimit.
func (st *run) channelPosts(ctx context.Context, ch channelInfo) (map[string]*model.Post, error) {
	q := url.Values{"since": {strconv.FormatInt(st.since, 10)}, "include_deleted": {"true"}}
	list, err := st.postList(ctx, "/channels/"+url.PathEscape(ch.id)+"/posts?"+q.Encode())
	if err != nil {
		return nil, err
	}
	posts := map[string]*model.Post{}
	for id, p := range list.Posts {
		if p != nil {
			posts[id] = p
		}
	}
	limit := st.r.sinceLimit
	if limit <= 0 {
		limit = SinceLimit
	}
	if len(list.Order) < limit {
		return posts, nil
	}
	st.rep.Paged++
	per := st.r.pageSize()
	for page := 0; ; page++ {
		pl, _, err := st.r.Client.GetPostsForChannel(ctx, ch.id, page, per, "", false, true)
		if err != nil {
			return nil, err
		}
		oldest := int64(-1)
		for _, id := range pl.Order {
			p := pl.Posts[id]
			if p == nil {
				continue
			}
			if oldest < 0 || p.CreateAt < oldest {
				oldest = p.CreateAt
			}
		}
		for id, p := range pl.Posts {
			if p != nil {
				posts[id] = p
			}
		}
		if len(pl.Order) < per || oldest <= st.since {
			break
		}
	}
	return posts, nil
}

func (st *run) postList(ctx context.Context, path string) (*model.PostList, error) {
	resp, err := st.r.Client.DoAPIGet(ctx, path, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("unexpected HTTP %d", resp.StatusCode)
	}
	var pl model.PostList
	if err := json.NewDecoder(resp.Body).Decode(&pl); err != nil {
		return nil, fmt.Errorf("decode post list: %w", err)
	}
	return &pl, nil
}

// channel rebuilds the events of one channel's changed posts.
func (st *run) channel(ctx context.Context, ch channelInfo, posts map[string]*model.Post) error {
	var live []*model.Post
	versions := map[string][]version{}
	for _, p := range posts {
		if p.OriginalId != "" {
			versions[p.OriginalId] = append(versions[p.OriginalId], version{post: p})
			if p.UpdateAt > st.since {
				st.rep.Versions++
			}
			continue
		}
		live = append(live, p)
	}
	sort.Slice(live, func(i, j int) bool {
		if live[i].CreateAt != live[j].CreateAt {
			return live[i].CreateAt < live[j].CreateAt
		}
		return live[i].Id < live[j].Id
	})
	for _, p := range live {
		if p.UpdateAt <= st.since && p.CreateAt <= st.since && p.DeleteAt <= st.since {
			continue // a thread root the since listing added for context
		}
		st.rep.Posts++
		pc := &postCtx{ch: ch, live: p, versions: versions[p.Id], root: posts[p.RootId]}
		if err := st.post(ctx, pc); err != nil {
			return err
		}
	}
	return nil
}
