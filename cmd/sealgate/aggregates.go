package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/aggregates"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

// Size of the --chart image, in pixels.
const chartWidth, chartHeight = 1200, 600

// cmdAggregates is `sealgate aggregates`: the k-anonymous activity
// aggregates of a range of UTC days, read from the store.
//
//	sealgate aggregates --config FILE --from YYYY-MM-DD --to YYYY-MM-DD
//	        [--by hour|day] [--format table|json|csv] [--chart FILE.png|FILE.svg] [--k N]
//
// from and to are both included (at most 366 days). The publication is
// protected at k (at least redact.MinK; a k above the one the days were
// released with protects them again). With aggregates.noise set, the
// figures carry Laplace noise and each run spends privacy budget, as the
// API does. --chart also draws the message volume
// per team over time. Like the audit commands, it reads the file store
// directly, which it cannot while serve runs on it.
func cmdAggregates(args []string, stdout io.Writer) error {
	fs := newFlags("aggregates")
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	from := fs.String("from", "", "first day YYYY-MM-DD (UTC)")
	to := fs.String("to", "", "last day YYYY-MM-DD (UTC), included")
	by := fs.String("by", "day", "granularity: hour or day")
	format := fs.String("format", "table", "output: table, json or csv")
	chart := fs.String("chart", "", "also draw a chart of the message volume per team to FILE.png or FILE.svg")
	k := fs.Int("k", 0, "threshold: no figure about fewer than k people (default and least: aggregates.k of the configuration)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: --config FILE is required", errUsage)
	}
	if *from == "" || *to == "" {
		return fmt.Errorf("%w: --from YYYY-MM-DD and --to YYYY-MM-DD are required", errUsage)
	}
	q, err := aggregates.ParseQuery(*from, *to, *by)
	if err != nil {
		return fmt.Errorf("%w: %s", errUsage, strings.TrimPrefix(err.Error(), aggregates.ErrBadQuery.Error()+": "))
	}
	switch *format {
	case "table", "json", "csv":
	default:
		return fmt.Errorf("%w: --format must be table, json or csv, not %q", errUsage, *format)
	}
	if *k != 0 && *k < redact.MinK {
		return fmt.Errorf("%w: --k must be at least %d", errUsage, redact.MinK)
	}
	chartFormat := ""
	if *chart != "" {
		switch ext := strings.ToLower(filepath.Ext(*chart)); ext {
		case ".png", ".svg":
			chartFormat = ext[1:]
		default:
			return fmt.Errorf("%w: --chart must name a .png or .svg file", errUsage)
		}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	switch {
	case *k == 0:
		*k = cfg.Aggregates.K
	case *k < cfg.Aggregates.K:
		return fmt.Errorf("%w: --k %d is below the configured aggregates.k %d, which may only be raised", errUsage, *k, cfg.Aggregates.K)
	}

	ctx := context.Background()
	r, note, closeFn, err := openAggregatesReader(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	t, err := aggregates.Query(ctx, r, q, *k)
	if err != nil {
		return err
	}
	if st, ok := r.(store.Store); ok && cfg.Aggregates.Noise.Epsilon > 0 {
		// The same noise and the same budget as GET /v1/aggregates.
		noise, err := newNoise(cfg, st)
		if err != nil {
			return err
		}
		if t, err = noise(ctx, t); err != nil {
			return err
		}
	}
	if chartFormat != "" {
		var buf bytes.Buffer
		if err := aggregates.Chart(t, &buf, chartFormat, chartWidth, chartHeight); err != nil {
			return err
		}
		if err := os.WriteFile(*chart, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("--chart: %w", err)
		}
	}
	switch *format {
	case "json":
		return aggregates.WriteJSON(stdout, t)
	case "csv":
		return aggregates.WriteCSV(stdout, t)
	}
	if note != "" {
		fmt.Fprintln(stdout, note)
	}
	if err := aggregates.WriteTable(stdout, t); err != nil {
		return err
	}
	if chartFormat != "" {
		fmt.Fprintf(stdout, "chart written to %s\n", *chart)
	}
	return nil
}

// openAggregatesReader opens the configured store for reading its
// aggregates, as openAuditBackend does for the audit log: a file store that
// does not exist yet is not created (it has no aggregates, and the note
// says so), and one held by a running serve cannot be opened.
func openAggregatesReader(ctx context.Context, cfg *config.Config) (r aggregates.Reader, note string, closeFn func(), err error) {
	if cfg.Store.Kind != "postgres" {
		p := cfg.Path(cfg.Store.Path)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return noAggregates{}, fmt.Sprintf("store file %s does not exist yet: there are no aggregates", p), func() {}, nil
		}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, "", nil, fmt.Errorf("%w (is sealgate serve running on this store? the file store can be opened by one process at a time: stop serve, run this, start serve again)", err)
		}
		return nil, "", nil, err
	}
	r, ok := st.(aggregates.Reader)
	if !ok {
		st.Close()
		return nil, "", nil, fmt.Errorf("store %T keeps no aggregates", st)
	}
	return r, "", func() { st.Close() }, nil
}

// noAggregates is the aggregates of a file store that does not exist yet.
type noAggregates struct{}

func (noAggregates) Buckets(context.Context, int64, int64) ([]redact.Bucket, error) { return nil, nil }
