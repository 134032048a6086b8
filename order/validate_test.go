package order

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidOrdersPass(t *testing.T) {
	r := testRules(t)
	cases := map[string]func(o *Order){
		"immediate notice":        func(o *Order) {},
		"deferred notice":         func(o *Order) { *o = *deferredOrder() },
		"no prior warning, why":   func(o *Order) { o.PriorWarning = PriorWarning{WhyNone: "a warning would alert the source"} },
		"scope channels":          func(o *Order) { o.Channels = []string{townSquare, privateChan} },
		"optional fields":         func(o *Order) { o.DPOAdviceRef = "DPO-2026-3"; o.NewFacts = "second leak on 2026-03-10" },
		"extra excluded channel":  func(o *Order) { o.ExcludedChannels = append(o.ExcludedChannels, privateChan) },
		"now in another zone":     func(o *Order) {},
		"stamped with Stamp":      func(o *Order) { o.Stamp(r, testNow) },
		"one evidence ref":        func(o *Order) { o.Suspicion.EvidenceRefs = []string{"EV-1"} },
		"text at the size limit":  func(o *Order) { o.Suspicion.Facts = strings.Repeat("x", MaxTextBytes) },
		"evidence at list limit":  func(o *Order) { o.Suspicion.EvidenceRefs = slices.Repeat([]string{"EV"}, MaxListLen) },
		"non-ASCII and newlines":  func(o *Order) { o.Suspicion.Facts = "Überweisung\nan Dritte — 送金" },
		"tightened purpose in it": func(o *Order) {},
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			o := validOrder()
			mut(o)
			now := testNow
			if name == "now in another zone" {
				now = testNow.In(time.FixedZone("UTC+14", 14*3600)) // already 2026-03-16 there
			}
			rules := r
			if name == "tightened purpose in it" {
				var err error
				rules, err = r.Tighten(Rules{Purposes: []string{"data leak investigation"}})
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := o.Validate(rules, now, nil); err != nil {
				t.Fatalf("valid order refused: %v", err)
			}
		})
	}
}

// TestRequiredFieldMissing blanks each required field, empty and whitespace
// only, and expects exactly that field to be named.
func TestRequiredFieldMissing(t *testing.T) {
	type blank struct {
		field string
		base  func() *Order
		set   func(o *Order, v string)
	}
	imm, def := validOrder, deferredOrder
	cases := []blank{
		{"id", imm, func(o *Order, v string) { o.ID = v }},
		{"subject", imm, func(o *Order, v string) { o.Subject = v }},
		{"requester", imm, func(o *Order, v string) { o.Requester = v }},
		{"legal_basis", imm, func(o *Order, v string) { o.LegalBasis = v }},
		{"legitimate_interest_ref", imm, func(o *Order, v string) { o.LegitimateInterestRef = v }},
		{"purpose", imm, func(o *Order, v string) { o.Purpose = v }},
		{"suspicion.facts", imm, func(o *Order, v string) { o.Suspicion.Facts = v }},
		{"suspicion.first_noticed", imm, func(o *Order, v string) { o.Suspicion.FirstNoticed = v }},
		{"suspicion.evidence_refs", imm, func(o *Order, v string) {
			if v == "" {
				o.Suspicion.EvidenceRefs = nil
			} else {
				o.Suspicion.EvidenceRefs = []string{}
			}
		}},
		{"suspicion.evidence_refs[1]", imm, func(o *Order, v string) { o.Suspicion.EvidenceRefs[1] = v }},
		{"suspicion.policy_clause", imm, func(o *Order, v string) { o.Suspicion.PolicyClause = v }},
		{"prior_warning", imm, func(o *Order, v string) { o.PriorWarning = PriorWarning{Ref: v, WhyNone: v} }},
		{"less_intrusive.tried", imm, func(o *Order, v string) { o.LessIntrusive.Tried = v }},
		{"less_intrusive.why_insufficient", imm, func(o *Order, v string) { o.LessIntrusive.WhyInsufficient = v }},
		{"why_content", imm, func(o *Order, v string) { o.WhyContent = v }},
		{"window.from", imm, func(o *Order, v string) { o.Window.From = v }},
		{"window.to", imm, func(o *Order, v string) { o.Window.To = v }},
		{"expires_at", imm, func(o *Order, v string) { o.ExpiresAt = time.Time{} }},
		{"dpia_ref", imm, func(o *Order, v string) { o.DPIARef = v }},
		{"works_council_ref", imm, func(o *Order, v string) { o.WorksCouncilRef = v }},
		{"ict_policy_ref", imm, func(o *Order, v string) { o.ICTPolicyRef = v }},
		{"notice.mode", imm, func(o *Order, v string) { o.Notice.Mode = NoticeMode(v) }},
		{"notice.deferral_ground", def, func(o *Order, v string) { o.Notice.DeferralGround = v }},
		{"notice.defer_until", def, func(o *Order, v string) { o.Notice.DeferUntil = v }},
		{"filed_at", imm, func(o *Order, v string) { o.FiledAt = time.Time{} }},
	}

	// Every leaf of the JSON form must be covered above or be optional, so
	// that a field added later cannot escape this test.
	optional := []string{"channels", "excluded_channels", "dpo_advice_ref", "new_facts", "prior_warning.ref", "prior_warning.why_none"}
	covered := map[string]bool{}
	for _, c := range cases {
		covered[strings.TrimSuffix(c.field, "[1]")] = true
	}
	for _, p := range jsonLeaves(reflect.TypeOf(Order{}), "") {
		if !covered[p] && !slices.Contains(optional, p) {
			t.Errorf("field %s is neither tested as required nor listed as optional", p)
		}
	}

	r := testRules(t)
	for _, c := range cases {
		for _, v := range []string{"", " \t\n "} {
			t.Run(c.field+"/"+strings.ReplaceAll(v, "\n", `\n`), func(t *testing.T) {
				o := c.base()
				c.set(o, v)
				got := fieldsOf(t, o.Validate(r, testNow, nil))
				if !slices.Equal(got, []string{c.field}) {
					t.Fatalf("named %v, want exactly [%s]", got, c.field)
				}
				var ve *ValidationError
				errors.As(o.Validate(r, testNow, nil), &ve)
				if !strings.Contains(ve.Fields[0].Reason, "missing") {
					t.Fatalf("reason %q does not say missing", ve.Fields[0].Reason)
				}
			})
		}
	}
}

// jsonLeaves lists the JSON paths of the non-struct fields of t (time.Time
// counts as a leaf).
func jsonLeaves(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := prefix + strings.Split(f.Tag.Get("json"), ",")[0]
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			out = append(out, jsonLeaves(f.Type, name+".")...)
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestSubjectIsExactlyOneID(t *testing.T) {
	r := testRules(t)
	for _, s := range []string{
		"a,b", "a b", alice + "," + carol, alice + ", " + carol, alice + " " + carol, alice + ";" + carol,
		alice + carol, "*", alice[:20] + "*", "%", "@all", "all", "ALL", "@here", "@channel", "everyone",
		"@team", "@alice", "alice", "Alice Jansen", alice[:25], alice + "x", strings.ToUpper(alice),
		" " + alice, alice + " ", alice + "\n", "g6e8xk8t6t86tjy8nrqyeqmm5ç", "[\"" + alice + "\"]",
	} {
		t.Run(s, func(t *testing.T) {
			o := validOrder()
			o.Subject = s
			err := o.Validate(r, testNow, nil)
			if got := fieldsOf(t, err); !slices.Equal(got, []string{"subject"}) {
				t.Fatalf("named %v, want [subject]", got)
			}
			if s != alice[:25] && len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Fatalf("error quotes the refused subject: %v", err)
			}
		})
	}
}

func TestRequesterIsNotSubject(t *testing.T) {
	r := testRules(t)
	cases := []struct {
		name       string
		requester  string
		samePerson SamePerson
		want       []string
	}{
		{"distinct", bob, nil, nil},
		{"distinct by directory", bob, func(a, b string) bool { return false }, nil},
		{"same id", alice, nil, []string{"requester"}},
		{"same person, two accounts", bob, func(a, b string) bool { return a == bob && b == alice }, []string{"requester"}},
		{"not an id", "bob", nil, []string{"requester"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := validOrder()
			o.Requester = c.requester
			if got := fieldsOf(t, o.Validate(r, testNow, c.samePerson)); !slices.Equal(got, c.want) {
				t.Fatalf("named %v, want %v", got, c.want)
			}
		})
	}
}

// TestBoundaries takes every limit on both sides. testNow is 2026-03-15
// 10:00 UTC and the order is filed then unless a case says otherwise.
func TestBoundaries(t *testing.T) {
	r := testRules(t)
	tight, err := r.Tighten(Rules{MaxWindowDays: 30, MaxLookbackDays: 40, MaxValidity: 7 * 24 * time.Hour, MaxDeferral: 10 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const ns = time.Nanosecond
	const d = 24 * time.Hour
	win := func(from, to int) func(*Order) {
		return func(o *Order) { o.Window = Window{From: day(from), To: day(to)} }
	}
	expires := func(after time.Duration) func(*Order) {
		return func(o *Order) { o.ExpiresAt = testNow.Add(after) }
	}
	deferTo := func(n int) func(*Order) {
		return func(o *Order) { *o = *deferredOrder(); o.Notice.DeferUntil = day(n) }
	}
	cases := []struct {
		name  string
		rules Rules
		mut   func(*Order)
		want  []string // nil: valid
	}{
		// window.to < today
		{"window ends yesterday", r, win(-10, -1), nil},
		{"window ends today", r, win(-10, 0), []string{"window.to"}},
		{"window ends tomorrow", r, win(-10, 1), []string{"window.to"}},
		// length, default 90
		{"window 90 days", r, win(-90, -1), nil},
		{"window 91 days", r, win(-91, -1), []string{"window.from", "window"}},
		{"window 1 day", r, win(-5, -5), nil},
		{"window from after to", r, win(-4, -5), []string{"window"}},
		// length, tightened to 30 (inside the look-back)
		{"tight window 30 days", tight, win(-31, -2), nil},
		{"tight window 31 days", tight, win(-32, -2), []string{"window"}},
		// look-back from the filing date, default 90
		{"from 90 days before filing", r, win(-90, -80), nil},
		{"from 91 days before filing", r, win(-91, -80), []string{"window.from"}},
		{"tight from 40 days before filing", tight, win(-40, -20), nil},
		{"tight from 41 days before filing", tight, win(-41, -20), []string{"window.from"}},
		{"look-back counts from filed_at, not now", r, func(o *Order) {
			o.FiledAt = testNow.Add(-3 * d)
			o.ExpiresAt = o.FiledAt.Add(14 * d)
			o.Suspicion.FirstNoticed = day(-5)
			o.Window = Window{From: day(-91), To: day(-80)} // 88 days before filing
		}, nil},
		{"look-back from filed_at, one day too far", r, func(o *Order) {
			o.FiledAt = testNow.Add(-3 * d)
			o.ExpiresAt = o.FiledAt.Add(14 * d)
			o.Window = Window{From: day(-94), To: day(-80)}
		}, []string{"window.from"}},
		{"window dates malformed", r, func(o *Order) { o.Window = Window{From: "2026-02-30", To: "2026-3-01"} }, []string{"window.from", "window.to"}},
		{"window dates with time", r, func(o *Order) { o.Window.From = day(-3) + "T00:00:00Z" }, []string{"window.from"}},
		// validity, default 14 days
		{"expires 14 days after filing", r, expires(14 * d), nil},
		{"expires 14 days + 1ns after filing", r, expires(14*d + ns), []string{"expires_at"}},
		{"expires 1ns from now", r, expires(ns), nil},
		{"expires now", r, expires(0), []string{"expires_at"}},
		{"expired an hour ago", r, expires(-time.Hour), []string{"expires_at"}},
		{"tight expires 7 days", tight, func(o *Order) { o.ExpiresAt = testNow.Add(7 * d); o.Window = Window{From: day(-20), To: day(-1)} }, nil},
		{"tight expires 7 days + 1ns", tight, func(o *Order) { o.ExpiresAt = testNow.Add(7*d + ns); o.Window = Window{From: day(-20), To: day(-1)} }, []string{"expires_at"}},
		{"validity counts from filed_at", r, func(o *Order) {
			o.FiledAt = testNow.Add(-time.Hour)
			o.ExpiresAt = o.FiledAt.Add(14*d + ns)
		}, []string{"expires_at"}},
		{"re-validated later, still valid", r, func(o *Order) {
			o.FiledAt = testNow.Add(-13 * d)
			o.ExpiresAt = o.FiledAt.Add(14 * d)
			o.Window = Window{From: day(-40), To: day(-20)}
			o.Suspicion.FirstNoticed = day(-20)
		}, nil},
		// filed_at
		{"filed 5 minutes ahead (clock skew)", r, func(o *Order) { o.FiledAt = testNow.Add(MaxClockSkew) }, nil},
		{"filed beyond clock skew", r, func(o *Order) { o.FiledAt = testNow.Add(MaxClockSkew + ns) }, []string{"filed_at"}},
		// deferral, default 30 days after filing, after the filing date
		{"defer 30 days", r, deferTo(30), nil},
		{"defer 31 days", r, deferTo(31), []string{"notice.defer_until"}},
		{"defer 1 day", r, deferTo(1), nil},
		{"defer to the filing date", r, deferTo(0), []string{"notice.defer_until"}},
		{"defer into the past", r, deferTo(-1), []string{"notice.defer_until"}},
		{"tight defer 10 days", tight, func(o *Order) { deferTo(10)(o); win(-20, -1)(o); expires(7 * d)(o) }, nil},
		{"tight defer 11 days", tight, func(o *Order) { deferTo(11)(o); win(-20, -1)(o); expires(7 * d)(o) }, []string{"notice.defer_until"}},
		{"defer until malformed", r, func(o *Order) { deferTo(3)(o); o.Notice.DeferUntil = "soon" }, []string{"notice.defer_until"}},
		// notice mode
		{"notice mode unknown", r, func(o *Order) { o.Notice.Mode = "later" }, []string{"notice.mode"}},
		{"notice mode capitalised", r, func(o *Order) { o.Notice.Mode = "Immediate" }, []string{"notice.mode"}},
		{"immediate with a ground", r, func(o *Order) { o.Notice.DeferralGround = "x" }, []string{"notice.deferral_ground"}},
		{"immediate with an end date", r, func(o *Order) { o.Notice.DeferUntil = day(3) }, []string{"notice.defer_until"}},
		// first noticed
		{"first noticed today", r, func(o *Order) { o.Suspicion.FirstNoticed = day(0) }, nil},
		{"first noticed tomorrow", r, func(o *Order) { o.Suspicion.FirstNoticed = day(1) }, []string{"suspicion.first_noticed"}},
		{"first noticed malformed", r, func(o *Order) { o.Suspicion.FirstNoticed = "last week" }, []string{"suspicion.first_noticed"}},
		// purpose
		{"purpose not configured", r, func(o *Order) { o.Purpose = "curiosity" }, []string{"purpose"}},
		{"purpose removed by configuration", func() Rules {
			t2, err := r.Tighten(Rules{Purposes: []string{"fraud investigation"}})
			if err != nil {
				t.Fatal(err)
			}
			return t2
		}(), func(o *Order) {}, []string{"purpose"}},
		// channels
		{"scope includes an excluded channel", r, func(o *Order) { o.Channels = []string{hrChannel} }, []string{"channels[0]"}},
		{"scope includes an order-excluded channel", r, func(o *Order) {
			o.ExcludedChannels = append(o.ExcludedChannels, privateChan)
			o.Channels = []string{townSquare, privateChan}
		}, []string{"channels[1]"}},
		{"scope channel not an id", r, func(o *Order) { o.Channels = []string{townSquare, "town-square"} }, []string{"channels[1]"}},
		{"scope channel twice", r, func(o *Order) { o.Channels = []string{townSquare, townSquare} }, []string{"channels[1]"}},
		{"configured exclusion missing", r, func(o *Order) { o.ExcludedChannels = []string{hrChannel} }, []string{"excluded_channels"}},
		{"no exclusions at all", r, func(o *Order) { o.ExcludedChannels = nil }, []string{"excluded_channels"}},
		{"excluded channel not an id", r, func(o *Order) { o.ExcludedChannels = append(o.ExcludedChannels, "HR") }, []string{"excluded_channels[2]"}},
		{"too many scope channels", r, func(o *Order) { o.Channels = slices.Repeat([]string{townSquare}, MaxListLen+1) }, []string{"channels"}},
		// prior warning
		{"prior warning: both", r, func(o *Order) { o.PriorWarning.WhyNone = "none given" }, []string{"prior_warning"}},
		{"prior warning: ref and blank why_none", r, func(o *Order) { o.PriorWarning.WhyNone = "  " }, []string{"prior_warning.why_none"}},
		// text
		{"facts not UTF-8", r, func(o *Order) { o.Suspicion.Facts = "a\xffb" }, []string{"suspicion.facts"}},
		{"facts too long", r, func(o *Order) { o.Suspicion.Facts = strings.Repeat("x", MaxTextBytes+1) }, []string{"suspicion.facts"}},
		{"too many evidence refs", r, func(o *Order) { o.Suspicion.EvidenceRefs = slices.Repeat([]string{"EV"}, MaxListLen+1) }, []string{"suspicion.evidence_refs"}},
		{"dpo advice whitespace only", r, func(o *Order) { o.DPOAdviceRef = " " }, []string{"dpo_advice_ref"}},
		{"new facts whitespace only", r, func(o *Order) { o.NewFacts = "\t" }, []string{"new_facts"}},
		// id
		{"id without prefix", r, func(o *Order) { o.ID = strings.TrimPrefix(o.ID, IDPrefix) }, []string{"id"}},
		{"id in capitals", r, func(o *Order) { o.ID = strings.ToUpper(o.ID) }, []string{"id"}},
		{"id short", r, func(o *Order) { o.ID = o.ID[:len(o.ID)-1] }, []string{"id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := validOrder()
			c.mut(o)
			got := fieldsOf(t, o.Validate(c.rules, testNow, nil))
			slices.Sort(got)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("named %v, want %v (%v)", got, want, o.Validate(c.rules, testNow, nil))
			}
		})
	}
}

// TestAllProblemsAtOnce checks that one call reports everything, and that
// no reason quotes the requester's free text.
func TestAllProblemsAtOnce(t *testing.T) {
	const canary = "CANARY-7f3a"
	o := validOrder()
	o.Subject = "Jan " + canary
	o.Requester = ""
	o.Purpose = canary
	o.Suspicion.Facts = canary + "\xff"
	o.Suspicion.EvidenceRefs = nil
	o.Suspicion.FirstNoticed = canary
	o.PriorWarning = PriorWarning{Ref: canary, WhyNone: canary}
	o.LessIntrusive.Tried = strings.Repeat(canary, MaxTextBytes/len(canary)+1)
	o.Window = Window{From: canary, To: day(0)}
	o.Notice = Notice{Mode: canary, DeferralGround: canary}
	o.NewFacts = "\xff" + canary
	o.ExpiresAt = testNow.Add(-time.Second)
	err := o.Validate(testRules(t), testNow, nil)
	want := []string{"subject", "requester", "purpose", "suspicion.facts", "suspicion.first_noticed", "suspicion.evidence_refs",
		"prior_warning", "less_intrusive.tried", "window.from", "window.to", "expires_at", "notice.mode", "new_facts"}
	got := fieldsOf(t, err)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("named %v\nwant  %v", got, want)
	}
	msg := err.Error()
	if strings.Contains(msg, canary) {
		t.Fatalf("error quotes free text: %s", msg)
	}
	for _, f := range want {
		if !strings.Contains(msg, f+": ") {
			t.Errorf("Error() does not name %s: %s", f, msg)
		}
	}
	if !strings.HasPrefix(msg, "invalid order: ") {
		t.Errorf("Error() = %q", msg)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || !ve.Has("window.to") || ve.Has("id") {
		t.Errorf("Has is wrong")
	}
}

func TestValidateRefusesLooseRules(t *testing.T) {
	r := testRules(t)
	cases := map[string]func(r *Rules){
		"zero rules":          func(r *Rules) { *r = Rules{} },
		"window 120 days":     func(r *Rules) { r.MaxWindowDays = 120 },
		"look-back 365 days":  func(r *Rules) { r.MaxLookbackDays = 365 },
		"validity 30 days":    func(r *Rules) { r.MaxValidity = 30 * 24 * time.Hour },
		"deferral 90 days":    func(r *Rules) { r.MaxDeferral = 90 * 24 * time.Hour },
		"deferral unset":      func(r *Rules) { r.MaxDeferral = 0 },
		"no purposes":         func(r *Rules) { r.Purposes = nil },
		"invented purpose":    func(r *Rules) { r.Purposes = append(slices.Clone(r.Purposes), "curiosity") },
		"malformed exclusion": func(r *Rules) { r.ExcludedChannels = []string{"hr"} },
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			rr := r
			rr.Purposes = slices.Clone(r.Purposes)
			mut(&rr)
			err := validOrder().Validate(rr, testNow, nil)
			var ve *ValidationError
			if err == nil || errors.As(err, &ve) || !strings.Contains(err.Error(), "order rules") {
				t.Fatalf("loose rules: %v", err)
			}
		})
	}
	var o *Order
	if err := o.Validate(r, testNow, nil); err == nil {
		t.Fatal("nil order accepted")
	}
}
