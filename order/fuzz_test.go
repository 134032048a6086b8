package order

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzValidate feeds arbitrary JSON through json.Unmarshal and every method
// of an order. Nothing may panic; an error from Validate is always a
// *ValidationError; an order that passes has a subject id, a window of 1 to
// 90 days in the past and a canonical form that is JSON and round-trips.
func FuzzValidate(f *testing.F) {
	for _, o := range []*Order{validOrder(), deferredOrder(), fullOrder(), {}} {
		b, err := json.Marshal(o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"subject":"*","window":{"from":"2026-02-30","to":"9999-12-31"},"expires_at":"2026-03-16T00:00:00Z"}`))
	f.Add([]byte(`{"subject":["a","b"]}`))
	f.Add([]byte(`{"suspicion":{"evidence_refs":[""," "]},"channels":null,"notice":{"mode":"deferred","defer_until":"0000-01-01"}}`))
	f.Add([]byte(`null`))

	r := testRules(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var o Order
		if json.Unmarshal(data, &o) != nil {
			return
		}
		err := o.Validate(r, testNow, func(a, b string) bool { return false })
		_ = o.Days()
		_ = o.InScope(townSquare)
		_ = o.InScope(hrChannel)
		_ = o.InWindow(testNow)
		_ = o.Hash()
		_ = CheckApprover(&o, ApprovalRef{Slot: 1, Role: "hr", Approver: carol}, []ApprovalRef{{0, "legal", dave}})
		_ = CheckOpenOrders(&o, []string{NewID()})
		c := o.Canonical()
		if !json.Valid(c) {
			t.Fatalf("canonical form is not JSON: %q", c)
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) == 0 {
				t.Fatalf("Validate returned %T: %v", err, err)
			}
			return
		}
		if !IsMattermostID(o.Subject) || o.Subject == o.Requester || !IsID(o.ID) {
			t.Fatalf("accepted bad parties: %q %q %q", o.Subject, o.Requester, o.ID)
		}
		days := o.Days()
		if len(days) < 1 || len(days) > r.MaxWindowDays || days[len(days)-1] >= testNow.Format("2006-01-02") {
			t.Fatalf("accepted window %v", o.Window)
		}
		if !o.ExpiresAt.After(testNow) || o.ExpiresAt.After(testNow.Add(r.MaxValidity)) {
			t.Fatalf("accepted expiry %v", o.ExpiresAt)
		}
		if o.InScope(hrChannel) || o.InScope(unionChannel) {
			t.Fatal("accepted an order whose scope includes an excluded channel")
		}
		back, perr := ParseJSON(c)
		if perr != nil || back.Hash() != o.Hash() || back.Validate(r, testNow, nil) != nil {
			t.Fatalf("canonical form does not round-trip: %v", perr)
		}
		if o.Notice.Mode == NoticeDeferred && o.Notice.DeferUntil > testNow.Add(r.MaxDeferral).Format("2006-01-02") {
			t.Fatalf("accepted deferral to %s", o.Notice.DeferUntil)
		}
	})
}
