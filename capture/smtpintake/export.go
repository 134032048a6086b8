package smtpintake

import (
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/sealgate/sealgate/order"
)

// Export is one decoded Global Relay EML: one channel, one batch.
type Export struct {
	ChannelID   string    // X-Mattermost-ChannelID (required)
	ChannelName string    // X-Mattermost-ChannelName or the summary's channel: the display name
	ChannelType string    // X-Mattermost-ChannelType: "public", "private", "direct", "group"
	Start, End  time.Time // the conversation window from the summary; zero if absent
	ExportedAt  time.Time // "Exported on"; zero if absent

	Participants []Participant // the participants table, in table order
	Messages     []Message     // every message line, in export order
	Attachments  []Attachment  // the attached files, in MIME order

	// Events are the ingest events, in export order: one "posted"
	// ("updated", "deleted" where the export says so) per message line and
	// one "file" per file line. See the package doc for the mapping.
	Events []Event

	// Warnings are content-free notes on inconsistencies that did not stop
	// the parse (e.g. a participant's message count that does not match).
	Warnings []string

	// senders[i] is the sender of Events[i] when its user id was derived
	// rather than read from the export; nil otherwise.
	senders []*Participant
}

// Participant is one row of the participants table, or a message sender
// missing from it.
type Participant struct {
	UserID   string // only in exporters that print a userid column; "" in 9.11
	Username string // without the leading "@"
	UserType string // "user" or "bot"
	Email    string
	Joined   time.Time
	Left     time.Time
	Messages int // the table's message count
}

// Message is one message line of the export.
type Message struct {
	PostID       string    // only in exporters that print a post_id; "" in 9.11
	Time         time.Time // sent_time: whole seconds, UTC
	Username     string    // without "@"
	UserID       string    // only in exporters that print a userid; "" in 9.11
	PostUsername string    // the webhook/integration override name without "@"; "" if none
	UserType     string
	Email        string
	Text         string
	PreviewsPost string    // the id of a permalink-previewed post, if any
	UpdateType   string    // later exporters: "Deleted", "EditedNewMsg", …; "" in 9.11
	UpdateTime   time.Time // later exporters, with UpdateType
	File         *FileLine // set for the lines Mattermost adds for files
}

// FileLine is a message line that Mattermost adds for an uploaded or
// deleted file ("Uploaded file NAME", "Deleted file NAME", or the
// "… was removed because it was too large to send." forms).
type FileLine struct {
	Name    string
	ID      string // only in the "too large" form
	Deleted bool   // "Deleted file …"
	Removed bool   // the attachment was left out as too large
}

// Attachment is one attached file of the EML. Its content is hashed and
// counted while parsing and not kept.
type Attachment struct {
	Name        string
	ContentType string
	Size        int64
	SHA256      string // hex
	Matched     bool   // a file line of the export names it
}

// Event is one ingest event, shaped as the capture plugin sends it:
// {"kind", "post": model.Post JSON, "deleted_at", "file": see [File]}.
// Source marks events made from a Global Relay export; the gateway ignores
// it.
type Event struct {
	Kind      string      `json:"kind"`
	Post      *model.Post `json:"post,omitempty"`
	DeletedAt int64       `json:"deleted_at,omitempty"`
	File      *File       `json:"file,omitempty"`
	Source    string      `json:"source"`
}

// File is a file shared in a post, in the shape of the plugin's file
// event: model.FileInfo's JSON names, the post's author, post and channel,
// and the SHA-256 of the content. SHA256Omitted says why the hash is
// missing (the export did not carry the file).
type File struct {
	ID            string `json:"id"`
	UserID        string `json:"user_id"`
	PostID        string `json:"post_id"`
	ChannelID     string `json:"channel_id"`
	CreateAt      int64  `json:"create_at"`
	DeleteAt      int64  `json:"delete_at,omitempty"`
	Name          string `json:"name"`
	Extension     string `json:"extension"`
	Size          int64  `json:"size"`
	MIMEType      string `json:"mime_type"`
	SHA256        string `json:"sha256,omitempty"`
	SHA256Omitted string `json:"sha256_omitted,omitempty"`
}

// Source is the Event.Source of every event made by this package.
const Source = "globalrelay"

// Wire returns the events as ingest JSON, one json.RawMessage per event,
// ready for {"events": [...]}.
func (x *Export) Wire() ([]json.RawMessage, error) {
	out := make([]json.RawMessage, len(x.Events))
	for i := range x.Events {
		b, err := json.Marshal(&x.Events[i])
		if err != nil {
			return nil, fmt.Errorf("event %d: cannot encode as JSON", i)
		}
		out[i] = b
	}
	return out, nil
}

// Batch returns the body of one POST /v1/ingest: {"events": [...]}.
func (x *Export) Batch() ([]byte, error) {
	evs, err := x.Wire()
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Events []json.RawMessage `json:"events"`
	}{evs})
}

// ResolveUsers replaces every derived user id (see [DerivedUserID]) by the
// answer of resolve for that sender. resolve is asked once per sender; an
// empty answer keeps the derived id. Ids read from the export are kept as
// they are. An error of resolve stops and is returned wrapped.
func (x *Export) ResolveUsers(resolve func(Participant) (string, error)) error {
	done := map[*Participant]string{}
	for i := range x.Events {
		p := x.senders[i]
		if p == nil {
			continue
		}
		id, ok := done[p]
		if !ok {
			var err error
			id, err = resolve(*p)
			if err != nil {
				return &parseError{reason: fmt.Sprintf("resolving the user id of event %d failed", i), err: err}
			}
			if id != "" && !order.IsMattermostID(id) {
				return &parseError{reason: fmt.Sprintf("resolving the user id of event %d gave no Mattermost id", i)}
			}
			done[p] = id
		}
		if id == "" {
			continue
		}
		ev := &x.Events[i]
		if ev.Post != nil {
			ev.Post.UserId = id
		}
		if ev.File != nil {
			ev.File.UserID = id
		}
	}
	return nil
}

// mmEncoding is Mattermost's id alphabet (model.NewId): 16 bytes give 26
// characters.
var mmEncoding = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// derive makes a 26-character Mattermost-shaped id from a purpose and its
// parts: the first 16 bytes of SHA-256 over a versioned, length-prefixed
// encoding.
func derive(purpose string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte("sealgate/globalrelay/v1\x00" + purpose + "\x00"))
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return mmEncoding.EncodeToString(sum[:16])
}

// DerivedUserID is the user id given to a sender when the export names no
// user id and no resolver maps the sender: derived from the lower-cased
// e-mail address, or from the username when the address is empty. A
// requester who knows an employee's address can compute it.
func DerivedUserID(email, username string) string {
	if e := strings.ToLower(strings.TrimSpace(email)); e != "" {
		return derive("user", "email", e)
	}
	return derive("user", "username", username)
}

// parseError is a refused export. Its message names the problem and never
// quotes content; err, when set, is the underlying cause for errors.Is and
// errors.As, and its text is deliberately not part of the message (library
// errors may quote input).
type parseError struct {
	reason string
	err    error
}

func (e *parseError) Error() string { return e.reason }
func (e *parseError) Unwrap() error { return e.err }

func fail(format string, a ...any) error {
	return &parseError{reason: fmt.Sprintf(format, a...)}
}

func failWrap(err error, format string, a ...any) error {
	reason := fmt.Sprintf(format, a...)
	if pe, ok := err.(*parseError); ok {
		return &parseError{reason: reason + ": " + pe.reason, err: pe.err}
	}
	return &parseError{reason: reason, err: err}
}
