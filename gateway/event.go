package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sealgate/sealgate/crypto"
)

// BadRequestError is a refused ingest request. Its message says why without
// quoting content, so it can go back to the client and into logs.
type BadRequestError struct {
	Status int // HTTP status to answer with
	Reason string
}

func (e *BadRequestError) Error() string { return e.Reason }

func badRequest(format string, a ...any) error {
	return &BadRequestError{Status: 400, Reason: fmt.Sprintf(format, a...)}
}

// Limits bound one ingest request.
type Limits struct {
	MaxPostBytes   int64
	MaxBatchEvents int
}

// wireBatch is the body of POST /v1/ingest.
type wireBatch struct {
	Events []json.RawMessage `json:"events"`
}

// TombstoneVersion is the version of every "deleted" event: one tombstone
// per post, whichever capture path saw the deletion first.
const TombstoneVersion = 0

// Event is one parsed ingest event: the crypto.Event that is sealed, and
// the few clear facts the aggregates count (package redact). Those facts
// are never stored per event; they only feed the in-memory aggregator.
type Event struct {
	crypto.Event
	Team        string // the channel's team id, when the capture path knows it
	ChannelType byte   // 'O', 'P', 'D', 'G', or 0 when unknown
	Files       int    // files attached (posts) or 1 (a file event)
}

// wireEvent is one event as the plugin sends it. Post is a Mattermost
// model.Post in its own JSON form; only the fields below are read in clear,
// the whole event is sealed as received.
type wireEvent struct {
	Kind      string          `json:"kind"`
	Post      *postHeader     `json:"post"`
	OldPost   json.RawMessage `json:"old_post,omitempty"`
	DeletedAt int64           `json:"deleted_at,omitempty"`
	File      *fileHeader     `json:"file,omitempty"`
	// TeamID and ChannelType describe the post's channel for the
	// aggregates; the plugin adds them, other capture paths may not.
	TeamID      string `json:"team_id,omitempty"`
	ChannelType string `json:"channel_type,omitempty"`
}

// postHeader holds the model.Post fields the gateway needs; the JSON names
// are Mattermost's (a test keeps them in step with model.Post).
type postHeader struct {
	ID        string   `json:"id"`
	UserID    string   `json:"user_id"`
	ChannelID string   `json:"channel_id"`
	CreateAt  int64    `json:"create_at"`
	UpdateAt  int64    `json:"update_at"`
	EditAt    int64    `json:"edit_at"`
	DeleteAt  int64    `json:"delete_at"`
	FileIDs   []string `json:"file_ids"`
}

// fileHeader holds the fields of a file upload event the gateway needs
// (Mattermost model.FileInfo names).
type fileHeader struct {
	ID        string `json:"id"`
	UserID    string `json:"user_id"`
	PostID    string `json:"post_id"`
	ChannelID string `json:"channel_id"`
	CreateAt  int64  `json:"create_at"`
}

// maxClockSkew refuses events stamped too far in the future: a wrong clock
// would create day keys for days that are not current yet.
const maxClockSkew = 24 * time.Hour

// ParseBatch parses and validates an ingest body into events. It refuses the
// whole batch on the first bad event.
func ParseBatch(body []byte, lim Limits, now time.Time) ([]Event, error) {
	var b wireBatch
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&b); err != nil {
		return nil, badRequest("body is not a JSON object {\"events\": [...]}: %s", jsonErrorReason(err))
	}
	if dec.More() {
		return nil, badRequest("body has data after the JSON object")
	}
	if b.Events == nil {
		return nil, badRequest("missing field events")
	}
	if len(b.Events) > lim.MaxBatchEvents {
		return nil, &BadRequestError{Status: 413, Reason: fmt.Sprintf("batch has %d events, limit is %d", len(b.Events), lim.MaxBatchEvents)}
	}
	out := make([]Event, len(b.Events))
	for i, raw := range b.Events {
		if int64(len(raw)) > lim.MaxPostBytes {
			return nil, &BadRequestError{Status: 413, Reason: fmt.Sprintf("events[%d]: %d bytes, limit is %d per event", i, len(raw), lim.MaxPostBytes)}
		}
		if err := parseEvent(raw, now, &out[i]); err != nil {
			return nil, badRequest("events[%d]: %s", i, err.Error())
		}
	}
	return out, nil
}

func parseEvent(raw []byte, now time.Time, out *Event) error {
	var w wireEvent
	if err := json.Unmarshal(raw, &w); err != nil {
		return errors.New(jsonErrorReason(err))
	}
	ev := &out.Event
	if len(w.TeamID) <= 64 {
		out.Team = w.TeamID
	}
	if len(w.ChannelType) == 1 {
		out.ChannelType = w.ChannelType[0]
	}
	switch {
	case w.Kind == "file":
		out.Files = 1
	case w.Post != nil:
		out.Files = len(w.Post.FileIDs)
	}
	var at int64
	switch w.Kind {
	case "posted", "updated", "deleted":
		p := w.Post
		if p == nil {
			return errors.New("missing field post")
		}
		if p.ID == "" {
			return errors.New("missing field post.id")
		}
		if p.UserID == "" {
			return errors.New("missing field post.user_id")
		}
		if p.ChannelID == "" {
			return errors.New("missing field post.channel_id")
		}
		ev.Employee, ev.PostID = p.UserID, p.ID
		switch w.Kind {
		case "posted":
			ev.Kind, at = crypto.KindPosted, p.CreateAt
			ev.Version = p.UpdateAt
			if ev.Version == 0 {
				ev.Version = p.CreateAt
			}
		case "updated":
			ev.Kind, at = crypto.KindEdited, p.UpdateAt
			if p.EditAt > at {
				at = p.EditAt
			}
			ev.Version = at
		case "deleted":
			// The plugin hook's post carries delete_at 0: the plugin stamps
			// deleted_at itself.
			ev.Kind, at = crypto.KindDeleted, p.DeleteAt
			if at == 0 {
				at = w.DeletedAt
			}
			if at == 0 {
				return errors.New("missing delete time: post.delete_at and deleted_at are both 0")
			}
			// A post is deleted once (Mattermost has no undelete), but each
			// capture path stamps the deletion with its own clock: the
			// plugin when its hook runs, the proxy and the reconciliation
			// with the server's delete_at. The tombstone's version is
			// therefore fixed, so that all of them store one tombstone; the
			// first copy's time is the one kept (inside the sealed record).
			ev.Version = TombstoneVersion
		}
	case "file":
		f := w.File
		if f == nil {
			return errors.New("missing field file")
		}
		if f.ID == "" {
			return errors.New("missing field file.id")
		}
		if f.UserID == "" {
			return errors.New("missing field file.user_id")
		}
		ev.Employee, ev.PostID, ev.Kind, at = f.UserID, f.ID, crypto.KindFile, f.CreateAt
		ev.Version = at
	case "":
		return errors.New("missing field kind")
	default:
		return fmt.Errorf("unknown kind (want posted, updated, deleted or file)")
	}
	if at <= 0 {
		return errors.New("missing event time (create_at, update_at or delete_at)")
	}
	ev.Time = time.UnixMilli(at).UTC()
	if ev.Time.After(now.Add(maxClockSkew)) {
		return errors.New("event time is more than 24h in the future")
	}
	if len(ev.Employee) > 64 || len(ev.PostID) > 64 {
		return errors.New("id longer than 64 characters")
	}
	ev.Body = raw
	return nil
}

// jsonErrorReason describes a JSON error without echoing the input.
func jsonErrorReason(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %s has the wrong type (want %s)", typ.Field, typ.Type)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated JSON"
	}
	return "malformed JSON"
}
