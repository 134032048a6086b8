package notice

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"
	"unicode"
)

// Date and time layouts of every rendered notice. Times are always shown
// in UTC.
const (
	DateLayout = "2006-01-02"
	TimeLayout = "2006-01-02 15:04 UTC"
)

// DefaultAuthority is the supervisory authority named when
// Contacts.Authority is empty.
const DefaultAuthority = "Autoriteit Persoonsgegevens (https://autoriteitpersoonsgegevens.nl)"

// The languages a notice is written in. A recipient whose locale is Dutch
// ("nl", "nl_NL", "nl-NL", any "nl" region) reads Dutch; everyone else
// English.
const (
	langEnglish = "en"
	langDutch   = "nl"
)

var (
	noticeKinds = []Kind{Activated, Ended}
	noticeLangs = []string{langEnglish, langDutch}
)

//go:embed templates/*.tmpl
var defaultTemplateFS embed.FS

// Templates are the texts of the notices: one text/template per Kind and
// language. Each file defines two templates, "subject" (one line, plain
// text) and "body" (Markdown for Mattermost, read as plain text in an
// e-mail):
//
//	{{define "subject"}}…{{end}}
//	{{define "body"}}…{{end}}
//
// The data is the Notice (its fields directly: .OrderID, .Accessed.Views,
// …), .Contacts (with .Contacts.Authority defaulted) and .NothingAccessed
// (no view, export or message yet). The functions are:
//
//	md s        s with Markdown syntax escaped (\ ` * _ [ ] ( ) ~ < > #)
//	            and line breaks folded; use it for every free-text field
//	code s      s as an inline code span (ids)
//	plain s     s with line breaks and control characters folded, nothing
//	            escaped (subject lines, configured contacts)
//	list ss     each element through md, joined with ", "
//	date t      t in UTC as 2006-01-02
//	datetime t  t in UTC as 2006-01-02 15:04 UTC
//
// A Templates is immutable and safe for concurrent use.
type Templates struct {
	set map[string]*template.Template // by templateKey(kind, lang)
}

func templateKey(k Kind, lang string) string { return string(k) + "." + lang }

// templateFile is the file name of one template: "activated.en.tmpl".
func templateFile(k Kind, lang string) string { return templateKey(k, lang) + ".tmpl" }

var defaultTemplates = sync.OnceValues(func() (*Templates, error) {
	t := &Templates{set: map[string]*template.Template{}}
	for _, k := range noticeKinds {
		for _, lang := range noticeLangs {
			name := templateFile(k, lang)
			src, err := defaultTemplateFS.ReadFile("templates/" + name)
			if err != nil {
				return nil, fmt.Errorf("notice: embedded template %s: %w", name, err)
			}
			tt, err := parseTemplate(name, k, string(src))
			if err != nil {
				return nil, err
			}
			t.set[templateKey(k, lang)] = tt
		}
	}
	return t, nil
})

// DefaultTemplates returns the built-in English and Dutch texts. It panics
// only if the embedded files are broken, which the tests rule out.
func DefaultTemplates() *Templates {
	t, err := defaultTemplates()
	if err != nil {
		panic(err)
	}
	return t
}

// LoadTemplates returns the default texts with those in dir replacing
// them. dir may hold any of activated.en.tmpl, activated.nl.tmpl,
// ended.en.tmpl and ended.nl.tmpl; a missing one keeps the default. Every
// file is parsed and executed on sample notices; a file that fails, lacks
// "subject" or "body", or yields an empty or multi-line subject is an
// error naming it. Any other *.tmpl file in dir is an error too (a
// misspelt override would otherwise be silently ignored); other files are
// ignored.
func LoadTemplates(dir string) (*Templates, error) {
	if dir == "" {
		return nil, errors.New("notice: template directory is empty")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("notice: templates: %w", err)
	}
	known := map[string]Kind{}
	for _, k := range noticeKinds {
		for _, lang := range noticeLangs {
			known[templateFile(k, lang)] = k
		}
	}
	def := DefaultTemplates()
	t := &Templates{set: make(map[string]*template.Template, len(def.set))}
	for key, tt := range def.set {
		t.set[key] = tt
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".tmpl") {
			continue
		}
		path := filepath.Join(dir, name)
		k, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("notice: template %s: unknown file name (want activated|ended.en|nl.tmpl)", path)
		}
		if e.IsDir() {
			return nil, fmt.Errorf("notice: template %s: is a directory", path)
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("notice: template %s: %w", path, err)
		}
		tt, err := parseTemplate(path, k, string(src))
		if err != nil {
			return nil, err
		}
		t.set[strings.TrimSuffix(name, ".tmpl")] = tt
	}
	return t, nil
}

// parseTemplate parses one file and tries it on sample notices of its kind.
func parseTemplate(name string, k Kind, src string) (*template.Template, error) {
	tt, err := template.New(filepath.Base(name)).Funcs(templateFuncs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("notice: template %s: %w", name, err)
	}
	for _, part := range []string{"subject", "body"} {
		if tt.Lookup(part) == nil {
			return nil, fmt.Errorf("notice: template %s: no {{define %q}}", name, part)
		}
	}
	for _, n := range sampleNotices(k) {
		if _, err := execute(tt, n, sampleContacts); err != nil {
			return nil, fmt.Errorf("notice: template %s: on a sample notice: %w", name, err)
		}
	}
	return tt, nil
}

// Render writes notice n in the recipient's language. t nil means
// DefaultTemplates. It refuses a notice that lacks what the text must
// state (order id, window, validity, how and when an order ended) and an
// empty Contacts.DPO; the configuration should be checked for the latter
// at start-up.
func Render(n *Notice, c Contacts, t *Templates) (Message, error) {
	if t == nil {
		t = DefaultTemplates()
	}
	if err := checkRenderable(n); err != nil {
		return Message{}, err
	}
	if strings.TrimSpace(c.DPO) == "" {
		return Message{}, fmt.Errorf("notice %s: no DPO contact configured", n.ID)
	}
	tt := t.set[templateKey(n.Kind, Language(n.Locale))]
	if tt == nil {
		return Message{}, fmt.Errorf("notice %s: no template for %s.%s", n.ID, n.Kind, Language(n.Locale))
	}
	m, err := execute(tt, n, c)
	if err != nil {
		return Message{}, fmt.Errorf("notice %s: render: %w", n.ID, err)
	}
	return m, nil
}

// Language is the language a notice to a recipient with this Mattermost
// locale is written in: "nl" for Dutch ("nl", "nl_NL", "nl-NL", "NL-be",
// …), "en" for anything else.
func Language(locale string) string {
	l := strings.ToLower(strings.TrimSpace(locale))
	if l == "nl" || strings.HasPrefix(l, "nl_") || strings.HasPrefix(l, "nl-") {
		return langDutch
	}
	return langEnglish
}

// checkRenderable refuses a notice that the texts cannot state truthfully.
// Errors name ids only.
func checkRenderable(n *Notice) error {
	if n == nil {
		return errors.New("notice: nil notice")
	}
	if n.Kind != Activated && n.Kind != Ended {
		return fmt.Errorf("notice %s: unknown kind %q", n.ID, n.Kind)
	}
	if strings.TrimSpace(n.OrderID) == "" {
		return fmt.Errorf("notice %s: no order id", n.ID)
	}
	for _, d := range []struct{ name, v string }{{"window_from", n.WindowFrom}, {"window_to", n.WindowTo}} {
		if _, err := time.Parse(DateLayout, d.v); err != nil {
			return fmt.Errorf("notice %s: %s is not a date (YYYY-MM-DD)", n.ID, d.name)
		}
	}
	if n.Channels < 0 {
		return fmt.Errorf("notice %s: negative channel count", n.ID)
	}
	if n.ActivatedAt.IsZero() || n.ValidUntil.IsZero() {
		return fmt.Errorf("notice %s: activated_at and valid_until are required", n.ID)
	}
	if n.Kind == Ended && (strings.TrimSpace(n.Ended) == "" || n.EndedAt.IsZero()) {
		return fmt.Errorf("notice %s: an ended notice needs ended and ended_at", n.ID)
	}
	a := n.Accessed
	if a.Views < 0 || a.Exports < 0 || a.Messages < 0 {
		return fmt.Errorf("notice %s: negative access counts", n.ID)
	}
	if (a.Views > 0 || a.Exports > 0 || a.Messages > 0) && (a.First.IsZero() || a.Last.IsZero()) {
		return fmt.Errorf("notice %s: accesses without first and last times", n.ID)
	}
	return nil
}

// templateData is what the templates see.
type templateData struct {
	Notice
	Contacts Contacts
	// NothingAccessed: no view, no export, no message shown yet.
	NothingAccessed bool
}

func execute(tt *template.Template, n *Notice, c Contacts) (Message, error) {
	if strings.TrimSpace(c.Authority) == "" {
		c.Authority = DefaultAuthority
	}
	a := n.Accessed
	data := templateData{Notice: *n, Contacts: c, NothingAccessed: a.Views == 0 && a.Exports == 0 && a.Messages == 0}
	var subj, body bytes.Buffer
	if err := tt.ExecuteTemplate(&subj, "subject", data); err != nil {
		return Message{}, err
	}
	if err := tt.ExecuteTemplate(&body, "body", data); err != nil {
		return Message{}, err
	}
	m := Message{Subject: strings.TrimSpace(subj.String()), Body: strings.TrimSpace(body.String()) + "\n"}
	switch {
	case m.Subject == "":
		return Message{}, errors.New("empty subject")
	case strings.ContainsFunc(m.Subject, unicode.IsControl):
		return Message{}, errors.New("subject is not one line")
	case strings.TrimSpace(m.Body) == "":
		return Message{}, errors.New("empty body")
	case strings.Contains(m.Subject, "<no value>") || strings.Contains(m.Body, "<no value>"):
		return Message{}, errors.New(`output contains "<no value>"`)
	}
	return m, nil
}

var templateFuncs = template.FuncMap{
	"md":    markdownEscape,
	"code":  codeSpan,
	"plain": foldSpace,
	"list": func(ss []string) string {
		out := make([]string, 0, len(ss))
		for _, s := range ss {
			if s = markdownEscape(s); s != "" {
				out = append(out, s)
			}
		}
		return strings.Join(out, ", ")
	},
	"date":     func(t time.Time) string { return t.UTC().Format(DateLayout) },
	"datetime": func(t time.Time) string { return t.UTC().Format(TimeLayout) },
}

// foldSpace turns line breaks, tabs and other control characters into
// single spaces and trims the ends: an interpolated value stays on its
// line and cannot start a Markdown block.
func foldSpace(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
}

// markdownSpecial are the characters markdownEscape escapes: links and
// images ([]()), emphasis (*_~), code (`), autolinks and quotes (<>),
// headings and hashtags (#), and the escape character itself.
const markdownSpecial = "\\`*_[]()~<>#"

// markdownEscape escapes Markdown syntax in an interpolated value with
// backslashes, so that a purpose such as "[click](https://…)" shows as
// text in Mattermost, and folds line breaks.
func markdownEscape(s string) string {
	s = foldSpace(s)
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(markdownSpecial, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// codeSpan shows an id as inline code: literal in Mattermost and readable
// as plain text. A value holding a backtick falls back to markdownEscape.
func codeSpan(s string) string {
	s = foldSpace(s)
	if s == "" || strings.Contains(s, "`") {
		return markdownEscape(s)
	}
	return "`" + s + "`"
}

// sampleContacts and sampleNotices exercise every branch of a template
// when LoadTemplates checks it.
var sampleContacts = Contacts{DPO: "privacy@example.com"}

func sampleNotices(k Kind) []*Notice {
	t0 := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	base := Notice{
		ID: "ntc_sample", Kind: k, UserID: "jwmtcrk65byjmjan5bgpkh18iw", Locale: "en",
		OrderID: "ord_sample", WindowFrom: "2026-10-01", WindowTo: "2026-10-31",
		Purpose: "investigation of a suspected data leak", LegalBasis: "GDPR art. 6(1)(f)",
		PolicyClause: "ICT policy 4.2", ApprovedBy: []string{"legal", "hr", "works-council"},
		ActivatedAt: t0, ValidUntil: t0.Add(14 * 24 * time.Hour), DueAt: t0,
	}
	var out []*Notice
	ends := []string{""}
	if k == Ended {
		ends = []string{"closed", "expired", "revoked", "other"}
	}
	for i, end := range ends {
		for _, channels := range []int{0, 1, 3} {
			for _, accessed := range []bool{false, true} {
				n := base
				n.ApprovedBy = slices.Clone(base.ApprovedBy)
				n.Channels = channels
				if end != "" {
					n.Ended, n.EndedAt = end, t0.Add(time.Duration(i+1)*24*time.Hour)
				}
				if accessed {
					n.Accessed = Accessed{Views: 1, Exports: 1, Messages: 12, First: t0.Add(time.Hour), Last: t0.Add(2 * time.Hour)}
				}
				out = append(out, &n)
			}
		}
	}
	return out
}
