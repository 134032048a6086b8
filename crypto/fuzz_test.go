package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// seedVectors adds every vector's bytes of one field to the fuzz corpus.
func seedVectors(f *testing.F, field func(v *vector) string) {
	files, _ := filepath.Glob("testdata/*_*.json")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		var v vector
		if json.Unmarshal(raw, &v) == nil {
			if b, err := hex.DecodeString(field(&v)); err == nil {
				f.Add(b)
			}
		}
	}
}

func FuzzParseKeyRecord(f *testing.F) {
	seedVectors(f, func(v *vector) string { return v.KeyRecord })
	keys, _ := NewGatewayKeys()
	f.Fuzz(func(t *testing.T, b []byte) {
		// Any input either parses (impossible without the signing key) or
		// fails with a classified error, and never panics.
		if _, err := ParseKeyRecord(Tag{}, b, keys.Verifier()); err == nil {
			t.Fatal("unsigned key record accepted")
		} else if errorClass(err) != "auth" && errorClass(err) != "malformed" {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func FuzzParseEpochRecord(f *testing.F) {
	seedVectors(f, func(v *vector) string { return v.Epoch })
	keys, _ := NewGatewayKeys()
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseEpochRecord(b, keys.Verifier()); err == nil {
			t.Fatal("unsigned epoch accepted")
		}
	})
}

func FuzzOpenRecord(f *testing.F) {
	seedVectors(f, func(v *vector) string { return v.Record })
	fx := newFixture(f, 2)
	e := ev("alice", "p", KindPosted, fx.now, "body")
	s := fx.seal(f, e)
	f.Add(s.Record)
	dk := fx.sealer.days[dayKeyName{"alice", unixDay(fx.now)}].dk
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := OpenRecord(dk, s.Ref, b)
		if err == nil && string(b) != string(s.Record) {
			// Only the genuine record opens; AES-GCM forgeries are out of reach.
			t.Fatalf("forged record opened: %+v", got)
		}
	})
}

func FuzzParseRecipient(f *testing.F) {
	f.Add(testSlots(f)[0].Recipient().String())
	f.Add("sealgate-slot-public-v1:0020:AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecipient(s)
		if err == nil {
			// A parsed key re-encodes to a key that parses to the same id.
			r2, err := ParseRecipient(r.String())
			if err != nil || r2.KeyID() != r.KeyID() {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

// FuzzOpenFile: any bytes presented as a sealed file under a real day key
// fail with a classified error (or are the one good vector), never panic,
// and never yield content that was not sealed.
func FuzzOpenFile(f *testing.F) {
	seedVectors(f, func(v *vector) string { return v.File })
	raw, err := os.ReadFile("testdata/good_file_small.json")
	if err != nil {
		f.Fatal(err)
	}
	var good vector
	if err := json.Unmarshal(raw, &good); err != nil {
		f.Fatal(err)
	}
	gk, ids, _ := loadVectorKeys(&testing.T{})
	dk, ref, err := vectorDayKey(&testing.T{}, gk, ids, &good)
	if err != nil {
		f.Fatal(err)
	}
	sealed, _ := hex.DecodeString(good.File)
	want, _ := hex.DecodeString(good.ExpectFile)
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := readFile(dk, ref, b)
		if err == nil {
			if !bytes.Equal(b, sealed) || !bytes.Equal(got, want) {
				t.Fatal("a sealed file that was never sealed opened")
			}
			return
		}
		if c := errorClass(err); c != "auth" && c != "malformed" {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
