package crypto

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/cloudflare/circl/group"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/aead/aesgcm"
	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// shareGroup is the prime-order group whose scalar field carries the seed
// and the Shamir shares.
var shareGroup = group.Ristretto255

const seedSize = 32

// DayKey is the sealing key of one (employee, day): a Tink AES-256-GCM
// keyset derived from a random seed. The gateway holds it while the day is
// current; after release, the unsealer rebuilds it from M shares.
type DayKey struct {
	id       KeyRecordID
	tag      Tag
	employee string
	day      string
	dayNum   int64 // days since the Unix epoch; day in numbers, for the hot path
	aead     tink.AEAD
	raw      []byte             // derived AES key bytes, kept only to be wiped
	files    tink.StreamingAEAD // seals shared files' contents (file.go)
	rawFiles []byte             // derived streaming key bytes, kept only to be wiped
}

// ID returns the key record id of the day key.
func (k *DayKey) ID() KeyRecordID { return k.id }

// Employee and Day say whom and when the key belongs to.
func (k *DayKey) Employee() string { return k.employee }
func (k *DayKey) Day() string      { return k.day }

var gcmParams = func() *aesgcm.Parameters {
	p, err := aesgcm.NewParameters(aesgcm.ParametersOpts{
		KeySizeInBytes: 32, IVSizeInBytes: 12, TagSizeInBytes: 16, Variant: aesgcm.VariantNoPrefix,
	})
	if err != nil {
		panic(err)
	}
	return p
}()

func dayKeyInfo(employee, day string, id KeyRecordID) string {
	info := appendLPString([]byte("sealgate/daykey/v1"), employee)
	info = appendLPString(info, day)
	return string(append(info, id[:]...))
}

// deriveDayKey turns a seed into the Tink keyset of (employee, day, id). The
// HKDF info binds the identity, so a seed recovered from another
// employee-day's shares yields a key that fails the key check.
func deriveDayKey(seed []byte, employee, day string, id KeyRecordID) (*DayKey, error) {
	raw, err := hkdf.Key(sha256.New, seed, nil, dayKeyInfo(employee, day, id), 32)
	if err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	key, err := aesgcm.NewKey(secretdata.NewBytesFromData(raw, insecuresecretdataaccess.Token{}), 0, gcmParams)
	if err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	km := keyset.NewManager()
	kid, err := km.AddKey(key)
	if err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	if err := km.SetPrimary(kid); err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	h, err := km.Handle()
	if err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	t, err := ParseDay(day)
	if err != nil {
		return nil, fmt.Errorf("derive day key: %w", err)
	}
	files, rawFiles, err := deriveFileKey(seed, employee, day, id)
	if err != nil {
		return nil, err
	}
	return &DayKey{id: id, employee: employee, day: day, dayNum: unixDay(t), aead: a, raw: raw, files: files, rawFiles: rawFiles}, nil
}

// newSeed draws a uniformly random scalar; its encoding is the seed.
func newSeed() (group.Scalar, []byte, error) {
	s := shareGroup.RandomScalar(rand.Reader)
	b, err := s.MarshalBinary()
	if err != nil {
		return nil, nil, fmt.Errorf("new seed: %w", err)
	}
	return s, b, nil
}

// Seal seals one event of this day key's employee and day under ref.
func (k *DayKey) Seal(ref Ref, ev *Event) ([]byte, error) {
	if ev.Employee != k.employee || unixDay(ev.Time) != k.dayNum {
		return nil, fmt.Errorf("seal post: event does not belong to this day key")
	}
	if !ev.Kind.Valid() {
		return nil, fmt.Errorf("seal post: unknown kind %d", ev.Kind)
	}
	scratch := scratchPool.Get().(*[]byte)
	buf := recordAAD((*scratch)[:0], k.employee, k.day, k.id, ref)
	aadLen := len(buf)
	buf = appendRecordPlaintext(buf, ev)
	ct, err := k.aead.Encrypt(buf[aadLen:], buf[:aadLen])
	wipe(buf)
	*scratch = buf
	scratchPool.Put(scratch)
	if err != nil {
		return nil, fmt.Errorf("seal post: %w", err)
	}
	out := make([]byte, recordHeader+len(ct))
	out[0] = recordVersion
	copy(out[1:], k.id[:])
	copy(out[recordHeader:], ct)
	return out, nil
}

// scratchPool holds buffers for a record's AAD and plaintext; they are wiped
// before they go back.
var scratchPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// unixDay is the number of whole UTC days since the Unix epoch.
func unixDay(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s - 86399) / 86400
	}
	return s / 86400
}

// Wipe zeroes the key bytes this package holds. Tink keeps its own copy
// inside the keyset handle, which becomes unreachable with the DayKey; Go
// gives no stronger guarantee than that.
func (k *DayKey) Wipe() {
	wipe(k.raw)
	wipe(k.rawFiles)
	k.aead = nil
	k.files = nil
}
