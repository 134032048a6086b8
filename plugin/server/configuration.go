package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// configuration is the plugin's System Console settings (settings_schema in
// plugin/plugin.json). Mattermost stores the keys lowercased; JSON decoding
// matches them case-insensitively.
type configuration struct {
	SealgateURL       string // base URL of sealgate's admin listener
	IngestToken       string // sealgate's ingest_token
	SealgateOrdersURL string // base URL of sealgate's order API listener
	PluginSecret      string // shared secret for /sealgate's calls to the order API
	// ForwardFileContent sends each shared file's bytes to sealgate's
	// PUT /v1/files/{id}, sealed there under the uploader's day key. Off:
	// files are forwarded as metadata and SHA-256 only.
	ForwardFileContent bool
}

// ingestURL is where events go, or "" while the plugin is not configured
// to send (events stay queued).
func (c *configuration) ingestURL() string {
	if c == nil || c.SealgateURL == "" || c.IngestToken == "" {
		return ""
	}
	return endpoint(c.SealgateURL, "/v1/ingest")
}

// filesURL is where the content of file id goes (PUT), on the same
// listener as the ingest API.
func (c *configuration) filesURL(id string) string {
	base := strings.TrimSuffix(strings.TrimRight(c.SealgateURL, "/"), "/v1/ingest")
	return base + "/v1/files/" + url.PathEscape(id)
}

// ordersURL is the order API's GET /v1/me/orders, or "" if not configured.
func (c *configuration) ordersURL() string {
	if c == nil || c.SealgateOrdersURL == "" || c.PluginSecret == "" {
		return ""
	}
	return endpoint(c.SealgateOrdersURL, "/v1/me/orders")
}

func endpoint(base, path string) string {
	base = strings.TrimRight(base, "/")
	if strings.HasSuffix(base, path) {
		return base
	}
	return base + path
}

func (p *Plugin) getConfiguration() *configuration {
	p.configMu.RLock()
	defer p.configMu.RUnlock()
	if p.config == nil {
		return &configuration{}
	}
	return p.config
}

// OnConfigurationChange loads and checks the settings. A URL that is not
// http(s) is refused (the previous settings stay); the sender retries at
// once with the new settings.
func (p *Plugin) OnConfigurationChange() error {
	cfg := new(configuration)
	if err := p.API.LoadPluginConfiguration(cfg); err != nil {
		return fmt.Errorf("sealgate: load configuration: %w", err)
	}
	cfg.SealgateURL = strings.TrimSpace(cfg.SealgateURL)
	cfg.IngestToken = strings.TrimSpace(cfg.IngestToken)
	cfg.SealgateOrdersURL = strings.TrimSpace(cfg.SealgateOrdersURL)
	cfg.PluginSecret = strings.TrimSpace(cfg.PluginSecret)
	for _, u := range []struct{ name, value string }{{"SealgateURL", cfg.SealgateURL}, {"SealgateOrdersURL", cfg.SealgateOrdersURL}} {
		if u.value == "" {
			continue
		}
		parsed, err := url.Parse(u.value)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return fmt.Errorf("sealgate: %s must be an http(s) URL such as https://sealgate.internal:8081", u.name)
		}
		if parsed.Scheme == "http" && !isLoopback(parsed.Hostname()) {
			p.API.LogWarn("sealgate: "+u.name+" uses plain HTTP to another host; the token and the chat content cross the network unencrypted", "host", parsed.Host)
		}
	}
	if cfg.IngestToken != "" && len(cfg.IngestToken) < 16 {
		p.API.LogWarn("sealgate: IngestToken is shorter than 16 characters; sealgate refuses such tokens")
	}
	if cfg.SealgateURL == "" || cfg.IngestToken == "" {
		p.API.LogWarn("sealgate: SealgateURL or IngestToken is not set; events are queued until they are")
	}
	p.configMu.Lock()
	p.config = cfg
	p.configMu.Unlock()
	p.kickSender()
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
