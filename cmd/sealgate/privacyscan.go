package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/internal/privacyscan"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// cmdPrivacyScan is `sealgate privacy-scan`: it searches what a deployment
// wrote — the data directory, spool, log files, a Redis server's whole
// dataset, /metrics — for canary strings that must never be there in
// clear (invariant 1), also hex-, base64- and UTF-16-encoded.
//
//	sealgate privacy-scan --canary S [--canary S …] [--canaries FILE]
//	        [--redis ADDR] [--url URL …] [PATH …]
//
// A DPO or auditor plants canaries (post them in Mattermost, let them be
// captured), then runs this. Hits are printed with where and at which
// offset; any hit exits 1. Redis' password comes from
// SEALGATE_REDIS_PASSWORD.
func cmdPrivacyScan(args []string, stdout io.Writer) error {
	fs := newFlags("privacy-scan")
	var canaries, urls stringList
	fs.Var(&canaries, "canary", "a string that must not appear (repeatable)")
	file := fs.String("canaries", "", "a file with one canary per line")
	rdAddr := fs.String("redis", "", "scan every key and value of the Redis server at host:port")
	fs.Var(&urls, "url", "scan the body of GET URL, e.g. http://127.0.0.1:8081/metrics (repeatable)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	paths := fs.Args()
	if *file != "" {
		more, err := readLines(*file)
		if err != nil {
			return fmt.Errorf("--canaries: %w", err)
		}
		canaries = append(canaries, more...)
	}
	for _, c := range canaries {
		if len(c) < 6 {
			return fmt.Errorf("%w: canary %q is shorter than 6 characters: it would match by chance", errUsage, c)
		}
	}
	if len(canaries) == 0 {
		return fmt.Errorf("%w: no canary given (--canary or --canaries)", errUsage)
	}
	if len(paths) == 0 && *rdAddr == "" && len(urls) == 0 {
		return fmt.Errorf("%w: nothing to scan: give paths, --redis or --url", errUsage)
	}

	var hits []privacyscan.Hit
	var scanned int64
	for _, p := range paths {
		h, n, err := privacyscan.Dir(p, canaries)
		if err != nil {
			return err
		}
		hits, scanned = append(hits, h...), scanned+n
	}
	keys := 0
	if *rdAddr != "" {
		h, n, k, err := scanRedis(*rdAddr, os.Getenv("SEALGATE_REDIS_PASSWORD"), privacyscan.NewScanner(canaries))
		if err != nil {
			return err
		}
		hits, scanned, keys = append(hits, h...), scanned+n, k
	}
	for _, u := range urls {
		body, err := fetch(u)
		if err != nil {
			return err
		}
		hits, scanned = append(hits, privacyscan.Bytes(u, body, canaries)...), scanned+int64(len(body))
	}
	for _, h := range hits {
		fmt.Fprintf(stdout, "HIT %s\n", h)
	}
	fmt.Fprintf(stdout, "privacy scan: %d canaries (and their hex, base64 and UTF-16 forms) in %d bytes of %d path(s), %d Redis key(s), %d URL(s): %d hits\n",
		len(canaries), scanned, len(paths), keys, len(urls), len(hits))
	if len(hits) > 0 {
		return fmt.Errorf("%d hits", len(hits))
	}
	return nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// scanRedis scans every key name and the DUMP serialization of every
// value, which is what an RDB snapshot holds of it.
func scanRedis(addr, password string, sc *privacyscan.Scanner) ([]privacyscan.Hit, int64, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Password: password})
	defer rdb.Close()
	var hits []privacyscan.Hit
	var scanned int64
	keys := 0
	it := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for it.Next(ctx) {
		k := it.Val()
		keys++
		v, err := rdb.Dump(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue // expired meanwhile
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("redis %s: dump key %d: %w", addr, keys, err)
		}
		where := fmt.Sprintf("redis key #%d", keys)
		hits = append(hits, sc.Bytes(where+" (name)", []byte(k))...)
		hits = append(hits, sc.Bytes(where+" (value)", []byte(v))...)
		scanned += int64(len(k) + len(v))
	}
	if err := it.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("redis %s: %w", addr, err)
	}
	return hits, scanned, keys, nil
}

func fetch(u string) ([]byte, error) {
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Get(u)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("--url %s: %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 1<<30))
}
