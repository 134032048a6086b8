package store

import (
	"context"
	"errors"
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
