package integration

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/internal/synth"
	"github.com/sealgate/sealgate/internal/testredis"
)

// TestKillDashNineLosesNothing kills sealgate serve with SIGKILL in the middle
// of a 20,000-event ingest. After a restart every event that was answered
// 200 is stored, exactly once; re-sending everything completes the set.
func TestKillDashNineLosesNothing(t *testing.T) {
	rds := testredis.Start(t)
	d := initDeployment(t)
	env := "SEALGATE_REDIS_ADDR=" + rds.Addr()
	srv := d.startServer(t, env)

	corpus := synth.New(424242, 20, 6)
	events := corpus.Events(20_000, time.Now().UTC().Add(-48*time.Hour), 2)
	batches := synth.Batches(events, 100)
	refs, _ := refsOf(t, d.keys, batches)

	var acked sync.Map // batch index → true
	var ackedCount, next atomic.Int64
	killAt := int64(len(batches) / 2)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(batches) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				code, _, err := srv.post(ctx, d.cfg.IngestToken, batches[i])
				cancel()
				if err != nil {
					return // the server is gone
				}
				if code == 200 {
					acked.Store(i, true)
					if ackedCount.Add(1) == killAt {
						srv.kill()
					}
				}
			}
		}()
	}
	wg.Wait()
	n := ackedCount.Load()
	if n < killAt || n >= int64(len(batches)) {
		t.Fatalf("%d of %d batches acknowledged; the kill did not land mid-ingest", n, len(batches))
	}
	t.Logf("killed with SIGKILL after %d of %d batches were acknowledged", n, len(batches))

	// Restart on the same store and check every acknowledged event.
	srv = d.startServer(t, env)
	srv.stop(t)
	st := openStore(t, d, "file", "")
	ctx := context.Background()
	before, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ackedRefs int
	acked.Range(func(k, _ any) bool {
		for _, r := range refs[k.(int)] {
			ok, err := st.HasRef(ctx, r)
			if err != nil || !ok {
				t.Fatalf("an acknowledged event of batch %d was lost (err %v)", k, err)
			}
			ackedRefs++
		}
		return true
	})
	all := distinct(refs)
	if before.Records > int64(len(all)) || before.Records < int64(len(distinct(ackedOnly(refs, &acked)))) {
		t.Fatalf("%d records stored after the crash; %d distinct sent", before.Records, len(all))
	}
	st.Close()

	// Re-send everything: the store ends with each event exactly once.
	srv = d.startServer(t, env)
	sendAll(t, srv, d.cfg.IngestToken, batches, 4)
	srv.stop(t)
	st = openStore(t, d, "file", "")
	after, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Records != int64(len(all)) {
		t.Fatalf("after re-send: %d records, want %d", after.Records, len(all))
	}
	t.Logf("after the crash: %d records (all %d acknowledged events present); after re-send: %d = distinct events sent", before.Records, ackedRefs, after.Records)
}

func ackedOnly(refs [][]crypto.Ref, acked *sync.Map) [][]crypto.Ref {
	var out [][]crypto.Ref
	acked.Range(func(k, _ any) bool {
		out = append(out, refs[k.(int)])
		return true
	})
	return out
}
