package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
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

// FuzzFileUpload: the headers of PUT /v1/files/{id} either give an upload
// whose every field is usable, or a 400/413 refusal with a reason.
func FuzzFileUpload(f *testing.F) {
	f.Add("7ugdtgrbhbn5bp6mqajxq3ej3h", "g6e8xk8t6t86tjy8nrqyeqmm5c", "1795346540000", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", int64(3))
	f.Add("../etc", "u", "-1", "zz", int64(-1))
	f.Add("f", "u\r\nX: y", "99999999999999999999", "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", int64(1<<40))
	now := time.UnixMilli(1795346540000)
	f.Fuzz(func(t *testing.T, id, employee, createAt, sum string, length int64) {
		r := httptest.NewRequest("PUT", "/v1/files/x", nil)
		r.SetPathValue("id", id)
		r.Header = http.Header{"X-Sealgate-Employee": {employee}, "X-Sealgate-Create-At": {createAt}, "X-Sealgate-Content-Sha256": {sum}}
		r.ContentLength = length
		up, err := parseFileUpload(r, 1<<20, now)
		if err != nil {
			var bad *BadRequestError
			if !errors.As(err, &bad) || (bad.Status != 400 && bad.Status != 413) || bad.Reason == "" {
				t.Fatalf("unclassified refusal %v", err)
			}
			return
		}
		if !plainID(up.FileID) || !plainID(up.Employee) || up.CreateAt.UnixMilli() <= 0 || up.CreateAt.After(now.Add(maxClockSkew)) || length > 1<<20 || up.Limit != 1<<20 {
			t.Fatalf("accepted a bad upload: %+v", up)
		}
	})
}
