package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/internal/synth"
	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/pgstore"
	"github.com/sealgate/sealgate/unseal"
)

// refsOf parses ingest bodies with the gateway's own parser and returns the
// ref of every event, per batch.
func refsOf(t *testing.T, keys *crypto.GatewayKeys, batches [][]byte) ([][]crypto.Ref, []crypto.Event) {
	t.Helper()
	var out [][]crypto.Ref
	var all []crypto.Event
	for _, b := range batches {
		evs, err := gateway.ParseBatch(b, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var refs []crypto.Ref
		for _, e := range evs {
			refs = append(refs, keys.Ref(e.PostID, e.Kind, e.Version))
		}
		out = append(out, refs)
		for _, e := range evs {
			all = append(all, e.Event)
		}
	}
	return out, all
}

func distinct(refs [][]crypto.Ref) map[crypto.Ref]bool {
	m := map[crypto.Ref]bool{}
	for _, rs := range refs {
		for _, r := range rs {
			m[r] = true
		}
	}
	return m
}

// sendAll posts the batches with workers concurrent clients; every batch
// must be answered 200.
func sendAll(t *testing.T, s *server, token string, batches [][]byte, workers int) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					return
				}
				code, ans, err := s.post(context.Background(), token, batches[i])
				if err != nil || code != 200 {
					errc <- errors.New("batch refused: " + httpStatus(code, ans, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// TestIngestLeavesNoPlaintext sends 10,000 fixture-shaped events with
// canaries in messages, file names, props and channel names through
// /v1/ingest, then scans every byte the store wrote, a Redis dump, the
// server's debug log and /metrics. It also checks exactly-once storage and
// that three slot keys open exactly one employee-day.
func TestIngestLeavesNoPlaintext(t *testing.T) {
	for _, kind := range []string{"file", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			rds := testredis.Start(t)
			d := initDeployment(t)
			env := []string{"SEALGATE_REDIS_ADDR=" + rds.Addr()}
			var pgDSN string
			if kind == "postgres" {
				pgDSN = testpg.Start(t)
				env = append(env, "SEALGATE_STORE_KIND=postgres", "SEALGATE_STORE_DSN="+pgDSN)
			}
			srv := d.startServer(t, env...)

			corpus := synth.New(uint64(len(kind))*7919, 12, 8)
			day0 := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -4)
			events := corpus.Events(10_000, day0, 5)
			batches := synth.Batches(events, 100)
			refs, parsed := refsOf(t, d.keys, batches)
			want := distinct(refs)

			sendAll(t, srv, d.cfg.IngestToken, batches, 4)
			fileRefs := putCanaryFiles(t, srv, d, corpus.Canaries(), day0)
			metrics := srv.get(t, "/metrics")
			// Re-sending everything stores nothing new.
			sendAll(t, srv, d.cfg.IngestToken, batches, 4)
			srv.stop(t)

			st := openStore(t, d, kind, pgDSN)
			stats, err := st.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if stats.Records != int64(len(want)) {
				t.Fatalf("stored %d records, sent %d distinct events", stats.Records, len(want))
			}
			for r := range want {
				if ok, err := st.HasRef(context.Background(), r); err != nil || !ok {
					t.Fatalf("a sent event is not stored (err %v)", err)
				}
			}
			for _, r := range fileRefs {
				if ok, err := st.(store.Files).HasFile(context.Background(), r); err != nil || !ok {
					t.Fatalf("a sent file content is not stored (err %v)", err)
				}
			}

			// Privacy: every byte written.
			canaries := corpus.Canaries()
			var hits []privacyscan.Hit
			dirHits, n, err := privacyscan.Dir(d.dir, canaries)
			if err != nil {
				t.Fatal(err)
			}
			hits = append(hits, dirHits...)
			scanned := n
			if pgDSN != "" {
				dump := pgDump(t, pgDSN)
				hits, scanned = append(hits, privacyscan.Bytes("pg_dump", dump, canaries)...), scanned+int64(len(dump))
				// PostgreSQL's own files: heap, indexes and the WAL, which
				// holds every row image that was ever written.
				st.Close()
				pgHits, n, err := privacyscan.Dir(testpg.DataDir(t, pgDSN), canaries)
				if err != nil {
					t.Fatal(err)
				}
				hits, scanned = append(hits, pgHits...), scanned+n
			}
			// A control: the scan does see the stores' own structure names, so a
			// zero-hit result means the canaries are absent, not unread.
			control, _, _ := privacyscan.Dir(d.dir, []string{"keyrec_idx"})
			if kind == "postgres" {
				control, _, _ = privacyscan.Dir(testpg.DataDir(t, pgDSN), []string{"key_records"})
			}
			if len(control) == 0 {
				t.Fatal("scan control: the store's own table or bucket name was not found in its files")
			}
			dump := rds.Dump(t)
			hits = append(hits, privacyscan.Bytes("redis dump", dump, canaries)...)
			hits = append(hits, privacyscan.Bytes("server log", srv.log.Bytes(), canaries)...)
			hits = append(hits, privacyscan.Bytes("/metrics", metrics, canaries)...)
			t.Logf("%s store: %d records, %d key records, %d epochs; scanned %d bytes of store files, %d of Redis dump, %d of logs",
				kind, stats.Records, stats.KeyRecords, stats.Epochs, scanned, len(dump), len(srv.log.Bytes()))
			if scanned < stats.Bytes {
				t.Fatalf("scanned %d bytes but the store holds %d bytes of blobs: the scan missed files", scanned, stats.Bytes)
			}
			for _, h := range hits {
				t.Errorf("canary in clear: %s", h)
			}

			if kind == "file" {
				checkEscrow(t, d, st, parsed)
			}
		})
	}
}

// putCanaryFiles sends shared files' contents through PUT /v1/files: every
// canary repeated through each (so every chunk and segment holds some),
// one larger than the stores' chunk and the streaming AEAD's segment. It
// returns their refs.
func putCanaryFiles(t *testing.T, s *server, d *deployment, canaries []string, day time.Time) []crypto.Ref {
	t.Helper()
	var refs []crypto.Ref
	for i, size := range []int{700, 300 << 10, 3<<20 + 11} {
		var b bytes.Buffer
		for b.Len() < size {
			for _, c := range canaries {
				b.WriteString(c)
				b.WriteByte(' ')
			}
		}
		content := b.Bytes()[:size]
		sum := sha256.Sum256(content)
		id := fmt.Sprintf("fi1e%022d", i)
		at := day.Add(time.Duration(i+9) * time.Hour)
		req, _ := http.NewRequest(http.MethodPut, "http://"+s.addr+"/v1/files/"+id, bytes.NewReader(content))
		req.Header.Set("Authorization", "Bearer "+d.cfg.IngestToken)
		req.Header.Set("X-Sealgate-Employee", "g6e8xk8t6t86tjy8nrqyeqmm5c")
		req.Header.Set("X-Sealgate-Create-At", fmt.Sprint(at.UnixMilli()))
		req.Header.Set("X-Sealgate-Content-SHA256", hex.EncodeToString(sum[:]))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("put file %d: %d", i, resp.StatusCode)
		}
		refs = append(refs, d.keys.Ref(id, crypto.KindFile, at.UnixMilli()))
	}
	return refs
}

// pgDump returns a plain SQL dump of the whole database, made by the
// PostgreSQL installation's own pg_dump: what a stolen backup would hold.
func pgDump(t *testing.T, dsn string) []byte {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
		if len(m) == 0 {
			t.Fatal("pg_dump not found")
		}
		bin = m[len(m)-1]
	}
	out, err := exec.Command(bin, "--no-owner", "--dbname", dsn).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if !bytes.Contains(out, []byte("COPY public.records")) {
		t.Fatalf("pg_dump holds no records table:\n%.2000s", out)
	}
	return out
}

func openStore(t *testing.T, d *deployment, kind, dsn string) store.Store {
	t.Helper()
	var st store.Store
	var err error
	if kind == "postgres" {
		st, err = pgstore.Open(context.Background(), dsn)
	} else {
		st, err = boltstore.Open(d.cfg.Path(d.cfg.Store.Path))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// checkEscrow opens one employee-day with three slot key files from disk:
// exactly that employee-day's events come back; with two slots, or with
// another employee's day, nothing opens.
func checkEscrow(t *testing.T, d *deployment, st store.Store, sent []crypto.Event) {
	ctx := context.Background()
	var ids []crypto.Identity
	for _, s := range d.cfg.Slots {
		f, err := os.Open(d.cfg.Path(filepath.Join(filepath.Dir(s.PublicKey), filepath.Base(s.PublicKey[:len(s.PublicKey)-len(".pub")]))))
		if err != nil {
			t.Fatal(err)
		}
		id, err := crypto.DecryptIdentity(f, passphrase)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	subject, other := sent[0].Employee, ""
	day := crypto.Day(sent[0].Time)
	want := map[crypto.Ref]bool{}
	for _, e := range sent {
		if e.Employee == subject && crypto.Day(e.Time) == day {
			want[d.keys.Ref(e.PostID, e.Kind, e.Version)] = true
		} else if e.Employee != subject && other == "" && crypto.Day(e.Time) == day {
			other = e.Employee
		}
	}
	slots := func(idx ...int) []unseal.Slot {
		var out []unseal.Slot
		for _, i := range idx {
			out = append(out, unseal.Slot{Index: i, Identity: ids[i]})
		}
		return out
	}
	dd := unseal.Day{Employee: subject, Day: day, Tag: d.keys.Tag(subject, day)}
	keys, err := unseal.DayKeys(ctx, st, d.keys.Verifier(), dd, slots(1, 2, 4))
	if err != nil {
		t.Fatal(err)
	}
	got := map[crypto.Ref]bool{}
	err = unseal.Records(ctx, st, dd, keys, func(ev *crypto.Event) error {
		if ev.Employee != subject || crypto.Day(ev.Time) != day {
			t.Errorf("opened an event of %s on %s", ev.Employee, crypto.Day(ev.Time))
		}
		got[d.keys.Ref(ev.PostID, ev.Kind, ev.Version)] = true
		return nil
	})
	unseal.Wipe(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(want) == 0 {
		t.Fatalf("opened %d events of the employee-day, sent %d", len(got), len(want))
	}
	for r := range want {
		if !got[r] {
			t.Fatal("an event of the employee-day did not open")
		}
	}
	if _, err := unseal.DayKeys(ctx, st, d.keys.Verifier(), dd, slots(0, 3)); !errors.Is(err, crypto.ErrTooFewShares) {
		t.Fatalf("two slots: %v", err)
	}
	// The subject's key records opened as if they were another employee's:
	// the shares do not open.
	wrong := unseal.Day{Employee: other, Day: day, Tag: dd.Tag}
	if _, err := unseal.DayKeys(ctx, st, d.keys.Verifier(), wrong, slots(0, 1, 2)); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("another employee's identity on the subject's key records: %v", err)
	}
}
