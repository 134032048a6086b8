package notice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattermost/mattermost/server/public/model"
)

// NoticeIDProp is the post prop that carries the notice id on the
// Mattermost DM, so that a notice can be found on the server (for instance
// to spot a duplicate, see MattermostSender).
const NoticeIDProp = "sealgate_notice_id"

// MaxMattermostMessageRunes is the longest message Mattermost 9.11 accepts
// on PostgreSQL (65535/4 runes); a longer body is refused before sending,
// as the server would refuse it on every retry.
const MaxMattermostMessageRunes = 16383

// DefaultMattermostTimeout bounds each request when HTTP is nil.
const DefaultMattermostTimeout = 30 * time.Second

// MattermostSender delivers a notice as a direct message from the sealgate
// bot, the way model.Client4 does it:
//
//  1. POST /api/v4/channels/direct ["<bot user id>","<user id>"]
//     (CreateDirectChannel): 201 with the channel, whether it is new or
//     already existed (a 200 is accepted too);
//  2. POST /api/v4/posts with json.Marshal(model.Post{ChannelId, Message,
//     Props: {"sealgate_notice_id": n.ID}}) (CreatePost): 201.
//
// Both carry Authorization: Bearer <bot token> and Content-Type:
// application/json, as recorded from Mattermost 9.11 (Client4 itself would
// send "BEARER" and no Content-Type; both are set to the recorded form).
//
// Delivery is at least once. Mattermost de-duplicates posts only by
// pending_post_id, which the recorded bot post (the Client4 shape) leaves
// empty, so none is sent. A crash or a lost response between the post
// being stored and the outbox being updated sends the notice again on the
// next attempt; the duplicate carries the same sealgate_notice_id prop.
//
// Errors give the step, the HTTP status and Mattermost's error id
// ("api.context.session_expired.app_error"), never the message, the
// response body or the token.
type MattermostSender struct {
	// BaseURL is the server's address, e.g. "https://chat.example.com"
	// (without /api/v4).
	BaseURL string
	// BotToken is the bot account's access token.
	BotToken string
	// BotUserID is the bot account's user id.
	BotUserID string
	// HTTP is the client; nil means one with DefaultMattermostTimeout.
	HTTP *http.Client
}

var _ Sender = (*MattermostSender)(nil)

// Name is "mattermost".
func (s *MattermostSender) Name() string { return "mattermost" }

// MattermostError is a request that Mattermost refused or that failed on
// the way. It holds no message text and no token.
type MattermostError struct {
	Op       string // "create direct channel" or "create post"
	NoticeID string
	Status   int    // HTTP status; 0 when there was no response
	ID       string // Mattermost's error id, when the body had one
	Err      error  // the transport or decoding error, if any
}

func (e *MattermostError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "notice/mattermost: %s (notice %s)", e.Op, e.NoticeID)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.ID != "" {
		fmt.Fprintf(&b, " (%s)", e.ID)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *MattermostError) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may help: no response, a
// timeout, rate limiting or a server error. A 4xx other than 408/429 needs
// a change (token, bot, user) first.
func (e *MattermostError) Temporary() bool {
	return e.Status == 0 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// Send opens (or finds) the DM between the bot and n.UserID and posts
// m.Body there with the notice id as a prop.
func (s *MattermostSender) Send(ctx context.Context, n *Notice, m Message) error {
	if n == nil {
		return errors.New("notice/mattermost: nil notice")
	}
	if err := s.check(n, m); err != nil {
		return err
	}
	c := model.NewAPIv4Client(strings.TrimRight(s.BaseURL, "/"))
	c.SetToken(s.BotToken)
	// Client4 writes the scheme as "BEARER"; the server compares it
	// upper-cased, and the recording and RFC 6750 spell it "Bearer".
	c.AuthType = "Bearer"
	c.HTTPClient = s.HTTP
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: DefaultMattermostTimeout}
	}
	// Client4 sends no Content-Type of its own; the recorded requests have
	// application/json.
	c.HTTPHeader = map[string]string{"Content-Type": "application/json"}

	ch, resp, err := c.CreateDirectChannel(ctx, s.BotUserID, n.UserID)
	if err != nil {
		return mattermostError("create direct channel", n.ID, resp, err)
	}
	if ch == nil || ch.Id == "" {
		return &MattermostError{Op: "create direct channel", NoticeID: n.ID, Status: status(resp), Err: errors.New("no channel id in the response")}
	}

	post := &model.Post{ChannelId: ch.Id, Message: m.Body}
	post.SetProps(model.StringInterface{NoticeIDProp: n.ID})
	_, resp, err = c.CreatePost(ctx, post)
	if err != nil {
		if st := status(resp); st >= 200 && st < 300 {
			// The server stored the post and said so; only its echo could
			// not be decoded. Reporting a failure would send it again.
			return nil
		}
		return mattermostError("create post", n.ID, resp, err)
	}
	return nil
}

// check refuses what no retry can deliver; errors name fields, not values.
func (s *MattermostSender) check(n *Notice, m Message) error {
	bad := func(what string) error {
		return fmt.Errorf("notice/mattermost: %s (notice %s)", what, n.ID)
	}
	switch {
	case s.BaseURL == "":
		return bad("no base URL configured")
	case s.BotToken == "":
		return bad("no bot token configured")
	case !model.IsValidId(s.BotUserID):
		return bad("bot user id is not a Mattermost id")
	case n.ID == "":
		return bad("notice has no id")
	case !model.IsValidId(n.UserID):
		return bad("recipient user id is not a Mattermost id")
	case strings.TrimSpace(m.Body) == "":
		return bad("empty message")
	case !utf8.ValidString(m.Body):
		return bad("message is not valid UTF-8")
	case utf8.RuneCountInString(m.Body) > MaxMattermostMessageRunes:
		return bad(fmt.Sprintf("message has %d runes, Mattermost takes at most %d", utf8.RuneCountInString(m.Body), MaxMattermostMessageRunes))
	}
	if u, err := url.Parse(s.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return bad("base URL is not an http(s) URL")
	}
	return nil
}

func status(resp *model.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// mmErrorID is what a Mattermost error id looks like; anything else from
// the body is not repeated.
var mmErrorID = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,128}$`)

// mattermostError keeps the status and the error id of a failed Client4
// call and drops everything else it might carry (AppError's message and
// details, a non-JSON body quoted by AppErrorFromJSON).
func mattermostError(op, noticeID string, resp *model.Response, err error) error {
	e := &MattermostError{Op: op, NoticeID: noticeID, Status: status(resp)}
	var appErr *model.AppError
	var urlErr *url.Error
	switch {
	case errors.As(err, &appErr):
		if mmErrorID.MatchString(appErr.Id) {
			e.ID = appErr.Id
		}
		if e.Status == 0 && appErr.StatusCode > 0 {
			e.Status = appErr.StatusCode
		}
	case errors.As(err, &urlErr):
		// Keep the cause (timeouts, refused connections, context
		// errors) without the URL.
		e.Err = urlErr.Err
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		e.Err = err
	case e.Status >= 300:
		// An error body that is not a Mattermost error: status only.
	default:
		e.Err = errors.New("unreadable response")
	}
	return e
}
