// Package unseal rebuilds the day keys of one employee-day from approver
// slot shares and opens exactly that employee-day's records.
//
// It is the last step of a release: given the subject, one day and the
// shares of at least M distinct slots, it parses and verifies every key
// record stored under the (employee, day) tag, recovers each day key, and
// walks the records of that tag and day. A record that does not open under
// its key record — moved, modified, forged — stops the walk with an error;
// nothing of another employee or another day can be reached, because tags,
// AADs and key derivation all bind (employee, day).
//
// Investigation orders (the order package) decide who may call this and for
// which days; this package only does the cryptography over the store.
package unseal

import (
	"context"
	"fmt"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/store"
)

// Day is one employee-day to open.
type Day struct {
	Employee string
	Day      string // YYYY-MM-DD
	Tag      crypto.Tag
}

// Slot pairs an approver slot index with the identity that holds its key.
type Slot struct {
	Index    int
	Identity crypto.Identity
}

// DayKeys opens the slots' shares in every key record of the employee-day
// and recovers the day keys. The caller must Wipe them.
func DayKeys(ctx context.Context, st store.Store, v *crypto.GatewayVerifier, d Day, slots []Slot) (map[crypto.KeyRecordID]*crypto.DayKey, error) {
	rows, err := st.KeyRecords(ctx, d.Tag)
	if err != nil {
		return nil, fmt.Errorf("unseal %s: key records: %w", d.Day, err)
	}
	keys := map[crypto.KeyRecordID]*crypto.DayKey{}
	epochs := map[crypto.EpochID]*crypto.EpochRecord{}
	for _, row := range rows {
		kr, err := crypto.ParseKeyRecord(d.Tag, row.Blob, v)
		if err != nil {
			Wipe(keys)
			return nil, fmt.Errorf("unseal %s: %w", d.Day, err)
		}
		ep, ok := epochs[kr.EpochID]
		if !ok {
			epRow, err := st.Epoch(ctx, kr.EpochID)
			if err != nil {
				Wipe(keys)
				return nil, fmt.Errorf("unseal %s: epoch: %w", d.Day, err)
			}
			if ep, err = crypto.ParseEpochRecord(epRow.Blob, v); err != nil {
				Wipe(keys)
				return nil, fmt.Errorf("unseal %s: %w", d.Day, err)
			}
			epochs[kr.EpochID] = ep
		}
		var shares []*crypto.Share
		for _, s := range slots {
			sh, err := crypto.OpenShare(s.Identity, s.Index, ep, kr, d.Employee, d.Day)
			if err != nil {
				wipeShares(shares)
				Wipe(keys)
				return nil, fmt.Errorf("unseal %s: slot %d: %w", d.Day, s.Index, err)
			}
			shares = append(shares, sh)
		}
		dk, err := crypto.RecoverDayKey(kr, d.Employee, d.Day, shares)
		wipeShares(shares)
		if err != nil {
			Wipe(keys)
			return nil, fmt.Errorf("unseal %s: %w", d.Day, err)
		}
		keys[dk.ID()] = dk
	}
	return keys, nil
}

// Records opens every record of the employee-day with its day keys and calls
// fn with each event, in (hour, ref) order.
func Records(ctx context.Context, st store.Store, d Day, keys map[crypto.KeyRecordID]*crypto.DayKey, fn func(*crypto.Event) error) error {
	t, err := crypto.ParseDay(d.Day)
	if err != nil {
		return err
	}
	from := t.Unix() / 3600
	return st.Records(ctx, d.Tag, from, from+23, func(r store.Record) error {
		dk, ok := keys[r.KeyRecordID]
		if !ok {
			return fmt.Errorf("unseal %s: record sealed under a key record that is not stored under its tag: %w", d.Day, crypto.ErrAuth)
		}
		ev, err := crypto.OpenRecord(dk, r.Ref, r.Blob)
		if err != nil {
			return fmt.Errorf("unseal %s: %w", d.Day, err)
		}
		return fn(ev)
	})
}

// Wipe wipes every day key in the map.
func Wipe(keys map[crypto.KeyRecordID]*crypto.DayKey) {
	for id, dk := range keys {
		dk.Wipe()
		delete(keys, id)
	}
}

func wipeShares(shares []*crypto.Share) {
	for _, s := range shares {
		s.Wipe()
	}
}
