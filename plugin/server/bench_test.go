package main

import (
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

// BenchmarkPluginToIngest measures the plugin → /v1/ingest rate end to end:
// b.N MessageHasBeenPosted hooks (each written to the KV buffer) drained
// by the sender to a real sealgate gateway that seals every event and
// commits it to a boltstore file. events/s counts from the first hook to
// the last event durably stored; hook-ns/op is the time a hook takes.
//
// The KV store here is in memory; in Mattermost each event costs a KVSet
// and a KVDelete in its database on top.
func BenchmarkPluginToIngest(b *testing.B) {
	g := newSealgate(b)
	url := g.start(b)
	kv := newFakeKV()
	tp := newTestPlugin(b, kv, configuration{SealgateURL: url, IngestToken: testToken})
	posts := make([]*model.Post, b.N)
	for i := range posts {
		posts[i] = synthPost(i)
		posts[i].Message = "A typical chat message of about a hundred bytes, with a mention of @bob and a #hashtag in it."
	}
	c := &plugin.Context{}
	b.ResetTimer()
	start := time.Now()
	for _, p := range posts {
		tp.MessageHasBeenPosted(c, p)
	}
	hooks := time.Since(start)
	// Poll sealgate's answers (cheap), not the KV store: listing it under
	// its lock would slow the sender down.
	deadline := time.Now().Add(10 * time.Minute)
	for {
		g.mu.Lock()
		stored := g.stored
		g.mu.Unlock()
		if stored >= b.N {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("stored %d of %d after 10 minutes", stored, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	drained(b, tp)
	if _, stored, dup, _ := g.snapshot(); stored != b.N || dup != 0 {
		b.Fatalf("stored %d of %d, %d duplicates", stored, b.N, dup)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(hooks.Nanoseconds())/float64(b.N), "hook-ns/op")
}
