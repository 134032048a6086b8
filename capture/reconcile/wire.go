package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/store"
)

// NewClient is a Client4 for baseURL with a bearer token and a request
// timeout (Client4's own HTTP client has none).
func NewClient(baseURL, token string, timeout time.Duration) *model.Client4 {
	c := model.NewAPIv4Client(baseURL)
	c.SetToken(token)
	if timeout <= 0 {
		timeout = time.Minute
	}
	c.HTTPClient = &http.Client{Timeout: timeout}
	return c
}

// PipelineIngest is an Ingest for Reconciler: the events go through
// gateway.ParseBatch and p.Ingest like a plugin batch. A parse refusal
// wraps ErrRejected.
func PipelineIngest(p *gateway.Pipeline, lim gateway.Limits, now func() time.Time) func(context.Context, []json.RawMessage) error {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context, evs []json.RawMessage) error {
		body, err := json.Marshal(map[string]any{"events": evs})
		if err != nil {
			return err
		}
		events, err := gateway.ParseBatch(body, lim, now())
		if err != nil {
			return fmt.Errorf("%w: %v", ErrRejected, err)
		}
		_, err = p.Ingest(ctx, events)
		return err
	}
}

var storeKinds = map[string]crypto.Kind{
	KindPosted:  crypto.KindPosted,
	KindUpdated: crypto.KindEdited,
	KindDeleted: crypto.KindDeleted,
}

// StoreSeen is a Seen for Reconciler: whether st holds the record whose
// ref is keys.Ref(post id, kind, version), the pipeline's de-duplication
// key.
func StoreSeen(st store.Store, keys *crypto.GatewayKeys) func(context.Context, string, string, int64) (bool, error) {
	return func(ctx context.Context, postID, kind string, v int64) (bool, error) {
		k, ok := storeKinds[kind]
		if !ok {
			return false, fmt.Errorf("unknown kind %q", kind)
		}
		return st.HasRef(ctx, keys.Ref(postID, k, v))
	}
}

// Periodic runs Run every interval until ctx ends: first from first, then
// from the start of the last complete run minus Lag and overlap. A run that
// fails or is incomplete is repeated from the same point next time.
func (r *Reconciler) Periodic(ctx context.Context, first time.Time, every, overlap time.Duration) {
	if every <= 0 {
		every = time.Hour
	}
	since := first
	for {
		start := r.now()
		rep, err := r.Run(ctx, since)
		if ctx.Err() != nil {
			return
		}
		attrs := []any{"channels", rep.Channels, "posts", rep.Posts, "ingested", rep.Total(),
			"posted", rep.Ingested[KindPosted], "updated", rep.Ingested[KindUpdated], "deleted", rep.Ingested[KindDeleted],
			"already_seen", rep.AlreadySeen, "deferred", rep.Deferred, "deleted_unrecovered", rep.DeletedUnrecovered, "cascade_deleted", rep.CascadeDeleted,
			"posted_unrecovered", rep.PostedUnrecovered, "edits_unrecovered", rep.EditsUnrecovered,
			"history_denied", rep.HistoryDenied, "rejected", rep.Rejected, "errors", rep.Errors,
			"window_seconds", int64(start.Sub(since).Seconds())}
		if err != nil {
			r.log().Warn("reconcile: run failed; the window is kept", append(attrs, "err", err.Error())...)
		} else {
			r.log().Info("reconcile: run done", attrs...)
			since = start.Add(-r.Lag - overlap)
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
