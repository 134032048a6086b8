package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/aggregates"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store/boltstore"
)

// aggDay0 is the first day the aggregates of putAggregates cover.
var aggDay0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// putAggregates writes three days of aggregates of 60 users in four teams
// (one of them too small to be named) into the deployment's store, as
// serve's aggregator would, and returns the buckets.
func (d auditDeployment) putAggregates(t *testing.T) []redact.Bucket {
	t.Helper()
	a, err := redact.New(redact.Config{Start: aggDay0})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	teams := []string{"teamaaaaaaaaaaaaaaaaaaaaaa", "teambbbbbbbbbbbbbbbbbbbbbb", "teamcccccccccccccccccccccc", "teamdddddddddddddddddddddd"}
	for range 4000 {
		u := rng.IntN(60)
		team := teams[min(u/19, 3)] // 19, 19, 19 and 3 users: too few to be named
		a.Observe(redact.Event{
			Time:        aggDay0.Add(time.Duration(rng.IntN(3*24*3600)) * time.Second),
			Team:        team,
			ChannelType: []byte{'O', 'P', 'D'}[rng.IntN(3)],
			Kind:        redact.Kind(1 + rng.IntN(5)),
			Bytes:       rng.IntN(500),
			User:        fmt.Sprintf("user%022d", u),
		})
	}
	buckets := a.Flush(aggDay0.Add(4 * 24 * time.Hour))
	st, err := boltstore.Open(d.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.PutBuckets(t.Context(), buckets); err != nil {
		t.Fatal(err)
	}
	return buckets
}

func runAggregates(args ...string) (string, error) {
	var out bytes.Buffer
	err := cmdAggregates(args, &out)
	return out.String(), err
}

func publish(t *testing.T, buckets []redact.Bucket, from, to, by string, k int) redact.Table {
	t.Helper()
	q, err := aggregates.ParseQuery(from, to, by)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := redact.Publish(buckets, q, k)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestAggregatesTable(t *testing.T) {
	d := newAuditDeployment(t)
	buckets := d.putAggregates(t)
	out, err := runAggregates("--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-05")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var want bytes.Buffer
	if err := aggregates.WriteTable(&want, publish(t, buckets, "2026-11-01", "2026-11-05", "day", redact.MinK)); err != nil {
		t.Fatal(err)
	}
	if out != want.String() {
		t.Fatalf("output:\n%s\nwant:\n%s", out, want.String())
	}
	for _, s := range []string{"aggregates by day, k = 5", "2026-11-02", "2026-11-04", "teamaaaaaaaaaaaaaaaaaaaaaa", "all teams", "other teams", "USERS"} {
		if !strings.Contains(out, s) {
			t.Errorf("the table does not say %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "teamdddddddddddddddddddddd") {
		t.Errorf("a team of fewer than k users is named:\n%s", out)
	}

	out, err = runAggregates("--config", d.cfgPath, "--from", "2026-11-03", "--to", "2026-11-03", "--by", "hour", "--format", "table")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "aggregates by hour") || !strings.Contains(out, "2026-11-03 13:00") || !strings.Contains(out, "suppressed") {
		t.Errorf("hourly table:\n%s", out)
	}
}

func TestAggregatesJSONAndCSV(t *testing.T) {
	d := newAuditDeployment(t)
	buckets := d.putAggregates(t)
	out, err := runAggregates("--config", d.cfgPath, "--from", "2026-11-02", "--to", "2026-11-04", "--by", "hour", "--format", "json", "--k", "8")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var got aggregates.JSONTable
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("json output: %v\n%s", err, out)
	}
	want := publish(t, buckets, "2026-11-02", "2026-11-04", "hour", 8)
	if got.K != 8 || len(got.Rows) == 0 || !reflect.DeepEqual(got, aggregates.ToJSON(want)) {
		t.Fatalf("json output (k %d, %d rows) differs from the publication (%d rows)", got.K, len(got.Rows), len(want.Rows))
	}

	out, err = runAggregates("--config", d.cfgPath, "--from", "2026-11-02", "--to", "2026-11-04", "--format", "csv")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv output: %v\n%s", err, out)
	}
	want = publish(t, buckets, "2026-11-02", "2026-11-04", "day", redact.MinK)
	if !reflect.DeepEqual(recs[0], aggregates.CSVHeader) || len(recs)-1 != len(want.Rows) {
		t.Fatalf("csv: header %q, %d rows, want %d", recs[0], len(recs)-1, len(want.Rows))
	}
	for i, r := range recs[1:] {
		w := want.Rows[i]
		if r[2] != w.Team || (w.Suppressed && r[7] != "suppressed") || (!w.Suppressed && r[7] != fmt.Sprint(w.Messages)) {
			t.Fatalf("csv row %d %q, want %+v", i, r, w)
		}
	}
}

func TestAggregatesChart(t *testing.T) {
	d := newAuditDeployment(t)
	d.putAggregates(t)
	dir := t.TempDir()
	pngPath := filepath.Join(dir, "volume.png")
	out, err := runAggregates("--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-05", "--by", "hour", "--chart", pngPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "chart written to "+pngPath) {
		t.Errorf("output does not say where the chart is:\n%s", out)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("chart: %v", err)
	}
	if b := img.Bounds(); b.Dx() != chartWidth || b.Dy() != chartHeight {
		t.Fatalf("chart of %v, want %dx%d", b, chartWidth, chartHeight)
	}

	svgPath := filepath.Join(dir, "volume.svg")
	out, err = runAggregates("--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-05", "--format", "json", "--chart", svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid([]byte(out)) {
		t.Fatalf("--format json with --chart: stdout is not JSON alone:\n%s", out)
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<?xml")) && !bytes.HasPrefix(svg, []byte("<svg")) {
		t.Fatalf("svg chart starts with %q", svg[:min(len(svg), 40)])
	}
}

func TestAggregatesUsage(t *testing.T) {
	d := newAuditDeployment(t)
	for _, args := range [][]string{
		{"--from", "2026-11-01", "--to", "2026-11-02"},
		{"--config", d.cfgPath, "--to", "2026-11-02"},
		{"--config", d.cfgPath, "--from", "2026-11-01"},
		{"--config", d.cfgPath, "--from", "2026-11-03", "--to", "2026-11-02"},
		{"--config", d.cfgPath, "--from", "2025-11-01", "--to", "2026-11-02"},
		{"--config", d.cfgPath, "--from", "1 Nov", "--to", "2026-11-02"},
		{"--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-02", "--by", "week"},
		{"--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-02", "--format", "xml"},
		{"--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-02", "--k", "4"},
		{"--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-02", "--chart", "out.gif"},
		{"--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-02", "extra"},
	} {
		if _, err := runAggregates(args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}

func TestAggregatesEmptyStore(t *testing.T) {
	d := newAuditDeployment(t)
	_, statErr := os.Stat(d.dbPath)
	out, err := runAggregates("--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-05")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "no aggregates") {
		t.Fatalf("output on a fresh deployment:\n%s", out)
	}
	if _, err := os.Stat(d.dbPath); errors.Is(statErr, os.ErrNotExist) && err == nil {
		t.Fatal("the command created the store file")
	}
}

func TestAggregatesStoreLockedByServe(t *testing.T) {
	d := newAuditDeployment(t)
	d.putAggregates(t)
	st, err := boltstore.Open(d.dbPath) // as a running serve holds it
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = runAggregates("--config", d.cfgPath, "--from", "2026-11-01", "--to", "2026-11-05")
	if err == nil || !strings.Contains(err.Error(), "sealgate serve running") {
		t.Fatalf("aggregates while the store is held: %v", err)
	}
}
