package audit_test

// Tamper tests: a log is written through a real store (the bbolt file store
// and PostgreSQL), the store is closed, the stored bytes are changed
// directly (bbolt opened with go.etcd.io/bbolt, PostgreSQL rows changed
// with SQL by a superuser who bypasses the append-only trigger), and Verify
// must say which entry is wrong and how.

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/internal/testpg"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/pgstore"
)

// backend is an opened store.
type backend interface {
	audit.Backend
	Close() error
}

// storage is one store's backing storage (a file, a database). The
// tampering methods are called while no store is open on it.
type storage interface {
	open(t *testing.T) backend
	// setField changes one field of entry seq in place, the way an
	// attacker editing the stored bytes would.
	setField(t *testing.T, seq uint64, field string)
	// rewrite reads entry seq as stored, applies fn and stores the result
	// under fn's Seq (no validation: anything an attacker could write).
	rewrite(t *testing.T, seq uint64, fn func(*audit.Entry))
	del(t *testing.T, seq uint64)
	swap(t *testing.T, a, b uint64)
}

type kind struct {
	name  string
	fresh func(t *testing.T) storage
}

// fields are the stored fields setField can change.
var fields = []string{"seq", "time", "actor_role", "actor_pseudonym", "action", "order_id", "object", "detail", "prev", "hash"}

// TestRealBackends runs the tamper and concurrency tests on both stores.
func TestRealBackends(t *testing.T) {
	run := func(t *testing.T, k kind) {
		t.Run("Tamper", func(t *testing.T) { testTamper(t, k) })
		t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, k) })
	}
	t.Run("bolt", func(t *testing.T) {
		run(t, kind{"bolt", func(t *testing.T) storage {
			return &boltStorage{path: filepath.Join(t.TempDir(), "store.db")}
		}})
	})
	t.Run("postgres", func(t *testing.T) {
		cluster := testpg.Start(t)
		run(t, kind{"postgres", func(t *testing.T) storage {
			return &pgStorage{dsn: testpg.CreateDB(t, cluster)}
		}})
	})
}

// records are the six entries every tamper test starts from.
var records = []audit.Record{
	{ActorRole: "requester", ActorPseudonym: "ps_a1", Action: audit.ActionOrderFiled, OrderID: "ord_1", Detail: "window=11d"},
	{ActorRole: "legal", ActorPseudonym: "ps_b2", Action: audit.ActionApproved, OrderID: "ord_1", Object: "slot 1"},
	{ActorRole: "hr", ActorPseudonym: "ps_c3", Action: audit.ActionApproved, OrderID: "ord_1", Object: "slot 3", Detail: "days=11"},
	{ActorRole: "system", Action: audit.ActionActivated, OrderID: "ord_1", Detail: "quorum=3/5"},
	{ActorRole: "requester", ActorPseudonym: "ps_a1", Action: audit.ActionViewed, OrderID: "ord_1", Object: "page 1", Detail: "posts=50"},
	{ActorRole: "requester", ActorPseudonym: "ps_a1", Action: audit.ActionExported, OrderID: "ord_1", Object: "export 1", Detail: "format=html"},
}

func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 5, 17, 9, 0, 0, 123456789, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(1500 * time.Millisecond)
		return t
	}
}

// setup writes the six records through a Log and returns the entries and
// the checkpoint of the head, published as text and read back.
func setup(t *testing.T, k kind) (storage, []audit.Entry, *audit.Checkpoint) {
	t.Helper()
	st := k.fresh(t)
	b := st.open(t)
	defer b.Close()
	l := audit.New(b, clock())
	var es []audit.Entry
	for _, r := range records {
		e, err := l.Append(t.Context(), r)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		es = append(es, e)
	}
	cp, err := l.Checkpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	published, err := audit.ParseCheckpoint(cp.String())
	if err != nil {
		t.Fatal(err)
	}
	if published.Seq != 6 || published.Hash != es[5].Hash {
		t.Fatalf("checkpoint %v is not the head", published)
	}
	return st, es, &published
}

func verify(t *testing.T, st storage, cp *audit.Checkpoint) (audit.Report, error) {
	t.Helper()
	b := st.open(t)
	defer b.Close()
	return audit.Verify(t.Context(), b, cp)
}

type want struct {
	seq uint64
	p   audit.Problem
}

// expect checks that Verify found exactly the problems in ws, in order, and
// returned the first as a *VerifyError.
func expect(t *testing.T, rep audit.Report, err error, ws ...want) {
	t.Helper()
	var got []want
	for _, p := range rep.Problems {
		got = append(got, want{p.Seq, p.Problem})
	}
	if !slices.Equal(got, ws) {
		t.Fatalf("Verify found %v, want %v\nreport:\n%s", got, ws, rep.String())
	}
	if len(ws) == 0 {
		if err != nil {
			t.Fatalf("Verify error %v on a sound log", err)
		}
		return
	}
	ve, ok := err.(*audit.VerifyError)
	if !ok {
		t.Fatalf("Verify error is %T (%v), want *audit.VerifyError", err, err)
	}
	if ve.Seq != ws[0].seq || ve.Problem != ws[0].p {
		t.Fatalf("Verify error = %v, want entry %d %s", ve, ws[0].seq, ws[0].p)
	}
	t.Logf("detected: %v", ve)
}

func checkpointAt(es []audit.Entry, seq uint64) *audit.Checkpoint {
	return &audit.Checkpoint{Seq: seq, Hash: es[seq-1].Hash, Time: es[seq-1].Time}
}

func testTamper(t *testing.T, k kind) {
	t.Run("Intact", func(t *testing.T) {
		t.Parallel()
		st, es, cp := setup(t, k)
		rep, err := verify(t, st, cp)
		expect(t, rep, err)
		if rep.Entries != 6 || !rep.CheckpointOK || rep.Head.Seq != 6 || rep.Head.Hash != es[5].Hash {
			t.Fatalf("report %+v", rep)
		}
	})

	for _, f := range fields {
		t.Run("ModifiedField/"+f, func(t *testing.T) {
			t.Parallel()
			st, _, cp := setup(t, k)
			st.setField(t, 3, f)
			rep, err := verify(t, st, cp)
			switch f {
			case "seq": // moved from 3 to 7: a hole, and an entry that belongs elsewhere
				expect(t, rep, err, want{3, audit.ProblemMissing}, want{7, audit.ProblemReordered})
			case "hash": // and entry 4 no longer links to it
				expect(t, rep, err, want{3, audit.ProblemModified}, want{4, audit.ProblemBrokenLink})
			default:
				expect(t, rep, err, want{3, audit.ProblemModified})
			}
		})
	}

	t.Run("DeletedMiddle", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		st.del(t, 3)
		rep, err := verify(t, st, cp)
		expect(t, rep, err, want{3, audit.ProblemMissing})
	})

	t.Run("DeletedFirst", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		st.del(t, 1)
		rep, err := verify(t, st, cp)
		expect(t, rep, err, want{1, audit.ProblemMissing})
	})

	t.Run("DeletedLast", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		st.del(t, 6)
		// The chain alone cannot tell a truncated log from a shorter one:
		// that is what the published checkpoint is for.
		rep, err := verify(t, st, nil)
		expect(t, rep, err)
		if rep.Entries != 5 {
			t.Fatalf("%d entries", rep.Entries)
		}
		rep, err = verify(t, st, cp)
		expect(t, rep, err, want{6, audit.ProblemTruncated})
	})

	t.Run("TruncatedThenAppended", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		st.del(t, 6)
		st.del(t, 5)
		b := st.open(t)
		l := audit.New(b, clock())
		for _, r := range records[:2] {
			if _, err := l.Append(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		b.Close()
		rep, err := verify(t, st, nil)
		expect(t, rep, err)
		rep, err = verify(t, st, cp)
		expect(t, rep, err, want{6, audit.ProblemCheckpoint})
	})

	t.Run("SwappedPair", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		st.swap(t, 3, 4)
		rep, err := verify(t, st, cp)
		// 5 links to the entry written as 4, which is now stored as 3.
		expect(t, rep, err, want{3, audit.ProblemReordered}, want{4, audit.ProblemReordered}, want{5, audit.ProblemBrokenLink})
		if !strings.Contains(rep.Problems[0].Detail, "entry 4") || !strings.Contains(rep.Problems[1].Detail, "entry 3") {
			t.Fatalf("problems do not say where the entries came from:\n%s", rep.String())
		}
	})

	t.Run("ForgedPrev", func(t *testing.T) {
		t.Parallel()
		st, es, cp := setup(t, k)
		// Entry 3 claims to follow entry 1, as if entry 2 never existed.
		st.rewrite(t, 3, func(e *audit.Entry) { e.Prev = es[0].Hash })
		rep, err := verify(t, st, cp)
		expect(t, rep, err, want{3, audit.ProblemModified})
	})

	t.Run("ForgedPrevRehashed", func(t *testing.T) {
		t.Parallel()
		st, es, cp := setup(t, k)
		st.rewrite(t, 3, func(e *audit.Entry) { e.Prev = es[0].Hash; e.Hash = e.ComputeHash() })
		rep, err := verify(t, st, cp)
		expect(t, rep, err, want{3, audit.ProblemBrokenLink}, want{4, audit.ProblemBrokenLink})
	})

	t.Run("RewrittenRehashed", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		st.rewrite(t, 3, func(e *audit.Entry) { e.Detail = "days=2"; e.Hash = e.ComputeHash() })
		rep, err := verify(t, st, cp)
		expect(t, rep, err, want{4, audit.ProblemBrokenLink})
	})

	t.Run("ChainRecomputed", func(t *testing.T) {
		t.Parallel()
		st, es, cp := setup(t, k)
		// The attacker rewrites entry 3 and recomputes everything after it.
		prev := es[1].Hash
		for seq := uint64(3); seq <= 6; seq++ {
			st.rewrite(t, seq, func(e *audit.Entry) {
				if seq == 3 {
					e.ActorRole = "legal"
				}
				e.Prev = prev
				e.Hash = e.ComputeHash()
				prev = e.Hash
			})
		}
		rep, err := verify(t, st, nil)
		expect(t, rep, err) // consistent in itself: only a checkpoint can tell
		rep, err = verify(t, st, cp)
		expect(t, rep, err, want{6, audit.ProblemCheckpoint})
		rep, err = verify(t, st, checkpointAt(es, 4))
		expect(t, rep, err, want{4, audit.ProblemCheckpoint})
		// A checkpoint from before the rewritten part still matches.
		rep, err = verify(t, st, checkpointAt(es, 2))
		expect(t, rep, err)
		if !rep.CheckpointOK {
			t.Fatal("checkpoint of entry 2 not reported as matching")
		}
	})

	t.Run("ForeignCheckpoint", func(t *testing.T) {
		t.Parallel()
		st, _, cp := setup(t, k)
		other := *cp
		other.Hash[5] ^= 1
		rep, err := verify(t, st, &other)
		expect(t, rep, err, want{6, audit.ProblemCheckpoint})
	})

	if k.name == "bolt" {
		t.Run("Unreadable", func(t *testing.T) {
			t.Parallel()
			st, _, cp := setup(t, k)
			st.(*boltStorage).update(t, func(b *bolt.Bucket) {
				v := b.Get(seqKey(3))
				if err := b.Put(seqKey(3), append([]byte(nil), v[:10]...)); err != nil {
					t.Fatal(err)
				}
			})
			rep, err := verify(t, st, cp)
			expect(t, rep, err, want{3, audit.ProblemUnreadable})
			if rep.Entries != 2 {
				t.Fatalf("%d entries read before the unreadable one, want 2", rep.Entries)
			}
		})
		t.Run("DocumentedFormat", func(t *testing.T) {
			t.Parallel()
			st, es, _ := setup(t, k)
			var got []audit.Entry
			st.(*boltStorage).update(t, func(b *bolt.Bucket) {
				if err := b.ForEach(func(k, v []byte) error {
					got = append(got, decodeBolt(t, k, v))
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			})
			if len(got) != len(es) {
				t.Fatalf("bucket holds %d entries, want %d", len(got), len(es))
			}
			for i := range es {
				if g, w := got[i], es[i]; g.Seq != w.Seq || !g.Time.Equal(w.Time) || g.Hash != w.Hash || g.Prev != w.Prev ||
					g.ActorRole != w.ActorRole || g.ActorPseudonym != w.ActorPseudonym || g.Action != w.Action ||
					g.OrderID != w.OrderID || g.Object != w.Object || g.Detail != w.Detail {
					t.Fatalf("stored bytes of entry %d decode to %+v, want %+v", w.Seq, g, w)
				}
			}
		})
	}
}

// testConcurrent appends from 20 goroutines, through one shared Log and
// through one Log each (as separate gateway processes would), and checks
// that the result is one unbroken chain holding every record exactly once.
func testConcurrent(t *testing.T, k kind) {
	const (
		goroutines = 20
		perG       = 10
	)
	for _, shared := range []bool{true, false} {
		name := "LogPerWriter"
		if shared {
			name = "SharedLog"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := k.fresh(t)
			b := st.open(t)
			defer b.Close()
			sharedLog := audit.New(b, nil)
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				appended = map[uint64]audit.Entry{}
				errs     []error
				start    = make(chan struct{})
				calls    [goroutines]int // AppendAudit calls per writer (LogPerWriter)
				most     int             // most AppendAudit calls one Append needed
			)
			for g := 0; g < goroutines; g++ {
				l := sharedLog
				if !shared {
					be := b
					if _, isPG := st.(*pgStorage); isPG { // its own connection pool, like another replica
						be = st.open(t)
						defer be.Close()
					}
					l = audit.New(&counting{Backend: be, n: &calls[g]}, nil)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for i := 0; i < perG; i++ {
						before := calls[g]
						e, err := l.Append(context.Background(), audit.Record{
							ActorRole: "requester", Action: audit.ActionViewed, OrderID: "ord_c", Object: fmt.Sprintf("w%d/%d", g, i),
						})
						mu.Lock()
						most = max(most, calls[g]-before)
						if err != nil {
							errs = append(errs, err)
						} else if _, dup := appended[e.Seq]; dup {
							errs = append(errs, fmt.Errorf("two appends returned entry %d", e.Seq))
						} else {
							appended[e.Seq] = e
						}
						mu.Unlock()
						if err != nil {
							return
						}
					}
				}()
			}
			close(start)
			wg.Wait()
			if !shared {
				t.Logf("most attempts one Append needed: %d", most)
			}
			if len(errs) > 0 {
				t.Fatalf("%d appends failed, first: %v", len(errs), errs[0])
			}
			rep, err := audit.Verify(t.Context(), b, nil)
			expect(t, rep, err)
			if rep.Entries != goroutines*perG {
				t.Fatalf("log holds %d entries, want %d", rep.Entries, goroutines*perG)
			}
			seen := map[string]bool{}
			err = b.AuditEntries(t.Context(), 1, func(e audit.Entry) error {
				if a, ok := appended[e.Seq]; !ok || a.Hash != e.Hash {
					return fmt.Errorf("stored entry %d is not the one Append returned", e.Seq)
				}
				if seen[e.Object] {
					return fmt.Errorf("record %s stored twice", e.Object)
				}
				seen[e.Object] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) != goroutines*perG {
				t.Fatalf("%d distinct records stored, want %d", len(seen), goroutines*perG)
			}
		})
	}
}

// counting counts AppendAudit calls (one goroutine per counting).
type counting struct {
	audit.Backend
	n *int
}

func (c *counting) AppendAudit(ctx context.Context, e audit.Entry) error {
	*c.n++
	return c.Backend.AppendAudit(ctx, e)
}

// ---- bbolt ----

type boltStorage struct{ path string }

func (s *boltStorage) open(t *testing.T) backend {
	t.Helper()
	b, err := boltstore.Open(s.path)
	if err != nil {
		t.Fatalf("boltstore.Open: %v", err)
	}
	return b
}

// update runs fn on the "audit" bucket in a write transaction on the file,
// bypassing the store.
func (s *boltStorage) update(t *testing.T, fn func(b *bolt.Bucket)) {
	t.Helper()
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		if b == nil {
			return fmt.Errorf("no audit bucket")
		}
		fn(b)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// decodeBolt and encodeBolt implement the value layout documented in
// store/boltstore/audit.go, independently of the store's own code.
func decodeBolt(t *testing.T, k, v []byte) audit.Entry {
	t.Helper()
	if len(k) != 8 || len(v) < 1+8+6*4+64 || v[0] != 1 {
		t.Fatalf("stored entry does not have the documented layout (key %d bytes, value %d bytes)", len(k), len(v))
	}
	e := audit.Entry{Seq: binary.BigEndian.Uint64(k)}
	e.Time = time.UnixMicro(int64(binary.BigEndian.Uint64(v[1:]))).UTC()
	p := v[9:]
	str := func() string {
		n := binary.BigEndian.Uint32(p)
		s := string(p[4 : 4+n])
		p = p[4+n:]
		return s
	}
	e.ActorRole, e.ActorPseudonym, e.Action = str(), str(), audit.Action(str())
	e.OrderID, e.Object, e.Detail = str(), str(), str()
	if len(p) != 64 {
		t.Fatalf("entry %d: %d bytes after the strings, want 64", e.Seq, len(p))
	}
	copy(e.Prev[:], p)
	copy(e.Hash[:], p[32:])
	return e
}

func encodeBolt(e audit.Entry) []byte {
	v := []byte{1}
	v = binary.BigEndian.AppendUint64(v, uint64(e.Time.UnixMicro()))
	for _, s := range []string{e.ActorRole, e.ActorPseudonym, string(e.Action), e.OrderID, e.Object, e.Detail} {
		v = binary.BigEndian.AppendUint32(v, uint32(len(s)))
		v = append(v, s...)
	}
	v = append(v, e.Prev[:]...)
	return append(v, e.Hash[:]...)
}

func (s *boltStorage) setField(t *testing.T, seq uint64, field string) {
	t.Helper()
	if field == "seq" {
		s.update(t, func(b *bolt.Bucket) {
			v := append([]byte(nil), b.Get(seqKey(seq))...)
			if err := b.Delete(seqKey(seq)); err != nil {
				t.Fatal(err)
			}
			if err := b.Put(seqKey(seq+4), v); err != nil {
				t.Fatal(err)
			}
		})
		return
	}
	s.rewrite(t, seq, func(e *audit.Entry) {
		switch field {
		case "time":
			e.Time = e.Time.Add(time.Microsecond)
		case "actor_role":
			e.ActorRole += "x"
		case "actor_pseudonym":
			e.ActorPseudonym += "x"
		case "action":
			e.Action = otherAction(e.Action)
		case "order_id":
			e.OrderID += "x"
		case "object":
			e.Object += "x"
		case "detail":
			e.Detail += "x"
		case "prev":
			e.Prev[0] ^= 1
		case "hash":
			e.Hash[0] ^= 1
		default:
			t.Fatalf("unknown field %s", field)
		}
	})
}

func otherAction(a audit.Action) audit.Action {
	if a == audit.ActionViewed {
		return audit.ActionExported
	}
	return audit.ActionViewed
}

func (s *boltStorage) rewrite(t *testing.T, seq uint64, fn func(*audit.Entry)) {
	t.Helper()
	s.update(t, func(b *bolt.Bucket) {
		e := decodeBolt(t, seqKey(seq), b.Get(seqKey(seq)))
		fn(&e)
		if e.Seq != seq {
			if err := b.Delete(seqKey(seq)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Put(seqKey(e.Seq), encodeBolt(e)); err != nil {
			t.Fatal(err)
		}
	})
}

func (s *boltStorage) del(t *testing.T, seq uint64) {
	t.Helper()
	s.update(t, func(b *bolt.Bucket) {
		if b.Get(seqKey(seq)) == nil {
			t.Fatalf("no entry %d to delete", seq)
		}
		if err := b.Delete(seqKey(seq)); err != nil {
			t.Fatal(err)
		}
	})
}

func (s *boltStorage) swap(t *testing.T, a, c uint64) {
	t.Helper()
	s.update(t, func(b *bolt.Bucket) {
		va := append([]byte(nil), b.Get(seqKey(a))...)
		vc := append([]byte(nil), b.Get(seqKey(c))...)
		if err := b.Put(seqKey(a), vc); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(seqKey(c), va); err != nil {
			t.Fatal(err)
		}
	})
}

// ---- PostgreSQL ----

type pgStorage struct{ dsn string }

func (s *pgStorage) open(t *testing.T) backend {
	t.Helper()
	b, err := pgstore.Open(t.Context(), s.dsn)
	if err != nil {
		t.Fatalf("pgstore.Open: %v", err)
	}
	return b
}

// exec runs statements in one transaction as the superuser, with triggers
// (the append-only guard) disabled, as a database administrator could.
func (s *pgStorage) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	tag, err := conn.Exec(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if tag.RowsAffected() == 0 {
		t.Fatalf("%s: no row changed", sql)
	}
}

var pgFieldSQL = map[string]string{
	"seq":             `UPDATE audit SET seq = seq + 4 WHERE seq = $1`,
	"time":            `UPDATE audit SET time = time + interval '1 microsecond' WHERE seq = $1`,
	"actor_role":      `UPDATE audit SET actor_role = actor_role || 'x' WHERE seq = $1`,
	"actor_pseudonym": `UPDATE audit SET actor_pseudonym = actor_pseudonym || 'x' WHERE seq = $1`,
	"action":          `UPDATE audit SET action = CASE action WHEN 'viewed' THEN 'exported' ELSE 'viewed' END WHERE seq = $1`,
	"order_id":        `UPDATE audit SET order_id = order_id || 'x' WHERE seq = $1`,
	"object":          `UPDATE audit SET object = object || 'x' WHERE seq = $1`,
	"detail":          `UPDATE audit SET detail = detail || 'x' WHERE seq = $1`,
	"prev":            `UPDATE audit SET prev = set_byte(prev, 0, get_byte(prev, 0) # 1) WHERE seq = $1`,
	"hash":            `UPDATE audit SET hash = set_byte(hash, 0, get_byte(hash, 0) # 1) WHERE seq = $1`,
}

func (s *pgStorage) setField(t *testing.T, seq uint64, field string) {
	t.Helper()
	sql, ok := pgFieldSQL[field]
	if !ok {
		t.Fatalf("unknown field %s", field)
	}
	s.exec(t, sql, int64(seq))
}

func (s *pgStorage) rewrite(t *testing.T, seq uint64, fn func(*audit.Entry)) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	var (
		e          = audit.Entry{Seq: seq}
		action     string
		prev, hash []byte
	)
	err = conn.QueryRow(ctx, `SELECT time, actor_role, actor_pseudonym, action, order_id, object, detail, prev, hash FROM audit WHERE seq = $1`, int64(seq)).
		Scan(&e.Time, &e.ActorRole, &e.ActorPseudonym, &action, &e.OrderID, &e.Object, &e.Detail, &prev, &hash)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.Action, e.Prev, e.Hash = audit.Action(action), [32]byte(prev), [32]byte(hash)
	fn(&e)
	s.exec(t, `UPDATE audit SET seq = $2, time = $3, actor_role = $4, actor_pseudonym = $5, action = $6,
		order_id = $7, object = $8, detail = $9, prev = $10, hash = $11 WHERE seq = $1`,
		int64(seq), int64(e.Seq), e.Time, e.ActorRole, e.ActorPseudonym, string(e.Action), e.OrderID, e.Object, e.Detail, e.Prev[:], e.Hash[:])
}

func (s *pgStorage) del(t *testing.T, seq uint64) {
	t.Helper()
	s.exec(t, `DELETE FROM audit WHERE seq = $1`, int64(seq))
}

func (s *pgStorage) swap(t *testing.T, a, b uint64) {
	t.Helper()
	// Row by row, since seq is unique: a -> spare, b -> a, spare -> b.
	const spare = 1 << 40
	s.exec(t, `UPDATE audit SET seq = $1 WHERE seq = $2`, int64(spare), int64(a))
	s.exec(t, `UPDATE audit SET seq = $1 WHERE seq = $2`, int64(a), int64(b))
	s.exec(t, `UPDATE audit SET seq = $1 WHERE seq = $2`, int64(b), int64(spare))
}
