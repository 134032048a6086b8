package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"
)

// The sealing benchmarks pair with a raw AES-256-GCM baseline over the same
// 200 bytes, measured in the same run; compare with
// `go test -bench 'Seal200' -count 10 ./crypto | benchstat`.

func BenchmarkSeal200RawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	pt := make([]byte, 200)
	ad := make([]byte, 80) // about the size of a record's AAD
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		rand.Read(nonce) // a real sealer must draw a nonce too
		_ = g.Seal(nil, nonce, pt, ad)
	}
}

func BenchmarkSeal200DayKey(b *testing.B) {
	f := newFixture(b, 3)
	e := ev("alice", "9da1gibgibgtfbw6dt4u3smkzh", KindPosted, f.now, string(make([]byte, 200-2-26-17)))
	if len(recordPlaintext(e)) != 200 {
		b.Fatalf("plaintext %d bytes", len(recordPlaintext(e)))
	}
	f.seal(b, e) // create and cache the day key
	ref := f.keys.Ref(e.PostID, e.Kind, e.Version)
	b.SetBytes(200)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.sealer.Seal(e, ref); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyRecord measures creating one employee-day key record (N=5,
// M=3, PQ hybrid) with the day's epoch already open, as on the ingest path.
func BenchmarkKeyRecord(b *testing.B) {
	f := newFixture(b, 3)
	f.seal(b, ev("warmup", "p", KindPosted, f.now, "x")) // opens the epoch
	b.ReportAllocs()
	i := 0
	var size int
	for b.Loop() {
		i++
		e := ev(fmt.Sprint("employee-", i), "p", KindPosted, f.now, "x")
		s, err := f.sealer.Seal(e, f.keys.Ref(e.PostID, e.Kind, e.Version))
		if err != nil {
			b.Fatal(err)
		}
		size = len(s.KeyRecord)
	}
	b.ReportMetric(float64(size), "bytes/keyrecord")
}

// BenchmarkEpoch measures opening an epoch: one ML-KEM-768+X25519
// encapsulation per slot, once per gateway process and day.
func BenchmarkEpoch(b *testing.B) {
	f := newFixture(b, 3)
	var rcps []Recipient
	for _, id := range f.ids {
		rcps = append(rcps, id.Recipient())
	}
	for b.Loop() {
		if _, err := newEpoch(f.keys, rcps, Day(time.Now())); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecoverAndOpen(b *testing.B) {
	f := newFixture(b, 3)
	s := f.seal(b, ev("alice", "p", KindPosted, f.now, "x"))
	for b.Loop() {
		dk, err := f.recover(b, "alice", Day(f.now), s.KeyRecord, s.Tag, s.Epoch, 0, 2, 4)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := OpenRecord(dk, s.Ref, s.Record); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRef(b *testing.B) {
	f := newFixture(b, 3)
	b.ReportAllocs()
	for b.Loop() {
		f.keys.Ref("9da1gibgibgtfbw6dt4u3smkzh", KindPosted, 1795346528366)
	}
}

// BenchmarkSealFile8MRawAESGCM is the baseline of BenchmarkSealFile8M: AES-256-GCM
// over the same 8 MiB in 1 MiB segments, each with a fresh nonce, written
// nowhere.
func BenchmarkSealFile8MRawAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	blk, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(blk)
	nonce := make([]byte, 12)
	content := make([]byte, 8<<20)
	rand.Read(content)
	out := make([]byte, 0, FileSegmentSize+16)
	b.SetBytes(int64(len(content)))
	for b.Loop() {
		for off := 0; off < len(content); off += FileSegmentSize - 16 {
			rand.Read(nonce)
			out = g.Seal(out[:0], nonce, content[off:min(off+FileSegmentSize-16, len(content))], nil)
		}
	}
}

// BenchmarkSealFile8M seals an 8 MiB file with the day key's streaming AEAD
// (Tink AES-256-GCM-HKDF, 1 MiB segments), written nowhere.
func BenchmarkSealFile8M(b *testing.B) {
	f := newFixture(b, 3)
	at := f.now.Add(-time.Hour)
	content := randomBytes(b, 8<<20)
	ref := f.keys.Ref("file1", KindFile, at.UnixMilli())
	b.SetBytes(int64(len(content)))
	b.ResetTimer()
	for b.Loop() {
		_, w, err := f.sealer.SealFile("alice", at, ref, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(content)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
