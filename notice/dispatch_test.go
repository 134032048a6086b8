package notice_test

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/store/boltstore"
)

// dspClock is a settable clock.
type dspClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *dspClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *dspClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *dspClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// dspSender records deliveries; it fails its first fail calls (all when
// fail < 0), or has no address.
type dspSender struct {
	name   string
	fail   int
	noAddr bool
	errMsg string                                                      // error text when failing; default "<name> down"
	hook   func(ctx context.Context, n *notice.Notice, call int) error // runs first; its error is returned

	mu     sync.Mutex
	calls  int
	sent   []string // notice ids, in delivery order
	bodies []string
}

func (s *dspSender) Name() string { return s.name }

func (s *dspSender) Send(ctx context.Context, n *notice.Notice, m notice.Message) error {
	s.mu.Lock()
	s.calls++
	call := s.calls
	s.mu.Unlock()
	if s.hook != nil {
		if err := s.hook(ctx, n, call); err != nil {
			return err
		}
	}
	if s.noAddr {
		return fmt.Errorf("%s: %w", s.name, notice.ErrNoAddress)
	}
	if s.fail < 0 || call <= s.fail {
		msg := s.errMsg
		if msg == "" {
			msg = s.name + " down"
		}
		return errors.New(msg)
	}
	s.mu.Lock()
	s.sent = append(s.sent, n.ID)
	s.bodies = append(s.bodies, m.Body)
	s.mu.Unlock()
	return nil
}

func (s *dspSender) Sent() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

func (s *dspSender) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

type escalation struct {
	id       string
	attempts int
	err      error
}

type delivery struct {
	id, channel string
}

// dspFixture is a dispatcher over a real bbolt store, with a fake clock
// and recorded callbacks.
type dspFixture struct {
	t       *testing.T
	path    string
	aead    cipher.AEAD
	store   *boltstore.Store
	outbox  *notice.Outbox
	clock   *dspClock
	logs    *bytes.Buffer
	d       *notice.Dispatcher
	escal   []escalation
	deliver []delivery
}

func newDspFixture(t *testing.T, senders ...notice.Sender) *dspFixture {
	t.Helper()
	f := &dspFixture{t: t, path: filepath.Join(t.TempDir(), "store.db"), aead: obAEAD(t), clock: &dspClock{t: obT0}}
	f.open(senders...)
	t.Cleanup(func() { f.store.Close() })
	return f
}

// open (re)opens the store and builds a new outbox and dispatcher on it.
func (f *dspFixture) open(senders ...notice.Sender) {
	f.t.Helper()
	s, err := boltstore.Open(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	f.store = s
	f.outbox = notice.NewOutbox(s, f.aead)
	f.logs = &bytes.Buffer{}
	f.d = &notice.Dispatcher{
		Outbox:  f.outbox,
		Senders: senders,
		Render: func(n *notice.Notice) (notice.Message, error) {
			return notice.Message{Subject: string(n.Kind), Body: "order " + n.OrderID}, nil
		},
		Now: f.clock.Now,
		Escalate: func(_ context.Context, n *notice.Notice, attempts int, lastErr error) {
			f.escal = append(f.escal, escalation{n.ID, attempts, lastErr})
		},
		Delivered: func(_ context.Context, n *notice.Notice, channel string) {
			f.deliver = append(f.deliver, delivery{n.ID, channel})
		},
		Log: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// restart closes the store and opens it again with a new dispatcher.
func (f *dspFixture) restart(senders ...notice.Sender) {
	f.t.Helper()
	if err := f.store.Close(); err != nil {
		f.t.Fatal(err)
	}
	f.open(senders...)
}

func (f *dspFixture) enqueue(n *notice.Notice) {
	f.t.Helper()
	obEnqueue(f.t, f.outbox, n)
}

// run calls RunOnce and checks its counts.
func (f *dspFixture) run(wantSent, wantFailed int) {
	f.t.Helper()
	sent, failed, err := f.d.RunOnce(f.t.Context())
	if err != nil {
		f.t.Fatalf("RunOnce: %v", err)
	}
	if sent != wantSent || failed != wantFailed {
		f.t.Fatalf("RunOnce at %v: sent %d, failed %d; want %d, %d", f.clock.Now(), sent, failed, wantSent, wantFailed)
	}
}

func (f *dspFixture) queued() []notice.OutboxRow { return obRows(f.t, f.store) }

func TestDispatchDueAndOrder(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	f.enqueue(obNotice("ntc_later", obT0.Add(time.Hour)))
	f.enqueue(obNotice("ntc_b", obT0.Add(-time.Minute)))
	f.enqueue(obNotice("ntc_a", obT0.Add(-time.Minute)))
	f.enqueue(obNotice("ntc_first", obT0.Add(-2*time.Minute)))
	f.enqueue(obNotice("ntc_now", obT0))

	f.run(4, 0)
	if got, want := mm.Sent(), []string{"ntc_first", "ntc_a", "ntc_b", "ntc_now"}; !slices.Equal(got, want) {
		t.Fatalf("sent %v, want %v", got, want)
	}
	if len(f.deliver) != 4 || f.deliver[0] != (delivery{"ntc_first", "mattermost"}) {
		t.Fatalf("Delivered callbacks: %v", f.deliver)
	}
	if q := f.queued(); len(q) != 1 || q[0].ID != "ntc_later" {
		t.Fatalf("queued after delivery: %v", q)
	}
	f.run(0, 0)
	f.clock.Advance(time.Hour - time.Millisecond)
	f.run(0, 0)
	f.clock.Advance(time.Millisecond)
	f.run(1, 0)
	if len(f.queued()) != 0 || len(mm.Sent()) != 5 || len(f.escal) != 0 {
		t.Fatalf("queued %d, sent %v, escalated %v", len(f.queued()), mm.Sent(), f.escal)
	}
	if !strings.Contains(f.logs.String(), "notice delivered") {
		t.Fatalf("no delivery logged:\n%s", f.logs)
	}
}

func TestDispatchFallsBack(t *testing.T) {
	mm := &dspSender{name: "mattermost", fail: -1}
	mail := &dspSender{name: "email"}
	f := newDspFixture(t, mm, mail)
	f.enqueue(obNotice("ntc_a", obT0))
	f.run(1, 0)
	if mm.Calls() != 1 || !slices.Equal(mail.Sent(), []string{"ntc_a"}) {
		t.Fatalf("mattermost called %d times, e-mail sent %v", mm.Calls(), mail.Sent())
	}
	if f.deliver[0] != (delivery{"ntc_a", "email"}) || len(f.queued()) != 0 {
		t.Fatalf("delivered %v, %d queued", f.deliver, len(f.queued()))
	}
	// First success wins: the second sender is not tried.
	f.enqueue(obNotice("ntc_b", obT0))
	mm.fail = 0
	f.run(1, 0)
	if !slices.Equal(mm.Sent(), []string{"ntc_b"}) || len(mail.Sent()) != 1 {
		t.Fatalf("mattermost sent %v, e-mail sent %v", mm.Sent(), mail.Sent())
	}
}

func TestDispatchSkipsNoAddress(t *testing.T) {
	mm := &dspSender{name: "mattermost", noAddr: true}
	mail := &dspSender{name: "email"}
	f := newDspFixture(t, mm, mail)
	f.enqueue(obNotice("ntc_a", obT0))
	f.run(1, 0)
	if !slices.Equal(mail.Sent(), []string{"ntc_a"}) || f.deliver[0].channel != "email" {
		t.Fatalf("e-mail sent %v, delivered %v", mail.Sent(), f.deliver)
	}

	// No sender has an address: a failed attempt, retried, never dropped.
	mail.noAddr = true
	f.enqueue(obNotice("ntc_b", obT0))
	f.d.EscalateAfter = 1
	f.run(0, 1)
	q := f.queued()
	if len(q) != 1 || q[0].ID != "ntc_b" || q[0].Attempts != 1 {
		t.Fatalf("queued after no address anywhere: %+v", q)
	}
	if len(f.escal) != 1 || !errors.Is(f.escal[0].err, notice.ErrNoAddress) {
		t.Fatalf("escalations %v, want one wrapping ErrNoAddress", f.escal)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for _, c := range []struct {
		attempt int
		base    time.Duration
	}{
		{0, time.Minute}, {1, time.Minute}, {2, 2 * time.Minute}, {3, 4 * time.Minute}, {6, 32 * time.Minute},
		{7, time.Hour}, {8, time.Hour}, {63, time.Hour}, {64, time.Hour}, {1 << 30, time.Hour},
	} {
		lo, hi := c.base*8/10, c.base*12/10
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			d := notice.DefaultBackoff(c.attempt)
			if d < lo || d > hi {
				t.Fatalf("DefaultBackoff(%d) = %v, want within [%v, %v]", c.attempt, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 100 {
			t.Fatalf("DefaultBackoff(%d): only %d distinct values in 200; no jitter?", c.attempt, len(seen))
		}
	}
}

// TestDispatchRetriesWithBackoff uses the default backoff: the retry comes
// no sooner than 48s (1m - 20%) and no later than 72s (1m + 20%).
func TestDispatchRetriesWithBackoff(t *testing.T) {
	mm := &dspSender{name: "mattermost", fail: 2}
	f := newDspFixture(t, mm)
	f.enqueue(obNotice("ntc_a", obT0))
	f.run(0, 1)
	q := f.queued()
	if len(q) != 1 || q[0].Attempts != 1 || q[0].Due.Before(obT0.Add(48*time.Second)) || q[0].Due.After(obT0.Add(72*time.Second)) {
		t.Fatalf("after one failure: %+v, want attempts 1, due in [48s, 72s]", q)
	}
	f.clock.Advance(47 * time.Second)
	f.run(0, 0)
	f.clock.Set(q[0].Due)
	f.run(0, 1)
	q2 := f.queued()
	if wait := q2[0].Due.Sub(q[0].Due); len(q2) != 1 || q2[0].Attempts != 2 || wait < 96*time.Second || wait > 144*time.Second {
		t.Fatalf("after two failures: %+v (waits %v), want attempts 2, 2m ± 20%% later", q2, wait)
	}
	f.clock.Set(q2[0].Due)
	f.run(1, 0)
	if mm.Calls() != 3 || len(mm.Sent()) != 1 || len(f.queued()) != 0 || len(f.escal) != 0 {
		t.Fatalf("calls %d, sent %v, queued %d, escalations %v", mm.Calls(), mm.Sent(), len(f.queued()), f.escal)
	}
	if !strings.Contains(f.logs.String(), "notice not delivered") {
		t.Fatalf("failures not logged:\n%s", f.logs)
	}
}

// TestDispatchEscalates: Mattermost fails 12 times; the notice is escalated
// after the 5th and 10th failures exactly, kept queued throughout, and
// delivered at the 13th attempt.
func TestDispatchEscalates(t *testing.T) {
	mm := &dspSender{name: "mattermost", fail: 12}
	f := newDspFixture(t, mm)
	f.enqueue(obNotice("ntc_a", obT0))
	for attempt := 1; attempt <= 12; attempt++ {
		f.run(0, 1)
		q := f.queued()
		if len(q) != 1 || q[0].Attempts != attempt {
			t.Fatalf("after failure %d: %+v", attempt, q)
		}
		f.run(0, 0) // not due again before its backoff
		f.clock.Advance(73 * time.Minute)
	}
	f.run(1, 0)
	if mm.Calls() != 13 || !slices.Equal(mm.Sent(), []string{"ntc_a"}) || len(f.queued()) != 0 {
		t.Fatalf("calls %d, sent %v, queued %d", mm.Calls(), mm.Sent(), len(f.queued()))
	}
	var at []int
	for _, e := range f.escal {
		if e.id != "ntc_a" || e.err == nil || !strings.Contains(e.err.Error(), "mattermost down") {
			t.Fatalf("escalation %+v", e)
		}
		at = append(at, e.attempts)
	}
	if !slices.Equal(at, []int{5, 10}) {
		t.Fatalf("escalated at attempts %v, want [5 10]", at)
	}
	if len(f.deliver) != 1 || strings.Count(f.logs.String(), "notice escalated") != 2 {
		t.Fatalf("delivered %v; log:\n%s", f.deliver, f.logs)
	}
}

// TestDispatchAfterRestart: a deferred notice falls due while the gateway
// is down; after the restart it is sent exactly once.
func TestDispatchAfterRestart(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	due := obT0.AddDate(0, 0, 10)
	f.enqueue(obNotice("ntc_deferred", due))
	f.enqueue(obNotice("ntc_now", obT0))
	f.run(1, 0)
	f.clock.Set(due.Add(-time.Second))
	f.run(0, 0)

	mm2 := &dspSender{name: "mattermost"}
	f.store.Close()
	f.clock.Set(due.Add(3 * time.Hour))
	f.open(mm2)
	f.run(1, 0)
	f.run(0, 0)
	if !slices.Equal(mm2.Sent(), []string{"ntc_deferred"}) || !slices.Equal(mm.Sent(), []string{"ntc_now"}) {
		t.Fatalf("before the restart sent %v, after %v", mm.Sent(), mm2.Sent())
	}
	// The deletion was durable: another restart sends nothing.
	mm3 := &dspSender{name: "mattermost"}
	f.restart(mm3)
	f.run(0, 0)
	if mm3.Calls() != 0 || len(f.queued()) != 0 {
		t.Fatalf("after a second restart: %d calls, %d queued", mm3.Calls(), len(f.queued()))
	}
}

// TestDispatchRetryStateSurvivesRestart: the attempt count and backoff are
// durable, so escalation counts across restarts.
func TestDispatchRetryStateSurvivesRestart(t *testing.T) {
	f := newDspFixture(t, &dspSender{name: "mattermost", fail: -1})
	f.enqueue(obNotice("ntc_a", obT0))
	for i := 0; i < 3; i++ {
		f.run(0, 1)
		f.clock.Advance(2 * time.Hour)
	}
	f.restart(&dspSender{name: "mattermost", fail: -1})
	f.run(0, 1)
	f.clock.Advance(2 * time.Hour)
	f.run(0, 1)
	if len(f.escal) != 1 || f.escal[0].attempts != 5 {
		t.Fatalf("escalations %v, want one at attempt 5", f.escal)
	}
}

func TestDispatchUnreadable(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	f.enqueue(obNotice("ntc_a", obT0))
	f.enqueue(obNotice("ntc_b", obT0))
	// ntc_b's blob under another id: unreadable.
	rowA, _ := obRow(t, f.store, "ntc_a")
	if err := f.store.PutNotice(t.Context(), "ntc_c", obT0, rowA.Blob); err != nil {
		t.Fatal(err)
	}
	f.d.EscalateAfter = 2
	sent, failed, err := f.d.RunOnce(t.Context())
	if sent != 2 || failed != 1 || !errors.Is(err, notice.ErrUnreadable) || !strings.Contains(err.Error(), "ntc_c") {
		t.Fatalf("RunOnce = %d sent, %d failed, %v; want 2, 1 and an error naming ntc_c", sent, failed, err)
	}
	q := f.queued()
	if len(q) != 1 || q[0].ID != "ntc_c" || q[0].Attempts != 1 || !q[0].Due.After(obT0) {
		t.Fatalf("queued: %+v, want ntc_c retried later", q)
	}
	f.clock.Advance(2 * time.Hour)
	if _, failed, err = f.d.RunOnce(t.Context()); failed != 1 || err == nil {
		t.Fatalf("second RunOnce: %d failed, %v", failed, err)
	}
	if len(f.escal) != 1 || f.escal[0].id != "ntc_c" || f.escal[0].attempts != 2 || !errors.Is(f.escal[0].err, notice.ErrUnreadable) {
		t.Fatalf("escalations %+v, want ntc_c at 2 wrapping ErrUnreadable", f.escal)
	}
	if len(f.queued()) != 1 {
		t.Fatal("the unreadable notice was dropped")
	}
}

// TestDispatchKeepsRecipientOutOfLogs: a sender's error that quotes the
// recipient reaches the log and the escalation redacted.
func TestDispatchKeepsRecipientOutOfLogs(t *testing.T) {
	n := obNotice("ntc_a", obT0)
	n.UserID, n.Email = "CANARY-user-41c9", "Canary.Person@Example.com"
	mm := &dspSender{name: "mattermost", fail: -1, errMsg: "user CANARY-user-41c9 not found"}
	mail := &dspSender{name: "email", fail: -1, errMsg: "550 <canary.person@example.com>: mailbox unavailable; <Canary.Person@Example.com>"}
	f := newDspFixture(t, mm, mail)
	f.d.EscalateAfter = 1
	f.enqueue(n)
	f.run(0, 1)
	if len(f.escal) != 1 {
		t.Fatalf("escalations %v", f.escal)
	}
	for where, text := range map[string]string{"log": f.logs.String(), "escalation": f.escal[0].err.Error()} {
		for _, c := range []string{"CANARY-user-41c9", "Canary.Person@Example.com", "canary.person@example.com"} {
			if strings.Contains(text, c) {
				t.Fatalf("%s holds %q:\n%s", where, c, text)
			}
		}
		if !strings.Contains(text, "mailbox unavailable") || !strings.Contains(text, "not found") {
			t.Fatalf("%s lost the reasons:\n%s", where, text)
		}
	}
}

// TestDispatchComplete: Complete runs before Render, on the opened notice;
// its error fails the attempt.
func TestDispatchComplete(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	fail := true
	f.d.Complete = func(_ context.Context, n *notice.Notice) error {
		if fail {
			return errors.New("audit log unavailable")
		}
		n.OrderID = "ord_completed"
		return nil
	}
	f.enqueue(obNotice("ntc_a", obT0))
	f.run(0, 1)
	fail = false
	f.clock.Advance(2 * time.Hour)
	f.run(1, 0)
	if mm.bodies[0] != "order ord_completed" {
		t.Fatalf("rendered %q, want the completed notice", mm.bodies[0])
	}
}

func TestDispatchRenderFailure(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	f.d.Render = func(*notice.Notice) (notice.Message, error) { return notice.Message{}, errors.New("template broken") }
	f.enqueue(obNotice("ntc_a", obT0))
	f.run(0, 1)
	if mm.Calls() != 0 || len(f.queued()) != 1 || !strings.Contains(f.logs.String(), "template broken") {
		t.Fatalf("calls %d, queued %d, log:\n%s", mm.Calls(), len(f.queued()), f.logs)
	}
}

// TestDispatchRescheduledWhileSending: the deferral is renewed while a
// delivery is under way and fails; the notice waits for the new deferral.
func TestDispatchRescheduledWhileSending(t *testing.T) {
	later := obT0.AddDate(0, 0, 5)
	var f *dspFixture
	mm := &dspSender{name: "mattermost", hook: func(ctx context.Context, n *notice.Notice, call int) error {
		if call == 1 {
			if err := f.outbox.Reschedule(ctx, n.ID, later); err != nil {
				return err
			}
			return errors.New("mattermost down")
		}
		return nil
	}}
	f = newDspFixture(t, mm)
	f.enqueue(obNotice("ntc_a", obT0))
	f.run(0, 1)
	f.clock.Advance(2 * time.Hour)
	f.run(0, 0)
	f.clock.Set(later)
	f.run(1, 0)
}

// TestDispatchShutdown: a send cut short by ctx leaves the notice as it
// was; a notice sent before ctx ended is still removed.
func TestDispatchShutdown(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	mm := &dspSender{name: "mattermost", hook: func(ctx context.Context, n *notice.Notice, call int) error {
		cancel()
		if n.ID == "ntc_a" {
			return ctx.Err()
		}
		return nil // sent, but ctx ended meanwhile
	}}
	f := newDspFixture(t, mm)
	f.enqueue(obNotice("ntc_a", obT0))
	sent, failed, err := f.d.RunOnce(ctx)
	if sent != 0 || failed != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("RunOnce cut short = %d sent, %d failed, %v", sent, failed, err)
	}
	if q := f.queued(); len(q) != 1 || q[0].Attempts != 0 || !q[0].Due.Equal(obT0) {
		t.Fatalf("queued after shutdown: %+v, want unchanged", q)
	}

	f.store.Close()
	f.open(mm)
	ctx, cancel = context.WithCancel(t.Context())
	defer cancel()
	if err := f.outbox.Done(t.Context(), "ntc_a"); err != nil {
		t.Fatal(err)
	}
	f.enqueue(obNotice("ntc_b", obT0))
	sent, _, _ = f.d.RunOnce(ctx)
	if sent != 1 || len(f.queued()) != 0 {
		t.Fatalf("sent %d, queued %d; a delivered notice must be removed even as ctx ends", sent, len(f.queued()))
	}
}

// TestDispatchManyAndZeroBackoff: more than a page of due notices go out
// in one RunOnce; with a zero backoff, failing notices are tried once per
// RunOnce, which still returns.
func TestDispatchManyAndZeroBackoff(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	for i := 0; i < 250; i++ {
		f.enqueue(obNotice(fmt.Sprintf("ntc_%03d", i), obT0.Add(-time.Duration(i)*time.Second)))
	}
	f.run(250, 0)
	if len(mm.Sent()) != 250 || len(f.queued()) != 0 {
		t.Fatalf("sent %d, queued %d", len(mm.Sent()), len(f.queued()))
	}

	bad := &dspSender{name: "mattermost", fail: -1}
	f.d.Senders = []notice.Sender{bad}
	f.d.Backoff = func(int) time.Duration { return 0 }
	for i := 0; i < 230; i++ {
		f.enqueue(obNotice(fmt.Sprintf("ntc_x%03d", i), obT0))
	}
	f.run(0, 230)
	if bad.Calls() != 230 {
		t.Fatalf("%d sends for 230 notices in one RunOnce", bad.Calls())
	}
}

func TestDispatchRun(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	f.d.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	f.enqueue(obNotice("ntc_a", obT0))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.d.Run(ctx, 10*time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(mm.Sent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// A notice queued while Run runs goes out on a later tick.
	f.enqueue(obNotice("ntc_b", obT0))
	for len(mm.Sent()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !slices.Equal(mm.Sent(), []string{"ntc_a", "ntc_b"}) {
		t.Fatalf("sent %v", mm.Sent())
	}
}

func TestDispatchConfig(t *testing.T) {
	ob := notice.NewOutbox(obStore(t), obAEAD(t))
	render := func(*notice.Notice) (notice.Message, error) { return notice.Message{}, nil }
	for name, d := range map[string]*notice.Dispatcher{
		"no outbox":   {Senders: []notice.Sender{&dspSender{}}, Render: render},
		"no senders":  {Outbox: ob, Render: render},
		"no renderer": {Outbox: ob, Senders: []notice.Sender{&dspSender{}}},
	} {
		if _, _, err := d.RunOnce(t.Context()); err == nil {
			t.Errorf("RunOnce with %s succeeded", name)
		}
		if err := d.Run(t.Context(), time.Second); err == nil {
			t.Errorf("Run with %s succeeded", name)
		}
	}
}

// TestDispatchDueWithinTheMillisecond: a notice queued as due "now", with a
// clock finer than the outbox's milliseconds, is sent by the very next
// RunOnce (the one a Wake starts), not left to the next tick.
func TestDispatchDueWithinTheMillisecond(t *testing.T) {
	mm := &dspSender{name: "mattermost"}
	f := newDspFixture(t, mm)
	now := obT0.Add(400 * time.Microsecond)
	f.clock.Set(now)
	f.enqueue(obNotice("ntc_now", now))
	f.run(1, 0)
	if got := mm.Sent(); !slices.Equal(got, []string{"ntc_now"}) {
		t.Fatalf("sent %v", got)
	}
	// Still nothing early by a whole millisecond.
	f.enqueue(obNotice("ntc_next", now.Add(time.Millisecond)))
	f.run(0, 0)
}
