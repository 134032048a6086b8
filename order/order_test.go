package order

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDays(t *testing.T) {
	cases := []struct {
		from, to string
		want     []string
	}{
		{"2026-01-30", "2026-02-02", []string{"2026-01-30", "2026-01-31", "2026-02-01", "2026-02-02"}},
		{"2025-12-31", "2026-01-01", []string{"2025-12-31", "2026-01-01"}},
		{"2028-02-28", "2028-03-01", []string{"2028-02-28", "2028-02-29", "2028-03-01"}}, // leap year
		{"2026-02-28", "2026-03-01", []string{"2026-02-28", "2026-03-01"}},
		{"2026-03-29", "2026-03-30", []string{"2026-03-29", "2026-03-30"}}, // a DST change in Europe: dates are UTC
		{"2026-03-05", "2026-03-05", []string{"2026-03-05"}},
		{"2026-03-06", "2026-03-05", nil},
		{"2026-02-30", "2026-03-05", nil},
		{"", "2026-03-05", nil},
		{"2026-03-05", "2026-03-05T00:00:00Z", nil},
		{"0001-01-01", "9999-12-31", nil},
	}
	for _, c := range cases {
		o := &Order{Window: Window{From: c.from, To: c.to}}
		if got := o.Days(); !slices.Equal(got, c.want) {
			t.Errorf("%s..%s: %v, want %v", c.from, c.to, got, c.want)
		}
	}
	// 90 days is the most; 91 could not pass Validate, so nothing.
	o := &Order{Window: Window{From: "2026-01-01", To: "2026-03-31"}}
	if d := o.Days(); len(d) != 90 || d[0] != "2026-01-01" || d[89] != "2026-03-31" {
		t.Fatalf("90 days: %d %v", len(d), d)
	}
	o.Window.From = "2025-12-31"
	if d := o.Days(); d != nil {
		t.Fatalf("91 days: %d", len(d))
	}
}

func TestInWindow(t *testing.T) {
	o := &Order{Window: Window{From: "2026-02-10", To: "2026-02-20"}}
	cet := time.FixedZone("CET", 3600)
	cases := []struct {
		t    time.Time
		want bool
	}{
		{time.Date(2026, 2, 9, 23, 59, 59, 999999999, time.UTC), false},
		{time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 2, 15, 12, 0, 0, 0, time.UTC), true},
		{time.Date(2026, 2, 20, 23, 59, 59, 999999999, time.UTC), true},
		{time.Date(2026, 2, 21, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2026, 2, 10, 0, 30, 0, 0, cet), false}, // 2026-02-09 23:30 UTC
		{time.Date(2026, 2, 21, 0, 30, 0, 0, cet), true},  // 2026-02-20 23:30 UTC
	}
	for _, c := range cases {
		if got := o.InWindow(c.t); got != c.want {
			t.Errorf("InWindow(%s) = %v", c.t, got)
		}
	}
	bad := &Order{Window: Window{From: "2026-02-20", To: "2026-02-10"}}
	if bad.InWindow(time.Date(2026, 2, 15, 0, 0, 0, 0, time.UTC)) {
		t.Error("inverted window matched")
	}
}

func TestInScope(t *testing.T) {
	all := &Order{ExcludedChannels: []string{hrChannel, unionChannel}}
	scoped := &Order{ExcludedChannels: []string{hrChannel}, Channels: []string{townSquare}}
	// A scope that lists an excluded channel cannot pass Validate; InScope
	// still refuses it.
	broken := &Order{ExcludedChannels: []string{hrChannel}, Channels: []string{hrChannel, townSquare}}
	cases := []struct {
		o    *Order
		ch   string
		want bool
	}{
		{all, townSquare, true},
		{all, privateChan, true},
		{all, hrChannel, false},
		{all, unionChannel, false},
		{all, "", false},
		{scoped, townSquare, true},
		{scoped, privateChan, false},
		{scoped, hrChannel, false},
		{broken, hrChannel, false},
		{broken, townSquare, true},
	}
	for i, c := range cases {
		if got := c.o.InScope(c.ch); got != c.want {
			t.Errorf("%d: InScope(%s) = %v", i, c.ch, got)
		}
	}
}

func TestStamp(t *testing.T) {
	r := testRules(t)
	o := validOrder()
	o.ID = "ord_chosenbytherequesteraaaa"
	o.ExcludedChannels = nil
	o.FiledAt = time.Time{}
	now := testNow.In(time.FixedZone("CET", 3600))
	o.Stamp(r, now)
	if !IsID(o.ID) || o.ID == "ord_chosenbytherequesteraaaa" {
		t.Fatalf("id %q", o.ID)
	}
	if !o.FiledAt.Equal(testNow) || o.FiledAt.Location() != time.UTC {
		t.Fatalf("filed_at %v", o.FiledAt)
	}
	if !slices.Equal(o.ExcludedChannels, r.ExcludedChannels) {
		t.Fatalf("excluded %v", o.ExcludedChannels)
	}
	o.ExcludedChannels[0] = privateChan
	if r.ExcludedChannels[0] != hrChannel {
		t.Fatal("Stamp shares the rules' slice")
	}
	p := validOrder()
	p.Stamp(r, testNow)
	if p.ID == o.ID {
		t.Fatal("two stamps, one id")
	}
}

func TestParseJSON(t *testing.T) {
	good := string(validOrder().Canonical())
	if _, err := ParseJSON([]byte(good)); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"unknown field":   strings.Replace(good, `"subject"`, `"subjects"`, 1),
		"trailing order":  good + good,
		"trailing junk":   good + " x",
		"not an object":   `["` + alice + `"]`,
		"subject as list": strings.Replace(good, `"subject":"`+alice+`"`, `"subject":["`+alice+`","`+bob+`"]`, 1),
		"bad time":        strings.Replace(good, `"expires_at":"`, `"expires_at":"SECRET`, 1),
		"truncated":       good[:len(good)/2],
		"empty":           "",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			o, err := ParseJSON([]byte(in))
			if err == nil {
				t.Fatalf("accepted: %+v", o)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Fatalf("error quotes input: %v", err)
			}
		})
	}
}
