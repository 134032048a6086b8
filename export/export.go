// Package export renders the messages released under one investigation
// order for `sealgate unseal ORDER --format html|json|eml`.
//
// There are three formats. JSON is one indented document: the export header
// (order, export, requester, subject, window, purpose, count) and the
// messages in the order given, each with its own short watermark
// "<order id>/<export id>". HTML is one self-contained UTF-8 page with a
// table of the messages. EML is one RFC 5322 message (CRLF line endings)
// whose quoted-printable text/plain part lists the messages and whose
// application/json attachment is byte for byte the JSON export.
//
// Every export is watermarked with the order id, the export id, the
// requester and the export time (see [Watermark]), so that a copy that
// leaks can be traced to the release it came from. The watermark is the
// first field of the JSON document and is repeated, shortened, in every
// message; in HTML it is in a banner at the top, in the footer and repeated
// as faint text laid over the whole page (CSS only, also when printed); in
// EML it opens and closes the text part and the order, export and requester
// are also mail headers (X-Sealgate-Order, X-Sealgate-Export,
// X-Sealgate-Requester).
//
// Every string is escaped for where it lands: JSON strings by encoding/json
// (which also escapes <, > and &), HTML by html/template, the EML text by
// quoted-printable with message text indented under a "  |" prefix so that
// it cannot imitate the export's own structure, and the attachment by
// base64. Header fields go into mail headers and file names, so [Write]
// refuses any that contain CR, LF or another control character (header
// injection) and requires the id fields to be plain tokens. Invalid UTF-8
// in messages is replaced by U+FFFD in all formats alike.
//
// Nothing is fetched from the network: the HTML page has no scripts, no
// remote images, fonts or style sheets, and a Content-Security-Policy of
// "default-src 'none'; style-src 'unsafe-inline'" so that a browser would
// not load anything even if something slipped through.
//
// Output is deterministic: the same header and messages always give the
// same bytes. Times are written in UTC and the MIME boundary of an EML
// export is derived from the export id. Co-participants are pseudonymised
// by the caller; this package only renders what it is given.
package export

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format is an export format.
type Format string

// The export formats.
const (
	JSON Format = "json"
	HTML Format = "html"
	EML  Format = "eml"
)

// ParseFormat returns the format named s ("html", "json" or "eml"; case and
// surrounding spaces are ignored).
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case JSON, HTML, EML:
		return f, nil
	}
	return "", fmt.Errorf("export: unknown format %q: want html, json or eml", s)
}

// Header describes one export: the order it was released under, who asked
// for it and when.
type Header struct {
	OrderID              string // "ord_" + 26 base32 chars
	ExportID             string // unique per export, e.g. "exp_..."; caller supplies
	Requester            string // Mattermost user id of the requester (the watermark names them)
	Subject              string // the one employee's Mattermost user id
	WindowFrom, WindowTo string // "YYYY-MM-DD"
	ExportedAt           time.Time
	Purpose              string
}

// Message is one released record.
type Message struct {
	PostID     string
	Kind       string // "posted", "updated", "deleted", "file"
	Version    int64
	Time       time.Time // authenticated event time
	ChannelID  string
	RootID     string // thread root, optional
	OriginalID string // for an edit's old version, the live post's id; optional
	Text       string // message text (already pseudonymised); empty for tombstones
	Files      []File
}

// File is a file attached to a message.
type File struct {
	ID, Name, MIMEType string
	Size               int64
	SHA256             string
	// ContentSealed says sealgate holds the file's bytes (sealed): the
	// requester can download them (`sealgate unseal ORDER --file ID`).
	ContentSealed bool
}

// Watermark returns the one-line watermark of an export:
//
//	Unsealed under investigation order <id> for requester <id>, export <id>, <RFC3339 time>. Confidential: do not copy or forward.
//
// The time is ExportedAt in UTC. Control characters in the fields are
// replaced by U+FFFD so that the result is always one line ([Write] refuses
// such headers anyway).
func Watermark(h Header) string {
	return "Unsealed under investigation order " + oneLine(h.OrderID) +
		" for requester " + oneLine(h.Requester) +
		", export " + oneLine(h.ExportID) +
		", " + h.ExportedAt.UTC().Format(time.RFC3339) +
		". Confidential: do not copy or forward."
}

// Write renders the messages in format f, watermarked with h, and writes
// them to w in one Write call. It returns an error, and writes nothing, for
// an unknown format or an invalid header: OrderID, ExportID, Requester and
// Subject must be non-empty tokens of letters, digits, '.', '_' and '-'
// (at most 100 bytes); no header string may contain CR, LF or another
// control character; WindowFrom and WindowTo, when set, must be YYYY-MM-DD
// dates in order; ExportedAt must be set. Errors name the field, never its
// value.
func Write(w io.Writer, f Format, h Header, msgs []Message) error {
	switch f {
	case JSON, HTML, EML:
	default:
		return fmt.Errorf("export: unknown format %q: want html, json or eml", string(f))
	}
	if err := validateHeader(h); err != nil {
		return err
	}
	msgs = sanitize(msgs)
	var (
		out []byte
		err error
	)
	switch f {
	case JSON:
		out, err = renderJSON(h, msgs)
	case HTML:
		out, err = renderHTML(h, msgs)
	case EML:
		out, err = renderEML(h, msgs)
	}
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// maxIDLen bounds the id fields so that every mail header line stays far
// below RFC 5322's 998 characters.
const maxIDLen = 100

func validateHeader(h Header) error {
	fields := []struct {
		name, value string
		id          bool
	}{
		{"OrderID", h.OrderID, true},
		{"ExportID", h.ExportID, true},
		{"Requester", h.Requester, true},
		{"Subject", h.Subject, true},
		{"WindowFrom", h.WindowFrom, false},
		{"WindowTo", h.WindowTo, false},
		{"Purpose", h.Purpose, false},
	}
	for _, f := range fields {
		if f.id && f.value == "" {
			return fmt.Errorf("export: header %s is empty", f.name)
		}
		if err := checkLine(f.value); err != nil {
			return fmt.Errorf("export: header %s %w", f.name, err)
		}
		if f.id && !isToken(f.value) {
			return fmt.Errorf("export: header %s must be at most %d letters, digits, '.', '_' or '-'", f.name, maxIDLen)
		}
	}
	for _, d := range []struct{ name, value string }{{"WindowFrom", h.WindowFrom}, {"WindowTo", h.WindowTo}} {
		if d.value == "" {
			continue
		}
		if t, err := time.Parse(time.DateOnly, d.value); err != nil || t.Format(time.DateOnly) != d.value {
			return fmt.Errorf("export: header %s is not a YYYY-MM-DD date", d.name)
		}
	}
	if h.WindowFrom != "" && h.WindowTo != "" && h.WindowFrom > h.WindowTo {
		return errors.New("export: header WindowFrom is after WindowTo")
	}
	if h.ExportedAt.IsZero() {
		return errors.New("export: header ExportedAt is not set")
	}
	return nil
}

// checkLine refuses invalid UTF-8 and control characters; the error reads
// after the field name.
func checkLine(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if strings.ContainsAny(s, "\r\n") {
		return errors.New("contains CR or LF")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return errors.New("contains a control character")
	}
	return nil
}

func isToken(s string) bool {
	if len(s) == 0 || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// oneLine replaces invalid UTF-8 and control characters (CR, LF, tab, ...)
// by U+FFFD, for values that must stay on one line.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if !strings.ContainsFunc(s, unicode.IsControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// sanitize returns a copy of msgs with invalid UTF-8 replaced by U+FFFD in
// every string, so that all formats render the same text. The caller's
// slices are not modified.
func sanitize(msgs []Message) []Message {
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		m.PostID = strings.ToValidUTF8(m.PostID, "\uFFFD")
		m.Kind = strings.ToValidUTF8(m.Kind, "\uFFFD")
		m.ChannelID = strings.ToValidUTF8(m.ChannelID, "\uFFFD")
		m.RootID = strings.ToValidUTF8(m.RootID, "\uFFFD")
		m.OriginalID = strings.ToValidUTF8(m.OriginalID, "\uFFFD")
		m.Text = strings.ToValidUTF8(m.Text, "\uFFFD")
		files := make([]File, len(m.Files))
		for j, f := range m.Files {
			f.ID = strings.ToValidUTF8(f.ID, "\uFFFD")
			f.Name = strings.ToValidUTF8(f.Name, "\uFFFD")
			f.MIMEType = strings.ToValidUTF8(f.MIMEType, "\uFFFD")
			f.SHA256 = strings.ToValidUTF8(f.SHA256, "\uFFFD")
			files[j] = f
		}
		m.Files = files
		out[i] = m
	}
	return out
}

// utcTime formats an event time for every format: RFC 3339 with
// nanoseconds, in UTC.
func utcTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// messageMark is the short watermark carried by each message.
func messageMark(h Header) string { return h.OrderID + "/" + h.ExportID }
