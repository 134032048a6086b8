package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealgate/sealgate/aggregates"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/mmauth"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/redact/dp"
	"github.com/sealgate/sealgate/store"
)

// statistics is serve's side of the k-anonymous activity aggregates: the
// in-memory Aggregator the ingest pipeline feeds, the loop that releases
// each UTC day to the store once it is over (and what is open at shutdown,
// marked partial), and GET /v1/aggregates on the order listener.
type statistics struct {
	agg   *redact.Aggregator
	sink  redact.Sink
	k     int
	noise aggregates.Noise
	log   *slog.Logger
}

// releaseEvery is how often serve looks for a day to release. A day is
// released once it is over plus aggregates.lateness, so a minute is fine.
const releaseEvery = time.Minute

// newStatistics returns the aggregates runtime of a store, or an error if
// the store cannot keep aggregates.
func newStatistics(cfg *config.Config, st store.Store, log *slog.Logger, now time.Time) (*statistics, error) {
	sink, ok := st.(redact.Sink)
	if !ok {
		return nil, fmt.Errorf("store %T cannot keep aggregates", st)
	}
	agg, err := redact.New(redact.Config{K: cfg.Aggregates.K, Lateness: cfg.Aggregates.Lateness.Duration, Start: now})
	if err != nil {
		return nil, err
	}
	noise, err := newNoise(cfg, st)
	if err != nil {
		return nil, err
	}
	return &statistics{agg: agg, sink: sink, k: cfg.Aggregates.K, noise: noise, log: log}, nil
}

// newNoise is the differential-privacy step of publications when
// aggregates.noise is set (nil otherwise), spending from the store's ledger.
func newNoise(cfg *config.Config, st store.Store) (aggregates.Noise, error) {
	if cfg.Aggregates.Noise.Epsilon == 0 {
		return nil, nil
	}
	ledger, ok := st.(store.PrivacyLedger)
	if !ok {
		return nil, fmt.Errorf("aggregates.noise: store %T keeps no privacy budget", st)
	}
	n := &dp.Noiser{
		Params: dp.Params{Epsilon: cfg.Aggregates.Noise.Epsilon, Budget: cfg.Aggregates.NoiseBudget(), Bounds: dp.DefaultBounds},
		Ledger: ledger,
	}
	return n.Apply, nil
}

// run releases closed days to the store until ctx ends. A failed write is
// kept by the aggregator and tried again on the next tick.
func (s *statistics) run(ctx context.Context) {
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.persist(ctx, now, s.agg.Persist)
		}
	}
}

// flush releases what is still open, marked partial: called once on
// shutdown, before the store closes, so a restart loses no counted day.
func (s *statistics) flush(ctx context.Context) {
	s.persist(ctx, time.Now(), s.agg.FlushTo)
}

func (s *statistics) persist(ctx context.Context, now time.Time, release func(context.Context, time.Time, redact.Sink) (int, error)) {
	n, err := release(ctx, now, s.sink)
	switch {
	case err != nil:
		s.log.Warn("aggregates not stored yet; retrying", "err", err, "pending", s.agg.Pending())
	case n > 0:
		s.log.Info("aggregates released", "buckets", n)
	}
}

// collectors are the aggregator's own counters, for /metrics.
func (s *statistics) collectors() []prometheus.Collector {
	stat := func(name, help string, f func(redact.Stats) int64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(f(s.agg.Stats())) })
	}
	return []prometheus.Collector{
		stat("sealgate_aggregates_observed_events", "Events counted into the aggregates since start.", func(st redact.Stats) int64 { return st.Observed }),
		stat("sealgate_aggregates_late_events", "Events not counted: of a day already released.", func(st redact.Stats) int64 { return st.Late }),
		stat("sealgate_aggregates_open_cells", "Open hour cells held in memory.", func(st redact.Stats) int64 { return st.Cells }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sealgate_aggregates_pending_buckets", Help: "Released buckets the store has not accepted yet."},
			func() float64 { return float64(s.agg.Pending()) }),
	}
}

// handler serves GET /v1/aggregates to the readers (aggregates.readers,
// orders.auditors, orders.dpo), authenticated by their Mattermost token.
func (s *statistics) handler(cfg *config.Config, auth *mmauth.Authenticator) http.Handler {
	readers := slices.Concat(cfg.Aggregates.Readers, cfg.Orders.Auditors, cfg.Orders.DPO)
	authorize := func(r *http.Request) (bool, int) {
		token, err := mmauth.TokenFromRequest(r)
		if err != nil || r.Header.Get("Authorization") == "" {
			// A cookie alone is not enough: this is an API, not a page.
			return false, http.StatusUnauthorized
		}
		u, err := auth.User(r.Context(), token)
		switch {
		case errors.Is(err, mmauth.ErrUnavailable):
			return false, http.StatusServiceUnavailable
		case err != nil:
			return false, http.StatusUnauthorized
		case !slices.Contains(readers, u.ID):
			s.log.Info("aggregates read refused", "reason", "not a reader")
			return false, http.StatusForbidden
		}
		return true, 0
	}
	return aggregates.Handler(s.sink.(aggregates.Reader), s.k, authorize, s.noise)
}
