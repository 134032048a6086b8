package gateway

import (
	"context"
	"fmt"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// Pipeline seals events and writes them to the store.
type Pipeline struct {
	Sealer *crypto.Sealer
	Keys   *crypto.GatewayKeys
	Store  store.Store
}

// Result says what one Ingest did.
type Result struct {
	Received  int // events in the batch
	Stored    int // records newly stored
	Duplicate int // events already stored or repeated in the batch
}

// Ingest seals the events and stores them in one transaction. When it
// returns without error every event is durably stored (now or before).
func (p *Pipeline) Ingest(ctx context.Context, events []crypto.Event) (Result, error) {
	res := Result{Received: len(events)}
	seen := make(map[crypto.Ref]struct{}, len(events))
	sealed := make([]*crypto.Sealed, 0, len(events))
	b := &store.Batch{Records: make([]store.Record, 0, len(events))}
	carried := map[crypto.KeyRecordID]bool{}
	epochs := map[crypto.EpochID]bool{}
	for i := range events {
		ev := &events[i]
		ref := p.Keys.Ref(ev.PostID, ev.Kind, ev.Version)
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
	res.Stored = n
	res.Duplicate = res.Received - n
	return res, nil
}
