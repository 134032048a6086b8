package release

import (
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/sealgate/sealgate/crypto"
)

// MakeApproval is the approver's side of step 3, run on the approver's own
// machine with their slot key (sealgate approve). It checks that the
// requester signed the order and that the gateway bound the order key to it,
// opens only this slot's shares of the subject's days inside the window, and
// seals them to the order key with the slot's signature over the order and
// its key. It returns the approval and the number of shares in it.
func MakeApproval(doc *Document, esc *Escrow, slot int, id *crypto.HPKEIdentity, gw *crypto.GatewayVerifier, requester *crypto.HPKERecipient) ([]byte, int, error) {
	o := doc.Order
	if o == nil || esc.OrderID != o.ID || esc.Slot != slot {
		return nil, 0, fmt.Errorf("make approval: the escrow is not for this order and slot")
	}
	hash := o.Hash()
	if err := crypto.VerifyOrder(requester, hash, doc.RequesterSignature); err != nil {
		return nil, 0, fmt.Errorf("make approval for order %s: %w", o.ID, err)
	}
	if err := gw.VerifyOrderKey(hash, doc.OrderKey, doc.OrderKeySignature); err != nil {
		return nil, 0, fmt.Errorf("make approval for order %s: %w", o.ID, err)
	}
	days := o.Days()
	if len(days) == 0 {
		return nil, 0, fmt.Errorf("make approval for order %s: the window is not valid", o.ID)
	}
	var shares []*crypto.ApprovalShare
	defer func() {
		for _, s := range shares {
			s.Wipe()
		}
	}()
	epochs := map[string]*crypto.EpochRecord{}
	for _, ed := range esc.Days {
		if !slices.Contains(days, ed.Day) {
			return nil, 0, fmt.Errorf("make approval for order %s: escrow holds day %s outside the window", o.ID, ed.Day)
		}
		var tag crypto.Tag
		if len(ed.Tag) != len(tag) {
			return nil, 0, fmt.Errorf("make approval for order %s: malformed tag", o.ID)
		}
		copy(tag[:], ed.Tag)
		for _, blob := range ed.KeyRecords {
			kr, err := crypto.ParseKeyRecord(tag, blob, gw)
			if err != nil {
				return nil, 0, fmt.Errorf("make approval for order %s, day %s: %w", o.ID, ed.Day, err)
			}
			k := hex.EncodeToString(kr.EpochID[:])
			ep := epochs[k]
			if ep == nil {
				raw, ok := esc.Epochs[k]
				if !ok {
					return nil, 0, fmt.Errorf("make approval for order %s, day %s: epoch missing from escrow", o.ID, ed.Day)
				}
				if ep, err = crypto.ParseEpochRecord(raw, gw); err != nil {
					return nil, 0, fmt.Errorf("make approval for order %s, day %s: %w", o.ID, ed.Day, err)
				}
				epochs[k] = ep
			}
			s, err := crypto.OpenShare(id, slot, ep, kr, o.Subject, ed.Day)
			if err != nil {
				return nil, 0, fmt.Errorf("make approval for order %s, day %s: %w", o.ID, ed.Day, err)
			}
			shares = append(shares, &crypto.ApprovalShare{Share: *s, Day: ed.Day, Employee: o.Subject})
		}
	}
	blob, err := crypto.SealApproval(id, slot, doc.Target(), doc.OrderKey, shares)
	if err != nil {
		return nil, 0, fmt.Errorf("make approval for order %s: %w", o.ID, err)
	}
	return blob, len(shares), nil
}
