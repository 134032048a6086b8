package aggregates_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/aggregates"
	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/redact/dp"
	"github.com/sealgate/sealgate/store"
	"github.com/sealgate/sealgate/store/boltstore"
)

// day0 is the first day of the synthetic data.
var day0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// world is a synthetic organisation: user u is in team floor(log2(u+1)),
// so teams have 1, 2, 4, 8, … members and the small ones must be folded
// and suppressed.
type world struct {
	users []string
	teams []string
}

func newWorld(nUsers int) world {
	var w world
	for u := range nUsers {
		w.users = append(w.users, fmt.Sprintf("u%025d", u))
		team := 0
		for (u+1)>>(team+1) > 0 {
			team++
		}
		w.teams = append(w.teams, fmt.Sprintf("team%022d", team))
	}
	return w
}

// events returns n events spread over the hours [from, from+hours), most
// of them in working hours, a tenth of them direct messages (no team).
func (w world) events(rng *rand.Rand, from time.Time, hours, n int) []redact.Event {
	types := []byte{'O', 'O', 'O', 'P', 'P', 'G'}
	evs := make([]redact.Event, n)
	for i := range evs {
		h := rng.IntN(hours)
		if hod := (from.Hour() + h) % 24; (hod < 8 || hod > 18) && rng.IntN(4) != 0 {
			h = rng.IntN(hours) // off hours are quieter: redraw most of them
		}
		u := rng.IntN(len(w.users))
		ev := redact.Event{
			Time:        from.Add(time.Duration(h)*time.Hour + time.Duration(rng.IntN(3600))*time.Second),
			Team:        w.teams[u],
			ChannelType: types[rng.IntN(len(types))],
			Kind:        redact.Kind(1 + rng.IntN(5)),
			Bytes:       rng.IntN(800),
			User:        w.users[u],
		}
		if rng.IntN(10) == 0 {
			ev.Team, ev.ChannelType = "", 'D'
		}
		evs[i] = ev
	}
	return evs
}

// release observes evs in an aggregator started at start and flushes it at
// end, returning its buckets.
func release(t testing.TB, start, end time.Time, evs []redact.Event) []redact.Bucket {
	t.Helper()
	a, err := redact.New(redact.Config{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		a.Observe(ev)
	}
	if st := a.Stats(); st.Late+st.Invalid != 0 {
		t.Fatalf("aggregator dropped %d late and %d invalid events", st.Late, st.Invalid)
	}
	return a.Flush(end)
}

func openStore(t testing.TB) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "store.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fixture is four days of aggregates in a bbolt store: the third day has
// two releases (the gateway restarted at 13:00), and the day before day0
// and the day after the last hold a little too.
type fixture struct {
	st  *boltstore.Store
	all []redact.Bucket
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWorld(120)
	restart := day0.Add(2*24*time.Hour + 13*time.Hour)
	first := release(t, day0.Add(-24*time.Hour), restart, w.events(rng, day0.Add(-24*time.Hour), 24*3+13, 9000))
	second := release(t, restart, day0.Add(6*24*time.Hour), w.events(rng, restart, 11+24*2, 5000))
	f := fixture{st: openStore(t), all: append(first, second...)}
	if err := f.st.PutBuckets(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	if err := f.st.PutBuckets(t.Context(), second); err != nil {
		t.Fatal(err)
	}
	return f
}

// countingReader records the ranges read.
type countingReader struct {
	r      aggregates.Reader
	ranges [][2]int64
}

func (c *countingReader) Buckets(ctx context.Context, from, to int64) ([]redact.Bucket, error) {
	c.ranges = append(c.ranges, [2]int64{from, to})
	return c.r.Buckets(ctx, from, to)
}

func TestQueryMatchesPublish(t *testing.T) {
	f := newFixture(t)
	var supp, atLeast, partial int
	h := time.Hour
	queries := []redact.Query{
		{From: day0.Add(-24 * h), To: day0.Add(6 * 24 * h), By: redact.Day},
		{From: day0.Add(-24 * h), To: day0.Add(6 * 24 * h), By: redact.Hour},
		{From: day0, To: day0.Add(24 * h), By: redact.Hour},
		{From: day0.Add(2 * 24 * h), To: day0.Add(3 * 24 * h), By: redact.Hour}, // the day with two releases
		{From: day0.Add(2 * 24 * h), To: day0.Add(3 * 24 * h), By: redact.Day},
		{From: day0.Add(30 * h), To: day0.Add(50 * h), By: redact.Hour}, // parts of days
		{From: day0.Add(30 * h), To: day0.Add(50 * h), By: redact.Day},  // no day starts in it but day0+48h
		{From: day0.Add(30*h + time.Minute), To: day0.Add(30*h + 2*time.Minute), By: redact.Hour},
		{From: day0.Add(-30 * 24 * h), To: day0.Add(-20 * 24 * h), By: redact.Day}, // before the data
		{From: day0.Add(20 * 24 * h), To: day0.Add(30 * 24 * h), By: redact.Hour},  // after it
	}
	for _, q := range queries {
		for _, k := range []int{0, redact.MinK, 6, 9, 25} {
			want, err := redact.Publish(f.all, q, k)
			if err != nil {
				t.Fatal(err)
			}
			cr := &countingReader{r: f.st}
			got, err := aggregates.Query(t.Context(), cr, q, k)
			if err != nil {
				t.Fatalf("Query(%v..%v by %v, k=%d): %v", q.From, q.To, q.By, k, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Query(%v..%v by %v, k=%d) differs from redact.Publish: %d rows, want %d", q.From, q.To, q.By, k, len(got.Rows), len(want.Rows))
			}
			// It reads the whole days the query touches, no more.
			if len(cr.ranges) == 1 {
				r := cr.ranges[0]
				if r[0]%24 != 0 || (r[1]+1)%24 != 0 || r[0]*3600 > q.From.Unix() || (r[1]+1)*3600 < q.To.Unix() || (r[1]-r[0]+1)*3600 > int64(q.To.Sub(q.From)/time.Second)+2*86400 {
					t.Fatalf("Query(%v..%v) read hours %d..%d", q.From, q.To, r[0], r[1])
				}
			}
			for _, r := range got.Rows {
				switch {
				case r.Suppressed:
					supp++
				case r.UsersAtLeast:
					atLeast++
				}
				if r.Partial {
					partial++
				}
			}
		}
	}
	// The fixture exercises what it is meant to.
	if supp == 0 || atLeast == 0 || partial == 0 {
		t.Fatalf("the fixture's publications have %d suppressed, %d lower-bound and %d partial cells; want some of each", supp, atLeast, partial)
	}
	if _, err := aggregates.Query(t.Context(), f.st, redact.Query{From: day0, To: day0, By: redact.Day}, 5); err == nil {
		t.Fatal("Query of an empty range succeeded")
	}
	if _, err := aggregates.Query(t.Context(), f.st, redact.Query{From: day0, To: day0.Add(h), By: 7}, 5); err == nil {
		t.Fatal("Query by 7 hours succeeded")
	}
}

func TestParseQuery(t *testing.T) {
	q, err := aggregates.ParseQuery("2026-03-02", "2026-03-04", "")
	if err != nil {
		t.Fatal(err)
	}
	if !q.From.Equal(day0) || !q.To.Equal(day0.Add(3*24*time.Hour)) || q.By != redact.Day {
		t.Fatalf("ParseQuery = %+v", q)
	}
	q, err = aggregates.ParseQuery("2024-01-01", "2024-12-31", "hour") // a leap year: 366 days
	if err != nil || q.By != redact.Hour {
		t.Fatalf("ParseQuery of 366 days: %+v, %v", q, err)
	}
	for _, c := range [][3]string{
		{"", "2026-03-02", ""},
		{"2026-03-02", "", ""},
		{"2026-3-2", "2026-03-04", ""},
		{"2026-03-02", "2026-02-30", ""},
		{"2026-03-02T00:00:00Z", "2026-03-04", ""},
		{"2026-03-04", "2026-03-02", ""},
		{"2024-01-01", "2025-01-01", ""},
		{"2026-03-02", "2026-03-04", "week"},
		{"2026-03-02", "2026-03-04", "Hour"},
	} {
		if _, err := aggregates.ParseQuery(c[0], c[1], c[2]); !errors.Is(err, aggregates.ErrBadQuery) {
			t.Errorf("ParseQuery(%q, %q, %q) = %v, want ErrBadQuery", c[0], c[1], c[2], err)
		}
	}
}

func allow(*http.Request) (bool, int) { return true, 0 }

func get(t *testing.T, h http.Handler, target string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

func TestHandlerJSON(t *testing.T) {
	f := newFixture(t)
	h := aggregates.Handler(f.st, 6, allow, nil)
	for _, by := range []string{"hour", "day", ""} {
		rec := get(t, h, "/v1/aggregates?from=2026-03-01&to=2026-03-07&by="+by)
		if rec.Code != http.StatusOK {
			t.Fatalf("by=%s: status %d: %s", by, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		var got aggregates.JSONTable
		dec := json.NewDecoder(rec.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatal(err)
		}
		q, _ := aggregates.ParseQuery("2026-03-01", "2026-03-07", by)
		want, err := redact.Publish(f.all, q, 6)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Rows) == 0 {
			t.Fatal("nothing published")
		}
		if !reflect.DeepEqual(got, aggregates.ToJSON(want)) {
			t.Fatalf("by=%s: the JSON read back differs from the publication", by)
		}
		// Back to rows: the same figures.
		if got.K != 6 || got.By != q.By.String() || len(got.Rows) != len(want.Rows) {
			t.Fatalf("k %d by %s, %d rows", got.K, got.By, len(got.Rows))
		}
		for i, jr := range got.Rows {
			wr := want.Rows[i]
			if !jr.Start.Equal(wr.Start) || jr.Team != wr.Team || jr.ChannelType != string(rune(wr.ChannelType)) || jr.Suppressed != wr.Suppressed {
				t.Fatalf("row %d: %+v, want %+v", i, jr, wr)
			}
			if wr.Suppressed != (jr.Figures == nil) {
				t.Fatalf("row %d: suppressed %v with figures %v", i, wr.Suppressed, jr.Figures)
			}
			if jr.Figures != nil && (jr.Messages != wr.Messages || jr.Users != wr.Users || jr.Bytes != wr.Bytes) {
				t.Fatalf("row %d: figures %+v, want %+v", i, *jr.Figures, wr.Counts)
			}
		}
	}
	// A suppressed row has no figures in the JSON at all.
	rec := get(t, h, "/v1/aggregates?from=2026-03-02&to=2026-03-02&by=hour&format=json")
	var raw struct{ Rows []map[string]any }
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range raw.Rows {
		if r["suppressed"] == true {
			n++
			if _, ok := r["messages"]; ok {
				t.Fatalf("suppressed row with figures: %v", r)
			}
		}
	}
	if n == 0 {
		t.Fatal("no suppressed row in an hourly publication of a day")
	}
}

func TestHandlerCSV(t *testing.T) {
	f := newFixture(t)
	h := aggregates.Handler(f.st, redact.MinK, allow, nil)
	rec := get(t, h, "/v1/aggregates?from=2026-03-02&to=2026-03-05&by=hour&format=csv")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Fatalf("Content-Type %q", ct)
	}
	if cd := rec.Header().Get("Content-Disposition"); !strings.Contains(cd, "aggregates-2026-03-02-2026-03-05-by-hour.csv") {
		t.Fatalf("Content-Disposition %q", cd)
	}
	recs, err := csv.NewReader(rec.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := aggregates.ParseQuery("2026-03-02", "2026-03-05", "hour")
	want, err := redact.Publish(f.all, q, redact.MinK)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], aggregates.CSVHeader) {
		t.Fatalf("header %q", recs[0])
	}
	if len(recs)-1 != len(want.Rows) {
		t.Fatalf("%d CSV rows, want %d", len(recs)-1, len(want.Rows))
	}
	supp := 0
	for i, r := range recs[1:] {
		w := want.Rows[i]
		start, err := time.Parse(time.RFC3339, r[0])
		if err != nil || !start.Equal(w.Start) || r[1] != "hour" || r[2] != w.Team || r[3] != string(rune(w.ChannelType)) ||
			r[4] != strconv.FormatBool(w.Suppressed) || r[5] != strconv.FormatBool(w.Partial) || r[6] != strconv.FormatBool(w.UsersAtLeast) {
			t.Fatalf("row %d: %q, want %+v", i, r, w)
		}
		figures := []int64{w.Messages, w.Edits, w.Deletes, w.Bytes, w.Files, w.Reactions, w.Users}
		for j, x := range figures {
			cell := r[7+j]
			if w.Suppressed {
				if cell != "suppressed" {
					t.Fatalf("row %d: suppressed cell holds %q", i, cell)
				}
				continue
			}
			if n, err := strconv.ParseInt(cell, 10, 64); err != nil || n != x {
				t.Fatalf("row %d column %s: %q, want %d", i, aggregates.CSVHeader[7+j], cell, x)
			}
		}
		if w.Suppressed {
			supp++
		}
	}
	if supp == 0 {
		t.Fatal("no suppressed row")
	}
}

func TestWriteCSVFormulaTeam(t *testing.T) {
	tab := redact.Table{K: 5, By: redact.Day, Rows: []redact.Row{
		{Start: day0, Span: redact.Day, Team: "=HYPERLINK(\"x\")", ChannelType: 'O', Counts: redact.Counts{Messages: 1, Users: 5}},
	}}
	var buf bytes.Buffer
	if err := aggregates.WriteCSV(&buf, tab); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if recs[1][2] != "'=HYPERLINK(\"x\")" {
		t.Fatalf("team written as %q", recs[1][2])
	}
}

func TestHandlerBadParams(t *testing.T) {
	f := newFixture(t)
	h := aggregates.Handler(f.st, redact.MinK, allow, nil)
	for _, c := range []struct{ query, want string }{
		{"", "required"},
		{"from=2026-03-02", "required"},
		{"to=2026-03-02", "required"},
		{"from=2026-03-02&to=2026-3-4", "to must be a day"},
		{"from=yesterday&to=2026-03-04", "from must be a day"},
		{"from=2026-03-04&to=2026-03-02", "before"},
		{"from=2025-01-01&to=2026-01-02", "at most 366"},
		{"from=2026-03-02&to=2026-03-04&by=week", "by must be"},
		{"from=2026-03-02&to=2026-03-04&format=xml", "format must be"},
		{"from=2026-03-02&to=2026-03-04&team=x", "unknown parameter"},
		{"from=2026-03-02&to=2026-03-04&from=2026-03-01", "2 times"},
		{"from=2026-03-02&to=2026-03-04%zz", "not well formed"},
	} {
		rec := get(t, h, "/v1/aggregates?"+c.query)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", c.query, rec.Code)
			continue
		}
		var body struct{ Error, Code string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%q: %v", c.query, err)
		}
		if body.Code != "bad_request" || !strings.Contains(body.Error, c.want) {
			t.Errorf("%q: error %q (%s), want one saying %q", c.query, body.Error, body.Code, c.want)
		}
	}
	// 366 days is allowed.
	if rec := get(t, h, "/v1/aggregates?from=2025-03-02&to=2026-03-02"); rec.Code != http.StatusOK {
		t.Fatalf("366 days: status %d: %s", rec.Code, rec.Body)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/aggregates?from=2026-03-02&to=2026-03-02", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d, want 405", rec.Code)
	}
}

func TestHandlerAuthorization(t *testing.T) {
	f := newFixture(t)
	var asked int
	for _, c := range []struct {
		status, want int
	}{
		{http.StatusUnauthorized, http.StatusUnauthorized},
		{http.StatusForbidden, http.StatusForbidden},
		{0, http.StatusForbidden},
		{http.StatusOK, http.StatusForbidden},
		{http.StatusInternalServerError, http.StatusForbidden},
	} {
		h := aggregates.Handler(f.st, redact.MinK, func(r *http.Request) (bool, int) {
			asked++
			if r.Header.Get("Authorization") != "Bearer tok" {
				t.Errorf("authorize did not get the request's headers")
			}
			return false, c.status
		}, nil)
		// Bad parameters too: authorization comes first.
		for _, q := range []string{"from=2026-03-02&to=2026-03-04", "from=nonsense"} {
			req := httptest.NewRequest(http.MethodGet, "/v1/aggregates?"+q, nil)
			req.Header.Set("Authorization", "Bearer tok")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("authorize refusing with %d, %q: status %d, want %d", c.status, q, rec.Code, c.want)
			}
			if strings.Contains(rec.Body.String(), "messages") {
				t.Fatalf("refused response holds figures: %s", rec.Body)
			}
		}
	}
	if asked != 10 {
		t.Fatalf("authorize asked %d times, want 10", asked)
	}
	if rec := get(t, aggregates.Handler(f.st, redact.MinK, nil, nil), "/v1/aggregates?from=2026-03-02&to=2026-03-04"); rec.Code != http.StatusForbidden {
		t.Fatalf("nil authorize: status %d, want 403", rec.Code)
	}
}

type failingReader struct{}

func (failingReader) Buckets(context.Context, int64, int64) ([]redact.Bucket, error) {
	return nil, errors.New("disk on fire")
}

func TestHandlerStoreFails(t *testing.T) {
	rec := get(t, aggregates.Handler(failingReader{}, 5, allow, nil), "/v1/aggregates?from=2026-03-02&to=2026-03-04")
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "fire") {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func TestWriteTable(t *testing.T) {
	f := newFixture(t)
	q, _ := aggregates.ParseQuery("2026-03-04", "2026-03-04", "hour") // the day of the restart
	tab, err := aggregates.Query(t.Context(), f.st, q, 6)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := aggregates.WriteTable(&buf, tab); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"aggregates by hour, k = 6", "START", "2026-03-04 09:00", "MESSAGES", "all teams", "other teams", "no team", "suppressed", "partial"} {
		if !strings.Contains(out, want) {
			t.Fatalf("table lacks %q:\n%s", want, out)
		}
	}
	q.By = redact.Day
	day, err := aggregates.Query(t.Context(), f.st, q, 6)
	if err != nil {
		t.Fatal(err)
	}
	var dbuf bytes.Buffer
	if err := aggregates.WriteTable(&dbuf, day); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dbuf.String(), "≥") || !strings.Contains(dbuf.String(), "lower bound") {
		t.Fatalf("a day of two releases has no lower-bound user count:\n%s", dbuf.String())
	}
	// Aligned: every cell line has its TYPE column where the header has it.
	lines := strings.Split(out, "\n")
	col := strings.Index(lines[1], "TYPE")
	if col < 0 {
		t.Fatalf("no header line:\n%s", out)
	}
	for _, l := range lines[2 : 2+len(tab.Rows)] {
		if len(l) <= col || l[col-2:col] != "  " || l[col] == ' ' {
			t.Fatalf("line not aligned with the header:\n%s\n%s", lines[1], l)
		}
	}
	buf.Reset()
	if err := aggregates.WriteTable(&buf, redact.Table{K: 5, By: redact.Hour}); err != nil || !strings.Contains(buf.String(), "no aggregates") {
		t.Fatalf("empty table: %v\n%s", err, buf.String())
	}
	// A team id with control characters is quoted, not sent to the terminal.
	buf.Reset()
	bad := redact.Table{K: 5, By: redact.Day, Rows: []redact.Row{{Start: day0, Team: "a\x1b[2Jb", ChannelType: 'O', Counts: redact.Counts{Users: 5}}}}
	if err := aggregates.WriteTable(&buf, bad); err != nil || strings.Contains(buf.String(), "\x1b") {
		t.Fatalf("control characters written: %v %q", err, buf.String())
	}
}

func TestChart(t *testing.T) {
	f := newFixture(t)
	for _, by := range []string{"hour", "day"} {
		q, _ := aggregates.ParseQuery("2026-03-01", "2026-03-07", by)
		tab, err := aggregates.Query(t.Context(), f.st, q, redact.MinK)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := aggregates.Chart(tab, &buf, "png", 800, 400); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 800 || b.Dy() != 400 {
			t.Fatalf("by %s: PNG of %v, want 800x400", by, b)
		}
		buf.Reset()
		if err := aggregates.Chart(tab, &buf, "svg", 800, 400); err != nil {
			t.Fatal(err)
		}
		svg := buf.String()
		if !strings.HasPrefix(svg, "<?xml") && !strings.HasPrefix(svg, "<svg") {
			t.Fatalf("SVG starts with %q", svg[:min(len(svg), 40)])
		}
		for _, want := range []string{"all teams", "suppressed", "Messages per " + by} {
			if want == "suppressed" && !slices.ContainsFunc(tab.Rows, func(r redact.Row) bool { return r.Suppressed && r.ChannelType == redact.AllTypes }) {
				continue
			}
			if !strings.Contains(svg, want) {
				t.Errorf("by %s: the SVG does not say %q", by, want)
			}
		}
	}
	// An empty table, and too many teams for the legend.
	var buf bytes.Buffer
	if err := aggregates.Chart(redact.Table{K: 5, By: redact.Day}, &buf, "png", 640, 480); err != nil {
		t.Fatalf("empty table: %v", err)
	}
	if img, err := png.Decode(&buf); err != nil || img.Bounds().Dx() != 640 {
		t.Fatalf("empty chart: %v", err)
	}
	var many redact.Table
	many.K, many.By = 5, redact.Day
	for d := range 5 {
		for team := range 30 {
			many.Rows = append(many.Rows, redact.Row{Start: day0.AddDate(0, 0, d), Span: redact.Day, Team: fmt.Sprintf("team%02d", team),
				ChannelType: redact.AllTypes, Counts: redact.Counts{Messages: int64(team * d), Users: 5}})
		}
	}
	buf.Reset()
	if err := aggregates.Chart(many, &buf, "svg", 800, 400); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "18 more teams") {
		t.Fatal("the legend does not say how many teams were left out")
	}
	for _, c := range []struct {
		format string
		w, h   int
	}{{"gif", 800, 400}, {"png", 0, 400}, {"png", 800, 20000}} {
		if err := aggregates.Chart(many, &buf, c.format, c.w, c.h); err == nil {
			t.Errorf("Chart(%s, %dx%d) succeeded", c.format, c.w, c.h)
		}
	}
}

// BenchmarkQuery90DaysByHour publishes 90 days by hour from a bbolt store
// holding the releases of 1,000,000 events (2,000 users in 11 teams of 1
// to 1,024 members, a tenth of them direct messages). The goal is ≤ 200 ms.
func BenchmarkQuery90DaysByHour(b *testing.B) {
	const days, events = 90, 1_000_000
	rng := rand.New(rand.NewPCG(7, 8))
	w := newWorld(2000)
	a, err := redact.New(redact.Config{Start: day0})
	if err != nil {
		b.Fatal(err)
	}
	const chunk = 100_000
	for i := 0; i < events; i += chunk {
		for _, ev := range w.events(rng, day0, days*24, chunk) {
			a.Observe(ev)
		}
	}
	buckets := a.Flush(day0.Add(days * 24 * time.Hour))
	st := openStore(b)
	if err := st.PutBuckets(b.Context(), buckets); err != nil {
		b.Fatal(err)
	}
	var _ store.Aggregates = st
	q := redact.Query{From: day0, To: day0.Add(days * 24 * time.Hour), By: redact.Hour}
	var rows int
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t, err := aggregates.Query(b.Context(), st, q, redact.MinK)
		if err != nil {
			b.Fatal(err)
		}
		rows = len(t.Rows)
	}
	b.ReportMetric(float64(len(buckets)), "buckets")
	b.ReportMetric(float64(rows), "rows")
}

// TestHandlerNoise: with differential privacy on, every shown figure is
// noised, suppressed cells stay without figures, the budget is spent in the
// store's ledger, and once it is used up the publication is refused.
func TestHandlerNoise(t *testing.T) {
	f := newFixture(t)
	n := &dp.Noiser{Params: dp.Params{Epsilon: 0.5, Budget: 1, Bounds: dp.DefaultBounds}, Ledger: f.st}
	h := aggregates.Handler(f.st, redact.MinK, allow, n.Apply)
	const target = "/v1/aggregates?from=2026-03-02&to=2026-03-03&by=day"
	q, _ := aggregates.ParseQuery("2026-03-02", "2026-03-03", "day")
	exact, err := redact.Publish(f.all, q, redact.MinK)
	if err != nil {
		t.Fatal(err)
	}
	changed, shown := 0, 0
	for i := range 2 {
		rec := get(t, h, target)
		if rec.Code != http.StatusOK {
			t.Fatalf("publication %d: status %d: %s", i+1, rec.Code, rec.Body)
		}
		var got aggregates.JSONTable
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Rows) != len(exact.Rows) {
			t.Fatalf("%d rows, want %d", len(got.Rows), len(exact.Rows))
		}
		for j, r := range got.Rows {
			if r.Suppressed != exact.Rows[j].Suppressed || (r.Figures == nil) != r.Suppressed {
				t.Fatalf("row %d: suppression changed by noise", j)
			}
			if r.Figures == nil {
				continue
			}
			shown++
			if r.Messages < 0 || r.Users < 0 {
				t.Fatalf("row %d: negative figure %+v", j, *r.Figures)
			}
			if r.Messages != exact.Rows[j].Messages || r.Bytes != exact.Rows[j].Bytes {
				changed++
			}
		}
	}
	if shown == 0 || changed < shown/2 {
		t.Fatalf("%d of %d shown rows noised", changed, shown)
	}
	if v, err := f.st.BudgetSpent(t.Context(), "messages", "2026-03-02"); err != nil || v != 1 {
		t.Fatalf("ledger: %v spent on 2026-03-02, %v; want 1", v, err)
	}
	rec := get(t, h, target)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"budget_exhausted"`) {
		t.Fatalf("over budget: %d %s", rec.Code, rec.Body)
	}
	// Another day still has its budget.
	if rec := get(t, h, "/v1/aggregates?from=2026-03-04&to=2026-03-04"); rec.Code != http.StatusOK {
		t.Fatalf("fresh day: %d %s", rec.Code, rec.Body)
	}
}
