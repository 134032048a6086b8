package audit

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Checkpoint is a published head of the log: the Seq and Hash of its last
// entry at Time. Seq 0 with a zero Hash is the empty log.
//
// Its text form, one line:
//
//	sealgate-audit-checkpoint-v1 seq=N hash=<64 lowercase hex digits> time=<RFC 3339, UTC>
//
// Time is informational (when the head was read); it is not part of any
// hash.
type Checkpoint struct {
	Seq  uint64
	Hash [32]byte
	Time time.Time
}

const checkpointMagic = "sealgate-audit-checkpoint-v1"

// String returns the text form. Time is written to the second.
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s seq=%d hash=%s time=%s",
		checkpointMagic, c.Seq, hex.EncodeToString(c.Hash[:]), c.Time.UTC().Format(time.RFC3339))
}

// ParseCheckpoint parses the text form (surrounding white space, e.g. from a
// chat message, is ignored). It refuses anything else, including a zero
// hash with a non-zero Seq and a non-zero hash with Seq 0.
func ParseCheckpoint(s string) (Checkpoint, error) {
	var c Checkpoint
	fail := func(why string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("parse audit checkpoint: %s (want %q)", why,
			checkpointMagic+" seq=N hash=<hex> time=<RFC3339>")
	}
	f := strings.Fields(s)
	if len(f) != 4 || f[0] != checkpointMagic {
		return fail("not a checkpoint line")
	}
	seq, ok := strings.CutPrefix(f[1], "seq=")
	if !ok {
		return fail("missing seq=")
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || (len(seq) > 1 && seq[0] == '0') {
		return fail("seq is not a decimal number")
	}
	c.Seq = n
	hx, ok := strings.CutPrefix(f[2], "hash=")
	if !ok {
		return fail("missing hash=")
	}
	if len(hx) != 64 || strings.ToLower(hx) != hx {
		return fail("hash is not 64 lowercase hex digits")
	}
	if _, err := hex.Decode(c.Hash[:], []byte(hx)); err != nil {
		return fail("hash is not 64 lowercase hex digits")
	}
	ts, ok := strings.CutPrefix(f[3], "time=")
	if !ok {
		return fail("missing time=")
	}
	if c.Time, err = time.Parse(time.RFC3339, ts); err != nil {
		return fail("time is not RFC 3339")
	}
	c.Time = c.Time.UTC()
	if err := c.check(); err != nil {
		return fail(err.Error())
	}
	return c, nil
}

func (c Checkpoint) check() error {
	switch zero := c.Hash == [32]byte{}; {
	case c.Seq == 0 && !zero:
		return errors.New("seq 0 (empty log) with a non-zero hash")
	case c.Seq != 0 && zero:
		return errors.New("zero hash for a non-empty log")
	}
	return nil
}
