package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/plugin"
)

// The durable buffer lives in the plugin's key-value store (Mattermost's
// database):
//
//	q:<seq>     one queued event (its ingest JSON) or file reference; deleted
//	            once sealgate answered 200 for it
//	dead:<seq>  an event sealgate refused on its own, with the status and
//	            reason; kept for an administrator, never deleted by the plugin
//	seq         the sequence counter: the end of the last reserved block
//
// <seq> is zero-padded to 20 digits, so keys sort in queue order.
// Sequence numbers are reserved in blocks with compare-and-set, so plugin
// instances on several cluster nodes never reuse a key.
const (
	queuePrefix = "q:"
	deadPrefix  = "dead:"
	seqKey      = "seq"
	seqBlock    = 1000
	listPage    = 1000
	// maxCached bounds the event bytes kept in memory besides the KV store;
	// beyond it (a long outage) queued events are read back when sent.
	maxCached = 64 << 20
)

func queueKey(seq uint64) string { return fmt.Sprintf("%s%020d", queuePrefix, seq) }

// item is one queued event.
type item struct {
	seq       uint64
	key       string // "" if the KV store refused it: kept in memory only
	data      []byte // nil: not cached, read from the KV store when sent
	cached    int    // bytes of data counted in queue.cached
	notBefore time.Time
	tries     int
	done      bool
}

type queue struct {
	api    plugin.API
	wakeCh chan struct{}

	mu          sync.Mutex
	items       []*item // in queue order; done items are trimmed from the head
	next, limit uint64  // the reserved block of sequence numbers
	cached      int64
	deadCount   int
}

// openQueue lists the queued keys left by earlier runs. Their values are
// read when they are sent.
func openQueue(api plugin.API) (*queue, error) {
	q := &queue{api: api, wakeCh: make(chan struct{}, 1)}
	var seqs []uint64
	for page := 0; ; page++ {
		keys, appErr := api.KVList(page, listPage)
		if appErr != nil {
			return nil, fmt.Errorf("sealgate: list the queued events: %w", appErr)
		}
		for _, k := range keys {
			switch {
			case strings.HasPrefix(k, queuePrefix):
				n, err := strconv.ParseUint(k[len(queuePrefix):], 10, 64)
				if err != nil {
					api.LogWarn("sealgate: ignoring a malformed queue key", "key", k)
					continue
				}
				seqs = append(seqs, n)
			case strings.HasPrefix(k, deadPrefix):
				q.deadCount++
			}
		}
		if len(keys) < listPage {
			break
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	q.next = 1
	for i, s := range seqs {
		if i > 0 && s == seqs[i-1] {
			continue
		}
		q.items = append(q.items, &item{seq: s, key: queueKey(s)})
		q.next = s + 1
	}
	q.limit = q.next // reserve a block on the first add
	return q, nil
}

// reserveLocked reserves the next block of sequence numbers. q.mu is held.
func (q *queue) reserveLocked() error {
	for range 20 {
		old, appErr := q.api.KVGet(seqKey)
		if appErr != nil {
			return appErr
		}
		var cur uint64
		if old != nil {
			n, err := strconv.ParseUint(string(old), 10, 64)
			if err != nil {
				return fmt.Errorf("sequence counter %q is not a number", old)
			}
			cur = n
		}
		start := max(cur, q.next)
		end := start + seqBlock
		ok, appErr := q.api.KVCompareAndSet(seqKey, old, []byte(strconv.FormatUint(end, 10)))
		if appErr != nil {
			return appErr
		}
		if ok {
			q.next, q.limit = start, end
			return nil
		}
	}
	return errors.New("sequence counter contended")
}

// add queues an event: written to the KV store before add returns, then
// handed to the sender. If the KV store fails the event is kept in memory
// and still sent; the failure is logged.
func (q *queue) add(data []byte) {
	q.mu.Lock()
	if q.next >= q.limit {
		if err := q.reserveLocked(); err != nil {
			q.api.LogError("sealgate: cannot reserve queue keys; event kept in memory only", "err", err.Error())
		}
	}
	it := &item{data: data}
	if q.next < q.limit {
		it.seq, it.key = q.next, queueKey(q.next)
		q.next++
	}
	q.mu.Unlock()

	if it.key != "" {
		if appErr := q.api.KVSet(it.key, data); appErr != nil {
			q.api.LogError("sealgate: cannot write the event to the key-value store; kept in memory only", "err", appErr.Error())
			it.key = ""
		}
	}
	q.mu.Lock()
	if it.key == "" || q.cached+int64(len(data)) <= maxCached {
		it.cached = len(data)
		q.cached += int64(len(data))
	} else {
		it.data = nil
	}
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.wake()
}

func (q *queue) wake() {
	select {
	case q.wakeCh <- struct{}{}:
	default:
	}
}

// pending counts the queued events not yet delivered or dead-lettered.
func (q *queue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, it := range q.items {
		if !it.done {
			n++
		}
	}
	return n
}

// take returns up to maxEvents queued events that are due, in order, with
// their data loaded and their sum within maxBytes (at least one event).
func (q *queue) take(maxEvents, maxBytes int, now time.Time) (batch []*item, err error) {
	q.mu.Lock()
	var cand []*item
	for _, it := range q.items {
		if len(cand) == maxEvents {
			break
		}
		if !it.done && !it.notBefore.After(now) {
			cand = append(cand, it)
		}
	}
	q.mu.Unlock()

	size := 0
	for _, it := range cand {
		data := it.data
		if data == nil {
			v, appErr := q.api.KVGet(it.key)
			if appErr != nil {
				return batch, fmt.Errorf("read queued event: %w", appErr)
			}
			if v == nil { // delivered by another cluster node
				q.finish(it)
				continue
			}
			data = v
		}
		if len(batch) > 0 && size+len(data) > maxBytes {
			break
		}
		if it.data == nil {
			it.data = data // owned by the single sender from here on
		}
		size += len(data)
		batch = append(batch, it)
	}
	return batch, nil
}

// nextDue says how long until the earliest deferred event is due; 0 if
// none is deferred.
func (q *queue) nextDue(now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	var wait time.Duration
	for _, it := range q.items {
		if !it.done && it.notBefore.After(now) {
			if d := it.notBefore.Sub(now); wait == 0 || d < wait {
				wait = d
			}
		}
	}
	return wait
}

// ack removes delivered events from the KV store and the queue.
func (q *queue) ack(items []*item) {
	for _, it := range items {
		if it.key != "" {
			if appErr := q.api.KVDelete(it.key); appErr != nil {
				// Sent again after a restart; sealgate de-duplicates.
				q.api.LogWarn("sealgate: cannot delete a delivered event from the queue", "err", appErr.Error())
			}
		}
		q.finish(it)
	}
}

func (q *queue) finish(it *item) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it.done = true
	q.cached -= int64(it.cached)
	it.cached, it.data = 0, nil
	n := 0
	for n < len(q.items) && q.items[n].done {
		n++
	}
	if n > 0 {
		clear(q.items[:n])
		q.items = q.items[n:]
	}
}

// deadLetter moves a refused event to dead:<seq> with why, then off the
// queue. If the move fails the event stays queued.
func (q *queue) deadLetter(it *item, status int, reason string, now time.Time) error {
	key := deadPrefix + fmt.Sprintf("%020d", it.seq)
	if it.key == "" {
		key = fmt.Sprintf("%smem-%d", deadPrefix, now.UnixNano())
	}
	rec, err := json.Marshal(struct {
		At     int64           `json:"at"`
		Status int             `json:"status,omitempty"`
		Reason string          `json:"reason"`
		Event  json.RawMessage `json:"event"`
	}{now.UnixMilli(), status, reason, validJSON(it.data)})
	if err != nil {
		return err
	}
	if appErr := q.api.KVSet(key, rec); appErr != nil {
		return appErr
	}
	if it.key != "" {
		if appErr := q.api.KVDelete(it.key); appErr != nil {
			q.api.LogWarn("sealgate: cannot delete a dead-lettered event from the queue", "err", appErr.Error())
		}
	}
	q.mu.Lock()
	q.deadCount++
	q.mu.Unlock()
	q.finish(it)
	q.api.LogError("sealgate: sealgate refused an event; moved it to the key-value store for an administrator",
		"key", key, "status", status, "reason", reason)
	return nil
}

// deferItem postpones one event after a transient error of its own (a file
// that cannot be read yet), with its own exponential backoff.
func (q *queue) deferItem(it *item, now time.Time, minB, maxB time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it.tries++
	d := minB << min(it.tries-1, 20)
	if d > maxB || d <= 0 {
		d = maxB
	}
	it.notBefore = now.Add(d)
}

func validJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}
