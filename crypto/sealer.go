package crypto

import (
	"fmt"
	"sync"
	"time"
)

// Sealed is the output of sealing one event: the record and, while they are
// not yet known to be stored, the key record and epoch record it depends on.
// The caller writes all of them in one store transaction and then calls
// Sealer.Stored so that later records stop carrying them.
type Sealed struct {
	Tag         Tag
	Hour        int64 // hours since the Unix epoch, UTC
	Ref         Ref
	KeyRecordID KeyRecordID
	Record      []byte

	KeyRecord []byte // nil once stored
	EpochID   EpochID
	Epoch     []byte // nil once stored
}

// SealerConfig configures a Sealer.
type SealerConfig struct {
	Keys   *GatewayKeys
	Slots  []Recipient // approver slots, in slot order
	Quorum int         // M
	Grace  time.Duration
	Now    func() time.Time // defaults to time.Now
}

// Sealer holds the day keys of the current day (plus grace) and seals events
// under them. It is safe for concurrent use.
type Sealer struct {
	cfg SealerConfig

	mu     sync.Mutex
	days   map[dayKeyName]*liveDayKey
	byID   map[KeyRecordID]*liveDayKey
	epochs map[string]*liveEpoch
}

type dayKeyName struct {
	employee string
	day      int64 // unixDay
}

type liveDayKey struct {
	dk        *DayKey
	epoch     *liveEpoch
	keyRecord []byte
	stored    bool
}

type liveEpoch struct {
	ep     *epoch
	stored bool
}

// NewSealer checks the configuration and returns a Sealer.
func NewSealer(cfg SealerConfig) (*Sealer, error) {
	if cfg.Keys == nil {
		return nil, fmt.Errorf("sealer: no gateway keys")
	}
	if len(cfg.Slots) == 0 || len(cfg.Slots) > maxSlots {
		return nil, fmt.Errorf("sealer: %d slots (want 1..%d)", len(cfg.Slots), maxSlots)
	}
	if cfg.Quorum < 2 || cfg.Quorum > len(cfg.Slots) {
		return nil, fmt.Errorf("sealer: quorum %d of %d slots: no single approver may unseal, so quorum must be 2..N", cfg.Quorum, len(cfg.Slots))
	}
	if cfg.Grace < 0 || cfg.Grace > 24*time.Hour {
		return nil, fmt.Errorf("sealer: grace %s out of range 0..24h", cfg.Grace)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sealer{cfg: cfg, days: map[dayKeyName]*liveDayKey{}, byID: map[KeyRecordID]*liveDayKey{}, epochs: map[string]*liveEpoch{}}, nil
}

// Seal seals one event under ref, which must be Ref(ev.PostID, ev.Kind,
// ev.Version); the caller computes it first to skip events already stored.
func (s *Sealer) Seal(ev *Event, ref Ref) (*Sealed, error) {
	if ev.Employee == "" || ev.PostID == "" {
		return nil, fmt.Errorf("seal post: missing employee or post id")
	}
	live, keyRecord, epochRecord, err := s.dayKey(ev.Employee, ev.Time)
	if err != nil {
		return nil, err
	}
	rec, err := live.dk.Seal(ref, ev)
	if err != nil {
		return nil, err
	}
	out := &Sealed{
		Tag: live.dk.tag, Hour: ev.Time.Unix() / 3600, Ref: ref, KeyRecordID: live.dk.id,
		Record: rec, EpochID: live.epoch.ep.id, KeyRecord: keyRecord, Epoch: epochRecord,
	}
	return out, nil
}

// Ref exposes the ref computation for callers that de-duplicate before sealing.
func (s *Sealer) Ref(postID string, kind Kind, version int64) Ref {
	return s.cfg.Keys.Ref(postID, kind, version)
}

// dayKey returns the live day key of (employee, day of at) and, while they
// are not known to be stored, its key record and epoch record, which
// whatever is sealed under it must be stored with.
func (s *Sealer) dayKey(employee string, at time.Time) (live *liveDayKey, keyRecord, epochRecord []byte, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live, err = s.dayKeyLocked(employee, at)
	if err != nil {
		return nil, nil, nil, err
	}
	if !live.stored {
		keyRecord = live.keyRecord
	}
	if !live.epoch.stored {
		epochRecord = live.epoch.ep.record
	}
	return live, keyRecord, epochRecord, nil
}

// dayKeyLocked returns the live day key of (employee, day of at), creating it
// and, if needed, the day's epoch. s.mu must be held.
func (s *Sealer) dayKeyLocked(employee string, at time.Time) (*liveDayKey, error) {
	name := dayKeyName{employee, unixDay(at)}
	if live, ok := s.days[name]; ok {
		return live, nil
	}
	day := Day(at)
	ep, ok := s.epochs[day]
	if !ok {
		e, err := newEpoch(s.cfg.Keys, s.cfg.Slots, day)
		if err != nil {
			return nil, err
		}
		ep = &liveEpoch{ep: e}
		s.epochs[day] = ep
	}
	dk, kr, err := newDayKey(s.cfg.Keys, ep.ep, s.cfg.Quorum, employee, day)
	if err != nil {
		return nil, err
	}
	live := &liveDayKey{dk: dk, epoch: ep, keyRecord: kr}
	s.days[name] = live
	s.byID[dk.id] = live
	return live, nil
}

// Stored records that the key records and epochs carried by these sealed
// events are durably stored.
func (s *Sealer) Stored(batch []*Sealed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range batch {
		day := Day(time.Unix(b.Hour*3600, 0))
		if ep, ok := s.epochs[day]; ok && ep.ep.id == b.EpochID {
			ep.stored = true
		}
		if live, ok := s.byID[b.KeyRecordID]; ok {
			live.stored = true
		}
	}
}

// Sweep forgets every day key and epoch whose day ended more than the grace
// period ago, and returns how many day keys it wiped. Run it periodically:
// root on the gateway after that moment cannot open those days.
func (s *Sealer) Sweep() int {
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for name, live := range s.days {
		if s.expired(live.dk.day, now) {
			live.dk.Wipe()
			delete(s.days, name)
			delete(s.byID, live.dk.id)
			n++
		}
	}
	for day, ep := range s.epochs {
		if s.expired(day, now) {
			ep.ep.exporters = nil
			delete(s.epochs, day)
		}
	}
	return n
}

func (s *Sealer) expired(day string, now time.Time) bool {
	t, err := ParseDay(day)
	if err != nil {
		return true
	}
	return now.After(t.Add(24 * time.Hour).Add(s.cfg.Grace))
}

// Live reports how many day keys the sealer holds.
func (s *Sealer) Live() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.days)
}
