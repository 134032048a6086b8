package testpg

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStart(t *testing.T) {
	var dsn string
	t.Run("running", func(t *testing.T) {
		dsn = Start(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if u.Hostname() != "127.0.0.1" || u.Port() == "" || u.Port() == "5432" {
			t.Fatalf("DSN %q: want 127.0.0.1 and a private port", dsn)
		}
		ctx := t.Context()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var db, fsync, listen, port string
		err = conn.QueryRow(ctx, `SELECT current_database(), current_setting('fsync'),
			current_setting('listen_addresses'), current_setting('port')`).Scan(&db, &fsync, &listen, &port)
		if err != nil {
			t.Fatal(err)
		}
		if db != DBName || fsync != "on" || listen != "127.0.0.1" || port != u.Port() {
			t.Fatalf("got database %q fsync %q listen %q port %q", db, fsync, listen, port)
		}

		other := CreateDB(t, dsn)
		conn2, err := pgx.Connect(ctx, other)
		if err != nil {
			t.Fatal(err)
		}
		defer conn2.Close(ctx)
		var name string
		if err := conn2.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, DBName+"_") {
			t.Fatalf("CreateDB database is %q", name)
		}
	})
	if dsn == "" {
		return // skipped
	}
	// After the subtest's cleanup the server is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, dsn); err == nil {
		conn.Close(ctx)
		t.Fatal("server still accepts connections after cleanup")
	}
}

func TestTwoClustersAtOnce(t *testing.T) {
	var dsns [2]string
	for i := range dsns {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dsns[i] = Start(t)
		})
	}
	t.Cleanup(func() {
		if dsns[0] != "" && dsns[0] == dsns[1] {
			t.Errorf("two clusters share DSN %s", dsns[0])
		}
	})
}

// fakeTB records Skip and Fatal instead of acting on the real test.
type fakeTB struct {
	testing.TB
	mu              sync.Mutex
	skipped, failed string
	cleanups        []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Cleanup(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cleanups = append(f.cleanups, fn)
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.mu.Lock()
	f.skipped = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.failed = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func startFake(f *fakeTB) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Start(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestMissingBinaries(t *testing.T) {
	t.Setenv("TESTPG_BINDIR", t.TempDir())

	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	startFake(f)
	if f.skipped == "" || f.failed != "" {
		t.Fatalf("without CI: skipped %q, failed %q; want a skip", f.skipped, f.failed)
	}

	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	startFake(f)
	if f.failed == "" || f.skipped != "" {
		t.Fatalf("with CI: skipped %q, failed %q; want a failure", f.skipped, f.failed)
	}
}

func TestVersionOrder(t *testing.T) {
	for dir, want := range map[string]float64{
		"/usr/lib/postgresql/15/bin":  15,
		"/usr/lib/postgresql/9.6/bin": 9.6,
		"/usr/pgsql-16/bin":           16,
		"/opt/pg/bin":                 0,
	} {
		if got := versionOf(dir); got != want {
			t.Errorf("versionOf(%q) = %v, want %v", dir, got, want)
		}
	}
}
