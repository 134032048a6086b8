package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/export"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/order/redisstore"
	"github.com/sealgate/sealgate/release"
	"github.com/sealgate/sealgate/store/boltstore"
)

// Demo people: Mattermost-shaped user ids of the requester and the five
// slot holders.
const demoRequester = "c0mp1iance0ff1cer000000000"

func demoHolder(i int) string { return fmt.Sprintf("s1ot%dh01der%022d", i, i)[:26] }

// demoOrder tells the order half of the story on the demo's store: an
// order on one employee, a refused self-approval, three approvals, a read,
// an export, a revocation, the audit log verified and a transparency report.
// It goes through the same release desk the order API serves.
func demoOrder(ctx context.Context, say func(string, ...any), logger *slog.Logger, dir, dbPath string, st *boltstore.Store, rdb redis.UniversalClient,
	keys *crypto.GatewayKeys, ids []*crypto.HPKEIdentity, roles []string, quorum int,
	subject string, from, to time.Time, canaries []string) error {
	requesterKey, err := crypto.GenerateSlotKey(crypto.KEMX25519)
	if err != nil {
		return err
	}
	var slots []release.Slot
	for i, id := range ids {
		slots = append(slots, release.Slot{Role: roles[i], Recipient: id.Recipient(), Holders: []string{demoHolder(i)}})
	}
	// The requester also holds the last slot, to show that it cannot help.
	slots[len(slots)-1].Holders = append(slots[len(slots)-1].Holders, demoRequester)
	rules := order.DefaultRules()
	log := audit.New(st, nil)
	desk, err := release.New(release.Config{
		Orders: redisstore.New(rdb, time.Hour, nil), Store: st, Keys: keys, Audit: log,
		Slots: slots, Quorum: quorum, Requesters: map[string]*crypto.HPKERecipient{demoRequester: requesterKey.Recipient()},
		VetoRoles: []string{"works-council"}, Rules: rules, Log: logger,
	})
	if err != nil {
		return err
	}
	defer desk.WipeAll()

	now := time.Now()
	o := &order.Order{
		Subject: subject, Requester: demoRequester,
		LegalBasis: "GDPR art. 6(1)(f)", LegitimateInterestRef: "LIA-2026-007", Purpose: "data leak investigation",
		Suspicion: order.Suspicion{Facts: "a customer list appeared on a competitor's site", FirstNoticed: now.AddDate(0, 0, -1).Format("2006-01-02"),
			EvidenceRefs: []string{"EV-1"}, PolicyClause: "ICT policy 4.2"},
		PriorWarning:  order.PriorWarning{Ref: "WARN-2026-113"},
		LessIntrusive: order.LessIntrusive{Tried: "access logs reviewed", WhyInsufficient: "logs show access, not disclosure"},
		WhyContent:    "only the content shows whether the list was sent",
		Window:        order.Window{From: from.Format("2006-01-02"), To: to.Format("2006-01-02")},
		ExpiresAt:     now.Add(7 * 24 * time.Hour), DPIARef: "DPIA-2025-02", WorksCouncilRef: "OR-2025-11", ICTPolicyRef: "ICT-v3",
		Notice: order.Notice{Mode: order.NoticeImmediate},
	}
	o.Stamp(rules, now)
	if _, err := desk.File(ctx, demoRequester, o, crypto.SignOrder(requesterKey, o.Hash())); err != nil {
		return fmt.Errorf("demo order: %w", err)
	}
	say("")
	say("== investigation order ==")
	say("filed %s on employee 1 for %s..%s (%d days), signed by the requester; valid 7 days", o.ID, o.Window.From, o.Window.To, len(o.Days()))

	approve := func(user string, slot int) (release.ApproveResult, error) {
		doc, err := desk.Get(ctx, user, o.ID)
		if err != nil {
			return release.ApproveResult{}, err
		}
		esc, err := desk.Escrow(ctx, user, o.ID, slot)
		if err != nil {
			return release.ApproveResult{}, err
		}
		blob, _, err := release.MakeApproval(doc, esc, slot, ids[slot], keys.Verifier(), requesterKey.Recipient())
		if err != nil {
			return release.ApproveResult{}, err
		}
		return desk.Approve(ctx, user, o.ID, slot, blob)
	}
	if _, err := approve(demoRequester, len(ids)-1); err == nil {
		return errors.New("demo: the requester approved their own order")
	} else {
		say("the requester tries to approve with slot %s: refused (%v)", roles[len(ids)-1], err)
	}
	if _, err := desk.Messages(ctx, demoRequester, o.ID, "", 10); err == nil {
		return errors.New("demo: read before the quorum")
	} else {
		say("reading before the quorum: refused (%v)", err)
	}
	for slot := 0; slot < quorum; slot++ {
		t0 := time.Now()
		res, err := approve(demoHolder(slot), slot)
		if err != nil {
			return fmt.Errorf("demo approval by %s: %w", roles[slot], err)
		}
		say("%s approves with its slot key: %d of %d approvals (%s)", roles[slot], res.Approvals, res.Quorum, time.Since(t0).Round(time.Millisecond))
		if res.Activated {
			say("quorum reached: the gateway recovered %d day keys of employee 1 from %d key records, in memory only", res.Days, res.KeyRecords)
		}
	}

	n, cursor := 0, ""
	for {
		p, err := desk.Messages(ctx, demoRequester, o.ID, cursor, 100)
		if err != nil {
			return fmt.Errorf("demo read: %w", err)
		}
		n += len(p.Messages)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	say("the requester reads %d messages: employee 1's own posts, edits and deletions in the window, co-participants as pseudonyms", n)
	var buf bytes.Buffer
	if _, err := desk.Export(ctx, demoRequester, o.ID, export.HTML, &buf); err != nil {
		return fmt.Errorf("demo export: %w", err)
	}
	exportDir := filepath.Join(dir, "exports") // content: outside the store, for the requester
	if err := os.MkdirAll(exportDir, 0o700); err != nil {
		return err
	}
	exportPath := filepath.Join(exportDir, o.ID+".html")
	if err := os.WriteFile(exportPath, buf.Bytes(), 0o600); err != nil {
		return err
	}
	say("watermarked HTML export: %d bytes, naming the order and the requester on every screen", buf.Len())
	if err := desk.Revoke(ctx, demoRequester, o.ID, "investigation finished"); err != nil {
		return err
	}
	if _, err := desk.Messages(ctx, demoRequester, o.ID, "", 10); err == nil {
		return errors.New("demo: read after revocation")
	} else {
		say("order revoked: keys wiped; reading again is refused (%v)", err)
	}

	rep, err := audit.Verify(ctx, st, nil)
	if err != nil {
		return err
	}
	head, err := log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	say("")
	say("== audit ==")
	say("audit verify: %d entries, chain intact: %v", head.Seq, rep.OK())
	say("checkpoint to publish: %s", head)
	mFrom, mTo, _ := audit.MonthRange(now.UTC().Format("2006-01"))
	tr, err := audit.Summarize(ctx, st, mFrom, mTo)
	if err != nil {
		return err
	}
	say("transparency report for %s: filed %d, activated %d, revoked %d, refused attempts %d, views %d, exports %d (no names)",
		now.UTC().Format("2006-01"), tr.Filed, tr.Activated, tr.Revoked, tr.Refused, tr.Views, tr.Exports)

	// The store, audit log included, still names no one and holds no content.
	db, err := os.ReadFile(dbPath)
	if err != nil {
		return err
	}
	hits := privacyscan.Bytes("store", db, canaries)
	say("privacy scan of the store after the order (audit log included): %d bytes, %d hits", len(db), len(hits))
	if len(hits) > 0 {
		return fmt.Errorf("privacy scan found %d hits after the order", len(hits))
	}
	if !rep.OK() {
		return errors.New("demo: audit log does not verify")
	}
	return nil
}
