package crypto

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"fmt"
)

// An approval is one slot's consent to one order, and the slot's share of
// every day key in the order's scope, re-encrypted to the order's key.
//
//	0x01 | approval target (32) | slot (1) | lp(slot key id) | lp(enc) | n (2)
//	     | n × ( key record id (16) | lp(day) | lp(employee) | sealed share (32+16) )
//	     | signature (64)
//	HPKE      = base mode to the order's public key (ML-KEM-768+X25519), AES-256-GCM,
//	            info "sealgate/approval/v1" | approval target | slot; shares sealed in order
//	share AAD = "sealgate/approval-share/v1" | approval target | slot | key record id | lp(day) | lp(employee)
//	signature = Ed25519(slot signing key, "sealgate/approval/v1" | everything before the signature)
//
// The signature over the approval target makes an approval useless for any other
// order, and the HPKE info and AADs bind every share to the approval target, the
// slot and its employee-day, so neither a replayed approval nor a moved
// share opens.

const approvalVersion = 0x01

var approvalAEAD = hpke.AES256GCM()

// OrderKey is an order's ephemeral HPKE key pair: approvals encrypt shares to
// it, and only the gateway that activates the order holds the private half.
type OrderKey struct{ sk hpke.PrivateKey }

// NewOrderKey makes a fresh post-quantum hybrid order key.
func NewOrderKey() (*OrderKey, error) {
	sk, err := hpke.MLKEM768X25519().GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("new order key: %w", err)
	}
	return &OrderKey{sk: sk}, nil
}

// Public returns the order's public key bytes, published with the order.
func (k *OrderKey) Public() []byte { return k.sk.PublicKey().Bytes() }

func approvalInfo(target [32]byte, slot int) []byte {
	return append(append([]byte("sealgate/approval/v1"), target[:]...), byte(slot))
}

func approvalShareAAD(target [32]byte, slot int, kr KeyRecordID, day, employee string) []byte {
	aad := append([]byte("sealgate/approval-share/v1"), target[:]...)
	aad = append(aad, byte(slot))
	aad = append(aad, kr[:]...)
	aad = appendLPString(aad, day)
	return appendLPString(aad, employee)
}

// ApprovalShare is a decrypted share with the employee-day it belongs to.
type ApprovalShare struct {
	Share
	Day      string
	Employee string
}

// SealApproval re-encrypts a slot's shares to the order's public key and
// signs the result with the slot's signing key.
func SealApproval(id *HPKEIdentity, slot int, target [32]byte, orderPublic []byte, shares []*ApprovalShare) ([]byte, error) {
	if slot < 0 || slot >= maxSlots || len(shares) > 0xffff {
		return nil, fmt.Errorf("seal approval: slot %d, %d shares", slot, len(shares))
	}
	pk, err := hpke.MLKEM768X25519().NewPublicKey(orderPublic)
	if err != nil {
		return nil, fmt.Errorf("seal approval: order key: %w", ErrMalformed)
	}
	enc, sender, err := hpke.NewSender(pk, slotKDF, approvalAEAD, approvalInfo(target, slot))
	if err != nil {
		return nil, fmt.Errorf("seal approval: %w", err)
	}
	out := []byte{approvalVersion}
	out = append(out, target[:]...)
	out = append(out, byte(slot))
	out = appendLPString(out, id.KeyID())
	out = appendLP(out, enc)
	out = binary.BigEndian.AppendUint16(out, uint16(len(shares)))
	for _, s := range shares {
		if s.Slot != slot || len(s.Value) != shareValueSize {
			return nil, fmt.Errorf("seal approval: a share of slot %d in an approval of slot %d", s.Slot, slot)
		}
		ct, err := sender.Seal(approvalShareAAD(target, slot, s.KeyRecordID, s.Day, s.Employee), s.Value)
		if err != nil {
			return nil, fmt.Errorf("seal approval: %w", err)
		}
		out = append(out, s.KeyRecordID[:]...)
		out = appendLPString(out, s.Day)
		out = appendLPString(out, s.Employee)
		out = append(out, ct...)
	}
	sig := ed25519.Sign(id.sign, append([]byte("sealgate/approval/v1"), out...))
	return append(out, sig...), nil
}

// OpenApproval checks an approval's signature against the slot's public key,
// checks that it is for this order and slot, and decrypts its shares with
// the order key.
func OpenApproval(b []byte, slot int, slotKey *HPKERecipient, target [32]byte, key *OrderKey) ([]*ApprovalShare, error) {
	if len(b) < 1+32+1+2+2+2+ed25519.SignatureSize || b[0] != approvalVersion {
		return nil, fmt.Errorf("open approval: %w", ErrMalformed)
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	if !ed25519.Verify(slotKey.verify, append([]byte("sealgate/approval/v1"), body...), sig) {
		return nil, fmt.Errorf("open approval: not signed by slot %d's key: %w", slot, ErrAuth)
	}
	r := reader{b: body[1:]}
	var h [32]byte
	copy(h[:], r.take(32))
	gotSlot := int(r.byte1())
	keyID := string(r.lp())
	enc := r.lp()
	n := int(binary.BigEndian.Uint16(r.take(2)))
	if r.err != nil {
		return nil, fmt.Errorf("open approval: %w", ErrMalformed)
	}
	if h != target {
		return nil, fmt.Errorf("open approval: made for another order: %w", ErrAuth)
	}
	if gotSlot != slot || keyID != slotKey.KeyID() {
		return nil, fmt.Errorf("open approval: made by slot %d, not %d: %w", gotSlot, slot, ErrAuth)
	}
	rcp, err := hpke.NewRecipient(enc, key.sk, slotKDF, approvalAEAD, approvalInfo(target, slot))
	if err != nil {
		return nil, fmt.Errorf("open approval: %w", ErrAuth)
	}
	out := make([]*ApprovalShare, 0, n)
	for i := 0; i < n; i++ {
		s := &ApprovalShare{}
		s.Slot = slot
		copy(s.KeyRecordID[:], r.take(keyRecordIDSize))
		s.Day = string(r.lp())
		s.Employee = string(r.lp())
		ct := r.take(shareValueSize + 16)
		if r.err != nil {
			return nil, fmt.Errorf("open approval: %w", ErrMalformed)
		}
		v, err := rcp.Open(approvalShareAAD(target, slot, s.KeyRecordID, s.Day, s.Employee), ct)
		if err != nil {
			for _, o := range out {
				o.Wipe()
			}
			return nil, fmt.Errorf("open approval: share %d: %w", i, ErrAuth)
		}
		s.Value = v
		out = append(out, s)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("open approval: trailing bytes: %w", ErrMalformed)
	}
	return out, nil
}
