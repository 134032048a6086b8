package proxy

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sink is the consumer side of the capture: Proxy.Capture = sink.Capture.
// It batches events and hands them to Deliver (the ingest pipeline). When
// Deliver fails, or while the Spool still holds older events, batches go to
// the Spool, whose replay (run by Sink.Run) delivers them once the
// pipeline is back. So the store being down never reaches the proxy.
//
// Deliver must be idempotent per event (the ingest pipeline is, by post
// id, kind and version) and should mark refusals that retrying cannot fix
// with Permanent; the Sink then retries such a batch event by event and
// moves what is still refused to the Spool's dead letters.
type Sink struct {
	Deliver func(events [][]byte) error
	// Spool keeps what Deliver cannot take now. Nil: retry in memory only.
	Spool *Spool
	Log   *slog.Logger
	// MaxBatch bounds the events per Deliver; default 256.
	MaxBatch int
	// MaxDelay is how long the first event of a batch waits for company;
	// default 5ms.
	MaxDelay time.Duration
	// MaxPending bounds the events held in memory; beyond it Capture
	// writes straight to the Spool (or, without one, drops). Default 65536.
	MaxPending int

	mu      sync.Mutex
	pending [][]byte
	kick    chan struct{}
	once    sync.Once
	stats   struct{ delivered, spooled, dropped atomic.Int64 }
}

// SinkStats counts what a Sink did.
type SinkStats struct {
	Delivered int64 // events Deliver took directly
	Spooled   int64 // events written to the Spool
	Dropped   int64 // events lost (no Spool, or the Spool failed, and no room)
}

// Stats returns the Sink's counters (the Spool's replay is counted by
// Spool.Pending going down, not here).
func (s *Sink) Stats() SinkStats {
	return SinkStats{Delivered: s.stats.delivered.Load(), Spooled: s.stats.spooled.Load(), Dropped: s.stats.dropped.Load()}
}

func (s *Sink) init() {
	s.once.Do(func() {
		s.kick = make(chan struct{}, 1)
		if s.Log == nil {
			s.Log = slog.New(slog.DiscardHandler)
		}
		if s.MaxBatch <= 0 {
			s.MaxBatch = 256
		}
		if s.MaxDelay <= 0 {
			s.MaxDelay = 5 * time.Millisecond
		}
		if s.MaxPending <= 0 {
			s.MaxPending = 65536
		}
	})
}

// Capture queues one event; it never waits for Deliver.
func (s *Sink) Capture(ev []byte) {
	s.init()
	s.mu.Lock()
	if len(s.pending) >= s.MaxPending {
		s.mu.Unlock()
		s.toSpool([][]byte{ev})
		return
	}
	s.pending = append(s.pending, ev)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Sink) take(n int) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil
	}
	n = min(n, len(s.pending))
	batch := make([][]byte, n)
	copy(batch, s.pending)
	rest := copy(s.pending, s.pending[n:])
	clear(s.pending[rest:])
	s.pending = s.pending[:rest]
	return batch
}

func (s *Sink) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Run delivers until ctx is done, and runs the Spool's replay alongside.
// On return every event Capture took is delivered or in the Spool.
func (s *Sink) Run(ctx context.Context) error {
	s.init()
	var replay sync.WaitGroup
	if s.Spool != nil {
		replay.Add(1)
		go func() {
			defer replay.Done()
			err := s.Spool.Run(ctx, s.Deliver)
			if err != nil && !errors.Is(err, context.Canceled) {
				s.Log.Error("sink: spool replay stopped", "error_class", errClass(err))
			}
		}()
	}
	defer replay.Wait()
	for {
		select {
		case <-ctx.Done():
			s.flush()
			return ctx.Err()
		case <-s.kick:
		}
		if s.queued() < s.MaxBatch {
			t := time.NewTimer(s.MaxDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		for {
			batch := s.take(s.MaxBatch)
			if batch == nil {
				break
			}
			s.process(ctx, batch)
		}
	}
}

// flush puts what is still queued into the Spool at shutdown.
func (s *Sink) flush() {
	for {
		batch := s.take(s.MaxBatch)
		if batch == nil {
			return
		}
		s.toSpool(batch)
	}
}

// process delivers one batch, or spools it.
func (s *Sink) process(ctx context.Context, batch [][]byte) {
	if s.Spool != nil && s.Spool.Pending() > 0 {
		// Older events are waiting for the pipeline: join them rather than
		// knock on a door known to be shut.
		s.toSpool(batch)
		return
	}
	wait := 100 * time.Millisecond
	for {
		err := s.Deliver(batch)
		if err == nil {
			s.stats.delivered.Add(int64(len(batch)))
			return
		}
		if IsPermanent(err) {
			if len(batch) > 1 {
				for i := range batch {
					s.process(ctx, batch[i:i+1])
				}
			} else if s.Spool != nil {
				s.Spool.deadLetter(batch)
			} else {
				s.stats.dropped.Add(1)
				s.Log.Error("sink: event refused for good and no spool for dead letters")
			}
			return
		}
		if s.Spool != nil {
			s.Log.Warn("sink: delivery failed, spooling", "events", len(batch))
			aerr := s.Spool.Append(batch)
			if aerr == nil {
				s.stats.spooled.Add(int64(len(batch)))
				return
			}
			s.Log.Error("sink: spool failed, holding events in memory", "events", len(batch), "error_class", errClass(aerr))
		}
		// No spool, or the spool failed too: hold on and retry.
		if sleepCtx(ctx, jitter(wait)) != nil {
			s.toSpool(batch)
			return
		}
		wait = min(2*wait, 10*time.Second)
	}
}

// toSpool writes events to the Spool; false if they could not be kept.
func (s *Sink) toSpool(events [][]byte) bool {
	if s.Spool == nil {
		s.stats.dropped.Add(int64(len(events)))
		s.Log.Error("sink: events dropped: no spool", "events", len(events))
		return false
	}
	if err := s.Spool.Append(events); err != nil {
		s.stats.dropped.Add(int64(len(events)))
		s.Log.Error("sink: events dropped: spool failed", "events", len(events), "error_class", errClass(err))
		return false
	}
	s.stats.spooled.Add(int64(len(events)))
	return true
}
