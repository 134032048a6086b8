package crypto

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Kind is the kind of a captured event.
type Kind byte

const (
	KindPosted  Kind = 1
	KindEdited  Kind = 2
	KindDeleted Kind = 3
	KindFile    Kind = 4
)

func (k Kind) String() string {
	switch k {
	case KindPosted:
		return "posted"
	case KindEdited:
		return "edited"
	case KindDeleted:
		return "deleted"
	case KindFile:
		return "file"
	}
	return "kind(" + fmt.Sprint(byte(k)) + ")"
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return k >= KindPosted && k <= KindFile }

// Event is one captured event in clear, as it exists only in gateway memory
// before sealing and in an approved unseal.
type Event struct {
	Employee string    // Mattermost user id of the author: the person the record belongs to
	PostID   string    // Mattermost post id (or file id for KindFile)
	Kind     Kind      // what happened
	Version  int64     // event version: update_at for posts and edits, delete time for tombstones
	Time     time.Time // when it happened; decides the day
	Body     []byte    // the payload (the post JSON as captured)
}

const (
	recordVersion   = 0x01
	keyRecordIDSize = 16
	recordHeader    = 1 + keyRecordIDSize
	tinkGCMOverhead = 12 + 16
)

// KeyRecordID names one day key and its key record.
type KeyRecordID [keyRecordIDSize]byte

func recordAAD(dst []byte, employee, day string, krID KeyRecordID, ref Ref) []byte {
	dst = append(dst, "sealgate/record/v1"...)
	dst = appendLPString(dst, employee)
	dst = appendLPString(dst, day)
	dst = append(dst, krID[:]...)
	return append(dst, ref[:]...)
}

func recordPlaintext(ev *Event) []byte {
	return appendRecordPlaintext(make([]byte, 0, 1+8+8+2+len(ev.PostID)+len(ev.Body)), ev)
}

func appendRecordPlaintext(pt []byte, ev *Event) []byte {
	pt = append(pt, byte(ev.Kind))
	pt = binary.BigEndian.AppendUint64(pt, uint64(ev.Version))
	pt = binary.BigEndian.AppendUint64(pt, uint64(ev.Time.UnixMilli()))
	pt = appendLPString(pt, ev.PostID)
	return append(pt, ev.Body...)
}

// RecordKeyRecordID returns the id of the day key a sealed record was sealed
// under, read from its clear header.
func RecordKeyRecordID(record []byte) (KeyRecordID, error) {
	var id KeyRecordID
	if len(record) < recordHeader+tinkGCMOverhead || record[0] != recordVersion {
		return id, fmt.Errorf("record header: %w", ErrMalformed)
	}
	copy(id[:], record[1:recordHeader])
	return id, nil
}

// OpenRecord opens a sealed record with the day key of (employee, day). ref
// is the ref of the store row the record came from. The returned event's
// employee is the one the AAD was bound to, and its time is checked to fall
// on day.
func OpenRecord(dk *DayKey, ref Ref, record []byte) (*Event, error) {
	id, err := RecordKeyRecordID(record)
	if err != nil {
		return nil, err
	}
	if id != dk.id {
		return nil, fmt.Errorf("open record: sealed under key record %x, not %x: %w", id[:4], dk.id[:4], ErrAuth)
	}
	aad := recordAAD(make([]byte, 0, 96), dk.employee, dk.day, dk.id, ref)
	pt, err := dk.aead.Decrypt(record[recordHeader:], aad)
	if err != nil {
		return nil, fmt.Errorf("open record: %w", ErrAuth)
	}
	r := reader{b: pt}
	ev := &Event{Employee: dk.employee}
	ev.Kind = Kind(r.byte1())
	ev.Version = int64(r.uint64())
	ev.Time = time.UnixMilli(int64(r.uint64())).UTC()
	ev.PostID = string(r.lp())
	if r.err != nil || !ev.Kind.Valid() {
		return nil, fmt.Errorf("open record: plaintext: %w", ErrMalformed)
	}
	ev.Body = r.b
	if Day(ev.Time) != dk.day {
		return nil, fmt.Errorf("open record: event time outside its day: %w", ErrAuth)
	}
	return ev, nil
}
