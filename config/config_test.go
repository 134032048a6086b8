package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Quorum != 3 || len(c.Slots) != 5 || c.DayKeyGrace.Hours() != 2 || c.Limits.MaxPostBytes != 1<<20 {
		t.Fatalf("%+v", c)
	}
	rules, err := c.Rules()
	if err != nil || rules.MaxValidity != 168*time.Hour || rules.MaxWindowDays != 90 || len(rules.ExcludedChannels) != 2 {
		t.Fatalf("order rules %+v, %v", rules, err)
	}
	if c.Listen.Orders == "" || len(c.Orders.Requesters) != 1 || len(c.Slots[2].Holders) != 1 || c.Orders.VetoRoles[0] != "works-council" {
		t.Fatalf("order roles not loaded: %+v", c.Orders)
	}
	if c.Aggregates.K != 5 || c.Aggregates.Lateness.Duration != 10*time.Minute || len(c.Aggregates.Readers) != 1 || c.Aggregates.NoiseBudget() != 0 {
		t.Fatalf("aggregates not loaded: %+v", c.Aggregates)
	}
	if !filepath.IsAbs(c.Path(c.GatewayKeys)) || !strings.HasSuffix(c.Path(c.GatewayKeys), "configs/gateway.keys") {
		t.Fatalf("relative path resolved to %s", c.Path(c.GatewayKeys))
	}
}

func TestEnvOverrides(t *testing.T) {
	t.Setenv("SEALGATE_REDIS_ADDR", "127.0.0.1:7777")
	t.Setenv("SEALGATE_STORE_KIND", "postgres")
	t.Setenv("SEALGATE_STORE_DSN", "postgres://x@127.0.0.1/y")
	t.Setenv("SEALGATE_QUORUM", "2")
	c, err := Load("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Redis.Addr != "127.0.0.1:7777" || c.Store.Kind != "postgres" || c.Quorum != 2 {
		t.Fatalf("%+v", c)
	}
	t.Setenv("SEALGATE_QUORUM", "two")
	if _, err := Load("../configs/sealgate.example.yaml"); err == nil || !strings.Contains(err.Error(), "SEALGATE_QUORUM") {
		t.Fatalf("bad env accepted: %v", err)
	}
}

func TestRefusals(t *testing.T) {
	base, _ := os.ReadFile("../configs/sealgate.example.yaml")
	cases := map[string][2]string{
		"quorum 1":        {"quorum: 3", "quorum: 1"},
		"quorum above N":  {"quorum: 3", "quorum: 6"},
		"short token":     {"ingest_token: change-me-to-a-long-random-token", "ingest_token: short"},
		"unknown field":   {"quorum: 3", "quorum: 3\nquorom: 3"},
		"duplicate role":  {"role: hr", "role: legal"},
		"bad store kind":  {"kind: file", "kind: sqlite"},
		"grace too long":  {"day_key_grace: 2h", "day_key_grace: 48h"},
		"bad duration":    {"day_key_grace: 2h", "day_key_grace: soon"},
		"bad level":       {"level: info", "level: loud"},
		"body below post": {"max_body_bytes: 33554432", "max_body_bytes: 10"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			mod := strings.Replace(string(base), c[0], c[1], 1)
			if mod == string(base) {
				t.Fatalf("replacement %q not found", c[0])
			}
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(mod), 0o600)
			if _, err := Load(p); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestOrderSettingsRefused: order rules can only be tightened, and people
// are Mattermost user ids.
func TestOrderSettingsRefused(t *testing.T) {
	base, err := os.ReadFile("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct{ old, new, want string }{
		"longer validity":  {"max_validity: 168h", "max_validity: 720h", "orders.rules"},
		"unknown purpose":  {"max_validity: 168h", "purposes: [curiosity]", "orders.rules"},
		"holder not an id": {"holders: [k1h8w3xq5pfn7ee8xr1x6ycm5o]", "holders: [alice]", "slots[0].holders"},
		"veto of no slot":  {"veto_roles: [works-council]", "veto_roles: [ceo]", "orders.veto_roles"},
		"no mattermost":    {"url: https://chat.example.com", "url: \"\"", "mattermost.url"},
		"k below 5":        {"k: 5 ", "k: 4 ", "aggregates.k"},
		"reader not an id": {"readers: [c7jz1m8bqfgrmpq3ty4hhk6b1e]", "readers: [works-council]", "aggregates.readers"},
		"no lateness":      {"lateness: 10m", "lateness: 0s", "aggregates.lateness"},
		"budget, no ε":     {"budget: 0 ", "budget: 1 ", "aggregates.noise"},
		"negative ε":       {"epsilon: 0 ", "epsilon: -1 ", "aggregates.noise"},
	} {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(string(base), c.old) {
				t.Fatalf("example lacks %q", c.old)
			}
			dir := t.TempDir()
			p := filepath.Join(dir, "c.yaml")
			os.WriteFile(p, []byte(strings.Replace(string(base), c.old, c.new, 1)), 0o600)
			if _, err := Load(p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %s", err, c.want)
			}
		})
	}
}

func TestNoiseBudget(t *testing.T) {
	base, err := os.ReadFile("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	load := func(eps, budget string) (*Config, error) {
		mod := strings.Replace(string(base), "epsilon: 0 ", "epsilon: "+eps+" ", 1)
		mod = strings.Replace(mod, "budget: 0 ", "budget: "+budget+" ", 1)
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(mod), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p)
	}
	if c, err := load("0.5", "0"); err != nil || c.Aggregates.NoiseBudget() != 5 {
		t.Errorf("default budget: %v, %v", c, err)
	}
	if c, err := load("0.5", "2"); err != nil || c.Aggregates.NoiseBudget() != 2 {
		t.Errorf("budget 2: %v, %v", c, err)
	}
	if _, err := load("2", "1"); err == nil || !strings.Contains(err.Error(), "aggregates.noise") {
		t.Errorf("budget below ε: %v", err)
	}
	if _, err := load("1", "101"); err == nil || !strings.Contains(err.Error(), "aggregates.noise") {
		t.Errorf("budget above 100: %v", err)
	}
}

// TestProxySettings: the proxy section loads with its default spool, takes
// its environment overrides, and a wrong upstream is refused with the field
// named.
func TestProxySettings(t *testing.T) {
	base, err := os.ReadFile("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const listenLine = `  listen: ""                               # e.g. 0.0.0.0:8443`
	if !strings.Contains(string(base), listenLine) {
		t.Fatalf("example lacks %q", listenLine)
	}
	load := func(t *testing.T, edits ...string) (*Config, error) {
		t.Helper()
		mod := string(base)
		for i := 0; i+1 < len(edits); i += 2 {
			if !strings.Contains(mod, edits[i]) {
				t.Fatalf("example lacks %q", edits[i])
			}
			mod = strings.Replace(mod, edits[i], edits[i+1], 1)
		}
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(mod), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(p)
	}
	on := `  listen: 127.0.0.1:8443                   # e.g. 0.0.0.0:8443`

	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Proxy.Listen != "" || c.Proxy.Upstream != "http://127.0.0.1:8065" {
		t.Fatalf("example: %+v", c.Proxy)
	}
	if c, err = load(t, listenLine, on); err != nil {
		t.Fatal(err)
	}
	if c.Proxy.Listen != "127.0.0.1:8443" || !strings.HasSuffix(c.Path(c.Proxy.SpoolDir), "/spool") || !filepath.IsAbs(c.Path(c.Proxy.SpoolDir)) {
		t.Fatalf("proxy on: %+v", c.Proxy)
	}
	if d := Defaults(); d.Proxy.SpoolDir != "spool" || d.Proxy.Listen != "" {
		t.Fatalf("defaults %+v", d.Proxy)
	}

	t.Run("env", func(t *testing.T) {
		t.Setenv("SEALGATE_PROXY_LISTEN", "127.0.0.1:9443")
		t.Setenv("SEALGATE_PROXY_UPSTREAM", "https://mm.internal:8065")
		c, err := load(t)
		if err != nil {
			t.Fatal(err)
		}
		if c.Proxy.Listen != "127.0.0.1:9443" || c.Proxy.Upstream != "https://mm.internal:8065" {
			t.Fatalf("%+v", c.Proxy)
		}
		t.Setenv("SEALGATE_PROXY_UPSTREAM", "ftp://mm.internal")
		if _, err := load(t); err == nil || !strings.Contains(err.Error(), "proxy.upstream") {
			t.Fatalf("ftp upstream from env: %v", err)
		}
	})

	const up = "upstream: http://127.0.0.1:8065"
	for name, c := range map[string]struct {
		edits []string
		want  string
	}{
		"no upstream":      {[]string{listenLine, on, up, `upstream: ""`}, "proxy.upstream: missing"},
		"unknown scheme":   {[]string{up, "upstream: ws://127.0.0.1:8065"}, "proxy.upstream: scheme \"ws\""},
		"relative":         {[]string{up, "upstream: 127.0.0.1:8065"}, "proxy.upstream"},
		"no host":          {[]string{up, "upstream: http:///api"}, "proxy.upstream: missing host"},
		"path":             {[]string{up, "upstream: http://127.0.0.1:8065/mattermost"}, "proxy.upstream: must be scheme://host[:port] only"},
		"credentials":      {[]string{up, "upstream: http://admin:pw@127.0.0.1:8065"}, "proxy.upstream: must not carry credentials"},
		"listen not addr":  {[]string{listenLine, `  listen: "8443"                           # e.g. 0.0.0.0:8443`}, "proxy.listen"},
		"listen bad port":  {[]string{listenLine, `  listen: "127.0.0.1:https4"                # e.g. 0.0.0.0:8443`}, "proxy.listen"},
		"no spool":         {[]string{listenLine, on, "spool_dir: spool", `spool_dir: ""`}, "proxy.spool_dir"},
		"cert without key": {[]string{"# cert_file: tls/proxy.crt", "cert_file: tls/proxy.crt"}, "proxy.cert_file, proxy.key_file"},
		"no bot token":     {[]string{listenLine, on, "bot_token: change-me-bot-access-token", `bot_token: ""`}, "mattermost.bot_token"},
		"unknown key":      {[]string{"spool_dir: spool", "spool_dir: spool\n  spool: x"}, "spool"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, c.edits...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %s", err, c.want)
			}
			if strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error quotes the credentials: %v", err)
			}
		})
	}
}

// TestReconcileSettings: the reconcile section of the example, its env
// override and defaults, and every refusal naming its field.
func TestReconcileSettings(t *testing.T) {
	c, err := Load("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := c.Reconcile
	if r.Token != "change-me-admin-access-token" || r.Every.Duration != 15*time.Minute || r.Lookback.Duration != 2*time.Hour || r.Lag.Duration != 5*time.Minute || r.SkipDirect {
		t.Fatalf("reconcile section not loaded: %+v", r)
	}
	t.Setenv("SEALGATE_RECONCILE_TOKEN", "from-the-environment")
	if c, err = Load("../configs/sealgate.example.yaml"); err != nil || c.Reconcile.Token != "from-the-environment" {
		t.Fatalf("SEALGATE_RECONCILE_TOKEN not applied: %v %+v", err, c)
	}
	d := Defaults()
	if d.Reconcile.Every.Duration != 0 || d.Reconcile.Lookback.Duration != 2*time.Hour || d.Reconcile.Lag.Duration != 5*time.Minute {
		t.Fatalf("defaults: %+v", d.Reconcile)
	}

	base, err := os.ReadFile("../configs/sealgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		old, new, want string
		env            bool // SEALGATE_RECONCILE_TOKEN unset, so the file's token counts
	}{
		"every below 1m":     {"every: 15m", "every: 30s", "reconcile.every", false},
		"every above 24h":    {"every: 15m", "every: 48h", "reconcile.every", false},
		"every negative":     {"every: 15m", "every: -1m", "reconcile.every", false},
		"every, no token":    {"token: change-me-admin-access-token", `token: ""`, "reconcile.token", true},
		"every, no url":      {"url: https://chat.example.com", `url: ""`, "reconcile.every", false},
		"lookback zero":      {"lookback: 2h", "lookback: 0s", "reconcile.lookback", false},
		"lookback above 24h": {"lookback: 2h", "lookback: 72h", "reconcile.lookback", false},
		"lag above 1h":       {"lag: 5m", "lag: 2h", "reconcile.lag", false},
		"lag not below back": {"lookback: 2h", "lookback: 5m", "reconcile.lag", false},
		"lag negative":       {"lag: 5m", "lag: -5m", "reconcile.lag", false},
		"unknown key":        {"skip_direct: false", "skip_direct: false\n  skip_dms: true", "skip_dms", false},
	} {
		t.Run(name, func(t *testing.T) {
			if c.env {
				os.Unsetenv("SEALGATE_RECONCILE_TOKEN") // restored by t.Setenv's cleanup
			}
			if !strings.Contains(string(base), c.old) {
				t.Fatalf("example lacks %q", c.old)
			}
			p := filepath.Join(t.TempDir(), "c.yaml")
			os.WriteFile(p, []byte(strings.Replace(string(base), c.old, c.new, 1)), 0o600)
			if _, err := Load(p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %s", err, c.want)
			}
		})
	}

	// Off by default: a config without the section needs no token.
	mod := strings.Replace(string(base), "every: 15m", "every: 0s", 1)
	mod = strings.Replace(mod, "token: change-me-admin-access-token", `token: ""`, 1)
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte(mod), 0o600)
	os.Unsetenv("SEALGATE_RECONCILE_TOKEN")
	if c, err := Load(p); err != nil || c.Reconcile.Every.Duration != 0 {
		t.Fatalf("reconcile off: %v", err)
	}
}
