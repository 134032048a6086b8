package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealgate/sealgate/capture/proxy"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/gateway"
)

// The reverse-proxy capture mode of serve (proxy.listen): the proxy in
// front of Mattermost, a Sink that hands its events to the same parser and
// sealing pipeline as POST /v1/ingest, and the encrypted Spool that keeps
// what the store cannot take now, across restarts.

// spoolPurpose names the gateway key the spool is sealed under
// (GatewayKeys.AEAD): only this gateway's keys open what it spooled.
const spoolPurpose = "spool/v1"

const (
	// lookupTimeout bounds one Mattermost API call of a lookup; the proxy
	// retries failed lookups with backoff.
	lookupTimeout = 10 * time.Second
	// deliverTimeout bounds one store commit of captured events; a commit
	// that takes longer is retried from the spool.
	deliverTimeout = 30 * time.Second
	// proxyShutdownWait is how long requests in flight may take to finish,
	// and proxyDrainWait how long queued captures and lookups of deleted
	// posts may take, when serve stops. What is still waiting for a lookup
	// then is emitted with what is known.
	proxyShutdownWait = 10 * time.Second
	proxyDrainWait    = 15 * time.Second
)

// proxyRuntime is a running proxy; stop ends it once.
type proxyRuntime struct {
	once sync.Once
	stop func()
}

// stopProxy stops the proxy, if it runs: serve calls it once its own
// listeners are shut down, before the aggregates are flushed and the store
// is closed, so that the last captures are stored and counted.
func (rt *gatewayRuntime) stopProxy() {
	if rt.proxy != nil {
		rt.proxy.once.Do(rt.proxy.stop)
	}
}

// startProxy starts the reverse proxy when proxy.listen is set; with the
// proxy off it does nothing.
func (rt *gatewayRuntime) startProxy(cfg *config.Config, stdout io.Writer) error {
	pc := cfg.Proxy
	if pc.Listen == "" {
		return nil
	}
	upstream, err := url.Parse(pc.Upstream)
	if err != nil {
		return fmt.Errorf("proxy.upstream: %w", err)
	}
	aead, err := rt.keys.AEAD(spoolPurpose)
	if err != nil {
		return fmt.Errorf("proxy spool key: %w", err)
	}
	batch := min(256, cfg.Limits.MaxBatchEvents)
	spool, err := proxy.OpenSpool(cfg.Path(pc.SpoolDir), aead, rt.log)
	if err != nil {
		return fmt.Errorf("proxy.spool_dir: %w", err)
	}
	spool.MaxBatch = batch
	ln, err := listenProxy(cfg)
	if err != nil {
		spool.Close()
		return err
	}

	lim := gateway.Limits{MaxPostBytes: cfg.Limits.MaxPostBytes, MaxBatchEvents: cfg.Limits.MaxBatchEvents}
	sink := &proxy.Sink{Deliver: rt.deliverCaptured(lim), Spool: spool, Log: rt.log, MaxBatch: batch}
	p := &proxy.Proxy{
		Upstream: upstream,
		Capture:  sink.Capture,
		Spool:    spool,
		Log:      rt.log,
	}
	// Leave room for the event's own fields under the gateway's per-event
	// limit: a post too large to be accepted is better passed through
	// uncaptured (and counted) than copied and refused.
	if room := cfg.Limits.MaxPostBytes - 4<<10; room > 0 && room < 1000<<10 {
		p.MaxCaptureBytes = room
	}
	mm := mattermostAPI(cfg)
	p.PostLookup = func(ctx context.Context, postID string) (*model.Post, error) {
		post, resp, err := mm.GetPostIncludeDeleted(ctx, postID, "")
		if err != nil {
			return nil, rt.apiError("look up deleted post", "read_deleted_posts", resp, err)
		}
		return post, nil
	}
	p.HookLookup = func(ctx context.Context, hookID string) (*model.IncomingWebhook, error) {
		hook, resp, err := mm.GetIncomingWebhook(ctx, hookID, "")
		if err != nil {
			return nil, rt.apiError("look up incoming webhook", "manage_others_incoming_webhooks", resp, err)
		}
		return hook, nil
	}
	p.WebhookPosts = func(ctx context.Context, teamID, channelID, channelName string, since time.Time) ([]*model.Post, error) {
		if channelID == "" {
			ch, resp, err := mm.GetChannelByName(ctx, channelName, teamID, "")
			if err != nil {
				return nil, rt.apiError("look up a webhook's channel", "read_channel", resp, err)
			}
			channelID = ch.Id
		}
		list, resp, err := mm.GetPostsSince(ctx, channelID, since.UnixMilli(), false)
		if err != nil {
			return nil, rt.apiError("list a webhook's channel", "read_channel", resp, err)
		}
		posts := make([]*model.Post, 0, len(list.Posts))
		for _, q := range list.Posts {
			posts = append(posts, q)
		}
		return posts, nil
	}
	rt.metrics.Registry.MustRegister(&proxyCollector{p: p, sink: sink, spool: spool})

	sinkCtx, stopSink := context.WithCancel(context.Background())
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		if err := sink.Run(sinkCtx); err != nil && !errors.Is(err, context.Canceled) {
			rt.log.Error("proxy sink stopped", "err", err)
		}
	}()
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := p.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			rt.log.Error("proxy stopped accepting", "err", err)
		}
	}()
	rt.log.Info("proxy serving", "addr", ln.Addr().String(), "tls", pc.CertFile != "", "upstream_scheme", upstream.Scheme)
	fmt.Fprintf(stdout, "proxy on %s\n", ln.Addr())

	// The order matters: no new requests, then every capture handed to the
	// Sink, then the Sink stopped (what it still holds goes to the spool),
	// then the spool sealed for the next start.
	rt.proxy = &proxyRuntime{stop: func() {
		ctx, cancel := context.WithTimeout(context.Background(), proxyShutdownWait)
		if err := p.Shutdown(ctx); err != nil {
			rt.log.Warn("proxy: requests cut off at shutdown", "err", err)
		}
		cancel()
		<-served
		ln.Close() // Serve leaves it open when Shutdown came first
		ctx, cancel = context.WithTimeout(context.Background(), proxyDrainWait)
		if err := p.Close(ctx); err != nil {
			rt.log.Warn("proxy: lookups cut off at shutdown; their events carry what was known", "err", err)
		}
		cancel()
		stopSink()
		<-sinkDone
		if err := spool.Close(); err != nil {
			rt.log.Error("proxy spool close", "err", err)
		}
		st := p.Stats()
		rt.log.Info("proxy stopped", "captured", st.Captured, "spilled", st.Spilled, "dropped", st.Dropped,
			"skipped", st.Skipped, "lookup_failed", st.LookupFailed, "spool_pending", spool.Pending())
	}}
	return nil
}

// listenProxy opens proxy.listen, with TLS when a certificate is set. Only
// HTTP/1.1 is offered: that is what the proxy speaks (the websocket
// included).
func listenProxy(cfg *config.Config) (net.Listener, error) {
	pc := cfg.Proxy
	var tlsCfg *tls.Config
	if pc.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Path(pc.CertFile), cfg.Path(pc.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("proxy.cert_file, proxy.key_file: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
	}
	ln, err := net.Listen("tcp", pc.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", pc.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return ln, nil
}

// mattermostAPI is the bot's client for the proxy's lookups: at
// mattermost.url, or straight at the upstream when that is not set.
func mattermostAPI(cfg *config.Config) *model.Client4 {
	base := cfg.Mattermost.URL
	if base == "" {
		base = cfg.Proxy.Upstream
	}
	c := model.NewAPIv4Client(base)
	c.SetToken(cfg.Mattermost.BotToken)
	c.HTTPClient = &http.Client{Timeout: lookupTimeout}
	return c
}

// apiError describes a failed Mattermost API call by its status, or by its
// network error without the URL (which holds the post or hook id). The
// proxy logs only the class of a lookup error, so a refused bot token,
// which no retry fixes, is logged here, naming the permission it lacks.
func (rt *gatewayRuntime) apiError(what, permission string, resp *model.Response, err error) error {
	if resp != nil && resp.StatusCode != 0 {
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			rt.log.Error("proxy: mattermost.bot_token refused; the bot needs the permission", "call", what, "status", resp.StatusCode, "permission", permission)
		}
		return fmt.Errorf("%s: HTTP %d", what, resp.StatusCode)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return fmt.Errorf("%s: %w", what, err)
}

// deliverCaptured is the Sink's Deliver: the captured events go through
// the ingest API's parser and pipeline as one batch, stored durably (and
// idempotently, by post id, kind and version) before it returns. Events
// the parser refuses are final (proxy.Permanent): the Sink retries them one
// by one and keeps what is still refused as dead letters in the spool.
func (rt *gatewayRuntime) deliverCaptured(lim gateway.Limits) func([][]byte) error {
	return func(events [][]byte) error {
		raw := make([]json.RawMessage, len(events))
		for i, ev := range events {
			raw[i] = ev
		}
		// Marshalling checks that each event is one JSON value, so that
		// no event can spill into its neighbours in the batch.
		body, err := json.Marshal(map[string][]json.RawMessage{"events": raw})
		if err != nil {
			return proxy.Permanent(errors.New("captured event is not one JSON value"))
		}
		parsed, err := gateway.ParseBatch(body, lim, time.Now())
		if err != nil {
			return proxy.Permanent(fmt.Errorf("captured events refused: %w", err))
		}
		ctx, cancel := context.WithTimeout(context.Background(), deliverTimeout)
		defer cancel()
		if _, err := rt.server.Pipeline.Ingest(ctx, parsed); err != nil {
			return fmt.Errorf("store captured events: %w", err)
		}
		return nil
	}
}

// proxyCollector exports the proxy's counters; labels are outcomes only.
type proxyCollector struct {
	p     *proxy.Proxy
	sink  *proxy.Sink
	spool *proxy.Spool
}

var (
	proxyEventsDesc = prometheus.NewDesc("sealgate_proxy_events_total",
		"Captured events by outcome: captured (handed to the sink), spilled (capture queue full, spooled), dropped; skipped counts capture-route responses not captured (too large, not a post), lookup_failed deletions whose author could not be looked up; webhook_resolved webhook posts found by listing the hook's channel, webhook_unresolved those stored under a request-derived id.",
		[]string{"outcome"}, nil)
	proxySinkDesc = prometheus.NewDesc("sealgate_proxy_sink_events_total",
		"Captured events by what the sink did: delivered (stored directly), spooled, dropped.",
		[]string{"outcome"}, nil)
	proxySpoolDesc = prometheus.NewDesc("sealgate_proxy_spool_pending",
		"Captured events in the spool waiting for the store.", nil, nil)
	proxyFastDesc = prometheus.NewDesc("sealgate_proxy_fast_requests_total",
		"Requests the proxy's own HTTP/1.1 path forwarded.", nil, nil)
	proxyHandedOffDesc = prometheus.NewDesc("sealgate_proxy_handed_off_connections_total",
		"Connections handed to net/http (websocket, chunked bodies, HTTP/1.0, unusual framing).", nil, nil)
)

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- proxyEventsDesc
	ch <- proxySinkDesc
	ch <- proxySpoolDesc
	ch <- proxyFastDesc
	ch <- proxyHandedOffDesc
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	st, ss := c.p.Stats(), c.sink.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(proxyEventsDesc, st.Captured, "captured")
	counter(proxyEventsDesc, st.Spilled, "spilled")
	counter(proxyEventsDesc, st.Dropped, "dropped")
	counter(proxyEventsDesc, st.Skipped, "skipped")
	counter(proxyEventsDesc, st.LookupFailed, "lookup_failed")
	counter(proxyEventsDesc, st.HooksResolved, "webhook_resolved")
	counter(proxyEventsDesc, st.HooksUnresolved, "webhook_unresolved")
	counter(proxySinkDesc, ss.Delivered, "delivered")
	counter(proxySinkDesc, ss.Spooled, "spooled")
	counter(proxySinkDesc, ss.Dropped, "dropped")
	counter(proxyFastDesc, st.FastPath)
	counter(proxyHandedOffDesc, st.HandedOff)
	ch <- prometheus.MustNewConstMetric(proxySpoolDesc, prometheus.GaugeValue, float64(c.spool.Pending()))
}
