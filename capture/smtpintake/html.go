package smtpintake

import (
	"bytes"
	"io"
	"strings"

	"golang.org/x/net/html"
)

// document is the body of an export, before validation: the summary
// fields, the participants table and the message lines, each as
// field name → text (the class names of the Mattermost templates).
type document struct {
	summary      map[string]string // lower-cased label without ':' → value
	participants []map[string]string
	messages     []map[string]string
	exportedOn   string
	sawTable     bool
	sawList      bool
}

// Limits on one HTML body (far above anything Mattermost writes).
const (
	maxFieldBytes = 1 << 20 // one field; a Mattermost message is at most 64 KiB
)

// parseHTML reads the text/html body rendered from Mattermost's
// globalrelay_compliance_export templates: a summary list
// (div.summary-list), a table.participants with one td per field (class
// names username, usertype, email, joined, left, duration, messages and,
// in later exporters, userid) and a div.message-list of li.message with
// one span per field (sent_time, username, postusername, usertype, email,
// message, previews_post and, later, post_id, userid, update_type,
// update_time, edited_new_msg_id). Field text is unescaped; everything else
// (style, headings, markup between fields) is ignored.
func parseHTML(b []byte) (*document, error) {
	doc := &document{summary: map[string]string{}}
	z := html.NewTokenizer(bytes.NewReader(b))
	z.SetMaxBuf(0)

	var (
		inTable   bool
		row       map[string]string
		msg       map[string]string
		inSummary bool
		summaryLi bool
		label     *strings.Builder
		value     *strings.Builder

		// the field being captured: its element, its class, its text
		capTag   string
		capClass string
		capDepth int
		capBuf   strings.Builder
		capTo    map[string]string
		capIndex int
		inP      bool
		pBuf     strings.Builder
	)
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if z.Err() == io.EOF {
				if !doc.sawTable && !doc.sawList {
					return nil, fail("no participants table and no message list: not a Mattermost compliance export")
				}
				return doc, nil
			}
			return nil, failWrap(z.Err(), "the HTML cannot be tokenised")

		case html.StartTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			cls := ""
			if hasAttr {
				cls = classAttr(z)
			}
			if capTag != "" {
				if tag == capTag && tt == html.StartTagToken {
					capDepth++
				}
				continue
			}
			switch tag {
			case "table":
				if hasClass(cls, "participants") {
					inTable, doc.sawTable = true, true
				}
			case "tr":
				if inTable {
					row = map[string]string{}
				}
			case "td":
				if row != nil && firstClass(cls) != "" && tt == html.StartTagToken {
					capTag, capClass, capDepth, capTo, capIndex = "td", firstClass(cls), 1, row, len(doc.participants)+1
					capBuf.Reset()
				}
			case "div":
				if hasClass(cls, "summary-list") {
					inSummary = true
				}
				if hasClass(cls, "message-list") {
					doc.sawList = true
				}
			case "li":
				switch {
				case hasClass(cls, "message"):
					msg = map[string]string{}
				case inSummary:
					summaryLi, label, value = true, &strings.Builder{}, &strings.Builder{}
				}
			case "span":
				switch {
				case msg != nil && firstClass(cls) != "" && tt == html.StartTagToken:
					capTag, capClass, capDepth, capTo, capIndex = "span", firstClass(cls), 1, msg, len(doc.messages)+1
					capBuf.Reset()
				case summaryLi && hasClass(cls, "bold") && tt == html.StartTagToken:
					capTag, capClass, capDepth, capTo = "span", "bold", 1, nil
					capBuf.Reset()
				}
			case "p":
				inP = true
				pBuf.Reset()
			}

		case html.EndTagToken:
			name, _ := z.TagName()
			tag := string(name)
			if capTag != "" {
				if tag != capTag {
					continue
				}
				if capDepth--; capDepth > 0 {
					continue
				}
				text := capBuf.String()
				switch {
				case capTo == nil: // a summary label
					label.WriteString(text)
				default:
					if _, dup := capTo[capClass]; dup {
						what := "message"
						if capTag == "td" {
							what = "participant"
						}
						return nil, fail("%s %d has two %s fields", what, capIndex, fieldName(capClass))
					}
					capTo[capClass] = text
				}
				capTag = ""
				continue
			}
			switch tag {
			case "tr":
				if row != nil && len(row) > 0 {
					doc.participants = append(doc.participants, row)
				}
				row = nil
			case "table":
				inTable, row = false, nil
			case "li":
				switch {
				case msg != nil:
					doc.messages = append(doc.messages, msg)
					msg = nil
				case summaryLi:
					k := strings.ToLower(strings.TrimRight(cleanSpace(label.String()), ":"))
					doc.summary[k] = cleanSpace(value.String())
					summaryLi = false
				}
			case "div":
				inSummary = false
			case "p":
				if inP {
					if t := cleanSpace(pBuf.String()); strings.HasPrefix(t, "Exported on ") {
						doc.exportedOn = strings.TrimPrefix(t, "Exported on ")
					}
				}
				inP = false
			}

		case html.TextToken:
			t := z.Text()
			switch {
			case capTag != "":
				if capBuf.Len()+len(t) > maxFieldBytes {
					return nil, fail("a field is longer than %d bytes", maxFieldBytes)
				}
				capBuf.Write(t)
			case summaryLi:
				if value.Len()+len(t) <= maxFieldBytes {
					value.Write(t)
				}
			case inP:
				if pBuf.Len()+len(t) <= maxFieldBytes {
					pBuf.Write(t)
				}
			}
		}
	}
}

// classAttr returns the value of the class attribute of the current tag.
func classAttr(z *html.Tokenizer) string {
	for {
		k, v, more := z.TagAttr()
		if string(k) == "class" {
			return string(v)
		}
		if !more {
			return ""
		}
	}
}

func firstClass(cls string) string {
	if f := strings.Fields(cls); len(f) > 0 {
		return f[0]
	}
	return ""
}

func hasClass(cls, want string) bool {
	for _, c := range strings.Fields(cls) {
		if c == want {
			return true
		}
	}
	return false
}

// cleanSpace trims a summary text: spaces and no-break spaces (&nbsp;) at
// both ends, inner runs of white space collapsed to one space.
func cleanSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0'
	}), " ")
}
