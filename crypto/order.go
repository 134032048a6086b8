package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// An investigation order is bound into the cryptography at three points:
//
//	requester signature = Ed25519(requester key, "sealgate/order/v1" | order hash)
//	order key signature = Gateway Ed25519 (Tink) over "sealgate/order-key/v1" | order hash | order public key
//	approval target     = SHA-256("sealgate/approval-target/v1" | order hash | order public key)
//
// The order hash is the order package's canonical hash of the documented
// order. Approvers verify the first two before they decrypt anything: the
// requester really filed this order, and the key their shares go to is the
// one the gateway made for it (not one slipped into Redis). Approvals sign
// and bind the approval target, so they cover both the document and its key.

// SignOrder signs an order hash with a requester's key. Requester keys are
// slot-format keys (sealgate keygen); only their Ed25519 half is used.
func SignOrder(id *HPKEIdentity, orderHash [32]byte) []byte {
	return ed25519.Sign(id.sign, append([]byte("sealgate/order/v1"), orderHash[:]...))
}

// VerifyOrder checks a requester's signature over an order hash.
func VerifyOrder(r *HPKERecipient, orderHash [32]byte, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(r.verify, append([]byte("sealgate/order/v1"), orderHash[:]...), sig) {
		return fmt.Errorf("order signature: not made by the requester's key: %w", ErrAuth)
	}
	return nil
}

func orderKeyMessage(orderHash [32]byte, public []byte) []byte {
	return append(append([]byte("sealgate/order-key/v1"), orderHash[:]...), public...)
}

// SignOrderKey makes the gateway's signature binding an order key to its order.
func (k *GatewayKeys) SignOrderKey(orderHash [32]byte, public []byte) ([]byte, error) {
	return k.sign(orderKeyMessage(orderHash, public))
}

// VerifyOrderKey checks the gateway's signature binding an order key to its
// order.
func (v *GatewayVerifier) VerifyOrderKey(orderHash [32]byte, public, sig []byte) error {
	if err := v.verify(sig, orderKeyMessage(orderHash, public)); err != nil {
		return fmt.Errorf("order key: %w", err)
	}
	return nil
}

// ApprovalTarget is what an approval binds: the order and its key.
func ApprovalTarget(orderHash [32]byte, public []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("sealgate/approval-target/v1"))
	h.Write(orderHash[:])
	h.Write(public)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Pseudonym is a keyed PRF of an identifier within a named context ("audit",
// "order/<id>"): stable within the context, unlinkable across contexts, and
// not reversible without the gateway's tag key. Used wherever a person must be
// referred to outside a sealed record.
func (k *GatewayKeys) Pseudonym(context, id string) string {
	in := appendLPString([]byte("sealgate/pseudonym/v1"), context)
	in = appendLPString(in, id)
	out, err := k.tag.ComputePrimaryPRF(in, 12)
	if err != nil {
		panic("crypto: pseudonym PRF: " + err.Error()) // HMAC-SHA256 with 12-byte output cannot fail
	}
	return hex.EncodeToString(out)
}

// Order keys live as long as their order. So that a gateway restart does
// not void pending and active orders, the gateway keeps each order key in
// Redis wrapped under a key derived from its own tag PRF:
//
//	wrap key = PRF_tag("sealgate/order-key-wrap/v1"), 32 bytes (GatewayKeys.AEAD)
//	wrapped  = nonce (12) | AES-256-GCM(wrap key, nonce, private key bytes, AAD = "sealgate/order-key/v1" | order hash)
//
// Redis alone cannot unwrap it, and a wrapped key moved to another order
// does not open. Redis forgets it with the order.

func (k *GatewayKeys) orderWrapAEAD() (cipher.AEAD, error) { return k.AEAD("order-key-wrap/v1") }

// AEAD returns an AES-256-GCM AEAD under a key derived from the gateway's
// tag PRF for one purpose: PRF_tag("sealgate/" + purpose), 32 bytes. The
// gateway seals what it must keep in the store or Redis but only it may
// read (wrapped order keys, queued notices) under such keys; distinct
// purposes get independent keys. Callers use random 12-byte nonces.
func (k *GatewayKeys) AEAD(purpose string) (cipher.AEAD, error) {
	key, err := k.tag.ComputePrimaryPRF([]byte("sealgate/"+purpose), 32)
	if err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	defer wipe(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	return cipher.NewGCM(block)
}

// WrapOrderKey wraps an order key for storage with its order.
func (k *GatewayKeys) WrapOrderKey(ok *OrderKey, orderHash [32]byte) ([]byte, error) {
	aead, err := k.orderWrapAEAD()
	if err != nil {
		return nil, err
	}
	raw, err := ok.sk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("order key wrap: %w", err)
	}
	defer wipe(raw)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("order key wrap: %w", err)
	}
	return aead.Seal(nonce, nonce, raw, append([]byte("sealgate/order-key/v1"), orderHash[:]...)), nil
}

// UnwrapOrderKey opens a wrapped order key and checks that it is the key
// whose public half the order published.
func (k *GatewayKeys) UnwrapOrderKey(wrapped []byte, orderHash [32]byte, public []byte) (*OrderKey, error) {
	aead, err := k.orderWrapAEAD()
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("order key unwrap: %w", ErrMalformed)
	}
	n := aead.NonceSize()
	raw, err := aead.Open(nil, wrapped[:n], wrapped[n:], append([]byte("sealgate/order-key/v1"), orderHash[:]...))
	if err != nil {
		return nil, fmt.Errorf("order key unwrap: %w", ErrAuth)
	}
	defer wipe(raw)
	sk, err := hpke.MLKEM768X25519().NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("order key unwrap: %w", ErrMalformed)
	}
	ok := &OrderKey{sk: sk}
	if !bytes.Equal(ok.Public(), public) {
		return nil, fmt.Errorf("order key unwrap: not the order's published key: %w", ErrAuth)
	}
	return ok, nil
}

// A renewal of a deferred notice is signed by the requester and approved by
// the quorum, each signing the same statement:
//
//	statement = SHA-256("sealgate/deferral/v1" | order hash | lp(until date) | lp(ground))
//	requester: Ed25519(requester key, "sealgate/deferral-request/v1" | statement)
//	approver:  Ed25519(slot key, "sealgate/deferral-approval/v1" | slot | statement)

// DeferralStatement is what a renewal's signatures cover.
func DeferralStatement(orderHash [32]byte, until, ground string) [32]byte {
	b := append([]byte("sealgate/deferral/v1"), orderHash[:]...)
	b = appendLPString(b, until)
	b = appendLPString(b, ground)
	return sha256.Sum256(b)
}

// SignDeferralRequest signs a renewal as its requester.
func SignDeferralRequest(id *HPKEIdentity, statement [32]byte) []byte {
	return ed25519.Sign(id.sign, append([]byte("sealgate/deferral-request/v1"), statement[:]...))
}

// VerifyDeferralRequest checks a requester's renewal signature.
func VerifyDeferralRequest(r *HPKERecipient, statement [32]byte, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(r.verify, append([]byte("sealgate/deferral-request/v1"), statement[:]...), sig) {
		return fmt.Errorf("deferral request signature: %w", ErrAuth)
	}
	return nil
}

func deferralApprovalMessage(slot int, statement [32]byte) []byte {
	return append(append([]byte("sealgate/deferral-approval/v1"), byte(slot)), statement[:]...)
}

// SignDeferralApproval signs a slot's approval of a renewal.
func SignDeferralApproval(id *HPKEIdentity, slot int, statement [32]byte) []byte {
	return ed25519.Sign(id.sign, deferralApprovalMessage(slot, statement))
}

// VerifyDeferralApproval checks a slot's approval of a renewal.
func VerifyDeferralApproval(r *HPKERecipient, slot int, statement [32]byte, sig []byte) error {
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(r.verify, deferralApprovalMessage(slot, statement), sig) {
		return fmt.Errorf("deferral approval signature of slot %d: %w", slot, ErrAuth)
	}
	return nil
}
