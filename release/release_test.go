package release_test

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/export"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/release"
)

// TestOrderOnOneEmployee is the end-to-end story: 30 days of chat by alice
// and bob, an order on alice for days 10-20 approved 3-of-5, and a read that
// returns exactly alice's posts, edits and tombstones of those days, none of
// bob's, none outside the window, none from the excluded channel.
func TestOrderOnOneEmployee(t *testing.T) {
	f := newFixture(t)
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	f.file(o)

	for i, slot := range []int{0, 1, 2} {
		res, err := f.approve(o.ID, slot)
		if err != nil {
			t.Fatalf("approval %d: %v", i+1, err)
		}
		if res.Activated != (i == 2) || res.Approvals != i+1 {
			t.Fatalf("approval %d: %+v", i+1, res)
		}
		if i == 2 && (res.Days != 11 || res.KeyRecords != 11) {
			t.Fatalf("activation released %d days, %d key records; want 11, 11", res.Days, res.KeyRecords)
		}
	}

	want := f.expected(alice, 10, 20)
	for _, limit := range []int{1, 7, release.MaxPage} {
		got, texts, err := f.readAll(o.ID, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("limit %d: released %d messages, want %d:\nextra %v\nmissing %v", limit, len(got), len(want), diff(got, want), diff(want, got))
		}
		for _, s := range texts {
			for _, leak := range []string{"just before", "just after", "works council", "@bob", "@Dave"} {
				if strings.Contains(s, leak) {
					t.Fatalf("released text %q holds %q", s, leak)
				}
			}
		}
		if !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "@participant-") }) {
			t.Fatal("co-participants are not pseudonymised")
		}
	}
	kinds := map[string]int{}
	for k := range want {
		kinds[strings.Split(k, "/")[1]]++
	}
	if kinds["posted"] == 0 || kinds["edited"] == 0 || kinds["deleted"] == 0 {
		t.Fatalf("the window should hold posts, edits and tombstones: %v", kinds)
	}

	// Exports carry the watermark and the same messages.
	var buf bytes.Buffer
	n, err := f.desk.Export(f.ctx, carol, o.ID, export.JSON, &buf)
	if err != nil || n != len(want) {
		t.Fatalf("export: %d messages, %v; want %d", n, err, len(want))
	}
	var doc struct {
		Watermark string `json:"watermark"`
		Messages  []struct {
			PostID  string `json:"post_id"`
			Kind    string `json:"kind"`
			Version int64  `json:"version"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc.Watermark, o.ID) || !strings.Contains(doc.Watermark, carol) {
		t.Fatalf("watermark %q does not name the order and the requester", doc.Watermark)
	}
	for _, m := range doc.Messages {
		if !want[key(m.PostID, m.Kind, m.Version)] {
			t.Fatalf("export holds %s/%s", m.PostID, m.Kind)
		}
	}
	for _, format := range []export.Format{export.HTML, export.EML} {
		buf.Reset()
		if _, err := f.desk.Export(f.ctx, carol, o.ID, format, &buf); err != nil {
			t.Fatalf("%s export: %v", format, err)
		}
		if !strings.Contains(buf.String(), o.ID) {
			t.Fatalf("%s export is not watermarked", format)
		}
	}

	// Revocation wipes the keys; reads are refused from then on.
	if err := f.desk.Revoke(f.ctx, carol, o.ID, "investigation finished"); err != nil {
		t.Fatal(err)
	}
	_, err = f.desk.Messages(f.ctx, carol, o.ID, "", 10)
	f.refused(err, release.ErrGone, "not_active")

	// The audit log tells the whole story and verifies.
	var actions []audit.Action
	for _, e := range f.audited() {
		if e.Action != audit.ActionOrderRead && e.Action != audit.ActionEscrowRead && e.Action != audit.ActionViewed {
			actions = append(actions, e.Action)
		}
		if strings.Contains(e.ActorPseudonym, carol) || strings.Contains(e.Detail, "numbers") {
			t.Fatalf("audit entry %d names a person or holds content: %+v", e.Seq, e)
		}
	}
	wantActions := []audit.Action{audit.ActionOrderFiled, audit.ActionApproved, audit.ActionApproved, audit.ActionApproved,
		audit.ActionActivated, audit.ActionExported, audit.ActionExported, audit.ActionExported, audit.ActionRevoked, audit.ActionRefused}
	if !slices.Equal(actions, wantActions) {
		t.Fatalf("audited %v\nwant     %v", actions, wantActions)
	}
	rep, err := audit.Verify(f.ctx, f.store, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("audit verify: %v %v", err, rep.String())
	}

	// After the whole order, nothing written names a person or holds
	// content: the store (records, key records, audit log) and Redis (which
	// holds the order document, so it may name the subject, but never
	// content).
	content := []string{"the numbers for", "lunch?", "works council matter", "edited text", "just before", "participant-"}
	hits, scanned, err := privacyscan.Dir(f.dir, append([]string{alice, bob, carol}, content...))
	if err != nil || scanned == 0 {
		t.Fatalf("scan: %v (%d bytes)", err, scanned)
	}
	hits = append(hits, privacyscan.Bytes("redis", f.redis.Dump(t), content)...)
	for _, h := range hits {
		t.Errorf("found in clear: %s", h)
	}
}

func diff(a, b map[string]bool) []string {
	var out []string
	for k := range a {
		if !b[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestRefusals tries to break every rule. Each attempt is refused with a
// clear error, audited, and unseals nothing.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	f.ingestMonth()

	t.Run("missing field", func(t *testing.T) {
		o := f.draft(alice, 10, 20)
		o.LegalBasis = ""
		_, err := f.desk.File(f.ctx, carol, o, f.sign(o))
		f.refused(err, release.ErrInvalid, "invalid:legal_basis")
		if !strings.Contains(err.Error(), "legal_basis") {
			t.Fatalf("error does not name the field: %v", err)
		}
	})
	t.Run("two subjects", func(t *testing.T) {
		o := f.draft(alice+","+bob, 10, 20)
		_, err := f.desk.File(f.ctx, carol, o, f.sign(o))
		f.refused(err, release.ErrInvalid, "invalid:subject")
	})
	t.Run("not a requester", func(t *testing.T) {
		o := f.draft(alice, 10, 20)
		o.Requester = stranger
		_, err := f.desk.File(f.ctx, stranger, o, f.sign(o))
		f.refused(err, release.ErrForbidden, "not_requester")
	})
	t.Run("forged requester signature", func(t *testing.T) {
		o := f.draft(alice, 10, 20)
		forger, _ := crypto.GenerateSlotKey(crypto.KEMX25519)
		_, err := f.desk.File(f.ctx, carol, o, crypto.SignOrder(forger, o.Hash()))
		f.refused(err, release.ErrForbidden, "bad_signature")
		// A signature over another order does not carry over either.
		other := f.draft(alice, 11, 20)
		_, err = f.desk.File(f.ctx, carol, o, f.sign(other))
		f.refused(err, release.ErrForbidden, "bad_signature")
	})

	o := f.draft(alice, 10, 20)
	f.file(o)
	t.Run("second order on the same subject", func(t *testing.T) {
		o2 := f.draft(alice, 12, 14)
		_, err := f.desk.File(f.ctx, carol, o2, f.sign(o2))
		f.refused(err, release.ErrConflict, "subject_busy")
	})
	t.Run("subject approving", func(t *testing.T) {
		_, err := f.desk.Escrow(f.ctx, alice, o.ID, 3)
		f.refused(err, release.ErrForbidden, "subject_approval")
		blob, err := f.approval(holder(3), o.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.desk.Approve(f.ctx, alice, o.ID, 3, blob)
		f.refused(err, release.ErrForbidden, "subject_approval")
	})
	t.Run("requester approving", func(t *testing.T) {
		blob, err := f.approval(holder(4), o.ID, 4)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.desk.Approve(f.ctx, carol, o.ID, 4, blob)
		f.refused(err, release.ErrForbidden, "self_approval")
	})
	t.Run("not the slot holder", func(t *testing.T) {
		blob, err := f.approval(holder(0), o.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.desk.Approve(f.ctx, holder(1), o.ID, 0, blob)
		f.refused(err, release.ErrForbidden, "not_slot_holder")
	})
	t.Run("forged approval signature", func(t *testing.T) {
		doc, _ := f.desk.Get(f.ctx, holder(1), o.ID)
		esc, _ := f.desk.Escrow(f.ctx, holder(1), o.ID, 1)
		forger, _ := crypto.GenerateSlotKey(crypto.KEMMLKEM768X25519)
		// The forger has no share to give; an empty approval signed by the
		// wrong key is still refused for its signature.
		esc.Days = nil
		blob, _, err := release.MakeApproval(doc, esc, 1, forger, f.keys.Verifier(), f.requester.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.desk.Approve(f.ctx, holder(1), o.ID, 1, blob)
		f.refused(err, release.ErrForbidden, "bad_approval")
	})
	t.Run("same slot twice", func(t *testing.T) {
		if _, err := f.approve(o.ID, 0); err != nil {
			t.Fatal(err)
		}
		_, err := f.approve(o.ID, 0)
		f.refused(err, release.ErrConflict, "duplicate_slot")
	})
	t.Run("M-1 approvals", func(t *testing.T) {
		if _, err := f.approve(o.ID, 1); err != nil {
			t.Fatal(err)
		}
		_, err := f.desk.Messages(f.ctx, carol, o.ID, "", 10)
		f.refused(err, release.ErrGone, "not_active")
	})

	// A second order, on bob, to replay onto.
	ob := f.draft(bob, 10, 20)
	f.file(ob)
	t.Run("approval replayed onto another order", func(t *testing.T) {
		blob, err := f.approval(holder(2), ob.ID, 2)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.desk.Approve(f.ctx, holder(2), o.ID, 2, blob)
		f.refused(err, release.ErrForbidden, "bad_approval")
	})
	t.Run("not the requester reading", func(t *testing.T) {
		if _, err := f.approve(o.ID, 2); err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{holder(0), dpo, auditor, alice, stranger} {
			_, err := f.desk.Messages(f.ctx, who, o.ID, "", 10)
			f.refused(err, release.ErrForbidden, "not_requester")
		}
		if _, err := f.desk.Messages(f.ctx, carol, o.ID, "", 10); err != nil {
			t.Fatalf("the requester cannot read the active order: %v", err)
		}
	})
	t.Run("approval after expiry", func(t *testing.T) {
		f.advance(8 * 24 * time.Hour)
		_, err := f.approve(ob.ID, 0)
		f.refused(err, release.ErrGone, "not_pending")
	})
	t.Run("reading after expiry", func(t *testing.T) {
		_, err := f.desk.Messages(f.ctx, carol, o.ID, "", 10)
		f.refused(err, release.ErrGone, "not_active")
		var expired int
		for _, e := range f.audited() {
			if e.Action == audit.ActionExpired && e.OrderID == o.ID {
				expired++
			}
		}
		if expired != 1 {
			t.Fatalf("expiry audited %d times, want once", expired)
		}
	})
	rep, err := audit.Verify(f.ctx, f.store, nil)
	if err != nil || !rep.OK() {
		t.Fatalf("audit verify: %v %v", err, rep.String())
	}
}

// TestRacingApprovals lets all five slots approve at once: exactly one
// approval activates the order.
func TestRacingApprovals(t *testing.T) {
	f := newFixture(t)
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	f.file(o)
	blobs := make([][]byte, 3)
	for i := range blobs {
		b, err := f.approval(holder(i), o.ID, i)
		if err != nil {
			t.Fatal(err)
		}
		blobs[i] = b
	}
	var wg sync.WaitGroup
	results := make([]release.ApproveResult, 3)
	errs := make([]error, 3)
	for i := range blobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.desk.Approve(f.ctx, holder(i), o.ID, i, blobs[i])
		}()
	}
	wg.Wait()
	activations := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("approval %d: %v", i, errs[i])
		}
		if results[i].Activated {
			activations++
		}
	}
	if activations != 1 {
		t.Fatalf("%d activations, want exactly 1", activations)
	}
	got, _, err := f.readAll(o.ID, release.MaxPage)
	if err != nil || !maps.Equal(got, f.expected(alice, 10, 20)) {
		t.Fatalf("after a racing activation: %d messages, %v", len(got), err)
	}
}

// TestRedisLosesEverything flushes Redis between approvals: nothing is
// released and the order must be filed again.
func TestRedisLosesEverything(t *testing.T) {
	f := newFixture(t)
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	f.file(o)
	for _, slot := range []int{0, 1} {
		if _, err := f.approve(o.ID, slot); err != nil {
			t.Fatal(err)
		}
	}
	blob, err := f.approval(holder(2), o.ID, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.redis.Client().FlushAll(f.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	_, err = f.desk.Approve(f.ctx, holder(2), o.ID, 2, blob)
	f.refused(err, release.ErrNotFound, "not_found")
	_, err = f.desk.Messages(f.ctx, carol, o.ID, "", 10)
	f.refused(err, release.ErrNotFound, "not_found")

	// Filed again, it goes through the whole quorum again.
	o2 := f.draft(alice, 10, 20)
	f.file(o2)
	for _, slot := range []int{0, 1, 2} {
		if _, err := f.approve(o2.ID, slot); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := f.readAll(o2.ID, 50); err != nil {
		t.Fatal(err)
	}
}

// TestVeto: a rejection by an ordinary role is recorded and the order stays
// pending; the veto role (works council) rejects it alone, and nothing can
// be approved or read afterwards.
func TestVeto(t *testing.T) {
	f := newFixture(t)
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	f.file(o)
	if _, err := f.approve(o.ID, 0); err != nil {
		t.Fatal(err)
	}
	_, err := f.desk.Reject(f.ctx, holder(1), o.ID, 1, "")
	f.refused(err, release.ErrInvalid, "no_reason")
	rejected, err := f.desk.Reject(f.ctx, holder(1), o.ID, 1, "not proportionate")
	if err != nil || rejected {
		t.Fatalf("hr's rejection: rejected=%v, %v; want recorded only", rejected, err)
	}
	_, err = f.desk.Reject(f.ctx, holder(0), o.ID, 2, "not my slot")
	f.refused(err, release.ErrForbidden, "not_slot_holder")
	// The subject and the requester hold slots 3 and 4, but are parties.
	_, err = f.desk.Reject(f.ctx, alice, o.ID, 3, "leave me alone")
	f.refused(err, release.ErrForbidden, "subject_approval")
	_, err = f.desk.Reject(f.ctx, carol, o.ID, 4, "changed my mind")
	f.refused(err, release.ErrForbidden, "self_approval")
	rejected, err = f.desk.Reject(f.ctx, holder(2), o.ID, 2, "the works council objects")
	if err != nil || !rejected {
		t.Fatalf("works council's veto: rejected=%v, %v", rejected, err)
	}
	_, err = f.approve(o.ID, 3)
	f.refused(err, release.ErrGone, "not_pending")
	_, err = f.desk.Messages(f.ctx, carol, o.ID, "", 10)
	f.refused(err, release.ErrGone, "not_active")
	// The subject is free again: a new order may be filed.
	f.file(f.draft(alice, 11, 12))
}

// TestGatewayRestart: orders survive a gateway restart at every stage. The
// order key comes back from Redis (wrapped under the gateway's key), and an
// active order's keys are recovered again from its approvals on the next
// read, audited as such.
func TestGatewayRestart(t *testing.T) {
	f := newFixture(t)
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	f.file(o)
	if _, err := f.approve(o.ID, 0); err != nil {
		t.Fatal(err)
	}
	f.restart()
	if _, err := f.approve(o.ID, 1); err != nil {
		t.Fatalf("approval after a restart: %v", err)
	}
	if res, err := f.approve(o.ID, 2); err != nil || !res.Activated {
		t.Fatalf("activation after a restart: %+v %v", res, err)
	}
	f.restart()
	// An approver's read does not restore anything.
	_, err := f.desk.Messages(f.ctx, holder(0), o.ID, "", 10)
	f.refused(err, release.ErrForbidden, "not_requester")
	got, _, err := f.readAll(o.ID, 100)
	if err != nil || !maps.Equal(got, f.expected(alice, 10, 20)) {
		t.Fatalf("read after a restart: %d messages, %v", len(got), err)
	}
	restored := 0
	for _, e := range f.audited() {
		if e.Action == audit.ActionActivated && e.Object == "restart" {
			restored++
		}
	}
	if restored != 1 {
		t.Fatalf("restoration audited %d times, want 1", restored)
	}
	// Another gateway's keys cannot unwrap the order key.
	other, _ := crypto.NewGatewayKeys()
	f.cfg.Keys = other
	f.restart()
	_, err = f.desk.Messages(f.ctx, carol, o.ID, "", 10)
	f.refused(err, release.ErrForbidden, "bad_order_key")
}

// recordedNotices is the desk's outbox in memory.
type recordedNotices struct {
	mu      sync.Mutex
	notices map[string]*notice.Notice
}

func (r *recordedNotices) Enqueue(_ context.Context, n *notice.Notice) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notices[n.ID] == nil {
		c := *n
		r.notices[n.ID] = &c
	}
	return nil
}

func (r *recordedNotices) Reschedule(_ context.Context, id string, due time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := r.notices[id]; n != nil {
		n.DueAt = due
	}
	return nil
}

// TestNoticesAndSelfService: activation queues the subject's notices
// (deferred as the order says), revocation brings them forward, the closing
// notice tells what was accessed, and the subject — only the subject — sees
// the order and every access once the deferral is over.
func TestNoticesAndSelfService(t *testing.T) {
	f := newFixture(t)
	rec := &recordedNotices{notices: map[string]*notice.Notice{}}
	f.cfg.Notices = rec
	f.restart()
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	o.Notice = order.Notice{Mode: order.NoticeDeferred, DeferralGround: "telling now would destroy evidence", DeferUntil: f.now().AddDate(0, 0, 10).Format("2006-01-02")}
	f.file(o)
	for _, slot := range []int{0, 1, 2} {
		if _, err := f.approve(o.ID, slot); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.notices) != 2 {
		t.Fatalf("%d notices queued at activation, want 2", len(rec.notices))
	}
	var act, end *notice.Notice
	for _, n := range rec.notices {
		if n.Kind == notice.Activated {
			act = n
		} else {
			end = n
		}
	}
	if act.UserID != alice || act.DueAt.Format("2006-01-02") != o.Notice.DeferUntil || !end.DueAt.Equal(o.ExpiresAt.UTC()) ||
		!slices.Equal(act.ApprovedBy, []string{"hr", "legal", "works-council"}) || act.Purpose != o.Purpose {
		t.Fatalf("activation notice %+v\nclosing notice %+v", act, end)
	}
	for _, who := range []string{alice, bob} {
		mine, err := f.desk.MyOrders(f.ctx, who)
		if err != nil || len(mine) != 0 {
			t.Fatalf("%s sees %d orders during the deferral (%v)", who, len(mine), err)
		}
	}
	if _, _, err := f.readAll(o.ID, 20); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := f.desk.Export(f.ctx, carol, o.ID, export.JSON, &buf); err != nil {
		t.Fatal(err)
	}
	f.advance(time.Hour)
	if err := f.desk.Revoke(f.ctx, carol, o.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if !act.DueAt.Equal(f.now()) || !end.DueAt.Equal(f.now()) {
		t.Fatalf("revocation did not bring the notices forward: %v, %v", act.DueAt, end.DueAt)
	}
	if err := f.desk.CompleteNotice(f.ctx, end); err != nil {
		t.Fatal(err)
	}
	n := len(f.expected(alice, 10, 20))
	if end.Ended != "revoked" || end.Accessed.Exports != 1 || end.Accessed.Views != (n+19)/20 || end.Accessed.Messages != 2*n {
		t.Fatalf("closing notice: ended %q, accessed %+v; want revoked, %d views, 1 export, %d messages", end.Ended, end.Accessed, (n+19)/20, 2*n)
	}
	mine, err := f.desk.MyOrders(f.ctx, alice)
	if err != nil || len(mine) != 1 {
		t.Fatalf("alice sees %d orders (%v), want 1", len(mine), err)
	}
	m := mine[0]
	if m.OrderID != o.ID || m.Ended != "revoked" || m.WindowFrom != o.Window.From || m.Purpose != o.Purpose || len(m.ApprovedBy) != 3 || len(m.Accesses) != end.Accessed.Views+1 {
		t.Fatalf("alice's view of the order: %+v", m)
	}
	for _, acc := range m.Accesses {
		if acc.Role != "requester" {
			t.Fatalf("access by %q", acc.Role)
		}
	}
	if theirs, err := f.desk.MyOrders(f.ctx, bob); err != nil || len(theirs) != 0 {
		t.Fatalf("bob sees %d of alice's orders (%v)", len(theirs), err)
	}
}

// TestDeferralRenewal: a deferred notice is renewed once, by the requester's
// signed request and the quorum's approvals, within the limit; the notice
// moves only at the quorum.
func TestDeferralRenewal(t *testing.T) {
	f := newFixture(t)
	rec := &recordedNotices{notices: map[string]*notice.Notice{}}
	f.cfg.Notices = rec
	f.restart()
	f.ingestMonth()
	o := f.draft(alice, 10, 20)
	first := f.now().AddDate(0, 0, 5).Format("2006-01-02")
	o.Notice = order.Notice{Mode: order.NoticeDeferred, DeferralGround: "telling now would destroy evidence", DeferUntil: first}
	f.file(o)
	for _, slot := range []int{0, 1, 2} {
		if _, err := f.approve(o.ID, slot); err != nil {
			t.Fatal(err)
		}
	}
	act := rec.notices["ntc_"+o.ID[4:]+"_a"]
	if act == nil || act.DueAt.Format("2006-01-02") != first {
		t.Fatalf("activation notice %+v", act)
	}
	ground := "the suspect is still in contact with the competitor"
	request := func(until string) error {
		st := crypto.DeferralStatement(o.Hash(), until, ground)
		return f.desk.RequestDeferral(f.ctx, carol, o.ID, until, ground, crypto.SignDeferralRequest(f.requester, st))
	}
	tooLate := f.now().AddDate(0, 0, 5+31).Format("2006-01-02")
	f.refused(request(tooLate), release.ErrInvalid, "bad_until")
	f.refused(request(first), release.ErrInvalid, "bad_until")
	until := f.now().AddDate(0, 0, 20).Format("2006-01-02")
	st := crypto.DeferralStatement(o.Hash(), until, ground)
	forger, _ := crypto.GenerateSlotKey(crypto.KEMX25519)
	f.refused(f.desk.RequestDeferral(f.ctx, carol, o.ID, until, ground, crypto.SignDeferralRequest(forger, st)), release.ErrForbidden, "bad_signature")
	f.refused(f.desk.RequestDeferral(f.ctx, holder(0), o.ID, until, ground, crypto.SignDeferralRequest(f.requester, st)), release.ErrForbidden, "not_requester")
	if err := request(until); err != nil {
		t.Fatal(err)
	}
	f.refused(request(until), release.ErrConflict, "deferral_pending")

	approveRenewal := func(user string, slot int, key *crypto.HPKEIdentity) (release.ApproveResult, error) {
		return f.desk.ApproveDeferral(f.ctx, user, o.ID, slot, crypto.SignDeferralApproval(key, slot, st))
	}
	_, err := approveRenewal(carol, 4, f.slots[4])
	f.refused(err, release.ErrForbidden, "self_approval")
	_, err = approveRenewal(holder(1), 1, f.slots[0])
	f.refused(err, release.ErrForbidden, "bad_approval")
	for i, slot := range []int{0, 1, 3} {
		res, err := approveRenewal(holder(slot), slot, f.slots[slot])
		if err != nil {
			t.Fatal(err)
		}
		if res.Activated != (i == 2) {
			t.Fatalf("renewal approval %d: %+v", i+1, res)
		}
		if i < 2 && act.DueAt.Format("2006-01-02") != first {
			t.Fatal("the notice moved before the quorum")
		}
	}
	if act.DueAt.Format("2006-01-02") != until {
		t.Fatalf("renewed notice due %v, want %s", act.DueAt, until)
	}
	doc, err := f.desk.Get(f.ctx, carol, o.ID)
	if err != nil || doc.DeferralUntil.Format("2006-01-02") != until || doc.Renewal != nil {
		t.Fatalf("order after renewal: %+v %v", doc, err)
	}
	// Renewable once.
	later := f.now().AddDate(0, 0, 30).Format("2006-01-02")
	st2 := crypto.DeferralStatement(o.Hash(), later, ground)
	f.refused(f.desk.RequestDeferral(f.ctx, carol, o.ID, later, ground, crypto.SignDeferralRequest(f.requester, st2)), release.ErrConflict, "renewed")
	// The subject still sees nothing until the renewed date, even after the first one.
	f.advance(6 * 24 * time.Hour)
	if mine, err := f.desk.MyOrders(f.ctx, alice); err != nil || len(mine) != 0 {
		t.Fatalf("alice sees %d orders during the renewed deferral (%v)", len(mine), err)
	}
}
