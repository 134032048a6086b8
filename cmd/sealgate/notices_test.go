package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/internal/testredis"
)

// noticeDeployment is a deployment made with the CLI (init, keygen), with
// a real redis-server, the file store and a fake Mattermost, whose serve
// can be stopped and started again on the same configuration and store.
type noticeDeployment struct {
	dir, dep, cfgPath string
	cfg               *config.Config
	dms               chan dm
	// base is the first of the ten ingested days of alice and bob.
	base time.Time
	// log collects what every serve run logged.
	log lockedBuffer
}

// newNoticeDeployment sets up the deployment; front, if not nil, puts a
// server in front of the fake Mattermost (it gets the fake's URL and
// returns the one serve uses); edit adjusts the configuration.
func newNoticeDeployment(t *testing.T, front func(fakeURL string) string, edit func(*config.Config)) *noticeDeployment {
	t.Helper()
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	d := &noticeDeployment{dir: t.TempDir(), dms: make(chan dm, 64)}
	d.dep = filepath.Join(d.dir, "dep")
	if _, err := sealgate(t, carol, "init", "--dir", d.dep, "--approvers", "5", "--quorum", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := sealgate(t, carol, "keygen", "--out", filepath.Join(d.dep, "requester.key"), "--kem", "x25519"); err != nil {
		t.Fatal(err)
	}
	d.cfgPath = filepath.Join(d.dep, "sealgate.yaml")
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rs := testredis.Start(t)
	cfg.Redis.Addr = rs.Addr()
	cfg.Listen.Admin, cfg.Listen.Orders = addr(t), addr(t)
	cfg.Mattermost.URL = fakeMattermost(t, d.dms)
	if front != nil {
		cfg.Mattermost.URL = front(cfg.Mattermost.URL)
	}
	cfg.Mattermost.BotToken = botToken
	cfg.Notices.BotUserID = botUserID
	cfg.Notices.DPOContact = "privacy@example.test"
	cfg.Orders.Requesters = []config.Requester{{UserID: carol, PublicKey: "requester.key.pub"}}
	cfg.Orders.VetoRoles = []string{"works-council"}
	for i := range cfg.Slots {
		cfg.Slots[i].Holders = []string{holderID(i)}
	}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Write(d.cfgPath); err != nil {
		t.Fatal(err)
	}
	if d.cfg, err = config.Load(d.cfgPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", d.log.String())
		}
	})
	return d
}

// serve starts serve on the deployment's configuration and returns the
// function that stops it (and waits until it has); it is also stopped when
// the test ends.
func (d *noticeDeployment) serve(t *testing.T) (stop func()) {
	t.Helper()
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	// Fresh ports at every start: while serve was stopped, another test's
	// server may have taken the old ones.
	cfg.Listen.Admin, cfg.Listen.Orders = addr(t), addr(t)
	if err := cfg.Write(d.cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(d.cfgPath); err != nil {
		t.Fatal(err)
	}
	d.cfg = cfg
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out lockedBuffer
	go func() { done <- serveConfig(ctx, cfg, &out, &d.log) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	waitServing(t, "http://"+cfg.Listen.Admin+"/healthz", done)
	return stop
}

// ingest sends ten days of alice and bob through /v1/ingest.
func (d *noticeDeployment) ingest(t *testing.T) {
	t.Helper()
	d.base = time.Now().UTC().AddDate(0, 0, -12).Truncate(24 * time.Hour)
	var evs []map[string]any
	for day := 0; day < 10; day++ {
		for i, u := range []string{alice, bob} {
			ms := d.base.AddDate(0, 0, day).Add(9 * time.Hour).UnixMilli()
			evs = append(evs, map[string]any{"kind": "posted", "post": map[string]any{
				"id": fmt.Sprintf("n%d%d%024d", day, i, 7), "user_id": u, "channel_id": "8s6ug79ctbfp8bm4q1fdjfjxho",
				"create_at": ms, "update_at": ms, "message": fmt.Sprintf("day %d from %s", day, u[:5]),
			}})
		}
	}
	body, _ := json.Marshal(map[string]any{"events": evs})
	req, _ := http.NewRequest(http.MethodPost, "http://"+d.cfg.Listen.Admin+"/v1/ingest", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.cfg.IngestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %s", resp.Status)
	}
}

// purpose is the order's purpose: a notice carries it, an escalation never.
const purpose = "data leak investigation"

// file files an order on alice (days 2..5 of the ingested ten, 4 of her
// messages) with the given notice plan and validity, and returns its id.
func (d *noticeDeployment) file(t *testing.T, notice map[string]any, validity time.Duration) string {
	t.Helper()
	form := map[string]any{
		"subject": alice, "requester": carol, "legal_basis": "GDPR art. 6(1)(f)", "legitimate_interest_ref": "LIA-9",
		"purpose": purpose,
		"suspicion": map[string]any{"facts": "list leaked", "first_noticed": time.Now().AddDate(0, 0, -2).Format("2006-01-02"),
			"evidence_refs": []string{"EV-1"}, "policy_clause": "4.2"},
		"prior_warning":  map[string]any{"ref": "W-1"},
		"less_intrusive": map[string]any{"tried": "logs", "why_insufficient": "no content"},
		"why_content":    "content needed",
		"window":         map[string]any{"from": d.base.AddDate(0, 0, 2).Format("2006-01-02"), "to": d.base.AddDate(0, 0, 5).Format("2006-01-02")},
		"expires_at":     time.Now().Add(validity).UTC().Format(time.RFC3339),
		"dpia_ref":       "DPIA-1", "works_council_ref": "OR-1", "ict_policy_ref": "ICT-1",
		"notice": notice,
	}
	formPath := filepath.Join(d.dir, fmt.Sprintf("order-%d.json", time.Now().UnixNano()))
	raw, _ := json.Marshal(form)
	if err := os.WriteFile(formPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := sealgate(t, carol, "order", "file", "--config", d.cfgPath, "--key", filepath.Join(d.dep, "requester.key"), "--form", formPath)
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`ord_[a-z2-7]{26}`).FindString(out)
	if id == "" {
		t.Fatalf("no order id in %q", out)
	}
	return id
}

// approve approves the order as the holder of each slot (0 legal, 1 hr,
// 2 works-council, 3 security, 4 dpo-office) and returns the last output.
func (d *noticeDeployment) approve(t *testing.T, id string, slots ...int) string {
	t.Helper()
	var out string
	for _, slot := range slots {
		var err error
		out, err = sealgate(t, holderID(slot), "approve", id, "--config", d.cfgPath, "--key", d.slotKey(slot), "--yes")
		if err != nil {
			t.Fatalf("approval by slot %d: %v", slot, err)
		}
	}
	return out
}

func (d *noticeDeployment) slotKey(slot int) string {
	return filepath.Join(d.dep, "slots", d.cfg.Slots[slot].Role+".key")
}

// show returns `sealgate order show` as the requester.
func (d *noticeDeployment) show(t *testing.T, id string) string {
	t.Helper()
	out, err := sealgate(t, carol, "order", "show", id, "--config", d.cfgPath)
	if err != nil {
		t.Fatalf("order show: %v", err)
	}
	return out
}

// unseal exports the order as the requester and returns the export.
func (d *noticeDeployment) unseal(t *testing.T, id string) string {
	t.Helper()
	p := filepath.Join(d.dir, fmt.Sprintf("export-%d.json", time.Now().UnixNano()))
	if _, err := sealgate(t, carol, "unseal", id, "--config", d.cfgPath, "--format", "json", "--out", p); err != nil {
		t.Fatalf("unseal: %v", err)
	}
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// metric returns the value of one series on the admin listener's
// /metrics (series as exposed, labels in alphabetical order), and whether
// it is there.
func (d *noticeDeployment) metric(t *testing.T, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + d.cfg.Listen.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q", series, line)
			}
			return f, true
		}
	}
	return 0, false
}

// auditOf verifies the whole audit log with `sealgate audit verify` and
// returns the entries about the order. serve must be stopped (the file
// store is held by one process at a time).
func (d *noticeDeployment) auditOf(t *testing.T, id string) []audit.Entry {
	t.Helper()
	out, err := sealgate(t, carol, "audit", "verify", "--config", d.cfgPath)
	if err != nil || !strings.Contains(out, "ok: the log verifies") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	cfg, err := config.Load(d.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	b, _, closeFn, err := openAuditBackend(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	var es []audit.Entry
	if err := b.AuditEntries(context.Background(), 1, func(e audit.Entry) error {
		if e.OrderID == id {
			es = append(es, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return es
}

// countAudit counts the entries with the action whose object and detail
// contain the given strings.
func countAudit(es []audit.Entry, action audit.Action, object, detail string) int {
	n := 0
	for _, e := range es {
		if e.Action == action && strings.Contains(e.Object, object) && strings.Contains(e.Detail, detail) {
			n++
		}
	}
	return n
}

func dumpAudit(es []audit.Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %d %s %s object=%q detail=%q\n", e.Seq, e.ActorRole, e.Action, e.Object, e.Detail)
	}
	return b.String()
}

// noDM fails if the bot sends a direct message within the wait.
func noDM(t *testing.T, dms <-chan dm, wait time.Duration, why string) {
	t.Helper()
	select {
	case m := <-dms:
		t.Fatalf("%s: a direct message reached %s:\n%s", why, m.to, m.message)
	case <-time.After(wait):
	}
}

// TestRejectAndVeto drives `sealgate reject` against a served gateway: the
// usage and role checks, a rejection by a slot without veto that leaves the
// order pending, the works council's veto that closes it one approval short
// of the quorum, and what the order refuses afterwards. The audit log holds
// both rejections and every refusal, and never the reasons.
func TestRejectAndVeto(t *testing.T) {
	// carol (the requester) also holds the works council's slot: her veto
	// of her own order must be refused by the rule, not by a missing role.
	d := newNoticeDeployment(t, nil, func(cfg *config.Config) {
		cfg.Slots[2].Holders = append(cfg.Slots[2].Holders, carol)
	})
	if d.cfg.Slots[1].Role != "hr" || d.cfg.Slots[2].Role != "works-council" {
		t.Fatalf("init made slots %v", roles(d.cfg.Slots))
	}
	stop := d.serve(t)
	d.ingest(t)
	id := d.file(t, map[string]any{"mode": "immediate"}, 72*time.Hour)

	reject := func(user string, slot int, reason ...string) (string, error) {
		args := []string{"reject", id, "--config", d.cfgPath, "--key", d.slotKey(slot)}
		if len(reason) > 0 {
			args = append(args, "--reason", reason[0])
		}
		return sealgate(t, user, args...)
	}
	const hrReason, vetoReason = "the suspicion is hearsay", "no works-council consent for this scope"

	// Without --reason: a usage error (exit 2), nothing sent.
	if _, err := reject(holderID(1), 1); err == nil || !strings.HasPrefix(err.Error(), "exit 2:") || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("reject without --reason: %v", err)
	}
	// The requester may not reject her own order, even holding the veto slot.
	if _, err := reject(carol, 2, "changed my mind"); err == nil || !strings.Contains(err.Error(), "HTTP 403, self_approval") {
		t.Fatalf("requester rejecting: %v", err)
	}
	// Someone else's slot: the legal holder with the works council's key.
	if _, err := reject(holderID(0), 2, "not mine to veto"); err == nil || !strings.Contains(err.Error(), "HTTP 403, not_slot_holder") {
		t.Fatalf("rejecting with another's slot: %v", err)
	}
	if out := d.show(t, id); !strings.Contains(out, "(pending, 0 of 3 approvals)") {
		t.Fatalf("after the refused rejections:\n%s", out)
	}

	// hr has no veto: the rejection is recorded, the order stays pending
	// and still takes approvals.
	out, err := reject(holderID(1), 1, hrReason)
	if err != nil || !strings.Contains(out, "rejection of "+id+" recorded (slot hr has no veto)") {
		t.Fatalf("hr rejecting: %q %v", out, err)
	}
	if out := d.show(t, id); !strings.Contains(out, "(pending, 0 of 3 approvals)") {
		t.Fatalf("after hr's rejection:\n%s", out)
	}
	if out := d.approve(t, id, 0, 3); !strings.Contains(out, "2 of 3 approvals") || strings.Contains(out, "quorum reached") {
		t.Fatalf("second approval: %s", out)
	}

	// The works council vetoes, one approval short of the quorum.
	out, err = reject(holderID(2), 2, vetoReason)
	if err != nil || !strings.Contains(out, "rejected "+id+": the order is closed") {
		t.Fatalf("veto: %q %v", out, err)
	}
	if out := d.show(t, id); !strings.Contains(out, "order "+id+" (rejected,") {
		t.Fatalf("after the veto:\n%s", out)
	}
	// The approval that would have reached the quorum is refused.
	_, err = sealgate(t, holderID(4), "approve", id, "--config", d.cfgPath, "--key", d.slotKey(4), "--yes")
	if err == nil || !strings.Contains(err.Error(), "the order is rejected, not pending (HTTP 410") {
		t.Fatalf("approval after the veto: %v", err)
	}
	// Nothing is released, and no file is left behind.
	exp := filepath.Join(d.dir, "rejected.json")
	_, err = sealgate(t, carol, "unseal", id, "--config", d.cfgPath, "--format", "json", "--out", exp)
	if err == nil || !strings.Contains(err.Error(), "HTTP 410") {
		t.Fatalf("unseal after the veto: %v", err)
	}
	if _, err := os.Stat(exp); !os.IsNotExist(err) {
		t.Fatalf("a refused export left a file: %v", err)
	}
	// A second veto finds nothing pending.
	if _, err := reject(holderID(2), 2, vetoReason); err == nil || !strings.Contains(err.Error(), "HTTP 410, not_pending") {
		t.Fatalf("second veto: %v", err)
	}
	// Never activated: the subject is not told of an order that read nothing.
	noDM(t, d.dms, 500*time.Millisecond, "rejected order")
	stop()

	es := d.auditOf(t, id)
	for _, c := range []struct {
		action         audit.Action
		object, detail string
		want           int
	}{
		{audit.ActionRejected, "slot=1", "recorded", 1},
		{audit.ActionRejected, "slot=2", "order_rejected", 1},
		{audit.ActionRejected, "", "", 2},
		{audit.ActionApproved, "", "", 2},
		{audit.ActionRefused, "reject slot=2", "self_approval", 1},
		{audit.ActionRefused, "reject slot=2", "not_slot_holder", 1},
		{audit.ActionRefused, "reject slot=2", "not_pending", 1},
		{audit.ActionRefused, "escrow slot=4", "not_pending", 1},
		{audit.ActionActivated, "", "", 0},
		{audit.ActionExported, "", "", 0},
		{audit.ActionNoticeSent, "", "", 0},
	} {
		if n := countAudit(es, c.action, c.object, c.detail); n != c.want {
			t.Errorf("%d %s entries (object %q, detail %q), want %d", n, c.action, c.object, c.detail, c.want)
		}
	}
	// The veto and the refused ones name the works council as the actor.
	for _, e := range es {
		if e.Action == audit.ActionRejected && e.Object == "slot=2" && e.ActorRole != "works-council" {
			t.Errorf("the veto is recorded as by %q", e.ActorRole)
		}
		for _, s := range []string{hrReason, vetoReason, alice, carol, holderID(2)} {
			if strings.Contains(e.Object+e.Detail+e.ActorPseudonym, s) {
				t.Errorf("audit entry %d holds %q", e.Seq, s)
			}
		}
	}
	if t.Failed() {
		t.Logf("audit entries of %s:\n%s", id, dumpAudit(es))
	}
}

// escalationChannel is the compliance channel of TestNoticeEscalation.
const escalationChannel = "c0mpl1ancechanne1c0mpl1anc"

// TestNoticeEscalation: while Mattermost refuses the bot's direct messages,
// the activation notice is retried, escalated after 5 failed attempts (a
// message to notices.escalation_channel naming the order and not the
// employee, the escalated metric, an audit entry) and stays queued; once
// Mattermost takes direct messages again it is delivered exactly once.
func TestNoticeEscalation(t *testing.T) {
	if len(escalationChannel) != 26 {
		t.Fatal("the channel id must be 26 characters")
	}
	// Retries 20 ms apart (the dispatcher's real backoff is minutes).
	old := noticeBackoff
	noticeBackoff = func(int) time.Duration { return 20 * time.Millisecond }
	t.Cleanup(func() { noticeBackoff = old })

	var (
		refuseDMs  atomic.Bool
		refused    atomic.Int32 // DM posts answered 500
		mu         sync.Mutex
		escalation []string // messages posted to the escalation channel
	)
	refuseDMs.Store(true)
	// In front of the fake Mattermost: POST /api/v4/posts into a DM
	// channel fails with 500 while refuseDMs is set; posts into the
	// escalation channel are taken here; everything else goes through.
	front := func(fakeURL string) string {
		u, _ := url.Parse(fakeURL)
		proxy := httputil.NewSingleHostReverseProxy(u)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/api/v4/posts" {
				raw, _ := io.ReadAll(r.Body)
				var p struct {
					ChannelID string `json:"channel_id"`
					Message   string `json:"message"`
				}
				json.Unmarshal(raw, &p)
				switch {
				case p.ChannelID == escalationChannel:
					if !strings.EqualFold(r.Header.Get("Authorization"), "Bearer "+botToken) {
						w.WriteHeader(http.StatusUnauthorized)
						return
					}
					mu.Lock()
					escalation = append(escalation, p.Message)
					mu.Unlock()
					w.WriteHeader(http.StatusCreated)
					json.NewEncoder(w).Encode(map[string]any{"id": "escalationpost000000000000", "channel_id": p.ChannelID})
					return
				case refuseDMs.Load():
					refused.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					json.NewEncoder(w).Encode(map[string]any{"id": "app.post.save.app_error", "message": "Unable to save the Post.", "status_code": 500})
					return
				}
				r.Body = io.NopCloser(bytes.NewReader(raw))
				r.ContentLength = int64(len(raw))
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	d := newNoticeDeployment(t, front, func(cfg *config.Config) { cfg.Notices.EscalationChannel = escalationChannel })
	stop := d.serve(t)
	d.ingest(t)
	id := d.file(t, map[string]any{"mode": "immediate"}, 72*time.Hour)
	if out := d.approve(t, id, 0, 1, 3); !strings.Contains(out, "quorum reached") {
		t.Fatalf("third approval: %s", out)
	}
	escalations := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), escalation...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(escalations()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no escalation after %d refused direct messages", refused.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v, ok := d.metric(t, `sealgate_notices_total{channel="",outcome="escalated"}`); !ok || v < 1 {
		t.Fatalf("escalated metric: %v %v", v, ok)
	}
	// Mattermost takes direct messages again.
	refuseDMs.Store(false)
	expectDM(t, d.dms, alice, id, "ingezien")
	noDM(t, d.dms, time.Second, "after the delivery")
	attempts := int(refused.Load())
	if attempts < 5 {
		t.Fatalf("escalated after %d failed attempts, want 5", attempts)
	}
	// One escalation per 5 failed attempts, each naming the order and its
	// notice, and not the employee or anything of the notice's text.
	got := escalations()
	t.Logf("%d failed attempts, %d escalations", attempts, len(got))
	if len(got) != attempts/5 {
		t.Errorf("%d escalation messages for %d failed attempts, want %d", len(got), attempts, attempts/5)
	}
	noticeID := "ntc_" + strings.TrimPrefix(id, "ord_") + "_a"
	for i, m := range got {
		if want := fmt.Sprintf("after %d attempts", 5*(i+1)); !strings.Contains(m, id) || !strings.Contains(m, noticeID) || !strings.Contains(m, want) {
			t.Errorf("escalation %d does not name the order, the notice and %q:\n%s", i+1, want, m)
		}
		for _, s := range []string{alice, alice[:5], purpose, "ingezien", "GDPR", d.base.AddDate(0, 0, 2).Format("2006-01-02")} {
			if strings.Contains(m, s) {
				t.Errorf("escalation %d holds %q:\n%s", i+1, s, m)
			}
		}
	}
	if v, _ := d.metric(t, `sealgate_notices_total{channel="",outcome="escalated"}`); int(v) != len(got) {
		t.Errorf("escalated metric %v, %d escalations", v, len(got))
	}
	if v, _ := d.metric(t, `sealgate_notices_total{channel="mattermost",outcome="sent"}`); v != 1 {
		t.Errorf("sent metric %v, want 1", v)
	}
	if strings.Contains(d.log.String(), alice) {
		t.Error("serve logged the subject's user id")
	}
	stop()

	es := d.auditOf(t, id)
	if n := countAudit(es, audit.ActionNoticeEscalated, noticeID, "attempts="); n != len(got) {
		t.Errorf("%d notice_escalated entries, %d escalations", n, len(got))
	}
	if n := countAudit(es, audit.ActionNoticeEscalated, noticeID, "attempts=5"); n != 1 {
		t.Errorf("%d notice_escalated entries with attempts=5", n)
	}
	if n := countAudit(es, audit.ActionNoticeSent, "mattermost", "activated"); n != 1 {
		t.Errorf("%d notice_sent entries, want 1", n)
	}
	if t.Failed() {
		t.Logf("audit entries of %s:\n%s", id, dumpAudit(es))
	}
}

// TestDeferredNoticeAfterRestart: a deferred notice is not sent at
// activation, survives serve's restart in the outbox, and is sent exactly
// once when its deferral has ended, saying what was read meanwhile; a
// restored activation (the requester's first read after the restart) and
// a further restart do not send it again.
func TestDeferredNoticeAfterRestart(t *testing.T) {
	d := newNoticeDeployment(t, nil, nil)
	stop := d.serve(t)
	d.ingest(t)
	until := time.Now().UTC().AddDate(0, 0, 2).Format("2006-01-02")
	id := d.file(t, map[string]any{"mode": "deferred", "deferral_ground": "telling now would prejudice the investigation", "defer_until": until}, 7*24*time.Hour)
	if out := d.approve(t, id, 0, 1, 3); !strings.Contains(out, "quorum reached") {
		t.Fatalf("third approval: %s", out)
	}
	if out := d.show(t, id); !strings.Contains(out, `"defer_until": "`+until+`"`) || !strings.Contains(out, "(active,") {
		t.Fatalf("the order is not active with its deferral:\n%s", out)
	}
	// The requester reads while the subject may not be told yet.
	if exp := d.unseal(t, id); strings.Count(exp, "from "+alice[:5]) != 4 {
		t.Fatalf("export:\n%s", exp)
	}
	noDM(t, d.dms, 1500*time.Millisecond, "deferred notice before its date")
	if _, ok := d.metric(t, `sealgate_notices_total{channel="mattermost",outcome="sent"}`); ok {
		t.Fatal("a notice was counted as sent during the deferral")
	}
	stop()
	es := d.auditOf(t, id)
	if countAudit(es, audit.ActionActivated, "", "") != 1 || countAudit(es, audit.ActionExported, "", "") != 1 || countAudit(es, audit.ActionNoticeSent, "", "") != 0 {
		t.Fatalf("audit before the restart:\n%s", dumpAudit(es))
	}

	// While serve is stopped, the deferral ends: the dispatcher's clock is
	// three days ahead (the closing notice, due at the expiry in seven
	// days, stays due later).
	old := noticeClock
	noticeClock = func() time.Time { return time.Now().Add(72 * time.Hour) }
	t.Cleanup(func() { noticeClock = old })
	stop = d.serve(t)
	select {
	case m := <-d.dms:
		for _, s := range []string{id, "ingezien", "Aantal exports: 1", "Getoonde berichten (alle inzagen en exports samen): 4"} {
			if m.to != alice || !strings.Contains(m.message, s) {
				t.Fatalf("direct message to %s does not say %q:\n%s", m.to, s, m.message)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no deferred notice after the restart")
	}
	// The requester's first read after the restart restores the activation.
	if exp := d.unseal(t, id); strings.Count(exp, "from "+alice[:5]) != 4 {
		t.Fatalf("export after the restart:\n%s", exp)
	}
	noDM(t, d.dms, 1500*time.Millisecond, "after the deferred notice")
	if v, _ := d.metric(t, `sealgate_notices_total{channel="mattermost",outcome="sent"}`); v != 1 {
		t.Errorf("sent metric %v, want 1", v)
	}
	stop()
	// Once more: nothing is left to send.
	stop = d.serve(t)
	noDM(t, d.dms, time.Second, "after a second restart")
	stop()

	es = d.auditOf(t, id)
	if n := countAudit(es, audit.ActionNoticeSent, "mattermost", "activated"); n != 1 {
		t.Errorf("%d activation notice_sent entries, want 1", n)
	}
	if n := countAudit(es, audit.ActionNoticeSent, "", ""); n != 1 {
		t.Errorf("%d notice_sent entries, want 1", n)
	}
	if n := countAudit(es, audit.ActionActivated, "restart", ""); n != 1 {
		t.Errorf("%d restored activations, want 1", n)
	}
	if t.Failed() {
		t.Logf("audit entries of %s:\n%s", id, dumpAudit(es))
	}
}
