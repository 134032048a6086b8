package smtpintake

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/order"
)

// FuzzParseEML: ParseEML never panics; what it accepts, it accepts the
// same way twice, with well-formed ids, and the gateway parses the events;
// what it refuses, it refuses with a one-line reason.
func FuzzParseEML(f *testing.F) {
	sample := sampleEML(f)
	f.Add(sample)
	f.Add(bytes.ReplaceAll(sample, []byte("\r\n"), []byte("\n")))
	f.Add(withoutHTML(f, sample))
	if later, err := os.ReadFile("testdata/later-exporter-private.eml"); err == nil {
		f.Add(later)
	}
	f.Add(buildEML("8s6ug79ctbfp8bm4q1fdjfjxho", []testMsg{
		{"alice", "alice@example.test", "2026-11-22T11:22:10Z", "Uploaded file a.txt"},
		{"alice", "alice@example.test", "2026-11-22T11:22:11Z", "<b>&amp;</b>"},
	}))

	limits := gateway.Limits{MaxPostBytes: 1 << 30, MaxBatchEvents: 1 << 30}
	farFuture := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseEML(bytes.NewReader(b))
		if err != nil {
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") || len(msg) > 300 {
				t.Fatalf("refusal reason %q: want one short line", msg)
			}
			return
		}
		wire, err := x.Wire()
		if err != nil {
			t.Fatal(err)
		}
		y, err := ParseEML(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("second parse refused: %v", err)
		}
		again, _ := y.Wire()
		if len(again) != len(wire) {
			t.Fatalf("second parse: %d events, first %d", len(again), len(wire))
		}
		for i := range wire {
			if !bytes.Equal(wire[i], again[i]) {
				t.Fatalf("event %d differs between two parses", i)
			}
		}
		for i, ev := range x.Events {
			switch {
			case ev.Post != nil:
				if !order.IsMattermostID(ev.Post.Id) || !order.IsMattermostID(ev.Post.UserId) || !order.IsMattermostID(ev.Post.ChannelId) {
					t.Fatalf("event %d: malformed ids %q %q %q", i, ev.Post.Id, ev.Post.UserId, ev.Post.ChannelId)
				}
			case ev.File != nil:
				if !order.IsMattermostID(ev.File.ID) || !order.IsMattermostID(ev.File.UserID) {
					t.Fatalf("event %d: malformed ids %q %q", i, ev.File.ID, ev.File.UserID)
				}
			default:
				t.Fatalf("event %d has neither post nor file", i)
			}
		}
		body, err := x.Batch()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := gateway.ParseBatch(body, limits, farFuture); err != nil {
			t.Fatalf("the gateway refuses the events: %v", err)
		}
	})
}
