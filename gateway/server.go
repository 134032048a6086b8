package gateway

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server is the admin HTTP listener: the ingest API (events, and shared
// files' contents in files.go), health and metrics.
type Server struct {
	Pipeline     *Pipeline
	Token        string
	Limits       Limits
	MaxBodyBytes int64
	MaxFileBytes int64 // one file content on PUT /v1/files/{id}
	Log          *slog.Logger
	// Ready reports whether the dependencies (Redis, store) answer.
	Ready func(ctx context.Context) error

	metrics *Metrics
}

// Metrics are the gateway's Prometheus metrics. Labels carry outcomes only,
// never ids, names or content.
type Metrics struct {
	Registry *prometheus.Registry
	events   *prometheus.CounterVec
	requests *prometheus.CounterVec
	files    *prometheus.CounterVec
	latency  prometheus.Histogram
	liveKeys prometheus.GaugeFunc
}

// NewMetrics registers the gateway metrics in a fresh registry.
func NewMetrics(liveDayKeys func() float64) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sealgate_ingest_events_total", Help: "Events received on /v1/ingest by outcome.",
	}, []string{"outcome"})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sealgate_ingest_requests_total", Help: "Ingest requests by HTTP status code.",
	}, []string{"code"})
	m.files = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sealgate_file_contents_total", Help: "File contents received on /v1/files by outcome.",
	}, []string{"outcome"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sealgate_ingest_duration_seconds", Help: "Time from request to durable answer.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	m.liveKeys = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sealgate_day_keys_live", Help: "Day keys held in memory.",
	}, liveDayKeys)
	m.Registry.MustRegister(m.events, m.requests, m.files, m.latency, m.liveKeys,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// Handler returns the admin HTTP handler.
func (s *Server) Handler(m *Metrics) http.Handler {
	s.metrics = m
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/ingest", s.ingest)
	mux.HandleFunc("/v1/ingest", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
	})
	mux.HandleFunc("PUT /v1/files/{id}", s.putFile)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	return mux
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			s.Log.Warn("not ready", "err", err)
			writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || s.Token == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(tok), []byte(s.Token)) == 1
}

func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	code := s.serveIngest(w, r)
	s.metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
	s.metrics.latency.Observe(time.Since(start).Seconds())
}

func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request) int {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sealgate"`)
		return writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return writeError(w, http.StatusUnsupportedMediaType, "content type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return writeError(w, http.StatusRequestEntityTooLarge, "body larger than the limit of "+strconv.FormatInt(s.MaxBodyBytes, 10)+" bytes")
		}
		return writeError(w, http.StatusBadRequest, "could not read body")
	}
	events, err := ParseBatch(body, s.Limits, time.Now())
	if err != nil {
		var bad *BadRequestError
		if errors.As(err, &bad) {
			s.metrics.events.WithLabelValues("rejected").Add(1)
			s.Log.Info("ingest refused", "status", bad.Status, "reason", bad.Reason)
			return writeError(w, bad.Status, bad.Reason)
		}
		return writeError(w, http.StatusBadRequest, "bad request")
	}
	res, err := s.Pipeline.Ingest(r.Context(), events)
	if err != nil {
		s.Log.Error("ingest failed", "events", len(events), "err", err)
		return writeError(w, http.StatusServiceUnavailable, "could not store the batch durably; retry")
	}
	s.metrics.events.WithLabelValues("stored").Add(float64(res.Stored))
	s.metrics.events.WithLabelValues("duplicate").Add(float64(res.Duplicate))
	s.Log.Debug("ingest", "received", res.Received, "stored", res.Stored, "duplicate", res.Duplicate)
	return writeJSON(w, http.StatusOK, map[string]int{"received": res.Received, "stored": res.Stored, "duplicate": res.Duplicate})
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
	return code
}

func writeError(w http.ResponseWriter, code int, reason string) int {
	return writeJSON(w, code, map[string]string{"error": reason})
}
