package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/capture/smtpintake"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/mmauth"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/release"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/pgstore"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve")
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: --config FILE is required", errUsage)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveConfig(ctx, cfg, stdout, stderr)
}

// serveConfig runs the gateway until ctx ends.
func serveConfig(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	log := newLogger(stderr, cfg.Log.Level)

	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr, Password: cfg.Redis.Password, DB: cfg.Redis.DB})
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis at %s is not reachable (orders and approvals live there; refusing to start): %w", cfg.Redis.Addr, err)
	}
	gw, err := openGateway(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer gw.store.Close()
	gw.server.Ready = func(ctx context.Context) error {
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		if _, err := gw.store.Stats(ctx); err != nil {
			return fmt.Errorf("store: %w", err)
		}
		return nil
	}
	var ordersLn net.Listener
	if cfg.Listen.Orders != "" {
		if err := gw.attachOrders(cfg, rdb); err != nil {
			return err
		}
		if ordersLn, err = net.Listen("tcp", cfg.Listen.Orders); err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Listen.Orders, err)
		}
		fmt.Fprintf(stdout, "order API on %s\n", ordersLn.Addr())
	}
	if cfg.Intake.SMTP.Listen != "" {
		intake, err := gw.newSMTPIntake(cfg)
		if err != nil {
			return err
		}
		smtpLn, err := net.Listen("tcp", cfg.Intake.SMTP.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.Intake.SMTP.Listen, err)
		}
		fmt.Fprintf(stdout, "SMTP intake on %s\n", smtpLn.Addr())
		go func() {
			if err := intake.Serve(smtpLn); err != nil && !errors.Is(err, smtpintake.ErrServerClosed) {
				log.Error("smtp intake stopped", "err", err)
			}
		}()
		defer intake.Close()
	}
	if err := gw.startProxy(cfg, stdout); err != nil {
		return err
	}
	defer gw.stopProxy()
	ln, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Listen.Admin, err)
	}
	log.Info("sealgate serving", "admin", ln.Addr().String(), "orders", cfg.Listen.Orders, "store", cfg.Store.Kind, "slots", len(cfg.Slots), "quorum", cfg.Quorum)
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	defer gw.startReconcile(ctx, cfg)() // stopped before the store closes
	return gw.serve(ctx, ln, ordersLn)
}

// gatewayRuntime is a wired gateway: keys, sealer, store, HTTP server.
type gatewayRuntime struct {
	keys    *crypto.GatewayKeys
	sealer  *crypto.Sealer
	store   store.Store
	server  *gateway.Server
	metrics *gateway.Metrics
	log     *slog.Logger
	// desk and orders are set when the order API is enabled (listen.orders).
	desk            *release.Desk
	orders          http.Handler
	checkpoint      *audit.MattermostPublisher
	checkpointEvery time.Duration
	auditLog        *audit.Log
	notices         *noticeRuntime
	// proxy is the reverse-proxy capture mode (proxy.go); nil when off.
	proxy *proxyRuntime
	// stats counts every stored event into the k-anonymous aggregates.
	stats *statistics
	// auth validates Mattermost tokens on the order listener.
	auth *mmauth.Authenticator
}

func openGateway(ctx context.Context, cfg *config.Config, log *slog.Logger) (*gatewayRuntime, error) {
	keys, err := readGatewayKeys(cfg.Path(cfg.GatewayKeys))
	if err != nil {
		return nil, err
	}
	var slots []crypto.Recipient
	for i, s := range cfg.Slots {
		raw, err := os.ReadFile(cfg.Path(s.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("slot %d (%s): %w", i, s.Role, err)
		}
		r, err := crypto.ParseRecipient(string(raw))
		if err != nil {
			return nil, fmt.Errorf("slot %d (%s): %w", i, s.Role, err)
		}
		slots = append(slots, r)
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: slots, Quorum: cfg.Quorum, Grace: cfg.DayKeyGrace.Duration})
	if err != nil {
		return nil, err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	rt, err := newRuntime(keys, sealer, st, cfg, log, time.Now())
	if err != nil {
		st.Close()
		return nil, err
	}
	return rt, nil
}

// newRuntime wires a gateway. The aggregates count the days from start's
// on (see redact.Config.Start).
func newRuntime(keys *crypto.GatewayKeys, sealer *crypto.Sealer, st store.Store, cfg *config.Config, log *slog.Logger, start time.Time) (*gatewayRuntime, error) {
	stats, err := newStatistics(cfg, st, log, start)
	if err != nil {
		return nil, err
	}
	rt := &gatewayRuntime{keys: keys, sealer: sealer, store: st, log: log, stats: stats}
	rt.metrics = gateway.NewMetrics(func() float64 { return float64(sealer.Live()) })
	rt.metrics.Registry.MustRegister(stats.collectors()...)
	rt.server = &gateway.Server{
		Pipeline:     &gateway.Pipeline{Sealer: sealer, Keys: keys, Store: st, Aggregates: stats.agg},
		Token:        cfg.IngestToken,
		Limits:       gateway.Limits{MaxPostBytes: cfg.Limits.MaxPostBytes, MaxBatchEvents: cfg.Limits.MaxBatchEvents},
		MaxBodyBytes: cfg.Limits.MaxBodyBytes,
		MaxFileBytes: cfg.Limits.MaxFileBytes,
		Log:          log,
	}
	return rt, nil
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Store.Kind {
	case "postgres":
		return pgstore.Open(ctx, cfg.Store.DSN)
	default:
		p := cfg.Path(cfg.Store.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		return boltstore.Open(p)
	}
}

// serve runs the admin listener, the order API listener (if ordersLn is
// not nil) and the sweepers until ctx ends.
func (rt *gatewayRuntime) serve(ctx context.Context, ln, ordersLn net.Listener) error {
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       2 * time.Minute,
			WriteTimeout:      2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(rt.log.Handler(), slog.LevelWarn),
		}
	}
	servers := []*http.Server{newServer(rt.server.Handler(rt.metrics))}
	listeners := []net.Listener{ln}
	if ordersLn != nil {
		servers = append(servers, newServer(rt.orders))
		listeners = append(listeners, ordersLn)
		go rt.sweepOrders(ctx)
		go func() {
			if err := rt.notices.dispatcher.Run(ctx, 30*time.Second); err != nil {
				rt.log.Error("notice dispatcher stopped", "err", err)
			}
		}()
		if rt.checkpoint != nil {
			go audit.PublishLoop(ctx, rt.auditLog, rt.checkpoint, rt.checkpointEvery, func(err error) {
				rt.log.Warn("audit checkpoint not published", "err", err)
			})
		}
	}
	go rt.sweep(ctx)
	go rt.stats.run(ctx)
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
	}
	// The proxy's last captures are stored before the aggregates are
	// flushed and the store closes.
	rt.stopProxy()
	rt.desk.WipeAll()
	// Every ingest has returned: what the aggregates counted of the open
	// days goes to the store now (marked partial), before it closes.
	rt.stats.flush(sctx)
	rt.log.Info("sealgate stopped")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// sweep wipes day keys of past days: the forward-secrecy half of the key model.
func (rt *gatewayRuntime) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := rt.sealer.Sweep(); n > 0 {
				rt.log.Info("day keys wiped", "count", n)
			}
		}
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	return slog.New(redact.NewLogHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})))
}
