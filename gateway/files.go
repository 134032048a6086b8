package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// A shared file's content arrives apart from its metadata event: the
// metadata is a small JSON event in a batch of /v1/ingest, the content is
// one streamed PUT /v1/files/{file_id} of any size up to limits.max_file_bytes.
// The content is sealed as it streams in (crypto.Sealer.SealFile) and
// written to the store in chunks, so the gateway never holds a whole file.
//
// The request names what the metadata event names in its JSON:
//
//	X-Sealgate-Employee:        the uploader's Mattermost user id (whose day key seals it)
//	X-Sealgate-Create-At:       the file's create_at in ms (which day, and the ref's version)
//	X-Sealgate-Content-SHA256:  hex SHA-256 of the content, as in the metadata event
//
// The digest is checked before the sealed file becomes visible in the
// store: content that does not match is refused with 400 and nothing is
// kept, so the metadata's sha256 always describes the sealed content.

// FileResult says what one StoreFile did.
type FileResult struct {
	Stored bool  // false: the file was already stored
	Bytes  int64 // content bytes sealed (0 for a duplicate)
}

// Refusals of a file upload; StoreFile wraps them in a *BadRequestError.
var (
	errDigest   = errors.New("content does not match X-Sealgate-Content-SHA256")
	errTooLarge = errors.New("content larger than the limit")
	errBody     = errors.New("could not read the content")
)

// FileUpload describes one file content to store.
type FileUpload struct {
	Employee string
	FileID   string
	CreateAt time.Time // millisecond precision
	SHA256   [32]byte
	Limit    int64 // content bytes
}

// StoreFile seals the content read from body and stores it, unless a file
// with the same ref (file id, create_at) is already stored. Bad input (a
// wrong digest, too many bytes) is a *BadRequestError; an unreadable body
// or a store failure is another error. Either way nothing is kept.
func (p *Pipeline) StoreFile(ctx context.Context, up FileUpload, body io.Reader) (FileResult, error) {
	files, ok := p.Store.(store.Files)
	if !ok {
		return FileResult{}, errors.New("store file: this store keeps no file contents")
	}
	ref := p.Keys.Ref(up.FileID, crypto.KindFile, up.CreateAt.UnixMilli())
	if has, err := files.HasFile(ctx, ref); err != nil {
		return FileResult{}, fmt.Errorf("store file: %w", err)
	} else if has {
		return FileResult{}, nil
	}
	pr, pw := io.Pipe()
	sealed, w, err := p.Sealer.SealFile(up.Employee, up.CreateAt, ref, pw)
	if err != nil {
		return FileResult{}, fmt.Errorf("store file: %w", err)
	}
	// The day key must be escrowed before anything sealed under it is.
	if sealed.KeyRecord != nil || sealed.Epoch != nil {
		b := &store.Batch{}
		if sealed.KeyRecord != nil {
			b.KeyRecords = []store.KeyRecord{{ID: sealed.KeyRecordID, Tag: sealed.Tag, EpochID: sealed.EpochID, Blob: sealed.KeyRecord}}
		}
		if sealed.Epoch != nil {
			b.Epochs = []store.Epoch{{ID: sealed.EpochID, Blob: sealed.Epoch}}
		}
		if _, err := p.Store.Put(ctx, b); err != nil {
			return FileResult{}, fmt.Errorf("store file: key record: %w", err)
		}
		p.Sealer.Stored([]*crypto.Sealed{sealed})
	}

	type sealOutcome struct {
		n   int64
		err error
	}
	done := make(chan sealOutcome, 1)
	go func() {
		n, err := sealStream(w, body, up)
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		done <- sealOutcome{n, err}
	}()
	// Streaming AEAD adds a header and a tag per segment; the content limit
	// is enforced exactly on the clear side, this one only backs it up.
	sealedLimit := up.Limit + 1024 + (up.Limit/crypto.FileSegmentSize+1)*64
	_, stored, putErr := files.PutFile(ctx, store.File{Ref: ref, Tag: sealed.Tag, Hour: sealed.Hour, KeyRecordID: sealed.KeyRecordID}, sealedLimit, pr)
	pr.CloseWithError(io.ErrClosedPipe) // unblocks the sealer if the store stopped reading
	out := <-done
	switch {
	case errors.Is(out.err, errDigest):
		return FileResult{}, &BadRequestError{Status: http.StatusBadRequest, Reason: errDigest.Error()}
	case errors.Is(out.err, errTooLarge):
		return FileResult{}, &BadRequestError{Status: http.StatusRequestEntityTooLarge, Reason: fmt.Sprintf("content larger than the limit of %d bytes", up.Limit)}
	case errors.Is(out.err, errBody):
		return FileResult{}, &BadRequestError{Status: http.StatusBadRequest, Reason: errBody.Error()}
	case putErr != nil:
		return FileResult{}, fmt.Errorf("store file: %w", putErr)
	case !stored:
		return FileResult{}, nil // stored meanwhile by a concurrent upload
	}
	return FileResult{Stored: true, Bytes: out.n}, nil
}

// sealStream copies at most up.Limit bytes of body through the sealing
// writer and checks the digest before the last segment is written, so the
// store's reader never sees the end of a stream whose digest is wrong.
func sealStream(w io.WriteCloser, body io.Reader, up FileUpload) (int64, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(body, up.Limit+1))
	if err != nil {
		return n, errBody
	}
	if n > up.Limit {
		return n, errTooLarge
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), up.SHA256[:]) != 1 {
		return n, errDigest
	}
	if err := w.Close(); err != nil {
		return n, err
	}
	return n, nil
}

// putFile serves PUT /v1/files/{id}.
func (s *Server) putFile(w http.ResponseWriter, r *http.Request) {
	code, outcome := s.servePutFile(w, r)
	s.metrics.files.WithLabelValues(outcome).Inc()
	s.metrics.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (s *Server) servePutFile(w http.ResponseWriter, r *http.Request) (code int, outcome string) {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sealgate"`)
		return writeError(w, http.StatusUnauthorized, "missing or wrong bearer token"), "rejected"
	}
	up, err := parseFileUpload(r, s.MaxFileBytes, time.Now())
	if err != nil {
		var bad *BadRequestError
		errors.As(err, &bad)
		s.Log.Info("file refused", "status", bad.Status, "reason", bad.Reason)
		return writeError(w, bad.Status, bad.Reason), "rejected"
	}
	res, err := s.Pipeline.StoreFile(r.Context(), up, r.Body)
	if err != nil {
		var bad *BadRequestError
		if errors.As(err, &bad) {
			s.Log.Info("file refused", "status", bad.Status, "reason", bad.Reason)
			return writeError(w, bad.Status, bad.Reason), "rejected"
		}
		s.Log.Error("file not stored", "err", err)
		return writeError(w, http.StatusServiceUnavailable, "could not store the file durably; retry"), "failed"
	}
	outcome = "stored"
	if !res.Stored {
		outcome = "duplicate"
	}
	s.Log.Debug("file", "outcome", outcome, "bytes", res.Bytes)
	return writeJSON(w, http.StatusOK, map[string]any{"stored": res.Stored, "bytes": res.Bytes}), outcome
}

// parseFileUpload reads and checks the request's headers. It refuses a
// declared Content-Length above the limit before any byte is read.
func parseFileUpload(r *http.Request, limit int64, now time.Time) (FileUpload, error) {
	bad := func(status int, format string, a ...any) error {
		return &BadRequestError{Status: status, Reason: fmt.Sprintf(format, a...)}
	}
	up := FileUpload{FileID: r.PathValue("id"), Employee: r.Header.Get("X-Sealgate-Employee"), Limit: limit}
	if !plainID(up.FileID) {
		return up, bad(400, "file id must be 1..64 letters and digits")
	}
	if !plainID(up.Employee) {
		return up, bad(400, "X-Sealgate-Employee must be 1..64 letters and digits")
	}
	ms, err := strconv.ParseInt(r.Header.Get("X-Sealgate-Create-At"), 10, 64)
	if err != nil || ms <= 0 {
		return up, bad(400, "X-Sealgate-Create-At must be the file's create_at in milliseconds")
	}
	up.CreateAt = time.UnixMilli(ms).UTC()
	if up.CreateAt.After(now.Add(maxClockSkew)) {
		return up, bad(400, "X-Sealgate-Create-At is more than 24h in the future")
	}
	sum, err := hex.DecodeString(strings.ToLower(r.Header.Get("X-Sealgate-Content-SHA256")))
	if err != nil || len(sum) != 32 {
		return up, bad(400, "X-Sealgate-Content-SHA256 must be 64 hex digits")
	}
	copy(up.SHA256[:], sum)
	if r.ContentLength > limit {
		return up, bad(http.StatusRequestEntityTooLarge, "content larger than the limit of %d bytes", limit)
	}
	return up, nil
}

// plainID accepts the ids Mattermost mints (26 lowercase base32 characters)
// and the shorter test ids of other capture paths, but nothing that could
// carry a path, a header or a control character.
func plainID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
