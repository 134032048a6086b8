package release

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/export"
	"github.com/sealgate/sealgate/store"
)

// ReleasedFile is the content of one shared file released under an order,
// open for reading. Content yields the clear bytes, each 1 MiB segment
// authenticated before it is returned; at its end it checks the bytes
// against the SHA-256 of the file's sealed metadata. A read error means
// the whole download must be discarded.
type ReleasedFile struct {
	Meta    export.File
	Content io.Reader
	close   func() error
}

// Close releases the store's reader.
func (f *ReleasedFile) Close() error { return f.close() }

// SharedFile opens the content of the subject's shared file fileID for the
// order's requester. The file's metadata record must be released under the
// order: the subject's, in the window, in a channel in scope. The access is
// audited (file_read, with the sealed size) before any byte is returned.
func (d *Desk) SharedFile(ctx context.Context, actor, id, fileID string) (f *ReleasedFile, err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, id, "shared_file", err) }()
	files, ok := d.cfg.Store.(store.Files)
	if !ok {
		return nil, refuse(ErrNotFound, "no_content", "this store keeps no file contents")
	}
	rel, a, err := d.readable(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	meta, ref, keys, err := d.findFile(ctx, rel, fileID)
	if err != nil {
		return nil, err
	}
	row, rc, err := files.OpenFile(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refuse(ErrNotFound, "no_content", "the file's content was not forwarded to sealgate; only its metadata is kept")
	}
	if err != nil {
		return nil, fmt.Errorf("read file of order %s: %w", id, err)
	}
	// The content may be under another key record of the same day than its
	// metadata (the gateway restarted between the two); the AAD binds it to
	// the employee-day either way.
	dk, ok := keys[row.KeyRecordID]
	if !ok {
		rc.Close()
		return nil, refuse(ErrNotFound, "no_content", "the file's content is sealed under a day key the approvals did not release")
	}
	r, err := crypto.OpenFile(dk, ref, rc)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("read file of order %s: %w", id, err)
	}
	if err := d.audit(ctx, a, audit.ActionFileRead, id, "shared_file", fmt.Sprintf("sealed_bytes=%d", row.Size)); err != nil {
		rc.Close()
		return nil, err
	}
	return &ReleasedFile{Meta: meta, Content: &digestReader{r: r, h: sha256.New(), want: meta.SHA256}, close: rc.Close}, nil
}

// errNotReleased is the one refusal for a file id that is not the
// subject's, not in the window or scope, or does not exist: the requester
// learns nothing about files the order does not cover.
var errNotReleased = refuse(ErrNotFound, "no_file", "no file with this id is released under the order")

// findFile scans the subject's records in the order's window for the file's
// metadata record and returns what the reader is shown of it, its ref and
// the released day keys of its day.
func (d *Desk) findFile(ctx context.Context, rel *released, fileID string) (export.File, crypto.Ref, map[crypto.KeyRecordID]*crypto.DayKey, error) {
	rel.mu.RLock()
	defer rel.mu.RUnlock()
	if rel.keys == nil {
		return export.File{}, crypto.Ref{}, nil, refuse(ErrGone, "wiped", "the order's keys have been wiped")
	}
	o := rel.order
	type found struct {
		meta export.File
		ref  crypto.Ref
	}
	var hit *found
	for _, day := range o.Days() {
		keys := rel.keys[day]
		if len(keys) == 0 {
			continue
		}
		t, err := crypto.ParseDay(day)
		if err != nil {
			return export.File{}, crypto.Ref{}, nil, err
		}
		errFound := errors.New("found")
		err = d.cfg.Store.Records(ctx, d.cfg.Keys.Tag(o.Subject, day), t.Unix()/3600, t.Unix()/3600+23, func(r store.Record) error {
			dk, ok := keys[r.KeyRecordID]
			if !ok {
				return nil
			}
			ev, err := crypto.OpenRecord(dk, r.Ref, r.Blob)
			if err != nil {
				return fmt.Errorf("read order %s: %w", o.ID, err)
			}
			if ev.Kind != crypto.KindFile || ev.PostID != fileID {
				return nil
			}
			m, ok := rel.view(ev)
			if !ok || len(m.Files) != 1 {
				return nil
			}
			hit = &found{meta: m.Files[0], ref: r.Ref}
			return errFound
		})
		if hit != nil {
			return hit.meta, hit.ref, keys, nil
		}
		if err != nil {
			return export.File{}, crypto.Ref{}, nil, err
		}
	}
	return export.File{}, crypto.Ref{}, nil, errNotReleased
}

// ErrDigest is returned at the end of a released file's content when it
// does not match the SHA-256 of the file's metadata.
var ErrDigest = errors.New("file content does not match its recorded SHA-256")

type digestReader struct {
	r    io.Reader
	h    hash.Hash
	want string
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF && d.want != "" && hex.EncodeToString(d.h.Sum(nil)) != d.want {
		return n, ErrDigest
	}
	return n, err
}
