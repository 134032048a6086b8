package boltstore_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/notice"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
	"github.com/sealgate/sealgate/store/storetest"
)

func TestOutboxContract(t *testing.T) {
	storetest.RunOutbox(t, storetest.Keyed(
		func(t *testing.T) string { return filepath.Join(t.TempDir(), "store.db") },
		func(t *testing.T, path string) store.Store {
			s, err := boltstore.Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return s
		},
	))
}

// TestOutboxFileHasNoNames queues notices through notice.Outbox and checks
// that the store file holds none of what names the subject or the order
// (only the notice ids and schedule are in clear), also after a retry and a
// delivery rewrote the rows.
func TestOutboxFileHasNoNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := crypto.NewGatewayKeys()
	if err != nil {
		t.Fatal(err)
	}
	aead, err := keys.AEAD("notice/v1")
	if err != nil {
		t.Fatal(err)
	}
	ob := notice.NewOutbox(s, aead)
	canaries := []string{
		"CANARY-USER-7f3a9c", "canary.subject.7f3a9c@example.com", "CANARY-ORDER-7f3a9c",
		"CANARY-PURPOSE-7f3a9c", "CANARY-CLAUSE-7f3a9c", "CANARY-ROLE-7f3a9c",
	}
	now := time.Date(2026, 5, 17, 10, 0, 0, 0, time.UTC)
	for i, kind := range []notice.Kind{notice.Activated, notice.Ended} {
		n := &notice.Notice{
			ID: "ntc_7f3a9c_" + string(kind[0]), Kind: kind,
			UserID: canaries[0], Email: canaries[1], Locale: "nl", OrderID: canaries[2],
			WindowFrom: "2026-05-01", WindowTo: "2026-05-10", Purpose: canaries[3], LegalBasis: "art. 6(1)(f) GDPR",
			PolicyClause: canaries[4], ApprovedBy: []string{canaries[5], "legal"},
			ActivatedAt: now, ValidUntil: now.AddDate(0, 0, 14), DueAt: now.Add(time.Duration(i) * time.Hour),
		}
		if err := ob.Enqueue(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
	scan := func(when string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if hits := privacyscan.Bytes(path, b, canaries); len(hits) > 0 {
			t.Fatalf("%s: the store file holds names in clear: %v", when, hits)
		}
		// The scan would see them if they were there: the ids are.
		if !strings.Contains(string(b), "ntc_7f3a9c_a") {
			t.Fatalf("%s: notice id not found in the store file; is the scan reading the right file?", when)
		}
	}
	scan("after Enqueue")

	ps, err := ob.Due(t.Context(), now.Add(2*time.Hour), 10)
	if err != nil || len(ps) != 2 || ps[0].Notice.UserID != canaries[0] || ps[1].Notice.Email != canaries[1] {
		t.Fatalf("Due = %d notices, %v; want both, opened", len(ps), err)
	}
	if err := ob.Retry(t.Context(), ps[0].Notice.ID, now.Add(3*time.Hour), 1); err != nil {
		t.Fatal(err)
	}
	if err := ob.Done(t.Context(), ps[1].Notice.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("after Retry, Done and Close")
}
