package crypto

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

type fixture struct {
	keys   *GatewayKeys
	ids    []*HPKEIdentity
	sealer *Sealer
	now    time.Time
}

var (
	slotOnce sync.Once
	slotIDs  []*HPKEIdentity
)

// testSlots returns five PQ-hybrid slot identities, generated once per run.
func testSlots(t testing.TB) []*HPKEIdentity {
	slotOnce.Do(func() {
		for i := 0; i < 5; i++ {
			id, err := GenerateSlotKey(KEMMLKEM768X25519)
			if err != nil {
				panic(err)
			}
			slotIDs = append(slotIDs, id)
		}
	})
	return slotIDs
}

func newFixture(t testing.TB, quorum int) *fixture {
	t.Helper()
	keys, err := NewGatewayKeys()
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: keys, ids: testSlots(t), now: time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC)}
	var rcps []Recipient
	for _, id := range f.ids {
		rcps = append(rcps, id.Recipient())
	}
	f.sealer, err = NewSealer(SealerConfig{Keys: keys, Slots: rcps, Quorum: quorum, Grace: 2 * time.Hour, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) seal(t testing.TB, ev *Event) *Sealed {
	t.Helper()
	s, err := f.sealer.Seal(ev, f.keys.Ref(ev.PostID, ev.Kind, ev.Version))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recover rebuilds the day key of a sealed output with the given slots.
func (f *fixture) recover(t testing.TB, employee, day string, keyRecord []byte, tag Tag, epochRec []byte, slots ...int) (*DayKey, error) {
	t.Helper()
	kr, err := ParseKeyRecord(tag, keyRecord, f.keys.Verifier())
	if err != nil {
		return nil, err
	}
	ep, err := ParseEpochRecord(epochRec, f.keys.Verifier())
	if err != nil {
		return nil, err
	}
	var shares []*Share
	for _, s := range slots {
		sh, err := OpenShare(f.ids[s], s, ep, kr, employee, day)
		if err != nil {
			return nil, err
		}
		shares = append(shares, sh)
	}
	return RecoverDayKey(kr, employee, day, shares)
}

func ev(employee, post string, kind Kind, at time.Time, body string) *Event {
	return &Event{Employee: employee, PostID: post, Kind: kind, Version: at.UnixMilli(), Time: at, Body: []byte(body)}
}

func TestSealRecoverOpen(t *testing.T) {
	f := newFixture(t, 3)
	at := f.now.Add(-time.Hour)
	e := ev("alice", "post1", KindPosted, at, `{"message":"CANARY-hello"}`)
	s := f.seal(t, e)
	if s.KeyRecord == nil || s.Epoch == nil {
		t.Fatal("first record must carry its key record and epoch")
	}
	if bytes.Contains(s.Record, []byte("CANARY")) || bytes.Contains(s.KeyRecord, []byte("alice")) {
		t.Fatal("clear text in sealed output")
	}
	for _, slots := range [][]int{{0, 1, 2}, {2, 3, 4}, {4, 0, 2}, {0, 1, 2, 3, 4}} {
		dk, err := f.recover(t, "alice", Day(at), s.KeyRecord, s.Tag, s.Epoch, slots...)
		if err != nil {
			t.Fatalf("slots %v: %v", slots, err)
		}
		got, err := OpenRecord(dk, s.Ref, s.Record)
		if err != nil {
			t.Fatalf("slots %v: %v", slots, err)
		}
		if got.Employee != "alice" || got.PostID != "post1" || got.Kind != KindPosted || got.Version != e.Version || !got.Time.Equal(at.Truncate(time.Millisecond)) || string(got.Body) != string(e.Body) {
			t.Fatalf("opened %+v", got)
		}
	}
	// A second event of the same employee-day reuses the day key; once stored
	// the key record is no longer carried.
	f.sealer.Stored([]*Sealed{s})
	s2 := f.seal(t, ev("alice", "post2", KindEdited, at.Add(time.Minute), "x"))
	if s2.KeyRecordID != s.KeyRecordID || s2.KeyRecord != nil || s2.Epoch != nil {
		t.Fatal("same employee-day must reuse the stored day key")
	}
	// Another employee, same day: other key, same epoch.
	s3 := f.seal(t, ev("bob", "post3", KindPosted, at, "y"))
	if s3.KeyRecordID == s.KeyRecordID || s3.Tag == s.Tag || s3.EpochID != s.EpochID || s3.KeyRecord == nil || s3.Epoch != nil {
		t.Fatal("bob must get his own day key in the same epoch")
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, 3)
	at := f.now.Add(-time.Hour)
	day := Day(at)
	a := f.seal(t, ev("alice", "p1", KindPosted, at, "alice text"))
	a2 := f.seal(t, ev("alice", "p2", KindPosted, at, "alice other"))
	b := f.seal(t, ev("bob", "p3", KindPosted, at, "bob text"))
	yesterday := at.Add(-24 * time.Hour)
	ay := f.seal(t, ev("alice", "p4", KindPosted, yesterday, "alice yesterday"))
	dk, err := f.recover(t, "alice", day, a.KeyRecord, a.Tag, a.Epoch, 0, 1, 2)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("wrong employee", func(t *testing.T) {
		wrong := *dk
		wrong.employee = "bob"
		if _, err := OpenRecord(&wrong, a.Ref, a.Record); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
		if _, err := f.recover(t, "bob", day, a.KeyRecord, a.Tag, a.Epoch, 0, 1, 2); !errors.Is(err, ErrAuth) {
			t.Fatalf("shares opened for another employee: %v", err)
		}
	})
	t.Run("wrong day", func(t *testing.T) {
		wrong := *dk
		wrong.day = Day(yesterday)
		if _, err := OpenRecord(&wrong, a.Ref, a.Record); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
		if _, err := f.recover(t, "alice", Day(yesterday), a.KeyRecord, a.Tag, a.Epoch, 0, 1, 2); !errors.Is(err, ErrAuth) {
			t.Fatalf("shares opened for another day: %v", err)
		}
	})
	t.Run("record moved to another post", func(t *testing.T) {
		if _, err := OpenRecord(dk, a2.Ref, a.Record); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
		if _, err := OpenRecord(dk, f.keys.Ref("p1", KindEdited, at.UnixMilli()), a.Record); !errors.Is(err, ErrAuth) {
			t.Fatalf("other kind: got %v", err)
		}
	})
	t.Run("record of another employee under this key", func(t *testing.T) {
		if _, err := OpenRecord(dk, b.Ref, b.Record); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for _, n := range []int{0, 1, 16, 17, 17 + 12, len(a.Record) - 1} {
			_, err := OpenRecord(dk, a.Ref, a.Record[:n])
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("len %d: got %v", n, err)
			}
		}
		if _, err := ParseKeyRecord(a.Tag, a.KeyRecord[:len(a.KeyRecord)-1], f.keys.Verifier()); err == nil {
			t.Fatal("truncated key record accepted")
		}
	})
	t.Run("bit flips", func(t *testing.T) {
		for i := 0; i < len(a.Record); i++ {
			for _, bit := range []byte{0x01, 0x80} {
				r := bytes.Clone(a.Record)
				r[i] ^= bit
				if _, err := OpenRecord(dk, a.Ref, r); err == nil {
					t.Fatalf("flip at %d accepted", i)
				}
			}
		}
		for i := 0; i < len(a.KeyRecord); i++ {
			r := bytes.Clone(a.KeyRecord)
			r[i] ^= 0x04
			if _, err := ParseKeyRecord(a.Tag, r, f.keys.Verifier()); err == nil {
				t.Fatalf("key record flip at %d accepted", i)
			}
		}
	})
	t.Run("M-1 shares", func(t *testing.T) {
		if _, err := f.recover(t, "alice", day, a.KeyRecord, a.Tag, a.Epoch, 0, 1); !errors.Is(err, ErrTooFewShares) {
			t.Fatalf("got %v", err)
		}
		// The same share twice is one share.
		kr, _ := ParseKeyRecord(a.Tag, a.KeyRecord, f.keys.Verifier())
		ep, _ := ParseEpochRecord(a.Epoch, f.keys.Verifier())
		s0, _ := OpenShare(f.ids[0], 0, ep, kr, "alice", day)
		s1, _ := OpenShare(f.ids[1], 1, ep, kr, "alice", day)
		if _, err := RecoverDayKey(kr, "alice", day, []*Share{s0, s1, s0}); !errors.Is(err, ErrTooFewShares) {
			t.Fatalf("duplicate share counted: %v", err)
		}
	})
	t.Run("corrupted share", func(t *testing.T) {
		kr, _ := ParseKeyRecord(a.Tag, a.KeyRecord, f.keys.Verifier())
		ep, _ := ParseEpochRecord(a.Epoch, f.keys.Verifier())
		var shares []*Share
		for i := 0; i < 3; i++ {
			s, err := OpenShare(f.ids[i], i, ep, kr, "alice", day)
			if err != nil {
				t.Fatal(err)
			}
			shares = append(shares, s)
		}
		shares[1].Value[3] ^= 1
		if _, err := RecoverDayKey(kr, "alice", day, shares); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("share of another employee-day", func(t *testing.T) {
		kr, _ := ParseKeyRecord(a.Tag, a.KeyRecord, f.keys.Verifier())
		ep, _ := ParseEpochRecord(a.Epoch, f.keys.Verifier())
		krY, _ := ParseKeyRecord(ay.Tag, ay.KeyRecord, f.keys.Verifier())
		epY, _ := ParseEpochRecord(ay.Epoch, f.keys.Verifier())
		s0, _ := OpenShare(f.ids[0], 0, ep, kr, "alice", day)
		s1, _ := OpenShare(f.ids[1], 1, ep, kr, "alice", day)
		foreign, err := OpenShare(f.ids[2], 2, epY, krY, "alice", Day(yesterday))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := RecoverDayKey(kr, "alice", day, []*Share{s0, s1, foreign}); !errors.Is(err, ErrTooFewShares) {
			t.Fatalf("foreign share counted: %v", err)
		}
		foreign.KeyRecordID = kr.ID // relabelled by an attacker
		if _, err := RecoverDayKey(kr, "alice", day, []*Share{s0, s1, foreign}); !errors.Is(err, ErrAuth) {
			t.Fatalf("relabelled foreign share: %v", err)
		}
		// Decrypting a key record's share with another epoch fails.
		if _, err := OpenShare(f.ids[0], 0, epY, kr, "alice", day); !errors.Is(err, ErrAuth) {
			t.Fatalf("wrong epoch: %v", err)
		}
	})
	t.Run("wrong slot identity", func(t *testing.T) {
		kr, _ := ParseKeyRecord(a.Tag, a.KeyRecord, f.keys.Verifier())
		ep, _ := ParseEpochRecord(a.Epoch, f.keys.Verifier())
		if _, err := OpenShare(f.ids[1], 0, ep, kr, "alice", day); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("key record moved to another tag", func(t *testing.T) {
		if _, err := ParseKeyRecord(b.Tag, a.KeyRecord, f.keys.Verifier()); !errors.Is(err, ErrAuth) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("forged with public keys only", func(t *testing.T) {
		forger := newFixture(t, 3) // same public slot keys, its own gateway keys
		fs := forger.seal(t, ev("alice", "p9", KindPosted, at, "forged"))
		if _, err := ParseKeyRecord(a.Tag, fs.KeyRecord, f.keys.Verifier()); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged key record: %v", err)
		}
		if _, err := ParseEpochRecord(fs.Epoch, f.keys.Verifier()); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged epoch: %v", err)
		}
		if _, err := OpenRecord(dk, a.Ref, fs.Record); !errors.Is(err, ErrAuth) {
			t.Fatalf("forged record under genuine key: %v", err)
		}
	})
}

func TestSweepForgetsPastDays(t *testing.T) {
	f := newFixture(t, 2)
	day1 := time.Date(2026, 11, 3, 23, 0, 0, 0, time.UTC)
	f.now = day1
	s1 := f.seal(t, ev("alice", "p1", KindPosted, day1, "a"))
	f.now = day1.Add(2 * time.Hour) // 01:00 next day, within grace
	if n := f.sealer.Sweep(); n != 0 {
		t.Fatalf("swept %d within grace", n)
	}
	f.now = day1.Add(3*time.Hour + time.Second) // past 02:00
	if n := f.sealer.Sweep(); n != 1 || f.sealer.Live() != 0 {
		t.Fatalf("swept %d, live %d", n, f.sealer.Live())
	}
	// A late event of the swept day gets a new day key (a second key record).
	s2 := f.seal(t, ev("alice", "p2", KindPosted, day1, "b"))
	if s2.KeyRecordID == s1.KeyRecordID || s2.KeyRecord == nil || s2.EpochID == s1.EpochID {
		t.Fatal("a swept day key was reused")
	}
}

func TestKeyRecordSize(t *testing.T) {
	f := newFixture(t, 3)
	s := f.seal(t, ev("alice", "p1", KindPosted, f.now, "a"))
	t.Logf("key record: %d bytes; epoch record: %d bytes (N=5, ML-KEM-768+X25519)", len(s.KeyRecord), len(s.Epoch))
	if len(s.KeyRecord) > 600 {
		t.Fatalf("key record %d bytes > 600", len(s.KeyRecord))
	}
}

func TestSealerConfigRefusals(t *testing.T) {
	keys, _ := NewGatewayKeys()
	r := testSlots(t)[0].Recipient()
	for _, c := range []SealerConfig{
		{Keys: keys, Slots: []Recipient{r, r}, Quorum: 1},
		{Keys: keys, Slots: []Recipient{r, r}, Quorum: 3},
		{Keys: keys, Quorum: 2},
		{Slots: []Recipient{r, r}, Quorum: 2},
	} {
		if _, err := NewSealer(c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestSlotKeyFile(t *testing.T) {
	for _, kem := range []uint16{KEMMLKEM768X25519, KEMX25519} {
		id, err := GenerateSlotKey(kem)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := EncryptIdentity(&buf, id, "correct horse", 10); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(buf.String(), "-----BEGIN AGE ENCRYPTED FILE-----") {
			t.Fatalf("not an armored age file: %.40q", buf.String())
		}
		back, err := DecryptIdentity(bytes.NewReader(buf.Bytes()), "correct horse")
		if err != nil {
			t.Fatal(err)
		}
		if back.KeyID() != id.KeyID() {
			t.Fatal("key id changed")
		}
		if _, err := DecryptIdentity(bytes.NewReader(buf.Bytes()), "wrong"); !errors.Is(err, ErrPassphrase) {
			t.Fatalf("wrong passphrase: %v", err)
		}
		pub, err := ParseRecipient(id.Recipient().String())
		if err != nil || pub.KeyID() != id.KeyID() || pub.KEMID() != kem {
			t.Fatalf("public key round trip: %v", err)
		}
	}
	for _, bad := range []string{"", "sealgate-slot-public-v1:647a", "sealgate-slot-public-v1:zzzz:AAAA", "sealgate-slot-public-v1:0010:AAAA", "sealgate-slot-public-v1:647a:AAAA", "other:647a:AAAA"} {
		if _, err := ParseRecipient(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestGatewayKeysRoundTrip(t *testing.T) {
	k, _ := NewGatewayKeys()
	var buf bytes.Buffer
	if err := k.Write(&buf); err != nil {
		t.Fatal(err)
	}
	k2, err := ReadGatewayKeys(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if k.Tag("a", "2026-01-01") != k2.Tag("a", "2026-01-01") || k.Ref("p", KindPosted, 1) != k2.Ref("p", KindPosted, 1) {
		t.Fatal("PRFs changed across write/read")
	}
	if k.Tag("a", "2026-01-01") == k.Tag("a", "2026-01-02") || k.Tag("ab", "2026-01-01") == k.Tag("a", "b2026-01-01") {
		t.Fatal("tags collide")
	}
	var pub bytes.Buffer
	if err := k.Verifier().WritePublic(&pub); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(pub.String(), "privateKey") {
		t.Fatal("public file holds a private key")
	}
	if _, err := ReadGatewayVerifier(&pub); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadGatewayKeys(strings.NewReader(`{"format":"x"}`)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad file: %v", err)
	}
}
