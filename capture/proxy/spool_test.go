package proxy

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func testAEAD(t testing.TB) cipher.AEAD {
	block, err := aes.NewCipher(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openTestSpool(t testing.TB, dir string) *Spool {
	t.Helper()
	s, err := OpenSpool(dir, testAEAD(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.MinBackoff, s.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return s
}

func evs(prefix string, n int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, []byte(fmt.Sprintf(`{"kind":"posted","post":{"id":"%s-%03d","message":"canary-secret-text"}}`, prefix, i)))
	}
	return out
}

// consumer records delivered events; fail decides per call.
type consumer struct {
	mu   sync.Mutex
	got  [][]byte
	fail func(batch [][]byte) error
}

func (c *consumer) deliver(batch [][]byte) error {
	if c.fail != nil {
		if err := c.fail(batch); err != nil {
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range batch {
		c.got = append(c.got, bytes.Clone(b))
	}
	return nil
}

func (c *consumer) delivered() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// runUntil runs s.Run until cond holds, then stops it.
func runUntil(t *testing.T, s *Spool, c *consumer, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, c.deliver) }()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("timed out; delivered %d, pending %d", len(c.delivered()), s.Pending())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

func segFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	return m
}

func TestSpoolDeliversInOrderAndCleansUp(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir)
	s.MaxSegmentBytes = 1000 // several segments
	s.MaxBatch = 7
	want := evs("a", 40)
	for i := 0; i < len(want); i += 5 {
		if err := s.Append(want[i : i+5]); err != nil {
			t.Fatal(err)
		}
	}
	if s.Pending() != 40 {
		t.Fatalf("pending %d", s.Pending())
	}
	if len(segFiles(t, dir, ".seg")) < 3 {
		t.Fatalf("want several segments, have %v", segFiles(t, dir, ".seg"))
	}
	// Nothing in clear on disk.
	for _, f := range segFiles(t, dir, ".seg") {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("canary")) || bytes.Contains(b, []byte("posted")) {
			t.Fatalf("%s holds plaintext", f)
		}
	}
	c := &consumer{}
	runUntil(t, s, c, func() bool { return s.Pending() == 0 })
	if got := c.delivered(); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("delivered %d events, not the %d appended in order", len(got), len(want))
	}
	if f := append(segFiles(t, dir, ".seg"), segFiles(t, dir, ".ack")...); len(f) != 0 {
		t.Errorf("left behind: %v", f)
	}
	s.Close()
}

func TestSpoolRetriesWithBackoff(t *testing.T) {
	s := openTestSpool(t, t.TempDir())
	s.Append(evs("r", 3))
	var calls atomic.Int64
	c := &consumer{fail: func([][]byte) error {
		if calls.Add(1) < 4 {
			return errors.New("store down")
		}
		return nil
	}}
	runUntil(t, s, c, func() bool { return s.Pending() == 0 })
	if len(c.delivered()) != 3 || calls.Load() != 4 {
		t.Errorf("delivered %d after %d calls", len(c.delivered()), calls.Load())
	}
}

// TestSpoolReplayAfterRestart: a new process finds what the last one
// spooled, resumes after the acknowledged prefix (no event twice) and cuts
// off a record torn by a crash.
func TestSpoolReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir)
	s.MaxBatch = 2
	want := evs("b", 5)
	if err := s.Append(want); err != nil {
		t.Fatal(err)
	}
	// Deliver the first batch, then fail: the process "dies" mid-way.
	var calls atomic.Int64
	c := &consumer{fail: func([][]byte) error {
		if calls.Add(1) > 1 {
			return errors.New("down")
		}
		return nil
	}}
	runUntil(t, s, c, func() bool { return calls.Load() >= 3 })
	if len(c.delivered()) != 2 {
		t.Fatalf("delivered %d", len(c.delivered()))
	}
	// A crash during a later append leaves half a record behind. (The
	// segment was sealed by Run, so write it at the end of that file.)
	segs := segFiles(t, dir, ".seg")
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 1, 0, 9, 9})
	f.Close()

	s2 := openTestSpool(t, dir)
	if s2.Pending() != 3 {
		t.Fatalf("after restart pending %d, want 3", s2.Pending())
	}
	c2 := &consumer{}
	runUntil(t, s2, c2, func() bool { return s2.Pending() == 0 })
	all := append(c.delivered(), c2.delivered()...)
	if !slices.EqualFunc(all, want, bytes.Equal) {
		t.Fatalf("across the restart delivered %q", all)
	}
	// New appends after a restart go to a new segment and are delivered.
	s2.Append(evs("c", 1))
	runUntil(t, s2, c2, func() bool { return s2.Pending() == 0 })
	if n := len(c2.delivered()); n != 4 {
		t.Errorf("delivered %d", n)
	}
}

// TestSpoolDamage: a damaged record ends delivery of its segment, which is
// kept aside; a record moved elsewhere (valid CRC) does not open.
func TestSpoolDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(data []byte, offs []int) []byte
		want   int // records delivered before the damage
	}{
		{"bitflip", func(d []byte, offs []int) []byte { d[offs[2]+20] ^= 1; return d }, 2},
		{"swapped records", func(d []byte, offs []int) []byte {
			out := append([]byte{}, d[:offs[1]]...)
			out = append(out, d[offs[2]:offs[3]]...)
			out = append(out, d[offs[1]:offs[2]]...)
			return append(out, d[offs[3]:]...)
		}, 1},
		{"header", func(d []byte, offs []int) []byte { d[3] = 'X'; return d }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTestSpool(t, dir)
			want := evs("d", 4)
			s.Append(want)
			s.Close()
			path := segFiles(t, dir, ".seg")[0]
			data, _ := os.ReadFile(path)
			var offs []int
			for off := segHeader; off < len(data); {
				offs = append(offs, off)
				_, n, err := parseRecord(data[off:])
				if err != nil {
					t.Fatal(err)
				}
				off += n
			}
			os.WriteFile(path, tc.damage(data, offs), 0o600)
			s2 := openTestSpool(t, dir)
			c := &consumer{}
			runUntil(t, s2, c, func() bool { return len(segFiles(t, dir, ".corrupt")) == 1 })
			if got := c.delivered(); !slices.EqualFunc(got, want[:tc.want], bytes.Equal) {
				t.Errorf("delivered %d, want the %d before the damage", len(got), tc.want)
			}
			if s2.Pending() != 0 || len(segFiles(t, dir, ".seg")) != 0 {
				t.Errorf("pending %d, segments %v", s2.Pending(), segFiles(t, dir, ".seg"))
			}
		})
	}
}

// TestSpoolPermanent: a batch refused for good is retried event by event;
// the refused event goes to the dead letters, the others are delivered.
func TestSpoolPermanent(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir)
	in := evs("p", 5)
	in[2] = []byte(`{"kind":"bogus"}`)
	s.Append(in)
	c := &consumer{fail: func(b [][]byte) error {
		for _, e := range b {
			if strings.Contains(string(e), "bogus") {
				return Permanent(errors.New("400"))
			}
		}
		return nil
	}}
	runUntil(t, s, c, func() bool { return s.Pending() == 0 })
	got := c.delivered()
	if len(got) != 4 || slices.ContainsFunc(got, func(e []byte) bool { return bytes.Contains(e, []byte("bogus")) }) {
		t.Errorf("delivered %q", got)
	}
	s.Close()
	dead := openTestSpool(t, filepath.Join(dir, "dead"))
	dc := &consumer{}
	runUntil(t, dead, dc, func() bool { return dead.Pending() == 0 })
	if d := dc.delivered(); len(d) != 1 || string(d[0]) != `{"kind":"bogus"}` {
		t.Errorf("dead letters %q", d)
	}
}

func TestSpoolConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	s := openTestSpool(t, dir)
	s.MaxSegmentBytes = 4096
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if err := s.Append(evs(fmt.Sprintf("g%d-%d", g, i), 2)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	c := &consumer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, c.deliver) }()
	wg.Wait()
	for deadline := time.Now().Add(10 * time.Second); s.Pending() != 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	got := c.delivered()
	seen := map[string]int{}
	for _, e := range got {
		seen[string(e)]++
	}
	if len(got) != 400 || len(seen) != 400 {
		t.Errorf("delivered %d (%d distinct), want 400 once each", len(got), len(seen))
	}
}

func TestParseRecordRoundTrip(t *testing.T) {
	sealed := bytes.Repeat([]byte{0xab}, 40)
	frame := appendRecord(nil, sealed)
	got, n, err := parseRecord(frame)
	if err != nil || n != len(frame) || !bytes.Equal(got, sealed) {
		t.Fatalf("%v %d", err, n)
	}
	if _, _, err := parseRecord(frame[:len(frame)-1]); err != errShort {
		t.Errorf("truncated: %v", err)
	}
	big := binary.BigEndian.AppendUint32(nil, maxRecord+1)
	if _, _, err := parseRecord(append(big, 0, 0, 0, 0)); err != errCorrupt {
		t.Errorf("oversized: %v", err)
	}
}
