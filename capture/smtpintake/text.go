package smtpintake

import (
	"regexp"
	"strings"
	"time"
)

var (
	textMsgStart = regexp.MustCompile(`^\* (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (@\S+) (.*)$`)
	textMsgRest  = regexp.MustCompile(`^(?:(@\S+) )?(\S+) (\([^()\s]*\)):(?: (.*))?$`)
)

// parseText reads the text/plain body, the html2text rendering of the 9.11
// templates, when an export has no HTML body. It is the fallback only:
// html2text collapses white space, so line breaks inside a message become
// spaces, and the participants table is flattened into words (read here as
// @username usertype email joined left duration… count). Later exporters'
// user id and post id columns are not read from text.
func parseText(b []byte) (*document, error) {
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	doc := &document{summary: map[string]string{}}

	head := -1 // the "Messages" heading between two dashed lines
	for i := 1; i+1 < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "Messages" && isDashes(lines[i-1]) && isDashes(lines[i+1]) {
			head = i
			break
		}
	}
	if head < 0 {
		return nil, fail("no Messages heading: not a Mattermost compliance export")
	}
	doc.sawList = true

	// Summary lines and the flattened participants table come before the
	// heading.
	table := -1
	for i := 0; i < head-1; i++ {
		l := strings.TrimSpace(lines[i])
		if table < 0 && l == "Username" {
			table = i
			continue
		}
		if table < 0 && strings.HasPrefix(l, "* ") {
			if k, v, ok := strings.Cut(l[2:], ":"); ok {
				doc.summary[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
	}
	if table >= 0 {
		doc.sawTable = true
		words := strings.Fields(strings.Join(lines[table:head-1], " "))
		var rows [][]string
		for _, w := range words {
			if strings.HasPrefix(w, "@") {
				rows = append(rows, nil)
			}
			if len(rows) > 0 {
				rows[len(rows)-1] = append(rows[len(rows)-1], w)
			}
		}
		for i, r := range rows {
			if len(r) < 7 {
				return nil, fail("participant %d: the flattened table row has %d words, want at least 7", i+1, len(r))
			}
			doc.participants = append(doc.participants, map[string]string{
				"username": r[0], "usertype": r[1], "email": r[2], "joined": r[3], "left": r[4],
				"duration": strings.Join(r[5:len(r)-1], " "), "messages": r[len(r)-1],
			})
		}
	}

	// Messages run from after the heading to the "Exported on" line.
	body := lines[head+2:]
	end := len(body)
	for i := len(body) - 1; i >= 0; i-- {
		l := strings.TrimSpace(body[i])
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, "Exported on ") {
			doc.exportedOn = strings.TrimPrefix(l, "Exported on ")
			end = i
		}
		break
	}
	var cur map[string]string
	var text []string
	flush := func() {
		if cur == nil {
			return
		}
		for len(text) > 0 && strings.TrimSpace(text[len(text)-1]) == "" {
			text = text[:len(text)-1]
		}
		cur["message"] = strings.Join(text, "\n")
		doc.messages = append(doc.messages, cur)
		cur, text = nil, nil
	}
	for i, l := range body[:end] {
		if m := textMsgStart.FindStringSubmatch(l); m != nil {
			if _, err := time.Parse(time.RFC3339, m[1]); err == nil {
				flush()
				r := textMsgRest.FindStringSubmatch(m[3])
				if r == nil {
					return nil, fail("message %d: the text line does not read as [@postusername] usertype (email): message", len(doc.messages)+1)
				}
				cur = map[string]string{"sent_time": m[1], "username": m[2], "postusername": r[1], "usertype": r[2], "email": r[3] + ":"}
				text = []string{r[4]}
				continue
			}
		}
		if cur == nil {
			if strings.TrimSpace(l) != "" {
				return nil, fail("line %d after the Messages heading is not a message", i+1)
			}
			continue
		}
		text = append(text, l)
	}
	flush()
	return doc, nil
}

func isDashes(s string) bool {
	s = strings.TrimSpace(s)
	return s != "" && strings.Trim(s, "-") == ""
}
