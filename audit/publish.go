package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Publisher publishes a checkpoint outside the store, where whoever can
// change the store cannot change it (see the package doc).
type Publisher interface {
	Publish(ctx context.Context, c Checkpoint) error
}

// MattermostPublisher posts the checkpoint line (Checkpoint.String) as the
// sealgate bot into one channel, through the Mattermost REST API
// (POST /api/v4/posts). The channel should be one the store administrator
// cannot edit or delete posts in.
type MattermostPublisher struct {
	BaseURL   string       // e.g. https://chat.example.com
	BotToken  string       // the sealgate bot's access token; never put in an error
	ChannelID string       // the channel to post in
	Client    *http.Client // nil: a client with a 30 s timeout
}

var defaultPublishClient = &http.Client{Timeout: 30 * time.Second}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// Publish posts c.String() to the channel. It succeeds only on 201 Created;
// any other status is an error naming the status (and Mattermost's error id,
// if the body has one). No error it returns contains the bot token.
func (p *MattermostPublisher) Publish(ctx context.Context, c Checkpoint) error {
	if err := p.publish(ctx, c); err != nil {
		// Only the redacted text is kept, and only a context error is left
		// to unwrap, so the token cannot leak from a wrapped error either.
		r := &publishError{msg: p.redact(err.Error())}
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			r.cause = cerr
		}
		return r
	}
	return nil
}

type publishError struct {
	msg   string
	cause error // ctx.Err() if that is why publishing failed, else nil
}

func (e *publishError) Error() string { return e.msg }
func (e *publishError) Unwrap() error { return e.cause }

func (p *MattermostPublisher) publish(ctx context.Context, c Checkpoint) error {
	switch {
	case p.BaseURL == "":
		return errors.New("publish audit checkpoint to Mattermost: no base URL")
	case p.BotToken == "":
		return errors.New("publish audit checkpoint to Mattermost: no bot token")
	case p.ChannelID == "":
		return errors.New("publish audit checkpoint to Mattermost: no channel id")
	}
	base, err := url.Parse(p.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return errors.New("publish audit checkpoint to Mattermost: base URL is not an http(s) URL")
	}
	endpoint := base.JoinPath("api", "v4", "posts").String()
	body, err := json.Marshal(struct {
		ChannelID string `json:"channel_id"`
		Message   string `json:"message"`
	}{p.ChannelID, c.String()})
	if err != nil {
		return fmt.Errorf("publish audit checkpoint to Mattermost: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("publish audit checkpoint to Mattermost: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+p.BotToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	client := p.Client
	if client == nil {
		client = defaultPublishClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("publish audit checkpoint to Mattermost: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody)) // lets the connection be reused
		return nil
	}
	msg := fmt.Sprintf("publish audit checkpoint to Mattermost: POST %s: status %d", endpoint, resp.StatusCode)
	// Mattermost's error body is an AppError; its id names the cause
	// (e.g. api.context.session_expired.app_error) without echoing input.
	var appErr struct {
		ID string `json:"id"`
	}
	if raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)); json.Unmarshal(raw, &appErr) == nil &&
		appErr.ID != "" && len(appErr.ID) <= 200 && checkString(appErr.ID) == nil {
		msg += " (" + appErr.ID + ")"
	}
	return errors.New(msg)
}

// redact removes the bot token from s, in case anything (a server's
// message, a proxy's error) echoed it.
func (p *MattermostPublisher) redact(s string) string {
	if p.BotToken == "" {
		return s
	}
	return strings.ReplaceAll(s, p.BotToken, "[token]")
}

// PublishOnce verifies the log, appends a checkpoint entry (ActionCheckpoint,
// ActorRole "system", Detail "seq=N" where N is the entry's own Seq) and
// publishes the checkpoint of that entry with p: Seq N and the entry's
// Hash, so the published checkpoint covers the entry that records it, and
// the entry with Detail "seq=N" and the published line "seq=N" name each
// other. (Entries other writers append meanwhile come after N and are
// covered by the next checkpoint.)
//
// The log is verified first (Verify, a full scan) because a checkpoint
// vouches for everything up to it: a log that fails verification is not
// checkpointed, and the error says why. If the append or the verification
// fails, PublishOnce returns a zero Checkpoint and the error; if only the
// publishing fails, it returns the checkpoint it could not publish and the
// error (the checkpoint entry stays in the log: it records the attempt).
func PublishOnce(ctx context.Context, l *Log, p Publisher) (Checkpoint, error) {
	return publishOnce(ctx, l, p, nil)
}

// publishOnce is PublishOnce that also checks the log against the
// checkpoint published before (nil: none), which catches entries deleted at
// the end or a chain recomputed since then.
func publishOnce(ctx context.Context, l *Log, p Publisher, prev *Checkpoint) (Checkpoint, error) {
	rep, err := Verify(ctx, l.b, prev)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: not published, log fails verification: %w", err)
	}
	if prev != nil && !rep.CheckpointOK { // Verify reports this as a problem; be explicit anyway
		return Checkpoint{}, errors.New("audit checkpoint: not published, log does not match the previous checkpoint")
	}
	e, err := l.appendCheckpoint(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	c := Checkpoint{Seq: e.Seq, Hash: e.Hash, Time: e.Time.Truncate(time.Second)}
	if err := p.Publish(ctx, c); err != nil {
		return c, fmt.Errorf("audit checkpoint seq=%d: %w", c.Seq, err)
	}
	return c, nil
}

// appendCheckpoint appends the checkpoint entry. Its Detail names its own
// Seq, which Append cannot do (it picks the Seq after the record is fixed),
// so this builds the entry itself on the current head and, like Append,
// retries on the new head when another writer appends first.
func (l *Log) appendCheckpoint(ctx context.Context) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	deadline := time.Now().Add(appendPatience)
	for attempt := 1; ; attempt++ {
		last, ok, err := l.b.LastAudit(ctx)
		if err != nil {
			return Entry{}, fmt.Errorf("audit log: checkpoint entry: %w", err)
		}
		e := Entry{
			Seq:       1,
			Time:      l.now().UTC().Truncate(time.Microsecond),
			ActorRole: "system",
			Action:    ActionCheckpoint,
		}
		if ok {
			e.Seq, e.Prev = last.Seq+1, last.Hash
		}
		e.Detail = fmt.Sprintf("seq=%d", e.Seq)
		e.Hash = e.ComputeHash()
		err = l.b.AppendAudit(ctx, e)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, ErrConflict) || ctx.Err() != nil || time.Now().After(deadline) {
			return Entry{}, fmt.Errorf("audit log: checkpoint entry: %w (after %d attempts)", err, attempt)
		}
		d := time.Duration(rand.Int64N(int64(min(time.Millisecond<<min(attempt, 10), maxBackoff))))
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
}

// PublishLoop publishes a checkpoint with PublishOnce once at the start and
// then every interval, until ctx ends. From the second checkpoint on it also
// verifies the log against the last checkpoint it published, so entries
// deleted at the end since then are reported rather than checkpointed over.
//
// A failure (verification, append or publishing) is passed to onError (if
// not nil) and the next tick tries again with a new checkpoint entry; it is
// never fatal. Errors caused by ctx ending are not reported. A non-positive
// interval is reported to onError and PublishLoop returns at once.
func PublishLoop(ctx context.Context, l *Log, p Publisher, interval time.Duration, onError func(error)) {
	report := func(err error) {
		if onError != nil && ctx.Err() == nil {
			onError(err)
		}
	}
	if interval <= 0 {
		report(fmt.Errorf("audit checkpoint: publish interval %v is not positive", interval))
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var last *Checkpoint
	for {
		if ctx.Err() != nil {
			return
		}
		if c, err := publishOnce(ctx, l, p, last); err != nil {
			report(err)
		} else {
			last = &c
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}
