package export_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"html/template"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sealgate/sealgate/export"
)

var update = flag.Bool("update", false, "rewrite export/testdata golden files")

func testHeader() export.Header {
	return export.Header{
		OrderID:    "ord_abcdefghijklmnopqrstuvwxyz",
		ExportID:   "exp_01hzx3k9q7m2v5b8n4c6d1f0ty",
		Requester:  "r8ahsn3kwbgjmx5tqe7kzfy4pc",
		Subject:    "u4m9q2w7e3r8t1y6u5i0o9p2as",
		WindowFrom: "2026-03-01",
		WindowTo:   "2026-03-07",
		// Not UTC on purpose: every format must write UTC.
		ExportedAt: time.Date(2026, 3, 10, 15, 30, 0, 0, time.FixedZone("CET", 3600)),
		Purpose:    "Prüfung eines Verdachts auf Datenabfluss (case HR-2026-014)",
	}
}

func testMessages() []export.Message {
	const ch = "chn5w8k2q4m6p9r3t7v1x0z2ab"
	return []export.Message{
		{
			PostID: "p1aaaaaaaaaaaaaaaaaaaaaaaa", Kind: "posted", Version: 1,
			Time:      time.Date(2026, 3, 2, 9, 15, 4, 123456789, time.UTC),
			ChannelID: ch,
			Text:      "Grüße, 北京 ✓",
		},
		{
			PostID: "p2bbbbbbbbbbbbbbbbbbbbbbbb", Kind: "posted", Version: 1,
			Time:      time.Date(2026, 3, 2, 9, 17, 0, 0, time.FixedZone("X", -5*3600)),
			ChannelID: ch,
			RootID:    "p1aaaaaaaaaaaaaaaaaaaaaaaa",
			Text:      "First line\nsecond line with a trailing space \n\n    indented ✓ line\nlast line",
		},
		{
			PostID: "p3cccccccccccccccccccccccc", Kind: "updated", Version: 2,
			Time:       time.Date(2026, 3, 2, 9, 20, 30, 500000000, time.UTC),
			ChannelID:  ch,
			OriginalID: "p1aaaaaaaaaaaaaaaaaaaaaaaa",
			Text:       "Grüße, Peking",
		},
		{
			PostID: "p2bbbbbbbbbbbbbbbbbbbbbbbb", Kind: "deleted", Version: 3,
			Time:      time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC),
			ChannelID: ch,
			RootID:    "p1aaaaaaaaaaaaaaaaaaaaaaaa",
		},
		{
			PostID: "p5eeeeeeeeeeeeeeeeeeeeeeee", Kind: "file", Version: 1,
			Time:      time.Date(2026, 3, 4, 16, 45, 12, 0, time.UTC),
			ChannelID: ch,
			Text:      "see the attached draft",
			Files: []export.File{{
				ID:       "f1ffffffffffffffffffffffff",
				Name:     "Quartalsbericht Q1 – Entwurf.pdf",
				MIMEType: "application/pdf",
				Size:     482113,
				SHA256:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			}},
		},
	}
}

func render(t testing.TB, f export.Format, h export.Header, msgs []export.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := export.Write(&buf, f, h, msgs); err != nil {
		t.Fatalf("Write(%s): %v", f, err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	for _, f := range []export.Format{export.JSON, export.HTML, export.EML} {
		t.Run(string(f), func(t *testing.T) {
			got := render(t, f, testHeader(), testMessages())
			path := filepath.Join("testdata", "good_export."+string(f))
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./export -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run with -update if the change is intended)\n%s", f, path, firstDiff(got, want))
			}
			if !utf8.Valid(got) {
				t.Errorf("%s output is not valid UTF-8", f)
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	lo := max(0, i-60)
	return "got:  " + string(got[lo:min(len(got), i+60)]) + "\nwant: " + string(want[lo:min(len(want), i+60)])
}

func TestWatermark(t *testing.T) {
	want := "Unsealed under investigation order ord_abcdefghijklmnopqrstuvwxyz for requester r8ahsn3kwbgjmx5tqe7kzfy4pc, export exp_01hzx3k9q7m2v5b8n4c6d1f0ty, 2026-03-10T14:30:00Z. Confidential: do not copy or forward."
	if got := export.Watermark(testHeader()); got != want {
		t.Errorf("Watermark =\n%q\nwant\n%q", got, want)
	}
	h := testHeader()
	h.Requester = "a\r\nb"
	if got := export.Watermark(h); strings.ContainsAny(got, "\r\n") {
		t.Errorf("Watermark is not one line: %q", got)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]export.Format{"json": export.JSON, "html": export.HTML, "eml": export.EML, " HTML ": export.HTML, "Eml": export.EML} {
		got, err := export.ParseFormat(in)
		if err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "pdf", "htm", "json x"} {
		_, err := export.ParseFormat(in)
		if err == nil {
			t.Errorf("ParseFormat(%q) accepted", in)
			continue
		}
		for _, name := range []string{"html", "json", "eml"} {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("ParseFormat(%q) error %q does not list %s", in, err, name)
			}
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	var buf bytes.Buffer
	err := export.Write(&buf, export.Format("pdf"), testHeader(), testMessages())
	if err == nil || !strings.Contains(err.Error(), "html, json or eml") {
		t.Fatalf("Write(pdf) error = %v", err)
	}
	if buf.Len() != 0 {
		t.Errorf("Write(pdf) wrote %d bytes", buf.Len())
	}
}

// jsonDoc mirrors the JSON export for decoding in tests.
type jsonDoc struct {
	Watermark  string `json:"watermark"`
	OrderID    string `json:"order_id"`
	ExportID   string `json:"export_id"`
	Requester  string `json:"requester"`
	Subject    string `json:"subject"`
	Window     struct{ From, To string }
	ExportedAt string `json:"exported_at"`
	Purpose    string `json:"purpose"`
	Count      int    `json:"count"`
	Messages   []struct {
		PostID     string `json:"post_id"`
		Kind       string `json:"kind"`
		Version    int64  `json:"version"`
		Time       string `json:"time"`
		ChannelID  string `json:"channel_id"`
		RootID     string `json:"root_id"`
		OriginalID string `json:"original_id"`
		Text       string `json:"text"`
		Files      []struct {
			ID       string `json:"id"`
			Name     string `json:"name"`
			MIMEType string `json:"mime_type"`
			Size     int64  `json:"size"`
			SHA256   string `json:"sha256"`
		} `json:"files"`
		Watermark string `json:"watermark"`
	} `json:"messages"`
}

func decodeJSON(t *testing.T, b []byte) jsonDoc {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d jsonDoc
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("JSON export does not parse: %v", err)
	}
	if dec.More() {
		t.Fatal("JSON export has trailing data")
	}
	return d
}

func TestJSONRoundTrip(t *testing.T) {
	h, msgs := testHeader(), testMessages()
	out := render(t, export.JSON, h, msgs)
	if !bytes.HasPrefix(out, []byte("{\n  \"watermark\": ")) {
		t.Errorf("JSON export does not start with the watermark, indented two spaces:\n%.80s", out)
	}
	d := decodeJSON(t, out)
	if d.Watermark != export.Watermark(h) || d.OrderID != h.OrderID || d.ExportID != h.ExportID ||
		d.Requester != h.Requester || d.Subject != h.Subject || d.Window.From != h.WindowFrom ||
		d.Window.To != h.WindowTo || d.ExportedAt != "2026-03-10T14:30:00Z" || d.Purpose != h.Purpose {
		t.Errorf("JSON header does not match: %+v", d)
	}
	if d.Count != len(msgs) || len(d.Messages) != len(msgs) {
		t.Fatalf("count %d, %d messages; want %d", d.Count, len(d.Messages), len(msgs))
	}
	for i, m := range msgs {
		g := d.Messages[i]
		tm, err := time.Parse(time.RFC3339Nano, g.Time)
		if err != nil || !tm.Equal(m.Time) || !strings.HasSuffix(g.Time, "Z") {
			t.Errorf("message %d time %q, want %v in UTC (%v)", i, g.Time, m.Time, err)
		}
		if g.PostID != m.PostID || g.Kind != m.Kind || g.Version != m.Version || g.ChannelID != m.ChannelID ||
			g.RootID != m.RootID || g.OriginalID != m.OriginalID || g.Text != m.Text {
			t.Errorf("message %d = %+v, want %+v", i, g, m)
		}
		if g.Files == nil || len(g.Files) != len(m.Files) {
			t.Errorf("message %d files = %v, want %d (never null)", i, g.Files, len(m.Files))
			continue
		}
		for j, f := range m.Files {
			gf := g.Files[j]
			if gf.ID != f.ID || gf.Name != f.Name || gf.MIMEType != f.MIMEType || gf.Size != f.Size || gf.SHA256 != f.SHA256 {
				t.Errorf("message %d file %d = %+v, want %+v", i, j, gf, f)
			}
		}
		if g.Watermark != h.OrderID+"/"+h.ExportID {
			t.Errorf("message %d watermark %q", i, g.Watermark)
		}
	}
}

// emlParts parses an EML export and returns its top-level headers, the raw
// text part and the raw attachment part (with their headers).
type emlPart struct {
	header map[string][]string
	body   []byte
}

func parseEML(t *testing.T, b []byte) (*mail.Message, []emlPart) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("EML does not parse: %v", err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []emlPart
	for {
		// NextRawPart: leave quoted-printable encoded, the test decodes it.
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("multipart part: %v", err)
		}
		parts = append(parts, emlPart{header: p.Header, body: body})
	}
	return msg, parts
}

func TestEML(t *testing.T) {
	h, msgs := testHeader(), testMessages()
	out := render(t, export.EML, h, msgs)

	// CRLF only, and short lines.
	for i, line := range bytes.Split(out, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 78 {
			t.Errorf("line %d is %d characters long: %q", i+1, len(line), line)
		}
	}

	msg, parts := parseEML(t, out)
	wantHeaders := map[string]string{
		"From":                 "sealgate <noreply@sealgate.invalid>",
		"To":                   "sealgate <noreply@sealgate.invalid>",
		"Subject":              "sealgate export ord_abcdefghijklmnopqrstuvwxyz (5 messages)",
		"Date":                 "Tue, 10 Mar 2026 14:30:00 +0000",
		"Message-Id":           "<exp_01hzx3k9q7m2v5b8n4c6d1f0ty@sealgate.invalid>",
		"Mime-Version":         "1.0",
		"X-Sealgate-Order":     h.OrderID,
		"X-Sealgate-Export":    h.ExportID,
		"X-Sealgate-Requester": h.Requester,
	}
	for k, want := range wantHeaders {
		if got := msg.Header[k]; len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if d, err := msg.Header.Date(); err != nil || !d.Equal(h.ExportedAt) {
		t.Errorf("Date = %v, %v; want %v", d, err, h.ExportedAt)
	}
	for _, k := range []string{"From", "To"} {
		if a, err := mail.ParseAddress(msg.Header.Get(k)); err != nil || a.Address != "noreply@sealgate.invalid" {
			t.Errorf("%s does not parse as an address: %v, %v", k, a, err)
		}
	}
	if len(parts) != 2 {
		t.Fatalf("%d MIME parts, want 2", len(parts))
	}

	// Part 1: quoted-printable text.
	text := parts[0]
	if ct := text.header["Content-Type"]; len(ct) != 1 || ct[0] != "text/plain; charset=utf-8" {
		t.Errorf("text part Content-Type %q", ct)
	}
	if cte := text.header["Content-Transfer-Encoding"]; len(cte) != 1 || cte[0] != "quoted-printable" {
		t.Errorf("text part Content-Transfer-Encoding %q", cte)
	}
	decoded, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(text.body)))
	if err != nil {
		t.Fatalf("text part does not decode: %v", err)
	}
	if !utf8.Valid(decoded) {
		t.Error("decoded text part is not valid UTF-8")
	}
	plain := strings.ReplaceAll(string(decoded), "\r\n", "\n")
	if n := strings.Count(plain, export.Watermark(h)); n != 2 {
		t.Errorf("watermark %d times in the text part, want 2", n)
	}
	if !strings.HasPrefix(plain, export.Watermark(h)+"\n") || !strings.HasSuffix(plain, "\n"+export.Watermark(h)+"\n") {
		t.Error("text part does not open and close with the watermark")
	}
	for i, m := range msgs {
		if m.Text == "" {
			continue
		}
		// Every line of the text, indented under "  |", in order.
		var block strings.Builder
		for _, l := range strings.Split(m.Text, "\n") {
			if l == "" {
				block.WriteString("  |\n")
			} else {
				block.WriteString("  | " + l + "\n")
			}
		}
		if !strings.Contains(plain, block.String()) {
			t.Errorf("text part lacks message %d text %q", i, m.Text)
		}
	}
	for _, s := range []string{"Quartalsbericht Q1 – Entwurf.pdf", "Original: p1aaaaaaaaaaaaaaaaaaaaaaaa", "Text:     (no text)", h.Purpose} {
		if !strings.Contains(plain, s) {
			t.Errorf("text part lacks %q", s)
		}
	}

	// Part 2: the JSON export, base64.
	att := parts[1]
	if ct := att.header["Content-Type"]; len(ct) != 1 || ct[0] != "application/json; name="+h.OrderID+".json" {
		t.Errorf("attachment Content-Type %q", ct)
	}
	disp, params, err := mime.ParseMediaType(strings.Join(att.header["Content-Disposition"], ""))
	if err != nil || disp != "attachment" || params["filename"] != h.OrderID+".json" {
		t.Errorf("attachment Content-Disposition %q: %v", att.header["Content-Disposition"], err)
	}
	if cte := att.header["Content-Transfer-Encoding"]; len(cte) != 1 || cte[0] != "base64" {
		t.Errorf("attachment Content-Transfer-Encoding %q", cte)
	}
	lines := strings.Split(strings.TrimRight(string(att.body), "\r\n"), "\r\n")
	for i, l := range lines {
		if len(l) > 76 || (i < len(lines)-1 && len(l) != 76) {
			t.Errorf("base64 line %d is %d characters", i+1, len(l))
		}
	}
	js, err := base64.StdEncoding.DecodeString(strings.Join(lines, ""))
	if err != nil {
		t.Fatalf("attachment does not decode: %v", err)
	}
	if !json.Valid(js) {
		t.Fatal("attachment is not valid JSON")
	}
	if want := render(t, export.JSON, h, msgs); !bytes.Equal(js, want) {
		t.Error("attachment differs from the JSON export")
	}
}

func TestWatermarkInEveryFormat(t *testing.T) {
	h := testHeader()
	wm := export.Watermark(h)
	if out := render(t, export.JSON, h, testMessages()); !bytes.Contains(out, []byte(`"watermark": "`+wm+`"`)) {
		t.Error("JSON export lacks the watermark")
	}
	html := string(render(t, export.HTML, h, testMessages()))
	esc := template.HTMLEscapeString(wm)
	if n := strings.Count(html, esc); n < 3 {
		t.Errorf("HTML export has the watermark %d times, want at least 3", n)
	}
	for _, where := range []string{`<header class="banner">` + esc + `</header>`, `<footer class="wm-foot">` + esc + `</footer>`, `<span>` + esc + `</span>`} {
		if !strings.Contains(html, where) {
			t.Errorf("HTML export lacks %q", where)
		}
	}
	// The EML watermark (twice in the text part) is checked in TestEML.
	eml := render(t, export.EML, h, testMessages())
	if !bytes.Contains(eml, []byte("X-Sealgate-Requester: "+h.Requester+"\r\n")) {
		t.Error("EML export lacks the requester header")
	}
}

func TestHTMLEscapes(t *testing.T) {
	h := testHeader()
	h.Purpose = `<script>alert("purpose")</script>`
	msgs := []export.Message{
		{PostID: "p1", Kind: "posted", Version: 1, ChannelID: "c1", Text: "<script>alert(1)</script>"},
		{PostID: "p2", Kind: "posted", Version: 1, ChannelID: "c1", Text: `"><img src=x onerror=alert(1)>`},
		{
			PostID: `"><script>x</script>`, Kind: `<SCRIPT>`, Version: 1, ChannelID: `<ScRiPt src=//evil.example/x.js>`,
			RootID: `'><svg onload=alert(1)>`, OriginalID: `</td><script>`,
			Files: []export.File{{ID: `<script>`, Name: `<img src=x onerror=alert(1)>.png`, MIMEType: `text/html"><script>`, SHA256: `<style>`}},
		},
	}
	out := string(render(t, export.HTML, h, msgs))
	lower := strings.ToLower(out)
	for _, bad := range []string{"<script", "<img", "<svg", "<link", "<iframe", "<object", "<embed", "<base", "@import", "url(", "http:", "https:"} {
		if strings.Contains(lower, bad) {
			t.Errorf("HTML export contains %q", bad)
		}
	}
	if strings.Count(lower, "<style") != 1 {
		t.Error("HTML export must have exactly its own <style> element")
	}
	for _, want := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt;",
		"&#34;&gt;&lt;img src=x onerror=alert(1)&gt;",
		"&lt;script&gt;alert(&#34;purpose&#34;)&lt;/script&gt;",
		`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">`,
		`<meta charset="utf-8">`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("HTML export lacks %q", want)
		}
	}
	// The JSON export is inert in a browser too.
	js := string(render(t, export.JSON, h, msgs))
	if strings.Contains(strings.ToLower(js), "<script") || strings.Contains(js, "<img") {
		t.Error("JSON export contains an unescaped tag")
	}
	if d := decodeJSON(t, []byte(js)); d.Messages[0].Text != msgs[0].Text || d.Messages[1].Text != msgs[1].Text {
		t.Error("JSON escaping changed the text")
	}
}

func TestHTMLPreservesNewlines(t *testing.T) {
	out := string(render(t, export.HTML, testHeader(), testMessages()))
	want := `<td class="text">First line` + "\n" + `second line with a trailing space ` + "\n\n" + `    indented ✓ line` + "\n" + `last line</td>`
	if !strings.Contains(out, want) {
		t.Error("HTML export does not keep the multi-line text as is")
	}
	if !strings.Contains(out, "white-space:pre-wrap") {
		t.Error("HTML text cells do not preserve newlines")
	}
	if !strings.Contains(out, "Grüße, 北京 ✓") {
		t.Error("HTML export lacks the non-ASCII text")
	}
}

func TestHeaderInjection(t *testing.T) {
	setters := map[string]func(*export.Header, string){
		"OrderID":    func(h *export.Header, v string) { h.OrderID += v },
		"ExportID":   func(h *export.Header, v string) { h.ExportID += v },
		"Requester":  func(h *export.Header, v string) { h.Requester += v },
		"Subject":    func(h *export.Header, v string) { h.Subject += v },
		"WindowFrom": func(h *export.Header, v string) { h.WindowFrom += v },
		"WindowTo":   func(h *export.Header, v string) { h.WindowTo += v },
		"Purpose":    func(h *export.Header, v string) { h.Purpose += v },
	}
	for field, set := range setters {
		for _, inj := range []string{"\r\nBcc: victim@example.com", "\nX-Evil: 1", "\r", "\n\r\n<html>"} {
			for _, f := range []export.Format{export.EML, export.JSON, export.HTML} {
				h := testHeader()
				set(&h, inj)
				var buf bytes.Buffer
				err := export.Write(&buf, f, h, testMessages())
				if err == nil {
					t.Errorf("%s: %s with %q accepted", f, field, inj)
					continue
				}
				if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "CR or LF") {
					t.Errorf("%s: %s with %q: error %q does not name the field and CR/LF", f, field, inj, err)
				}
				if strings.Contains(err.Error(), "victim") || strings.Contains(err.Error(), "Evil") {
					t.Errorf("error quotes the value: %q", err)
				}
				if buf.Len() != 0 {
					t.Errorf("%s: %s refused but %d bytes written", f, field, buf.Len())
				}
			}
		}
	}
}

func TestHeaderValidation(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(*export.Header)
		field string
	}{
		{"empty order", func(h *export.Header) { h.OrderID = "" }, "OrderID"},
		{"empty export", func(h *export.Header) { h.ExportID = "" }, "ExportID"},
		{"empty requester", func(h *export.Header) { h.Requester = "" }, "Requester"},
		{"empty subject", func(h *export.Header) { h.Subject = "" }, "Subject"},
		{"export id with space", func(h *export.Header) { h.ExportID = "exp 1" }, "ExportID"},
		{"export id with angle bracket", func(h *export.Header) { h.ExportID = "exp>1" }, "ExportID"},
		{"order id non-ASCII", func(h *export.Header) { h.OrderID = "ord_ä" }, "OrderID"},
		{"requester too long", func(h *export.Header) { h.Requester = strings.Repeat("a", 101) }, "Requester"},
		{"purpose tab", func(h *export.Header) { h.Purpose = "a\tb" }, "Purpose"},
		{"purpose NUL", func(h *export.Header) { h.Purpose = "a\x00b" }, "Purpose"},
		{"purpose invalid UTF-8", func(h *export.Header) { h.Purpose = "a\xffb" }, "Purpose"},
		{"bad from", func(h *export.Header) { h.WindowFrom = "2026-3-1" }, "WindowFrom"},
		{"bad to", func(h *export.Header) { h.WindowTo = "2026-02-30" }, "WindowTo"},
		{"from after to", func(h *export.Header) { h.WindowFrom = "2026-03-08" }, "WindowFrom"},
		{"no export time", func(h *export.Header) { h.ExportedAt = time.Time{} }, "ExportedAt"},
	}
	for _, c := range cases {
		h := testHeader()
		c.edit(&h)
		for _, f := range []export.Format{export.JSON, export.HTML, export.EML} {
			var buf bytes.Buffer
			err := export.Write(&buf, f, h, nil)
			if err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("%s (%s): error %v, want one naming %s", c.name, f, err, c.field)
			}
			if buf.Len() != 0 {
				t.Errorf("%s (%s): %d bytes written", c.name, f, buf.Len())
			}
		}
	}
	// Optional fields may be empty.
	h := testHeader()
	h.WindowFrom, h.WindowTo, h.Purpose = "", "", ""
	for _, f := range []export.Format{export.JSON, export.HTML, export.EML} {
		render(t, f, h, testMessages())
	}
}

func TestEmpty(t *testing.T) {
	h := testHeader()
	for _, msgs := range [][]export.Message{nil, {}} {
		js := render(t, export.JSON, h, msgs)
		d := decodeJSON(t, js)
		if d.Count != 0 || d.Messages == nil || len(d.Messages) != 0 || !bytes.Contains(js, []byte(`"messages": []`)) {
			t.Errorf("empty JSON export: count %d, messages %v", d.Count, d.Messages)
		}
		html := string(render(t, export.HTML, h, msgs))
		if !strings.Contains(html, "No messages were released under this order.") || strings.Count(html, template.HTMLEscapeString(export.Watermark(h))) < 3 {
			t.Error("empty HTML export lacks the notice or the watermark")
		}
		if !strings.Contains(html, "<dt>Messages</dt><dd>0</dd>") {
			t.Error("empty HTML export does not say 0 messages")
		}
		eml := render(t, export.EML, h, msgs)
		msg, parts := parseEML(t, eml)
		if got := msg.Header.Get("Subject"); got != "sealgate export "+h.OrderID+" (0 messages)" {
			t.Errorf("empty EML subject %q", got)
		}
		if len(parts) != 2 {
			t.Fatalf("empty EML has %d parts", len(parts))
		}
		att, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(parts[1].body), "\r\n", ""))
		if err != nil || !bytes.Equal(att, js) {
			t.Errorf("empty EML attachment differs from the JSON export (%v)", err)
		}
	}
}

func TestDeterministic(t *testing.T) {
	for _, f := range []export.Format{export.JSON, export.HTML, export.EML} {
		msgs := testMessages()
		a := render(t, f, testHeader(), msgs)
		b := render(t, f, testHeader(), msgs)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two writes differ", f)
		}
		// The same instant in another zone is the same export.
		h := testHeader()
		h.ExportedAt = h.ExportedAt.UTC()
		for i := range msgs {
			msgs[i].Time = msgs[i].Time.In(time.FixedZone("Y", 9*3600))
		}
		if c := render(t, f, h, msgs); !bytes.Equal(a, c) {
			t.Errorf("%s: output depends on the time zone", f)
		}
	}
}

func TestInvalidUTF8(t *testing.T) {
	msgs := []export.Message{{PostID: "p\xff", Kind: "posted", ChannelID: "c\xfe", Text: "bad \xff\xfe bytes", Files: []export.File{{Name: "f\xc3.txt"}}}}
	orig := msgs[0].Text
	for _, f := range []export.Format{export.JSON, export.HTML, export.EML} {
		out := render(t, f, testHeader(), msgs)
		if !utf8.Valid(out) {
			t.Errorf("%s: invalid UTF-8 in output", f)
		}
	}
	if msgs[0].Text != orig {
		t.Error("Write modified the caller's messages")
	}
	d := decodeJSON(t, render(t, export.JSON, testHeader(), msgs))
	if d.Messages[0].Text != "bad \uFFFD bytes" {
		t.Errorf("JSON text %q", d.Messages[0].Text)
	}
}

// A message text that contains the export's MIME boundary cannot end the
// text part early.
func TestEMLBoundaryInText(t *testing.T) {
	h := testHeader()
	msg, _ := parseEML(t, render(t, export.EML, h, nil))
	_, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	b := params["boundary"]
	msgs := []export.Message{{PostID: "p1", Kind: "posted", Text: "--" + b + "\n--" + b + "--\nafter"}}
	out := render(t, export.EML, h, msgs)
	msg, parts := parseEML(t, out)
	_, params, _ = mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if params["boundary"] == b {
		t.Fatal("boundary not changed although the text contains it")
	}
	if len(parts) != 2 {
		t.Fatalf("%d parts, want 2", len(parts))
	}
	decoded, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(parts[0].body)))
	if !strings.Contains(string(decoded), "  | after") {
		t.Error("text after the fake boundary is lost")
	}
}

// Message text cannot pose as the text part's own structure.
func TestEMLTextCannotForgeStructure(t *testing.T) {
	msgs := []export.Message{{PostID: "p1", Kind: "posted", Text: "hi\r\n----- Message 2 of 2 -----\u2028Time:     forged\rPost: x"}}
	_, parts := parseEML(t, render(t, export.EML, testHeader(), msgs))
	decoded, _ := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(parts[0].body)))
	sc := bufio.NewScanner(bytes.NewReader(decoded))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "----- Message 2") || strings.HasPrefix(l, "Time:     forged") || strings.HasPrefix(l, "Post: x") {
			t.Errorf("message text produced an unindented line %q", l)
		}
	}
}

func TestWriteError(t *testing.T) {
	want := errors.New("disk full")
	if err := export.Write(failWriter{want}, export.JSON, testHeader(), nil); !errors.Is(err, want) {
		t.Errorf("Write error = %v, want %v", err, want)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func FuzzWriteHTML(f *testing.F) {
	f.Add("<script>alert(1)</script>", `"><img src=x onerror=alert(1)>`, "c1")
	f.Add("Grüße, 北京 ✓\nline two", "a.pdf", "<ScRiPt")
	f.Add("", "", "")
	f.Add("<<script>script>", "</td></tr></table><script>", "&lt;script")
	f.Add("\x00<\x00script", "\u2028<script", "<!--<script")
	h := testHeader()
	f.Fuzz(func(t *testing.T, text, name, channel string) {
		msgs := []export.Message{{PostID: "p1", Kind: "posted", Version: 1, ChannelID: channel, RootID: channel, Text: text, Files: []export.File{{Name: name, MIMEType: name}}}}
		var buf bytes.Buffer
		if err := export.Write(&buf, export.HTML, h, msgs); err != nil {
			t.Fatal(err)
		}
		out := buf.Bytes()
		if bytes.Contains(bytes.ToLower(out), []byte("<script")) {
			t.Fatalf("output contains <script for text %q name %q channel %q", text, name, channel)
		}
		if utf8.ValidString(text) && utf8.ValidString(name) && utf8.ValidString(channel) && !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 output for valid input %q %q %q", text, name, channel)
		}
		// No markup can come from the input: as many '<' as for plain
		// input of the same shape (empty text renders a placeholder).
		plain := func(s string) string {
			if s == "" {
				return ""
			}
			return "x"
		}
		base := []export.Message{{PostID: "p1", Kind: "posted", Version: 1, ChannelID: plain(channel), RootID: plain(channel), Text: plain(text), Files: []export.File{{Name: plain(name), MIMEType: plain(name)}}}}
		var want bytes.Buffer
		if err := export.Write(&want, export.HTML, h, base); err != nil {
			t.Fatal(err)
		}
		if g, w := bytes.Count(out, []byte("<")), bytes.Count(want.Bytes(), []byte("<")); g != w {
			t.Fatalf("input added markup: %d '<', want %d (text %q name %q channel %q)", g, w, text, name, channel)
		}
	})
}
