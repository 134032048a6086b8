package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/aggregates"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/redact"
)

// TestServeAggregates runs serve with the order listener on a real Redis
// and the file store: events ingested through /v1/ingest are counted, the
// open day goes to the store at shutdown, and GET /v1/aggregates serves it
// to readers only — a team of seven shown, two teams of three never named
// but folded together into "other teams" —
// with Laplace noise and a budget that survives the restart. Nothing of
// the messages, and no user id, reaches the store, the logs or /metrics.
func TestServeAggregates(t *testing.T) {
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	dep := filepath.Join(t.TempDir(), "dep")
	if _, err := sealgate(t, carol, "init", "--dir", dep, "--approvers", "3", "--quorum", "2"); err != nil {
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
	cfg.Mattermost.URL = fakeMattermost(t, make(chan dm, 16))
	cfg.Mattermost.BotToken = botToken
	cfg.Notices.BotUserID = botUserID
	cfg.Notices.DPOContact = "privacy@example.test"
	reader := holderID(2)
	cfg.Aggregates.Readers = []string{reader}
	cfg.Aggregates.Noise = config.Noise{Epsilon: 1, Budget: 2}
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	serve := func() (stop func(), metrics func() []byte) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		var out, log lockedBuffer
		go func() { done <- serveConfig(ctx, cfg, &out, &log) }()
		waitServing(t, "http://"+cfg.Listen.Admin+"/healthz", done)
		return func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
				logs.WriteString(log.String())
			}, func() []byte {
				resp, err := http.Get("http://" + cfg.Listen.Admin + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return b
			}
	}

	const canary = "CANARY-aggregates-7f3e"
	const bigTeam = "bigteambigteambigteambigte"
	smallTeams := []string{"smallteamasmallteamasmallt", "smallteambsmallteambsmallt"}
	stop, metrics := serve()
	now := time.Now()
	var evs []map[string]any
	var users []string
	for u := range 13 {
		user := fmt.Sprintf("aggusr%020d", u)
		users = append(users, user)
		team := bigTeam
		if u >= 7 {
			team = smallTeams[(u-7)/3]
		}
		for i := range 3 {
			ms := now.Add(time.Duration(-u-i) * time.Second).UnixMilli()
			evs = append(evs, map[string]any{"kind": "posted", "team_id": team, "channel_type": "O", "post": map[string]any{
				"id": fmt.Sprintf("aggpost%02d%02d%015d", u, i, 0), "user_id": user, "channel_id": "8s6ug79ctbfp8bm4q1fdjfjxho",
				"create_at": ms, "update_at": ms, "message": fmt.Sprintf("%s message %d of %d", canary, i, u),
			}})
		}
	}
	body, _ := json.Marshal(map[string]any{"events": evs})
	req, _ := http.NewRequest(http.MethodPost, "http://"+cfg.Listen.Admin+"/v1/ingest", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+cfg.IngestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %v %v", resp, err)
	}
	resp.Body.Close()
	m := metrics()
	if !bytes.Contains(m, []byte("sealgate_aggregates_observed_events 39")) {
		t.Fatalf("/metrics does not count 39 observed events:\n%s", grepLines(m, "sealgate_aggregates"))
	}
	stop() // the open day is released, partial, to the store

	// The CLI reads the store serve wrote (serve is stopped: the file
	// store has one process at a time). Noise is on: each run spends ε.
	day := now.UTC().Format("2006-01-02")
	out, err := sealgate(t, reader, "aggregates", "--config", cfgPath, "--from", day, "--to", day, "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var tab aggregates.JSONTable
	if err := json.Unmarshal([]byte(out), &tab); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	checkAggregateTable(t, tab, bigTeam, smallTeams)
	if _, err := sealgate(t, reader, "aggregates", "--config", cfgPath, "--from", day, "--to", day, "--k", "4"); err == nil || !strings.Contains(err.Error(), "--k") {
		t.Fatalf("--k below the configured k: %v", err)
	}

	// The API, after a restart: readers only, and the ledger remembers the
	// CLI's spending (budget 2, ε 1: one more publication of this day).
	// Fresh ports: another test's server may have taken the old ones.
	cfg.Listen.Admin, cfg.Listen.Orders = addr(t), addr(t)
	stop, metrics = serve()
	defer stop()
	get := func(user, target string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+cfg.Listen.Orders+target, nil)
		if user != "" {
			req.Header.Set("Authorization", "Bearer "+tokenOf(user))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	target := "/v1/aggregates?from=" + day + "&to=" + day
	if code, b := get("", target); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", code, b)
	}
	if code, b := get(bob, target); code != http.StatusForbidden {
		t.Fatalf("not a reader: %d %s", code, b)
	}
	code, b := get(reader, target)
	if code != http.StatusOK {
		t.Fatalf("reader: %d %s", code, b)
	}
	tab = aggregates.JSONTable{}
	if err := json.Unmarshal(b, &tab); err != nil {
		t.Fatal(err)
	}
	checkAggregateTable(t, tab, bigTeam, smallTeams)
	if code, b := get(reader, target); code != http.StatusForbidden || !strings.Contains(string(b), "budget_exhausted") {
		t.Fatalf("third publication of a day with budget 2, ε 1: %d %s", code, b)
	}
	if code, b := get(reader, target+"&format=xml"); code != http.StatusBadRequest {
		t.Fatalf("bad format: %d %s", code, b)
	}

	// Nothing of the messages or the people is anywhere.
	canaries := append([]string{canary}, users...)
	hits, scanned, err := privacyscan.Dir(dep, canaries)
	if err != nil {
		t.Fatal(err)
	}
	if scanned == 0 {
		t.Fatal("scanned nothing")
	}
	m = metrics()
	hits = append(hits, privacyscan.Bytes("/metrics", m, canaries)...)
	hits = append(hits, privacyscan.Bytes("serve log", logs.Bytes(), canaries)...)
	for _, h := range hits {
		t.Errorf("found %s", h)
	}
}

// checkAggregateTable: the day of the big team is shown with its figures
// (noised), the small teams are never named, and together they are shown
// as other teams (6 people).
func checkAggregateTable(t *testing.T, tab aggregates.JSONTable, bigTeam string, smallTeams []string) {
	t.Helper()
	if tab.K != 5 || tab.By != "day" {
		t.Fatalf("k %d by %s", tab.K, tab.By)
	}
	var big, other *aggregates.JSONRow
	for i, r := range tab.Rows {
		if slices.Contains(smallTeams, r.Team) {
			t.Fatalf("a team of 3 is named: %+v", r)
		}
		if r.Team == bigTeam && r.ChannelType == "*" {
			big = &tab.Rows[i]
		}
		if r.Team == redact.OtherTeams && r.ChannelType == "*" {
			other = &tab.Rows[i]
		}
		if !r.Partial {
			t.Errorf("a day released at shutdown is not marked partial: %+v", r)
		}
	}
	if big == nil || big.Suppressed || big.Figures == nil {
		t.Fatalf("the team of 7 is not shown: %+v", tab.Rows)
	}
	if other == nil || other.Suppressed {
		t.Fatalf("the two teams of 3 are not shown together: %+v", tab.Rows)
	}
	// ε = 1 with these bounds is wide noise; the figure is still a count.
	if big.Messages < 0 || big.Users < 0 {
		t.Fatalf("negative figures: %+v", *big.Figures)
	}
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitServing waits for url to answer, failing at once with serve's error
// if serve returns first on done (a port taken, a store that does not
// open); a nil done is never ready.
func waitServing(t *testing.T, url string, done chan error) {
	t.Helper()
	for i := 0; i < 200; i++ {
		select {
		case err := <-done:
			done <- err // for the caller's stop
			t.Fatalf("serve returned before answering: %v", err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}
