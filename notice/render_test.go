package notice

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

var testContacts = Contacts{DPO: "privacy@example.com"}

// goodNotice is the notice of the golden files: an activated order over
// all channels with nothing read yet, or an order over 3 channels revoked
// after two views and an export.
func goodNotice(k Kind, locale string) *Notice {
	act := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	n := &Notice{
		ID: "ntc_7f3k2m_a", Kind: k, UserID: "jwmtcrk65byjmjan5bgpkh18iw", Locale: locale,
		OrderID: "ord_7f3k2m", WindowFrom: "2026-10-01", WindowTo: "2026-10-31",
		Purpose:      "investigation of a suspected leak of customer data",
		LegalBasis:   "GDPR art. 6(1)(f), legitimate interest",
		PolicyClause: "ICT policy 4.2 (confidential information)",
		ApprovedBy:   []string{"legal", "hr", "works-council"},
		ActivatedAt:  act,
		// Not UTC on purpose: the output must be.
		ValidUntil: act.Add(14 * 24 * time.Hour).In(time.FixedZone("CET", 3600)),
		DueAt:      act,
	}
	if k == Ended {
		n.ID = "ntc_7f3k2m_e"
		n.Channels = 3
		n.Ended, n.EndedAt = "revoked", time.Date(2026, 11, 25, 16, 45, 12, 0, time.UTC)
		n.Accessed = Accessed{Views: 2, Exports: 1, Messages: 57,
			First: time.Date(2026, 11, 21, 10, 2, 0, 0, time.UTC), Last: time.Date(2026, 11, 24, 14, 17, 59, 0, time.UTC)}
	}
	return n
}

func mustRender(t *testing.T, n *Notice, c Contacts, tt *Templates) Message {
	t.Helper()
	m, err := Render(n, c, tt)
	if err != nil {
		t.Fatalf("Render(%s, %s): %v", n.Kind, n.Locale, err)
	}
	return m
}

func TestDefaultTemplatesParse(t *testing.T) {
	if _, err := defaultTemplates(); err != nil {
		t.Fatal(err)
	}
}

// TestRenderRequiredElements: every text states the order, window, scope,
// purpose, legal basis, ground, roles, validity, what was accessed, the
// rights and the contacts.
func TestRenderRequiredElements(t *testing.T) {
	common := func(n *Notice) []string {
		return []string{"`" + n.OrderID + "`", "`" + n.ID + "`", n.WindowFrom, n.WindowTo,
			"customer data", "GDPR art. 6\\(1\\)\\(f\\), legitimate interest", "ICT policy 4.2 \\(confidential information\\)",
			"legal, hr, works-council", "2026-12-04 09:30 UTC", // valid until, in UTC
			"privacy@example.com", "Autoriteit Persoonsgegevens (https://autoriteitpersoonsgegevens.nl)",
		}
	}
	lang := map[string][]string{
		"en": {"Period: messages from 2026-10-01 up to and including 2026-10-31", "Purpose:", "Legal basis:", "Ground:",
			"Approved by (roles):", "Valid until:", "Your rights", "**Access** (GDPR art. 15)", "what was accessed", "a copy",
			"**Objection** (GDPR art. 21)", "Complaint to the data protection officer", "Dutch data protection authority"},
		"nl": {"Periode: berichten van 2026-10-01 tot en met 2026-10-31", "Doel:", "Rechtsgrond:", "Aanleiding:",
			"Goedgekeurd door (rollen):", "Geldig tot:", "Uw rechten", "**Recht op inzage** (artikel 15 AVG)", "wat er",
			"een kopie", "**Recht van bezwaar** (artikel 21 AVG)", "bezwaar", "Klacht bij de functionaris gegevensbescherming",
			"toezichthouder"},
	}
	kindWant := map[string][]string{
		"activated.en": {"took effect on 2026-11-20 09:30 UTC", "Scope: all channels, except protected channels", "Nothing has been read yet."},
		"activated.nl": {"in werking getreden", "Op 2026-11-20 09:30 UTC", "Reikwijdte: alle kanalen, behalve beschermde kanalen",
			"Er is nog niets ingezien."},
		"ended.en": {"was revoked on 2026-11-25 16:45 UTC", "Scope: 3 channels", "Views: 2", "Exports: 1",
			"Messages shown (all views and exports together): 57", "First access: 2026-11-21 10:02 UTC", "Last access: 2026-11-24 14:17 UTC"},
		"ended.nl": {"is op 2026-11-25 16:45 UTC ingetrokken", "Reikwijdte: 3 kanalen",
			"Uw berichten zijn ingezien in het kader van dit onderzoek", "Aantal keren ingezien: 2", "Aantal exports: 1",
			"Getoonde berichten (alle inzagen en exports samen): 57", "Eerste keer ingezien: 2026-11-21 10:02 UTC",
			"Laatste keer ingezien: 2026-11-24 14:17 UTC"},
	}
	for _, k := range []Kind{Activated, Ended} {
		for _, l := range []string{"en", "nl"} {
			n := goodNotice(k, l)
			m := mustRender(t, n, testContacts, nil)
			want := append(append(common(n), lang[l]...), kindWant[string(k)+"."+l]...)
			for _, w := range want {
				if !strings.Contains(m.Body, w) {
					t.Errorf("%s.%s: body lacks %q", k, l, w)
				}
			}
			if !strings.Contains(m.Subject, n.OrderID) {
				t.Errorf("%s.%s: subject %q lacks the order id", k, l, m.Subject)
			}
			if strings.Contains(m.Body, n.UserID) {
				t.Errorf("%s.%s: body names the recipient", k, l)
			}
		}
	}
}

func TestRenderEndedHow(t *testing.T) {
	for _, tc := range []struct{ ended, en, nl string }{
		{"closed", "was closed on 2026-11-25 16:45 UTC", "is op 2026-11-25 16:45 UTC afgesloten."},
		{"expired", "expired on 2026-11-25 16:45 UTC", "is op 2026-11-25 16:45 UTC verlopen."},
		{"revoked", "was revoked on 2026-11-25 16:45 UTC", "is op 2026-11-25 16:45 UTC ingetrokken."},
		{"with_drawn", "ended (with\\_drawn) on 2026-11-25", "beëindigd (with\\_drawn)."},
	} {
		for l, want := range map[string]string{"en": tc.en, "nl": tc.nl} {
			n := goodNotice(Ended, l)
			n.Ended = tc.ended
			if m := mustRender(t, n, testContacts, nil); !strings.Contains(m.Body, want) {
				t.Errorf("%s %s: body lacks %q", tc.ended, l, want)
			}
		}
	}
}

func TestRenderScopeAndNothingRead(t *testing.T) {
	n := goodNotice(Activated, "nl")
	n.Channels = 1
	if m := mustRender(t, n, testContacts, nil); !strings.Contains(m.Body, "Reikwijdte: 1 kanaal\n") {
		t.Errorf("one channel: %q", m.Body)
	}
	n.Locale = "en"
	if m := mustRender(t, n, testContacts, nil); !strings.Contains(m.Body, "Scope: 1 channel\n") {
		t.Errorf("one channel: %q", m.Body)
	}
	e := goodNotice(Ended, "en")
	e.Accessed = Accessed{}
	if m := mustRender(t, e, testContacts, nil); !strings.Contains(m.Body, "Nothing has been read under this order.") || strings.Contains(m.Body, "Views:") {
		t.Errorf("nothing read: %q", m.Body)
	}
	e.Locale = "nl"
	if m := mustRender(t, e, testContacts, nil); !strings.Contains(m.Body, "niets ingezien") || strings.Contains(m.Body, "Aantal keren") {
		t.Errorf("nothing read: %q", m.Body)
	}
}

func TestRenderLocale(t *testing.T) {
	for locale, want := range map[string]string{
		"nl": "nl", "nl_NL": "nl", "nl-NL": "nl", "NL": "nl", " nl-be ": "nl",
		"": "en", "en": "en", "en_US": "en", "de": "en", "fr-NL": "en", "nld": "en", "n": "en",
	} {
		if got := Language(locale); got != want {
			t.Errorf("Language(%q) = %q, want %q", locale, got, want)
		}
		m := mustRender(t, goodNotice(Activated, locale), testContacts, nil)
		dutch := strings.Contains(m.Body, "Uw rechten")
		english := strings.Contains(m.Body, "Your rights")
		if dutch == english || dutch != (want == "nl") {
			t.Errorf("locale %q: dutch=%v english=%v", locale, dutch, english)
		}
	}
}

func TestRenderContacts(t *testing.T) {
	c := Contacts{DPO: "fg@example.nl\n", Authority: "Autoriteit Persoonsgegevens, Postbus 93374, 2509 AJ Den Haag"}
	m := mustRender(t, goodNotice(Ended, "nl"), c, nil)
	for _, w := range []string{"functionaris gegevensbescherming**: fg@example.nl\n", "Postbus 93374, 2509 AJ Den Haag"} {
		if !strings.Contains(m.Body, w) {
			t.Errorf("body lacks %q", w)
		}
	}
	if strings.Contains(m.Body, "https://autoriteitpersoonsgegevens.nl") {
		t.Error("the configured authority did not replace the default")
	}
	if _, err := Render(goodNotice(Ended, "nl"), Contacts{DPO: "  "}, nil); err == nil {
		t.Error("empty DPO contact accepted")
	}
}

func TestRenderRefusesIncomplete(t *testing.T) {
	for name, mut := range map[string]func(*Notice){
		"kind":          func(n *Notice) { n.Kind = "opened" },
		"order id":      func(n *Notice) { n.OrderID = " " },
		"window from":   func(n *Notice) { n.WindowFrom = "" },
		"window to":     func(n *Notice) { n.WindowTo = "31-10-2026" },
		"channels":      func(n *Notice) { n.Channels = -1 },
		"activated at":  func(n *Notice) { n.ActivatedAt = time.Time{} },
		"valid until":   func(n *Notice) { n.ValidUntil = time.Time{} },
		"ended":         func(n *Notice) { n.Ended = "" },
		"ended at":      func(n *Notice) { n.EndedAt = time.Time{} },
		"no first":      func(n *Notice) { n.Accessed.First = time.Time{} },
		"negative view": func(n *Notice) { n.Accessed.Views = -1 },
	} {
		n := goodNotice(Ended, "en")
		n.Purpose = "SECRET-PURPOSE"
		mut(n)
		_, err := Render(n, testContacts, nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET-PURPOSE") {
			t.Errorf("%s: error %q has the purpose", name, err)
		}
	}
	if _, err := Render(nil, testContacts, nil); err == nil {
		t.Error("nil notice accepted")
	}
}

func TestRenderMarkdownEscaping(t *testing.T) {
	n := goodNotice(Activated, "en")
	n.Purpose = "see [click here](https://evil.example/x_y) *now* `x` ~~y~~ <https://evil.example> # h \\[z]\n- injected item"
	n.ApprovedBy = []string{"legal_[x](y)", "hr"}
	n.PolicyClause = "![img](https://evil.example/p.png)"
	for _, l := range []string{"en", "nl"} {
		n.Locale = l
		m := mustRender(t, n, testContacts, nil)
		for _, bad := range []string{"[click here](", "](https://evil", "*now*", "`x`", "~~y~~", " <https://", "\\[z]", "\n- injected", "[x](y)"} {
			if strings.Contains(m.Body, bad) {
				t.Errorf("%s: body has unescaped %q", l, bad)
			}
		}
		for _, want := range []string{
			"see \\[click here\\]\\(https://evil.example/x\\_y\\) \\*now\\* \\`x\\` \\~\\~y\\~\\~ \\<https://evil.example\\> \\# h \\\\\\[z\\] - injected item",
			"legal\\_\\[x\\]\\(y\\), hr",
			"!\\[img\\]\\(https://evil.example/p.png\\)",
		} {
			if !strings.Contains(m.Body, want) {
				t.Errorf("%s: body lacks %q", l, want)
			}
		}
	}
	if got := markdownEscape("a\tb\r\n\u2028c\x00d"); got != "a b c d" {
		t.Errorf("markdownEscape folds to %q", got)
	}
	if got := codeSpan("ord_`x"); got != "ord\\_\\`x" {
		t.Errorf("codeSpan with a backtick: %q", got)
	}
}

// TestRenderNoMissingValues: no combination leaves "<no value>" or an
// unfilled time behind.
func TestRenderNoMissingValues(t *testing.T) {
	for _, k := range []Kind{Activated, Ended} {
		for _, n := range sampleNotices(k) {
			for _, l := range []string{"en", "nl"} {
				n.Locale = l
				for _, c := range []Contacts{testContacts, {DPO: "x", Authority: "y"}} {
					m := mustRender(t, n, c, nil)
					for _, s := range []string{m.Subject, m.Body} {
						for _, bad := range []string{"<no value>", "0001-01-01", "%!", "{{", "}}", "<nil>"} {
							if strings.Contains(s, bad) {
								t.Errorf("%s.%s: output has %q:\n%s", k, l, bad, s)
							}
						}
					}
					if strings.ContainsAny(m.Subject, "\r\n") {
						t.Errorf("%s.%s: subject is not one line", k, l)
					}
					if strings.Contains(m.Body, "\n\n\n") || strings.Contains(m.Body, " \n") {
						t.Errorf("%s.%s: stray blank lines or trailing spaces:\n%s", k, l, m.Body)
					}
				}
			}
		}
	}
}

func TestRenderGolden(t *testing.T) {
	for _, k := range []Kind{Activated, Ended} {
		for _, l := range []string{"en", "nl"} {
			m := mustRender(t, goodNotice(k, l), testContacts, nil)
			got := "Subject: " + m.Subject + "\n\n" + m.Body
			path := filepath.Join("testdata", "good_"+string(k)+"."+l+".txt")
			if *updateGolden {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./notice -run TestRenderGolden -update)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the rendering (go test ./notice -run TestRenderGolden -update):\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		}
	}
}

const overrideNL = `{{define "subject"}}Eigen onderwerp {{plain .OrderID}}{{end}}
{{define "body"}}Eigen tekst voor {{code .OrderID}}: {{md .Purpose}}; FG {{plain .Contacts.DPO}}.{{end}}
`

func TestLoadTemplatesOverride(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "activated.nl.tmpl"), []byte(overrideNL), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files that are not templates are ignored.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	tt, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := mustRender(t, goodNotice(Activated, "nl_NL"), testContacts, tt)
	if m.Subject != "Eigen onderwerp ord_7f3k2m" || m.Body != "Eigen tekst voor `ord_7f3k2m`: investigation of a suspected leak of customer data; FG privacy@example.com.\n" {
		t.Errorf("override not used: %+v", m)
	}
	// The others keep the default.
	for _, n := range []*Notice{goodNotice(Activated, "en"), goodNotice(Ended, "nl"), goodNotice(Ended, "en")} {
		if got, want := mustRender(t, n, testContacts, tt), mustRender(t, n, testContacts, nil); got != want {
			t.Errorf("%s.%s: changed by an unrelated override", n.Kind, n.Locale)
		}
	}
	// The default set is unchanged.
	if m := mustRender(t, goodNotice(Activated, "nl"), testContacts, DefaultTemplates()); strings.HasPrefix(m.Subject, "Eigen") {
		t.Error("LoadTemplates changed the defaults")
	}
}

func TestLoadTemplatesRefusesBad(t *testing.T) {
	for name, tc := range map[string]struct{ file, src, want string }{
		"parse":      {"ended.en.tmpl", `{{define "subject"}}x{{end}}{{define "body"}}{{if}}{{end}}`, "ended.en.tmpl"},
		"exec field": {"activated.en.tmpl", `{{define "subject"}}x{{end}}{{define "body"}}{{.NoSuchField}}{{end}}`, "activated.en.tmpl"},
		"exec func":  {"ended.nl.tmpl", `{{define "subject"}}x{{end}}{{define "body"}}{{datetime .Purpose}}{{end}}`, "ended.nl.tmpl"},
		"unknown fn": {"ended.nl.tmpl", `{{define "subject"}}x{{end}}{{define "body"}}{{shout .Purpose}}{{end}}`, "ended.nl.tmpl"},
		"no body":    {"activated.nl.tmpl", `{{define "subject"}}x{{end}}`, "activated.nl.tmpl"},
		"no subject": {"activated.nl.tmpl", `{{define "body"}}x{{end}}`, "activated.nl.tmpl"},
		"empty subj": {"activated.nl.tmpl", `{{define "subject"}} {{end}}{{define "body"}}x{{end}}`, "activated.nl.tmpl"},
		"two lines":  {"activated.nl.tmpl", `{{define "subject"}}a` + "\n" + `b{{end}}{{define "body"}}x{{end}}`, "activated.nl.tmpl"},
		"no value":   {"activated.nl.tmpl", `{{define "subject"}}a{{end}}{{define "body"}}x <no value> y{{end}}`, "activated.nl.tmpl"},
		"misspelt":   {"activate.nl.tmpl", `{{define "subject"}}a{{end}}{{define "body"}}x{{end}}`, "activate.nl.tmpl"},
		"other lang": {"ended.de.tmpl", `{{define "subject"}}a{{end}}{{define "body"}}x{{end}}`, "ended.de.tmpl"},
		"empty file": {"ended.en.tmpl", ``, "ended.en.tmpl"},
		"empty body": {"ended.en.tmpl", `{{define "subject"}}a{{end}}{{define "body"}} {{end}}`, "ended.en.tmpl"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.src), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := LoadTemplates(dir)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not name %s", name, err, tc.want)
		}
	}
	if _, err := LoadTemplates(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory accepted")
	}
	if _, err := LoadTemplates(""); err == nil {
		t.Error("empty directory name accepted")
	}
}

// TestLoadTemplatesRoundTrip: the embedded files, copied to a directory,
// load and render exactly like the defaults.
func TestLoadTemplatesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	entries, err := defaultTemplateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 4 {
		t.Fatalf("%d embedded templates, want 4", len(entries))
	}
	for _, e := range entries {
		b, err := defaultTemplateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tt, err := LoadTemplates(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []Kind{Activated, Ended} {
		for _, l := range []string{"en", "nl"} {
			n := goodNotice(k, l)
			if mustRender(t, n, testContacts, tt) != mustRender(t, n, testContacts, nil) {
				t.Errorf("%s.%s differs", k, l)
			}
		}
	}
}
