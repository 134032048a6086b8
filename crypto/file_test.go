package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

// sealFile seals content as file fileID of employee at time at and returns
// the Sealed and the sealed bytes.
func (f *fixture) sealFile(t testing.TB, employee, fileID string, at time.Time, content []byte) (*Sealed, []byte) {
	t.Helper()
	var buf bytes.Buffer
	ref := f.keys.Ref(fileID, KindFile, at.UnixMilli())
	s, w, err := f.sealer.SealFile(employee, at, ref, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatal("SealFile wrote before the first Write")
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return s, buf.Bytes()
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func readFile(dk *DayKey, ref Ref, sealed []byte) ([]byte, error) {
	r, err := OpenFile(dk, ref, bytes.NewReader(sealed))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestSealFileRoundTrip(t *testing.T) {
	f := newFixture(t, 3)
	at := f.now.Add(-time.Hour)
	for _, n := range []int{0, 1, 1000, FileSegmentSize - 100, FileSegmentSize, FileSegmentSize + 1, 3*FileSegmentSize + 12345} {
		content := randomBytes(t, n)
		copy(content, "CANARY-file-content")
		s, sealed := f.sealFile(t, "alice", "file1", at, content)
		if n > 20 && bytes.Contains(sealed, []byte("CANARY")) {
			t.Fatal("clear content in the sealed file")
		}
		if overhead := len(sealed) - n; overhead > recordHeader+64+(n/FileSegmentSize+1)*16 {
			t.Fatalf("%d bytes: overhead %d", n, overhead)
		}
		id, err := FileKeyRecordID(sealed)
		if err != nil || id != s.KeyRecordID {
			t.Fatalf("header names %x, want %x (%v)", id, s.KeyRecordID, err)
		}
		// The escrow path: a quorum rebuilds the day key, which opens the file.
		dk, err := f.recover(t, "alice", Day(at), s.KeyRecord, s.Tag, s.Epoch, 0, 2, 4)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readFile(dk, s.Ref, sealed)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, content) {
			t.Fatalf("%d bytes: content differs", n)
		}
	}
}

// TestSealFileSharesTheDayKey: a file and a post of one employee-day are
// under one key record, so one release opens both.
func TestSealFileSharesTheDayKey(t *testing.T) {
	f := newFixture(t, 3)
	at := f.now.Add(-time.Hour)
	fs, _ := f.sealFile(t, "alice", "file1", at, []byte("x"))
	if fs.KeyRecord == nil || fs.Epoch == nil || fs.Record != nil {
		t.Fatal("the first file of a day must carry its key record and epoch, and no record")
	}
	f.sealer.Stored([]*Sealed{fs})
	ps := f.seal(t, ev("alice", "post1", KindPosted, at, "y"))
	if ps.KeyRecordID != fs.KeyRecordID || ps.KeyRecord != nil {
		t.Fatal("a post of the same day must reuse the file's stored day key")
	}
	fs2, _ := f.sealFile(t, "alice", "file2", at, []byte("z"))
	if fs2.KeyRecordID != fs.KeyRecordID || fs2.KeyRecord != nil || fs2.Epoch != nil {
		t.Fatal("a second file must reuse the stored day key")
	}
}

func TestOpenFileRefusals(t *testing.T) {
	f := newFixture(t, 3)
	at := f.now.Add(-time.Hour)
	content := randomBytes(t, 2*FileSegmentSize+500)
	s, sealed := f.sealFile(t, "alice", "file1", at, content)
	dk, err := f.recover(t, "alice", Day(at), s.KeyRecord, s.Tag, s.Epoch, 0, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	bs, _ := f.sealFile(t, "bob", "file2", at, []byte("bob's"))
	bobKey, err := f.recover(t, "bob", Day(at), bs.KeyRecord, bs.Tag, bs.Epoch, 0, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 1
		return b
	}
	otherRef := f.keys.Ref("file1", KindFile, at.UnixMilli()+1)
	for _, tc := range []struct {
		name   string
		dk     *DayKey
		ref    Ref
		sealed []byte
		want   error
	}{
		{"bitflip in the first segment", dk, s.Ref, flip(recordHeader + 100), ErrAuth},
		{"bitflip in the last tag", dk, s.Ref, flip(-1), ErrAuth},
		{"bitflip in Tink's header (salt)", dk, s.Ref, flip(recordHeader + 5), ErrAuth},
		{"cut at a segment boundary", dk, s.Ref, sealed[:recordHeader+FileSegmentSize], ErrAuth},
		{"cut inside a segment", dk, s.Ref, sealed[:len(sealed)-100], ErrAuth},
		{"last segment dropped", dk, s.Ref, sealed[:recordHeader+2*FileSegmentSize], ErrAuth},
		{"moved to another ref", dk, otherRef, sealed, ErrAuth},
		{"opened with another employee's key", bobKey, s.Ref, sealed, ErrAuth},
		{"unknown format version", dk, s.Ref, append([]byte{0x02}, sealed[1:]...), ErrMalformed},
		{"cut inside the header", dk, s.Ref, sealed[:10], ErrMalformed},
		{"empty", dk, s.Ref, nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readFile(tc.dk, tc.ref, tc.sealed)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if bytes.Equal(got, content) {
				t.Fatal("the whole content came back despite the error")
			}
		})
	}
	// A file presented as sealed under bob's key record: the header check
	// refuses it before any decryption.
	moved := append(append([]byte{recordVersion}, bs.KeyRecordID[:]...), sealed[recordHeader:]...)
	if _, err := readFile(dk, s.Ref, moved); !errors.Is(err, ErrAuth) {
		t.Fatalf("other key record in the header: %v", err)
	}
	dk.Wipe()
	if _, err := OpenFile(dk, s.Ref, bytes.NewReader(sealed)); err == nil {
		t.Fatal("a wiped day key opened a file")
	}
}

// TestFileKeyIsNotTheRecordKey: the streaming key is derived with its own
// HKDF info, so a record key never doubles as a file key.
func TestFileKeyIsNotTheRecordKey(t *testing.T) {
	var id KeyRecordID
	seed := bytes.Repeat([]byte{7}, 32)
	dk, err := deriveDayKey(seed, "alice", "2026-11-03", id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(dk.raw, dk.rawFiles) {
		t.Fatal("file key equals record key")
	}
	other, err := deriveDayKey(seed, "alice", "2026-11-04", id)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(dk.rawFiles, other.rawFiles) {
		t.Fatal("file key does not depend on the day")
	}
}
