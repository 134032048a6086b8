package gateway

import (
	"errors"
	"testing"
	"time"
)

func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`{"events":[{"kind":"posted","post":{"id":"p","user_id":"u","channel_id":"c","create_at":1000}}]}`))
	f.Add([]byte(`{"events":[{"kind":"deleted","post":{"id":"p","user_id":"u","channel_id":"c"},"deleted_at":5}]}`))
	f.Add([]byte(`{"events":[{"kind":"file","file":{"id":"f","user_id":"u","create_at":7}}]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":null}`))
	now := time.UnixMilli(1795346540000)
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseBatch(body, Limits{MaxPostBytes: 4096, MaxBatchEvents: 50}, now)
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) || (bad.Status != 400 && bad.Status != 413) || bad.Reason == "" {
				t.Fatalf("unclassified refusal %v", err)
			}
			return
		}
		for i, e := range evs {
			if e.Employee == "" || e.PostID == "" || !e.Kind.Valid() || e.Time.UnixMilli() <= 0 || e.Time.After(now.Add(maxClockSkew)) || len(e.Body) == 0 {
				t.Fatalf("event %d accepted with bad fields: %+v", i, e)
			}
		}
	})
}
