// Package testredis starts a real redis-server for one test, on a free
// loopback port chosen here, and stops it when the test ends.
//
// The machine's own Redis (127.0.0.1:6379) is never used: every server is a
// child process of the test binary with its own port, data directory
// (t.TempDir()) and log file. Nothing is persisted automatically (save "" and
// appendonly no); Dump writes an RDB snapshot on demand so privacy tests can
// scan exactly what Redis holds. RDB compression is turned off so that a
// plaintext value stored in Redis shows up verbatim in the dump (with LZF
// compression a leaked value longer than 20 bytes could hide from a scan).
//
// Without the redis-server binary, Start fails the test when the CI
// environment variable is set (.ci/run installs the package) and skips it
// otherwise.
package testredis

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/internal/freeport"
)

const (
	dbFilename   = "dump.rdb"
	maxAttempts  = 8
	readyTimeout = 20 * time.Second
	stopGrace    = 5 * time.Second
)

// errPortInUse means redis-server could not bind its port, or another server
// answered on it: the caller should retry with a new port.
var errPortInUse = errors.New("port already in use")

// Server is one running redis-server owned by a test.
type Server struct {
	addr    string
	dir     string
	logPath string
	outPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has exited and been reaped
	client  *redis.Client

	stopOnce sync.Once
}

// Start runs a redis-server for t and returns once it answers PING. The
// server is shut down (SHUTDOWN NOSAVE, then SIGKILL if needed) and its
// client closed when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("testredis: redis-server is not installed (not in PATH nor /usr/bin); " +
				"CI requires it: install the Debian package redis-server (.ci/run does)")
		}
		t.Skip("testredis: redis-server is not installed; skipping (install the Debian package redis-server to run this test)")
	}
	dir := t.TempDir()
	var errs []error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		port, err := freeport.Get()
		if err != nil {
			t.Fatalf("testredis: %v", err)
		}
		s, err := launch(bin, dir, port)
		if err == nil {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("testredis: redis-server %s log (tail):\n%s", s.addr, s.logTail())
				}
				s.Stop()
				s.client.Close()
			})
			return s
		}
		errs = append(errs, err)
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	t.Fatalf("testredis: could not start redis-server: %v", errors.Join(errs...))
	return nil
}

// binary returns the path of redis-server, or "" if it is not installed.
func binary() string {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// launch starts redis-server on port and waits until it answers. It returns
// an error wrapping errPortInUse when the port turned out to be taken.
func launch(bin, dir string, port int) (*Server, error) {
	p := strconv.Itoa(port)
	s := &Server{
		addr:    "127.0.0.1:" + p,
		dir:     dir,
		logPath: filepath.Join(dir, "redis-"+p+".log"),
		outPath: filepath.Join(dir, "redis-"+p+".out"),
		exited:  make(chan struct{}),
	}
	// Anything redis-server prints before its log file is open (bad
	// arguments, for one) goes to stdout/stderr: keep it in a file.
	out, err := os.Create(s.outPath)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy of the descriptor
	s.cmd = exec.Command(bin,
		"--port", p,
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
		"--rdbcompression", "no",
		"--dir", dir,
		"--dbfilename", dbFilename,
		"--logfile", s.logPath,
		"--loglevel", "notice",
	)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", bin, err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	// Probe with short timeouts, so that a port taken by something that
	// accepts but never answers is noticed quickly.
	probe := redis.NewClient(&redis.Options{
		Addr:            s.addr,
		DialTimeout:     500 * time.Millisecond,
		ReadTimeout:     500 * time.Millisecond,
		WriteTimeout:    500 * time.Millisecond,
		MaxRetries:      -1,
		PoolSize:        1,
		DisableIdentity: true,
	})
	defer probe.Close()

	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.exited:
			msg := s.logTail()
			if strings.Contains(msg, "Address already in use") {
				return nil, fmt.Errorf("redis-server on %s: %w", s.addr, errPortInUse)
			}
			return nil, fmt.Errorf("redis-server on %s exited before answering PING (%s):\n%s", s.addr, s.cmd.ProcessState, msg)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := probe.Ping(ctx).Err()
		var pid int
		if err == nil {
			pid, err = serverPID(ctx, probe)
		}
		cancel()
		if err == nil {
			if pid != s.cmd.Process.Pid {
				// Another redis-server took the port between freeport.Get
				// and our bind; ours fails to bind and exits.
				s.kill()
				return nil, fmt.Errorf("redis-server on %s: pid %d answered, not ours (%d): %w",
					s.addr, pid, s.cmd.Process.Pid, errPortInUse)
			}
			s.client = newClient(s.addr)
			return s, nil
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %s: %v\n%s", s.addr, readyTimeout, err, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            addr,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     5 * time.Second,
		WriteTimeout:    5 * time.Second,
		MaxRetries:      -1,   // a test should see an outage, not retries
		DisableIdentity: true, // CLIENT SETINFO is Redis 7.2+
	})
}

// serverPID returns process_id from INFO server.
func serverPID(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// Addr is the server's host:port (always on 127.0.0.1, never 6379).
func (s *Server) Addr() string { return s.addr }

// Client is a client connected to the server. It is closed when the test
// ends, not by Stop, so a test can watch its requests fail during an outage.
func (s *Server) Client() *redis.Client { return s.client }

// Dump saves the dataset (SAVE) and returns the bytes of the RDB file, so a
// privacy test can scan everything Redis holds. Values are stored
// uncompressed. It fails the test if the server is stopped.
func (s *Server) Dump(t testing.TB) []byte {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("testredis: Dump: redis-server %s is stopped", s.addr)
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.client.Save(ctx).Err(); err != nil {
		t.Fatalf("testredis: SAVE on %s: %v", s.addr, err)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, dbFilename))
	if err != nil {
		t.Fatalf("testredis: read RDB snapshot: %v", err)
	}
	if !bytes.HasPrefix(b, []byte("REDIS")) {
		t.Fatalf("testredis: %s is not an RDB file", filepath.Join(s.dir, dbFilename))
	}
	return b
}

// Stop shuts the server down now, to simulate an outage mid-test: SHUTDOWN
// NOSAVE, then SIGKILL if it has not exited within a few seconds. It returns
// once the process is gone, and is safe to call more than once (the test's
// cleanup calls it too).
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		admin := newClient(s.addr)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = admin.ShutdownNoSave(ctx).Err() // success closes the connection: an error here is normal
		cancel()
		admin.Close()
		select {
		case <-s.exited:
		case <-time.After(stopGrace):
			s.kill()
		}
	})
}

// kill sends SIGKILL and waits for the process to be reaped.
func (s *Server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// logTail returns the end of the server's log and console output.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, p := range []string{s.outPath, s.logPath} {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		if len(data) > 4096 {
			data = data[len(data)-4096:]
		}
		b.Write(data)
	}
	return b.String()
}
