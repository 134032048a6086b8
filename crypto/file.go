package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/secretdata"
	"github.com/tink-crypto/tink-go/v2/streamingaead"
	"github.com/tink-crypto/tink-go/v2/streamingaead/aesgcmhkdf"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// A shared file's content is sealed like an event, under the same day key
// record, but with Tink's streaming AEAD: a file can be far larger than
// memory should hold, and a reader can stream it back out. The streaming
// key is a sibling of the record key, derived from the same seed with its
// own HKDF info, so the escrow of one key record releases both and nothing
// about the key model changes.

// FileSegmentSize is the ciphertext segment size of sealed files: the unit
// Tink authenticates, and what a sealing or opening stream buffers.
const FileSegmentSize = 1 << 20

var fileParams = func() *aesgcmhkdf.Parameters {
	p, err := aesgcmhkdf.NewParameters(aesgcmhkdf.ParametersOpts{
		KeySizeInBytes: 32, DerivedKeySizeInBytes: 32, HKDFHashType: aesgcmhkdf.SHA256, SegmentSizeInBytes: FileSegmentSize,
	})
	if err != nil {
		panic(err)
	}
	return p
}()

func fileKeyInfo(employee, day string, id KeyRecordID) string {
	info := appendLPString([]byte("sealgate/filekey/v1"), employee)
	info = appendLPString(info, day)
	return string(append(info, id[:]...))
}

// deriveFileKey turns a day key's seed into the Tink streaming AEAD for the
// file contents of (employee, day, id).
func deriveFileKey(seed []byte, employee, day string, id KeyRecordID) (tink.StreamingAEAD, []byte, error) {
	raw, err := hkdf.Key(sha256.New, seed, nil, fileKeyInfo(employee, day, id), 32)
	if err != nil {
		return nil, nil, fmt.Errorf("derive file key: %w", err)
	}
	key, err := aesgcmhkdf.NewKey(fileParams, secretdata.NewBytesFromData(raw, insecuresecretdataaccess.Token{}))
	if err != nil {
		return nil, nil, fmt.Errorf("derive file key: %w", err)
	}
	km := keyset.NewManager()
	kid, err := km.AddKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("derive file key: %w", err)
	}
	if err := km.SetPrimary(kid); err != nil {
		return nil, nil, fmt.Errorf("derive file key: %w", err)
	}
	h, err := km.Handle()
	if err != nil {
		return nil, nil, fmt.Errorf("derive file key: %w", err)
	}
	s, err := streamingaead.New(h)
	if err != nil {
		return nil, nil, fmt.Errorf("derive file key: %w", err)
	}
	return s, raw, nil
}

func fileAAD(employee, day string, id KeyRecordID, ref Ref) []byte {
	aad := appendLPString([]byte("sealgate/file/v1"), employee)
	aad = appendLPString(aad, day)
	aad = append(aad, id[:]...)
	return append(aad, ref[:]...)
}

// SealFile returns a writer that seals what is written to it as the content
// of the file under ref and writes the sealed file to dst. Nothing is
// written to dst before the first Write or Close, so dst may be a pipe
// whose reader starts later. Close writes the last segment; a sealed file
// is complete only after Close returned nil.
func (k *DayKey) SealFile(ref Ref, dst io.Writer) (io.WriteCloser, error) {
	if k.files == nil {
		return nil, errors.New("seal file: day key wiped")
	}
	return &fileWriter{k: k.files, aad: fileAAD(k.employee, k.day, k.id, ref), id: k.id, dst: dst}, nil
}

// fileWriter writes the clear header and starts Tink's stream on first use.
type fileWriter struct {
	k   tink.StreamingAEAD
	aad []byte
	id  KeyRecordID
	dst io.Writer
	w   io.WriteCloser
}

func (f *fileWriter) start() error {
	if f.w != nil {
		return nil
	}
	var head [recordHeader]byte
	head[0] = recordVersion
	copy(head[1:], f.id[:])
	if _, err := f.dst.Write(head[:]); err != nil {
		return fmt.Errorf("seal file: %w", err)
	}
	w, err := f.k.NewEncryptingWriter(f.dst, f.aad)
	if err != nil {
		return fmt.Errorf("seal file: %w", err)
	}
	f.w = w
	return nil
}

func (f *fileWriter) Write(p []byte) (int, error) {
	if err := f.start(); err != nil {
		return 0, err
	}
	return f.w.Write(p)
}

func (f *fileWriter) Close() error {
	if err := f.start(); err != nil {
		return err
	}
	return f.w.Close()
}

// FileKeyRecordID reads the id of the day key a sealed file was sealed under
// from its clear header (its first 17 bytes).
func FileKeyRecordID(head []byte) (KeyRecordID, error) {
	var id KeyRecordID
	if len(head) < recordHeader || head[0] != recordVersion {
		return id, fmt.Errorf("file header: %w", ErrMalformed)
	}
	copy(id[:], head[1:recordHeader])
	return id, nil
}

// OpenFile returns a reader of the content of the sealed file read from
// sealed, which the store keeps under ref. Every segment is authenticated
// before it is returned; a sealed file that was altered, cut short, moved to
// another ref or sealed for another employee-day fails with ErrAuth at the
// first read of the bad segment, so a caller must treat what it read before
// an error as untrusted.
func OpenFile(dk *DayKey, ref Ref, sealed io.Reader) (io.Reader, error) {
	if dk.files == nil {
		return nil, errors.New("open file: day key wiped")
	}
	var head [recordHeader]byte
	if _, err := io.ReadFull(sealed, head[:]); err != nil {
		return nil, fmt.Errorf("open file: header: %w", ErrMalformed)
	}
	id, err := FileKeyRecordID(head[:])
	if err != nil {
		return nil, fmt.Errorf("open file: %w", err)
	}
	if id != dk.id {
		return nil, fmt.Errorf("open file: sealed under key record %x, not %x: %w", id[:4], dk.id[:4], ErrAuth)
	}
	r, err := dk.files.NewDecryptingReader(sealed, fileAAD(dk.employee, dk.day, dk.id, ref))
	if err != nil {
		return nil, fmt.Errorf("open file: %w", ErrAuth)
	}
	return authReader{r}, nil
}

// authReader turns Tink's decryption errors into ErrAuth, so that callers
// can branch on one error whatever Tink calls it; io.EOF passes through.
type authReader struct{ r io.Reader }

func (a authReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("open file: %w", ErrAuth)
	}
	return n, err
}

// SealFile starts sealing the content of a file of employee shared at time
// at (which decides the day key) under ref, writing the sealed file to dst.
// The returned Sealed names the tag, hour and key record of the file and,
// while they are not yet known to be stored, carries the key record and the
// epoch it depends on; its Record is nil. The caller stores those first,
// calls Stored, and then streams the content through the writer.
func (s *Sealer) SealFile(employee string, at time.Time, ref Ref, dst io.Writer) (*Sealed, io.WriteCloser, error) {
	if employee == "" {
		return nil, nil, fmt.Errorf("seal file: missing employee")
	}
	live, keyRecord, epochRecord, err := s.dayKey(employee, at)
	if err != nil {
		return nil, nil, err
	}
	w, err := live.dk.SealFile(ref, dst)
	if err != nil {
		return nil, nil, err
	}
	out := &Sealed{
		Tag: live.dk.tag, Hour: at.Unix() / 3600, Ref: ref, KeyRecordID: live.dk.id,
		EpochID: live.epoch.ep.id, KeyRecord: keyRecord, Epoch: epochRecord,
	}
	return out, w, nil
}
