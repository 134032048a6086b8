package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Problem is the kind of a VerifyError.
type Problem string

// The problems Verify reports.
const (
	// ProblemModified: the entry's content does not hash to its stored Hash
	// (a field, Prev or Hash itself was changed).
	ProblemModified Problem = "modified"
	// ProblemReordered: the entry hashes correctly only under another
	// sequence number: it was moved (e.g. two entries swapped).
	ProblemReordered Problem = "reordered"
	// ProblemMissing: one or more entries from Seq on are missing (deleted),
	// or were moved to a higher sequence number.
	ProblemMissing Problem = "missing"
	// ProblemBrokenLink: the entry hashes correctly but its Prev is not the
	// stored Hash of the entry before it: the previous entry was rewritten
	// (with a recomputed hash), or this one forged.
	ProblemBrokenLink Problem = "broken link"
	// ProblemOutOfOrder: the backend returned the entry after one with an
	// equal or higher Seq (a broken backend or store).
	ProblemOutOfOrder Problem = "out of order"
	// ProblemUnreadable: the backend could not decode the stored entry.
	ProblemUnreadable Problem = "unreadable"
	// ProblemTruncated: the log ends before the checkpoint's Seq: entries
	// were deleted at the end.
	ProblemTruncated Problem = "truncated"
	// ProblemCheckpoint: the entry at the checkpoint's Seq does not have the
	// checkpoint's hash: the log was rewritten up to there (or the
	// checkpoint is not this log's).
	ProblemCheckpoint Problem = "checkpoint mismatch"
)

// VerifyError is one problem Verify found: which entry, and what is wrong.
type VerifyError struct {
	Seq     uint64
	Problem Problem
	Detail  string
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("audit entry %d: %s: %s", e.Seq, e.Problem, e.Detail)
}

// Report is the outcome of Verify.
type Report struct {
	Entries uint64     // entries read
	Head    Checkpoint // Seq and Hash of the last entry read (Time: its time); zero if none
	// Checkpoint is the checkpoint verified against, if any; CheckpointOK
	// says the log holds the checkpoint's entry with the checkpoint's hash.
	Checkpoint   *Checkpoint
	CheckpointOK bool
	// Problems in the order found, at most MaxProblems of them;
	// MoreProblems says some were left off.
	Problems     []*VerifyError
	MoreProblems bool
}

// MaxProblems bounds Report.Problems.
const MaxProblems = 100

// reorderWindow is how far from its position Verify looks for the sequence
// number an entry that fails its hash was written under.
const reorderWindow = 64

// OK reports whether Verify found no problem.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// String is a human-readable summary, one problem per line.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries, head seq=%d hash=%x\n", r.Entries, r.Head.Seq, r.Head.Hash)
	if r.Checkpoint != nil {
		state := "does not match"
		if r.CheckpointOK {
			state = "matches"
		}
		fmt.Fprintf(&b, "checkpoint seq=%d of %s: %s\n", r.Checkpoint.Seq, r.Checkpoint.Time.Format("2006-01-02T15:04:05Z07:00"), state)
	}
	if r.OK() {
		b.WriteString("chain intact\n")
		return b.String()
	}
	for _, p := range r.Problems {
		b.WriteString(p.Error())
		b.WriteByte('\n')
	}
	if r.MoreProblems {
		b.WriteString("(more problems not listed)\n")
	}
	return b.String()
}

func (r *Report) add(seq uint64, p Problem, format string, args ...any) {
	if len(r.Problems) == MaxProblems {
		r.MoreProblems = true
		return
	}
	r.Problems = append(r.Problems, &VerifyError{Seq: seq, Problem: p, Detail: fmt.Sprintf(format, args...)})
}

// Verify reads every entry of the log in b and checks that each hashes to
// its stored Hash, that sequence numbers run 1, 2, 3, … without gaps, and
// that each Prev is the stored Hash of the entry before (zero for the
// first). That catches a modified, deleted or reordered entry anywhere
// except at the very end. Given a checkpoint published earlier, it also
// checks that the log still holds the checkpoint's entry with the
// checkpoint's hash, which catches deleted entries at the end (truncation)
// and a chain recomputed from some entry on, up to the checkpoint.
//
// It returns a Report listing every problem found and, if there is one, the
// first as a *VerifyError; or another error if the backend failed.
func Verify(ctx context.Context, b Backend, checkpoint *Checkpoint) (Report, error) {
	var (
		r         = Report{Checkpoint: checkpoint}
		expected  = uint64(1)
		prevHash  [32]byte // stored Hash of the entry read before
		linkKnown = true   // whether prevHash is what the next entry must link to
		cpSeen    bool
		cpStored  [32]byte
	)
	err := b.AuditEntries(ctx, 1, func(e Entry) error {
		if e.Seq < expected {
			r.add(e.Seq, ProblemOutOfOrder, "read after entry %d", expected-1)
			return nil
		}
		if e.Seq > expected {
			if e.Seq == expected+1 {
				r.add(expected, ProblemMissing, "entry %d is missing (deleted or moved)", expected)
			} else {
				r.add(expected, ProblemMissing, "entries %d to %d are missing (deleted or moved)", expected, e.Seq-1)
			}
			linkKnown = false // its predecessor is gone: nothing to compare Prev with
		}
		switch h := e.ComputeHash(); {
		case h != e.Hash:
			if orig, ok := movedFrom(e); ok {
				r.add(e.Seq, ProblemReordered, "holds the entry written as entry %d (entries reordered)", orig)
			} else {
				r.add(e.Seq, ProblemModified, "content does not match its stored hash (entry altered)")
			}
		case linkKnown && e.Prev != prevHash:
			if e.Seq == 1 {
				r.add(e.Seq, ProblemBrokenLink, "first entry's prev is not zero (entries before it were removed, or it was forged)")
			} else {
				r.add(e.Seq, ProblemBrokenLink, "prev does not match the stored hash of entry %d (entry %d was rewritten, or this one forged)", e.Seq-1, e.Seq-1)
			}
		}
		prevHash, linkKnown, expected = e.Hash, true, e.Seq+1
		r.Entries++
		r.Head = Checkpoint{Seq: e.Seq, Hash: e.Hash, Time: e.Time}
		if checkpoint != nil && e.Seq == checkpoint.Seq {
			cpSeen, cpStored = true, e.Hash
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			r.add(expected, ProblemUnreadable, "%v", err)
			return r, r.Problems[0]
		}
		return r, fmt.Errorf("audit verify: %w", err)
	}
	if c := checkpoint; c != nil {
		switch {
		case c.check() != nil:
			r.add(c.Seq, ProblemCheckpoint, "invalid checkpoint: %v", c.check())
		case c.Seq == 0:
			r.CheckpointOK = true // the empty log is a prefix of every log
		case r.Head.Seq < c.Seq:
			r.add(r.Head.Seq+1, ProblemTruncated, "log ends at entry %d but the checkpoint of %s covers entries up to %d (entries deleted at the end)",
				r.Head.Seq, c.Time.UTC().Format("2006-01-02T15:04:05Z"), c.Seq)
		case !cpSeen:
			r.add(c.Seq, ProblemCheckpoint, "the checkpoint's entry is missing")
		case cpStored != c.Hash:
			r.add(c.Seq, ProblemCheckpoint, "stored hash %x differs from the checkpoint of %s (log rewritten up to here)",
				cpStored[:8], c.Time.UTC().Format("2006-01-02T15:04:05Z"))
		default:
			r.CheckpointOK = true
		}
	}
	if len(r.Problems) > 0 {
		return r, r.Problems[0]
	}
	return r, nil
}

// movedFrom reports whether e hashes correctly under a nearby sequence
// number, and which: then the entry was moved rather than altered.
func movedFrom(e Entry) (uint64, bool) {
	at := e.Seq
	try := func(s uint64) bool {
		e.Seq = s
		return e.ComputeHash() == e.Hash
	}
	for d := uint64(1); d <= reorderWindow; d++ {
		if d < at && try(at-d) {
			return at - d, true
		}
		if at+d > at && try(at+d) {
			return at + d, true
		}
	}
	return 0, false
}
