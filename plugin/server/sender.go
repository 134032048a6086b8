package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

const (
	maxBatchEvents = 100     // events per ingest request
	maxBatchBytes  = 8 << 20 // bytes of events per request (sealgate's default body limit is 32 MiB)
)

// sender delivers the queue to sealgate, one batch at a time.
type sender struct {
	p    *Plugin
	q    *queue
	kick chan struct{} // configuration changed: retry now
}

func (s *sender) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// statusError is an answer of sealgate other than 200 that is worth
// retrying (a 5xx, or a 4xx that is not about one event: a wrong token).
type statusError struct {
	status int
	reason string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("sealgate answered %d: %s", e.status, e.reason)
}

func (s *sender) run(ctx context.Context) {
	var backoff time.Duration
	failing := false
	for ctx.Err() == nil {
		cfg := s.p.getConfiguration()
		url := cfg.ingestURL()
		if url == "" { // not configured: keep buffering
			select {
			case <-ctx.Done():
				return
			case <-s.kick:
			}
			continue
		}
		batch, err := s.q.take(maxBatchEvents, maxBatchBytes, time.Now())
		if err == nil {
			if len(batch) == 0 {
				s.idle(ctx)
				continue
			}
			if batch = s.resolveFiles(ctx, cfg, batch); len(batch) == 0 {
				continue // only files, deferred or dead-lettered: take the next
			}
			err = s.deliver(ctx, url, cfg.IngestToken, batch)
		}
		if err == nil {
			if failing {
				s.p.API.LogInfo("sealgate: reachable again; delivering the queued events", "pending", s.q.pending())
				failing = false
			}
			backoff = 0
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failing = true
		backoff = min(max(2*backoff, s.p.minBackoff), s.p.maxBackoff)
		delay := jitter(backoff)
		s.p.API.LogWarn("sealgate: delivery failed; events stay queued",
			"pending", s.q.pending(), "retry_in", delay.Round(time.Millisecond).String(), "err", err.Error())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.kick:
			t.Stop()
			backoff = 0
		case <-t.C:
		}
	}
}

// jitter spreads the retries of several plugin instances (cluster nodes):
// d minus up to 20%, so the cap holds.
func jitter(d time.Duration) time.Duration {
	return d - time.Duration(rand.Float64()*0.2*float64(d))
}

// idle waits for new events, a configuration change or a deferred event.
func (s *sender) idle(ctx context.Context) {
	var timer <-chan time.Time
	if wait := s.q.nextDue(time.Now()); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-ctx.Done():
	case <-s.q.wakeCh:
	case <-s.kick:
	case <-timer:
	}
}

// resolveFiles replaces queued file references by file events. A file
// that cannot be read now is deferred; one that is gone is dead-lettered.
func (s *sender) resolveFiles(ctx context.Context, cfg *configuration, batch []*item) []*item {
	out := batch[:0]
	for _, it := range batch {
		if !isFileRef(it.data) {
			out = append(out, it)
			continue
		}
		ev, permanent, err := s.p.resolveFile(ctx, cfg, it.data)
		now := time.Now()
		switch {
		case err == nil:
			it.data = ev
			out = append(out, it)
		case permanent:
			if derr := s.q.deadLetter(it, 0, "file could not be read: "+err.Error(), now); derr != nil {
				s.q.deferItem(it, now, s.p.minBackoff, s.p.maxBackoff)
			}
		default:
			s.p.API.LogWarn("sealgate: cannot resolve a shared file yet; will retry", "err", err.Error())
			s.q.deferItem(it, now, s.p.minBackoff, s.p.maxBackoff)
		}
	}
	return out
}

// deliver posts the batch. On 200 the events are off the queue. A 400 or
// 413 refuses the whole batch for one event in it (or for its size), so
// the batch is split in halves and each sent again, down to single events;
// an event refused on its own is dead-lettered. Any other outcome is an
// error to retry.
func (s *sender) deliver(ctx context.Context, url, token string, batch []*item) error {
	status, reason, err := s.post(ctx, url, token, batch)
	switch {
	case err != nil:
		return err
	case status == http.StatusOK:
		s.q.ack(batch)
		return nil
	case (status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge) && len(batch) > 1:
		half := len(batch) / 2
		if err := s.deliver(ctx, url, token, batch[:half]); err != nil {
			return err
		}
		return s.deliver(ctx, url, token, batch[half:])
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge:
		if err := s.q.deadLetter(batch[0], status, reason, time.Now()); err != nil {
			return fmt.Errorf("move a refused event to dead-letter: %w", err)
		}
		return nil
	default:
		return &statusError{status: status, reason: reason}
	}
}

func (s *sender) post(ctx context.Context, url, token string, batch []*item) (status int, reason string, err error) {
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for i, it := range batch {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(it.data)
	}
	body.WriteString(`]}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body.Bytes()))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "sealgate-mattermost-plugin")
	resp, err := s.p.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return http.StatusOK, "", nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &e) != nil || e.Error == "" {
		e.Error = http.StatusText(resp.StatusCode)
	}
	return resp.StatusCode, e.Error, nil
}
