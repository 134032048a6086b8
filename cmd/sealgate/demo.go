package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/aggregates"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/internal/synth"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/unseal"
)

// cmdDemo runs the real pipeline in one process: gateway keys and five
// approver slots in memory, an in-process Redis-protocol server, the
// embedded file store in a temporary directory, and the real ingest API on
// a loopback port fed with synthetic posts full of canaries.
func cmdDemo(args []string, stdout io.Writer) error {
	fs := newFlags("demo")
	keep := fs.String("dir", "", "keep the demo's data in this directory (default: a temporary one, removed)")
	posts := fs.Int("posts", 2000, "number of synthetic events to ingest")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *posts < 1 || *posts > 1_000_000 {
		return fmt.Errorf("%w: --posts %d: want 1..1000000", errUsage, *posts)
	}
	ctx := context.Background()
	dir := *keep
	if dir == "" {
		d, err := os.MkdirTemp("", "sealgate-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	start := time.Now()

	// Keys: the gateway's own, and five approver slots with the PQ hybrid KEM.
	keys, err := crypto.NewGatewayKeys()
	if err != nil {
		return err
	}
	roles := defaultRoles
	var ids []*crypto.HPKEIdentity
	var rcps []crypto.Recipient
	for range roles {
		id, err := crypto.GenerateSlotKey(crypto.KEMMLKEM768X25519)
		if err != nil {
			return err
		}
		ids = append(ids, id)
		rcps = append(rcps, id.Recipient())
	}
	const quorum = 3
	say("== sealgate demo ==")
	say("approver slots: %s; quorum %d of %d (ML-KEM-768 + X25519)", strings.Join(roles, ", "), quorum, len(roles))

	// Redis: an in-process server speaking the Redis protocol.
	mr, err := miniredis.Run()
	if err != nil {
		return fmt.Errorf("in-process redis: %w", err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("in-process redis: %w", err)
	}

	// Store and gateway.
	dbPath := filepath.Join(dir, "sealgate.db")
	st, err := boltstore.Open(dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: rcps, Quorum: quorum, Grace: 2 * time.Hour})
	if err != nil {
		return err
	}
	cfg := config.Defaults()
	cfg.IngestToken = randomToken()
	var logBuf bytes.Buffer
	log := slog.New(redact.NewLogHandler(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	// Synthetic traffic: 12 employees in 2 teams, 6 channels, the 3 days
	// before today (an order's window must lie in the past). The
	// aggregates count from the first of them, as if serve had run then.
	const days = 3
	day0 := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -days)
	rt, err := newRuntime(keys, sealer, st, &cfg, log, day0)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rt.serve(sctx, ln, nil) }()
	defer func() { stop(); <-done }()
	url := "http://" + ln.Addr().String() + "/v1/ingest"

	corpus := synth.New(uint64(time.Now().UnixNano()), 12, 6)
	events := corpus.Events(*posts, day0, days)
	batches := synth.Batches(events, 100)
	say("ingesting %d events (posts, edits, deletes) of %d employees over %d days in %d batches via POST /v1/ingest ...", len(events), len(corpus.Employees), days, len(batches))
	var stored, dup int
	for _, b := range batches {
		r, err := postBatch(url, cfg.IngestToken, b)
		if err != nil {
			return err
		}
		stored += r["stored"]
		dup += r["duplicate"]
	}
	r, err := postBatch(url, cfg.IngestToken, batches[0])
	if err != nil {
		return err
	}
	say("stored %d records (%d events were repeats of stored versions); re-sending batch 1 stored %d more", stored, dup, r["stored"])

	stats, err := st.Stats(ctx)
	if err != nil {
		return err
	}
	say("store: %d records, %d key records, %d epochs, %d bytes of ciphertext (%.0f bytes/record)",
		stats.Records, stats.KeyRecords, stats.Epochs, stats.Bytes, float64(stats.Bytes)/float64(max(stats.Records, 1)))

	// Privacy: nothing in clear.
	mrDump := []byte(mr.Dump())
	canaries := corpus.Canaries()
	hits, scanned, err := privacyscan.Dir(dir, canaries)
	if err != nil {
		return err
	}
	hits = append(hits, privacyscan.Bytes("redis", mrDump, canaries)...)
	hits = append(hits, privacyscan.Bytes("log", logBuf.Bytes(), canaries)...)
	say("privacy scan: %d canaries and ids searched in %d bytes of store files, the Redis dataset and %d bytes of logs: %d hits", len(canaries), scanned, logBuf.Len(), len(hits))
	for _, h := range hits {
		say("  HIT %s", h)
	}

	// Escrow: three slots together rebuild one employee-day key; two cannot.
	alice, day := corpus.Employees[0], crypto.Day(day0.AddDate(0, 0, 1))
	tag := keys.Tag(alice, day)
	krs, err := st.KeyRecords(ctx, tag)
	if err != nil {
		return err
	}
	say("employee 1 on %s: %d key record(s); sealed records are found by an opaque tag, not by name", day, len(krs))
	n, err := openWithSlots(ctx, st, keys, ids, alice, day, []int{0, 1, 2})
	if err != nil {
		return fmt.Errorf("demo unseal with 3 slots: %w", err)
	}
	say("slots %s, %s, %s together: opened %d records of employee 1 on %s, and only those", roles[0], roles[1], roles[2], n, day)
	if _, err := openWithSlots(ctx, st, keys, ids, alice, day, []int{0, 3}); err == nil {
		return errors.New("demo: two slots opened a day key")
	} else {
		say("slots %s and %s alone: refused (%v)", roles[0], roles[3], err)
	}
	if len(hits) > 0 {
		return fmt.Errorf("privacy scan found %d hits", len(hits))
	}
	if err := demoAggregates(ctx, say, stdout, rt.stats, st, day0, days); err != nil {
		return err
	}
	if err := demoOrder(ctx, say, log, dir, dbPath, st, rdb, keys, ids, roles, quorum, alice, day0, day0.AddDate(0, 0, 1), canaries); err != nil {
		return err
	}
	say("done in %s.", time.Since(start).Round(time.Millisecond))
	return nil
}

// demoAggregates releases the demo's days to the store and shows what the
// metadata side keeps: counts of groups of at least k people.
func demoAggregates(ctx context.Context, say func(string, ...any), stdout io.Writer, stats *statistics, st *boltstore.Store, day0 time.Time, days int) error {
	n, err := stats.agg.FlushTo(ctx, time.Now(), st)
	if err != nil {
		return err
	}
	say("aggregates: the %d days are released to the store as %d k-anonymous cells (k = %d); the only clear-text metadata kept", days, n, stats.k)
	for _, by := range []redact.Span{redact.Hour, redact.Day} {
		t, err := aggregates.Query(ctx, st, redact.Query{From: day0, To: day0.AddDate(0, 0, days), By: by}, stats.k)
		if err != nil {
			return err
		}
		shown := 0
		for _, r := range t.Rows {
			if !r.Suppressed {
				shown++
			}
		}
		say("  by %s: %d cells shown, %d suppressed (fewer than %d people, or computable from the others)", by, shown, len(t.Rows)-shown, stats.k)
	}
	first, err := aggregates.Query(ctx, st, redact.Query{From: day0, To: day0.AddDate(0, 0, 1), By: redact.Day}, stats.k)
	if err != nil {
		return err
	}
	return aggregates.WriteTable(stdout, first)
}

func postBatch(url, token string, body []byte) (map[string]int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]int
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("ingest: %s: %s", resp.Status, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("ingest answer: %w", err)
	}
	return out, nil
}

// openWithSlots rebuilds every day key of (employee, day) from the given
// slots' shares and opens that employee-day's records.
func openWithSlots(ctx context.Context, st store.Store, keys *crypto.GatewayKeys, ids []*crypto.HPKEIdentity, employee, day string, slots []int) (int, error) {
	var ss []unseal.Slot
	for _, i := range slots {
		ss = append(ss, unseal.Slot{Index: i, Identity: ids[i]})
	}
	d := unseal.Day{Employee: employee, Day: day, Tag: keys.Tag(employee, day)}
	dks, err := unseal.DayKeys(ctx, st, keys.Verifier(), d, ss)
	if err != nil {
		return 0, err
	}
	defer unseal.Wipe(dks)
	n := 0
	err = unseal.Records(ctx, st, d, dks, func(ev *crypto.Event) error {
		if ev.Employee != employee || crypto.Day(ev.Time) != day {
			return fmt.Errorf("opened a record of another employee-day")
		}
		n++
		return nil
	})
	return n, err
}
