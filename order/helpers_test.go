package order

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// Ids from the recorded Mattermost 9.11 fixtures.
const (
	alice        = "g6e8xk8t6t86tjy8nrqyeqmm5c" // subject
	bob          = "jwmtcrk65byjmjan5bgpkh18iw" // requester
	carol        = "98nqi1qftjd9trxzg7t6prraao" // approver
	dave         = "i8p86y7at78kbpor7j5myu77uw" // approver
	townSquare   = "8s6ug79ctbfp8bm4q1fdjfjxho"
	privateChan  = "qgrjjwpm6frgznmapkpze56dfe"
	hrChannel    = "1i1an6jdzj8w5y156c4hwiuypc" // configured as excluded
	unionChannel = "xpm1puntit81j8567r8ou7quaa" // configured as excluded
)

// testNow is a fixed "now": 2026-03-15 10:00 UTC.
var testNow = time.Date(2026, 3, 15, 10, 0, 0, 0, time.UTC)

// day is testNow's date shifted by n days.
func day(n int) string { return testNow.AddDate(0, 0, n).Format("2006-01-02") }

func testRules(t testing.TB) Rules {
	t.Helper()
	r, err := DefaultRules().Tighten(Rules{ExcludedChannels: []string{hrChannel, unionChannel}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// validOrder is a complete order that passes Validate at testNow with
// testRules.
func validOrder() *Order {
	return &Order{
		ID:                    "ord_3p5ynbrxrhn4kxkyqzbo2wjkwe",
		Subject:               alice,
		Requester:             bob,
		LegalBasis:            "GDPR art. 6(1)(f); BW 7:611",
		LegitimateInterestRef: "LIA-2026-007",
		Purpose:               "data leak investigation",
		Suspicion: Suspicion{
			Facts:        "customer list appeared on a competitor's site",
			FirstNoticed: day(-3),
			EvidenceRefs: []string{"EV-1", "EV-2"},
			PolicyClause: "ICT policy §4.2",
		},
		PriorWarning:     PriorWarning{Ref: "WARN-2025-113"},
		LessIntrusive:    LessIntrusive{Tried: "access logs reviewed", WhyInsufficient: "logs show access, not disclosure"},
		WhyContent:       "only the content shows whether the list was sent",
		Window:           Window{From: day(-30), To: day(-1)},
		ExcludedChannels: []string{hrChannel, unionChannel},
		ExpiresAt:        testNow.Add(7 * 24 * time.Hour),
		DPIARef:          "DPIA-2025-02",
		WorksCouncilRef:  "OR-2025-11",
		ICTPolicyRef:     "ICT-v3",
		Notice:           Notice{Mode: NoticeImmediate},
		FiledAt:          testNow,
	}
}

// deferredOrder is validOrder with a valid deferred notice.
func deferredOrder() *Order {
	o := validOrder()
	o.Notice = Notice{Mode: NoticeDeferred, DeferralGround: "telling now would destroy evidence", DeferUntil: day(10)}
	return o
}

// fieldsOf returns the fields named by a *ValidationError, failing the test
// on any other error.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error is %T, not *ValidationError: %v", err, err)
	}
	if len(ve.Fields) == 0 {
		t.Fatalf("ValidationError without fields")
	}
	var fs []string
	for _, f := range ve.Fields {
		if f.Reason == "" {
			t.Fatalf("field %s without reason", f.Field)
		}
		if !slices.Contains(fs, f.Field) {
			fs = append(fs, f.Field)
		}
	}
	return fs
}
