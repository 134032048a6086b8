package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store/boltstore"
)

// TestPipelineAggregatesOnce: the pipeline counts what it stores into the
// aggregates once per event version — a re-sent batch and a repeat within a
// batch add nothing — with the team and channel type the plugin sends.
func TestPipelineAggregatesOnce(t *testing.T) {
	keys, _ := crypto.NewGatewayKeys()
	var slots []crypto.Recipient
	for i := 0; i < 3; i++ {
		id, _ := crypto.GenerateSlotKey(crypto.KEMX25519)
		slots = append(slots, id.Recipient())
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: keys, Slots: slots, Quorum: 2, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := time.Now().UTC().AddDate(0, 0, -3).Truncate(24 * time.Hour).Add(10 * time.Hour)
	agg, err := redact.New(redact.Config{K: redact.MinK, Start: day.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	p := &Pipeline{Sealer: sealer, Keys: keys, Store: st, Aggregates: agg}
	var evs []map[string]any
	for u := 0; u < 6; u++ {
		ms := day.Add(time.Duration(u) * time.Minute).UnixMilli()
		evs = append(evs, map[string]any{"kind": "posted", "team_id": "1yi1er9bw7ybfnhkk9ui58s3oo", "channel_type": "O",
			"post": map[string]any{"id": fmt.Sprintf("post%022d", u), "user_id": fmt.Sprintf("user%022d", u), "channel_id": "8s6ug79ctbfp8bm4q1fdjfjxho",
				"create_at": ms, "update_at": ms, "message": "hello", "file_ids": []string{"f1"}}})
	}
	evs = append(evs, evs[0]) // a repeat within the batch
	body, _ := json.Marshal(map[string]any{"events": evs})
	for round := 0; round < 2; round++ { // the second round re-sends everything
		parsed, err := ParseBatch(body, Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 100}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Ingest(context.Background(), parsed); err != nil {
			t.Fatal(err)
		}
	}
	if got := agg.Stats().Observed; got != 6 {
		t.Fatalf("aggregated %d events, want 6", got)
	}
	var found bool
	for _, b := range agg.Flush(time.Now()) {
		if b.Span == redact.Day && b.Team == "1yi1er9bw7ybfnhkk9ui58s3oo" && b.ChannelType == 'O' && !b.Suppressed {
			found = true
			if b.Messages != 6 || b.Users != 6 || b.Files != 6 {
				t.Fatalf("day bucket %+v, want 6 messages, 6 users, 6 files", b.Counts)
			}
		}
	}
	if !found {
		t.Fatal("no published day bucket for the team's open channels")
	}
}
