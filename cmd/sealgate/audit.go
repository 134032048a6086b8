package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/store"
)

// cmdAudit is `sealgate audit verify|checkpoint`.
//
//	sealgate audit verify --config FILE [--checkpoint LINE | --checkpoint-file FILE]
//	sealgate audit checkpoint --config FILE
//
// verify checks the whole hash chain (and, given a checkpoint published
// earlier, that the log still holds it: that catches entries deleted at the
// end), prints the report and, if the log is intact, the verified head as a
// checkpoint line to publish. It fails (exit 1) naming the first problem.
// checkpoint prints only that line, and refuses for a log that fails
// verification: a published checkpoint vouches for everything up to it.
func cmdAudit(args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("%w: want a subcommand: sealgate audit verify|checkpoint --config FILE", errUsage)
	}
	switch sub, rest := args[0], args[1:]; sub {
	case "verify":
		return cmdAuditVerify(rest, stdout)
	case "checkpoint":
		return cmdAuditCheckpoint(rest, stdout)
	default:
		return fmt.Errorf("%w: unknown subcommand %q: want verify or checkpoint", errUsage, sub)
	}
}

func cmdAuditVerify(args []string, stdout io.Writer) error {
	fs := newFlags("audit verify")
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	cpLine := fs.String("checkpoint", "", "a checkpoint line published earlier, to check the log still holds it")
	cpFile := fs.String("checkpoint-file", "", "file whose last non-blank line is a checkpoint published earlier")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: --config FILE is required", errUsage)
	}
	if *cpLine != "" && *cpFile != "" {
		return fmt.Errorf("%w: give --checkpoint or --checkpoint-file, not both", errUsage)
	}
	var cp *audit.Checkpoint
	switch {
	case *cpLine != "":
		c, err := audit.ParseCheckpoint(*cpLine)
		if err != nil {
			return fmt.Errorf("%w: --checkpoint: %v", errUsage, err)
		}
		cp = &c
	case *cpFile != "":
		c, err := readCheckpointFile(*cpFile)
		if err != nil {
			return err
		}
		cp = &c
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	b, note, closeFn, err := openAuditBackend(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	if note != "" {
		fmt.Fprintln(stdout, note)
	}
	rep, err := audit.Verify(ctx, b, cp)
	var ve *audit.VerifyError
	if err != nil && !errors.As(err, &ve) {
		return err // the store failed, not the log
	}
	fmt.Fprint(stdout, rep.String())
	if err != nil {
		return fmt.Errorf("audit log fails verification (%d problem(s)), first: %w", len(rep.Problems), err)
	}
	fmt.Fprintln(stdout, "ok: the log verifies; its head, to publish:")
	fmt.Fprintln(stdout, headCheckpoint(rep).String())
	return nil
}

func cmdAuditCheckpoint(args []string, stdout io.Writer) error {
	fs := newFlags("audit checkpoint")
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: --config FILE is required", errUsage)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	b, _, closeFn, err := openAuditBackend(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	// Only a verified head may be published (see audit.Log.Checkpoint), and
	// the head printed is the one verified, not one read afterwards.
	rep, err := audit.Verify(ctx, b, nil)
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return fmt.Errorf("refusing to print a checkpoint for a log that fails verification (run sealgate audit verify): %w", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, headCheckpoint(rep).String())
	return nil
}

// headCheckpoint is the head Verify read, stamped with the time it was read.
func headCheckpoint(rep audit.Report) audit.Checkpoint {
	return audit.Checkpoint{Seq: rep.Head.Seq, Hash: rep.Head.Hash, Time: time.Now().UTC().Truncate(time.Second)}
}

// readCheckpointFile parses the last non-blank line of path, so that a file
// to which each published checkpoint is appended can be given as is.
func readCheckpointFile(path string) (audit.Checkpoint, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("--checkpoint-file: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	c, err := audit.ParseCheckpoint(lines[len(lines)-1])
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("--checkpoint-file %s: last line: %w", path, err)
	}
	return c, nil
}

// cmdReport is `sealgate report --config FILE --month YYYY-MM [--json]`: the
// transparency report (counts only) of one calendar month, UTC. It refuses a
// log that fails verification (audit.Summarize).
func cmdReport(args []string, stdout io.Writer) error {
	fs := newFlags("report")
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	month := fs.String("month", "", "calendar month YYYY-MM (UTC)")
	asJSON := fs.Bool("json", false, "write JSON instead of a text table")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: --config FILE is required", errUsage)
	}
	if *month == "" {
		return fmt.Errorf("%w: --month YYYY-MM is required", errUsage)
	}
	from, to, err := audit.MonthRange(*month)
	if err != nil {
		return fmt.Errorf("%w: --month: %v", errUsage, err)
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	ctx := context.Background()
	b, _, closeFn, err := openAuditBackend(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeFn()
	t, err := audit.Summarize(ctx, b, from, to)
	if err != nil {
		return err
	}
	if *asJSON {
		out, err := json.MarshalIndent(t, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", out)
		return err
	}
	return t.WriteText(stdout)
}

// openAuditBackend opens the configured store for reading its audit log.
//
// A file store that does not exist yet is not created (these commands only
// read): it is reported as an empty log, with a note saying so. A file store
// held by a running `sealgate serve` cannot be opened (bbolt allows one
// process at a time); the error says so.
func openAuditBackend(ctx context.Context, cfg *config.Config) (b audit.Backend, note string, closeFn func(), err error) {
	if cfg.Store.Kind != "postgres" {
		p := cfg.Path(cfg.Store.Path)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return emptyLog{}, fmt.Sprintf("store file %s does not exist yet: the audit log is empty", p), func() {}, nil
		}
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, "", nil, fmt.Errorf("%w (is sealgate serve running on this store? the file store can be opened by one process at a time: stop serve, run this, start serve again)", err)
		}
		return nil, "", nil, err
	}
	b, err = auditBackend(st)
	if err != nil {
		st.Close()
		return nil, "", nil, err
	}
	return b, "", func() { st.Close() }, nil
}

// auditBackend returns st's audit log.
func auditBackend(st store.Store) (audit.Backend, error) {
	b, ok := st.(audit.Backend)
	if !ok {
		return nil, fmt.Errorf("store %T keeps no audit log", st)
	}
	return b, nil
}

// emptyLog is the audit log of a file store that does not exist yet.
type emptyLog struct{}

func (emptyLog) AppendAudit(context.Context, audit.Entry) error {
	return errors.New("append audit: no store")
}

func (emptyLog) LastAudit(context.Context) (audit.Entry, bool, error) {
	return audit.Entry{}, false, nil
}

func (emptyLog) AuditEntries(context.Context, uint64, func(audit.Entry) error) error {
	return nil
}
