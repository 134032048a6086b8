// Package store is the retention store: it keeps sealed records, key records
// and epoch records, and nothing in clear that names a person.
//
// What a store row holds, and why each column may be there:
//
//	records:     ref (16, keyed PRF of post id/kind/version: de-duplication),
//	             tag (16, keyed PRF of employee/day: lookup), hour (UTC hour bucket),
//	             key record id (16, random), blob (the sealed record)
//	key records: id (16, random), tag (16), epoch id (16, random), blob
//	epochs:      id (16, random), blob (signed; holds the day and the slots' HPKE encs)
//	audit:       the hash-chained audit log (package audit): roles, keyed
//	             pseudonyms, actions, order ids, counts — no names, no content
//	outbox:      notices to employees (package notice): id, due time, attempts,
//	             blob sealed under a gateway key (the recipient is inside)
//	aggregates:  k-anonymous counts per hour/day, team id and channel type (package redact)
//	files:       ref (shared with the file's metadata record), tag, hour, key
//	             record id and sealed size, and the sealed content in chunks
//	             (see files.go)
//
// There is no employee id, channel id, post id, file name or content column.
// Two days of one employee have unrelated tags, so the store alone cannot
// link them.
//
// Two implementations pass the same contract suite (storetest): the embedded
// default, one bbolt file (pure Go, no server), and PostgreSQL via pgx for
// scale.
package store

import (
	"context"
	"errors"

	"github.com/sealgate/sealgate/crypto"
)

// ErrNotFound is returned when a looked-up object does not exist.
var ErrNotFound = errors.New("not found")

// Record is one sealed event.
type Record struct {
	Ref         crypto.Ref
	Tag         crypto.Tag
	Hour        int64 // hours since the Unix epoch, UTC
	KeyRecordID crypto.KeyRecordID
	Blob        []byte
}

// KeyRecord is the escrow of one day key.
type KeyRecord struct {
	ID      crypto.KeyRecordID
	Tag     crypto.Tag
	EpochID crypto.EpochID
	Blob    []byte
}

// Epoch is one gateway epoch record.
type Epoch struct {
	ID   crypto.EpochID
	Blob []byte
}

// Batch is what one Put writes in one transaction.
type Batch struct {
	Records    []Record
	KeyRecords []KeyRecord
	Epochs     []Epoch
	// Inserted is set by Put: the refs of the records it inserted (not
	// those already stored), so that callers count each event once.
	Inserted []crypto.Ref
}

// Stats are counts over the whole store; they say nothing about a person.
type Stats struct {
	Records    int64
	KeyRecords int64
	Epochs     int64
	Bytes      int64 // sum of blob sizes
}

// Store is implemented by the embedded file store and PostgreSQL.
type Store interface {
	// Put writes the batch atomically and durably (committed and synced
	// before it returns). A record whose ref is already stored is skipped;
	// key records and epochs are inserted if absent. It returns the number
	// of records inserted and lists their refs in b.Inserted. On error
	// nothing of the batch is stored.
	Put(ctx context.Context, b *Batch) (inserted int, err error)
	// HasRef reports whether a record with this ref is stored.
	HasRef(ctx context.Context, ref crypto.Ref) (bool, error)
	// KeyRecords returns every key record stored under tag.
	KeyRecords(ctx context.Context, tag crypto.Tag) ([]KeyRecord, error)
	// Epoch returns one epoch record, or ErrNotFound.
	Epoch(ctx context.Context, id crypto.EpochID) (Epoch, error)
	// Records calls fn for each record under tag with fromHour <= hour <=
	// toHour, in (hour, ref) order. An error from fn stops the scan and is
	// returned.
	Records(ctx context.Context, tag crypto.Tag, fromHour, toHour int64, fn func(Record) error) error
	// Stats counts what is stored.
	Stats(ctx context.Context) (Stats, error)
	Close() error
}
