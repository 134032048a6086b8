package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/order/redisstore"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/unseal"
)

// Slot is one approver slot as the desk sees it.
type Slot struct {
	Role      string
	Recipient *crypto.HPKERecipient
	Holders   []string // Mattermost user ids allowed to act with this slot
}

// Config wires a Desk.
type Config struct {
	Orders     *redisstore.Store
	Store      store.Store
	Keys       *crypto.GatewayKeys
	Audit      *audit.Log
	Slots      []Slot
	Quorum     int
	Requesters map[string]*crypto.HPKERecipient // user id → their order-signing key
	Auditors   []string
	DPO        []string
	VetoRoles  []string
	Rules      order.Rules
	Notices    Notices          // the subjects' notice outbox; nil sends none (tests, demo)
	Now        func() time.Time // default time.Now
	Log        *slog.Logger     // default slog.Default(); never given content
}

// Desk files, approves, activates, serves and ends investigation orders.
// It is safe for concurrent use.
type Desk struct {
	cfg Config

	mu       sync.Mutex
	pending  map[string]*crypto.OrderKey // order id → its key, until activation
	released map[string]*released        // order id → the subject's day keys
}

// released is an active order's key material, in memory only.
type released struct {
	mu      sync.RWMutex // readers hold it while they use keys; wipe takes it
	order   *order.Order
	keys    map[string]map[crypto.KeyRecordID]*crypto.DayKey // day → key record → key
	pseudo  *pseudonyms
	expires time.Time
	// from and to bound the window: [first day 00:00, day after the last).
	// Records are shown by their authenticated time inside it.
	from, to time.Time
}

func (r *released) wipe() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.keys {
		unseal.Wipe(m)
	}
	r.keys = nil
}

// New returns a desk.
func New(cfg Config) (*Desk, error) {
	if cfg.Orders == nil || cfg.Store == nil || cfg.Keys == nil || cfg.Audit == nil {
		return nil, errors.New("release: orders, store, keys and audit log are required")
	}
	if cfg.Quorum < 2 || cfg.Quorum > len(cfg.Slots) {
		return nil, fmt.Errorf("release: quorum %d of %d slots", cfg.Quorum, len(cfg.Slots))
	}
	for i, s := range cfg.Slots {
		if s.Recipient == nil || s.Role == "" {
			return nil, fmt.Errorf("release: slot %d has no role or key", i)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Desk{cfg: cfg, pending: map[string]*crypto.OrderKey{}, released: map[string]*released{}}, nil
}

// Filed is an order as filed: the document, the requester's signature and
// the order key with the gateway's signature binding it to the order. It is
// what Redis stores as the order body and what reviewers are shown.
type Filed struct {
	Order              *order.Order `json:"order"`
	RequesterSignature []byte       `json:"requester_signature"`
	OrderKey           []byte       `json:"order_key"`
	OrderKeySignature  []byte       `json:"order_key_signature"`
	// WrappedKey is the order key's private half wrapped under the gateway's
	// key (crypto.GatewayKeys.WrapOrderKey), kept in Redis so that a gateway
	// restart does not void the order. It is never sent to a client.
	WrappedKey []byte `json:"wrapped_order_key,omitempty"`
}

// Target is what approvals of this order bind (crypto.ApprovalTarget).
func (f *Filed) Target() [32]byte { return crypto.ApprovalTarget(f.Order.Hash(), f.OrderKey) }

// Document is an order with its state, for review.
type Document struct {
	Filed
	State       string         `json:"state"`
	Quorum      int            `json:"quorum"`
	Approvals   []ApprovalInfo `json:"approvals"`
	ExpiresAt   time.Time      `json:"expires_at"`
	ActivatedAt time.Time      `json:"activated_at,omitzero"`
	// DeferralUntil is the renewed end of a deferred notice, if renewed.
	DeferralUntil time.Time `json:"deferral_until,omitzero"`
	// Renewal is a renewal of the deferral awaiting approval.
	Renewal *Renewal `json:"renewal,omitempty"`
}

// Renewal is a requested renewal of a deferred notice, for review.
type Renewal struct {
	Until     string `json:"until"`
	Ground    string `json:"ground"`
	Approvals []int  `json:"approved_by_slots"`
}

// ApprovalInfo says which slot approved, not who.
type ApprovalInfo struct {
	Slot int    `json:"slot"`
	Role string `json:"role"`
}

// maxFilingSkew bounds how far a requester's filed_at may be from the
// gateway's clock: the order's time bounds are measured from it.
const maxFilingSkew = 5 * time.Minute

// File files a stamped order signed by its requester.
func (d *Desk) File(ctx context.Context, actor string, o *order.Order, sig []byte) (doc *Filed, err error) {
	id := ""
	if o != nil {
		id = o.ID
	}
	a := d.actor(actor, roleRequester)
	defer func() { d.refused(ctx, a, id, "file", err) }()
	key, ok := d.cfg.Requesters[actor]
	if !ok {
		return nil, refuse(ErrForbidden, "not_requester", "only a configured requester may file an order")
	}
	if o == nil {
		return nil, refuse(ErrInvalid, "no_order", "no order")
	}
	if o.Requester != actor {
		return nil, refuse(ErrForbidden, "requester_mismatch", "the order names another requester than the caller")
	}
	now := d.cfg.Now()
	if err := o.Validate(d.cfg.Rules, now, nil); err != nil {
		var ve *order.ValidationError
		code := "invalid"
		if errors.As(err, &ve) && len(ve.Fields) > 0 {
			code = "invalid:" + ve.Fields[0].Field
		}
		return nil, &Refusal{Kind: ErrInvalid, Code: code, Err: err}
	}
	if o.FiledAt.Before(now.Add(-maxFilingSkew)) || o.FiledAt.After(now.Add(maxFilingSkew)) {
		return nil, refuse(ErrInvalid, "filed_at", "filed_at is more than 5 minutes from the gateway's clock; stamp the order again")
	}
	if !slices.Equal(o.ExcludedChannels, d.cfg.Rules.ExcludedChannels) {
		return nil, refuse(ErrInvalid, "excluded_channels", "excluded_channels differ from the configured ones; stamp the order again")
	}
	hash := o.Hash()
	if err := crypto.VerifyOrder(key, hash, sig); err != nil {
		return nil, &Refusal{Kind: ErrForbidden, Code: "bad_signature", Err: err}
	}
	ok2, err := crypto.NewOrderKey()
	if err != nil {
		return nil, err
	}
	gsig, err := d.cfg.Keys.SignOrderKey(hash, ok2.Public())
	if err != nil {
		return nil, err
	}
	wrapped, err := d.cfg.Keys.WrapOrderKey(ok2, hash)
	if err != nil {
		return nil, err
	}
	f := &Filed{Order: o, RequesterSignature: sig, OrderKey: ok2.Public(), OrderKeySignature: gsig, WrappedKey: wrapped}
	body, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("file order %s: %w", o.ID, err)
	}
	// The entry names the subject by a keyed pseudonym only, so that the
	// subject's self-service can find it; the rest is what the subject will
	// be shown (the purpose is one of the configured ones, never free text).
	noticePlan := string(o.Notice.Mode)
	if o.Notice.Mode == order.NoticeDeferred {
		noticePlan += ":" + o.Notice.DeferUntil
	}
	if err := d.audit(ctx, a, audit.ActionOrderFiled, o.ID, subjectObject(d.cfg.Keys, o.Subject),
		fmt.Sprintf("days=%d window=%s..%s notice=%s purpose=%s", len(o.Days()), o.Window.From, o.Window.To, noticePlan, o.Purpose)); err != nil {
		return nil, err
	}
	err = d.cfg.Orders.File(ctx, redisstore.Filing{
		ID:         o.ID,
		SubjectKey: d.cfg.Keys.Pseudonym("subject", o.Subject),
		Subject:    o.Subject,
		Requester:  o.Requester,
		Quorum:     d.cfg.Quorum,
		ExpiresAt:  o.ExpiresAt,
		Body:       body,
		NewFacts:   o.NewFacts != "",
		VetoRoles:  d.cfg.VetoRoles,
	})
	if err != nil {
		return nil, storeRefusal(err)
	}
	d.mu.Lock()
	d.pending[o.ID] = ok2
	d.mu.Unlock()
	f.WrappedKey = nil
	return f, nil
}

// Get returns the order for review: to its requester, the slot holders,
// auditors and DPOs.
func (d *Desk) Get(ctx context.Context, actor, id string) (doc *Document, err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, id, "read_order", err) }()
	st, f, err := d.load(ctx, id)
	if err != nil {
		return nil, err
	}
	a = d.actorFor(actor, f.Order)
	if a.role == "" {
		return nil, refuse(ErrForbidden, "no_role", "only the requester, slot holders, auditors and DPOs may read an order")
	}
	if err := d.audit(ctx, a, audit.ActionOrderRead, id, "", string(st.State)); err != nil {
		return nil, err
	}
	f.WrappedKey = nil
	doc = &Document{Filed: *f, State: string(st.State), Quorum: st.Quorum, ExpiresAt: st.ExpiresAt, ActivatedAt: st.ActivatedAt, DeferralUntil: st.DeferralUntil}
	if r := st.Renewal; r != nil {
		doc.Renewal = &Renewal{Until: r.Until.Format("2006-01-02"), Ground: r.Ground, Approvals: r.Slots}
	}
	for _, ap := range st.Approvals {
		doc.Approvals = append(doc.Approvals, ApprovalInfo{Slot: ap.Slot, Role: ap.Role})
	}
	slices.SortFunc(doc.Approvals, func(x, y ApprovalInfo) int { return x.Slot - y.Slot })
	return doc, nil
}

// Escrow is what a slot needs to approve: the signed key records of the
// subject's days in the window, and their epochs. All of it is sealed; only
// the slot's own key opens its shares.
type Escrow struct {
	OrderID string            `json:"order_id"`
	Slot    int               `json:"slot"`
	Days    []EscrowDay       `json:"days"`
	Epochs  map[string][]byte `json:"epochs"` // hex epoch id → epoch record
}

// EscrowDay holds one day's key records.
type EscrowDay struct {
	Day        string   `json:"day"`
	Tag        []byte   `json:"tag"`
	KeyRecords [][]byte `json:"key_records"`
}

// Escrow returns the key records a slot holder needs to approve a pending
// order.
func (d *Desk) Escrow(ctx context.Context, actor, id string, slot int) (esc *Escrow, err error) {
	a := d.actor(actor, d.slotRole(slot))
	defer func() { d.refused(ctx, a, id, fmt.Sprintf("escrow slot=%d", slot), err) }()
	if !d.holds(actor, slot) {
		return nil, refuse(ErrForbidden, "not_slot_holder", "the caller does not hold this slot")
	}
	st, f, err := d.load(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case actor == f.Order.Subject:
		return nil, refuse(ErrForbidden, "subject_approval", order.ErrSubjectApproval.Error())
	case actor == f.Order.Requester:
		return nil, refuse(ErrForbidden, "self_approval", order.ErrSelfApproval.Error())
	case st.State != order.StatePending:
		return nil, refuse(ErrGone, "not_pending", fmt.Sprintf("the order is %s, not pending", st.State))
	}
	if err := d.audit(ctx, a, audit.ActionEscrowRead, id, fmt.Sprintf("slot=%d", slot), ""); err != nil {
		return nil, err
	}
	esc = &Escrow{OrderID: id, Slot: slot, Epochs: map[string][]byte{}}
	for _, day := range f.Order.Days() {
		tag := d.cfg.Keys.Tag(f.Order.Subject, day)
		rows, err := d.cfg.Store.KeyRecords(ctx, tag)
		if err != nil {
			return nil, fmt.Errorf("escrow of order %s: %w", id, err)
		}
		ed := EscrowDay{Day: day, Tag: tag[:]}
		for _, r := range rows {
			ed.KeyRecords = append(ed.KeyRecords, r.Blob)
			k := fmt.Sprintf("%x", r.EpochID[:])
			if _, ok := esc.Epochs[k]; !ok {
				ep, err := d.cfg.Store.Epoch(ctx, r.EpochID)
				if err != nil {
					return nil, fmt.Errorf("escrow of order %s: %w", id, err)
				}
				esc.Epochs[k] = ep.Blob
			}
		}
		esc.Days = append(esc.Days, ed)
	}
	return esc, nil
}

// ApproveResult says where an approval left the order.
type ApproveResult struct {
	Approvals int  `json:"approvals"`
	Quorum    int  `json:"quorum"`
	Activated bool `json:"activated"`
	// Days and KeyRecords say what the activation released (zero unless
	// Activated).
	Days       int `json:"days,omitempty"`
	KeyRecords int `json:"key_records,omitempty"`
}

// Approve checks and stores one slot's approval; the one that completes the
// quorum activates the order.
func (d *Desk) Approve(ctx context.Context, actor, id string, slot int, blob []byte) (res ApproveResult, err error) {
	a := d.actor(actor, d.slotRole(slot))
	defer func() { d.refused(ctx, a, id, fmt.Sprintf("approve slot=%d", slot), err) }()
	if !d.holds(actor, slot) {
		return res, refuse(ErrForbidden, "not_slot_holder", "the caller does not hold this slot")
	}
	st, f, err := d.load(ctx, id)
	if err != nil {
		return res, err
	}
	o := f.Order
	switch {
	case actor == o.Subject:
		return res, refuse(ErrForbidden, "subject_approval", order.ErrSubjectApproval.Error())
	case actor == o.Requester:
		return res, refuse(ErrForbidden, "self_approval", order.ErrSelfApproval.Error())
	case st.State != order.StatePending:
		return res, refuse(ErrGone, "not_pending", fmt.Sprintf("the order is %s, not pending", st.State))
	}
	if err := o.Validate(d.cfg.Rules, d.cfg.Now(), nil); err != nil {
		return res, &Refusal{Kind: ErrGone, Code: "no_longer_valid", Err: err}
	}
	ok, err := d.orderKey(id, f)
	if err != nil {
		return res, err
	}
	if _, err := d.openApproval(f, ok, slot, blob); err != nil {
		return res, err
	}
	r, err := d.cfg.Orders.Approve(ctx, id, redisstore.Approval{Slot: slot, Role: d.cfg.Slots[slot].Role, Approver: actor, Blob: blob})
	if err != nil {
		return res, storeRefusal(err)
	}
	res = ApproveResult{Approvals: r.Approvals, Quorum: d.cfg.Quorum, Activated: r.Activated}
	if err := d.audit(ctx, a, audit.ActionApproved, id, fmt.Sprintf("slot=%d", slot), fmt.Sprintf("approvals=%d/%d", r.Approvals, d.cfg.Quorum)); err != nil {
		return res, err
	}
	if r.Activated {
		days, krs, err := d.activate(ctx, id, f, "")
		if err != nil {
			return res, err
		}
		res.Days, res.KeyRecords = days, krs
	}
	return res, nil
}

// openApproval checks one approval against the order and returns its
// shares; the caller wipes them.
func (d *Desk) openApproval(f *Filed, ok *crypto.OrderKey, slot int, blob []byte) ([]*crypto.ApprovalShare, error) {
	if slot < 0 || slot >= len(d.cfg.Slots) {
		return nil, refuse(ErrInvalid, "bad_slot", fmt.Sprintf("slot %d is not configured", slot))
	}
	shares, err := crypto.OpenApproval(blob, slot, d.cfg.Slots[slot].Recipient, f.Target(), ok)
	if err != nil {
		return nil, &Refusal{Kind: ErrForbidden, Code: "bad_approval", Err: err}
	}
	days := f.Order.Days()
	for _, s := range shares {
		if s.Employee != f.Order.Subject || !slices.Contains(days, s.Day) {
			wipeShares(shares)
			return nil, refuse(ErrForbidden, "share_out_of_scope", "the approval holds a share of another employee or a day outside the window")
		}
	}
	return shares, nil
}

// activate recovers the subject's day keys from the stored approvals. The
// Redis script lets exactly one approval activate an order; a gateway that
// restarts while the order is active activates it again on the first read
// (detail says so in the audit log).
func (d *Desk) activate(ctx context.Context, id string, f *Filed, detail string) (days, krs int, err error) {
	sys := d.actor("", roleSystem)
	defer func() { d.refused(ctx, sys, id, "activate", err) }()
	ok, err := d.orderKey(id, f)
	if err != nil {
		return 0, 0, err
	}
	st, err := d.cfg.Orders.Get(ctx, id)
	if err != nil {
		return 0, 0, storeRefusal(err)
	}
	// Shares by key record, from every approval.
	byRecord := map[crypto.KeyRecordID][]*crypto.Share{}
	var all []*crypto.ApprovalShare
	defer func() { wipeShares(all) }()
	for _, ap := range st.Approvals {
		shares, err := d.openApproval(f, ok, ap.Slot, ap.Blob)
		if err != nil {
			return 0, 0, err
		}
		all = append(all, shares...)
		for _, s := range shares {
			byRecord[s.KeyRecordID] = append(byRecord[s.KeyRecordID], &s.Share)
		}
	}
	o := f.Order
	rel := &released{order: o, keys: map[string]map[crypto.KeyRecordID]*crypto.DayKey{}, expires: o.ExpiresAt}
	window := o.Days()
	if len(window) == 0 {
		return 0, 0, refuse(ErrInvalid, "bad_window", "the order's window is not valid")
	}
	rel.from, _ = crypto.ParseDay(window[0])
	last, _ := crypto.ParseDay(window[len(window)-1])
	rel.to = last.AddDate(0, 0, 1)
	if rel.pseudo, err = newPseudonyms(); err != nil {
		return 0, 0, err
	}
	for _, day := range window {
		tag := d.cfg.Keys.Tag(o.Subject, day)
		rows, err := d.cfg.Store.KeyRecords(ctx, tag)
		if err != nil {
			rel.wipe()
			return 0, 0, fmt.Errorf("activate order %s: %w", id, err)
		}
		keys := map[crypto.KeyRecordID]*crypto.DayKey{}
		for _, row := range rows {
			kr, err := crypto.ParseKeyRecord(tag, row.Blob, d.cfg.Keys.Verifier())
			if err != nil {
				rel.wipe()
				unseal.Wipe(keys)
				return 0, 0, fmt.Errorf("activate order %s: %w", id, err)
			}
			dk, err := crypto.RecoverDayKey(kr, o.Subject, day, byRecord[kr.ID])
			if errors.Is(err, crypto.ErrTooFewShares) {
				// A key record made after the approvers fetched the escrow
				// (late events of a day in the window) stays sealed.
				d.cfg.Log.Warn("key record not covered by the approvals", "order", id)
				continue
			}
			if err != nil {
				rel.wipe()
				unseal.Wipe(keys)
				return 0, 0, fmt.Errorf("activate order %s: %w", id, err)
			}
			keys[dk.ID()] = dk
			krs++
		}
		if len(keys) > 0 {
			rel.keys[day] = keys
			days++
		}
	}
	var roles []string
	for _, ap := range st.Approvals {
		roles = append(roles, ap.Role)
	}
	slices.Sort(roles)
	activatedAt := st.ActivatedAt
	if activatedAt.IsZero() {
		activatedAt = d.cfg.Now()
	}
	if err := d.queueNotices(ctx, o, roles, activatedAt); err != nil {
		rel.wipe()
		return 0, 0, err
	}
	if err := d.audit(ctx, sys, audit.ActionActivated, id, detail, fmt.Sprintf("days=%d key_records=%d", days, krs)); err != nil {
		rel.wipe()
		return 0, 0, err
	}
	d.mu.Lock()
	delete(d.pending, id)
	if d.released[id] != nil {
		// Two reads restored it at once; keep the first.
		d.mu.Unlock()
		rel.wipe()
		return days, krs, nil
	}
	d.released[id] = rel
	d.mu.Unlock()
	d.cfg.Log.Info("order activated", "order", id, "days", days, "key_records", krs)
	return days, krs, nil
}

// Reject records a slot's rejection; a veto role rejects the order alone.
// The reason is kept with the order in Redis, never in the audit log.
func (d *Desk) Reject(ctx context.Context, actor, id string, slot int, reason string) (rejected bool, err error) {
	a := d.actor(actor, d.slotRole(slot))
	defer func() { d.refused(ctx, a, id, fmt.Sprintf("reject slot=%d", slot), err) }()
	if !d.holds(actor, slot) {
		return false, refuse(ErrForbidden, "not_slot_holder", "the caller does not hold this slot")
	}
	if reason == "" {
		return false, refuse(ErrInvalid, "no_reason", "a rejection needs a reason")
	}
	_, f, err := d.load(ctx, id)
	if err != nil {
		return false, err
	}
	// The subject and the requester are parties, not approvers: neither may
	// approve, and neither may veto or reject either.
	switch actor {
	case f.Order.Subject:
		return false, refuse(ErrForbidden, "subject_approval", order.ErrSubjectApproval.Error())
	case f.Order.Requester:
		return false, refuse(ErrForbidden, "self_approval", order.ErrSelfApproval.Error())
	}
	rejected, err = d.cfg.Orders.Reject(ctx, id, d.cfg.Slots[slot].Role, actor, reason)
	if err != nil {
		return false, storeRefusal(err)
	}
	detail := "recorded"
	if rejected {
		detail = "order_rejected"
		d.forget(id)
	}
	return rejected, d.audit(ctx, a, audit.ActionRejected, id, fmt.Sprintf("slot=%d", slot), detail)
}

// Revoke ends a pending or active order at once: its requester or a DPO.
func (d *Desk) Revoke(ctx context.Context, actor, id, reason string) (err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, id, "revoke", err) }()
	_, f, err := d.load(ctx, id)
	if err != nil {
		return err
	}
	a = d.actorFor(actor, f.Order)
	if a.role != roleRequester && a.role != roleDPO {
		return refuse(ErrForbidden, "not_requester_or_dpo", "only the order's requester or a DPO may revoke it")
	}
	if reason == "" {
		return refuse(ErrInvalid, "no_reason", "a revocation needs a reason")
	}
	// Wipe first: whatever happens next, nothing stays readable.
	d.forget(id)
	if err := d.cfg.Orders.Revoke(ctx, id, reason); err != nil {
		return storeRefusal(err)
	}
	if err := d.audit(ctx, a, audit.ActionRevoked, id, "", ""); err != nil {
		return err
	}
	d.noticesNow(ctx, id)
	return nil
}

// Sweep wipes the key material of orders that expired or ended elsewhere
// (another replica revoked them, Redis lost them) and audits each expiry.
// serve runs it every few seconds; reads check the same on their own.
func (d *Desk) Sweep(ctx context.Context) int {
	d.mu.Lock()
	var ids []string
	for id := range d.released {
		ids = append(ids, id)
	}
	for id := range d.pending {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	n := 0
	for _, id := range ids {
		if d.checkLive(ctx, id) != nil {
			n++
		}
	}
	return n
}

// checkLive asks Redis for the order's state (Get marks an expired order
// expired) and wipes everything the desk holds for it unless it is pending
// or active and unexpired. It returns a Refusal when the order is over.
func (d *Desk) checkLive(ctx context.Context, id string) error {
	st, err := d.cfg.Orders.Get(ctx, id)
	if err != nil && !errors.Is(err, redisstore.ErrNotFound) {
		return err // Redis unreachable: neither wipe nor serve
	}
	live := err == nil && (st.State == order.StatePending || st.State == order.StateActive) && d.cfg.Now().Before(st.ExpiresAt)
	if live {
		return nil
	}
	if d.forget(id) {
		detail := "lost"
		if err == nil {
			detail = string(st.State)
		}
		if err == nil && st.State == order.StateExpired {
			if aerr := d.audit(ctx, d.actor("", roleSystem), audit.ActionExpired, id, "", "keys_wiped"); aerr != nil {
				d.cfg.Log.Error("audit expiry", "order", id, "err", aerr)
			}
			d.noticesNow(ctx, id)
		} else {
			d.cfg.Log.Info("order ended, keys wiped", "order", id, "state", detail)
		}
	}
	if err != nil {
		return storeRefusal(err)
	}
	return refuse(ErrGone, "not_active", fmt.Sprintf("the order is %s", st.State))
}

// forget wipes and drops whatever the desk holds for the order and reports
// whether it held anything.
func (d *Desk) forget(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, p := d.pending[id]
	delete(d.pending, id)
	rel, r := d.released[id]
	if r {
		rel.wipe()
		delete(d.released, id)
	}
	return p || r
}

// orderKey returns the order's key: from memory, or unwrapped from the
// stored order after a restart.
func (d *Desk) orderKey(id string, f *Filed) (*crypto.OrderKey, error) {
	d.mu.Lock()
	ok := d.pending[id]
	d.mu.Unlock()
	if ok != nil {
		return ok, nil
	}
	ok, err := d.cfg.Keys.UnwrapOrderKey(f.WrappedKey, f.Order.Hash(), f.OrderKey)
	if err != nil {
		return nil, &Refusal{Kind: ErrGone, Code: "order_key_lost", Err: fmt.Errorf("the order's key does not open on this gateway (other gateway keys?); file the order again: %w", err)}
	}
	d.mu.Lock()
	d.pending[id] = ok
	d.mu.Unlock()
	return ok, nil
}

// load reads an order and its filed body from Redis.
func (d *Desk) load(ctx context.Context, id string) (*redisstore.Status, *Filed, error) {
	if !order.IsID(id) {
		return nil, nil, refuse(ErrNotFound, "bad_id", "not an order id")
	}
	st, err := d.cfg.Orders.Get(ctx, id)
	if err != nil {
		return nil, nil, storeRefusal(err)
	}
	var f Filed
	if err := json.Unmarshal(st.Body, &f); err != nil || f.Order == nil || f.Order.ID != id {
		return nil, nil, fmt.Errorf("order %s: stored body does not decode", id)
	}
	if err := d.cfg.Keys.Verifier().VerifyOrderKey(f.Order.Hash(), f.OrderKey, f.OrderKeySignature); err != nil {
		return nil, nil, &Refusal{Kind: ErrForbidden, Code: "bad_order_key", Err: err}
	}
	return st, &f, nil
}

func wipeShares(shares []*crypto.ApprovalShare) {
	for _, s := range shares {
		s.Wipe()
	}
}

// Rules returns the order rules in force (limits, purposes, the excluded
// channels an order must be stamped with) to anyone with a configured role.
func (d *Desk) Rules(ctx context.Context, actor string) (r order.Rules, err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, "", "rules", err) }()
	if a.role == "" {
		return r, refuse(ErrForbidden, "no_role", "only requesters, slot holders, auditors and DPOs may use the order API")
	}
	return d.cfg.Rules, nil
}

// WipeAll wipes every order key and released day key the desk holds; serve
// calls it on shutdown. A nil desk holds nothing.
func (d *Desk) WipeAll() {
	if d == nil {
		return
	}
	d.mu.Lock()
	ids := make([]string, 0, len(d.pending)+len(d.released))
	for id := range d.pending {
		ids = append(ids, id)
	}
	for id := range d.released {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	for _, id := range ids {
		d.forget(id)
	}
}
