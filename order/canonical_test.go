package order

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fullOrder has every field non-empty, lists of two, so that each can be
// mutated in several ways. It need not be valid.
func fullOrder() *Order {
	o := deferredOrder()
	o.PriorWarning.WhyNone = "also this"
	o.Channels = []string{townSquare, privateChan}
	o.DPOAdviceRef = "DPO-1"
	o.NewFacts = "new facts"
	return o
}

// TestHashChangesWithEveryField mutates every leaf of the order, found by
// reflection so that a field added later is covered too, and requires every
// mutation to give a hash different from the original and from every other
// mutation.
func TestHashChangesWithEveryField(t *testing.T) {
	base := fullOrder()
	seen := map[[32]byte]string{base.Hash(): "original"}
	leaves := 0
	timeType := reflect.TypeOf(time.Time{})

	var walk func(path string, get func(o *Order) reflect.Value, typ reflect.Type)
	walk = func(path string, get func(o *Order) reflect.Value, typ reflect.Type) {
		if typ.Kind() == reflect.Struct && typ != timeType {
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				name := strings.Split(f.Tag.Get("json"), ",")[0]
				if path != "" {
					name = path + "." + name
				}
				walk(name, func(o *Order) reflect.Value { return get(o).Field(i) }, f.Type)
			}
			return
		}
		leaves++
		var muts map[string]func(v reflect.Value)
		switch {
		case typ == timeType:
			muts = map[string]func(v reflect.Value){
				"+1ns":   func(v reflect.Value) { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Nanosecond))) },
				"+1ms":   func(v reflect.Value) { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(time.Millisecond))) },
				"-1h":    func(v reflect.Value) { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(-time.Hour))) },
				"zeroed": func(v reflect.Value) { v.Set(reflect.Zero(timeType)) },
			}
		case typ.Kind() == reflect.String:
			muts = map[string]func(v reflect.Value){
				"appended":  func(v reflect.Value) { v.SetString(v.String() + "x") },
				"cleared":   func(v reflect.Value) { v.SetString("") },
				"one char":  func(v reflect.Value) { s := []byte(v.String()); s[0] ^= 1; v.SetString(string(s)) },
				"trailing ": func(v reflect.Value) { v.SetString(v.String() + " ") },
			}
		case typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.String:
			muts = map[string]func(v reflect.Value){
				"appended":     func(v reflect.Value) { v.Set(reflect.Append(v, reflect.ValueOf("x"))) },
				"emptied":      func(v reflect.Value) { v.Set(reflect.MakeSlice(typ, 0, 0)) },
				"last dropped": func(v reflect.Value) { v.Set(v.Slice(0, v.Len()-1)) },
				"swapped": func(v reflect.Value) {
					s := reflect.MakeSlice(typ, v.Len(), v.Len())
					reflect.Copy(s, v)
					a, b := s.Index(0).String(), s.Index(1).String()
					s.Index(0).SetString(b)
					s.Index(1).SetString(a)
					v.Set(s)
				},
				"joined": func(v reflect.Value) {
					v.Set(reflect.ValueOf([]string{v.Index(0).String() + "," + v.Index(1).String()}).Convert(typ))
				},
				"element changed": func(v reflect.Value) {
					s := reflect.MakeSlice(typ, v.Len(), v.Len())
					reflect.Copy(s, v)
					s.Index(1).SetString(s.Index(1).String() + "x")
					v.Set(s)
				},
			}
		default:
			t.Fatalf("%s: type %s has no mutations here: add them, and encode it in Canonical", path, typ)
		}
		for name, mut := range muts {
			o := fullOrder()
			mut(get(o))
			h := o.Hash()
			if prev, dup := seen[h]; dup {
				t.Errorf("%s %s: same hash as %s", path, name, prev)
			}
			seen[h] = path + " " + name
			if bytes.Equal(o.Canonical(), base.Canonical()) {
				t.Errorf("%s %s: same canonical form", path, name)
			}
		}
	}
	walk("", func(o *Order) reflect.Value { return reflect.ValueOf(o).Elem() }, reflect.TypeOf(Order{}))

	if want := len(jsonLeaves(reflect.TypeOf(Order{}), "")); leaves != want || leaves < 29 {
		t.Fatalf("mutated %d leaves, the order has %d", leaves, want)
	}
}

// TestCanonicalBoundaries moves text across field and list boundaries and
// smuggles structure into strings: none of it may collide.
func TestCanonicalBoundaries(t *testing.T) {
	pairs := []struct {
		name string
		a, b func(o *Order)
	}{
		{"adjacent fields",
			func(o *Order) { o.LegalBasis, o.LegitimateInterestRef = "ab", "c" },
			func(o *Order) { o.LegalBasis, o.LegitimateInterestRef = "a", "bc" }},
		{"list split",
			func(o *Order) { o.Suspicion.EvidenceRefs = []string{"a,b"} },
			func(o *Order) { o.Suspicion.EvidenceRefs = []string{"a", "b"} }},
		{"quoted list split",
			func(o *Order) { o.Suspicion.EvidenceRefs = []string{`a","b`} },
			func(o *Order) { o.Suspicion.EvidenceRefs = []string{"a", "b"} }},
		{"field injection",
			func(o *Order) { o.LegalBasis = `x","legitimate_interest_ref":"y`; o.LegitimateInterestRef = "z" },
			func(o *Order) { o.LegalBasis = "x"; o.LegitimateInterestRef = `y","legitimate_interest_ref":"z` }},
		{"backslash",
			func(o *Order) { o.WhyContent = `a\` },
			func(o *Order) { o.WhyContent = `a\\` }},
		{"scope vs exclusion",
			func(o *Order) { o.Channels, o.ExcludedChannels = []string{townSquare}, nil },
			func(o *Order) { o.Channels, o.ExcludedChannels = nil, []string{townSquare} }},
		{"ref vs why_none",
			func(o *Order) { o.PriorWarning = PriorWarning{Ref: "x"} },
			func(o *Order) { o.PriorWarning = PriorWarning{WhyNone: "x"} }},
	}
	for _, p := range pairs {
		a, b := validOrder(), validOrder()
		p.a(a)
		p.b(b)
		if a.Hash() == b.Hash() {
			t.Errorf("%s: collision", p.name)
		}
	}
}

func TestCanonicalIsStable(t *testing.T) {
	a, b := fullOrder(), fullOrder()
	// The same instants in another zone, with a monotonic reading.
	zone := time.FixedZone("CET", 3600)
	b.ExpiresAt = b.ExpiresAt.In(zone)
	b.FiledAt = b.FiledAt.In(zone)
	if a.Hash() != b.Hash() {
		t.Fatal("hash depends on the time zone")
	}
	// nil and empty lists are the same thing.
	a.Channels, b.Channels = nil, []string{}
	if a.Hash() != b.Hash() {
		t.Fatal("nil and empty scope differ")
	}
	// Hash is SHA-256 over the domain and the canonical form.
	if want := sha256.Sum256(append([]byte("sealgate/order/v1\n"), a.Canonical()...)); a.Hash() != want {
		t.Fatal("Hash is not SHA-256(domain | canonical)")
	}
	if a.Hash() == sha256.Sum256(a.Canonical()) {
		t.Fatal("hash without domain separation")
	}
}

// TestCanonicalGolden pins version 1 of the format: if this test fails, the
// format changed and every stored approval would stop verifying.
func TestCanonicalGolden(t *testing.T) {
	o := &Order{
		ID:                    "ord_3p5ynbrxrhn4kxkyqzbo2wjkwe",
		Subject:               alice,
		Requester:             bob,
		LegalBasis:            "art. 6(1)(f)",
		LegitimateInterestRef: "LIA-7",
		Purpose:               "legal hold",
		Suspicion:             Suspicion{Facts: "a \"quote\", a \\ and a\nnewline\x01 — é", FirstNoticed: "2026-03-01", EvidenceRefs: []string{"EV-2", "EV-1"}, PolicyClause: "§4"},
		PriorWarning:          PriorWarning{Ref: "W-1"},
		LessIntrusive:         LessIntrusive{Tried: "logs", WhyInsufficient: "no content"},
		WhyContent:            "content",
		Window:                Window{From: "2026-02-01", To: "2026-02-28"},
		ExcludedChannels:      []string{hrChannel},
		ExpiresAt:             time.Date(2026, 3, 22, 10, 0, 0, 123000000, time.FixedZone("CET", 3600)),
		DPIARef:               "DPIA-1",
		WorksCouncilRef:       "OR-1",
		ICTPolicyRef:          "ICT-3",
		Notice:                Notice{Mode: NoticeImmediate},
		FiledAt:               time.Date(2026, 3, 15, 10, 0, 0, 7, time.UTC),
	}
	want := `{"id":"ord_3p5ynbrxrhn4kxkyqzbo2wjkwe","subject":"g6e8xk8t6t86tjy8nrqyeqmm5c","requester":"jwmtcrk65byjmjan5bgpkh18iw",` +
		`"legal_basis":"art. 6(1)(f)","legitimate_interest_ref":"LIA-7","purpose":"legal hold",` +
		`"suspicion":{"facts":"a \"quote\", a \\ and a\u000anewline\u0001 — é","first_noticed":"2026-03-01","evidence_refs":["EV-2","EV-1"],"policy_clause":"§4"},` +
		`"prior_warning":{"ref":"W-1","why_none":""},"less_intrusive":{"tried":"logs","why_insufficient":"no content"},` +
		`"why_content":"content","window":{"from":"2026-02-01","to":"2026-02-28"},"channels":[],"excluded_channels":["1i1an6jdzj8w5y156c4hwiuypc"],` +
		`"expires_at":"2026-03-22T09:00:00.123000000Z","dpia_ref":"DPIA-1","works_council_ref":"OR-1","ict_policy_ref":"ICT-3",` +
		`"notice":{"mode":"immediate","deferral_ground":"","defer_until":""},"dpo_advice_ref":"","new_facts":"","filed_at":"2026-03-15T10:00:00.000000007Z"}`
	if got := string(o.Canonical()); got != want {
		t.Fatalf("canonical form changed:\ngot  %s\nwant %s", got, want)
	}
	h := o.Hash()
	if got := hex.EncodeToString(h[:]); got != goldenHash {
		t.Fatalf("hash %s, want %s", got, goldenHash)
	}
}

// goldenHash was computed outside Go (Python hashlib over the literal above).
const goldenHash = "a65b7e1a8689a17ee0a783519f06bee10319661b8d404c0e9a7624cf51517820"

// TestCanonicalIsAnOrder: the canonical form is valid JSON and decodes,
// strictly, to the same order.
func TestCanonicalIsAnOrder(t *testing.T) {
	tricky := fullOrder()
	tricky.Suspicion.Facts = "\x00\x1f\"\\\u2028</script>&\t\r\n\u007f 送金 😀"
	tricky.FiledAt = tricky.FiledAt.Add(123456789 * time.Nanosecond).In(time.FixedZone("x", -7*3600))
	for i, o := range []*Order{validOrder(), fullOrder(), tricky, {}} {
		c := o.Canonical()
		if !json.Valid(c) {
			t.Fatalf("%d: not JSON: %s", i, c)
		}
		back, err := ParseJSON(c)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if !bytes.Equal(back.Canonical(), c) || !back.ExpiresAt.Equal(o.ExpiresAt) || !back.FiledAt.Equal(o.FiledAt) {
			t.Fatalf("%d: round trip changed the order:\n%s\n%s", i, c, back.Canonical())
		}
		// And the plain JSON of the order decodes to the same canonical form.
		plain, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var viaJSON Order
		if err := json.Unmarshal(plain, &viaJSON); err != nil {
			t.Fatal(err)
		}
		if viaJSON.Hash() != o.Hash() {
			t.Fatalf("%d: hash changed through encoding/json", i)
		}
	}
}
