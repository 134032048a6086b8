package testredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartSetGetDumpStop(t *testing.T) {
	s := Start(t)
	ctx := context.Background()
	c := s.Client()

	host, port, err := net.SplitHostPort(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" || port == "6379" {
		t.Fatalf("Addr %q: want a non-default port on 127.0.0.1", s.Addr())
	}
	pid, err := serverPID(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if pid != s.cmd.Process.Pid {
		t.Fatalf("client talks to pid %d, started pid %d", pid, s.cmd.Process.Pid)
	}

	// Persistence is off and RDB compression too (so dumps show plaintext).
	for param, want := range map[string]string{"save": "", "appendonly": "no", "rdbcompression": "no", "bind": "127.0.0.1"} {
		got, err := c.ConfigGet(ctx, param).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got[param] != want {
			t.Errorf("CONFIG GET %s = %q, want %q", param, got[param], want)
		}
	}

	if err := c.Set(ctx, "short", "VALUE-IN-DUMP", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Long and highly compressible: LZF would hide it in a compressed dump.
	long := "CANARY-" + strings.Repeat("abcabcabc", 40)
	if err := c.HSet(ctx, "h", "field", long).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "short").Result(); err != nil || got != "VALUE-IN-DUMP" {
		t.Fatalf("GET short = %q, %v", got, err)
	}

	dump := s.Dump(t)
	if !bytes.HasPrefix(dump, []byte("REDIS")) {
		t.Fatalf("dump does not start with the RDB magic: %q", dump[:min(len(dump), 16)])
	}
	for _, v := range []string{"VALUE-IN-DUMP", long} {
		if !bytes.Contains(dump, []byte(v)) {
			t.Errorf("dump lacks %.20q...", v)
		}
	}
	// A later write shows up in a later dump.
	if err := c.Set(ctx, "later", "SECOND-DUMP-VALUE", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(s.Dump(t), []byte("SECOND-DUMP-VALUE")) {
		t.Error("second dump lacks the later value")
	}

	s.Stop()
	select {
	case <-s.exited:
	default:
		t.Fatal("Stop returned with the process still running")
	}
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx2).Err(); err == nil {
		t.Fatal("PING succeeded after Stop")
	}
	s.Stop() // idempotent
}

// Parallel servers get distinct ports and do not share data.
func TestParallelServersAreIsolated(t *testing.T) {
	addrs := make(chan string, 6)
	t.Run("group", func(t *testing.T) {
		for i := 0; i < cap(addrs); i++ {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				s := Start(t)
				ctx := context.Background()
				key := fmt.Sprintf("only-%d", i)
				if err := s.Client().Set(ctx, key, "x", 0).Err(); err != nil {
					t.Fatal(err)
				}
				n, err := s.Client().DBSize(ctx).Result()
				if err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					t.Fatalf("server %s holds %d keys, want 1 (shared with another test?)", s.Addr(), n)
				}
				addrs <- s.Addr()
			})
		}
	})
	close(addrs)
	seen := map[string]bool{}
	for a := range addrs {
		if seen[a] {
			t.Errorf("address %s used twice", a)
		}
		seen[a] = true
	}
}

// The test's cleanup ends the process: nothing is left behind.
func TestCleanupLeavesNoProcess(t *testing.T) {
	var s *Server
	t.Run("inner", func(t *testing.T) {
		s = Start(t)
		if err := s.Client().Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	})
	if s == nil {
		t.Skip("inner test did not start a server")
	}
	select {
	case <-s.exited:
	default:
		t.Fatal("redis-server still running after its test ended")
	}
	if err := syscall.Kill(s.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d still exists after cleanup (kill 0: %v)", s.cmd.Process.Pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.Client().Ping(ctx).Err(); err == nil {
		t.Fatal("client still usable after cleanup")
	}
}

// A port that is already taken is reported as errPortInUse, so Start
// retries with another port.
func TestLaunchOnTakenPortIsRetryable(t *testing.T) {
	bin := binary()
	if bin == "" {
		t.Skip("redis-server is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	s, err := launch(bin, t.TempDir(), port)
	if err == nil {
		s.Stop()
		s.client.Close()
		t.Fatalf("launch on taken port %d succeeded", port)
	}
	if !errors.Is(err, errPortInUse) {
		t.Fatalf("launch on taken port: %v, want errPortInUse", err)
	}
}

// A port held by another redis-server (which would answer our PING) is
// also retryable, not mistaken for ours.
func TestLaunchOnPortOfAnotherRedis(t *testing.T) {
	other := Start(t)
	_, p, _ := net.SplitHostPort(other.Addr())
	port, _ := strconv.Atoi(p)
	s, err := launch(binary(), t.TempDir(), port)
	if err == nil {
		s.Stop()
		s.client.Close()
		t.Fatal("second launch on the same port succeeded")
	}
	if !errors.Is(err, errPortInUse) {
		t.Fatalf("got %v, want errPortInUse", err)
	}
	if err := other.Client().Ping(context.Background()).Err(); err != nil {
		t.Fatalf("first server hurt by the failed launch: %v", err)
	}
}
