package release_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/order/redisstore"
	"github.com/sealgate/sealgate/release"
	"github.com/sealgate/sealgate/store/boltstore"
)

// People, by Mattermost user id (the first three from the recorded 9.11
// fixtures).
const (
	alice     = "g6e8xk8t6t86tjy8nrqyeqmm5c" // the subject
	bob       = "jwmtcrk65byjmjan5bgpkh18iw" // another employee
	carol     = "98nqi1qftjd9trxzg7t6prraao" // the requester; also holds slot 4
	dpo       = "dpo1dpo1dpo1dpo1dpo1dpo1dp"
	auditor   = "aud1aud1aud1aud1aud1aud1au"
	stranger  = "str1str1str1str1str1str1st"
	channel1  = "8s6ug79ctbfp8bm4q1fdjfjxho"
	channel2  = "qgrjjwpm6frgznmapkpze56dfe"
	excluded  = "1i1an6jdzj8w5y156c4hwiuypc" // works council: always excluded
	holderFmt = "holder%dholder%dholder%dholdr"
)

var roles = []string{"legal", "hr", "works-council", "security", "dpo-office"}

// holder is the person holding slot i. Slot 3 is also held by the subject
// and slot 4 by the requester, so that the rules against them are reached.
func holder(i int) string { return fmt.Sprintf(holderFmt, i, i, i) }

type fixture struct {
	t         testing.TB
	ctx       context.Context
	redis     *testredis.Server
	store     *boltstore.Store
	dir       string // the store's directory
	keys      *crypto.GatewayKeys
	slots     []*crypto.HPKEIdentity
	requester *crypto.HPKEIdentity
	desk      *release.Desk
	cfg       release.Config
	clock     atomic.Int64 // unix nanoseconds
	base      time.Time    // midnight UTC of day 0
	// posts are what was ingested: every event of every employee.
	posts []sent
}

type sent struct {
	employee, channel, postID, kind string
	version                         int64
	at                              time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background()}
	f.clock.Store(time.Now().UnixNano())
	y, m, d := time.Now().UTC().AddDate(0, 0, -40).Date()
	f.base = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	f.redis = testredis.Start(t)
	f.dir = t.TempDir()
	st, err := boltstore.Open(filepath.Join(f.dir, "sealgate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	if f.keys, err = crypto.NewGatewayKeys(); err != nil {
		t.Fatal(err)
	}
	var slots []release.Slot
	for i, role := range roles {
		id, err := crypto.GenerateSlotKey(crypto.KEMMLKEM768X25519)
		if err != nil {
			t.Fatal(err)
		}
		f.slots = append(f.slots, id)
		holders := []string{holder(i)}
		switch i {
		case 3:
			holders = append(holders, alice)
		case 4:
			holders = append(holders, carol)
		}
		slots = append(slots, release.Slot{Role: role, Recipient: id.Recipient(), Holders: holders})
	}
	if f.requester, err = crypto.GenerateSlotKey(crypto.KEMX25519); err != nil {
		t.Fatal(err)
	}
	rules, err := order.DefaultRules().Tighten(order.Rules{ExcludedChannels: []string{excluded}})
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = release.Config{
		Orders:     redisstore.New(f.redis.Client(), time.Hour, f.now),
		Store:      st,
		Keys:       f.keys,
		Audit:      audit.New(st, f.now),
		Slots:      slots,
		Quorum:     3,
		Requesters: map[string]*crypto.HPKERecipient{carol: f.requester.Recipient()},
		Auditors:   []string{auditor},
		DPO:        []string{dpo},
		VetoRoles:  []string{"works-council"},
		Rules:      rules,
		Now:        f.now,
	}
	f.restart()
	return f
}

// restart replaces the desk with a fresh one on the same configuration, as
// a gateway restart does: everything it held in memory is gone.
func (f *fixture) restart() {
	f.t.Helper()
	if f.desk != nil {
		f.desk.WipeAll()
	}
	d, err := release.New(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.desk = d
}

func (f *fixture) now() time.Time          { return time.Unix(0, f.clock.Load()).UTC() }
func (f *fixture) advance(d time.Duration) { f.clock.Add(int64(d)) }
func (f *fixture) day(n int) string        { return f.base.AddDate(0, 0, n).Format("2006-01-02") }
func (f *fixture) at(n int, h, m int) time.Time {
	return f.base.AddDate(0, 0, n).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// ingest sends events through the real ingest parser and pipeline.
func (f *fixture) ingest(events []map[string]any) {
	f.t.Helper()
	body, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		f.t.Fatal(err)
	}
	evs, err := gateway.ParseBatch(body, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 10000}, time.Now())
	if err != nil {
		f.t.Fatal(err)
	}
	sealer, err := crypto.NewSealer(crypto.SealerConfig{Keys: f.keys, Slots: f.recipients(), Quorum: 3, Grace: 2 * time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	p := &gateway.Pipeline{Sealer: sealer, Keys: f.keys, Store: f.store}
	if _, err := p.Ingest(f.ctx, evs); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) recipients() []crypto.Recipient {
	var out []crypto.Recipient
	for _, id := range f.slots {
		out = append(out, id.Recipient())
	}
	return out
}

// post makes one plugin event and remembers it.
func (f *fixture) post(kind, employee, channel, postID, text string, at time.Time) map[string]any {
	ms := at.UnixMilli()
	p := map[string]any{"id": postID, "user_id": employee, "channel_id": channel, "create_at": ms, "update_at": ms, "message": text}
	ev := map[string]any{"kind": kind, "post": p}
	version := ms
	switch kind {
	case "updated":
		p["create_at"] = ms - 60_000
		p["edit_at"] = ms
	case "deleted":
		p["create_at"] = ms - 60_000
		p["update_at"] = ms - 60_000
		ev["deleted_at"] = ms
		version = gateway.TombstoneVersion
	}
	f.posts = append(f.posts, sent{employee: employee, channel: channel, postID: postID, kind: kind, version: version, at: at})
	return ev
}

// ingestMonth writes 30 days of chat by alice and bob: a post a day each in
// two channels and in the excluded channel, edits and deletes, and posts a
// millisecond on each side of the window's edges.
func (f *fixture) ingestMonth() {
	var evs []map[string]any
	n := 0
	id := func() string { n++; return fmt.Sprintf("post%022d", n) }
	for d := 1; d <= 30; d++ {
		for _, who := range []string{alice, bob} {
			evs = append(evs,
				f.post("posted", who, channel1, id(), fmt.Sprintf("day %d: @bob, the numbers for @Dave.", d), f.at(d, 9, 30)),
				f.post("posted", who, channel2, id(), "lunch?", f.at(d, 12, 0)),
				f.post("posted", who, excluded, id(), "works council matter", f.at(d, 15, 0)),
			)
		}
		if d%5 == 0 {
			evs = append(evs, f.post("updated", alice, channel1, fmt.Sprintf("post%022d", n-5), "edited text", f.at(d, 10, 0)))
			evs = append(evs, f.post("deleted", alice, channel2, fmt.Sprintf("post%022d", n-4), "", f.at(d, 13, 0)))
		}
	}
	// The window's edges: days 10..20 are inside.
	evs = append(evs,
		f.post("posted", alice, channel1, id(), "just before", f.base.AddDate(0, 0, 10).Add(-time.Millisecond)),
		f.post("posted", alice, channel1, id(), "first moment", f.base.AddDate(0, 0, 10)),
		f.post("posted", alice, channel1, id(), "last moment", f.base.AddDate(0, 0, 21).Add(-time.Millisecond)),
		f.post("posted", alice, channel1, id(), "just after", f.base.AddDate(0, 0, 21)),
	)
	f.ingest(evs)
}

// expected lists what an order on alice for days 10..20 must release.
func (f *fixture) expected(subject string, from, to int) map[string]bool {
	out := map[string]bool{}
	lo, hi := f.base.AddDate(0, 0, from), f.base.AddDate(0, 0, to+1)
	for _, p := range f.posts {
		if p.employee == subject && p.channel != excluded && !p.at.Before(lo) && p.at.Before(hi) {
			out[key(p.postID, p.kind, p.version)] = true
		}
	}
	return out
}

func key(postID, kind string, version int64) string {
	if kind == "updated" {
		kind = "edited"
	}
	return fmt.Sprintf("%s/%s/%d", postID, kind, version)
}

// draft is a complete order on subject for days from..to, stamped and
// signed by the requester as `sealgate order file` does.
func (f *fixture) draft(subject string, from, to int) *order.Order {
	rules, _ := order.DefaultRules().Tighten(order.Rules{ExcludedChannels: []string{excluded}})
	o := &order.Order{
		Subject:               subject,
		Requester:             carol,
		LegalBasis:            "GDPR art. 6(1)(f)",
		LegitimateInterestRef: "LIA-2026-007",
		Purpose:               "data leak investigation",
		Suspicion: order.Suspicion{
			Facts:        "customer list appeared on a competitor's site",
			FirstNoticed: f.now().AddDate(0, 0, -3).Format("2006-01-02"),
			EvidenceRefs: []string{"EV-1"},
			PolicyClause: "ICT policy 4.2",
		},
		PriorWarning:    order.PriorWarning{Ref: "WARN-2025-113"},
		LessIntrusive:   order.LessIntrusive{Tried: "access logs reviewed", WhyInsufficient: "logs show access, not disclosure"},
		WhyContent:      "only the content shows whether the list was sent",
		Window:          order.Window{From: f.day(from), To: f.day(to)},
		ExpiresAt:       f.now().Add(7 * 24 * time.Hour),
		DPIARef:         "DPIA-2025-02",
		WorksCouncilRef: "OR-2025-11",
		ICTPolicyRef:    "ICT-v3",
		Notice:          order.Notice{Mode: order.NoticeImmediate},
	}
	o.Stamp(rules, f.now())
	return o
}

func (f *fixture) sign(o *order.Order) []byte { return crypto.SignOrder(f.requester, o.Hash()) }

// file files a drafted order and fails the test on error.
func (f *fixture) file(o *order.Order) *release.Filed {
	f.t.Helper()
	filed, err := f.desk.File(f.ctx, carol, o, f.sign(o))
	if err != nil {
		f.t.Fatalf("file: %v", err)
	}
	return filed
}

// approval does what `sealgate approve` does for slot i, as user.
func (f *fixture) approval(user, id string, slot int) ([]byte, error) {
	doc, err := f.desk.Get(f.ctx, user, id)
	if err != nil {
		return nil, err
	}
	esc, err := f.desk.Escrow(f.ctx, user, id, slot)
	if err != nil {
		return nil, err
	}
	blob, _, err := release.MakeApproval(doc, esc, slot, f.slots[slot], f.keys.Verifier(), f.requester.Recipient())
	return blob, err
}

func (f *fixture) approve(id string, slot int) (release.ApproveResult, error) {
	blob, err := f.approval(holder(slot), id, slot)
	if err != nil {
		return release.ApproveResult{}, err
	}
	return f.desk.Approve(f.ctx, holder(slot), id, slot, blob)
}

// readAll pages through everything released, as the requester.
func (f *fixture) readAll(id string, limit int) (map[string]bool, []string, error) {
	got := map[string]bool{}
	var texts []string
	cursor := ""
	for {
		p, err := f.desk.Messages(f.ctx, carol, id, cursor, limit)
		if err != nil {
			return nil, nil, err
		}
		if len(p.Messages) > limit {
			f.t.Fatalf("page of %d messages, limit %d", len(p.Messages), limit)
		}
		for _, m := range p.Messages {
			k := key(m.PostID, m.Kind, m.Version)
			if got[k] {
				f.t.Fatalf("message %s served twice", k)
			}
			got[k] = true
			texts = append(texts, m.Text)
		}
		if p.Next == "" {
			return got, texts, nil
		}
		cursor = p.Next
	}
}

// audited returns the stored audit entries.
func (f *fixture) audited() []audit.Entry {
	f.t.Helper()
	var out []audit.Entry
	if err := f.store.AuditEntries(f.ctx, 1, func(e audit.Entry) error { out = append(out, e); return nil }); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// lastRefusal is the code of the latest refused entry.
func (f *fixture) lastRefusal() string {
	es := f.audited()
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].Action == audit.ActionRefused {
			return es[i].Detail
		}
	}
	return ""
}

// refused checks that err is a refusal of the kind, audited with the code.
func (f *fixture) refused(err error, kind error, code string) {
	f.t.Helper()
	var r *release.Refusal
	if !errors.As(err, &r) || !errors.Is(err, kind) {
		f.t.Fatalf("got %v, want a refusal of kind %v", err, kind)
	}
	if r.Code != code {
		f.t.Fatalf("refusal code %q (%v), want %q", r.Code, err, code)
	}
	if got := f.lastRefusal(); got != code {
		f.t.Fatalf("last audited refusal %q, want %q", got, code)
	}
}
