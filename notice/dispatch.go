package notice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

const (
	defaultEscalateAfter = 5
	defaultInterval      = 30 * time.Second
	backoffBase          = time.Minute
	backoffCap           = time.Hour

	// dispatchPage is how many due notices RunOnce takes from the outbox
	// at a time.
	dispatchPage = 100

	// bookkeepingTimeout bounds Done and Retry after a delivery attempt,
	// which run even when ctx has ended: a notice that was sent must be
	// marked done, or it is sent again after a restart.
	bookkeepingTimeout = 30 * time.Second
)

// Dispatcher delivers due notices from an Outbox. Outbox, Senders and
// Render are required; everything else has a default.
//
// A Sender whose error wraps ErrNoAddress (the recipient has no address on
// its channel) is skipped without counting as a failure; if no Sender has
// an address, the attempt fails like any other.
type Dispatcher struct {
	Outbox *Outbox
	// Senders are tried in order until one succeeds.
	Senders []Sender
	// Render turns a notice into the message the Senders send.
	Render func(*Notice) (Message, error)
	// Complete, if set, fills in what is known only at sending time (what
	// was accessed, how the order ended: release.Desk.CompleteNotice)
	// before Render. An error fails the attempt.
	Complete func(ctx context.Context, n *Notice) error
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Escalate is called when a notice has failed EscalateAfter attempts,
	// and again after every EscalateAfter more; the notice stays queued and
	// is retried. For a queued notice that does not open, n has only ID and
	// DueAt, and lastErr wraps ErrUnreadable. lastErr never holds the
	// recipient's user id or e-mail address.
	Escalate func(ctx context.Context, n *Notice, attempts int, lastErr error)
	// Delivered is called when a Sender has delivered n, before the notice
	// is removed from the outbox.
	Delivered func(ctx context.Context, n *Notice, channel string)
	// Log gets one line per delivery, failure and escalation, with the
	// notice id, kind, channel and attempt count, never the recipient;
	// default slog.Default().
	Log *slog.Logger
	// Backoff is the wait before the next try after attempt failures in a
	// row; default 1m·2^(attempt-1), capped at 1h, ±20% jitter.
	Backoff func(attempt int) time.Duration
	// EscalateAfter is the number of failed attempts between escalations;
	// default 5.
	EscalateAfter int

	wakeOnce sync.Once
	wake     chan struct{}
}

// DefaultBackoff is the default Dispatcher.Backoff: 1 minute after the
// first failure, doubling up to 1 hour, each with ±20% jitter.
func DefaultBackoff(attempt int) time.Duration {
	d := backoffCap
	if attempt < 1 {
		attempt = 1
	}
	if attempt <= 7 { // 2^6 minutes is past the cap
		d = min(backoffBase<<(attempt-1), backoffCap)
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// Run calls RunOnce now and then every interval (default 30s) until ctx
// ends; it logs RunOnce's errors and keeps going. It returns nil when ctx
// ends, or at once if the Dispatcher is not configured.
func (d *Dispatcher) Run(ctx context.Context, interval time.Duration) error {
	if err := d.check(); err != nil {
		return err
	}
	if interval <= 0 {
		interval = defaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, _, err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.log().Error("notice dispatch", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-d.wakeup():
		}
	}
}

// Wake makes Run look at the outbox now rather than at its next tick: the
// desk calls it after queueing a notice that is due at once.
func (d *Dispatcher) Wake() {
	select {
	case d.wakeup() <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) wakeup() chan struct{} {
	d.wakeOnce.Do(func() { d.wake = make(chan struct{}, 1) })
	return d.wake
}

// RunOnce delivers every notice due now, each through the first Sender
// that succeeds. A delivered notice is removed from the outbox before
// RunOnce returns; one that no Sender delivered is retried after Backoff.
// sent and failed count the notices delivered and not delivered. err
// reports what kept RunOnce from handling every due notice (the store,
// ctx) and queued notices that do not open (those are retried and
// escalated like failed deliveries, and counted in failed).
func (d *Dispatcher) RunOnce(ctx context.Context) (sent, failed int, err error) {
	if err := d.check(); err != nil {
		return 0, 0, err
	}
	// The outbox keeps due times in whole milliseconds, rounded up so that
	// nothing goes out early; a notice queued as due now (the desk's "now")
	// is therefore due at the end of the current millisecond, which is
	// what RunOnce must count as now, or a wake-up right after the
	// enqueue would find it not yet due and leave it to the next tick.
	now := ceilMilli(d.now())
	seen := map[string]bool{}
	var errs []error
	for {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		ps, derr := d.Outbox.Due(ctx, now, dispatchPage)
		var unreadable *UnreadableError
		if derr != nil && !errors.As(derr, &unreadable) {
			errs = append(errs, derr)
			break
		}
		fresh := 0
		if unreadable != nil {
			errs = append(errs, derr)
			for _, r := range unreadable.Rows {
				if seen[r.ID] {
					continue
				}
				seen[r.ID] = true
				fresh++
				failed++
				n := &Notice{ID: r.ID, DueAt: r.Due}
				if err := d.failed(ctx, n, r.Attempts, now, r.Err); err != nil {
					errs = append(errs, err)
				}
			}
		}
		stop := false
		for _, p := range ps {
			if seen[p.Notice.ID] {
				continue
			}
			seen[p.Notice.ID] = true
			fresh++
			ok, err := d.deliver(ctx, p, now)
			if ok {
				sent++
			} else if ctx.Err() == nil {
				failed++
			}
			if err != nil {
				errs = append(errs, err)
				stop = true
				break
			}
		}
		n := len(ps)
		if unreadable != nil {
			n += len(unreadable.Rows)
		}
		if stop || fresh == 0 || n < dispatchPage {
			break
		}
	}
	return sent, failed, errors.Join(errs...)
}

// deliver tries the Senders for one notice and records the outcome. ok
// says whether it was delivered; err is a store error, or ctx's.
func (d *Dispatcher) deliver(ctx context.Context, p *Pending, now time.Time) (ok bool, err error) {
	n := p.Notice
	channel, lastErr := d.send(ctx, n)
	if lastErr != nil && ctx.Err() != nil {
		// Shutting down: leave the notice as it was; it is due at once
		// after the restart.
		return false, ctx.Err()
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if lastErr != nil {
		return false, d.failed(bctx, n, p.Attempts, now, lastErr)
	}
	if d.Delivered != nil {
		d.Delivered(bctx, n, channel)
	}
	if err := d.Outbox.Done(bctx, n.ID); err != nil {
		// Sent but still queued: it will be sent again (Senders are
		// idempotent by id where their channel allows).
		d.log().Error("notice delivered but not removed from the outbox", "notice", n.ID, "channel", channel, "err", err)
		return true, err
	}
	d.log().Info("notice delivered", "notice", n.ID, "kind", string(n.Kind), "channel", channel, "attempt", p.Attempts+1)
	return true, nil
}

// send completes, renders and offers n to each Sender in turn. It returns
// the channel that delivered, or the reason none did (redacted).
func (d *Dispatcher) send(ctx context.Context, n *Notice) (channel string, err error) {
	if d.Complete != nil {
		if err := d.Complete(ctx, n); err != nil {
			return "", redactRecipient(fmt.Errorf("complete notice: %w", err), n)
		}
	}
	m, err := d.Render(n)
	if err != nil {
		return "", redactRecipient(fmt.Errorf("render notice: %w", err), n)
	}
	var errs []error
	for _, s := range d.Senders {
		err := s.Send(ctx, n, m)
		if err == nil {
			return s.Name(), nil
		}
		if errors.Is(err, ErrNoAddress) {
			continue
		}
		errs = append(errs, fmt.Errorf("%s: %w", s.Name(), err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return "", fmt.Errorf("no channel has an address for the recipient: %w", ErrNoAddress)
	}
	return "", redactRecipient(errors.Join(errs...), n)
}

// failed records a failed attempt: the notice is retried after Backoff,
// and escalated when its count of failures reaches a multiple of
// EscalateAfter. The escalation follows the durable Retry, so each
// multiple is escalated once.
func (d *Dispatcher) failed(ctx context.Context, n *Notice, before int, now time.Time, lastErr error) error {
	attempts := before + 1
	// At least a millisecond ahead, so that this RunOnce (which reads
	// what is due at now) does not take the notice up again.
	next := now.Add(max(d.backoff(attempts), time.Millisecond))
	if err := d.Outbox.Retry(ctx, n.ID, next, attempts); err != nil {
		d.log().Error("notice not delivered, and its retry not recorded", "notice", n.ID, "attempt", attempts, "err", lastErr, "store_err", err)
		return err
	}
	d.log().Warn("notice not delivered", "notice", n.ID, "kind", string(n.Kind), "attempt", attempts, "next", next, "err", lastErr)
	if every := d.escalateAfter(); attempts%every == 0 {
		d.log().Error("notice escalated: not delivered after repeated attempts", "notice", n.ID, "kind", string(n.Kind), "attempts", attempts, "err", lastErr)
		if d.Escalate != nil {
			d.Escalate(ctx, n, attempts, lastErr)
		}
	}
	return nil
}

func (d *Dispatcher) check() error {
	switch {
	case d.Outbox == nil:
		return errors.New("notice dispatcher: no outbox")
	case len(d.Senders) == 0:
		return errors.New("notice dispatcher: no senders")
	case d.Render == nil:
		return errors.New("notice dispatcher: no renderer")
	}
	return nil
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Dispatcher) backoff(attempt int) time.Duration {
	if d.Backoff != nil {
		return d.Backoff(attempt)
	}
	return DefaultBackoff(attempt)
}

func (d *Dispatcher) escalateAfter() int {
	if d.EscalateAfter > 0 {
		return d.EscalateAfter
	}
	return defaultEscalateAfter
}

func (d *Dispatcher) log() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return slog.Default()
}

// redactRecipient keeps the recipient's user id and e-mail address out of
// an error that goes to logs and escalations (an SMTP server may quote the
// address). errors.Is and errors.As still see the original.
func redactRecipient(err error, n *Notice) error {
	msg := err.Error()
	red := msg
	if n.Email != "" {
		red = strings.ReplaceAll(red, n.Email, "[recipient e-mail]")
		red = strings.ReplaceAll(red, strings.ToLower(n.Email), "[recipient e-mail]")
	}
	if n.UserID != "" {
		red = strings.ReplaceAll(red, n.UserID, "[recipient user id]")
	}
	if red == msg {
		return err
	}
	return &recipientRedactedError{msg: red, err: err}
}

type recipientRedactedError struct {
	msg string
	err error
}

func (e *recipientRedactedError) Error() string { return e.msg }
func (e *recipientRedactedError) Unwrap() error { return e.err }
