// Package testpg starts throwaway PostgreSQL clusters for tests.
//
// Start runs initdb and pg_ctl from the local PostgreSQL installation to
// bring up a private cluster on a free 127.0.0.1 port, with its data
// directory and unix socket in a new temporary directory, and tears it down
// (pg_ctl stop -m immediate, then removal of the directory) when the test
// ends. It never uses a server that is already running, such as a system
// PostgreSQL on port 5432.
//
// The binaries are looked for in $TESTPG_BINDIR, then in PATH, then in
// /usr/lib/postgresql/*/bin and /usr/pgsql-*/bin (newest version first).
// When none are found the test is skipped, unless the CI environment
// variable is set, in which case it fails: CI must install PostgreSQL.
//
// initdb refuses to run as root. When the test runs as root, the cluster
// belongs to the "postgres" system user and the binaries are run through
// runuser.
//
// The cluster trusts every local connection: it is for tests only.
package testpg

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// DBName is the database Start creates and its DSN names.
	DBName = "sealgate"

	superuser    = "postgres"
	startTimeout = 60 * time.Second
	startTries   = 3 // a free port can be taken by someone else before we bind it
	logTailBytes = 4000
)

// Start starts a new cluster, creates database DBName in it, and returns a
// DSN for it, like postgres://postgres@127.0.0.1:PORT/sealgate?sslmode=disable.
// The cluster is stopped and its files removed in t.Cleanup.
func Start(t testing.TB) (dsn string) {
	t.Helper()
	bin, err := findBinDir()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testpg: %v; CI must install PostgreSQL server binaries (initdb, pg_ctl)", err)
		}
		t.Skipf("testpg: skipping, PostgreSQL is not installed: %v (install the server binaries, or set TESTPG_BINDIR)", err)
	}

	c, err := newCluster(bin)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	t.Cleanup(func() {
		if err := c.destroy(); err != nil {
			t.Errorf("testpg: %v", err)
		}
	})

	if err := c.initdb(); err != nil {
		t.Fatalf("testpg: %v", err)
	}
	var startErr error
	for try := 0; try < startTries; try++ {
		if startErr = c.start(); startErr == nil {
			break
		}
		if !c.portTaken() {
			break
		}
	}
	if startErr != nil {
		t.Fatalf("testpg: %v\n--- server log (tail) ---\n%s", startErr, c.logTail())
	}

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	admin := c.dsn("postgres")
	if err := waitReady(ctx, admin); err != nil {
		t.Fatalf("testpg: server on port %d did not accept connections: %v\n--- server log (tail) ---\n%s", c.port, err, c.logTail())
	}
	if err := exec1(ctx, admin, "CREATE DATABASE "+pgx.Identifier{DBName}.Sanitize()); err != nil {
		t.Fatalf("testpg: create database: %v", err)
	}
	dataDirs.Store(c.port, c.dataDir())
	t.Cleanup(func() { dataDirs.Delete(c.port) })
	return c.dsn(DBName)
}

// dataDirs maps the port of each running cluster to its data directory.
var dataDirs sync.Map

// DataDir returns the data directory (heap files, WAL) of the cluster that
// dsn points at, so privacy tests can scan every byte PostgreSQL wrote.
func DataDir(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("testpg: parse DSN: %v", err)
	}
	port, _ := strconv.Atoi(u.Port())
	d, ok := dataDirs.Load(port)
	if !ok {
		t.Fatalf("testpg: no running cluster on port %d", port)
	}
	return d.(string)
}

// CreateDB creates a new, empty database with a unique name in the cluster
// that dsn points at (one started by Start) and returns a DSN for it. Tests
// that need many independent databases can share one cluster this way.
func CreateDB(t testing.TB, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("testpg: parse DSN: %v", err)
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		t.Fatalf("testpg: %v", err)
	}
	name := DBName + "_" + hex.EncodeToString(suffix[:])
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := exec1(ctx, dsn, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testpg: create database: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

type cluster struct {
	bin  string // directory holding initdb and pg_ctl
	base string // temporary directory: data/, server.log, the unix socket
	port int

	asUser *user.User // non-nil when running as root: run binaries as this user
	runas  string     // path of runuser when asUser is set

	started bool
}

func newCluster(bin string) (*cluster, error) {
	c := &cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(superuser)
		if err != nil {
			return nil, fmt.Errorf("running as root, initdb needs an unprivileged %q user: %w", superuser, err)
		}
		runas, err := exec.LookPath("runuser")
		if err != nil {
			return nil, fmt.Errorf("running as root, runuser is needed to run initdb as %q: %w", superuser, err)
		}
		c.asUser, c.runas = u, runas
	}
	// A short path: the unix socket path must fit in 107 bytes.
	base, err := os.MkdirTemp("", "testpg-")
	if err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	c.base = base
	if c.asUser != nil {
		uid, err1 := strconv.Atoi(c.asUser.Uid)
		gid, err2 := strconv.Atoi(c.asUser.Gid)
		if err := errors.Join(err1, err2); err != nil {
			_ = os.RemoveAll(base)
			return nil, fmt.Errorf("user %q: %w", superuser, err)
		}
		if err := os.Chown(base, uid, gid); err != nil {
			_ = os.RemoveAll(base)
			return nil, fmt.Errorf("chown temp dir: %w", err)
		}
	}
	return c, nil
}

func (c *cluster) dataDir() string { return filepath.Join(c.base, "data") }
func (c *cluster) logFile() string { return filepath.Join(c.base, "server.log") }

func (c *cluster) dsn(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// command builds a command running one of the cluster's binaries, as the
// postgres user when we are root.
func (c *cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asUser != nil {
		cmd = exec.CommandContext(ctx, c.runas, append([]string{"-u", c.asUser.Username, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Dir = c.base // readable by the postgres user, unlike the test's cwd perhaps
	cmd.Env = cleanEnv()
	return cmd
}

func (c *cluster) run(ctx context.Context, name string, args ...string) error {
	cmd := c.command(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (c *cluster) initdb() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return c.run(ctx, "initdb",
		"-D", c.dataDir(),
		"-U", superuser,
		"-A", "trust",
		"-E", "UTF8",
		"--no-locale",
		"--no-sync", // the throwaway cluster's files need not survive a crash of this machine
	)
}

func (c *cluster) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	opts := strings.Join([]string{
		"-c listen_addresses=127.0.0.1",
		"-p " + strconv.Itoa(port),
		"-c fsync=on",
		"-k " + c.base,
		"-c unix_socket_permissions=0700",
	}, " ")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c.started = true // even a failed start may leave a server to stop
	return c.run(ctx, "pg_ctl", "start",
		"-D", c.dataDir(),
		"-l", c.logFile(),
		"-w", "-t", strconv.Itoa(int(startTimeout/time.Second)),
		"-o", opts,
	)
}

// portTaken reports whether the last start failed because the port was in
// use, in which case another try with another port may succeed.
func (c *cluster) portTaken() bool {
	return strings.Contains(c.logTail(), "could not bind")
}

func (c *cluster) logTail() string {
	b, err := os.ReadFile(c.logFile())
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
	}
	return string(b)
}

// destroy stops the server if it was started and removes the directory.
func (c *cluster) destroy() error {
	var errs []error
	if c.started {
		if err := c.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(c.base); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", c.base, err))
	}
	return errors.Join(errs...)
}

func (c *cluster) stop() error {
	pid := c.postmasterPID()
	if pid == 0 {
		return nil // not running
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := c.run(ctx, "pg_ctl", "stop", "-D", c.dataDir(), "-m", "immediate", "-w")
	if err == nil {
		return nil
	}
	// Last resort: the postmaster we started, by its id. SIGQUIT is
	// PostgreSQL's immediate shutdown.
	if kerr := syscall.Kill(pid, syscall.SIGQUIT); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		return fmt.Errorf("stop server: %w; kill %d: %v", err, pid, kerr)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
	}
	return fmt.Errorf("stop server: %w; postmaster %d still running", err, pid)
}

// postmasterPID reads the server's pid from postmaster.pid, or returns 0.
func (c *cluster) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(c.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

func waitReady(ctx context.Context, dsn string) error {
	var last error
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attempt, dsn)
		if err == nil {
			err = conn.Ping(attempt)
			_ = conn.Close(attempt)
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func exec1(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return err
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cleanEnv is the environment minus libpq and server variables (PGDATA,
// PGPORT, PGHOST, ...), which could point the tools at another server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// findBinDir returns a directory holding both initdb and pg_ctl.
func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl"} {
			fi, err := os.Stat(filepath.Join(dir, name))
			if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("TESTPG_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("TESTPG_BINDIR=%s does not hold initdb and pg_ctl", dir)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	var candidates []string
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"} {
		m, _ := filepath.Glob(pattern)
		candidates = append(candidates, m...)
	}
	sort.SliceStable(candidates, func(i, j int) bool {
		return versionOf(candidates[i]) > versionOf(candidates[j])
	})
	for _, dir := range candidates {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found in PATH, /usr/lib/postgresql/*/bin or /usr/pgsql-*/bin")
}

// versionOf extracts the major version from .../postgresql/15/bin or
// /usr/pgsql-15/bin, or returns 0.
func versionOf(binDir string) float64 {
	parent := filepath.Base(filepath.Dir(binDir))
	parent = strings.TrimPrefix(parent, "pgsql-")
	v, err := strconv.ParseFloat(parent, 64)
	if err != nil {
		return 0
	}
	return v
}
