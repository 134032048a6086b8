package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// approvalFixture seals two days of alice and one of bob, and returns the
// shares of the given slot for alice's days, ready for an approval.
func approvalFixture(t *testing.T) (*fixture, []*Sealed, func(slot int) []*ApprovalShare) {
	f := newFixture(t, 3)
	d1, d2 := f.now.Add(-48*time.Hour), f.now.Add(-24*time.Hour)
	sealed := []*Sealed{
		f.seal(t, ev("alice", "p1", KindPosted, d1, "alice day 1")),
		f.seal(t, ev("alice", "p2", KindPosted, d2, "alice day 2")),
		f.seal(t, ev("bob", "p3", KindPosted, d1, "bob day 1")),
	}
	shares := func(slot int) []*ApprovalShare {
		var out []*ApprovalShare
		for _, s := range sealed[:2] {
			day := Day(time.Unix(s.Hour*3600, 0))
			kr, _ := ParseKeyRecord(s.Tag, s.KeyRecord, f.keys.Verifier())
			ep, _ := ParseEpochRecord(s.Epoch, f.keys.Verifier())
			sh, err := OpenShare(f.ids[slot], slot, ep, kr, "alice", day)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, &ApprovalShare{Share: *sh, Day: day, Employee: "alice"})
		}
		return out
	}
	return f, sealed, shares
}

func TestApprovalsReleaseExactlyTheOrder(t *testing.T) {
	f, sealed, shares := approvalFixture(t)
	orderHash := sha256.Sum256([]byte("order 1"))
	key, err := NewOrderKey()
	if err != nil {
		t.Fatal(err)
	}
	var approvals [][]byte
	for _, slot := range []int{0, 2, 4} {
		a, err := SealApproval(f.ids[slot], slot, orderHash, key.Public(), shares(slot))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(a, []byte("alice day")) {
			t.Fatal("approval holds content")
		}
		approvals = append(approvals, a)
	}
	// At quorum: open the three approvals and rebuild both of alice's days.
	byKR := map[KeyRecordID][]*Share{}
	for i, slot := range []int{0, 2, 4} {
		got, err := OpenApproval(approvals[i], slot, f.ids[slot].Recipient(), orderHash, key)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range got {
			if s.Employee != "alice" {
				t.Fatal("a share of another employee")
			}
			sh := s.Share
			byKR[s.KeyRecordID] = append(byKR[s.KeyRecordID], &sh)
		}
	}
	for _, s := range sealed[:2] {
		day := Day(time.Unix(s.Hour*3600, 0))
		kr, _ := ParseKeyRecord(s.Tag, s.KeyRecord, f.keys.Verifier())
		dk, err := RecoverDayKey(kr, "alice", day, byKR[s.KeyRecordID])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenRecord(dk, s.Ref, s.Record); err != nil {
			t.Fatal(err)
		}
	}
	if len(byKR) != 2 {
		t.Fatalf("released %d day keys, want alice's 2", len(byKR))
	}
}

func TestApprovalRefusals(t *testing.T) {
	f, _, shares := approvalFixture(t)
	orderHash := sha256.Sum256([]byte("order 1"))
	otherHash := sha256.Sum256([]byte("order 2"))
	key, _ := NewOrderKey()
	otherKey, _ := NewOrderKey()
	good, err := SealApproval(f.ids[1], 1, orderHash, key.Public(), shares(1))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		b    []byte
		slot int
		hash [32]byte
		key  *OrderKey
		want error
	}{
		{"replayed onto another order", good, 1, otherHash, key, ErrAuth},
		{"opened with another order's key", good, 1, orderHash, otherKey, ErrAuth},
		{"claimed for another slot", good, 2, orderHash, key, ErrAuth},
		{"bit flip in a share", flipAt(good, len(good)-70), 1, orderHash, key, ErrAuth},
		{"bit flip in the signature", flipAt(good, len(good)-1), 1, orderHash, key, ErrAuth},
		{"truncated", good[:40], 1, orderHash, key, ErrMalformed},
	}
	for _, c := range cases {
		slotKey := f.ids[c.slot].Recipient()
		if _, err := OpenApproval(c.b, c.slot, slotKey, c.hash, c.key); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	// Forged: slot 3's key signs an approval claiming to be slot 1's.
	forged, _ := SealApproval(f.ids[3], 1, orderHash, key.Public(), shares(1))
	if _, err := OpenApproval(forged, 1, f.ids[1].Recipient(), orderHash, key); !errors.Is(err, ErrAuth) {
		t.Fatalf("forged approval: %v", err)
	}
	// A share relabelled to another employee-day does not open.
	sh := shares(1)
	sh[0].Day = "2026-01-01"
	moved, _ := SealApproval(f.ids[1], 1, orderHash, key.Public(), sh)
	got, err := OpenApproval(moved, 1, f.ids[1].Recipient(), orderHash, key)
	if err != nil {
		t.Fatal(err)
	}
	kr := ParseKeyRecordMust(t, f, got[0].KeyRecordID)
	if _, err := RecoverDayKey(kr, "alice", "2026-01-01", []*Share{&got[0].Share}); err == nil {
		t.Fatal("a relabelled share rebuilt a key")
	}
}

func flipAt(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

// ParseKeyRecordMust finds and parses the sealer's key record by id.
func ParseKeyRecordMust(t *testing.T, f *fixture, id KeyRecordID) *KeyRecord {
	live := f.sealer.byID[id]
	kr, err := ParseKeyRecord(live.dk.tag, live.keyRecord, f.keys.Verifier())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
