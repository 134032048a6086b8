package gateway

import (
	"context"
	"fmt"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

// Pipeline seals events and writes them to the store.
type Pipeline struct {
	Sealer *crypto.Sealer
	Keys   *crypto.GatewayKeys
	Store  store.Store
	// Aggregates, if set, counts every newly stored event (never a
	// duplicate) into the in-memory, k-anonymous aggregates.
	Aggregates *redact.Aggregator
}

// Result says what one Ingest did.
type Result struct {
	Received  int // events in the batch
	Stored    int // records newly stored
	Duplicate int // events already stored or repeated in the batch
}

// Ingest seals the events and stores them in one transaction. When it
// returns without error every event is durably stored (now or before).
func (p *Pipeline) Ingest(ctx context.Context, events []Event) (Result, error) {
	res := Result{Received: len(events)}
	seen := make(map[crypto.Ref]struct{}, len(events))
	sealed := make([]*crypto.Sealed, 0, len(events))
	b := &store.Batch{Records: make([]store.Record, 0, len(events))}
	carried := map[crypto.KeyRecordID]bool{}
	epochs := map[crypto.EpochID]bool{}
	refs := make([]crypto.Ref, len(events))
	for i := range events {
		ev := &events[i].Event
		ref := p.Keys.Ref(ev.PostID, ev.Kind, ev.Version)
		refs[i] = ref
		if _, dup := seen[ref]; dup {
			continue
		}
		seen[ref] = struct{}{}
		s, err := p.Sealer.Seal(ev, ref)
		if err != nil {
			return res, fmt.Errorf("ingest event %d: %w", i, err)
		}
		sealed = append(sealed, s)
		b.Records = append(b.Records, store.Record{Ref: s.Ref, Tag: s.Tag, Hour: s.Hour, KeyRecordID: s.KeyRecordID, Blob: s.Record})
		if s.KeyRecord != nil && !carried[s.KeyRecordID] {
			carried[s.KeyRecordID] = true
			b.KeyRecords = append(b.KeyRecords, store.KeyRecord{ID: s.KeyRecordID, Tag: s.Tag, EpochID: s.EpochID, Blob: s.KeyRecord})
		}
		if s.Epoch != nil && !epochs[s.EpochID] {
			epochs[s.EpochID] = true
			b.Epochs = append(b.Epochs, store.Epoch{ID: s.EpochID, Blob: s.Epoch})
		}
	}
	n, err := p.Store.Put(ctx, b)
	if err != nil {
		return res, fmt.Errorf("ingest: store %d records: %w", len(b.Records), err)
	}
	p.Sealer.Stored(sealed)
	if p.Aggregates != nil && n > 0 {
		p.observe(events, refs, b.Inserted)
	}
	res.Stored = n
	res.Duplicate = res.Received - n
	return res, nil
}

var aggregateKinds = [...]redact.Kind{
	crypto.KindPosted:  redact.Posted,
	crypto.KindEdited:  redact.Edited,
	crypto.KindDeleted: redact.Deleted,
	crypto.KindFile:    redact.File,
}

// observe counts the events whose records were inserted.
func (p *Pipeline) observe(events []Event, refs, inserted []crypto.Ref) {
	fresh := make(map[crypto.Ref]struct{}, len(inserted))
	for _, r := range inserted {
		fresh[r] = struct{}{}
	}
	for i := range events {
		ev := &events[i]
		if _, ok := fresh[refs[i]]; !ok {
			continue
		}
		delete(fresh, refs[i]) // a repeat within the batch counts once
		p.Aggregates.Observe(redact.Event{
			Time: ev.Time, Team: ev.Team, ChannelType: ev.ChannelType, Kind: aggregateKinds[ev.Kind],
			Bytes: len(ev.Body), Files: ev.Files, User: ev.Employee,
		})
	}
}
