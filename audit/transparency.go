package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Transparency counts what happened to investigation orders in [From, To),
// for the works council and the data protection officer. It holds counts
// only: no order ids, pseudonyms, names, subjects or content.
//
// Each count is the number of entries with that Action whose Time lies in
// [From, To), except Rejected, which counts distinct orders. An order whose
// life spans several periods is counted in each period for what happened to
// it then (filed in May, activated in June: Filed in May, Activated in June).
type Transparency struct {
	From time.Time `json:"from"` // first instant of the period, UTC
	To   time.Time `json:"to"`   // first instant after the period, UTC

	Filed int `json:"filed"` // ActionOrderFiled entries
	// Approved is the number of orders that reached activation, i.e. got
	// their quorum of approvals. An order is activated exactly when its
	// quorum is reached, so this equals Activated; it is reported under its
	// own name because "approved" is what readers ask about. Approvals counts
	// the individual approval entries instead.
	Approved  int `json:"approved"`
	Activated int `json:"activated"` // ActionActivated entries
	// Rejected counts distinct orders with at least one ActionRejected entry
	// in the period, so a veto plus further rejections of one order count
	// once. (A rejection entry without an order id counts on its own.)
	Rejected int `json:"rejected"`
	Deferred int `json:"deferred"` // ActionDeferred entries (notice to the employee deferred)
	Expired  int `json:"expired"`  // ActionExpired entries
	Revoked  int `json:"revoked"`  // ActionRevoked entries
	Closed   int `json:"closed"`   // ActionClosed entries

	Approvals   int `json:"approvals"`    // ActionApproved entries: individual approvals given
	Refused     int `json:"refused"`      // ActionRefused entries: refused attempts
	Views       int `json:"views"`        // ActionViewed entries
	Exports     int `json:"exports"`      // ActionExported and ActionFileRead entries
	NoticesSent int `json:"notices_sent"` // ActionNoticeSent entries
	Entries     int `json:"entries"`      // audit entries of any action in the period
}

// errStopScan ends an AuditEntries scan early.
var errStopScan = errors.New("stop scan")

// Summarize counts the entries of the log in b whose Time lies in
// [from, to) (see Transparency).
//
// It first verifies the whole chain with Verify and refuses to report on a
// log that fails verification: a report over a tampered log would vouch for
// it. It then counts only the entries Verify read (up to the head it
// verified); entries appended meanwhile are left out. Verify without a
// checkpoint cannot see entries deleted at the very end: check the log
// against the last published checkpoint (Verify with it) for that.
//
// Entries are ordered by Seq, not Time; a period is selected by each entry's
// Time as written, so it is only as exact as the writers' clocks.
func Summarize(ctx context.Context, b Backend, from, to time.Time) (Transparency, error) {
	if !from.Before(to) {
		return Transparency{}, fmt.Errorf("audit transparency: empty period: %s is not before %s",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	rep, err := Verify(ctx, b, nil)
	if err != nil {
		return Transparency{}, fmt.Errorf("audit transparency: refusing to report on a log that fails verification: %w", err)
	}
	t := Transparency{From: from.UTC(), To: to.UTC()}
	if rep.Entries == 0 {
		return t, nil
	}
	head := rep.Head.Seq
	rejected := map[string]bool{}
	err = b.AuditEntries(ctx, 1, func(e Entry) error {
		if e.Seq > head {
			return errStopScan
		}
		if e.Time.Before(from) || !e.Time.Before(to) {
			return nil
		}
		t.Entries++
		switch e.Action {
		case ActionOrderFiled:
			t.Filed++
		case ActionApproved:
			t.Approvals++
		case ActionRejected:
			if e.OrderID == "" {
				t.Rejected++
			} else if !rejected[e.OrderID] {
				rejected[e.OrderID] = true
				t.Rejected++
			}
		case ActionActivated:
			t.Activated++
		case ActionViewed:
			t.Views++
		case ActionExported, ActionFileRead:
			t.Exports++
		case ActionDeferred:
			t.Deferred++
		case ActionRevoked:
			t.Revoked++
		case ActionExpired:
			t.Expired++
		case ActionClosed:
			t.Closed++
		case ActionNoticeSent:
			t.NoticesSent++
		case ActionRefused:
			t.Refused++
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return Transparency{}, fmt.Errorf("audit transparency: %w", err)
	}
	t.Approved = t.Activated
	return t, nil
}

// MonthRange returns the period of a calendar month given as "YYYY-MM"
// (e.g. "2026-05"): the first instant of the month and the first instant of
// the next, in UTC.
func MonthRange(month string) (from, to time.Time, err error) {
	bad := func(why string) (time.Time, time.Time, error) {
		return time.Time{}, time.Time{}, fmt.Errorf("audit: month %q: %s (want YYYY-MM, e.g. 2026-05)", month, why)
	}
	if len(month) != 7 || month[4] != '-' || !digits(month[:4]) || !digits(month[5:]) {
		return bad("not of the form YYYY-MM")
	}
	y, _ := strconv.Atoi(month[:4])
	m, _ := strconv.Atoi(month[5:])
	if y < 1 {
		return bad("year out of range")
	}
	if m < 1 || m > 12 {
		return bad("month out of range 01-12")
	}
	from = time.Date(y, time.Month(m), 1, 0, 0, 0, 0, time.UTC)
	return from, from.AddDate(0, 1, 0), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// WriteText writes t as an aligned plain-text table: a title with the
// period (first and last day, both included, UTC), one line per count, and
// a closing line saying that the report holds no names, subjects or content.
func (t Transparency) WriteText(w io.Writer) error {
	last := t.To
	if t.To.After(t.From) {
		last = t.To.Add(-time.Nanosecond) // the period excludes To
	}
	rows := []struct {
		label string
		n     int
	}{
		{"orders filed", t.Filed},
		{"orders approved (reached their quorum)", t.Approved},
		{"orders activated", t.Activated},
		{"orders rejected", t.Rejected},
		{"notices to employees deferred", t.Deferred},
		{"orders expired", t.Expired},
		{"orders revoked", t.Revoked},
		{"orders closed", t.Closed},
		{"approvals given", t.Approvals},
		{"refused attempts", t.Refused},
		{"views of sealed records", t.Views},
		{"exports of sealed records", t.Exports},
		{"notices sent to employees", t.NoticesSent},
		{"audit entries in the period", t.Entries},
	}
	labelW, numW := 0, 0
	for _, r := range rows {
		labelW = max(labelW, len(r.label))
		numW = max(numW, len(strconv.Itoa(r.n)))
	}
	var b strings.Builder
	title := fmt.Sprintf("sealgate transparency report %s – %s",
		t.From.UTC().Format(time.DateOnly), last.UTC().Format(time.DateOnly))
	b.WriteString(title + "\n")
	b.WriteString(strings.Repeat("=", len([]rune(title))) + "\n\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %*d\n", labelW, r.label, numW, r.n)
	}
	b.WriteString("\nThis report holds counts only: no names, subjects, order ids or content.\n")
	_, err := io.WriteString(w, b.String())
	return err
}
