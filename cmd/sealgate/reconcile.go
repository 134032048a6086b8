package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/capture/reconcile"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/gateway"
)

// reconcileRequestTimeout bounds one request to Mattermost (Client4 has no
// timeout of its own); a run makes many.
const reconcileRequestTimeout = time.Minute

// reconcileSkew is how much each periodic run overlaps the end of the last
// complete one, for the clocks of sealgate and Mattermost, which stamps
// update_at, differing a little.
const reconcileSkew = time.Minute

// reconcileNow is the periodic job's clock. Tests set it to the time of the
// recorded Mattermost traffic, which lies further back than any lookback.
var reconcileNow = time.Now

// cmdReconcile is `sealgate reconcile --config FILE --since T [--json]`: one
// reconciliation run over every change in Mattermost after T (see package
// capture/reconcile), stored through the same sealing pipeline as
// /v1/ingest. It prints counts only.
//
// It opens the store itself, like the audit commands: a file store held by
// a running serve cannot be opened (serve's own periodic job, reconcile.every,
// is the way to reconcile while it runs); PostgreSQL can be shared.
func cmdReconcile(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("reconcile")
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	sinceArg := fs.String("since", "", "RFC 3339 time, UTC date YYYY-MM-DD, or a duration back from now (24h, 7d)")
	asJSON := fs.Bool("json", false, "write the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: --config FILE is required", errUsage)
	}
	if *sinceArg == "" {
		return fmt.Errorf("%w: --since T is required: %s", errUsage, sinceForms)
	}
	since, err := parseSince(*sinceArg, time.Now())
	if err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Mattermost.URL == "" {
		return errors.New("mattermost.url: missing; the reconciliation reads Mattermost's REST API there")
	}
	if cfg.Reconcile.Token == "" {
		return errors.New("reconcile.token (or SEALGATE_RECONCILE_TOKEN): missing; the reconciliation needs a system administrator's personal access token")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := newLogger(stderr, cfg.Log.Level)
	client := reconcile.NewClient(strings.TrimRight(cfg.Mattermost.URL, "/"), cfg.Reconcile.Token, reconcileRequestTimeout)
	// Checked before the store is opened, so that a wrong token changes
	// nothing and says why.
	if err := checkReconcileToken(ctx, client); err != nil {
		return err
	}
	gw, err := openGateway(ctx, cfg, log)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return fmt.Errorf("%w (is sealgate serve running on this store? the file store can be opened by one process at a time: stop serve, run this, start serve again, or let serve reconcile with reconcile.every)", err)
		}
		return err
	}
	defer gw.store.Close()
	r := gw.newReconciler(cfg, client)
	r.Log = log
	rep, err := r.Run(ctx, since)
	// What the run stored of the days still open is counted; it goes to
	// the store's aggregates now, as serve does at shutdown.
	gw.stats.flush(context.WithoutCancel(ctx))
	if err != nil && !errors.Is(err, reconcile.ErrIncomplete) {
		return fmt.Errorf("reconcile since %s: %w", since.UTC().Format(time.RFC3339Nano), explainReconcileError(err))
	}
	if *asJSON {
		out, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(stdout, "%s\n", out)
	} else {
		writeReconcileReport(stdout, rep, cfg.Reconcile.Lag.Duration)
	}
	if err != nil {
		return fmt.Errorf("incomplete: %d channel(s), user(s) or edit histories could not be read (warnings on stderr); what was read is stored, run again with the same --since", rep.Errors)
	}
	return nil
}

const sinceForms = "an RFC 3339 time (2026-11-22T09:00:00Z), a UTC date (2026-11-22) or a duration back from now (90m, 24h, 7d)"

// parseSince reads --since. A date is the start of that day in UTC; a
// duration counts back from now ("d" is 24 hours). The time must be in
// the past: the reconciliation reads what already changed.
func parseSince(s string, now time.Time) (time.Time, error) {
	var t time.Time
	if v, err := time.Parse(time.RFC3339Nano, s); err == nil {
		t = v
	} else if v, err := time.Parse(time.DateOnly, s); err == nil {
		t = v
	} else {
		d, err := parseBackDuration(s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not %s", s, sinceForms)
		}
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: the duration must be positive (it counts back from now)", s)
		}
		t = now.Add(-d)
	}
	if !t.Before(now) {
		return time.Time{}, fmt.Errorf("%s is not in the past", t.UTC().Format(time.RFC3339))
	}
	if t.UnixMilli() <= 0 {
		return time.Time{}, fmt.Errorf("%s is before 1970", t.UTC().Format(time.RFC3339))
	}
	return t, nil
}

// parseBackDuration is time.ParseDuration plus whole days ("7d").
func parseBackDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days > 100000 {
			return 0, errors.New("bad number of days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// errTokenRefused marks a reconcile.token that Mattermost refuses or that
// lacks the system_admin role, as opposed to a Mattermost that cannot be
// reached.
var errTokenRefused = errors.New("reconcile.token was refused")

// checkReconcileToken asks Mattermost whose token reconcile.token is and
// refuses one without the system_admin role: the run lists every channel
// and reads deleted posts, which only a system administrator may, and a
// lesser token would fail halfway or, worse, quietly see less. The server
// still enforces its permissions on every request.
func checkReconcileToken(ctx context.Context, c *model.Client4) error {
	me, _, err := c.GetMe(ctx, "")
	if err != nil {
		var ae *model.AppError
		switch {
		case errors.As(err, &ae) && ae.StatusCode == 401:
			return fmt.Errorf("%w by Mattermost (HTTP 401): it is not a valid personal access token (expired, revoked, or personal access tokens are disabled)", errTokenRefused)
		case errors.As(err, &ae):
			return fmt.Errorf("check reconcile.token: Mattermost answered HTTP %d (%s)", ae.StatusCode, ae.Id)
		}
		// Client4 returns the *url.Error as it is; its inner error says why
		// without repeating the URL.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return fmt.Errorf("check reconcile.token: Mattermost (mattermost.url) is not reachable: %w", err)
	}
	if !me.IsSystemAdmin() {
		return fmt.Errorf("%w: it is not a system administrator's token; the reconciliation lists every channel and reads deleted posts, which only the system_admin role may: create the token for a system administrator (or a bot given that role)", errTokenRefused)
	}
	return nil
}

// explainReconcileError adds what to do to the errors of a run that a
// wrong token causes; the server's own permission check is the last word.
func explainReconcileError(err error) error {
	var ae *model.AppError
	if errors.As(err, &ae) {
		switch ae.StatusCode {
		case 401:
			return fmt.Errorf("%w: reconcile.token is not valid", err)
		case 403:
			return fmt.Errorf("%w: reconcile.token lacks the system administrator's permissions", err)
		}
	}
	return err
}

// newReconciler is a reconciler over rt's pipeline and store: the events it
// rebuilds are parsed and sealed exactly like a plugin batch on /v1/ingest.
func (rt *gatewayRuntime) newReconciler(cfg *config.Config, client *model.Client4) *reconcile.Reconciler {
	lim := gateway.Limits{MaxPostBytes: cfg.Limits.MaxPostBytes, MaxBatchEvents: cfg.Limits.MaxBatchEvents}
	return &reconcile.Reconciler{
		Client: client,
		// The real clock, not reconcileNow: ParseBatch refuses events
		// stamped in the future by it.
		Ingest:     reconcile.PipelineIngest(rt.server.Pipeline, lim, time.Now),
		Seen:       reconcile.StoreSeen(rt.store, rt.keys),
		BatchSize:  min(reconcile.DefaultBatchSize, cfg.Limits.MaxBatchEvents),
		Lag:        cfg.Reconcile.Lag.Duration,
		SkipDirect: cfg.Reconcile.SkipDirect,
		Log:        rt.log,
	}
}

// writeReconcileReport prints a run's counts: never an id, a name or text.
func writeReconcileReport(w io.Writer, rep reconcile.Report, lag time.Duration) {
	until := "now"
	if lag > 0 {
		until = fmt.Sprintf("%s (now minus reconcile.lag %s; later changes are left for the next run)", rep.Started.Add(-lag).Format(time.RFC3339), lag)
	}
	fmt.Fprintf(w, "reconciled the changes in Mattermost after %s up to %s in %s\n",
		rep.Since.Format(time.RFC3339Nano), until, rep.Finished.Sub(rep.Started).Round(time.Millisecond))
	row := func(label string, n int, detail string) {
		if detail != "" {
			detail = "  (" + detail + ")"
		}
		fmt.Fprintf(w, "  %-26s %6d%s\n", label, n, detail)
	}
	row("channels read", rep.Channels, fmt.Sprintf("%d direct or group, found through %d users; %d read in page mode", rep.DirectChannels, rep.Users, rep.Paged))
	row("posts changed", rep.Posts, fmt.Sprintf("%d superseded edit versions", rep.Versions))
	row("ingested", rep.Total(), fmt.Sprintf("posted %d, updated %d, deleted %d, of which %d replies deleted with their thread root",
		rep.Ingested[reconcile.KindPosted], rep.Ingested[reconcile.KindUpdated], rep.Ingested[reconcile.KindDeleted], rep.CascadeDeleted))
	row("already stored", rep.AlreadySeen, "")
	row("left for a later run", rep.Deferred, "")
	row("refused by the gateway", rep.Rejected, "")
	fmt.Fprintln(w, "  unrecovered: the API no longer has the text (README, Reconciliation)")
	row("  deleted, no version kept", rep.DeletedUnrecovered, "")
	row("  original versions", rep.PostedUnrecovered, "")
	row("  edits", rep.EditsUnrecovered, "")
	row("edit histories refused", rep.HistoryDenied, "the server shows them to the author only")
	row("read errors", rep.Errors, "")
}

// startReconcile starts serve's periodic reconciliation if reconcile.every
// is set. It runs beside ingest, in its own goroutine: a slow or failing
// Mattermost only delays the next run. stop ends it and waits for a run in
// progress to return, so that serve closes the store only after it.
func (rt *gatewayRuntime) startReconcile(ctx context.Context, cfg *config.Config) (stop func()) {
	rc := cfg.Reconcile
	if rc.Every.Duration <= 0 {
		return func() {}
	}
	client := reconcile.NewClient(strings.TrimRight(cfg.Mattermost.URL, "/"), rc.Token, reconcileRequestTimeout)
	r := rt.newReconciler(cfg, client)
	r.Now = reconcileNow
	j := &reconcileJob{
		r: r, client: client, log: rt.log, now: reconcileNow,
		every: rc.Every.Duration, lookback: rc.Lookback.Duration, lag: rc.Lag.Duration,
		metrics: newReconcileMetrics(rt.metrics.Registry),
	}
	rt.log.Info("reconcile: periodic job on", "every", j.every.String(), "lookback", j.lookback.String(), "lag", j.lag.String(), "skip_direct", rc.SkipDirect)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		j.loop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// reconcileJob is serve's periodic reconciliation.
type reconcileJob struct {
	r        *reconcile.Reconciler
	client   *model.Client4
	log      *slog.Logger
	now      func() time.Time
	every    time.Duration
	lookback time.Duration
	lag      time.Duration
	metrics  *reconcileMetrics

	// covered is the time up to which complete runs reconciled everything
	// (zero before the first run). A run reads from lookback before its
	// start, or from covered if that is earlier, so that neither a failed
	// run nor an interval longer than the lookback leaves a gap.
	covered time.Time
}

// loop runs the job every interval until ctx ends. The first run waits one
// interval: right after a start the plugin is still delivering what it
// queued while sealgate was away, and its events carry more.
func (j *reconcileJob) loop(ctx context.Context) {
	t := time.NewTimer(j.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		j.once(ctx)
		t.Reset(j.every)
	}
}

// since is where a run starting at start begins.
func (j *reconcileJob) since(start time.Time) time.Time {
	s := start.Add(-j.lookback)
	if j.covered.IsZero() {
		j.covered = s
	}
	if j.covered.Before(s) {
		s = j.covered
	}
	return s
}

// once runs one reconciliation and records its outcome in the log and the
// metrics, counts only.
func (j *reconcileJob) once(ctx context.Context) {
	start := j.now()
	since := j.since(start)
	if err := checkReconcileToken(ctx, j.client); err != nil {
		if ctx.Err() == nil {
			outcome := "failed"
			if errors.Is(err, errTokenRefused) {
				outcome = "refused"
			}
			j.metrics.runs.WithLabelValues(outcome).Inc()
			j.log.Warn("reconcile: not run; tried again next interval", "outcome", outcome, "err", err.Error())
		}
		return
	}
	t0 := time.Now() // the real clock: j.now may be a test's
	rep, err := j.r.Run(ctx, since)
	took := time.Since(t0)
	if ctx.Err() != nil {
		return // serve is stopping; the window is read again after the restart
	}
	j.metrics.observe(rep)
	attrs := []any{"window_seconds", int64(start.Sub(since).Seconds()), "channels", rep.Channels, "direct_channels", rep.DirectChannels,
		"posts", rep.Posts, "ingested", rep.Total(), "posted", rep.Ingested[reconcile.KindPosted], "updated", rep.Ingested[reconcile.KindUpdated],
		"deleted", rep.Ingested[reconcile.KindDeleted], "cascade_deleted", rep.CascadeDeleted, "already_seen", rep.AlreadySeen,
		"deferred", rep.Deferred, "rejected", rep.Rejected, "deleted_unrecovered", rep.DeletedUnrecovered,
		"posted_unrecovered", rep.PostedUnrecovered, "edits_unrecovered", rep.EditsUnrecovered,
		"history_denied", rep.HistoryDenied, "errors", rep.Errors, "duration_ms", took.Milliseconds()}
	switch {
	case err == nil:
		j.metrics.runs.WithLabelValues("ok").Inc()
		j.metrics.lastComplete.Set(float64(start.Unix()))
		// Changes newer than start-lag were left for this next run.
		if c := start.Add(-j.lag - reconcileSkew); c.After(j.covered) {
			j.covered = c
		}
		j.log.Info("reconcile: run done", attrs...)
	case errors.Is(err, reconcile.ErrIncomplete):
		j.metrics.runs.WithLabelValues("incomplete").Inc()
		j.log.Warn("reconcile: run incomplete; its window is read again next interval", attrs...)
	default:
		j.metrics.runs.WithLabelValues("failed").Inc()
		j.log.Warn("reconcile: run failed; its window is read again next interval", append(attrs, "err", explainReconcileError(err).Error())...)
	}
}

// reconcileMetrics are the periodic job's Prometheus metrics; their labels
// are outcomes and event kinds only.
type reconcileMetrics struct {
	runs         *prometheus.CounterVec
	events       *prometheus.CounterVec
	ingested     *prometheus.CounterVec
	lastComplete prometheus.Gauge
}

func newReconcileMetrics(reg *prometheus.Registry) *reconcileMetrics {
	m := &reconcileMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealgate_reconcile_runs_total", Help: "Periodic reconciliation runs by outcome (ok, incomplete, failed, refused).",
		}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealgate_reconcile_events_total",
			Help: "Events the reconciliation rebuilt, by outcome; windows overlap, so already_seen and the unrecovered outcomes count an event again in every run that reads it.",
		}, []string{"outcome"}),
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sealgate_reconcile_ingested_total", Help: "Events the reconciliation stored, by kind.",
		}, []string{"kind"}),
		lastComplete: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sealgate_reconcile_last_complete_timestamp_seconds", Help: "Start of the last reconciliation run that read everything.",
		}),
	}
	reg.MustRegister(m.runs, m.events, m.ingested, m.lastComplete)
	// Every series exists from the start, so that rates and alerts work
	// before the first run.
	for _, o := range []string{"ok", "incomplete", "failed", "refused"} {
		m.runs.WithLabelValues(o)
	}
	for _, k := range []string{reconcile.KindPosted, reconcile.KindUpdated, reconcile.KindDeleted} {
		m.ingested.WithLabelValues(k)
	}
	return m
}

func (m *reconcileMetrics) observe(rep reconcile.Report) {
	for outcome, n := range map[string]int{
		"ingested": rep.Total(), "already_seen": rep.AlreadySeen, "deferred": rep.Deferred, "rejected": rep.Rejected,
		"deleted_unrecovered": rep.DeletedUnrecovered, "posted_unrecovered": rep.PostedUnrecovered, "edits_unrecovered": rep.EditsUnrecovered,
	} {
		m.events.WithLabelValues(outcome).Add(float64(n))
	}
	for kind, n := range rep.Ingested {
		m.ingested.WithLabelValues(kind).Add(float64(n))
	}
}
