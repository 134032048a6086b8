package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/internal/testredis"
)

// TestPrivacyScanCommand: sealgate privacy-scan finds a planted canary in a
// data directory, in a real Redis server's keys and values (also base64
// encoded), and in a URL's body; it exits 0 when there is none, 1 on a hit,
// and 2 on a bad command line. It never prints the key that held the hit.
func TestPrivacyScanCommand(t *testing.T) {
	const canary = "CANARY-scan-9a8b7c6d"
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "clean.db"), bytes.Repeat([]byte{0x5a}, 4096), 0o600)
	rs := testredis.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	defer rdb.Close()
	ctx := context.Background()
	rdb.Set(ctx, "sealgate:order:clean", "nothing to see", 0)
	metrics := "sealgate_ingest_events_total{outcome=\"stored\"} 3\n"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(metrics)) }))
	defer srv.Close()

	scan := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(append([]string{"privacy-scan"}, args...), &out, &errb)
		return out.String() + errb.String(), code
	}
	all := []string{"--canary", canary, "--redis", rs.Addr(), "--url", srv.URL + "/metrics", dir}
	if out, code := scan(all...); code != 0 || !strings.Contains(out, ": 0 hits") || !strings.Contains(out, "1 Redis key(s)") {
		t.Fatalf("clean: exit %d\n%s", code, out)
	}

	// A canary in a file, one base64-encoded in a Redis value, one in a key
	// name, one in the URL's body: four hits.
	os.WriteFile(filepath.Join(dir, "spool.log"), []byte("msg="+canary), 0o600)
	rdb.Set(ctx, "sealgate:order:x", base64.StdEncoding.EncodeToString([]byte(`{"message":"`+canary+`"}`)), 0)
	rdb.Set(ctx, "leak:"+canary, "1", 0)
	metrics += "x{l=\"" + canary + "\"} 1\n"
	out, code := scan(all...)
	if code != 1 || !strings.Contains(out, ": 4 hits") {
		t.Fatalf("dirty: exit %d\n%s", code, out)
	}
	for _, want := range []string{"spool.log@4", "(value)", "(name)", "/metrics@", "base64(" + canary + ")"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "leak:") {
		t.Errorf("the key holding a hit is printed:\n%s", out)
	}

	// Canaries from a file.
	cf := filepath.Join(t.TempDir(), "canaries.txt")
	os.WriteFile(cf, []byte("# planted 2026-12-03\n"+canary+"\n"), 0o600)
	if out, code := scan("--canaries", cf, dir); code != 1 || !strings.Contains(out, ": 1 hits") {
		t.Fatalf("--canaries: exit %d\n%s", code, out)
	}

	for name, args := range map[string][]string{
		"no canary":    {dir},
		"short canary": {"--canary", "abc", dir},
		"nothing":      {"--canary", canary},
		"missing file": {"--canaries", filepath.Join(dir, "nope"), dir},
		"unknown flag": {"--canary", canary, "--bogus", dir},
	} {
		if out, code := scan(args...); code == 0 {
			t.Errorf("%s: exit 0\n%s", name, out)
		}
	}
	if _, code := scan("--canary", canary); code != 2 {
		t.Errorf("nothing to scan: exit %d, want 2", code)
	}
}
