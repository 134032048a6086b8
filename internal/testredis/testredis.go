// Package testredis starts a real redis-server for a test on a free loopback
// port and stops it when the test ends. A system Redis on 6379 is never used.
package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one running redis-server.
type Server struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	client *redis.Client
	exited chan struct{}
}

// Start runs redis-server for t. Without the binary it fails under CI (the CI
// script must install it) and skips elsewhere.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed; .ci/run installs the redis-server package")
		}
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		s, err := start(bin, dir)
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		lastErr = err
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func start(bin, dir string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, exited: make(chan struct{})}
	s.cmd = exec.Command(bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port),
		"--save", "", "--appendonly", "no",
		"--dir", dir, "--dbfilename", "dump.rdb",
		"--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)))
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.cmd.Wait(); close(s.exited) }()
	s.client = redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)))
			s.client.Close()
			return nil, fmt.Errorf("redis-server exited (port %d): %s", port, log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := s.client.Ping(ctx).Err()
		cancel()
		if err == nil {
			return s, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return nil, fmt.Errorf("redis-server on port %d did not answer PING", port)
}

// Addr is host:port.
func (s *Server) Addr() string { return s.addr }

// Client is a client for the server, closed by Stop.
func (s *Server) Client() *redis.Client { return s.client }

// Dump saves the dataset and returns the RDB file's bytes, for scanning.
func (s *Server) Dump(t testing.TB) []byte {
	t.Helper()
	if err := s.client.Save(context.Background()).Err(); err != nil {
		t.Fatalf("redis SAVE: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(s.dir, "dump.rdb"))
	if err != nil {
		t.Fatalf("read redis dump: %v", err)
	}
	return b
}

// Stop shuts the server down (an outage, when called mid-test). It is
// idempotent.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		s.client.Close()
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.client.ShutdownNoSave(ctx)
	cancel()
	select {
	case <-s.exited:
	case <-time.After(3 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.client.Close()
}
