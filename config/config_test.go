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
