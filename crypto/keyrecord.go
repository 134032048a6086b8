package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

// EpochID names one epoch: a set of per-slot HPKE contexts opened by one
// gateway process for one day.
type EpochID [16]byte

const (
	keyRecordVersion = 0x01
	epochVersion     = 0x01
	keyRecordHead    = 1 + keyRecordIDSize + 16 + 1 + 1 // version | id | epoch | M | N
	checkSize        = tinkGCMOverhead
	shareNonceSize   = 12
	shareValueSize   = 32
	sealedShareSize  = 1 + shareNonceSize + shareValueSize + 16
	maxSlots         = 32
)

// ErrTooFewShares is returned when fewer than M valid, distinct shares are given.
var ErrTooFewShares = errors.New("too few shares")

// epoch is the gateway's live side of an epoch: the exporters that derive
// share keys. It is wiped together with the day keys of its day.
type epoch struct {
	id        EpochID
	day       string
	exporters []Exporter
	record    []byte
}

func epochInfo(id EpochID, day string, slot int, keyID string) []byte {
	info := append([]byte("sealgate/epoch/v1"), id[:]...)
	info = appendLPString(info, day)
	info = append(info, byte(slot))
	return appendLPString(info, keyID)
}

func newEpoch(keys *GatewayKeys, slots []Recipient, day string) (*epoch, error) {
	if len(slots) == 0 || len(slots) > maxSlots {
		return nil, fmt.Errorf("new epoch: %d slots (want 1..%d)", len(slots), maxSlots)
	}
	e := &epoch{day: day, exporters: make([]Exporter, len(slots))}
	if _, err := rand.Read(e.id[:]); err != nil {
		return nil, fmt.Errorf("new epoch: %w", err)
	}
	rec := []byte{epochVersion}
	rec = append(rec, e.id[:]...)
	rec = appendLPString(rec, day)
	rec = append(rec, byte(len(slots)))
	for i, s := range slots {
		enc, ex, err := s.Encapsulate(epochInfo(e.id, day, i, s.KeyID()))
		if err != nil {
			return nil, fmt.Errorf("new epoch: slot %d: %w", i, err)
		}
		e.exporters[i] = ex
		rec = append(rec, byte(i))
		rec = appendLPString(rec, s.KeyID())
		rec = appendLP(rec, enc)
	}
	sig, err := keys.sign(append([]byte("sealgate/epoch/v1"), rec...))
	if err != nil {
		return nil, fmt.Errorf("new epoch: %w", err)
	}
	e.record = append(rec, sig...)
	return e, nil
}

// EpochRecord is a parsed, signature-checked epoch record.
type EpochRecord struct {
	ID    EpochID
	Day   string
	Slots []EpochSlot
}

// EpochSlot is one slot's encapsulated key within an epoch.
type EpochSlot struct {
	Index int
	KeyID string
	Enc   []byte
}

// ParseEpochRecord checks the gateway signature and parses an epoch record.
func ParseEpochRecord(b []byte, v *GatewayVerifier) (*EpochRecord, error) {
	if len(b) < 1+16+2+1+sigSize || b[0] != epochVersion {
		return nil, fmt.Errorf("epoch record: %w", ErrMalformed)
	}
	body, sig := b[:len(b)-sigSize], b[len(b)-sigSize:]
	if err := v.verify(sig, append([]byte("sealgate/epoch/v1"), body...)); err != nil {
		return nil, fmt.Errorf("epoch record: %w", err)
	}
	r := reader{b: body[1:]}
	er := &EpochRecord{}
	copy(er.ID[:], r.take(16))
	er.Day = string(r.lp())
	n := int(r.byte1())
	for i := 0; i < n && r.err == nil; i++ {
		s := EpochSlot{Index: int(r.byte1()), KeyID: string(r.lp()), Enc: r.lp()}
		if s.Index != i {
			r.err = ErrMalformed
		}
		er.Slots = append(er.Slots, s)
	}
	if r.err != nil || len(r.b) != 0 || n == 0 || n > maxSlots {
		return nil, fmt.Errorf("epoch record: %w", ErrMalformed)
	}
	if _, err := ParseDay(er.Day); err != nil {
		return nil, fmt.Errorf("epoch record: %w", err)
	}
	return er, nil
}

func shareKeyContext(id KeyRecordID) string {
	return "sealgate/share/v1" + string(id[:])
}

func shareAAD(employee, day string, head []byte, slot int) []byte {
	aad := appendLPString([]byte("sealgate/share/v1"), employee)
	aad = appendLPString(aad, day)
	aad = append(aad, head...)
	return append(aad, byte(slot))
}

func checkAAD(employee, day string, id KeyRecordID) []byte {
	aad := appendLPString([]byte("sealgate/keycheck/v1"), employee)
	aad = appendLPString(aad, day)
	return append(aad, id[:]...)
}

func shareCipher(ex Exporter, id KeyRecordID) (cipher.AEAD, error) {
	k, err := ex.Export(shareKeyContext(id), 32)
	if err != nil {
		return nil, fmt.Errorf("share key: %w", err)
	}
	defer wipe(k)
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("share key: %w", err)
	}
	return cipher.NewGCM(b)
}

func keyRecordSignedMessage(tag Tag, body []byte) []byte {
	msg := make([]byte, 0, 24+len(tag)+len(body))
	msg = append(msg, "sealgate/keyrecord/v1"...)
	msg = append(msg, tag[:]...)
	return append(msg, body...)
}

// newDayKey creates a day key for (employee, day) and its signed key record,
// escrowing the seed M-of-N to the epoch's slots.
func newDayKey(keys *GatewayKeys, ep *epoch, quorum int, employee, day string) (*DayKey, []byte, error) {
	n := len(ep.exporters)
	if quorum < 1 || quorum > n {
		return nil, nil, fmt.Errorf("new day key: quorum %d of %d slots", quorum, n)
	}
	var id KeyRecordID
	if _, err := rand.Read(id[:]); err != nil {
		return nil, nil, fmt.Errorf("new day key: %w", err)
	}
	seedScalar, seed, err := newSeed()
	if err != nil {
		return nil, nil, err
	}
	defer wipe(seed)
	dk, err := deriveDayKey(seed, employee, day, id)
	if err != nil {
		return nil, nil, err
	}
	rec := make([]byte, 0, keyRecordHead+checkSize+n*sealedShareSize+sigSize)
	rec = append(rec, keyRecordVersion)
	rec = append(rec, id[:]...)
	rec = append(rec, ep.id[:]...)
	rec = append(rec, byte(quorum), byte(n))
	head := rec[:keyRecordHead]
	check, err := dk.aead.Encrypt(nil, checkAAD(employee, day, id))
	if err != nil {
		return nil, nil, fmt.Errorf("new day key: check: %w", err)
	}
	rec = append(rec, check...)
	shares := secretsharing.New(rand.Reader, uint(quorum-1), seedScalar).Share(uint(n))
	for i, sh := range shares {
		v, err := sh.Value.MarshalBinary()
		if err != nil {
			return nil, nil, fmt.Errorf("new day key: share %d: %w", i, err)
		}
		c, err := shareCipher(ep.exporters[i], id)
		if err != nil {
			wipe(v)
			return nil, nil, fmt.Errorf("new day key: slot %d: %w", i, err)
		}
		nonce := make([]byte, shareNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			wipe(v)
			return nil, nil, fmt.Errorf("new day key: %w", err)
		}
		rec = append(rec, byte(i))
		rec = append(rec, nonce...)
		rec = c.Seal(rec, nonce, v, shareAAD(employee, day, head, i))
		wipe(v)
	}
	dk.tag = keys.Tag(employee, day)
	sig, err := keys.sign(keyRecordSignedMessage(dk.tag, rec))
	if err != nil {
		return nil, nil, fmt.Errorf("new day key: %w", err)
	}
	return dk, append(rec, sig...), nil
}

// KeyRecord is a parsed, signature-checked key record.
type KeyRecord struct {
	ID      KeyRecordID
	EpochID EpochID
	Quorum  int
	Slots   int
	head    []byte
	check   []byte
	shares  [][]byte // per slot: nonce | sealed share
}

// ParseKeyRecord checks the gateway signature over (tag, key record) and
// parses it. A key record moved to another tag fails here.
func ParseKeyRecord(tag Tag, b []byte, v *GatewayVerifier) (*KeyRecord, error) {
	if len(b) < keyRecordHead+checkSize+sealedShareSize+sigSize || b[0] != keyRecordVersion {
		return nil, fmt.Errorf("key record: %w", ErrMalformed)
	}
	body, sig := b[:len(b)-sigSize], b[len(b)-sigSize:]
	if err := v.verify(sig, keyRecordSignedMessage(tag, body)); err != nil {
		return nil, fmt.Errorf("key record: %w", err)
	}
	kr := &KeyRecord{head: body[:keyRecordHead]}
	copy(kr.ID[:], body[1:17])
	copy(kr.EpochID[:], body[17:33])
	kr.Quorum, kr.Slots = int(body[33]), int(body[34])
	rest := body[keyRecordHead:]
	if kr.Quorum < 1 || kr.Quorum > kr.Slots || kr.Slots > maxSlots || len(rest) != checkSize+kr.Slots*sealedShareSize {
		return nil, fmt.Errorf("key record: %w", ErrMalformed)
	}
	kr.check = rest[:checkSize]
	rest = rest[checkSize:]
	for i := 0; i < kr.Slots; i++ {
		s := rest[i*sealedShareSize : (i+1)*sealedShareSize]
		if int(s[0]) != i {
			return nil, fmt.Errorf("key record: slot order: %w", ErrMalformed)
		}
		kr.shares = append(kr.shares, s[1:])
	}
	return kr, nil
}

// Share is one decrypted Shamir share of a day key's seed. It is secret.
type Share struct {
	KeyRecordID KeyRecordID
	Slot        int
	Value       []byte
}

// OpenShare decrypts the share of slot for (employee, day) from a key record,
// using the slot identity. The epoch record must be the one the key record
// names; employee and day must be the ones the key record was made for, or
// the share fails to open.
func OpenShare(id Identity, slot int, ep *EpochRecord, kr *KeyRecord, employee, day string) (*Share, error) {
	if ep.ID != kr.EpochID || ep.Day != day {
		return nil, fmt.Errorf("open share: epoch does not match key record: %w", ErrAuth)
	}
	if slot < 0 || slot >= kr.Slots || slot >= len(ep.Slots) {
		return nil, fmt.Errorf("open share: no slot %d", slot)
	}
	es := ep.Slots[slot]
	if es.KeyID != id.KeyID() {
		return nil, fmt.Errorf("open share: slot %d was escrowed to key %s, not %s: %w", slot, es.KeyID, id.KeyID(), ErrAuth)
	}
	ex, err := id.Decapsulate(es.Enc, epochInfo(ep.ID, ep.Day, slot, es.KeyID))
	if err != nil {
		return nil, fmt.Errorf("open share: %w", err)
	}
	c, err := shareCipher(ex, kr.ID)
	if err != nil {
		return nil, fmt.Errorf("open share: %w", err)
	}
	s := kr.shares[slot]
	v, err := c.Open(nil, s[:shareNonceSize], s[shareNonceSize:], shareAAD(employee, day, kr.head, slot))
	if err != nil {
		return nil, fmt.Errorf("open share: %w", ErrAuth)
	}
	return &Share{KeyRecordID: kr.ID, Slot: slot, Value: v}, nil
}

// Wipe zeroes the share value.
func (s *Share) Wipe() { wipe(s.Value) }

// RecoverDayKey combines at least M shares of one key record into its day
// key and checks the result by authenticated decryption of the key check. A
// corrupted share or a share of another employee-day yields ErrAuth; fewer
// than M distinct shares yield ErrTooFewShares.
func RecoverDayKey(kr *KeyRecord, employee, day string, shares []*Share) (*DayKey, error) {
	seen := map[int]bool{}
	var ss []secretsharing.Share
	for _, s := range shares {
		if s == nil || s.KeyRecordID != kr.ID || s.Slot < 0 || s.Slot >= kr.Slots || seen[s.Slot] || len(s.Value) != shareValueSize {
			continue
		}
		v := shareGroup.NewScalar()
		if err := v.UnmarshalBinary(s.Value); err != nil {
			continue
		}
		seen[s.Slot] = true
		ss = append(ss, secretsharing.Share{ID: shareGroup.NewScalar().SetUint64(uint64(s.Slot + 1)), Value: v})
	}
	if len(ss) < kr.Quorum {
		return nil, fmt.Errorf("recover day key: %d distinct shares of key record %x, quorum is %d: %w", len(ss), kr.ID[:4], kr.Quorum, ErrTooFewShares)
	}
	secret, err := secretsharing.Recover(uint(kr.Quorum-1), ss[:kr.Quorum])
	if err != nil {
		return nil, fmt.Errorf("recover day key: %w", err)
	}
	dk, err := dayKeyFromScalar(secret, employee, day, kr.ID)
	if err != nil {
		return nil, err
	}
	if _, err := dk.aead.Decrypt(kr.check, checkAAD(employee, day, kr.ID)); err != nil {
		dk.Wipe()
		return nil, fmt.Errorf("recover day key: shares do not rebuild key record %x: %w", kr.ID[:4], ErrAuth)
	}
	return dk, nil
}

func dayKeyFromScalar(s group.Scalar, employee, day string, id KeyRecordID) (*DayKey, error) {
	seed, err := s.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("recover day key: %w", err)
	}
	defer wipe(seed)
	return deriveDayKey(seed, employee, day, id)
}
