package proxy

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Spool is a durable append-only queue of captured events on disk, for
// the times the ingest pipeline cannot take them. Each event is sealed
// with the AEAD it was opened with (sealgate writes nothing in clear), so
// the spool's files hold ciphertext only.
//
// Layout: a directory of segment files NNNNNNNNNNNNNNNNNNNN.seg (20-digit
// sequence numbers, oldest first), each a 16-byte header "SGSPOOL1" ||
// uint64 seq, then records:
//
//	uint32 n | uint32 CRC-32C(n || sealed) | sealed (n bytes)
//	sealed = nonce || AEAD.Seal(event, ad)
//	ad     = "sealgate-spool/v1" || uint64 seq || uint64 offset of the record
//
// all big-endian. The CRC finds torn writes; the AEAD finds everything
// else and binds a record to its place, so records cannot be moved
// between or within segments unnoticed. Append writes a batch and fsyncs
// once (concurrent Appends share an fsync). Run delivers sealed segments
// oldest first, records an acknowledged prefix in NNN.ack after every
// delivered batch (so a restart neither loses nor repeats delivered
// records) and deletes a segment once all of it is acknowledged. On open a
// torn tail, left by a crash during an Append that never returned, is cut
// off; a segment damaged anywhere else is delivered up to the damage and
// then kept as NNN.corrupt for an operator. Events the consumer refuses
// for good (see Permanent) are moved to the dead/ subdirectory, in the
// same format.
type Spool struct {
	// MaxSegmentBytes seals a segment once it has grown this large;
	// default 4 MiB.
	MaxSegmentBytes int64
	// MaxBatch bounds the events per delivery; default 256 (the gateway
	// takes at most 1000).
	MaxBatch int
	// MinBackoff and MaxBackoff bound the wait between failed deliveries;
	// defaults 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration

	dir  string
	aead cipher.AEAD
	log  *slog.Logger

	syncMu  sync.Mutex // serialises fsync and sealing; taken before mu
	mu      sync.Mutex
	active  *segment
	sealed  []uint64         // sealed segments, oldest first
	counts  map[uint64]int64 // unacknowledged records per segment
	nextSeq uint64
	written uint64 // append generation
	synced  uint64 // generation known to be on disk
	closed  bool
	running atomic.Bool
	pending atomic.Int64
	notify  chan struct{}
	dead    *Spool
	deadErr error
}

type segment struct {
	f    *os.File
	seq  uint64
	size int64
}

const (
	segMagic    = "SGSPOOL1"
	segHeader   = 16
	recHeader   = 8
	maxRecord   = 4 << 20
	adPrefix    = "sealgate-spool/v1"
	segSuffix   = ".seg"
	ackSuffix   = ".ack"
	badSuffix   = ".corrupt"
	defaultSeg  = 4 << 20
	defaultSpan = 256
)

var (
	errShort   = errors.New("spool: record truncated")
	errCorrupt = errors.New("spool: record damaged")
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
)

// permanentError marks a delivery error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as final: the consumer refuses these events for good
// (the gateway answered 400 or 413). The Spool and the Sink then retry the
// events one by one and move those still refused to the dead letters
// instead of retrying them forever.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// OpenSpool opens (creating it if needed) the spool in dir and replays
// what a previous run left: the pending events are delivered by Run.
func OpenSpool(dir string, aead cipher.AEAD, log *slog.Logger) (*Spool, error) {
	if aead == nil {
		return nil, errors.New("spool: no AEAD")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, aead: aead, log: log, counts: map[uint64]int64{}, nextSeq: 1, notify: make(chan struct{}, 1)}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	acks := map[uint64]bool{}
	for _, e := range ents {
		name := e.Name()
		if seq, ok := parseSeq(name, segSuffix); ok {
			s.sealed = append(s.sealed, seq)
		} else if seq, ok := parseSeq(name, ackSuffix); ok {
			acks[seq] = true
		} else if seq, ok := parseSeq(name, badSuffix); ok {
			s.nextSeq = max(s.nextSeq, seq+1)
		}
	}
	slices.Sort(s.sealed)
	var total int64
	found := s.sealed
	s.sealed = nil
	for _, seq := range found {
		s.nextSeq = max(s.nextSeq, seq+1)
		delete(acks, seq)
		n, ok, err := s.replay(seq)
		if err != nil {
			return nil, err
		}
		if ok {
			s.sealed = append(s.sealed, seq)
			s.counts[seq] = n
			total += n
		}
	}
	for seq := range acks { // an ack whose segment is gone: its removal was interrupted
		_ = os.Remove(s.path(seq, ackSuffix))
	}
	s.pending.Store(total)
	if total > 0 {
		log.Info("spool: replaying events left by an earlier run", "events", total, "segments", len(s.sealed))
	}
	return s, nil
}

// replay checks one segment left on disk, cuts a torn tail off and returns
// how many unacknowledged records it holds; ok is false for a segment
// whose header is damaged, which is kept aside.
func (s *Spool) replay(seq uint64) (n int64, ok bool, err error) {
	path := s.path(seq, segSuffix)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false, fmt.Errorf("spool: %w", err)
	}
	if err := checkHeader(data, seq); err != nil {
		s.log.Error("spool: segment header damaged, kept aside", "bytes", len(data))
		return 0, false, s.quarantine(seq)
	}
	ack := s.readAck(seq)
	off := int64(segHeader)
	for off < int64(len(data)) {
		_, size, err := parseRecord(data[off:])
		if err == errShort {
			// A crash during an Append: that Append never returned, so no
			// one was told these bytes were kept.
			s.log.Warn("spool: cutting a torn record off a segment", "bytes", int64(len(data))-off)
			if err := os.Truncate(path, off); err != nil {
				return 0, false, fmt.Errorf("spool: %w", err)
			}
			break
		}
		if err != nil {
			break // delivered up to here, then kept aside by Run
		}
		if off >= ack {
			n++
		}
		off += int64(size)
	}
	return n, true, nil
}

func parseSeq(name, suffix string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, suffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	seq, err := strconv.ParseUint(base, 10, 64)
	return seq, err == nil
}

func (s *Spool) path(seq uint64, suffix string) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seq, suffix))
}

func checkHeader(data []byte, seq uint64) error {
	if len(data) < segHeader || string(data[:8]) != segMagic || binary.BigEndian.Uint64(data[8:16]) != seq {
		return errCorrupt
	}
	return nil
}

// parseRecord reads one record frame from the start of b: the sealed bytes
// and the frame's size. errShort means b ends inside the frame; errCorrupt
// that the frame is not one.
func parseRecord(b []byte) (sealed []byte, size int, err error) {
	if len(b) < recHeader {
		return nil, 0, errShort
	}
	n := binary.BigEndian.Uint32(b[0:4])
	if n < 12+16 || n > maxRecord {
		return nil, 0, errCorrupt
	}
	if uint64(len(b)) < recHeader+uint64(n) {
		return nil, 0, errShort
	}
	crc := crc32.Update(crc32.Checksum(b[0:4], castagnoli), castagnoli, b[recHeader:recHeader+n])
	if crc != binary.BigEndian.Uint32(b[4:8]) {
		return nil, 0, errCorrupt
	}
	return b[recHeader : recHeader+n], recHeader + int(n), nil
}

// appendRecord appends the frame of sealed to dst.
func appendRecord(dst, sealed []byte) []byte {
	var h [recHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(sealed)))
	crc := crc32.Update(crc32.Checksum(h[0:4], castagnoli), castagnoli, sealed)
	binary.BigEndian.PutUint32(h[4:8], crc)
	dst = append(dst, h[:]...)
	return append(dst, sealed...)
}

func recordAD(seq uint64, off int64) []byte {
	ad := make([]byte, 0, len(adPrefix)+16)
	ad = append(ad, adPrefix...)
	ad = binary.BigEndian.AppendUint64(ad, seq)
	return binary.BigEndian.AppendUint64(ad, uint64(off))
}

func (s *Spool) seal(dst []byte, seq uint64, off int64, ev []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(ev)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return dst, err
	}
	sealed := s.aead.Seal(nonce, nonce, ev, recordAD(seq, off))
	if len(sealed) > maxRecord {
		return dst, fmt.Errorf("spool: event of %d bytes is too large", len(ev))
	}
	return appendRecord(dst, sealed), nil
}

func (s *Spool) open(sealed []byte, seq uint64, off int64) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns {
		return nil, errCorrupt
	}
	ev, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], recordAD(seq, off))
	if err != nil {
		return nil, errCorrupt
	}
	return ev, nil
}

// Pending is the number of events in the spool not yet delivered.
func (s *Spool) Pending() int64 { return s.pending.Load() }

// Dir is the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Append writes events to the spool and returns once they are on disk
// (fsync). Events are not copied beyond the call.
func (s *Spool) Append(events [][]byte) error {
	if len(events) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("spool: closed")
	}
	if s.active == nil {
		if err := s.startSegment(); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	seg := s.active
	var buf []byte
	for _, ev := range events {
		var err error
		if buf, err = s.seal(buf, seg.seq, seg.size+int64(len(buf)), ev); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	if _, err := seg.f.Write(buf); err != nil {
		// The segment may now end in a torn record: stop writing to it.
		s.sealLocked()
		s.mu.Unlock()
		return fmt.Errorf("spool: write: %w", err)
	}
	seg.size += int64(len(buf))
	s.counts[seg.seq] += int64(len(events))
	s.pending.Add(int64(len(events)))
	s.written++
	gen := s.written
	full := seg.size >= s.maxSegment()
	s.mu.Unlock()

	err := s.syncTo(gen)
	if full {
		s.syncMu.Lock()
		s.mu.Lock()
		if s.active == seg {
			s.sealLocked()
		}
		s.mu.Unlock()
		s.syncMu.Unlock()
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return err
}

func (s *Spool) maxSegment() int64 {
	if s.MaxSegmentBytes > 0 {
		return s.MaxSegmentBytes
	}
	return defaultSeg
}

// startSegment creates the next segment file; s.mu is held.
func (s *Spool) startSegment() error {
	seq := s.nextSeq
	f, err := os.OpenFile(s.path(seq, segSuffix), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var h [segHeader]byte
	copy(h[:8], segMagic)
	binary.BigEndian.PutUint64(h[8:], seq)
	if _, err := f.Write(h[:]); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	s.nextSeq++
	s.active = &segment{f: f, seq: seq, size: segHeader}
	s.counts[seq] = 0
	return nil
}

// syncTo makes sure append generation gen is on disk, sharing one fsync
// among the appends that wait together.
func (s *Spool) syncTo(gen uint64) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	if s.synced >= gen {
		s.mu.Unlock()
		return nil
	}
	if s.active == nil { // sealed by a failed write whose fsync failed too
		s.mu.Unlock()
		return errors.New("spool: fsync failed")
	}
	f, cur := s.active.f, s.written
	s.mu.Unlock()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	s.mu.Lock()
	s.synced = max(s.synced, cur)
	s.mu.Unlock()
	return nil
}

// sealLocked closes the active segment for writing and queues it for
// delivery; s.mu is held (and s.syncMu, unless after a failed write).
func (s *Spool) sealLocked() {
	seg := s.active
	if seg == nil {
		return
	}
	if err := seg.f.Sync(); err == nil {
		s.synced = s.written
	}
	seg.f.Close()
	s.active = nil
	s.sealed = append(s.sealed, seg.seq)
}

// Close seals the active segment. Pending events stay on disk for the next
// OpenSpool.
func (s *Spool) Close() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.sealLocked()
	if s.dead != nil {
		s.dead.Close()
	}
	return nil
}

// Run delivers the spooled events, oldest first, in batches of at most
// MaxBatch, until ctx is done. A failed delivery is retried with
// exponential backoff (MinBackoff to MaxBackoff, with jitter); a Permanent
// failure is retried event by event and what is still refused goes to the
// dead letters. Only one Run may be active at a time.
func (s *Spool) Run(ctx context.Context, deliver func([][]byte) error) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("spool: Run is already active")
	}
	defer s.running.Store(false)
	for {
		seq, ok := s.nextToDeliver()
		if !ok {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-s.notify:
				continue
			}
		}
		if err := s.drain(ctx, seq, deliver); err != nil {
			return err
		}
	}
}

// nextToDeliver returns the oldest sealed segment, sealing the active one
// if it has records and nothing else is left.
func (s *Spool) nextToDeliver() (uint64, bool) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sealed) == 0 && s.active != nil && s.counts[s.active.seq] > 0 {
		s.sealLocked()
	}
	if len(s.sealed) == 0 {
		return 0, false
	}
	return s.sealed[0], true
}

// drain delivers one sealed segment and removes it.
func (s *Spool) drain(ctx context.Context, seq uint64, deliver func([][]byte) error) error {
	data, err := os.ReadFile(s.path(seq, segSuffix))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			s.forget(seq)
			return nil
		}
		// Unreadable for now (permissions, I/O): wait and let Run retry.
		s.log.Error("spool: cannot read a segment", "error_class", errClass(err))
		return sleepCtx(ctx, s.maxBackoff())
	}
	damaged := checkHeader(data, seq) != nil
	off := s.readAck(seq)
	maxBatch := s.MaxBatch
	if maxBatch <= 0 {
		maxBatch = defaultSpan
	}
	for !damaged && off < int64(len(data)) {
		var batch [][]byte
		end, bytesIn := off, 0
		for end < int64(len(data)) && len(batch) < maxBatch && bytesIn < 8<<20 {
			sealed, size, err := parseRecord(data[end:])
			if err == errShort && len(batch) == 0 && end == off {
				// A torn tail after a failed write: the Append that wrote
				// it reported the failure.
				end = int64(len(data))
				break
			}
			if err != nil {
				if err != errShort {
					damaged = true
				}
				break
			}
			ev, err := s.open(sealed, seq, end)
			if err != nil {
				damaged = true
				break
			}
			batch = append(batch, ev)
			bytesIn += len(ev)
			end += int64(size)
		}
		if len(batch) > 0 {
			if err := s.deliver(ctx, batch, deliver); err != nil {
				return err
			}
			if err := s.writeAck(seq, end); err != nil {
				s.log.Error("spool: cannot record delivery", "error_class", errClass(err))
			}
			s.mu.Lock()
			s.counts[seq] -= int64(len(batch))
			s.mu.Unlock()
			s.pending.Add(-int64(len(batch)))
		}
		if end == off {
			break
		}
		off = end
	}
	if damaged {
		s.log.Error("spool: damaged segment kept aside after delivering what preceded the damage")
		if err := s.quarantine(seq); err != nil {
			return err
		}
	} else {
		_ = os.Remove(s.path(seq, segSuffix))
		_ = os.Remove(s.path(seq, ackSuffix))
		_ = syncDir(s.dir)
	}
	s.forget(seq)
	return nil
}

// forget drops a segment from the bookkeeping.
func (s *Spool) forget(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if left := s.counts[seq]; left > 0 {
		s.pending.Add(-left)
	}
	delete(s.counts, seq)
	s.sealed = slices.DeleteFunc(s.sealed, func(x uint64) bool { return x == seq })
}

// quarantine renames a damaged segment so it is neither delivered nor
// deleted.
func (s *Spool) quarantine(seq uint64) error {
	_ = os.Remove(s.path(seq, ackSuffix))
	if err := os.Rename(s.path(seq, segSuffix), s.path(seq, badSuffix)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(s.dir)
}

// deliver hands one batch to the consumer until it takes it or ctx ends.
func (s *Spool) deliver(ctx context.Context, batch [][]byte, deliver func([][]byte) error) error {
	wait := s.minBackoff()
	for {
		err := deliver(batch)
		if err == nil {
			return nil
		}
		if IsPermanent(err) {
			if len(batch) == 1 {
				s.deadLetter(batch)
				return nil
			}
			for i := range batch {
				if err := s.deliver(ctx, batch[i:i+1], deliver); err != nil {
					return err
				}
			}
			return nil
		}
		s.log.Warn("spool: delivery failed, retrying", "events", len(batch), "wait_ms", wait.Milliseconds())
		if err := sleepCtx(ctx, jitter(wait)); err != nil {
			return err
		}
		wait = min(2*wait, s.maxBackoff())
	}
}

// deadLetter moves events the consumer refused for good to dead/.
func (s *Spool) deadLetter(events [][]byte) {
	s.mu.Lock()
	if s.dead == nil && s.deadErr == nil {
		s.dead, s.deadErr = OpenSpool(filepath.Join(s.dir, "dead"), s.aead, s.log)
	}
	dead, derr := s.dead, s.deadErr
	s.mu.Unlock()
	if derr == nil {
		derr = dead.Append(events)
	}
	if derr != nil {
		s.log.Error("spool: refused events lost: dead letters not writable", "events", len(events), "error_class", errClass(derr))
		return
	}
	s.log.Error("spool: consumer refused events for good; kept in dead letters", "events", len(events))
}

func (s *Spool) minBackoff() time.Duration {
	if s.MinBackoff > 0 {
		return s.MinBackoff
	}
	return 100 * time.Millisecond
}

func (s *Spool) maxBackoff() time.Duration {
	if s.MaxBackoff > 0 {
		return s.MaxBackoff
	}
	return 10 * time.Second
}

// readAck returns the offset up to which segment seq is delivered.
func (s *Spool) readAck(seq uint64) int64 {
	b, err := os.ReadFile(s.path(seq, ackSuffix))
	if err != nil || len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return segHeader
	}
	off := int64(binary.BigEndian.Uint64(b[:8]))
	if off < segHeader {
		return segHeader
	}
	return off
}

// writeAck records that segment seq is delivered up to off: written to a
// temporary file, fsynced and renamed over the old one.
func (s *Spool) writeAck(seq uint64, off int64) error {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(off))
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	tmp := s.path(seq, ackSuffix+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path(seq, ackSuffix)); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync dir: %w", err)
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	return d/2 + mrand.N(d/2)
}
