package smtpintake

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"unicode/utf8"
)

const (
	maxDepth = 4      // multipart nesting: mixed > alternative is 2
	maxParts = 100000 // MIME parts in one message
)

// ParseEML decodes one Mattermost Global Relay export e-mail and maps it to
// ingest events (see the package doc). Attachments are streamed: their
// content is hashed and counted, not kept. The error names the problem and
// never quotes content.
func ParseEML(r io.Reader) (*Export, error) {
	msg, err := mail.ReadMessage(bufio.NewReader(r))
	if err != nil {
		return nil, failWrap(err, "the message header is malformed")
	}
	h := msg.Header
	x := &Export{
		ChannelID:   decodeWord(h.Get("X-Mattermost-ChannelID")),
		ChannelName: decodeWord(h.Get("X-Mattermost-ChannelName")),
		ChannelType: decodeWord(h.Get("X-Mattermost-ChannelType")),
	}
	msgType := decodeWord(h.Get("X-GlobalRelay-MsgType"))
	subject := decodeWord(h.Get("Subject"))
	if !strings.EqualFold(msgType, "Mattermost") && !strings.HasPrefix(subject, "Mattermost Compliance Export") {
		return nil, fail("not a Mattermost Global Relay export: no X-GlobalRelay-MsgType: Mattermost header and no compliance export subject")
	}

	p := &mimeWalk{x: x}
	ct := h.Get("Content-Type")
	if ct == "" {
		return nil, fail("the message has no Content-Type: a Global Relay export is multipart")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, failWrap(err, "the message Content-Type is malformed")
	}
	if !strings.HasPrefix(mt, "multipart/") {
		return nil, fail("the message is not multipart: a Global Relay export is multipart/mixed")
	}
	if err := p.walk(msg.Body, mt, params, 0); err != nil {
		return nil, err
	}

	var doc *document
	switch {
	case p.html != nil:
		doc, err = parseHTML(p.html)
		if err != nil {
			return nil, failWrap(err, "text/html part")
		}
	case p.text != nil:
		doc, err = parseText(p.text)
		if err != nil {
			return nil, failWrap(err, "text/plain part")
		}
	default:
		return nil, fail("the message has no text/html or text/plain body")
	}
	if err := x.build(doc); err != nil {
		return nil, err
	}
	return x, nil
}

// mimeWalk collects the bodies and attachments of one message.
type mimeWalk struct {
	x          *Export
	html, text []byte
	parts      int
}

func (p *mimeWalk) walk(body io.Reader, mt string, params map[string]string, depth int) error {
	if depth >= maxDepth {
		return fail("MIME parts are nested more than %d deep", maxDepth)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return fail("a multipart part has no boundary")
	}
	mr := multipart.NewReader(body, boundary)
	for {
		// NextRawPart: transfer encodings are decoded below, the same way
		// for every part.
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return failWrap(err, "MIME part %d is malformed", p.parts+1)
		}
		p.parts++
		if p.parts > maxParts {
			return fail("the message has more than %d MIME parts", maxParts)
		}
		if err := p.part(part, depth); err != nil {
			return err
		}
	}
}

func (p *mimeWalk) part(part *multipart.Part, depth int) error {
	n := p.parts
	h := part.Header
	mt, params := "text/plain", map[string]string{}
	if ct := h.Get("Content-Type"); ct != "" {
		var err error
		mt, params, err = mime.ParseMediaType(ct)
		if err != nil {
			return failWrap(err, "MIME part %d: Content-Type is malformed", n)
		}
	}
	disp, dparams := "", map[string]string{}
	if cd := h.Get("Content-Disposition"); cd != "" {
		var err error
		disp, dparams, err = mime.ParseMediaType(cd)
		if err != nil {
			// A bad disposition only loses the file name; the part is
			// still an attachment.
			disp, dparams = "attachment", map[string]string{}
		}
	}
	if strings.HasPrefix(mt, "multipart/") {
		return p.walk(part, mt, params, depth+1)
	}
	content, err := decodeTransfer(part, h)
	if err != nil {
		return failWrap(err, "MIME part %d", n)
	}
	if disp != "attachment" && (mt == "text/html" || mt == "text/plain") {
		cs := strings.ToLower(params["charset"])
		if cs != "" && cs != "utf-8" && cs != "us-ascii" && cs != "utf8" {
			return fail("MIME part %d: the charset is not supported (Mattermost writes UTF-8)", n)
		}
		b, err := io.ReadAll(content)
		if err != nil {
			return failWrap(err, "MIME part %d: the body cannot be read", n)
		}
		if !utf8.Valid(b) {
			return fail("MIME part %d: the %s body is not valid UTF-8", n, mt)
		}
		dst := &p.html
		if mt == "text/plain" {
			dst = &p.text
		}
		if *dst != nil {
			return fail("MIME part %d: a second %s body", n, mt)
		}
		*dst = b
		return nil
	}
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	a := Attachment{Name: decodeWord(name), ContentType: mediaType(mt, params)}
	sum := sha256.New()
	size, err := io.Copy(sum, content)
	if err != nil {
		return failWrap(err, "MIME part %d: the attachment cannot be read", n)
	}
	a.Size, a.SHA256 = size, hex.EncodeToString(sum.Sum(nil))
	p.x.Attachments = append(p.x.Attachments, a)
	return nil
}

// decodeTransfer undoes the part's Content-Transfer-Encoding.
func decodeTransfer(r io.Reader, h textproto.MIMEHeader) (io.Reader, error) {
	switch cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))); cte {
	case "", "7bit", "8bit", "binary":
		return r, nil
	case "quoted-printable":
		return quotedprintable.NewReader(r), nil
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r), nil
	default:
		return nil, fail("the Content-Transfer-Encoding is not supported (want 7bit, 8bit, binary, quoted-printable or base64)")
	}
}

var wordDecoder = &mime.WordDecoder{}

// decodeWord decodes RFC 2047 encoded words (the later exporter encodes
// the subject and the X-Mattermost headers that way); on error the raw
// value is kept.
func decodeWord(s string) string {
	d, err := wordDecoder.DecodeHeader(s)
	if err != nil {
		return strings.TrimSpace(s)
	}
	return strings.TrimSpace(d)
}

// fieldName returns a template class name for an error message, or a
// placeholder if it is not one: errors never carry content.
func fieldName(s string) string {
	if len(s) == 0 || len(s) > 24 {
		return "(unnamed)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return "(unnamed)"
		}
	}
	return s
}
