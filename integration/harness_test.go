// Package integration runs the sealgate binary end to end against real
// redis-server and PostgreSQL processes started by the tests on loopback
// ports. TestMain builds the binary once.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
)

var binary string

const passphrase = "integration-test-passphrase"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sealgate-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sealgate")
	build := exec.Command("go", "build", "-o", binary, "../cmd/sealgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sealgate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deployment is a directory written by `sealgate init`.
type deployment struct {
	dir  string
	cfg  *config.Config
	keys *crypto.GatewayKeys
}

func initDeployment(t *testing.T) *deployment {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "deploy")
	cmd := exec.Command(binary, "init", "--dir", dir, "--approvers", "5", "--quorum", "3")
	cmd.Env = append(os.Environ(), "SEALGATE_PASSPHRASE="+passphrase)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sealgate init: %v\n%s", err, out)
	}
	cfg, err := config.Load(filepath.Join(dir, "sealgate.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(cfg.Path(cfg.GatewayKeys))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys, err := crypto.ReadGatewayKeys(f)
	if err != nil {
		t.Fatal(err)
	}
	return &deployment{dir: dir, cfg: cfg, keys: keys}
}

// server is a running `sealgate serve`.
type server struct {
	cmd    *exec.Cmd
	addr   string
	log    *lockedBuffer
	exited chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs sealgate serve with env overrides and waits for /readyz.
func (d *deployment) startServer(t *testing.T, env ...string) *server {
	t.Helper()
	s := &server{addr: freeAddr(t), log: &lockedBuffer{}, exited: make(chan error, 1)}
	s.cmd = exec.Command(binary, "serve", "--config", filepath.Join(d.dir, "sealgate.yaml"))
	s.cmd.Env = append(append(os.Environ(), "SEALGATE_LISTEN_ADMIN="+s.addr, "SEALGATE_LOG_LEVEL=debug"), env...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("sealgate serve exited: %v\n%s", err, s.log.Bytes())
		default:
		}
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("sealgate serve not ready:\n%s", s.log.Bytes())
	return nil
}

func (s *server) kill() {
	if s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
		s.exited <- nil
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		s.exited <- err
		if err != nil {
			t.Fatalf("sealgate serve exited with %v\n%s", err, s.log.Bytes())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sealgate serve did not stop on SIGTERM")
	}
}

// post sends one ingest body and returns the status and decoded answer.
func (s *server) post(ctx context.Context, token string, body []byte) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.addr+"/v1/ingest", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out, nil
}

func (s *server) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + s.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return b
}

func hasAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func httpStatus(code int, ans map[string]any, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d %v", code, ans)
}
