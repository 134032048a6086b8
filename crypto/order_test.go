package crypto

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"
)

func TestOrderSignatures(t *testing.T) {
	requester, err := GenerateSlotKey(KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateSlotKey(KEMX25519)
	gw, err := NewGatewayKeys()
	if err != nil {
		t.Fatal(err)
	}
	h1 := sha256.Sum256([]byte("order one"))
	h2 := sha256.Sum256([]byte("order two"))

	sig := SignOrder(requester, h1)
	if err := VerifyOrder(requester.Recipient(), h1, sig); err != nil {
		t.Fatalf("good signature refused: %v", err)
	}
	bad := [][]byte{nil, sig[:63], append(bytes.Clone(sig), 0), SignOrder(other, h1), SignOrder(requester, h2)}
	flipped := bytes.Clone(sig)
	flipped[10] ^= 1
	bad = append(bad, flipped)
	for i, s := range bad {
		if err := VerifyOrder(requester.Recipient(), h1, s); !errors.Is(err, ErrAuth) {
			t.Errorf("bad requester signature %d accepted: %v", i, err)
		}
	}

	k1, _ := NewOrderKey()
	k2, _ := NewOrderKey()
	ks, err := gw.SignOrderKey(h1, k1.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Verifier().VerifyOrderKey(h1, k1.Public(), ks); err != nil {
		t.Fatalf("good order key signature refused: %v", err)
	}
	other2, _ := NewGatewayKeys()
	otherSig, _ := other2.SignOrderKey(h1, k1.Public())
	for name, c := range map[string]struct {
		h   [32]byte
		pub []byte
		sig []byte
	}{
		"key swapped":        {h1, k2.Public(), ks},
		"order swapped":      {h2, k1.Public(), ks},
		"other gateway":      {h1, k1.Public(), otherSig},
		"requester's format": {h1, k1.Public(), SignOrder(requester, h1)},
	} {
		if err := gw.Verifier().VerifyOrderKey(c.h, c.pub, c.sig); !errors.Is(err, ErrAuth) {
			t.Errorf("%s: accepted: %v", name, err)
		}
	}

	if ApprovalTarget(h1, k1.Public()) == ApprovalTarget(h1, k2.Public()) || ApprovalTarget(h1, k1.Public()) == ApprovalTarget(h2, k1.Public()) {
		t.Fatal("approval target does not bind both the order and its key")
	}
}

func TestPseudonym(t *testing.T) {
	gw, _ := NewGatewayKeys()
	a := gw.Pseudonym("audit", "g6e8xk8t6t86tjy8nrqyeqmm5c")
	if a != gw.Pseudonym("audit", "g6e8xk8t6t86tjy8nrqyeqmm5c") || len(a) != 24 {
		t.Fatalf("pseudonym %q is not stable or not 12 bytes of hex", a)
	}
	other, _ := NewGatewayKeys()
	for name, p := range map[string]string{
		"other context": gw.Pseudonym("subject", "g6e8xk8t6t86tjy8nrqyeqmm5c"),
		"other id":      gw.Pseudonym("audit", "jwmtcrk65byjmjan5bgpkh18iw"),
		"other key":     other.Pseudonym("audit", "g6e8xk8t6t86tjy8nrqyeqmm5c"),
		"shifted":       gw.Pseudonym("audi", "tg6e8xk8t6t86tjy8nrqyeqmm5c"),
	} {
		if p == a {
			t.Errorf("%s: same pseudonym", name)
		}
	}
}

func TestWrapOrderKey(t *testing.T) {
	gw, _ := NewGatewayKeys()
	other, _ := NewGatewayKeys()
	ok, _ := NewOrderKey()
	ok2, _ := NewOrderKey()
	h := sha256.Sum256([]byte("order"))
	h2 := sha256.Sum256([]byte("another order"))
	w, err := gw.WrapOrderKey(ok, h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := gw.UnwrapOrderKey(w, h, ok.Public())
	if err != nil || !bytes.Equal(got.Public(), ok.Public()) {
		t.Fatalf("unwrap: %v", err)
	}
	flipped := bytes.Clone(w)
	flipped[20] ^= 1
	for name, c := range map[string]struct {
		gw  *GatewayKeys
		w   []byte
		h   [32]byte
		pub []byte
	}{
		"other order":      {gw, w, h2, ok.Public()},
		"other public key": {gw, w, h, ok2.Public()},
		"other gateway":    {other, w, h, ok.Public()},
		"bit flip":         {gw, flipped, h, ok.Public()},
		"truncated":        {gw, w[:len(w)-1], h, ok.Public()},
		"only a nonce":     {gw, w[:12], h, ok.Public()},
		"empty":            {gw, nil, h, ok.Public()},
	} {
		if _, err := c.gw.UnwrapOrderKey(c.w, c.h, c.pub); !errors.Is(err, ErrAuth) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: unwrapped: %v", name, err)
		}
	}
}

func TestDeferralSignatures(t *testing.T) {
	req, _ := GenerateSlotKey(KEMX25519)
	slot, _ := GenerateSlotKey(KEMX25519)
	h := sha256.Sum256([]byte("order"))
	st := DeferralStatement(h, "2026-12-20", "evidence would be destroyed")
	for name, other := range map[string][32]byte{
		"other order":  DeferralStatement(sha256.Sum256([]byte("x")), "2026-12-20", "evidence would be destroyed"),
		"other date":   DeferralStatement(h, "2026-12-21", "evidence would be destroyed"),
		"other ground": DeferralStatement(h, "2026-12-20", "evidence would be destroyed."),
		"shifted":      DeferralStatement(h, "2026-12-20e", "vidence would be destroyed"),
	} {
		if other == st {
			t.Errorf("%s: same statement", name)
		}
	}
	rs := SignDeferralRequest(req, st)
	if err := VerifyDeferralRequest(req.Recipient(), st, rs); err != nil {
		t.Fatal(err)
	}
	as := SignDeferralApproval(slot, 2, st)
	if err := VerifyDeferralApproval(slot.Recipient(), 2, st, as); err != nil {
		t.Fatal(err)
	}
	bad := []error{
		VerifyDeferralRequest(slot.Recipient(), st, rs),
		VerifyDeferralRequest(req.Recipient(), st, as),
		VerifyDeferralApproval(slot.Recipient(), 3, st, as),
		VerifyDeferralApproval(slot.Recipient(), 2, st, rs),
		VerifyDeferralApproval(slot.Recipient(), 2, DeferralStatement(h, "2026-12-21", "x"), as),
		VerifyOrder(req.Recipient(), st, rs),
	}
	for i, err := range bad {
		if !errors.Is(err, ErrAuth) {
			t.Errorf("case %d accepted: %v", i, err)
		}
	}
}
