package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/signature"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Tag locates the records and key records of one employee-day in the store.
// It is a keyed PRF of (employee, day), so it says nothing without the
// gateway's tag key and two days of one person have unrelated tags.
type Tag [16]byte

// Ref identifies one event version for de-duplication: a keyed PRF of
// (post id, kind, event version). It is bound into the record's AAD.
type Ref [16]byte

// GatewayKeys are the gateway's long-term secrets: the tag and ref PRF keys
// and the Ed25519 key that signs key records and epochs. They cannot open
// any record.
type GatewayKeys struct {
	tagHandle, refHandle, signHandle *keyset.Handle

	tag, ref *prf.Set
	refMAC   *macPool // HMAC-SHA256 under a key derived from the ref PRF, for the hot path
	signer   tink.Signer
	verifier *GatewayVerifier
}

// GatewayVerifier checks the gateway's signatures; it holds only the public key.
type GatewayVerifier struct {
	handle *keyset.Handle
	v      tink.Verifier
}

// NewGatewayKeys creates fresh gateway keys.
func NewGatewayKeys() (*GatewayKeys, error) {
	tagH, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("new tag key: %w", err)
	}
	refH, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("new ref key: %w", err)
	}
	signH, err := keyset.NewHandle(signature.ED25519KeyWithoutPrefixTemplate())
	if err != nil {
		return nil, fmt.Errorf("new signing key: %w", err)
	}
	return gatewayKeysFromHandles(tagH, refH, signH)
}

func gatewayKeysFromHandles(tagH, refH, signH *keyset.Handle) (*GatewayKeys, error) {
	k := &GatewayKeys{tagHandle: tagH, refHandle: refH, signHandle: signH}
	var err error
	if k.tag, err = prf.NewPRFSet(tagH); err != nil {
		return nil, fmt.Errorf("tag key: %w", err)
	}
	if k.ref, err = prf.NewPRFSet(refH); err != nil {
		return nil, fmt.Errorf("ref key: %w", err)
	}
	// Tink's PRF set builds a new HMAC per call, which costs more than
	// sealing a post. The hot path therefore uses a key derived once from
	// the Tink ref key with a pool of standard HMAC-SHA256 instances.
	refKey, err := k.ref.ComputePrimaryPRF([]byte("sealgate/ref-mac-key/v1"), 32)
	if err != nil {
		return nil, fmt.Errorf("ref key: %w", err)
	}
	k.refMAC = newMACPool(refKey)
	wipe(refKey)
	if k.signer, err = signature.NewSigner(signH); err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, err := signH.Public()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if k.verifier, err = newGatewayVerifier(pub); err != nil {
		return nil, err
	}
	return k, nil
}

func newGatewayVerifier(pub *keyset.Handle) (*GatewayVerifier, error) {
	v, err := signature.NewVerifier(pub)
	if err != nil {
		return nil, fmt.Errorf("gateway verifier: %w", err)
	}
	return &GatewayVerifier{handle: pub, v: v}, nil
}

// Tag computes the store tag of (employee, day).
func (k *GatewayKeys) Tag(employee, day string) Tag {
	in := appendLPString([]byte("sealgate/tag/v1"), employee)
	in = appendLPString(in, day)
	out, err := k.tag.ComputePrimaryPRF(in, 16)
	if err != nil {
		panic("crypto: tag PRF: " + err.Error()) // HMAC-SHA256 with 16-byte output cannot fail
	}
	var t Tag
	copy(t[:], out)
	return t
}

// Ref computes the de-duplication reference of one event version.
func (k *GatewayKeys) Ref(postID string, kind Kind, version int64) Ref {
	var buf [96]byte
	in := appendLPString(append(buf[:0], "sealgate/ref/v1"...), postID)
	in = append(in, byte(kind))
	in = strconv.AppendInt(append(in, ':'), version, 10)
	var r Ref
	k.refMAC.sum16(r[:], in)
	return r
}

// Verifier returns the public verifier of the gateway's signatures.
func (k *GatewayKeys) Verifier() *GatewayVerifier { return k.verifier }

func (k *GatewayKeys) sign(msg []byte) ([]byte, error) {
	sig, err := k.signer.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("gateway sign: %w", err)
	}
	if len(sig) != sigSize {
		return nil, fmt.Errorf("gateway sign: signature of %d bytes, want %d", len(sig), sigSize)
	}
	return sig, nil
}

func (v *GatewayVerifier) verify(sig, msg []byte) error {
	if err := v.v.Verify(sig, msg); err != nil {
		return fmt.Errorf("gateway signature: %w", ErrAuth)
	}
	return nil
}

const sigSize = 64

type gatewayKeysFile struct {
	Format  string `json:"format"`
	TagPRF  string `json:"tag_prf"`
	RefPRF  string `json:"ref_prf"`
	Signing string `json:"signing"`
}

const gatewayKeysFormat = "sealgate-gateway-keys-v1"

func writeKeyset(h *keyset.Handle) (string, error) {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewBinaryWriter(&buf)); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func readKeyset(s string) (*keyset.Handle, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrMalformed
	}
	return insecurecleartextkeyset.Read(keyset.NewBinaryReader(bytes.NewReader(raw)))
}

// Write stores the gateway keys as JSON holding three Tink keysets in clear.
// The file must be readable by the gateway only (mode 0600); in production
// mount it from a secret store.
func (k *GatewayKeys) Write(w io.Writer) error {
	f := gatewayKeysFile{Format: gatewayKeysFormat}
	var err error
	if f.TagPRF, err = writeKeyset(k.tagHandle); err != nil {
		return fmt.Errorf("write gateway keys: %w", err)
	}
	if f.RefPRF, err = writeKeyset(k.refHandle); err != nil {
		return fmt.Errorf("write gateway keys: %w", err)
	}
	if f.Signing, err = writeKeyset(k.signHandle); err != nil {
		return fmt.Errorf("write gateway keys: %w", err)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(f)
}

// ReadGatewayKeys reads a file written by Write.
func ReadGatewayKeys(r io.Reader) (*GatewayKeys, error) {
	var f gatewayKeysFile
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&f); err != nil {
		return nil, fmt.Errorf("read gateway keys: %w", ErrMalformed)
	}
	if f.Format != gatewayKeysFormat {
		return nil, fmt.Errorf("read gateway keys: format %q: %w", f.Format, ErrMalformed)
	}
	tagH, err := readKeyset(f.TagPRF)
	if err != nil {
		return nil, fmt.Errorf("read gateway keys: tag_prf: %w", ErrMalformed)
	}
	refH, err := readKeyset(f.RefPRF)
	if err != nil {
		return nil, fmt.Errorf("read gateway keys: ref_prf: %w", ErrMalformed)
	}
	signH, err := readKeyset(f.Signing)
	if err != nil {
		return nil, fmt.Errorf("read gateway keys: signing: %w", ErrMalformed)
	}
	return gatewayKeysFromHandles(tagH, refH, signH)
}

// WritePublic writes the verifier's public keyset (Tink JSON).
func (v *GatewayVerifier) WritePublic(w io.Writer) error {
	return v.handle.WriteWithNoSecrets(keyset.NewJSONWriter(w))
}

// ReadGatewayVerifier reads a public keyset written by WritePublic.
func ReadGatewayVerifier(r io.Reader) (*GatewayVerifier, error) {
	h, err := keyset.ReadWithNoSecrets(keyset.NewJSONReader(io.LimitReader(r, 1<<20)))
	if err != nil {
		return nil, fmt.Errorf("read gateway public key: %w", ErrMalformed)
	}
	return newGatewayVerifier(h)
}
