package store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sealgate/sealgate/crypto"
)

// File is the row of one sealed file content (crypto.SealFile's output).
// The content itself is streamed in and out, never held whole in memory:
// both stores keep it as a sequence of chunks.
//
// What the row holds, and why: ref (the keyed PRF of the file id, shared
// with the file's metadata record, so a reader that opened the metadata
// finds the content), tag (keyed PRF of employee/day: lookup), hour (UTC
// hour bucket), key record id (random) and the sealed size. Like records,
// nothing in it names a person, a file or a channel.
type File struct {
	Ref         crypto.Ref
	Tag         crypto.Tag
	Hour        int64 // hours since the Unix epoch, UTC
	KeyRecordID crypto.KeyRecordID
	Size        int64 // sealed bytes; set by PutFile and by OpenFile
}

// ErrFileTooLarge is returned by PutFile when the content exceeds the limit
// it was given; nothing is stored.
var ErrFileTooLarge = errors.New("file larger than the limit")

// Files is implemented by the stores that keep sealed file contents.
type Files interface {
	// PutFile streams r into the store as the content of f (f.Size is
	// ignored) and returns the number of bytes stored. It reads at most
	// limit bytes: a longer content fails with ErrFileTooLarge. The file
	// becomes visible to HasFile and OpenFile only once all of it is
	// durably stored; if r or the store fails, or ctx is canceled,
	// nothing of it stays visible and its chunks are removed. If a file
	// with the same ref is already stored, PutFile stores nothing, returns
	// stored == false and does not need to read r to its end.
	PutFile(ctx context.Context, f File, limit int64, r io.Reader) (n int64, stored bool, err error)
	// HasFile reports whether a complete file with this ref is stored.
	HasFile(ctx context.Context, ref crypto.Ref) (bool, error)
	// OpenFile returns the row of the file with this ref and a reader of
	// its sealed content, or ErrNotFound. The reader reads one chunk at a
	// time; Close releases it.
	OpenFile(ctx context.Context, ref crypto.Ref) (File, io.ReadCloser, error)
}

// FileChunk is the size of every stored chunk of a file but its last; both
// stores cut files the same way.
const FileChunk = 1 << 20

// ChunkCount is how many chunks a file of size bytes is stored in.
func ChunkCount(size int64) int64 { return (size + FileChunk - 1) / FileChunk }

// NewChunkReader reads a stored file of size bytes in chunks chunks, in
// order, holding one chunk at a time. fetch returns chunk seq (it may reuse
// the slice it returned before); a chunk of the wrong length is reported
// as a corrupt file, not returned. Reading after Close fails.
func NewChunkReader(chunks, size int64, fetch func(seq int64) ([]byte, error)) io.ReadCloser {
	return &chunkReader{chunks: chunks, size: size, fetch: fetch}
}

type chunkReader struct {
	chunks, size int64
	fetch        func(seq int64) ([]byte, error)
	next         int64  // the chunk to fetch
	read         int64  // bytes fetched so far
	buf          []byte // what is left of the fetched chunk
	closed       bool
}

var errReaderClosed = errors.New("read file: reader is closed")

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.buf) == 0 {
		if r.next == r.chunks {
			return 0, io.EOF
		}
		data, err := r.fetch(r.next)
		if err != nil {
			return 0, fmt.Errorf("read file: %w", err)
		}
		want := int64(FileChunk)
		if r.next == r.chunks-1 {
			want = r.size - r.read
		}
		if int64(len(data)) != want {
			return 0, fmt.Errorf("read file: corrupt file: chunk %d of %d has %d bytes, want %d", r.next, r.chunks, len(data), want)
		}
		r.buf = data
		r.read += int64(len(data))
		r.next++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *chunkReader) Close() error {
	r.closed = true
	r.buf = nil
	return nil
}
