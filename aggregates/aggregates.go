// Package aggregates publishes the k-anonymous activity aggregates that the
// gateway keeps (package redact) from the store: as a query, an HTTP
// endpoint, a text table, CSV or JSON, and a chart.
//
// Everything here reads stored buckets and goes through redact.Publish, so
// every publication is a view of the protected day tables: it shows counts
// of groups of at least k people and marks the cells that were withheld,
// never a figure about fewer than k people. A publication with a larger k
// than the one the days were released with is protected again at that k.
//
//	GET /v1/aggregates?from=YYYY-MM-DD&to=YYYY-MM-DD&by=hour|day&format=json|csv
//
// from and to are UTC days, both included, at most MaxDays apart; by
// defaults to day and format to json. Errors are JSON {"error", "code"}: 400
// for bad parameters, 401 or 403 from the authorization function, 500 when
// the store fails.
package aggregates

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sealgate/sealgate/redact"
)

// Reader reads stored buckets: every bucket, of any span, with fromHour <=
// Hour <= toHour (hours since the Unix epoch, UTC). store.Aggregates
// implements it.
type Reader interface {
	Buckets(ctx context.Context, fromHour, toHour int64) ([]redact.Bucket, error)
}

// MaxDays is the longest range ParseQuery accepts, in days.
const MaxDays = 366

// DayFormat is how days are written in queries: YYYY-MM-DD, UTC.
const DayFormat = "2006-01-02"

// ErrBadQuery is wrapped by the errors of ParseQuery.
var ErrBadQuery = errors.New("bad query")

// Query publishes the stored buckets for q at threshold k (redact.Publish):
// it reads the whole UTC days that q touches, since a day is protected as
// one table, and returns the rows whose start is in [q.From, q.To).
func Query(ctx context.Context, r Reader, q redact.Query, k int) (redact.Table, error) {
	if q.By != redact.Hour && q.By != redact.Day {
		return redact.Table{}, fmt.Errorf("aggregates: granularity %v, want hour or day", q.By)
	}
	if !q.To.After(q.From) {
		return redact.Table{}, errors.New("aggregates: the query ends before it starts")
	}
	// Rows are hours starting in [From, To), as in redact.Publish.
	fromH := floorDiv(q.From.Unix()+3599, 3600)
	toH := floorDiv(q.To.Unix()+3599, 3600)
	var buckets []redact.Bucket
	if toH > fromH {
		firstDay, lastDay := floorDiv(fromH, 24), floorDiv(toH-1, 24)
		var err error
		buckets, err = r.Buckets(ctx, firstDay*24, lastDay*24+23)
		if err != nil {
			return redact.Table{}, fmt.Errorf("aggregates: %w", err)
		}
	}
	t, err := redact.Publish(buckets, q, k)
	if err != nil {
		return redact.Table{}, fmt.Errorf("aggregates: %w", err)
	}
	return t, nil
}

// ParseQuery builds the query of the UTC days from to to (YYYY-MM-DD, both
// included, at most MaxDays) by "hour" or "day" ("" is day). Its errors
// wrap ErrBadQuery and are fit to show to the caller.
func ParseQuery(from, to, by string) (redact.Query, error) {
	bad := func(format string, args ...any) (redact.Query, error) {
		return redact.Query{}, fmt.Errorf("%w: %s", ErrBadQuery, fmt.Sprintf(format, args...))
	}
	var q redact.Query
	switch by {
	case "", "day":
		q.By = redact.Day
	case "hour":
		q.By = redact.Hour
	default:
		return bad("by must be hour or day, not %q", by)
	}
	if from == "" || to == "" {
		return bad("from and to are required (YYYY-MM-DD, UTC, both included)")
	}
	f, err := time.Parse(DayFormat, from)
	if err != nil {
		return bad("from must be a day YYYY-MM-DD, not %q", from)
	}
	l, err := time.Parse(DayFormat, to)
	if err != nil {
		return bad("to must be a day YYYY-MM-DD, not %q", to)
	}
	if l.Before(f) {
		return bad("to (%s) is before from (%s)", to, from)
	}
	if days := int(l.Sub(f)/(24*time.Hour)) + 1; days > MaxDays {
		return bad("the range has %d days, at most %d are allowed", days, MaxDays)
	}
	q.From, q.To = f, l.AddDate(0, 0, 1)
	return q, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// TeamName is how the text table and the chart name a row's team.
func TeamName(team string) string {
	switch team {
	case redact.AllTeams:
		return "all teams"
	case redact.OtherTeams:
		return "other teams"
	case redact.UnknownTeam:
		return "no team"
	}
	return printable(team)
}

// TypeName is how the text table names a channel type.
func TypeName(ct byte) string {
	switch ct {
	case redact.AllTypes:
		return "all"
	case 'O':
		return "public"
	case 'P':
		return "private"
	case 'D':
		return "direct"
	case 'G':
		return "group"
	case redact.UnknownType:
		return "other"
	}
	return fmt.Sprintf("%q", ct)
}

// printable returns s, or its quoted form when it holds anything but
// printable characters (a team id comes from the capture path: it must not
// drive a terminal).
func printable(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
