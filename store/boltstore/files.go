package boltstore

// Sealed file contents (store.Files) live in three buckets:
//
//	files         ref -> version (1 byte, 1) | tag (16) | hour (8) | key record id (16) |
//	                     upload id (16) | size (8) | chunk count (4)
//	file_chunks   upload id (16) | seq (4) -> up to 1 MiB of the sealed content
//	file_uploads  upload id (16) -> empty       (uploads whose chunks are not all committed)
//
// hour has its sign bit flipped, as in records. The upload id is random and
// new for every PutFile, so that concurrent uploads of one ref never write
// each other's chunks: the one whose row commits first wins, and the others
// delete theirs.
//
// A file of more than one group of chunks (4 MiB) is not written in one
// transaction, which would hold bbolt's only writer, and every Put waiting
// behind it, for the whole upload, and the whole file in memory: each
// group commits on its own, and the last transaction writes the last group
// with the row, after checking that the ref is still free. A file of one
// group, most of them, is that one transaction.
//
// From its first group to its last, an upload is listed in file_uploads,
// written in the same transactions as its chunks. A failed upload deletes
// its chunks and delists itself; Open deletes the chunks of every upload
// still listed, which a crash, or Close mid-upload, left behind (bbolt is
// single-process, so no upload is running at Open). The list keeps that
// sweep to the uploads that were in flight, instead of a scan of every
// chunk against every row.
//
// Files are not counted in Stats.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	bolt "go.etcd.io/bbolt"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

var (
	bktFiles       = []byte("files")
	bktFileChunks  = []byte("file_chunks")
	bktFileUploads = []byte("file_uploads")
)

const (
	fileVersion = 1
	fileRowLen  = 1 + idLen + hourLen + idLen + idLen + 8 + 4
	chunkKeyLen = idLen + 4

	// chunksPerTx is how many chunks one transaction writes: fewer syncs
	// than one per chunk, and still short enough not to stall Puts.
	chunksPerTx = 4
)

var _ store.Files = (*Store)(nil)

type fileRow struct {
	f      store.File
	upload [idLen]byte
	chunks uint32
}

func encodeFile(r *fileRow) []byte {
	v := make([]byte, 0, fileRowLen)
	v = append(v, fileVersion)
	v = append(v, r.f.Tag[:]...)
	v = binary.BigEndian.AppendUint64(v, encHour(r.f.Hour))
	v = append(v, r.f.KeyRecordID[:]...)
	v = append(v, r.upload[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(r.f.Size))
	return binary.BigEndian.AppendUint32(v, r.chunks)
}

// decodeFile decodes a stored row, copying out of v.
func decodeFile(ref []byte, v []byte) (fileRow, error) {
	var r fileRow
	if len(v) != fileRowLen {
		return r, fmt.Errorf("corrupt file row (%d bytes)", len(v))
	}
	if v[0] != fileVersion {
		return r, fmt.Errorf("corrupt file row: unknown format version %d", v[0])
	}
	copy(r.f.Ref[:], ref)
	v = v[1:]
	copy(r.f.Tag[:], v[:idLen])
	v = v[idLen:]
	r.f.Hour = decHour(binary.BigEndian.Uint64(v))
	v = v[hourLen:]
	copy(r.f.KeyRecordID[:], v[:idLen])
	v = v[idLen:]
	copy(r.upload[:], v[:idLen])
	v = v[idLen:]
	r.f.Size = int64(binary.BigEndian.Uint64(v))
	r.chunks = binary.BigEndian.Uint32(v[8:])
	if r.f.Size < 0 || uint64(r.chunks) != (uint64(r.f.Size)+store.FileChunk-1)/store.FileChunk {
		return r, fmt.Errorf("corrupt file row: %d chunks for %d bytes", r.chunks, r.f.Size)
	}
	return r, nil
}

func chunkKey(upload [idLen]byte, seq uint32) []byte {
	k := make([]byte, 0, chunkKeyLen)
	k = append(k, upload[:]...)
	return binary.BigEndian.AppendUint32(k, seq)
}

// PutFile implements store.Files.
func (s *Store) PutFile(ctx context.Context, f store.File, limit int64, r io.Reader) (int64, bool, error) {
	if err := s.check(ctx); err != nil {
		return 0, false, fmt.Errorf("put file: %w", err)
	}
	if limit < 0 {
		return 0, false, fmt.Errorf("put file: negative limit %d", limit)
	}
	// Most re-puts (a retried upload) end here, without reading r.
	ok, err := s.HasFile(ctx, f.Ref)
	if err != nil {
		return 0, false, fmt.Errorf("put file: %w", err)
	}
	if ok {
		return 0, false, nil
	}
	row := fileRow{f: f}
	if _, err := rand.Read(row.upload[:]); err != nil {
		return 0, false, fmt.Errorf("put file: upload id: %w", err)
	}
	n, stored, err := s.stream(ctx, &row, limit, r)
	if err != nil {
		return 0, false, fmt.Errorf("put file: %w", err)
	}
	return n, stored, nil
}

// stream reads r in groups of chunks and commits them, the last group
// with the row. Whatever it returns, no chunk of the upload stays behind
// unless deleting them failed too; Open deletes those.
func (s *Store) stream(ctx context.Context, row *fileRow, limit int64, r io.Reader) (n int64, stored bool, err error) {
	committed := uint32(0) // chunks committed before the final transaction
	defer func() {
		if err != nil && committed > 0 {
			// Ignoring a failure is safe: the upload stays listed, and the
			// next Open deletes it.
			_ = s.db.Update(func(tx *bolt.Tx) error { return dropUpload(tx, row.upload, committed) })
		}
	}()

	// Reading one byte past the limit tells a content of exactly limit
	// bytes from a longer one.
	lr := io.LimitReader(r, limit)
	if limit < math.MaxInt64 {
		lr = io.LimitReader(r, limit+1)
	}
	var bufs [chunksPerTx][]byte
	for {
		group, eof := bufs[:0], false
		for len(group) < chunksPerTx && !eof {
			if err := s.check(ctx); err != nil {
				return 0, false, err
			}
			i := len(group)
			if bufs[i] == nil {
				bufs[i] = make([]byte, store.FileChunk)
			}
			k, err := io.ReadFull(lr, bufs[i])
			switch err {
			case nil:
			case io.EOF, io.ErrUnexpectedEOF:
				eof = true
			default:
				return 0, false, fmt.Errorf("read content: %w", err)
			}
			n += int64(k)
			if n > limit {
				return 0, false, fmt.Errorf("%w (%d bytes)", store.ErrFileTooLarge, limit)
			}
			if k > 0 {
				group = append(group, bufs[i][:k])
			}
		}
		if uint64(committed)+uint64(len(group)) > math.MaxUint32 {
			return 0, false, fmt.Errorf("%w: more than 2^32 chunks", store.ErrFileTooLarge)
		}
		if !eof {
			var exists bool
			err := s.db.Update(func(tx *bolt.Tx) error {
				var err error
				exists, err = putMiddle(ctx, tx, row, committed, group)
				return err
			})
			if err != nil {
				return 0, false, err
			}
			if exists {
				return 0, false, nil // its chunks are gone with the group's transaction
			}
			committed += uint32(len(group))
			continue
		}
		row.f.Size = n
		row.chunks = committed + uint32(len(group))
		err := s.db.Update(func(tx *bolt.Tx) error {
			var err error
			stored, err = putFinal(ctx, tx, row, committed, group)
			return err
		})
		if err != nil {
			return 0, false, err
		}
		if !stored {
			return 0, false, nil
		}
		return n, true, nil
	}
}

// putMiddle commits a group of chunks that is not the last, and lists the
// upload with the first. If the ref got stored meanwhile, it deletes the
// upload's earlier chunks instead and returns true, so that the caller
// stops reading a content it no longer needs.
func putMiddle(ctx context.Context, tx *bolt.Tx, row *fileRow, committed uint32, group [][]byte) (exists bool, err error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if tx.Bucket(bktFiles).Get(row.f.Ref[:]) != nil {
		return true, dropUpload(tx, row.upload, committed)
	}
	if committed == 0 {
		if err := tx.Bucket(bktFileUploads).Put(clone(row.upload[:]), []byte{}); err != nil {
			return false, fmt.Errorf("list upload: %w", err)
		}
	}
	return false, writeChunks(tx, row.upload, committed, group)
}

// putFinal writes the last group of chunks and the row, and delists the
// upload, unless the ref is stored already: then it deletes the upload's
// earlier chunks instead and returns false.
func putFinal(ctx context.Context, tx *bolt.Tx, row *fileRow, committed uint32, group [][]byte) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	files := tx.Bucket(bktFiles)
	if files.Get(row.f.Ref[:]) != nil {
		return false, dropUpload(tx, row.upload, committed)
	}
	if err := writeChunks(tx, row.upload, committed, group); err != nil {
		return false, err
	}
	if err := files.Put(clone(row.f.Ref[:]), encodeFile(row)); err != nil {
		return false, fmt.Errorf("file row: %w", err)
	}
	if committed > 0 {
		if err := tx.Bucket(bktFileUploads).Delete(row.upload[:]); err != nil {
			return false, fmt.Errorf("delist upload: %w", err)
		}
	}
	return true, nil
}

func writeChunks(tx *bolt.Tx, upload [idLen]byte, first uint32, group [][]byte) error {
	chunks := tx.Bucket(bktFileChunks)
	for i, c := range group {
		// The buffers are reused for the next group only after this
		// transaction has committed, so bbolt may keep referencing them.
		if err := chunks.Put(chunkKey(upload, first+uint32(i)), c); err != nil {
			return fmt.Errorf("chunk: %w", err)
		}
	}
	return nil
}

// dropUpload deletes the first n chunks of an upload and delists it.
func dropUpload(tx *bolt.Tx, upload [idLen]byte, n uint32) error {
	chunks := tx.Bucket(bktFileChunks)
	for seq := uint32(0); seq < n; seq++ {
		if err := chunks.Delete(chunkKey(upload, seq)); err != nil {
			return fmt.Errorf("delete chunk: %w", err)
		}
	}
	if err := tx.Bucket(bktFileUploads).Delete(upload[:]); err != nil {
		return fmt.Errorf("delist upload: %w", err)
	}
	return nil
}

// sweepUploads deletes the chunks of every upload still listed. Open runs
// it, when no upload can be running.
func sweepUploads(tx *bolt.Tx) error {
	var uploads [][]byte
	if err := tx.Bucket(bktFileUploads).ForEach(func(k, _ []byte) error {
		uploads = append(uploads, clone(k))
		return nil
	}); err != nil {
		return err
	}
	chunks := tx.Bucket(bktFileChunks)
	for _, up := range uploads {
		var keys [][]byte
		c := chunks.Cursor()
		for k, _ := c.Seek(up); k != nil && bytes.HasPrefix(k, up); k, _ = c.Next() {
			keys = append(keys, clone(k))
		}
		for _, k := range keys {
			if err := chunks.Delete(k); err != nil {
				return fmt.Errorf("delete orphaned chunk: %w", err)
			}
		}
		if err := tx.Bucket(bktFileUploads).Delete(up); err != nil {
			return fmt.Errorf("delist orphaned upload: %w", err)
		}
	}
	return nil
}

// HasFile implements store.Files.
func (s *Store) HasFile(ctx context.Context, ref crypto.Ref) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, fmt.Errorf("has file: %w", err)
	}
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		found = tx.Bucket(bktFiles).Get(ref[:]) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("has file: %w", err)
	}
	return found, nil
}

// OpenFile implements store.Files. The reader reads each chunk in a read
// transaction of its own, so no transaction stays open between reads (one
// would keep bbolt from remapping the file as it grows), and it fails once
// ctx ends or the store is closed.
func (s *Store) OpenFile(ctx context.Context, ref crypto.Ref) (store.File, io.ReadCloser, error) {
	if err := s.check(ctx); err != nil {
		return store.File{}, nil, fmt.Errorf("open file: %w", err)
	}
	var (
		row   fileRow
		found bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bktFiles).Get(ref[:])
		if v == nil {
			return nil
		}
		var err error
		row, err = decodeFile(ref[:], v)
		found = err == nil
		return err
	})
	if err != nil {
		return store.File{}, nil, fmt.Errorf("open file: %w", err)
	}
	if !found {
		return store.File{}, nil, fmt.Errorf("open file: %w", store.ErrNotFound)
	}
	var chunk []byte // reused: one chunk is held at a time
	return row.f, store.NewChunkReader(int64(row.chunks), row.f.Size, func(seq int64) ([]byte, error) {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		err := s.db.View(func(tx *bolt.Tx) error {
			// bbolt's bytes are valid only inside the transaction.
			chunk = append(chunk[:0], tx.Bucket(bktFileChunks).Get(chunkKey(row.upload, uint32(seq)))...)
			return nil
		})
		return chunk, err
	}), nil
}
