// Package config is sealgate's one typed configuration, loaded from YAML with
// environment overrides (SEALGATE_*), and checked before anything starts.
//
// Relative paths in the file are resolved against the file's directory, so a
// directory written by `sealgate init` can be moved as a whole.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sealgate/sealgate/order"
)

// Config is everything sealgate serve needs.
type Config struct {
	// Listen holds the listener addresses.
	Listen Listen `yaml:"listen"`
	// IngestToken is the bearer token the Mattermost plugin (and other
	// capture paths) present to /v1/ingest. Env: SEALGATE_INGEST_TOKEN.
	IngestToken string `yaml:"ingest_token"`
	Redis       Redis  `yaml:"redis"`
	Store       Store  `yaml:"store"`
	// GatewayKeys is the file with the gateway's tag, ref and signing keys.
	GatewayKeys string `yaml:"gateway_keys"`
	// GatewayPublicKey is the file with the gateway's public signing key.
	// Approvers check key records and order keys against it; they need this
	// file, never gateway_keys.
	GatewayPublicKey string `yaml:"gateway_public_key"`
	// Slots are the approver slots, in slot order. Their order is part of
	// every key record: never reorder, only append.
	Slots []Slot `yaml:"slots"`
	// Quorum is M: how many distinct slots must contribute to unseal.
	Quorum int `yaml:"quorum"`
	// DayKeyGrace is how long after the end of a day its day keys stay in
	// memory for late events. Default 2h, at most 24h.
	DayKeyGrace Duration `yaml:"day_key_grace"`
	Limits      Limits   `yaml:"limits"`
	Log         Log      `yaml:"log"`
	// Mattermost is the chat server the order API validates tokens against.
	Mattermost Mattermost `yaml:"mattermost"`
	// Orders configures investigation orders and who may act on them.
	Orders Orders `yaml:"orders"`
	// Notices configures how the subject of an order is told.
	Notices Notices `yaml:"notices"`
	// Intake configures capture paths besides the plugin.
	Intake Intake `yaml:"intake"`
	// Reconcile configures the reconciliation pull from Mattermost's REST
	// API (`sealgate reconcile` and serve's periodic job).
	Reconcile Reconcile `yaml:"reconcile"`
	// Proxy is the reverse-proxy capture mode in front of Mattermost.
	Proxy Proxy `yaml:"proxy"`
	// Aggregates configures the k-anonymous activity statistics.
	Aggregates Aggregates `yaml:"aggregates"`

	dir string
}

// Listen holds listener addresses.
type Listen struct {
	// Admin serves /v1/ingest, /healthz, /readyz and /metrics. Env: SEALGATE_LISTEN_ADMIN.
	Admin string `yaml:"admin"`
	// Orders serves the order API (/v1/orders/...) to compliance officers,
	// approvers and auditors, authenticated by Mattermost tokens. Empty
	// disables it. Env: SEALGATE_LISTEN_ORDERS.
	Orders string `yaml:"orders"`
}

// Mattermost locates the Mattermost server.
type Mattermost struct {
	// URL is the server's base URL, e.g. https://chat.example.com. Env: SEALGATE_MATTERMOST_URL.
	URL string `yaml:"url"`
	// TokenCache is how long a validated token is trusted before Mattermost
	// is asked again. Default 30s, at most 5m.
	TokenCache Duration `yaml:"token_cache"`
	// BotToken is the sealgate bot's access token, used to publish audit
	// checkpoints and, with the proxy on, to look up deleted posts and
	// incoming webhooks. Env: SEALGATE_MATTERMOST_BOT_TOKEN.
	BotToken string `yaml:"bot_token"`
	// CheckpointChannel is the channel id where the bot posts the audit
	// log's checkpoint (its head hash) every CheckpointEvery (default 1h),
	// so that a truncated log is detectable. Empty disables publishing.
	CheckpointChannel string   `yaml:"checkpoint_channel"`
	CheckpointEvery   Duration `yaml:"checkpoint_every"`
}

// Orders says who may act on investigation orders and tightens the rules.
// People are Mattermost user ids.
type Orders struct {
	// Requesters may file orders, each with the public key that signs them.
	Requesters []Requester `yaml:"requesters"`
	// Auditors may read orders and their audit trail, never content.
	Auditors []string `yaml:"auditors"`
	// DPO are the data protection officers: they may read and revoke orders.
	DPO []string `yaml:"dpo"`
	// VetoRoles are slot roles whose single rejection rejects an order.
	VetoRoles []string `yaml:"veto_roles"`
	// PluginSecret is shared with the sealgate Mattermost plugin, whose
	// /sealgate command asks /v1/me/orders for the user Mattermost
	// authenticated. At least 32 characters; empty disables it. Env:
	// SEALGATE_PLUGIN_SECRET.
	PluginSecret string `yaml:"plugin_secret"`
	// Grace is how long an order's record outlives its expiry in Redis, for
	// closure and notices. Default 24h.
	Grace Duration `yaml:"grace"`
	// Rules tighten the built-in limits (order.DefaultRules); they can never
	// loosen them.
	Rules order.Rules `yaml:"rules"`
}

// Notices configures the notices to employees. They are required whenever
// the order API runs: no order can be released without telling its subject.
type Notices struct {
	// BotUserID is the sealgate bot's user id; its token is
	// mattermost.bot_token. The bot sends the direct messages.
	BotUserID string `yaml:"bot_user_id"`
	// DPOContact and Authority are the contacts the notice gives for a
	// complaint. Authority defaults to the Autoriteit Persoonsgegevens.
	DPOContact string `yaml:"dpo_contact"`
	Authority  string `yaml:"authority"`
	// Templates is a directory of overriding templates (activated.en.tmpl,
	// ended.nl.tmpl, …); empty uses the built-in English and Dutch texts.
	Templates string `yaml:"templates"`
	// EscalationChannel is the channel id of the compliance channel told
	// when a notice cannot be delivered after repeated attempts.
	EscalationChannel string `yaml:"escalation_channel"`
	// Mail is the second channel (and the fallback when Mattermost fails).
	Mail NoticeMail `yaml:"mail"`
}

// NoticeMail is the SMTP submission server for e-mail notices. STARTTLS is
// required (or implicit TLS); credentials are never sent in clear.
type NoticeMail struct {
	Addr        string `yaml:"addr"` // host:port; empty disables e-mail
	From        string `yaml:"from"`
	Username    string `yaml:"username"`
	Password    string `yaml:"password"`  // Env: SEALGATE_MAIL_PASSWORD
	Mechanism   string `yaml:"mechanism"` // plain (default), login, xoauth2, oauthbearer (the password is the token)
	ImplicitTLS bool   `yaml:"implicit_tls"`
}

// Intake configures the SMTP intake of Mattermost's Global Relay
// compliance export.
type Intake struct {
	SMTP SMTPIntake `yaml:"smtp"`
}

// SMTPIntake is the Global Relay SMTP intake; empty Listen disables it.
type SMTPIntake struct {
	Listen    string `yaml:"listen"` // Env: SEALGATE_SMTP_LISTEN
	Domain    string `yaml:"domain"`
	CertFile  string `yaml:"cert_file"`
	KeyFile   string `yaml:"key_file"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`  // Env: SEALGATE_SMTP_PASSWORD
	Recipient string `yaml:"recipient"` // the only address accepted
	MaxBytes  int64  `yaml:"max_bytes"` // default 400 MiB
}

// Aggregates configures the only clear-text metadata sealgate keeps: counts
// of chat activity per hour or day, team and channel type, released per UTC
// day with every cell of fewer than K people suppressed (package redact).
type Aggregates struct {
	// K is the least number of distinct people behind any published figure.
	// Default 5; it may be raised, never lowered below 5.
	K int `yaml:"k"`
	// Lateness is how long after the end of a UTC day its late events are
	// still counted before the day is released. Default 10m, at most 24h.
	Lateness Duration `yaml:"lateness"`
	// Readers are Mattermost user ids who may read GET /v1/aggregates on the
	// order listener, besides orders.auditors and orders.dpo (e.g. the works
	// council, IT capacity planning).
	Readers []string `yaml:"readers"`
	// Noise, when Epsilon is set, adds Laplace noise to every publication
	// (API and CLI) and spends privacy budget from a ledger in the store.
	Noise Noise `yaml:"noise"`
}

// Noise is the differential-privacy setting of aggregate publications.
type Noise struct {
	// Epsilon is the privacy loss one publication spends per metric family
	// and day it covers; 0 disables noise.
	Epsilon float64 `yaml:"epsilon"`
	// Budget is the total ε allowed per metric family and day; once spent,
	// publications about that day are refused. Default 10 × Epsilon.
	Budget float64 `yaml:"budget"`
}

// NoiseBudget is the total ε per metric family and day: Budget, or 10 ×
// Epsilon when Budget is not set; 0 when noise is off.
func (a Aggregates) NoiseBudget() float64 {
	switch {
	case a.Noise.Epsilon == 0:
		return 0
	case a.Noise.Budget == 0:
		return 10 * a.Noise.Epsilon
	}
	return a.Noise.Budget
}

// Proxy is the reverse-proxy capture mode: sealgate listens in front of
// Mattermost, passes every request through and captures posts from the
// post routes and incoming webhooks. Empty Listen disables it.
type Proxy struct {
	// Listen is where Mattermost's clients connect instead of Mattermost.
	// Env: SEALGATE_PROXY_LISTEN.
	Listen string `yaml:"listen"`
	// Upstream is the Mattermost server's base URL, http or https, with no
	// path (request paths are passed on unchanged). Env: SEALGATE_PROXY_UPSTREAM.
	Upstream string `yaml:"upstream"`
	// SpoolDir keeps, encrypted, the captured events the store cannot take
	// yet; they are replayed when it can, also after a restart. Default
	// "spool".
	SpoolDir string `yaml:"spool_dir"`
	// CertFile and KeyFile, both or neither, make the proxy speak TLS to
	// its clients (PEM certificate chain and private key).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Reconcile is the reconciliation pull: it reads what changed in
// Mattermost (mattermost.url) and ingests the events the capture paths
// missed (package capture/reconcile).
type Reconcile struct {
	// Token is a personal access token of a system administrator (or of a
	// bot with the system_admin role): only they may list every channel
	// and read deleted posts. Env: SEALGATE_RECONCILE_TOKEN.
	Token string `yaml:"token"`
	// Every is the interval of serve's periodic job; 0 (the default) turns
	// it off. At least 1m, at most 24h: each run reads every channel.
	Every Duration `yaml:"every"`
	// Lookback is how far back each periodic run reads, from its own
	// start; a run never leaves a gap after the last complete one, so after
	// failures it reads further back. Default 2h, between 1m and 24h: the
	// server returns at most 1000 changed rows per channel and window.
	Lookback Duration `yaml:"lookback"`
	// Lag leaves the changes of the last Lag for a later run, so that the
	// plugin's own events, which carry more (the earlier text of an edit,
	// the text of a deleted post), are stored first. Default 5m, at most
	// 1h and shorter than lookback.
	Lag Duration `yaml:"lag"`
	// SkipDirect skips direct and group messages, which are found through
	// one request per user per run.
	SkipDirect bool `yaml:"skip_direct"`
}

// Requester is a compliance officer who may file orders.
type Requester struct {
	UserID    string `yaml:"user_id"`
	PublicKey string `yaml:"public_key"` // path to the .pub file of their key (sealgate keygen)
}

// Redis locates the Redis server that holds orders and approvals.
type Redis struct {
	Addr     string `yaml:"addr"`     // Env: SEALGATE_REDIS_ADDR
	Password string `yaml:"password"` // Env: SEALGATE_REDIS_PASSWORD
	DB       int    `yaml:"db"`
}

// Store selects the retention store.
type Store struct {
	Kind string `yaml:"kind"` // "file" (default) or "postgres". Env: SEALGATE_STORE_KIND
	Path string `yaml:"path"` // file store path. Env: SEALGATE_STORE_PATH
	DSN  string `yaml:"dsn"`  // PostgreSQL DSN. Env: SEALGATE_STORE_DSN
}

// Slot is one approver slot: a role, its public key file and the people
// who hold it.
type Slot struct {
	Role      string `yaml:"role"`
	PublicKey string `yaml:"public_key"` // path to the .pub file
	// Holders are the Mattermost user ids allowed to approve or reject with
	// this slot (the key file is still needed to approve).
	Holders []string `yaml:"holders"`
}

// Limits bound what one request may carry.
type Limits struct {
	MaxPostBytes   int64 `yaml:"max_post_bytes"`   // one event's JSON; default 1 MiB
	MaxBatchEvents int   `yaml:"max_batch_events"` // default 1000
	MaxBodyBytes   int64 `yaml:"max_body_bytes"`   // one request body; default 32 MiB
	// MaxFileBytes bounds one shared file's content on PUT /v1/files/{id};
	// default 100 MiB, Mattermost's own default file size limit.
	MaxFileBytes int64 `yaml:"max_file_bytes"`
}

// Log configures log/slog.
type Log struct {
	Level string `yaml:"level"` // debug, info (default), warn, error. Env: SEALGATE_LOG_LEVEL
}

// Duration is a time.Duration written as "2h" in YAML.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("duration %q: %w", n.Value, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Defaults returns a configuration with every default filled in.
func Defaults() Config {
	return Config{
		Listen:      Listen{Admin: "127.0.0.1:8081"},
		Redis:       Redis{Addr: "127.0.0.1:6379"},
		Store:       Store{Kind: "file", Path: "sealgate.db"},
		DayKeyGrace: Duration{2 * time.Hour},
		Limits:      Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000, MaxBodyBytes: 32 << 20, MaxFileBytes: 100 << 20},
		Log:         Log{Level: "info"},
		Mattermost:  Mattermost{TokenCache: Duration{30 * time.Second}, CheckpointEvery: Duration{time.Hour}},
		Orders:      Orders{Grace: Duration{24 * time.Hour}},
		Proxy:       Proxy{SpoolDir: "spool"},
		Aggregates:  Aggregates{K: 5, Lateness: Duration{10 * time.Minute}},
		Reconcile:   Reconcile{Lookback: Duration{2 * time.Hour}, Lag: Duration{5 * time.Minute}},
	}
}

// Load reads the file, applies environment overrides and validates.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c := Defaults()
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("load config %s: %w", path, err)
	}
	abs, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c.dir = abs
	if err := c.applyEnv(os.LookupEnv); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) applyEnv(lookup func(string) (string, bool)) error {
	strs := map[string]*string{
		"SEALGATE_LISTEN_ADMIN":         &c.Listen.Admin,
		"SEALGATE_INGEST_TOKEN":         &c.IngestToken,
		"SEALGATE_REDIS_ADDR":           &c.Redis.Addr,
		"SEALGATE_REDIS_PASSWORD":       &c.Redis.Password,
		"SEALGATE_STORE_KIND":           &c.Store.Kind,
		"SEALGATE_STORE_PATH":           &c.Store.Path,
		"SEALGATE_STORE_DSN":            &c.Store.DSN,
		"SEALGATE_GATEWAY_KEYS":         &c.GatewayKeys,
		"SEALGATE_LOG_LEVEL":            &c.Log.Level,
		"SEALGATE_LISTEN_ORDERS":        &c.Listen.Orders,
		"SEALGATE_MATTERMOST_URL":       &c.Mattermost.URL,
		"SEALGATE_MATTERMOST_BOT_TOKEN": &c.Mattermost.BotToken,
		"SEALGATE_PLUGIN_SECRET":        &c.Orders.PluginSecret,
		"SEALGATE_MAIL_PASSWORD":        &c.Notices.Mail.Password,
		"SEALGATE_SMTP_LISTEN":          &c.Intake.SMTP.Listen,
		"SEALGATE_SMTP_PASSWORD":        &c.Intake.SMTP.Password,
		"SEALGATE_RECONCILE_TOKEN":      &c.Reconcile.Token,
		"SEALGATE_PROXY_LISTEN":         &c.Proxy.Listen,
		"SEALGATE_PROXY_UPSTREAM":       &c.Proxy.Upstream,
	}
	for name, dst := range strs {
		if v, ok := lookup(name); ok {
			*dst = v
		}
	}
	if v, ok := lookup("SEALGATE_QUORUM"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("SEALGATE_QUORUM: %q is not a number", v)
		}
		c.Quorum = n
	}
	return nil
}

// Validate checks the configuration and names the first field that is wrong.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Listen.Admin == "" {
		bad("listen.admin: missing")
	}
	if len(c.IngestToken) < 16 {
		bad("ingest_token: missing or shorter than 16 characters")
	}
	if c.Redis.Addr == "" {
		bad("redis.addr: missing")
	}
	switch c.Store.Kind {
	case "file":
		if c.Store.Path == "" {
			bad("store.path: missing for store.kind file")
		}
	case "postgres":
		if c.Store.DSN == "" {
			bad("store.dsn: missing for store.kind postgres")
		}
	default:
		bad("store.kind: %q is not file or postgres", c.Store.Kind)
	}
	if c.GatewayKeys == "" {
		bad("gateway_keys: missing")
	}
	roles := map[string]bool{}
	for i, s := range c.Slots {
		if s.Role == "" || s.PublicKey == "" {
			bad("slots[%d]: role and public_key are required", i)
		}
		if roles[s.Role] {
			bad("slots[%d]: role %q appears twice; a quorum needs distinct roles", i, s.Role)
		}
		roles[s.Role] = true
	}
	if len(c.Slots) < 2 {
		bad("slots: %d configured, need at least 2 so that no single approver can unseal", len(c.Slots))
	}
	if c.Quorum < 2 || c.Quorum > len(c.Slots) {
		bad("quorum: %d, must be between 2 and the number of slots (%d)", c.Quorum, len(c.Slots))
	}
	if c.DayKeyGrace.Duration < 0 || c.DayKeyGrace.Duration > 24*time.Hour {
		bad("day_key_grace: %s, must be between 0 and 24h", c.DayKeyGrace)
	}
	if c.Limits.MaxPostBytes <= 0 || c.Limits.MaxBatchEvents <= 0 || c.Limits.MaxBodyBytes < c.Limits.MaxPostBytes {
		bad("limits: max_post_bytes and max_batch_events must be positive and max_body_bytes ≥ max_post_bytes")
	}
	if c.Limits.MaxFileBytes <= 0 {
		bad("limits: max_file_bytes must be positive")
	}
	if c.Listen.Orders != "" && c.Mattermost.URL == "" {
		bad("mattermost.url: missing; the order API (listen.orders) validates tokens against it")
	}
	if c.Mattermost.TokenCache.Duration < 0 || c.Mattermost.TokenCache.Duration > 5*time.Minute {
		bad("mattermost.token_cache: %s, must be between 0 and 5m", c.Mattermost.TokenCache)
	}
	if c.Mattermost.CheckpointChannel != "" && (c.Mattermost.BotToken == "" || c.Mattermost.URL == "" || c.Mattermost.CheckpointEvery.Duration < time.Minute) {
		bad("mattermost.checkpoint_channel: needs mattermost.url, mattermost.bot_token and checkpoint_every of at least 1m")
	}
	if c.Listen.Orders != "" {
		n := c.Notices
		if !order.IsMattermostID(n.BotUserID) || c.Mattermost.BotToken == "" || n.DPOContact == "" {
			bad("notices: the order API needs notices: notices.bot_user_id, mattermost.bot_token and notices.dpo_contact")
		}
	}
	if m := c.Notices.Mail; m.Addr != "" && (m.From == "" || !strings.Contains(m.Addr, ":")) {
		bad("notices.mail: addr must be host:port and from is required")
	}
	switch c.Notices.Mail.Mechanism {
	case "", "plain", "login", "xoauth2", "oauthbearer":
	default:
		bad("notices.mail.mechanism: %q is not plain, login, xoauth2 or oauthbearer", c.Notices.Mail.Mechanism)
	}
	if i := c.Intake.SMTP; i.Listen != "" && (i.CertFile == "" || i.KeyFile == "" || i.Username == "" || len(i.Password) < 12 || i.Recipient == "") {
		bad("intake.smtp: cert_file, key_file, username, password (≥ 12 characters) and recipient are required")
	}
	c.validateProxy(bad)
	if s := c.Orders.PluginSecret; s != "" && (len(s) < 32 || s == c.IngestToken) {
		bad("orders.plugin_secret: at least 32 characters, and not the ingest token")
	}
	if c.Orders.Grace.Duration < 0 || c.Orders.Grace.Duration > 7*24*time.Hour {
		bad("orders.grace: %s, must be between 0 and 168h", c.Orders.Grace)
	}
	if _, err := c.Rules(); err != nil {
		bad("orders.rules: %v", err)
	}
	for i, r := range c.Orders.Requesters {
		if !order.IsMattermostID(r.UserID) || r.PublicKey == "" {
			bad("orders.requesters[%d]: user_id (a Mattermost user id) and public_key are required", i)
		}
	}
	vetoes := map[string]bool{}
	for _, r := range c.Orders.VetoRoles {
		vetoes[r] = true
	}
	for i, s := range c.Slots {
		delete(vetoes, s.Role)
		for _, h := range s.Holders {
			if !order.IsMattermostID(h) {
				bad("slots[%d].holders: %q is not a Mattermost user id", i, h)
			}
		}
	}
	for r := range vetoes {
		bad("orders.veto_roles: %q is not the role of a slot", r)
	}
	for _, l := range [][]string{c.Orders.Auditors, c.Orders.DPO} {
		for _, u := range l {
			if !order.IsMattermostID(u) {
				bad("orders: %q is not a Mattermost user id", u)
			}
		}
	}
	if a := c.Aggregates; a.K < 5 {
		bad("aggregates.k: %d, must be at least 5 (it may only be raised)", a.K)
	}
	if l := c.Aggregates.Lateness.Duration; l <= 0 || l > 24*time.Hour {
		bad("aggregates.lateness: %s, must be between 1s and 24h", c.Aggregates.Lateness)
	}
	for _, u := range c.Aggregates.Readers {
		if !order.IsMattermostID(u) {
			bad("aggregates.readers: %q is not a Mattermost user id", u)
		}
	}
	if len(c.Aggregates.Readers) > 0 && c.Listen.Orders == "" {
		bad("aggregates.readers: GET /v1/aggregates is served on listen.orders, which is not set")
	}
	if n := c.Aggregates.Noise; n.Epsilon < 0 || n.Epsilon > 10 || n.Budget < 0 || (n.Budget > 0 && n.Budget < n.Epsilon) || n.Budget > 100 || (n.Budget > 0 && n.Epsilon == 0) {
		bad("aggregates.noise: epsilon between 0 and 10 and budget (≥ epsilon, ≤ 100) expected, got %g and %g", n.Epsilon, n.Budget)
	}
	c.validateReconcile(bad)
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

// validateProxy checks the proxy section. The upstream is checked whenever
// it is set, so that a typo is caught before the proxy is switched on.
func (c *Config) validateProxy(bad func(string, ...any)) {
	p := c.Proxy
	if p.Listen != "" {
		if _, port, err := net.SplitHostPort(p.Listen); err != nil {
			bad("proxy.listen: %q is not host:port", p.Listen)
		} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
			bad("proxy.listen: port %q is not a port number", port)
		}
		if p.Upstream == "" {
			bad("proxy.upstream: missing; the proxy (proxy.listen) forwards to Mattermost there")
		}
		if p.SpoolDir == "" {
			bad("proxy.spool_dir: missing; the proxy keeps what the store cannot take yet there")
		}
		// A DELETE exchange carries no author: the proxy asks Mattermost
		// for the deleted post with the bot's token.
		if c.Mattermost.BotToken == "" {
			bad("mattermost.bot_token: missing; the proxy (proxy.listen) looks up deleted posts with it")
		}
	}
	if p.Upstream != "" {
		u, err := url.Parse(p.Upstream)
		switch {
		case err != nil:
			bad("proxy.upstream: not a URL")
		case u.Scheme != "http" && u.Scheme != "https":
			bad("proxy.upstream: scheme %q is not http or https (want an absolute URL such as http://mattermost.internal:8065)", u.Scheme)
		case u.Hostname() == "":
			bad("proxy.upstream: missing host")
		case u.User != nil:
			bad("proxy.upstream: must not carry credentials")
		case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			bad("proxy.upstream: must be scheme://host[:port] only; request paths are passed on unchanged")
		}
	}
	if (p.CertFile == "") != (p.KeyFile == "") {
		bad("proxy.cert_file, proxy.key_file: set both for TLS, or neither")
	}
}

// validateReconcile checks the reconcile section. The token and the URL are
// required only by the periodic job here; `sealgate reconcile` asks for
// them when it runs, so that a config without them still serves.
func (c *Config) validateReconcile(bad func(string, ...any)) {
	r := c.Reconcile
	if e := r.Every.Duration; e < 0 || (e > 0 && e < time.Minute) || e > 24*time.Hour {
		bad("reconcile.every: %s, must be 0 (off) or between 1m and 24h", r.Every)
	}
	if r.Every.Duration > 0 && r.Token == "" {
		bad("reconcile.token: missing; the periodic reconciliation (reconcile.every) needs a system administrator's personal access token")
	}
	if r.Every.Duration > 0 && c.Mattermost.URL == "" {
		bad("mattermost.url: missing; the periodic reconciliation (reconcile.every) reads Mattermost's REST API")
	}
	if r.Lookback.Duration < time.Minute || r.Lookback.Duration > 24*time.Hour {
		bad("reconcile.lookback: %s, must be between 1m and 24h", r.Lookback)
	}
	if r.Lag.Duration < 0 || r.Lag.Duration > time.Hour || r.Lag.Duration >= r.Lookback.Duration {
		bad("reconcile.lag: %s, must be between 0 and 1h and shorter than reconcile.lookback (%s)", r.Lag, r.Lookback)
	}
}

// Rules are the order rules: the built-in ones tightened by orders.rules.
func (c *Config) Rules() (order.Rules, error) {
	return order.DefaultRules().Tighten(c.Orders.Rules)
}

// Path resolves a path from the file against the file's directory.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Write writes the configuration as YAML.
func (c *Config) Write(path string) error {
	raw, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return os.WriteFile(path, raw, 0o600)
}
