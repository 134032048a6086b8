package crypto

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Exporter derives secrets from an established HPKE context (RFC 9180 §5.3).
// Both sides of a slot epoch hold one; equal contexts export equal secrets.
type Exporter interface {
	Export(context string, length int) ([]byte, error)
}

// Recipient is the public side of an approver slot, used by the gateway. It
// opens one KEM context per epoch; the enc it returns is stored in the
// epoch record.
type Recipient interface {
	// KeyID names the slot key so that an identity can tell whether an epoch
	// was made for it. It is public and stable.
	KeyID() string
	Encapsulate(info []byte) (enc []byte, ex Exporter, err error)
}

// Identity is the private side of an approver slot, used by an approver. An
// HSM- or KMS-backed slot implements it by decapsulating inside the device.
type Identity interface {
	KeyID() string
	Decapsulate(enc, info []byte) (Exporter, error)
}

// KEM identifiers (RFC 9180 and draft-ietf-hpke-pq) that slots may use.
const (
	KEMMLKEM768X25519 uint16 = 0x647a // default: post-quantum hybrid
	KEMX25519         uint16 = 0x0020
)

func kemByID(id uint16) (hpke.KEM, error) {
	switch id {
	case KEMMLKEM768X25519, KEMX25519:
		return hpke.NewKEM(id)
	default:
		return nil, fmt.Errorf("slot KEM 0x%04x not supported: %w", id, ErrMalformed)
	}
}

var (
	slotKDF  = hpke.HKDFSHA256()
	slotAEAD = hpke.ExportOnly()
)

// HPKERecipient is a slot's public key: an HPKE public key (Go's
// crypto/hpke) that shares are escrowed to, and the Ed25519 key that
// verifies the slot's approvals.
type HPKERecipient struct {
	pk     hpke.PublicKey
	verify ed25519.PublicKey
}

// HPKEIdentity is a slot's private key: the HPKE private key and the
// Ed25519 key that signs approvals.
type HPKEIdentity struct {
	sk   hpke.PrivateKey
	sign ed25519.PrivateKey
}

// GenerateSlotKey creates a new slot key pair with the given KEM.
func GenerateSlotKey(kemID uint16) (*HPKEIdentity, error) {
	kem, err := kemByID(kemID)
	if err != nil {
		return nil, err
	}
	sk, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generate slot key: %w", err)
	}
	_, sign, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate slot key: %w", err)
	}
	return &HPKEIdentity{sk: sk, sign: sign}, nil
}

func slotKeyID(pk hpke.PublicKey, verify ed25519.PublicKey) string {
	h := sha256.New()
	h.Write([]byte("sealgate/slotkey/v1"))
	h.Write([]byte{byte(pk.KEM().ID() >> 8), byte(pk.KEM().ID())})
	h.Write(pk.Bytes())
	h.Write(verify)
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Recipient returns the public side of the identity.
func (i *HPKEIdentity) Recipient() *HPKERecipient {
	return &HPKERecipient{pk: i.sk.PublicKey(), verify: i.sign.Public().(ed25519.PublicKey)}
}

// KeyID implements Identity.
func (i *HPKEIdentity) KeyID() string { return i.Recipient().KeyID() }

// Decapsulate implements Identity.
func (i *HPKEIdentity) Decapsulate(enc, info []byte) (Exporter, error) {
	r, err := hpke.NewRecipient(enc, i.sk, slotKDF, slotAEAD, info)
	if err != nil {
		return nil, fmt.Errorf("decapsulate epoch: %w", ErrAuth)
	}
	return r, nil
}

// KeyID implements Recipient.
func (r *HPKERecipient) KeyID() string { return slotKeyID(r.pk, r.verify) }

// Encapsulate implements Recipient.
func (r *HPKERecipient) Encapsulate(info []byte) ([]byte, Exporter, error) {
	enc, s, err := hpke.NewSender(r.pk, slotKDF, slotAEAD, info)
	if err != nil {
		return nil, nil, fmt.Errorf("encapsulate epoch: %w", err)
	}
	return enc, s, nil
}

// KEMID names the KEM of the slot key.
func (r *HPKERecipient) KEMID() uint16 { return r.pk.KEM().ID() }

const (
	publicKeyPrefix = "sealgate-slot-public-v1"
	secretKeyPrefix = "sealgate-slot-secret-v1"
)

// String encodes the public key as one line of text:
//
//	sealgate-slot-public-v1:<kem id, 4 hex digits>:<base64url KEM public key>:<base64url Ed25519 public key>
func (r *HPKERecipient) String() string {
	return fmt.Sprintf("%s:%04x:%s:%s", publicKeyPrefix, r.pk.KEM().ID(),
		base64.RawURLEncoding.EncodeToString(r.pk.Bytes()), base64.RawURLEncoding.EncodeToString(r.verify))
}

// ParseRecipient parses the one-line public key form.
func ParseRecipient(s string) (*HPKERecipient, error) {
	kemID, raw, sig, err := parseKeyLine(strings.TrimSpace(s), publicKeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("parse slot public key: %w", err)
	}
	kem, err := kemByID(kemID)
	if err != nil {
		return nil, fmt.Errorf("parse slot public key: %w", err)
	}
	pk, err := kem.NewPublicKey(raw)
	if err != nil || len(sig) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("parse slot public key: %w", ErrMalformed)
	}
	return &HPKERecipient{pk: pk, verify: ed25519.PublicKey(sig)}, nil
}

// parseKeyLine splits prefix:<kem>:<kem key>:<signing key>.
func parseKeyLine(s, prefix string) (uint16, []byte, []byte, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 4 || parts[0] != prefix {
		return 0, nil, nil, fmt.Errorf("want %s:<kem>:<key>:<signing key>: %w", prefix, ErrMalformed)
	}
	id, err := strconv.ParseUint(parts[1], 16, 16)
	if err != nil || len(parts[1]) != 4 {
		return 0, nil, nil, fmt.Errorf("kem id: %w", ErrMalformed)
	}
	raw, err1 := base64.RawURLEncoding.DecodeString(parts[2])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil {
		return 0, nil, nil, fmt.Errorf("key bytes: %w", ErrMalformed)
	}
	return uint16(id), raw, sig, nil
}

// ErrPassphrase is returned when a slot key file does not open with the
// given passphrase.
var ErrPassphrase = errors.New("wrong passphrase or not a slot key file")

// ScryptWorkFactor is the age scrypt work factor (log2 N) used when a slot key
// file is written. 18 is age's default (about a second here); init for test
// and demo deployments lowers it.
const ScryptWorkFactor = 18

// EncryptIdentity writes the private key protected by a passphrase, as an age
// file with an scrypt recipient (filippo.io/age), so no format is invented.
func EncryptIdentity(w io.Writer, id *HPKEIdentity, passphrase string, workFactor int) error {
	if passphrase == "" {
		return errors.New("encrypt slot key: empty passphrase")
	}
	rcp, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return fmt.Errorf("encrypt slot key: %w", err)
	}
	rcp.SetWorkFactor(workFactor)
	aw := armor.NewWriter(w)
	ew, err := age.Encrypt(aw, rcp)
	if err != nil {
		return fmt.Errorf("encrypt slot key: %w", err)
	}
	raw, err := id.sk.Bytes()
	if err != nil {
		return fmt.Errorf("encrypt slot key: %w", err)
	}
	defer wipe(raw)
	line := fmt.Sprintf("%s:%04x:%s:%s\n", secretKeyPrefix, id.sk.KEM().ID(),
		base64.RawURLEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(id.sign.Seed()))
	if _, err := io.WriteString(ew, line); err != nil {
		return fmt.Errorf("encrypt slot key: %w", err)
	}
	if err := ew.Close(); err != nil {
		return fmt.Errorf("encrypt slot key: %w", err)
	}
	return aw.Close()
}

// DecryptIdentity opens a slot key file written by EncryptIdentity.
func DecryptIdentity(r io.Reader, passphrase string) (*HPKEIdentity, error) {
	sid, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("open slot key: %w", err)
	}
	sid.SetMaxWorkFactor(22)
	dr, err := age.Decrypt(armor.NewReader(bufio.NewReader(r)), sid)
	if err != nil {
		return nil, fmt.Errorf("open slot key: %w", ErrPassphrase)
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(dr, 64<<10)); err != nil {
		return nil, fmt.Errorf("open slot key: %w", ErrPassphrase)
	}
	defer wipe(buf.Bytes())
	kemID, raw, seed, err := parseKeyLine(strings.TrimSpace(buf.String()), secretKeyPrefix)
	if err != nil {
		return nil, fmt.Errorf("open slot key: %w", err)
	}
	defer wipe(raw)
	defer wipe(seed)
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("open slot key: signing key: %w", ErrMalformed)
	}
	kem, err := kemByID(kemID)
	if err != nil {
		return nil, fmt.Errorf("open slot key: %w", err)
	}
	sk, err := kem.NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("open slot key: %w", ErrMalformed)
	}
	return &HPKEIdentity{sk: sk, sign: ed25519.NewKeyFromSeed(seed)}, nil
}
