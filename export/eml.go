package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

const emlAddress = "sealgate <noreply@sealgate.invalid>"

// lineBreaks turns every sequence a mail reader may show as a line break
// into "\n", so that each displayed line of a message text gets the "  |"
// prefix.
var lineBreaks = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\v", "\n", "\f", "\n", "\u0085", "\n", "\u2028", "\n", "\u2029", "\n")

func renderEML(h Header, msgs []Message) ([]byte, error) {
	text, err := emlText(h, msgs)
	if err != nil {
		return nil, err
	}
	js, err := renderJSON(h, msgs)
	if err != nil {
		return nil, err
	}
	attachment := base64Lines(js)
	boundary, err := emlBoundary(h.ExportID, text, attachment)
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	// Header values are validated tokens or fixed text (see validateHeader),
	// so none of them can break a header line.
	hdr := func(k, v string) { buf.WriteString(k + ": " + v + "\r\n") }
	hdr("From", emlAddress)
	hdr("To", emlAddress)
	hdr("Subject", fmt.Sprintf("sealgate export %s (%d messages)", h.OrderID, len(msgs)))
	hdr("Date", h.ExportedAt.UTC().Format(time.RFC1123Z))
	hdr("Message-ID", "<"+h.ExportID+"@sealgate.invalid>")
	hdr("MIME-Version", "1.0")
	hdr("X-Sealgate-Order", h.OrderID)
	hdr("X-Sealgate-Export", h.ExportID)
	hdr("X-Sealgate-Requester", h.Requester)
	hdr("Content-Type", mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}))
	buf.WriteString("\r\n")

	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, err
	}
	pw, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
		"Content-Disposition":       {"inline"},
	})
	if err != nil {
		return nil, err
	}
	if _, err := pw.Write(text); err != nil {
		return nil, err
	}
	name := h.OrderID + ".json"
	pw, err = mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {mime.FormatMediaType("application/json", map[string]string{"name": name})},
		"Content-Transfer-Encoding": {"base64"},
		"Content-Disposition":       {mime.FormatMediaType("attachment", map[string]string{"filename": name})},
	})
	if err != nil {
		return nil, err
	}
	if _, err := pw.Write(attachment); err != nil {
		return nil, err
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// emlBoundary derives the MIME boundary from the export id, so the same
// export always gives the same bytes. Should the encoded parts contain the
// candidate (only quoted-printable text can, base64 has no '-'), the next
// candidate is taken; the choice stays deterministic.
func emlBoundary(exportID string, parts ...[]byte) (string, error) {
	for i := 0; i < 1000; i++ {
		sum := sha256.Sum256([]byte("sealgate eml boundary\x00" + exportID + "\x00" + strconv.Itoa(i)))
		b := "sealgate-" + hex.EncodeToString(sum[:12])
		clash := false
		for _, p := range parts {
			if bytes.Contains(p, []byte(b)) {
				clash = true
				break
			}
		}
		if !clash {
			return b, nil
		}
	}
	return "", errors.New("export: no MIME boundary found that the content does not contain")
}

// emlText is the quoted-printable body of the text/plain part: the
// watermark, the export header, each message as a block, and the watermark
// again. Single-line values have control characters replaced; message text
// lines are indented under "  |" so that text cannot pose as a block
// heading.
func emlText(h Header, msgs []Message) ([]byte, error) {
	var t strings.Builder
	wm := Watermark(h)
	line := func(format string, args ...any) { fmt.Fprintf(&t, format+"\n", args...) }
	line("%s", wm)
	line("")
	line("Investigation order: %s", h.OrderID)
	line("Export:              %s", h.ExportID)
	line("Requester:           %s", h.Requester)
	line("Subject (employee):  %s", h.Subject)
	line("Window:              %s", windowText(h))
	line("Exported at:         %s", h.ExportedAt.UTC().Format(time.RFC3339))
	line("Purpose:             %s", h.Purpose)
	line("Messages:            %d", len(msgs))
	if len(msgs) == 0 {
		line("")
		line("No messages were released under this order.")
	}
	mark := messageMark(h)
	for i, m := range msgs {
		line("")
		line("----- Message %d of %d [%s] -----", i+1, len(msgs), mark)
		line("Time:     %s", utcTime(m.Time))
		line("Kind:     %s (version %d)", oneLine(m.Kind), m.Version)
		line("Post:     %s", oneLine(m.PostID))
		if m.OriginalID != "" {
			line("Original: %s (this is an old version of that post)", oneLine(m.OriginalID))
		}
		line("Channel:  %s", oneLine(m.ChannelID))
		if m.RootID != "" {
			line("Thread:   %s", oneLine(m.RootID))
		}
		for _, f := range m.Files {
			line("File:     %s (%s, %d bytes, id %s, sha256 %s)", oneLine(f.Name), oneLine(f.MIMEType), f.Size, oneLine(f.ID), oneLine(f.SHA256))
			if f.ContentSealed {
				line("          content held sealed: sealgate unseal %s --file %s", oneLine(h.OrderID), oneLine(f.ID))
			}
		}
		if m.Text == "" {
			line("Text:     (no text)")
			continue
		}
		line("Text:")
		for _, l := range strings.Split(lineBreaks.Replace(m.Text), "\n") {
			if l == "" {
				line("  |")
			} else {
				line("  | %s", l)
			}
		}
	}
	line("")
	line("%s", wm)

	var buf bytes.Buffer
	qw := quotedprintable.NewWriter(&buf)
	if _, err := qw.Write([]byte(t.String())); err != nil {
		return nil, err
	}
	if err := qw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// base64Lines encodes b in standard base64, 76 characters a line, lines
// separated by CRLF.
func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var buf bytes.Buffer
	for len(enc) > 76 {
		buf.WriteString(enc[:76])
		buf.WriteString("\r\n")
		enc = enc[76:]
	}
	buf.WriteString(enc)
	return buf.Bytes()
}

// windowText is the order's window for the text part.
func windowText(h Header) string {
	from, to := h.WindowFrom, h.WindowTo
	if from == "" && to == "" {
		return "(not given)"
	}
	if from == "" {
		from = "(open)"
	}
	if to == "" {
		to = "(open)"
	}
	return from + " to " + to
}
