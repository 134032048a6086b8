package crypto

import (
	"crypto/ed25519"
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
