package notice

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// SASL mechanisms MailSender can authenticate with (MailSender.Mechanism).
const (
	MechPlain       = "plain"
	MechLogin       = "login"
	MechXOAuth2     = "xoauth2"
	MechOAuthBearer = "oauthbearer"
)

// DefaultMailTimeout bounds one MailSender.Send (dial, TLS, AUTH and DATA)
// when MailSender.Timeout is zero.
const DefaultMailTimeout = 30 * time.Second

var (
	// ErrNoAddress: the notice has no e-mail address. The dispatcher should
	// skip the e-mail channel for this notice rather than retry it.
	ErrNoAddress = errors.New("notice: the recipient has no address on this channel")
	// ErrNoStartTLS: the server did not offer STARTTLS. MailSender never
	// authenticates or sends in clear, so nothing was sent.
	ErrNoStartTLS = errors.New("notice/email: SMTP server does not offer STARTTLS; refusing to authenticate or send without TLS")
	// ErrInvalidHeader: a header value (From, To, Subject, the notice or
	// order id) contains CR, LF or another control character, or an id is
	// not usable in a header. Nothing was sent.
	ErrInvalidHeader = errors.New("notice/email: invalid header value")
	// ErrAuth: the server rejected the credentials (or the mechanism). This
	// is a configuration problem; retrying will not help until it is fixed.
	ErrAuth = errors.New("notice/email: SMTP authentication failed")
)

// MailSender delivers notices by e-mail over SMTP. It is the second channel
// (or the fallback) after the Mattermost direct message.
//
// TLS is mandatory: with ImplicitTLS the connection is TLS from the start
// (port 465); otherwise the server must offer STARTTLS (port 587), and
// MailSender refuses (ErrNoStartTLS) to authenticate or send when it does
// not. The server certificate is verified against TLS.RootCAs (system roots
// when nil) for HostName.
//
// MailSender authenticates when Username, Password or TokenSource is set,
// with Mechanism: "plain" (default), "login", "xoauth2" or "oauthbearer";
// the OAuth mechanisms take a bearer token from TokenSource on every Send
// (Password is unused then).
//
// SMTP has no idempotency: a Send that fails after the server accepted the
// message may be repeated by the dispatcher. The Message-ID is derived from
// the notice id ("<" + n.ID + "@sealgate>"), so the copies are recognisable
// as one message. Errors never contain the password, the token or the
// message body.
//
// A MailSender must not be modified once in use; Send is safe for
// concurrent use.
type MailSender struct {
	// Addr is the submission server, host:port.
	Addr string
	// HostName is the name the server certificate is verified for; default
	// the host of Addr (or TLS.ServerName when set).
	HostName string
	// From is the sender address, optionally with a display name
	// (`Sealgate <sealgate@example.com>`).
	From string

	Username string
	Password string
	// Mechanism is one of MechPlain (default), MechLogin, MechXOAuth2,
	// MechOAuthBearer.
	Mechanism string
	// TokenSource returns an OAuth 2.0 access token for MechXOAuth2 and
	// MechOAuthBearer. It is called once per Send.
	TokenSource func(ctx context.Context) (string, error)

	// TLS is the client TLS configuration (e.g. RootCAs); nil means the
	// system roots. A MinVersion of zero is raised to TLS 1.2.
	TLS *tls.Config
	// ImplicitTLS connects with TLS from the start (port 465) instead of
	// STARTTLS.
	ImplicitTLS bool

	// LocalName is the name given in EHLO after TLS is up; default
	// "localhost".
	LocalName string
	// Timeout bounds one Send; default DefaultMailTimeout.
	Timeout time.Duration

	now func() time.Time // tests
}

var _ Sender = (*MailSender)(nil)

// Name is "email".
func (s *MailSender) Name() string { return "email" }

// Send e-mails m to n.Email. It returns ErrNoAddress when the notice has no
// e-mail address and ErrInvalidHeader when a header value is unsafe, both
// before connecting.
func (s *MailSender) Send(ctx context.Context, n *Notice, m Message) (err error) {
	if n == nil {
		return errors.New("notice/email: nil notice")
	}
	if strings.TrimSpace(n.Email) == "" {
		return fmt.Errorf("%w (notice %s)", ErrNoAddress, safeID(n.ID))
	}
	if s.Addr == "" {
		return errors.New("notice/email: no SMTP server address configured")
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	envFrom, envTo, msg, err := buildMail(s.From, n, m, now())
	if err != nil {
		return err
	}

	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultMailTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	host, portStr, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("notice/email: SMTP server address %q: %w", s.Addr, err)
	}
	port, _ := strconv.Atoi(portStr)
	serverName := s.HostName
	if serverName == "" {
		serverName = host
	}
	cfg := &tls.Config{}
	if s.TLS != nil {
		cfg = s.TLS.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = serverName
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}

	// Credentials are prepared before dialling (a token source may fail);
	// they are used only once TLS is established.
	auth, mech, secrets, err := s.saslClient(ctx, cfg.ServerName, port)
	if err != nil {
		return redact(err, secrets)
	}
	defer func() {
		if err != nil {
			err = redact(err, secrets)
		}
	}()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("notice/email: connect to %s: %w", s.Addr, err)
	}
	defer raw.Close()
	// go-smtp has no context support: closing the connection aborts any
	// command in progress when ctx ends.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	fail := func(step string, err error) error {
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return fmt.Errorf("notice/email: %s with %s: %w (%w)", step, s.Addr, err, cerr)
		}
		return fmt.Errorf("notice/email: %s with %s: %w", step, s.Addr, err)
	}

	var c *smtp.Client
	if s.ImplicitTLS {
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fail("TLS handshake", err)
		}
		c = smtp.NewClient(tc)
	} else {
		// NewClientStartTLS greets, checks that STARTTLS is offered and
		// starts it; nothing but EHLO and STARTTLS is sent in clear.
		c, err = smtp.NewClientStartTLS(raw, cfg)
		if err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) && ctx.Err() == nil && strings.Contains(err.Error(), "support STARTTLS") {
				return fmt.Errorf("%w (%s)", ErrNoStartTLS, s.Addr)
			}
			return fail("STARTTLS", err)
		}
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.CommandTimeout = time.Until(dl)
		c.SubmissionTimeout = time.Until(dl)
	}

	// With STARTTLS the handshake (and certificate verification) happens
	// on this EHLO.
	local := s.LocalName
	if local == "" {
		local = "localhost"
	}
	if err := c.Hello(local); err != nil {
		return fail("TLS/EHLO", err)
	}
	if st, ok := c.TLSConnectionState(); !ok || !st.HandshakeComplete {
		return fmt.Errorf("%w (%s: no TLS session)", ErrNoStartTLS, s.Addr)
	}

	if auth != nil {
		if !c.SupportsAuth(mech) {
			return fmt.Errorf("%w: %s does not offer AUTH %s", ErrAuth, s.Addr, mech)
		}
		if err := c.Auth(auth); err != nil {
			if ctx.Err() != nil {
				return fail("AUTH "+mech, err)
			}
			return fmt.Errorf("%w (AUTH %s with %s): %w", ErrAuth, mech, s.Addr, err)
		}
	}

	if err := c.SendMail(envFrom, []string{envTo}, bytes.NewReader(msg)); err != nil {
		return fail("send", err)
	}
	// The server has accepted the message; a failing QUIT must not make
	// the dispatcher send it again.
	_ = c.Quit()
	return nil
}

// saslClient returns the SASL client for the configured credentials (nil
// when none are configured), the SASL mechanism name and the secrets to
// keep out of errors.
func (s *MailSender) saslClient(ctx context.Context, host string, port int) (sasl.Client, string, []string, error) {
	if s.Username == "" && s.Password == "" && s.TokenSource == nil {
		return nil, "", nil, nil
	}
	secrets := []string{s.Password}
	mech := strings.ToLower(strings.TrimSpace(s.Mechanism))
	if mech == "" {
		mech = MechPlain
	}
	switch mech {
	case MechPlain, MechLogin:
		if s.Username == "" || s.Password == "" {
			return nil, "", secrets, fmt.Errorf("notice/email: mechanism %s needs a username and a password", mech)
		}
		if mech == MechPlain {
			return sasl.NewPlainClient("", s.Username, s.Password), sasl.Plain, secrets, nil
		}
		return sasl.NewLoginClient(s.Username, s.Password), sasl.Login, secrets, nil
	case MechXOAuth2, MechOAuthBearer:
		if s.TokenSource == nil {
			return nil, "", secrets, fmt.Errorf("notice/email: mechanism %s needs a token source", mech)
		}
		if mech == MechXOAuth2 && s.Username == "" {
			return nil, "", secrets, errors.New("notice/email: mechanism xoauth2 needs a username")
		}
		tok, err := s.TokenSource(ctx)
		if tok != "" {
			secrets = append(secrets, tok)
		}
		if err != nil {
			return nil, "", secrets, fmt.Errorf("notice/email: token source: %w", err)
		}
		if tok == "" {
			return nil, "", secrets, errors.New("notice/email: token source returned an empty token")
		}
		if strings.ContainsAny(tok+s.Username, "\x01\r\n") {
			return nil, "", secrets, errors.New("notice/email: username or token contains a control character")
		}
		if mech == MechXOAuth2 {
			return &xoauth2Client{user: s.Username, token: tok}, xoauth2Mech, secrets, nil
		}
		return sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: s.Username, Token: tok, Host: host, Port: port,
		}), sasl.OAuthBearer, secrets, nil
	default:
		return nil, "", secrets, fmt.Errorf("notice/email: unknown SASL mechanism %q (want plain, login, xoauth2 or oauthbearer)", s.Mechanism)
	}
}

const xoauth2Mech = "XOAUTH2"

// xoauth2Client is the client side of Google's and Microsoft's XOAUTH2
// SASL mechanism, which go-sasl does not provide. The initial response is
// "user=" user ^A "auth=Bearer " token ^A ^A. On failure the server sends
// a JSON error as a challenge and expects an empty response, after which
// it fails the exchange.
type xoauth2Client struct {
	user, token string
	challenged  bool
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return xoauth2Mech, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if c.challenged {
		return nil, sasl.ErrUnexpectedServerChallenge
	}
	c.challenged = true
	return []byte{}, nil
}

// buildMail validates the addresses and header values and renders the RFC
// 5322 message with CRLF line endings and a quoted-printable body.
func buildMail(from string, n *Notice, m Message, now time.Time) (envFrom, envTo string, msg []byte, err error) {
	for _, f := range []struct{ name, value string }{
		{"From", from}, {"To", n.Email}, {"Subject", m.Subject},
		{"X-Sealgate-Notice", n.ID}, {"X-Sealgate-Order", n.OrderID},
	} {
		if err := checkHeaderValue(f.value); err != nil {
			return "", "", nil, fmt.Errorf("%w: %s %v (notice %s)", ErrInvalidHeader, f.name, err, safeID(n.ID))
		}
	}
	if !isMsgIDPart(n.ID) {
		return "", "", nil, fmt.Errorf("%w: notice id is not usable in a Message-ID", ErrInvalidHeader)
	}
	if strings.ContainsFunc(n.OrderID, func(r rune) bool { return r > '~' }) {
		return "", "", nil, fmt.Errorf("%w: X-Sealgate-Order is not ASCII (notice %s)", ErrInvalidHeader, n.ID)
	}
	if from == "" {
		return "", "", nil, errors.New("notice/email: no From address configured")
	}
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return "", "", nil, fmt.Errorf("%w: From address: %v", ErrInvalidHeader, err)
	}
	toAddr, err := mail.ParseAddress(strings.TrimSpace(n.Email))
	if err != nil {
		// The address itself is personal data: not in the error.
		return "", "", nil, fmt.Errorf("%w: recipient address is not valid (notice %s)", ErrInvalidHeader, n.ID)
	}

	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(foldHeader(name, value)) }
	header("From", fromAddr.String())
	header("To", (&mail.Address{Address: toAddr.Address}).String())
	header("Subject", encodeSubject(m.Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+n.ID+"@sealgate>")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	header("X-Sealgate-Notice", n.ID)
	header("X-Sealgate-Order", n.OrderID)
	b.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&b) // text mode: line breaks become CRLF
	if _, err := qp.Write([]byte(m.Body)); err != nil {
		return "", "", nil, fmt.Errorf("notice/email: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return "", "", nil, fmt.Errorf("notice/email: encode body: %w", err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return fromAddr.Address, toAddr.Address, b.Bytes(), nil
}

// checkHeaderValue refuses CR, LF and other control characters (a header
// injection) and invalid UTF-8.
func checkHeaderValue(v string) error {
	for _, r := range v {
		switch {
		case r == '\r' || r == '\n':
			return errors.New("contains CR or LF")
		case r == '\t':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return errors.New("contains a control character")
		case r == '\uFFFD':
			return errors.New("is not valid UTF-8")
		}
	}
	return nil
}

// isMsgIDPart says whether id can be the left part of a Message-ID: a
// dot-atom of RFC 5322 atext.
func isMsgIDPart(id string) bool {
	if id == "" || strings.HasPrefix(id, ".") || strings.HasSuffix(id, ".") || strings.Contains(id, "..") {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}

// safeID is a notice id fit for an error message.
func safeID(id string) string {
	if isMsgIDPart(id) {
		return id
	}
	return "(invalid id)"
}

// encodeSubject RFC 2047-encodes a subject with non-ASCII characters.
func encodeSubject(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return mime.QEncoding.Encode("utf-8", s)
		}
	}
	return s
}

// foldHeader renders "Name: value" CRLF, folding at spaces so lines stay
// near 78 characters. Folding inserts CRLF before an existing space, which
// unfolding removes again; encoded-words contain no spaces.
func foldHeader(name, value string) string {
	const limit = 78
	var b strings.Builder
	b.WriteString(name)
	b.WriteString(":")
	lineLen := len(name) + 1
	for i, w := range strings.Split(value, " ") {
		if i > 0 && w != "" && lineLen+1+len(w) > limit && lineLen > len(name)+1 {
			b.WriteString("\r\n")
			lineLen = 0
		}
		b.WriteString(" ")
		b.WriteString(w)
		lineLen += 1 + len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// redactedError is an error whose message had a secret removed. It drops
// the original chain (whose messages contain the secret) and keeps only
// the sentinels callers test for.
type redactedError struct {
	msg   string
	kinds []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.kinds }

// redact removes the secrets from err's message.
func redact(err error, secrets []string) error {
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if s != "" {
			clean = strings.ReplaceAll(clean, s, "[redacted]")
		}
	}
	if clean == msg {
		return err
	}
	re := &redactedError{msg: clean}
	for _, k := range []error{ErrNoAddress, ErrNoStartTLS, ErrInvalidHeader, ErrAuth, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, k) {
			re.kinds = append(re.kinds, k)
		}
	}
	return re
}
