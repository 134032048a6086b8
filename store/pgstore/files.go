package pgstore

// Sealed file contents (store.Files) are two tables (migration 6):
//
//	files        ref, tag, hour, key record id (as records), upload id,
//	             size and chunk count
//	file_chunks  upload id, seq -> up to 1 MiB of the sealed content, and
//	             when the chunk was written
//
// The upload id is random and new for every PutFile, so that concurrent
// uploads of one ref, from this gateway or another, never write each
// other's chunks: the upload whose row is inserted first wins, and the
// others delete theirs.
//
// Each chunk is inserted by a statement of its own, so that no transaction
// holds a connection, its locks and its WAL for as long as a whole upload;
// the row is inserted last, ON CONFLICT (ref) DO NOTHING, which is what
// makes the file visible all at once. A chunk insert finds out too when
// the ref got stored meanwhile, so that a losing upload stops early.
//
// An upload that fails deletes its chunks. What that cannot reach (a
// gateway that crashed, a statement whose outcome the connection lost) Open
// sweeps: it deletes chunks older than a day that no row references.
// Younger ones may be an upload still running on another gateway sharing
// the database, which is why an upload is given 12 hours at most. The sweep
// reads file_chunks' rows, not their data, which PostgreSQL keeps apart
// (TOAST).
//
// Files are not counted in Stats.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

const (

	// uploadTimeout bounds a PutFile well below the age at which the
	// sweep of another gateway's Open may delete the upload's chunks.
	uploadTimeout = 12 * time.Hour

	// cleanupTimeout bounds deleting a failed upload's chunks, which runs
	// after the caller's context may have ended.
	cleanupTimeout = 30 * time.Second

	// sweepLock is the pg_advisory_xact_lock key that lets one gateway
	// sweep at a time ("sealfile" in ASCII); the others skip it.
	sweepLock int64 = 0x7365616c66696c65
)

const (
	insertChunk = `INSERT INTO file_chunks (upload, seq, data)
		SELECT $1::bytea, $2::integer, $3::bytea
		WHERE NOT EXISTS (SELECT 1 FROM files WHERE ref = $4::bytea)`
	insertFile = `INSERT INTO files (ref, tag, hour, key_record_id, upload, size, chunks)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (ref) DO NOTHING`
	deleteUpload = `DELETE FROM file_chunks WHERE upload = $1`
	sweepOrphans = `DELETE FROM file_chunks c
		WHERE c.created_at < now() - interval '1 day'
		AND NOT EXISTS (SELECT 1 FROM files f WHERE f.upload = c.upload)`
)

var _ store.Files = (*Store)(nil)

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
	var upload [16]byte
	if _, err := rand.Read(upload[:]); err != nil {
		return 0, false, fmt.Errorf("put file: upload id: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	n, stored, err := s.stream(ctx, f, upload[:], limit, r)
	if err != nil {
		return 0, false, fmt.Errorf("put file: %w", err)
	}
	return n, stored, nil
}

// stream inserts r's chunks, then the row. Unless the file is stored, it
// deletes the chunks again, except when the row's insert may have
// committed after all: those chunks are left to the sweep, which keeps
// them if it did.
func (s *Store) stream(ctx context.Context, f store.File, upload []byte, limit int64, r io.Reader) (n int64, stored bool, err error) {
	sent, rowUnknown := false, false
	defer func() {
		if !stored && sent && !rowUnknown {
			s.dropUpload(ctx, upload)
		}
	}()

	// Reading one byte past the limit tells a content of exactly limit
	// bytes from a longer one.
	lr := io.LimitReader(r, limit)
	if limit < math.MaxInt64 {
		lr = io.LimitReader(r, limit+1)
	}
	buf := make([]byte, store.FileChunk)
	var seq int32
	for eof := false; !eof; {
		if err := s.check(ctx); err != nil {
			return 0, false, err
		}
		k, err := io.ReadFull(lr, buf)
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
		if k == 0 {
			break
		}
		if seq == math.MaxInt32 {
			return 0, false, fmt.Errorf("%w: more than 2^31 chunks", store.ErrFileTooLarge)
		}
		sent = true
		tag, err := s.pool.Exec(ctx, insertChunk, upload, seq, buf[:k], f.Ref[:])
		if err != nil {
			return 0, false, fmt.Errorf("chunk: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return 0, false, nil // stored meanwhile
		}
		seq++
	}
	if err := s.check(ctx); err != nil {
		return 0, false, err
	}
	tag, err := s.pool.Exec(ctx, insertFile, f.Ref[:], f.Tag[:], f.Hour, f.KeyRecordID[:], upload, n, seq)
	if err != nil {
		// A server error rolled the insert back; so did one before the
		// statement was sent. Anything else (the connection or ctx lost
		// mid-statement) may have come after the commit.
		var pgErr *pgconn.PgError
		rowUnknown = !errors.As(err, &pgErr) && !pgconn.SafeToRetry(err)
		return 0, false, fmt.Errorf("file row: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return 0, false, nil
	}
	return n, true, nil
}

// dropUpload deletes an upload's chunks. Its errors are dropped: the
// caller's outcome stands either way, and what stays the sweep removes.
func (s *Store) dropUpload(ctx context.Context, upload []byte) {
	if s.closed.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _ = s.pool.Exec(ctx, deleteUpload, upload)
}

// sweepChunks deletes the chunks of abandoned uploads (see the file
// comment). It runs at Open, in one gateway at a time.
func sweepChunks(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, sweepLock).Scan(&locked); err != nil {
			return fmt.Errorf("sweep file chunks: lock: %w", err)
		}
		if !locked {
			return nil // another gateway is sweeping
		}
		if _, err := tx.Exec(ctx, sweepOrphans); err != nil {
			return fmt.Errorf("sweep file chunks: %w", err)
		}
		return nil
	})
}

// HasFile implements store.Files.
func (s *Store) HasFile(ctx context.Context, ref crypto.Ref) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, fmt.Errorf("has file: %w", err)
	}
	var found bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM files WHERE ref = $1)`, ref[:]).Scan(&found)
	if err != nil {
		return false, fmt.Errorf("has file: %w", err)
	}
	return found, nil
}

// OpenFile implements store.Files. The reader fetches one chunk per query,
// holding no connection between reads, and fails once ctx ends or the
// store is closed.
func (s *Store) OpenFile(ctx context.Context, ref crypto.Ref) (store.File, io.ReadCloser, error) {
	if err := s.check(ctx); err != nil {
		return store.File{}, nil, fmt.Errorf("open file: %w", err)
	}
	var (
		tag, krid, upload []byte
		chunks            int32
	)
	f := store.File{Ref: ref}
	err := s.pool.QueryRow(ctx, `SELECT tag, hour, key_record_id, upload, size, chunks FROM files WHERE ref = $1`, ref[:]).
		Scan(&tag, &f.Hour, &krid, &upload, &f.Size, &chunks)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.File{}, nil, fmt.Errorf("open file: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.File{}, nil, fmt.Errorf("open file: %w", err)
	}
	if err := copy16(f.Tag[:], tag); err != nil {
		return store.File{}, nil, fmt.Errorf("open file: %w", err)
	}
	if err := copy16(f.KeyRecordID[:], krid); err != nil {
		return store.File{}, nil, fmt.Errorf("open file: %w", err)
	}
	if int64(chunks) != store.ChunkCount(f.Size) {
		return store.File{}, nil, fmt.Errorf("open file: corrupt row: %d chunks for %d bytes", chunks, f.Size)
	}
	return f, store.NewChunkReader(int64(chunks), f.Size, func(seq int64) ([]byte, error) {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		var data []byte
		err := s.pool.QueryRow(ctx, `SELECT data FROM file_chunks WHERE upload = $1 AND seq = $2`, upload, int32(seq)).Scan(&data)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("corrupt file: chunk %d of %d is missing", seq, chunks)
		}
		return data, err
	}), nil
}
