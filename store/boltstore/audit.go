package boltstore

// The audit log (package audit) lives in bucket "audit":
//
//	audit   seq (8, big-endian) -> entry
//
// where entry is, integers big-endian:
//
//	version (1 byte, 1)
//	time (8, Unix microseconds, two's complement)
//	actor role | actor pseudonym | action | order id | object | detail
//	          (each: length (4) then the UTF-8 bytes)
//	prev (32) | hash (32)
//
// The sequence number is the key only, as in PostgreSQL where it is the
// primary key: an entry moved to another key reads back under that key's
// sequence number, and fails its hash there.
//
// AppendAudit runs in its own write transaction (not the group commit of
// Put), which reads the last entry and writes the new one, so the chain
// check and the write are atomic: bbolt has one writer at a time.

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/audit"
)

var bktAudit = []byte("audit")

const (
	auditVersion  = 1
	auditSeqLen   = 8
	auditFixedLen = 1 + 8 + 6*4 + 32 + 32 // everything but the strings

	// auditPage is how many entries AuditEntries reads per read transaction.
	auditPage = 256
)

var _ audit.Backend = (*Store)(nil)

// AppendAudit implements audit.Backend.
func (s *Store) AppendAudit(ctx context.Context, e audit.Entry) error {
	if err := s.check(ctx); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	val := encodeAudit(&e)
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := tx.Bucket(bktAudit)
		var (
			lastSeq  uint64
			lastHash [32]byte
		)
		if k, v := b.Cursor().Last(); k != nil {
			last, err := decodeAudit(k, v)
			if err != nil {
				return err
			}
			lastSeq, lastHash = last.Seq, last.Hash
		}
		if e.Seq != lastSeq+1 {
			return fmt.Errorf("%w: entry %d does not follow the last stored entry %d", audit.ErrConflict, e.Seq, lastSeq)
		}
		if e.Prev != lastHash {
			return fmt.Errorf("%w: entry %d: prev is not the hash of entry %d", audit.ErrConflict, e.Seq, lastSeq)
		}
		return b.Put(u64(e.Seq), val)
	})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// LastAudit implements audit.Backend.
func (s *Store) LastAudit(ctx context.Context) (audit.Entry, bool, error) {
	if err := s.check(ctx); err != nil {
		return audit.Entry{}, false, fmt.Errorf("last audit: %w", err)
	}
	var (
		e     audit.Entry
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bktAudit).Cursor().Last()
		if k == nil {
			return nil
		}
		var err error
		e, err = decodeAudit(k, v)
		found = err == nil
		return err
	})
	if err != nil {
		return audit.Entry{}, false, fmt.Errorf("last audit: %w", err)
	}
	return e, found, nil
}

// AuditEntries implements audit.Backend. It reads in pages of short read
// transactions and runs fn outside them, so fn may call the store.
func (s *Store) AuditEntries(ctx context.Context, fromSeq uint64, fn func(audit.Entry) error) error {
	seek := u64(fromSeq)
	inclusive := true
	page := make([]audit.Entry, 0, auditPage)
	for {
		if err := s.check(ctx); err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		page = page[:0]
		more := false
		var bad error // an undecodable entry: the page up to it is still delivered
		err := s.db.View(func(tx *bolt.Tx) error {
			c := tx.Bucket(bktAudit).Cursor()
			k, v := c.Seek(seek)
			if k != nil && !inclusive && string(k) == string(seek) {
				k, v = c.Next()
			}
			for ; k != nil; k, v = c.Next() {
				if len(page) == auditPage {
					more = true
					return nil
				}
				e, err := decodeAudit(k, v)
				if err != nil {
					bad = err
					return nil
				}
				page = append(page, e)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("audit entries: %w", err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if bad != nil {
			return fmt.Errorf("audit entries: %w", bad)
		}
		if !more {
			return nil
		}
		seek = u64(page[len(page)-1].Seq)
		inclusive = false
	}
}

func encodeAudit(e *audit.Entry) []byte {
	strs := [...]string{e.ActorRole, e.ActorPseudonym, string(e.Action), e.OrderID, e.Object, e.Detail}
	n := auditFixedLen
	for _, s := range strs {
		n += len(s)
	}
	v := make([]byte, 0, n)
	v = append(v, auditVersion)
	v = binary.BigEndian.AppendUint64(v, uint64(e.Time.UnixMicro()))
	for _, s := range strs {
		v = binary.BigEndian.AppendUint32(v, uint32(len(s)))
		v = append(v, s...)
	}
	v = append(v, e.Prev[:]...)
	return append(v, e.Hash[:]...)
}

// decodeAudit decodes one stored entry; it copies everything out of k and v,
// which are only valid inside the transaction.
func decodeAudit(k, v []byte) (audit.Entry, error) {
	var e audit.Entry
	if len(k) != auditSeqLen {
		return e, fmt.Errorf("%w: key of %d bytes", audit.ErrCorrupt, len(k))
	}
	e.Seq = binary.BigEndian.Uint64(k)
	corrupt := func(why string) (audit.Entry, error) {
		return audit.Entry{}, fmt.Errorf("%w: entry %d: %s", audit.ErrCorrupt, e.Seq, why)
	}
	if len(v) < auditFixedLen {
		return corrupt(fmt.Sprintf("%d bytes", len(v)))
	}
	if v[0] != auditVersion {
		return corrupt(fmt.Sprintf("unknown format version %d", v[0]))
	}
	e.Time = time.UnixMicro(int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
	rest := v[9:]
	var strs [6]string
	for i := range strs {
		if len(rest) < 4 {
			return corrupt("short")
		}
		n := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(n) > uint64(len(rest)) {
			return corrupt("string runs past the end")
		}
		strs[i] = string(rest[:n])
		rest = rest[n:]
	}
	if len(rest) != 64 {
		return corrupt(fmt.Sprintf("%d bytes of hashes, want 64", len(rest)))
	}
	e.ActorRole, e.ActorPseudonym, e.Action = strs[0], strs[1], audit.Action(strs[2])
	e.OrderID, e.Object, e.Detail = strs[3], strs[4], strs[5]
	copy(e.Prev[:], rest[:32])
	copy(e.Hash[:], rest[32:])
	return e, nil
}
