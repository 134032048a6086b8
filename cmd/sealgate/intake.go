package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sealgate/sealgate/capture/smtpintake"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/gateway"
)

// newSMTPIntake builds the Global Relay SMTP intake: each export becomes
// ingest events that go through the same parser and sealing pipeline as the
// plugin's, answered 250 only once stored.
func (rt *gatewayRuntime) newSMTPIntake(cfg *config.Config) (*smtpintake.Server, error) {
	in := cfg.Intake.SMTP
	tlsCfg, err := smtpintake.LoadTLS(cfg.Path(in.CertFile), cfg.Path(in.KeyFile))
	if err != nil {
		return nil, err
	}
	lim := gateway.Limits{MaxPostBytes: cfg.Limits.MaxPostBytes, MaxBatchEvents: cfg.Limits.MaxBatchEvents}
	srv := &smtpintake.Server{
		Addr: in.Listen, Domain: in.Domain, TLS: tlsCfg, Username: in.Username, Password: in.Password,
		Recipient: in.Recipient, MaxBytes: in.MaxBytes, DeliverBatch: cfg.Limits.MaxBatchEvents, Logger: rt.log,
		Deliver: func(ctx context.Context, evs []json.RawMessage) error {
			body, err := json.Marshal(map[string]any{"events": evs})
			if err != nil {
				return err
			}
			events, err := gateway.ParseBatch(body, lim, time.Now())
			if err != nil {
				return fmt.Errorf("%v: %w", err, smtpintake.ErrRejected)
			}
			_, err = rt.server.Pipeline.Ingest(ctx, events)
			return err
		},
	}
	if cfg.Mattermost.URL != "" && cfg.Mattermost.BotToken != "" {
		srv.ResolveUser = func(ctx context.Context, p smtpintake.Participant) (string, error) {
			return userByEmail(ctx, cfg.Mattermost.URL, cfg.Mattermost.BotToken, p.Email)
		}
	}
	return srv, nil
}

// userByEmail finds a Mattermost user id by e-mail address with the bot's
// token (GET /api/v4/users/email/{email}).
func userByEmail(ctx context.Context, base, token, email string) (string, error) {
	if email == "" {
		return "", errors.New("participant without an e-mail address")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/api/v4/users/email/"+url.PathEscape(email), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("look up participant: %w", errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("look up participant: HTTP %d", resp.StatusCode)
	}
	var u struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil || len(u.ID) != 26 {
		return "", errors.New("look up participant: unexpected answer")
	}
	return u.ID, nil
}
