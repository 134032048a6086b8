package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
)

// transparencyLog builds a log spanning April to June 2026 on a memBackend.
// Every order id starts with "ord_secret" and every pseudonym with
// "ps_secret", so a report can be searched for them.
func transparencyLog(t *testing.T) *memBackend {
	t.Helper()
	m := &memBackend{}
	var now time.Time
	l := audit.New(m, func() time.Time { return now })
	add := func(at string, role string, a audit.Action, order string) {
		t.Helper()
		var err error
		if now, err = time.Parse(time.RFC3339Nano, at); err != nil {
			t.Fatal(err)
		}
		r := audit.Record{ActorRole: role, ActorPseudonym: "ps_secret_" + role, Action: a, Detail: "n=1"}
		if order != "" {
			r.OrderID = "ord_secret" + order
		}
		if _, err := l.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	// April: only partly counted in May (order P is activated in May).
	add("2026-04-20T10:00:00Z", "requester", audit.ActionOrderFiled, "P")
	add("2026-04-21T10:00:00Z", "legal", audit.ActionApproved, "P")
	add("2026-04-29T10:00:00Z", "requester", audit.ActionOrderFiled, "Q")
	add("2026-04-30T23:59:59.999999Z", "legal", audit.ActionRejected, "Q")
	add("2026-04-30T23:59:59.999999Z", "requester", audit.ActionViewed, "P")
	// May.
	add("2026-05-01T00:00:00Z", "works_council", audit.ActionApproved, "P")
	add("2026-05-01T00:00:00Z", "system", audit.ActionActivated, "P")
	add("2026-05-02T09:00:00Z", "requester", audit.ActionOrderFiled, "A")
	add("2026-05-02T09:05:00Z", "requester", audit.ActionOrderFiled, "B")
	add("2026-05-02T09:10:00Z", "requester", audit.ActionOrderFiled, "C")
	add("2026-05-03T09:00:00Z", "legal", audit.ActionApproved, "A")
	add("2026-05-03T10:00:00Z", "works_council", audit.ActionApproved, "A")
	add("2026-05-03T10:00:00Z", "system", audit.ActionActivated, "A")
	add("2026-05-03T11:00:00Z", "system", audit.ActionDeferred, "A")
	add("2026-05-04T09:00:00Z", "legal", audit.ActionApproved, "B")
	add("2026-05-04T10:00:00Z", "works_council", audit.ActionRejected, "B") // veto
	add("2026-05-04T10:01:00Z", "dpo", audit.ActionRejected, "B")           // same order again
	add("2026-05-05T10:00:00Z", "legal", audit.ActionRejected, "C")
	add("2026-05-06T10:00:00Z", "requester", audit.ActionViewed, "A")
	add("2026-05-06T10:01:00Z", "requester", audit.ActionViewed, "A")
	add("2026-05-06T10:02:00Z", "requester", audit.ActionViewed, "P")
	add("2026-05-07T10:00:00Z", "requester", audit.ActionExported, "A")
	add("2026-05-08T10:00:00Z", "requester", audit.ActionRefused, "C")
	add("2026-05-08T10:00:01Z", "requester", audit.ActionRefused, "")
	add("2026-05-09T00:00:00Z", "system", audit.ActionCheckpoint, "")
	add("2026-05-20T10:00:00Z", "system", audit.ActionNoticeSent, "P")
	add("2026-05-21T10:00:00Z", "requester", audit.ActionRevoked, "P")
	add("2026-05-22T10:00:00Z", "system", audit.ActionOrderFiled, "D")
	add("2026-05-31T23:59:59.999999Z", "system", audit.ActionExpired, "D")
	// June: not counted in May.
	add("2026-06-01T00:00:00Z", "requester", audit.ActionClosed, "A")
	add("2026-06-01T00:00:00Z", "requester", audit.ActionViewed, "A")
	add("2026-06-02T00:00:00Z", "legal", audit.ActionRejected, "B")
	add("2026-06-03T00:00:00Z", "requester", audit.ActionOrderFiled, "E")
	return m
}

func maySummary(t *testing.T, m *memBackend) audit.Transparency {
	t.Helper()
	from, to, err := audit.MonthRange("2026-05")
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.Summarize(t.Context(), m, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSummarizeCounts(t *testing.T) {
	got := maySummary(t, transparencyLog(t))
	want := audit.Transparency{
		From:        time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
		To:          time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC),
		Filed:       4, // A, B, C, D
		Approved:    2, // P and A reached their quorum in May
		Activated:   2,
		Rejected:    2, // B (veto + one more) and C; not Q (April) nor B's June entry
		Deferred:    1,
		Expired:     1,
		Revoked:     1,
		Closed:      0, // A's closure is on 1 June
		Approvals:   4,
		Refused:     2,
		Views:       3,
		Exports:     1,
		NoticesSent: 1,
		Entries:     24,
	}
	if got != want {
		t.Fatalf("Summarize(May) =\n%+v\nwant\n%+v", got, want)
	}

	// June, and a period with nothing in it.
	from, to, _ := audit.MonthRange("2026-06")
	june, err := audit.Summarize(t.Context(), transparencyLog(t), from, to)
	if err != nil {
		t.Fatal(err)
	}
	if june.Closed != 1 || june.Views != 1 || june.Rejected != 1 || june.Filed != 1 || june.Entries != 4 {
		t.Fatalf("Summarize(June) = %+v", june)
	}
	from, to, _ = audit.MonthRange("2025-01")
	if s, err := audit.Summarize(t.Context(), transparencyLog(t), from, to); err != nil || s.Entries != 0 {
		t.Fatalf("Summarize(January 2025) = %+v, %v", s, err)
	}
	// An empty log has nothing to report, and that is not an error.
	if s, err := audit.Summarize(t.Context(), &memBackend{}, from, to); err != nil || s.Entries != 0 {
		t.Fatalf("Summarize(empty log) = %+v, %v", s, err)
	}
	// An empty or inverted period is refused.
	if _, err := audit.Summarize(t.Context(), &memBackend{}, to, from); err == nil {
		t.Fatal("Summarize accepted an inverted period")
	}
	if _, err := audit.Summarize(t.Context(), &memBackend{}, from, from); err == nil {
		t.Fatal("Summarize accepted an empty period")
	}
}

// TestSummarizeRefusesTamperedLog changes, deletes and reorders stored
// entries; Summarize must refuse to report each time.
func TestSummarizeRefusesTamperedLog(t *testing.T) {
	from, to, _ := audit.MonthRange("2026-05")
	tampers := map[string]func(es []audit.Entry) []audit.Entry{
		"modified": func(es []audit.Entry) []audit.Entry {
			es[10].Action = audit.ActionClosed // a rejection turned into a closure
			return es
		},
		"deleted": func(es []audit.Entry) []audit.Entry { return slices.Delete(es, 12, 13) },
		"swapped": func(es []audit.Entry) []audit.Entry {
			es[5], es[6] = es[6], es[5]
			return es
		},
		"rehashed without relinking": func(es []audit.Entry) []audit.Entry {
			es[7].Detail = "n=0"
			es[7].Hash = es[7].ComputeHash()
			return es
		},
	}
	for name, tamper := range tampers {
		t.Run(name, func(t *testing.T) {
			m := transparencyLog(t)
			m.mu.Lock()
			m.entries = tamper(m.entries)
			m.mu.Unlock()
			s, err := audit.Summarize(t.Context(), m, from, to)
			if err == nil {
				t.Fatalf("Summarize over a tampered log = %+v, want an error", s)
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v does not carry the VerifyError", err)
			}
			if s != (audit.Transparency{}) {
				t.Fatalf("Summarize returned counts %+v along with its error", s)
			}
			t.Log(err)
		})
	}
}

func TestTransparencyJSON(t *testing.T) {
	s := maySummary(t, transparencyLog(t))
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("secret")) {
		t.Fatalf("JSON holds an order id or pseudonym: %s", b)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"from": "2026-05-01T00:00:00Z", "to": "2026-06-01T00:00:00Z",
		"filed": 4.0, "approved": 2.0, "activated": 2.0, "rejected": 2.0, "deferred": 1.0,
		"expired": 1.0, "revoked": 1.0, "closed": 0.0, "approvals": 4.0, "refused": 2.0,
		"views": 3.0, "exports": 1.0, "notices_sent": 1.0, "entries": 24.0,
	}
	if len(got) != len(want) {
		t.Errorf("JSON has %d keys, want %d: %s", len(got), len(want), b)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("JSON %q = %v, want %v", k, got[k], v)
		}
	}
	var back audit.Transparency
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Fatalf("JSON round trip = %+v, %v; want %+v", back, err, s)
	}
}

func TestTransparencyText(t *testing.T) {
	s := maySummary(t, transparencyLog(t))
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	t.Logf("\n%s", out)
	if strings.Contains(out, "secret") {
		t.Fatal("text report holds an order id or pseudonym")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "sealgate transparency report 2026-05-01 – 2026-05-31" {
		t.Fatalf("title = %q", lines[0])
	}
	if last := lines[len(lines)-1]; !strings.Contains(last, "no names, subjects") || !strings.Contains(last, "content") {
		t.Fatalf("closing line = %q", last)
	}
	// The count lines: label, then the number right-aligned in one column.
	want := map[string]int{
		"orders filed": 4, "orders approved (reached their quorum)": 2, "orders activated": 2,
		"orders rejected": 2, "notices to employees deferred": 1, "orders expired": 1,
		"orders revoked": 1, "orders closed": 0, "approvals given": 4, "refused attempts": 2,
		"views of sealed records": 3, "exports of sealed records": 1,
		"notices sent to employees": 1, "audit entries in the period": 24,
	}
	width := -1
	seen := 0
	for _, line := range lines[1:] {
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(line[i+1:])
		if err != nil {
			continue
		}
		label := strings.TrimSpace(line[:i])
		w, ok := want[label]
		if !ok {
			t.Errorf("unexpected count line %q", line)
			continue
		}
		seen++
		if n != w {
			t.Errorf("%s = %d, want %d", label, n, w)
		}
		if width == -1 {
			width = len(line)
		} else if len(line) != width {
			t.Errorf("line %q is %d bytes wide, others %d: not aligned", line, len(line), width)
		}
	}
	if seen != len(want) {
		t.Fatalf("%d count lines, want %d", seen, len(want))
	}

	// A period that does not end at midnight names the day it ends in.
	odd := audit.Transparency{From: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)}
	buf.Reset()
	if err := odd.WriteText(&buf); err != nil || !strings.HasPrefix(buf.String(), "sealgate transparency report 2026-05-01 – 2026-05-03\n") {
		t.Fatalf("title for a period ending at noon: %q, %v", strings.SplitN(buf.String(), "\n", 2)[0], err)
	}

	// A write error is returned.
	if err := s.WriteText(failWriter{}); err == nil {
		t.Fatal("WriteText ignored a write error")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestMonthRange(t *testing.T) {
	for _, c := range []struct {
		in       string
		from, to time.Time
	}{
		{"2026-05", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"2026-12", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"2028-02", time.Date(2028, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC)},
	} {
		from, to, err := audit.MonthRange(c.in)
		if err != nil || !from.Equal(c.from) || !to.Equal(c.to) || from.Location() != time.UTC || to.Location() != time.UTC {
			t.Errorf("MonthRange(%q) = %v, %v, %v; want %v, %v", c.in, from, to, err, c.from, c.to)
		}
	}
	for _, bad := range []string{
		"2026-13", "2026-1", "x", "", "2026-00", "2026-5 ", " 2026-05", "2026/05", "2026-05-01",
		"26-05", "+026-05", "2026--5", "0000-01", "２０２６-05",
	} {
		from, to, err := audit.MonthRange(bad)
		if err == nil {
			t.Errorf("MonthRange(%q) = %v, %v; want an error", bad, from, to)
			continue
		}
		if !strings.Contains(err.Error(), "YYYY-MM") {
			t.Errorf("MonthRange(%q) error %q does not say what is expected", bad, err)
		}
	}
}
