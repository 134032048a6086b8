package storetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// BenchPut is the Put benchmark both stores run: batches of 100 records with
// 400-byte blobs (about a sealed post). Serial is one writer; Parallel runs
// many writers, like concurrent ingest requests, whose commits a store may
// group. open returns a fresh, empty store.
func BenchPut(b *testing.B, open func(b *testing.B) store.Store) {
	b.Run("Serial", func(b *testing.B) { benchPut(b, open(b), 0) })
	for _, p := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("Parallel/writers=%d", p*runtime.GOMAXPROCS(0)), func(b *testing.B) { benchPut(b, open(b), p) })
	}
}

func benchPut(b *testing.B, s store.Store, parallelism int) {
	defer s.Close()
	ctx := context.Background()
	b.SetBytes(100 * 400)
	b.ResetTimer()
	start := time.Now()
	if parallelism > 0 {
		b.SetParallelism(parallelism) // parallelism × GOMAXPROCS writers
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Put(ctx, benchBatch(100)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	} else {
		for i := 0; i < b.N; i++ {
			if _, err := s.Put(ctx, benchBatch(100)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)*100/time.Since(start).Seconds(), "records/s")
}

func benchBatch(n int) *store.Batch {
	var tag crypto.Tag
	var kr crypto.KeyRecordID
	rand.Read(tag[:])
	rand.Read(kr[:])
	b := &store.Batch{KeyRecords: []store.KeyRecord{{ID: kr, Tag: tag, Blob: make([]byte, 200)}}}
	blobs := make([]byte, n*400)
	rand.Read(blobs)
	for i := 0; i < n; i++ {
		r := store.Record{Tag: tag, Hour: 480000 + int64(i%24), KeyRecordID: kr, Blob: blobs[i*400 : (i+1)*400]}
		rand.Read(r.Ref[:])
		b.Records = append(b.Records, r)
	}
	return b
}
