package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/release"
)

// Test seams of the notice dispatcher. Production leaves both nil; a test
// sets them before serve starts and restores them after it stops (newNotices
// reads them once).
var (
	// noticeBackoff, if set, replaces the dispatcher's retry backoff
	// (notice.DefaultBackoff, minutes to an hour) and wakes the dispatcher
	// when each retry falls due, since serve's dispatcher otherwise looks
	// at the outbox only every 30 s.
	noticeBackoff func(attempt int) time.Duration
	// noticeClock, if set, is the dispatcher's clock instead of time.Now,
	// so that a test can let a deferral end (a date days ahead) pass.
	noticeClock func() time.Time
)

// noticeRuntime is the notice half of serve: the sealed outbox in the
// store and the dispatcher that empties it.
type noticeRuntime struct {
	outbox     *deliveredOnce
	dispatcher *notice.Dispatcher
}

// newNotices builds the outbox and the dispatcher. The desk is set later
// (the desk needs the outbox, the dispatcher needs the desk).
func (rt *gatewayRuntime) newNotices(cfg *config.Config, desk func() *release.Desk) (*noticeRuntime, error) {
	backend, ok := rt.store.(notice.OutboxBackend)
	if !ok {
		return nil, errors.New("the configured store cannot hold the notice outbox")
	}
	aead, err := rt.keys.AEAD("notice/v1")
	if err != nil {
		return nil, err
	}
	tmpl := notice.DefaultTemplates()
	if cfg.Notices.Templates != "" {
		if tmpl, err = notice.LoadTemplates(cfg.Path(cfg.Notices.Templates)); err != nil {
			return nil, err
		}
	}
	contacts := notice.Contacts{DPO: cfg.Notices.DPOContact, Authority: cfg.Notices.Authority}
	if contacts.Authority == "" {
		contacts.Authority = notice.DefaultAuthority
	}
	senders := []notice.Sender{&notice.MattermostSender{BaseURL: cfg.Mattermost.URL, BotToken: cfg.Mattermost.BotToken, BotUserID: cfg.Notices.BotUserID}}
	if m := cfg.Notices.Mail; m.Addr != "" {
		ms := &notice.MailSender{Addr: m.Addr, From: m.From, Username: m.Username, Password: m.Password, Mechanism: m.Mechanism, ImplicitTLS: m.ImplicitTLS}
		if m.Mechanism == notice.MechXOAuth2 || m.Mechanism == notice.MechOAuthBearer {
			token := m.Password
			ms.Password = ""
			ms.TokenSource = func(context.Context) (string, error) { return token, nil }
		}
		senders = append(senders, ms)
	}
	dir := &notice.MattermostDirectory{BaseURL: cfg.Mattermost.URL, BotToken: cfg.Mattermost.BotToken}
	counts := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sealgate_notices_total", Help: "Notices to employees by outcome (sent, escalated) and channel.",
	}, []string{"outcome", "channel"})
	rt.metrics.Registry.MustRegister(counts)
	system := func(ctx context.Context, action audit.Action, orderID, object, detail string) {
		if _, err := rt.auditLog.Append(ctx, audit.Record{ActorRole: "system", Action: action, OrderID: orderID, Object: object, Detail: detail}); err != nil {
			rt.log.Error("audit notice", "order", orderID, "err", err)
		}
	}
	nr := &noticeRuntime{outbox: &deliveredOnce{Outbox: notice.NewOutbox(backend, aead), log: rt.auditLog}}
	nr.dispatcher = &notice.Dispatcher{
		Outbox:  nr.outbox.Outbox,
		Senders: senders,
		Complete: func(ctx context.Context, n *notice.Notice) error {
			if err := desk().CompleteNotice(ctx, n); err != nil {
				return err
			}
			return dir.Lookup(ctx, n)
		},
		Render: func(n *notice.Notice) (notice.Message, error) { return notice.Render(n, contacts, tmpl) },
		Delivered: func(ctx context.Context, n *notice.Notice, channel string) {
			counts.WithLabelValues("sent", channel).Inc()
			// deliveredOnce reads this entry: keep the two in step.
			system(ctx, audit.ActionNoticeSent, n.OrderID, channel, string(n.Kind))
		},
		Escalate: func(ctx context.Context, n *notice.Notice, attempts int, lastErr error) {
			counts.WithLabelValues("escalated", "").Inc()
			system(ctx, audit.ActionNoticeEscalated, n.OrderID, n.ID, fmt.Sprintf("attempts=%d", attempts))
			if cfg.Notices.EscalationChannel != "" {
				msg := fmt.Sprintf("sealgate: the %s notice %s of order %s could not be delivered after %d attempts. It stays queued and is retried; check the sealgate bot and the mail settings.",
					n.Kind, n.ID, n.OrderID, attempts)
				if err := postToChannel(ctx, cfg.Mattermost.URL, cfg.Mattermost.BotToken, cfg.Notices.EscalationChannel, msg); err != nil {
					rt.log.Error("escalation message", "notice", n.ID, "err", err)
				}
			}
		},
		Log: rt.log,
		Now: noticeClock,
	}
	if backoff := noticeBackoff; backoff != nil {
		d := nr.dispatcher
		d.Backoff = func(attempt int) time.Duration {
			wait := backoff(attempt)
			time.AfterFunc(wait, d.Wake)
			return wait
		}
	}
	return nr, nil
}

// deliveredOnce is the outbox as the desk sees it: Enqueue queues a
// notice only if the audit log does not record it delivered already. The
// outbox forgets a notice once it is delivered, and the desk queues both
// notices of an order again when it restores an activation after a
// restart (the requester's first read, release.Desk.activate): without
// this check the subject would be told a second time. A delivery whose
// audit entry was not written is queued again (at least once, as before).
type deliveredOnce struct {
	*notice.Outbox
	log *audit.Log
}

func (o *deliveredOnce) Enqueue(ctx context.Context, n *notice.Notice) error {
	if n != nil {
		sent, err := o.delivered(ctx, n)
		if err != nil {
			return fmt.Errorf("enqueue notice %s: %w", n.ID, err)
		}
		if sent {
			return nil
		}
	}
	return o.Outbox.Enqueue(ctx, n)
}

// errDelivered stops the scan of delivered.
var errDelivered = errors.New("delivered")

// delivered reports whether the audit log holds the notice_sent entry
// that the Delivered callback writes for n's order and kind (an order has
// one notice of each kind). It reads the whole log, as CompleteNotice
// does for every notice sent; the desk queues notices only at activation.
func (o *deliveredOnce) delivered(ctx context.Context, n *notice.Notice) (bool, error) {
	err := o.log.Entries(ctx, 1, func(e audit.Entry) error {
		if e.Action == audit.ActionNoticeSent && e.OrderID == n.OrderID && e.Detail == string(n.Kind) {
			return errDelivered
		}
		return nil
	})
	if errors.Is(err, errDelivered) {
		return true, nil
	}
	return false, err
}

// wakingOutbox wakes the dispatcher whenever the desk queues or moves a
// notice, so that a notice due now goes out now.
type wakingOutbox struct {
	*deliveredOnce
	d *notice.Dispatcher
}

func (w wakingOutbox) Enqueue(ctx context.Context, n *notice.Notice) error {
	defer w.d.Wake()
	return w.deliveredOnce.Enqueue(ctx, n)
}

func (w wakingOutbox) Reschedule(ctx context.Context, id string, due time.Time) error {
	defer w.d.Wake()
	return w.Outbox.Reschedule(ctx, id, due)
}

// postToChannel posts one message as the sealgate bot.
func postToChannel(ctx context.Context, baseURL, token, channelID, message string) error {
	c := model.NewAPIv4Client(strings.TrimRight(baseURL, "/"))
	c.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	c.SetToken(token)
	_, resp, err := c.CreatePost(ctx, &model.Post{ChannelId: channelID, Message: message})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		return fmt.Errorf("post to channel %s: HTTP %d", channelID, code)
	}
	return nil
}
