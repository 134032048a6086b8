package aggregates

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sealgate/sealgate/redact"
)

// WriteTable writes t as an aligned text table, for a terminal: one line
// per cell, teams and channel types named in words, "suppressed" for a
// withheld cell, "≥" before a user count that is a lower bound, and a
// legend of the marks it used.
func WriteTable(w io.Writer, t redact.Table) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "aggregates by %s, k = %d: %d cell(s)\n", t.By, t.K, len(t.Rows))
	if len(t.Rows) == 0 {
		fmt.Fprintln(bw, "no aggregates in this range (no day released yet, or nothing captured)")
		return bw.Flush()
	}
	header := []string{"START", "TEAM", "TYPE", "MESSAGES", "EDITS", "DELETES", "BYTES", "FILES", "REACTIONS", "USERS", ""}
	const firstNumeric, notes = 3, 10
	layout := "2006-01-02 15:04"
	if t.By == redact.Day {
		layout = "2006-01-02"
	}
	lines := make([][]string, 0, len(t.Rows))
	var anySupp, anyAtLeast, anyPartial bool
	for i := range t.Rows {
		r := &t.Rows[i]
		l := []string{r.Start.UTC().Format(layout), TeamName(r.Team), TypeName(r.ChannelType)}
		if r.Suppressed {
			anySupp = true
			l = append(l, "suppressed", "", "", "", "", "", "")
		} else {
			n := &r.Counts
			for _, x := range [...]int64{n.Messages, n.Edits, n.Deletes, n.Bytes, n.Files, n.Reactions} {
				l = append(l, strconv.FormatInt(x, 10))
			}
			users := strconv.FormatInt(n.Users, 10)
			if r.UsersAtLeast {
				anyAtLeast = true
				users = "≥" + users
			}
			l = append(l, users)
		}
		note := ""
		if r.Partial {
			anyPartial = true
			note = "partial"
		}
		lines = append(lines, append(l, note))
	}
	width := make([]int, len(header))
	for _, l := range append([][]string{header}, lines...) {
		for c, s := range l {
			width[c] = max(width[c], utf8.RuneCountInString(s))
		}
	}
	writeLine := func(l []string) {
		var sb strings.Builder
		for c, s := range l {
			if c > 0 {
				sb.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[c]-utf8.RuneCountInString(s))
			switch {
			case c == notes:
				sb.WriteString(s)
			case c >= firstNumeric && s != "suppressed":
				sb.WriteString(pad + s)
			default:
				sb.WriteString(s + pad)
			}
		}
		bw.WriteString(strings.TrimRight(sb.String(), " ") + "\n")
	}
	writeLine(header)
	for _, l := range lines {
		writeLine(l)
	}
	if anySupp {
		fmt.Fprintf(bw, "suppressed: a cell of fewer than %d people, or one that would let such a cell be computed\n", t.K)
	}
	if anyAtLeast {
		fmt.Fprintln(bw, "≥: the cell merges cells released apart; its user count is a lower bound")
	}
	if anyPartial {
		fmt.Fprintln(bw, "partial: the gateway restarted that day; the figures may fall short")
	}
	return bw.Flush()
}
