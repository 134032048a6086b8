package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/internal/freeport"
	"github.com/sealgate/sealgate/internal/testredis"
)

const (
	alice = "g6e8xk8t6t86tjy8nrqyeqmm5c" // subject
	bob   = "jwmtcrk65byjmjan5bgpkh18iw"
	carol = "98nqi1qftjd9trxzg7t6prraao" // requester
)

func holderID(i int) string      { return fmt.Sprintf("holder%dholder%dholder%dholdr", i, i, i) }
func tokenOf(user string) string { return "t" + user[1:] }

const (
	botUserID = "i8p86y7at78kbpor7j5myu77uw"
	botToken  = "b0tt0kenb0tt0kenb0tt0kenbo"
)

// dm is a direct message the fake server received from the bot.
type dm struct{ to, message string }

// fakeMattermost answers /api/v4/users/me for the people above, in the
// recorded 9.11 shape, and takes the bot's direct messages
// (POST /api/v4/channels/direct, then POST /api/v4/posts).
func fakeMattermost(t *testing.T, dms chan<- dm) string {
	raw, err := os.ReadFile("../../../shared/fixtures/mattermost-9.11/http/users-me.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Response struct{ Body map[string]any } `json:"response"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for _, u := range []string{alice, bob, carol, holderID(0), holderID(1), holderID(2), holderID(3), holderID(4)} {
		users["Bearer "+tokenOf(u)] = u
	}
	channels := map[string]string{} // DM channel id → user
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Authorization"), "Bearer "+botToken) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Method == http.MethodPost && r.URL.Path == "/api/v4/channels/direct":
				var pair []string
				if json.NewDecoder(r.Body).Decode(&pair) != nil || len(pair) != 2 || pair[0] != botUserID {
					w.WriteHeader(http.StatusBadRequest)
					return
				}
				id := fmt.Sprintf("dmchannel%017d", len(channels))
				channels[id] = pair[1]
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(map[string]any{"id": id, "type": "D", "name": pair[0] + "__" + pair[1]})
			case r.Method == http.MethodPost && r.URL.Path == "/api/v4/posts":
				var p struct {
					ChannelID string `json:"channel_id"`
					Message   string `json:"message"`
				}
				json.NewDecoder(r.Body).Decode(&p)
				to, ok := channels[p.ChannelID]
				if !ok {
					w.WriteHeader(http.StatusForbidden)
					return
				}
				dms <- dm{to: to, message: p.Message}
				w.WriteHeader(http.StatusCreated)
				json.NewEncoder(w).Encode(map[string]any{"id": "p" + p.ChannelID[1:], "channel_id": p.ChannelID})
			case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v4/users/"):
				body := map[string]any{}
				for k, v := range fx.Response.Body {
					body[k] = v
				}
				body["id"], body["email"], body["locale"] = strings.TrimPrefix(r.URL.Path, "/api/v4/users/"), "", "nl"
				json.NewEncoder(w).Encode(body)
			default:
				w.WriteHeader(http.StatusNotFound)
			}
			return
		}
		u, ok := users[r.Header.Get("Authorization")]
		if !ok || r.URL.Path != "/api/v4/users/me" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		body := map[string]any{}
		for k, v := range fx.Response.Body {
			body[k] = v
		}
		body["id"] = u
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func addr(t *testing.T) string {
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", p)
}

// sealgate runs one command line as the binary would, as the given user.
func sealgate(t *testing.T, user string, args ...string) (string, error) {
	t.Helper()
	t.Setenv("SEALGATE_TOKEN", tokenOf(user))
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		return out.String(), fmt.Errorf("exit %d: %s", code, errb.String())
	}
	return out.String(), nil
}

// TestOrderCommands drives a served gateway with the CLI only: init,
// keygen, serve, ingest, order file, three approvals, unseal, revoke.
func TestOrderCommands(t *testing.T) {
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	dir := t.TempDir()
	dep := filepath.Join(dir, "dep")
	if _, err := sealgate(t, carol, "init", "--dir", dep, "--approvers", "5", "--quorum", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := sealgate(t, carol, "keygen", "--out", filepath.Join(dep, "requester.key"), "--kem", "x25519"); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dep, "sealgate.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rs := testredis.Start(t)
	cfg.Redis.Addr = rs.Addr()
	cfg.Listen.Admin, cfg.Listen.Orders = addr(t), addr(t)
	dms := make(chan dm, 16)
	cfg.Mattermost.URL = fakeMattermost(t, dms)
	cfg.Mattermost.BotToken = botToken
	cfg.Notices.BotUserID = botUserID
	cfg.Notices.DPOContact = "privacy@example.test"
	cfg.Orders.Requesters = []config.Requester{{UserID: carol, PublicKey: "requester.key.pub"}}
	cfg.Orders.VetoRoles = []string{"works-council"}
	for i := range cfg.Slots {
		cfg.Slots[i].Holders = []string{holderID(i)}
	}
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var serveOut, serveLog lockedBuffer
	go func() { done <- serveConfig(ctx, cfg, &serveOut, &serveLog) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitFor(t, "http://"+cfg.Listen.Admin+"/healthz")

	// Ten days of alice and bob through /v1/ingest.
	base := time.Now().UTC().AddDate(0, 0, -12).Truncate(24 * time.Hour)
	var evs []map[string]any
	for d := 0; d < 10; d++ {
		for i, u := range []string{alice, bob} {
			ms := base.AddDate(0, 0, d).Add(9 * time.Hour).UnixMilli()
			evs = append(evs, map[string]any{"kind": "posted", "post": map[string]any{
				"id": fmt.Sprintf("q%d%d%024d", d, i, 7), "user_id": u, "channel_id": "8s6ug79ctbfp8bm4q1fdjfjxho",
				"create_at": ms, "update_at": ms, "message": fmt.Sprintf("day %d from %s", d, u[:5]),
			}})
		}
	}
	// And one file alice shared on day 3, its bytes forwarded as the
	// plugin does with ForwardFileContent: metadata event, then PUT.
	fileID, fileAt := "fi1e0000000000000000000000", base.AddDate(0, 0, 3).Add(10*time.Hour).UnixMilli()
	fileContent := bytes.Repeat([]byte("CANARY-shared-file-bytes "), 90_000)
	fileSum := sha256.Sum256(fileContent)
	evs = append(evs, map[string]any{"kind": "file", "file": map[string]any{
		"id": fileID, "user_id": alice, "post_id": "q30000000000000000000000007", "channel_id": "8s6ug79ctbfp8bm4q1fdjfjxho",
		"create_at": fileAt, "name": "list.xlsx", "size": len(fileContent), "sha256": hex.EncodeToString(fileSum[:]), "content_sealed": true,
	}})
	body, _ := json.Marshal(map[string]any{"events": evs})
	req, _ := http.NewRequest(http.MethodPost, "http://"+cfg.Listen.Admin+"/v1/ingest", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cfg.IngestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ingest: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodPut, "http://"+cfg.Listen.Admin+"/v1/files/"+fileID, bytes.NewReader(fileContent))
	req.Header.Set("Authorization", "Bearer "+cfg.IngestToken)
	req.Header.Set("X-Sealgate-Employee", alice)
	req.Header.Set("X-Sealgate-Create-At", fmt.Sprint(fileAt))
	req.Header.Set("X-Sealgate-Content-SHA256", hex.EncodeToString(fileSum[:]))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("put file: %v %v", resp, err)
	}
	resp.Body.Close()

	form := map[string]any{
		"subject": alice, "requester": carol, "legal_basis": "GDPR art. 6(1)(f)", "legitimate_interest_ref": "LIA-9",
		"purpose": "data leak investigation",
		"suspicion": map[string]any{"facts": "list leaked", "first_noticed": time.Now().AddDate(0, 0, -2).Format("2006-01-02"),
			"evidence_refs": []string{"EV-1"}, "policy_clause": "4.2"},
		"prior_warning":  map[string]any{"ref": "W-1"},
		"less_intrusive": map[string]any{"tried": "logs", "why_insufficient": "no content"},
		"why_content":    "content needed",
		"window":         map[string]any{"from": base.AddDate(0, 0, 2).Format("2006-01-02"), "to": base.AddDate(0, 0, 5).Format("2006-01-02")},
		"expires_at":     time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339),
		"dpia_ref":       "DPIA-1", "works_council_ref": "OR-1", "ict_policy_ref": "ICT-1",
		"notice": map[string]any{"mode": "immediate"},
	}
	formPath := filepath.Join(dir, "order.json")
	raw, _ := json.Marshal(form)
	os.WriteFile(formPath, raw, 0o600)

	out, err := sealgate(t, carol, "order", "file", "--config", cfgPath, "--key", filepath.Join(dep, "requester.key"), "--form", formPath)
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`ord_[a-z2-7]{26}`).FindString(out)
	if id == "" {
		t.Fatalf("no order id in %q", out)
	}
	// The requester may not approve, even holding a slot key file.
	if _, err := sealgate(t, carol, "approve", id, "--config", cfgPath, "--key", filepath.Join(dep, "slots", "legal.key"), "--yes"); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("requester approving: %v", err)
	}
	// Without --yes and without a terminal, nothing is approved.
	if _, err := sealgate(t, holderID(0), "approve", id, "--config", cfgPath, "--key", filepath.Join(dep, "slots", "legal.key")); err == nil || !strings.Contains(err.Error(), "--yes") {
		t.Fatalf("approve without confirmation: %v", err)
	}
	for i, role := range []string{"legal", "hr", "security"} {
		slot := []int{0, 1, 3}[i]
		out, err := sealgate(t, holderID(slot), "approve", id, "--config", cfgPath, "--key", filepath.Join(dep, "slots", role+".key"), "--yes")
		if err != nil {
			t.Fatalf("approval by %s: %v", role, err)
		}
		if !strings.Contains(out, "4 shares") || !strings.Contains(out, "why_content") {
			t.Fatalf("approval output does not show the order and 4 shares: %s", out)
		}
		if activated := strings.Contains(out, "quorum reached"); activated != (i == 2) {
			t.Fatalf("approval %d: %s", i+1, out)
		}
	}
	// The subject is told, in Dutch (their locale), by the sealgate bot.
	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", serveLog.String())
		}
	}()
	expectDM(t, dms, alice, id, "ingezien")

	exp := filepath.Join(dir, "export.json")
	if _, err := sealgate(t, carol, "unseal", id, "--config", cfgPath, "--format", "json", "--out", exp); err != nil {
		t.Fatal(err)
	}
	raw, _ = os.ReadFile(exp)
	if n := strings.Count(string(raw), "from "+alice[:5]); n != 4 || strings.Contains(string(raw), "from "+bob[:5]) {
		t.Fatalf("export holds %d of alice's 4 messages, or bob's:\n%s", n, raw)
	}
	if _, err := sealgate(t, holderID(0), "unseal", id, "--config", cfgPath, "--format", "json", "--out", filepath.Join(dir, "x.json")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("approver unsealing: %v", err)
	}
	// The shared file's bytes, for the requester only, checked end to end.
	if !strings.Contains(string(raw), `"content_sealed": true`) {
		t.Fatalf("export does not say the file's content is held:\n%s", raw)
	}
	got := filepath.Join(dir, "list.xlsx")
	if out, err := sealgate(t, carol, "unseal", id, "--config", cfgPath, "--file", fileID, "--out", got); err != nil || !strings.Contains(out, "SHA-256 checked") {
		t.Fatalf("unseal --file: %q %v", out, err)
	}
	if b, _ := os.ReadFile(got); !bytes.Equal(b, fileContent) {
		t.Fatalf("unsealed file: %d bytes, not the %d shared", len(b), len(fileContent))
	}
	if _, err := sealgate(t, holderID(0), "unseal", id, "--config", cfgPath, "--file", fileID, "--out", filepath.Join(dir, "x.bin")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("approver unsealing a file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.bin")); !os.IsNotExist(err) {
		t.Fatal("a refused download left a file behind")
	}
	if _, err := sealgate(t, carol, "order", "revoke", id, "--config", cfgPath, "--reason", "done"); err != nil {
		t.Fatal(err)
	}
	// Closure: the closing notice says how it ended and what was read.
	expectDM(t, dms, alice, id, "ingetrokken")
	if _, err := sealgate(t, carol, "unseal", id, "--config", cfgPath, "--file", fileID, "--out", filepath.Join(dir, "z.bin")); err == nil || !strings.Contains(err.Error(), "410") {
		t.Fatalf("unseal --file after revocation: %v", err)
	}
	if _, err := sealgate(t, carol, "unseal", id, "--config", cfgPath, "--format", "html", "--out", filepath.Join(dir, "y.html")); err == nil || !strings.Contains(err.Error(), "410") {
		t.Fatalf("unseal after revocation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "y.html")); !os.IsNotExist(err) {
		t.Fatal("a refused export left a file behind")
	}
	out, err = sealgate(t, carol, "order", "show", id, "--config", cfgPath)
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("show after revocation: %q %v", out, err)
	}
	if strings.Contains(serveLog.String(), "day 3 from") {
		t.Fatal("serve logged message content")
	}
}

// expectDM waits for the bot's direct message to user about the order.
func expectDM(t *testing.T, dms <-chan dm, user, orderID, word string) {
	t.Helper()
	select {
	case m := <-dms:
		if m.to != user || !strings.Contains(m.message, orderID) || !strings.Contains(strings.ToLower(m.message), word) {
			t.Fatalf("direct message to %s:\n%s\nwant one to %s about %s saying %q", m.to, m.message, user, orderID, word)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no notice reached %s about %s", user, orderID)
	}
}

func waitFor(t *testing.T, url string) {
	t.Helper()
	waitServing(t, url, nil)
}

// lockedBuffer is a bytes.Buffer that serve's goroutines may write while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
