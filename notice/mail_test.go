package notice

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

const (
	testUser     = "sealgate@example.com"
	testPassword = "s3cret-Pa55word-xyz"
	testToken    = "ya29.test-bearer-token-abcdef"
)

// testPKI is a self-signed certificate for localhost and 127.0.0.1.
type testPKI struct {
	server *tls.Config
	roots  *x509.CertPool
}

var getTestPKI = sync.OnceValues(func() (*testPKI, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "sealgate test SMTP"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return &testPKI{
		server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			MinVersion:   tls.VersionTLS12,
		},
		roots: roots,
	}, nil
})

func pki(t *testing.T) *testPKI {
	t.Helper()
	p, err := getTestPKI()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is the server's transcript (commands and replies, decrypted).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type received struct {
	mech string
	from string
	to   []string
	data []byte
}

type oauthSeen struct {
	user, host string
	port       int
}

// testBackend is an SMTP submission server: AUTH (PLAIN, LOGIN, XOAUTH2,
// OAUTHBEARER) is required before MAIL, and go-smtp offers AUTH only over
// TLS (AllowInsecureAuth false).
type testBackend struct {
	mu    sync.Mutex
	msgs  []received
	oauth []oauthSeen
}

func (b *testBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &testSession{b: b}, nil
}

func (b *testBackend) received() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

type testSession struct {
	b    *testBackend
	mech string // set once authenticated
	from string
	to   []string
}

func (s *testSession) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login, "XOAUTH2", sasl.OAuthBearer}
}

func (s *testSession) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if (identity != "" && identity != user) || user != testUser || pass != testPassword {
				return smtp.ErrAuthFailed
			}
			s.mech = mech
			return nil
		}), nil
	case sasl.Login:
		return &loginServer{check: func(user, pass string) bool {
			if user == testUser && pass == testPassword {
				s.mech = mech
				return true
			}
			return false
		}}, nil
	case "XOAUTH2":
		return &xoauth2Server{check: func(ir []byte) bool {
			if string(ir) == "user="+testUser+"\x01auth=Bearer "+testToken+"\x01\x01" {
				s.mech = mech
				return true
			}
			return false
		}}, nil
	case sasl.OAuthBearer:
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if o.Token != testToken {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			s.b.mu.Lock()
			s.b.oauth = append(s.b.oauth, oauthSeen{o.Username, o.Host, o.Port})
			s.b.mu.Unlock()
			s.mech = mech
			return nil
		}), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *testSession) Mail(from string, _ *smtp.MailOptions) error {
	if s.mech == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.msgs = append(s.b.msgs, received{mech: s.mech, from: s.from, to: s.to, data: data})
	return nil
}

func (s *testSession) Reset()        { s.from, s.to = "", nil }
func (s *testSession) Logout() error { return nil }

// loginServer is the server side of LOGIN (go-sasl has only the client).
type loginServer struct {
	check func(user, pass string) bool
	user  *string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	if l.user == nil {
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		u := string(resp)
		l.user = &u
		return []byte("Password:"), false, nil
	}
	if !l.check(*l.user, string(resp)) {
		return nil, true, smtp.ErrAuthFailed
	}
	return nil, true, nil
}

// xoauth2Server is the server side of XOAUTH2: a JSON error challenge on
// failure, then 535 after the client's empty response.
type xoauth2Server struct {
	check  func(ir []byte) bool
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		if len(resp) != 0 {
			return nil, true, errors.New("expected an empty response")
		}
		return nil, true, smtp.ErrAuthFailed
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	if x.check(resp) {
		return nil, true, nil
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
}

type testServer struct {
	addr       string
	be         *testBackend
	transcript *syncBuffer
}

type serverMode int

const (
	modeStartTLS serverMode = iota
	modeImplicitTLS
	modePlainOnly // no TLS at all: no STARTTLS, hence no AUTH
)

func startServer(t *testing.T, mode serverMode) *testServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{addr: l.Addr().String(), be: &testBackend{}, transcript: &syncBuffer{}}
	srv := smtp.NewServer(ts.be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = false
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.Debug = ts.transcript
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch mode {
	case modeStartTLS:
		srv.TLSConfig = pki(t).server
	case modeImplicitTLS:
		srv.TLSConfig = pki(t).server
		l = tls.NewListener(l, pki(t).server)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // Close misses a listener that Serve has not registered yet
		<-done
	})
	return ts
}

func (ts *testServer) sender(t *testing.T, mech string) *MailSender {
	s := &MailSender{
		Addr:      ts.addr,
		HostName:  "localhost",
		From:      "Sealgate <sealgate@example.com>",
		Username:  testUser,
		Mechanism: mech,
		TLS:       &tls.Config{RootCAs: pki(t).roots},
		Timeout:   10 * time.Second,
		now:       func() time.Time { return testNow },
	}
	switch mech {
	case MechXOAuth2, MechOAuthBearer:
		s.TokenSource = func(context.Context) (string, error) { return testToken, nil }
	default:
		s.Password = testPassword
	}
	return s
}

var testNow = time.Date(2026, 3, 4, 10, 30, 0, 0, time.FixedZone("CET", 3600))

func englishNotice() (*Notice, Message) {
	n := &Notice{
		ID: "ntc_7f3a9c", Kind: Activated, UserID: "u1", Email: "jan.jansen@example.nl", Locale: "en",
		OrderID: "ord_20260304_01",
	}
	m := Message{
		Subject: "Notice: your messages may be read under investigation order ord_20260304_01",
		Body: "Dear colleague,\n\nAn investigation order about you was activated on 4 March 2026.\n" +
			"Window: 2026-01-01 to 2026-02-28. Scope: all channels except excluded ones.\n" +
			"Purpose: investigation of a suspected breach of policy clause 4.2 (confidential information), " +
			"legal basis: legitimate interest, GDPR art. 6(1)(f). Approved by: compliance officer, works council.\n" +
			".\n..a line starting with dots\ntrailing spaces   \n=equals= sign\n\n" +
			"Your rights: contact privacy@example.com or the Autoriteit Persoonsgegevens.\n",
	}
	return n, m
}

func dutchNotice() (*Notice, Message) {
	n := &Notice{
		ID: "ntc_b21e04", Kind: Ended, UserID: "u2", Email: "Zoë de Vries <zoe.devries@example.nl>", Locale: "nl",
		OrderID: "ord_20260304_02", Ended: "closed",
	}
	m := Message{
		Subject: "Kennisgeving: het onderzoeksbevel ord_20260304_02 over uw berichten is beëindigd — geëxporteerd: 2",
		Body: "Beste collega,\n\nHet onderzoeksbevel is beëindigd (gesloten). Er zijn 3 pagina's bekeken en 2 exports gemaakt; " +
			"in totaal zijn 117 berichten getoond. Geëxporteerde gegevens worden vernietigd.\n" +
			"Uw rechten: neem contact op met de functionaris gegevensbescherming (privacy@example.com) " +
			"of met de Autoriteit Persoonsgegevens, https://autoriteitpersoonsgegevens.nl — één klacht volstaat.\n",
	}
	return n, m
}

// checkMessage parses what the server received and checks it against the
// notice and message.
func checkMessage(t *testing.T, got received, n *Notice, m Message, wantTo string) {
	t.Helper()
	if got.from != "sealgate@example.com" || len(got.to) != 1 || got.to[0] != wantTo {
		t.Errorf("envelope from %q to %q, want sealgate@example.com to %q", got.from, got.to, wantTo)
	}
	for i, c := range got.data {
		if c >= 0x80 {
			t.Fatalf("message has a non-ASCII byte at %d", i)
		}
		if c == '\n' && (i == 0 || got.data[i-1] != '\r') {
			t.Fatalf("message has a bare LF at %d", i)
		}
	}
	for line := range strings.SplitSeq(string(got.data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line longer than 998: %q", line)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(got.data))
	if err != nil {
		t.Fatalf("net/mail: %v\n%s", err, got.data)
	}
	h := msg.Header
	from, err := mail.ParseAddress(h.Get("From"))
	if err != nil || from.Address != "sealgate@example.com" || from.Name != "Sealgate" {
		t.Errorf("From %q: %v %v", h.Get("From"), from, err)
	}
	to, err := mail.ParseAddress(h.Get("To"))
	if err != nil || to.Address != wantTo || to.Name != "" {
		t.Errorf("To %q: %v %v", h.Get("To"), to, err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", subject, err, m.Subject)
	}
	if date, err := h.Date(); err != nil || !date.Equal(testNow) {
		t.Errorf("Date %q: %v %v", h.Get("Date"), date, err)
	}
	for k, want := range map[string]string{
		"Message-ID":                "<" + n.ID + "@sealgate>",
		"MIME-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
		"X-Sealgate-Notice":         n.ID,
		"X-Sealgate-Order":          n.OrderID,
	} {
		if v := h.Get(k); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if mt, params, err := mime.ParseMediaType(h.Get("Content-Type")); err != nil || mt != "text/plain" || params["charset"] != "utf-8" {
		t.Errorf("Content-Type %q: %v", h.Get("Content-Type"), err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("quoted-printable body: %v", err)
	}
	if got := strings.ReplaceAll(string(body), "\r\n", "\n"); got != m.Body {
		t.Errorf("body decodes to\n%q\nwant\n%q", got, m.Body)
	}
}

func TestMailSenderName(t *testing.T) {
	var s Sender = &MailSender{}
	if s.Name() != "email" {
		t.Fatalf("Name() = %q", s.Name())
	}
}

func TestMailSenderMechanisms(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	wantMech := map[string]string{
		"": sasl.Plain, MechPlain: sasl.Plain, MechLogin: sasl.Login,
		MechXOAuth2: "XOAUTH2", MechOAuthBearer: sasl.OAuthBearer, "LOGIN": sasl.Login,
	}
	for _, mech := range []string{"", MechPlain, MechLogin, MechXOAuth2, MechOAuthBearer, "LOGIN"} {
		t.Run("mech="+mech, func(t *testing.T) {
			before := len(ts.be.received())
			n, m := englishNotice()
			if err := ts.sender(t, mech).Send(context.Background(), n, m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := ts.be.received()
			if len(msgs) != before+1 {
				t.Fatalf("server got %d messages, want %d", len(msgs), before+1)
			}
			got := msgs[len(msgs)-1]
			if got.mech != wantMech[mech] {
				t.Errorf("authenticated with %q, want %q", got.mech, wantMech[mech])
			}
			checkMessage(t, got, n, m, n.Email)
		})
	}
	ts.be.mu.Lock()
	defer ts.be.mu.Unlock()
	if len(ts.be.oauth) != 1 || ts.be.oauth[0] != (oauthSeen{testUser, "localhost", portOf(t, ts.addr)}) {
		t.Errorf("OAUTHBEARER options seen: %+v", ts.be.oauth)
	}
	if !strings.Contains(ts.transcript.String(), "STARTTLS") {
		t.Error("transcript has no STARTTLS")
	}
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var port int
	for _, c := range p {
		port = port*10 + int(c-'0')
	}
	return port
}

func TestMailSenderLocales(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	for _, tc := range []struct {
		name   string
		notice func() (*Notice, Message)
		to     string
	}{
		{"en", englishNotice, "jan.jansen@example.nl"},
		{"nl", dutchNotice, "zoe.devries@example.nl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, m := tc.notice()
			if err := ts.sender(t, MechPlain).Send(context.Background(), n, m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := ts.be.received()
			got := msgs[len(msgs)-1]
			checkMessage(t, got, n, m, tc.to)
			raw := string(got.data)
			if tc.name == "nl" && !strings.Contains(raw, "Subject: =?utf-8?q?") {
				t.Errorf("Dutch subject not RFC 2047 Q-encoded:\n%s", raw)
			}
			if tc.name == "en" && !strings.Contains(raw, "Subject: Notice: your messages") {
				t.Errorf("English subject encoded needlessly:\n%s", raw)
			}
		})
	}
}

func TestMailSenderImplicitTLS(t *testing.T) {
	ts := startServer(t, modeImplicitTLS)
	s := ts.sender(t, MechPlain)
	s.ImplicitTLS = true
	s.HostName = "" // verified for 127.0.0.1, the host of Addr
	n, m := dutchNotice()
	if err := s.Send(context.Background(), n, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	msgs := ts.be.received()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages", len(msgs))
	}
	checkMessage(t, msgs[0], n, m, "zoe.devries@example.nl")
}

// assertSecretsAbsent checks that an error leaks neither credentials nor
// the body.
func assertSecretsAbsent(t *testing.T, err error, m Message) {
	t.Helper()
	msg := err.Error()
	for _, s := range []string{testPassword, testToken} {
		if strings.Contains(msg, s) {
			t.Errorf("error contains a secret: %q", msg)
		}
	}
	for line := range strings.SplitSeq(m.Body, "\n") {
		if len(line) > 12 && strings.Contains(msg, line) {
			t.Errorf("error contains the body: %q", msg)
		}
	}
}

func TestMailSenderAuthFailure(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	for _, mech := range []string{MechPlain, MechLogin, MechXOAuth2, MechOAuthBearer} {
		t.Run(mech, func(t *testing.T) {
			s := ts.sender(t, mech)
			if s.TokenSource != nil {
				s.TokenSource = func(context.Context) (string, error) { return "wrong-" + testToken, nil }
			} else {
				s.Password = "wrong-" + testPassword
			}
			n, m := englishNotice()
			err := s.Send(context.Background(), n, m)
			if err == nil {
				t.Fatal("Send succeeded with wrong credentials")
			}
			if !errors.Is(err, ErrAuth) {
				t.Errorf("error is not ErrAuth: %v", err)
			}
			assertSecretsAbsent(t, err, m)
			if strings.Contains(err.Error(), "wrong-") {
				t.Errorf("error contains the wrong credential: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
	if n := len(ts.be.received()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestMailSenderTokenSourceError(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	s := ts.sender(t, MechXOAuth2)
	s.TokenSource = func(context.Context) (string, error) {
		return testToken, errors.New("refresh failed for " + testToken)
	}
	n, m := englishNotice()
	err := s.Send(context.Background(), n, m)
	if err == nil {
		t.Fatal("Send succeeded")
	}
	assertSecretsAbsent(t, err, m)
	if ts.transcript.String() != "" {
		t.Errorf("connected although the token source failed:\n%s", ts.transcript)
	}
}

func TestMailSenderRequiresSTARTTLS(t *testing.T) {
	ts := startServer(t, modePlainOnly)
	for _, mech := range []string{MechPlain, MechXOAuth2, "none"} {
		t.Run(mech, func(t *testing.T) {
			s := ts.sender(t, mech)
			if mech == "none" { // no credentials: still no clear-text sending
				s.Username, s.Password, s.Mechanism = "", "", ""
			}
			n, m := englishNotice()
			err := s.Send(context.Background(), n, m)
			if !errors.Is(err, ErrNoStartTLS) {
				t.Fatalf("Send = %v, want ErrNoStartTLS", err)
			}
			if !strings.Contains(err.Error(), "STARTTLS") {
				t.Errorf("error does not mention STARTTLS: %v", err)
			}
			assertSecretsAbsent(t, err, m)
		})
	}
	tr := ts.transcript.String()
	if !strings.Contains(tr, "EHLO") {
		t.Fatalf("transcript has no EHLO:\n%s", tr)
	}
	for _, cmd := range []string{"AUTH", "MAIL FROM", "RCPT", "DATA"} {
		if strings.Contains(tr, cmd) {
			t.Errorf("%s sent to a server without STARTTLS:\n%s", cmd, tr)
		}
	}
	if n := len(ts.be.received()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestMailSenderUntrustedCertificate(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	for _, tc := range []struct {
		name string
		mod  func(*MailSender)
	}{
		{"unknown-root", func(s *MailSender) { s.TLS = &tls.Config{RootCAs: x509.NewCertPool()} }},
		{"nil-TLS-system-roots", func(s *MailSender) { s.TLS = nil }},
		{"wrong-hostname", func(s *MailSender) { s.HostName = "mail.example.org" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ts.sender(t, MechPlain)
			tc.mod(s)
			n, m := englishNotice()
			err := s.Send(context.Background(), n, m)
			if err == nil {
				t.Fatal("Send succeeded with an untrusted certificate")
			}
			if errors.Is(err, ErrNoStartTLS) || errors.Is(err, ErrAuth) {
				t.Errorf("wrong error kind: %v", err)
			}
			var cve *tls.CertificateVerificationError
			if !errors.As(err, &cve) {
				t.Errorf("error is not a certificate verification error: %v", err)
			}
			assertSecretsAbsent(t, err, m)
		})
	}
	if tr := ts.transcript.String(); strings.Contains(tr, "AUTH") || strings.Contains(tr, "MAIL FROM") {
		t.Errorf("credentials or mail sent over an unverified connection:\n%s", tr)
	}
	if n := len(ts.be.received()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestMailSenderHeaderInjection(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	for _, tc := range []struct {
		name string
		mod  func(*Notice, *Message, *MailSender)
	}{
		{"subject-crlf", func(_ *Notice, m *Message, _ *MailSender) { m.Subject = "Notice\r\nBcc: evil@example.org" }},
		{"subject-lf", func(_ *Notice, m *Message, _ *MailSender) { m.Subject = "Notice\nBcc: evil@example.org" }},
		{"subject-nul", func(_ *Notice, m *Message, _ *MailSender) { m.Subject = "Notice\x00" }},
		{"email-lf", func(n *Notice, _ *Message, _ *MailSender) { n.Email = "jan@example.nl\nBcc: evil@example.org" }},
		{"order-cr", func(n *Notice, _ *Message, _ *MailSender) { n.OrderID = "ord_1\rX-Evil: 1" }},
		{"id-crlf", func(n *Notice, _ *Message, _ *MailSender) { n.ID = "ntc_1\r\nBcc: evil@example.org" }},
		{"id-angle", func(n *Notice, _ *Message, _ *MailSender) { n.ID = "ntc>1" }},
		{"from-crlf", func(_ *Notice, _ *Message, s *MailSender) { s.From = "sealgate@example.com\r\nBcc: evil@example.org" }},
		{"email-invalid", func(n *Notice, _ *Message, _ *MailSender) { n.Email = "not an address" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, m := englishNotice()
			s := ts.sender(t, MechPlain)
			tc.mod(n, &m, s)
			err := s.Send(context.Background(), n, m)
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("Send = %v, want ErrInvalidHeader", err)
			}
			if strings.Contains(err.Error(), "evil") || strings.Contains(err.Error(), "jan@") {
				t.Errorf("error repeats the header value: %v", err)
			}
		})
	}
	if tr := ts.transcript.String(); tr != "" {
		t.Errorf("connected for an invalid message:\n%s", tr)
	}
}

func TestMailSenderNoAddress(t *testing.T) {
	ts := startServer(t, modeStartTLS)
	for _, email := range []string{"", "  "} {
		n, m := englishNotice()
		n.Email = email
		err := ts.sender(t, MechPlain).Send(context.Background(), n, m)
		if !errors.Is(err, ErrNoAddress) {
			t.Fatalf("Send(email %q) = %v, want ErrNoAddress", email, err)
		}
	}
	if tr := ts.transcript.String(); tr != "" {
		t.Errorf("connected without an address:\n%s", tr)
	}
}

func TestMailSenderTimeout(t *testing.T) {
	// A server that accepts and never greets.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns sync.WaitGroup
	conns.Go(func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
	})
	s := &MailSender{
		Addr: l.Addr().String(), From: "sealgate@example.com",
		Username: testUser, Password: testPassword,
		TLS:     &tls.Config{RootCAs: pki(t).roots},
		Timeout: 200 * time.Millisecond,
	}
	n, m := englishNotice()
	start := time.Now()
	err = s.Send(context.Background(), n, m)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v", d)
	}
	l.Close()
	conns.Wait()
}

func TestMailSenderConfigErrors(t *testing.T) {
	n, m := englishNotice()
	for _, tc := range []struct {
		name string
		s    MailSender
	}{
		{"no-addr", MailSender{From: "a@example.com"}},
		{"no-from", MailSender{Addr: "127.0.0.1:1"}},
		{"unknown-mech", MailSender{Addr: "127.0.0.1:1", From: "a@example.com", Username: "u", Password: "p", Mechanism: "cram-md5"}},
		{"oauth-no-token-source", MailSender{Addr: "127.0.0.1:1", From: "a@example.com", Username: "u", Mechanism: MechXOAuth2}},
		{"plain-no-password", MailSender{Addr: "127.0.0.1:1", From: "a@example.com", Username: "u"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.s.Send(context.Background(), n, m); err == nil {
				t.Fatal("Send succeeded")
			}
		})
	}
}

func TestBuildMailFolding(t *testing.T) {
	n, m := dutchNotice()
	m.Subject = strings.Repeat("Kennisgeving over uw berichten — beëindigd. ", 8)
	_, _, raw, err := buildMail("sealgate@example.com", n, m, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(raw), "\r\n") {
		if len(line) > 100 {
			t.Errorf("header or body line of %d characters: %q", len(line), line)
		}
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", subject, err, m.Subject)
	}

	m.Subject = strings.Repeat("Notice about your messages, order ended. ", 8)
	_, _, raw, err = buildMail("sealgate@example.com", n, m, testNow)
	if err != nil {
		t.Fatal(err)
	}
	msg, err = mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	// net/textproto trims the trailing space of the value.
	if got := msg.Header.Get("Subject"); got != strings.TrimSpace(m.Subject) {
		t.Errorf("ASCII subject unfolds to %q", got)
	}
}

func TestRedact(t *testing.T) {
	err := redact(errors.Join(ErrAuth, errors.New("server said "+testPassword)), []string{testPassword, ""})
	if strings.Contains(err.Error(), testPassword) || !errors.Is(err, ErrAuth) {
		t.Fatalf("redact: %v", err)
	}
	orig := errors.New("nothing secret")
	if redact(orig, []string{testPassword}) != orig {
		t.Fatal("redact changed an error without secrets")
	}
}
