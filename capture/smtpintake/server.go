package smtpintake

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Defaults for the zero values of [Server] fields.
const (
	// DefaultMaxBytes bounds one message. Mattermost cuts its Global Relay
	// batches at 250 MiB of message and file bytes before base64 (4/3) and
	// the HTML around them.
	DefaultMaxBytes = 400 << 20
	// DefaultReadTimeout bounds each command line and, from the DATA
	// command on, the whole message transfer.
	DefaultReadTimeout = 10 * time.Minute
	// DefaultWriteTimeout bounds each reply.
	DefaultWriteTimeout = time.Minute
	// DefaultDeliverTimeout bounds one call of Deliver (and ResolveUser).
	DefaultDeliverTimeout = 2 * time.Minute
	// DefaultAuthFailureDelay slows down password guessing.
	DefaultAuthFailureDelay = time.Second
	// maxLineLength is far above what RFC 5321 allows (1000) because the
	// exporter writes the To: header, one address per participant, on one
	// line.
	maxLineLength = 1 << 20
)

// The replies of the intake. go-smtp writes an *smtp.SMTPError as its
// code, enhanced code and message.
var (
	errStartTLS = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
	errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	errAuthInvalid = &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8},
		Message: "Authentication credentials invalid"}
	errRecipient = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
		Message: "Recipient address rejected: this server accepts only its configured archive address"}
	errTooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4},
		Message: "Message size exceeds limit"}
	errRejected = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
		Message: "The export's events were rejected by the gateway"}
	errTemporary = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
		Message: "Temporary failure storing the export, try again later"}
)

// ErrRejected, wrapped in an error of Deliver, says the events will never
// be accepted (the gateway refused an event as malformed): the reply is
// then 554 5.6.0 instead of 451, so Mattermost's export job fails visibly
// rather than sending the same batch forever.
var ErrRejected = errors.New("smtpintake: events rejected")

// ErrServerClosed is returned by Serve and ListenAndServe after Close or
// Shutdown.
var ErrServerClosed = errors.New("smtpintake: server closed")

// Server receives Mattermost's Global Relay compliance export (customer
// type CUSTOM) over SMTP: STARTTLS with the configured certificate, then
// AUTH PLAIN or AUTH LOGIN with the configured credentials, one message per
// channel batch to the configured recipient. Each message is parsed with
// [ParseEML] and handed to Deliver; the reply is 250 only after Deliver
// returned nil.
//
// Replies that refuse:
//
//	530 5.7.0 Must issue a STARTTLS command first   AUTH or MAIL before STARTTLS
//	530 5.7.0 Authentication required               MAIL before AUTH
//	535 5.7.8 Authentication credentials invalid    wrong username or password
//	550 5.1.1 Recipient address rejected            RCPT TO not Recipient
//	552 5.3.4 Message size exceeds limit            more than MaxBytes (SIZE= or DATA)
//	554 5.6.0 Message is not a valid …              ParseEML refused the message (permanent)
//	554 5.6.0 The export's events were rejected     Deliver's error wraps ErrRejected (permanent)
//	451 4.3.0 Temporary failure storing the export  ResolveUser or Deliver failed otherwise (Mattermost retries)
//
// The fields must be set before Serve and not changed after.
type Server struct {
	Addr   string      // listen address for ListenAndServe, e.g. ":2525"
	Domain string      // the name in the greeting; default "localhost"
	TLS    *tls.Config // required: the certificate Mattermost verifies (see [LoadTLS])

	// Username and Password are the credentials Mattermost is configured
	// with (GlobalRelaySettings.SMTPUsername/SMTPPassword). Both required;
	// compared in constant time.
	Username, Password string
	// Recipient is the only accepted RCPT TO address
	// (GlobalRelaySettings.EmailAddress), compared case-insensitively.
	Recipient string
	// MaxBytes bounds one message; 0 means DefaultMaxBytes.
	MaxBytes int64

	// Deliver stores the events of one message, each the JSON of one ingest
	// event ({"kind","post",...} as the plugin sends it). It must return nil
	// only once they are durably stored; an error answers 451 and
	// Mattermost sends the batch again, so Deliver must be idempotent (the
	// events' ids are deterministic). An error wrapping ErrRejected
	// answers 554 instead. Deliver is called concurrently from several
	// connections. Required.
	Deliver func(ctx context.Context, events []json.RawMessage) error
	// DeliverBatch, when > 0, splits one message's events into calls of
	// Deliver of at most this many events (the ingest limit
	// max_batch_events); the reply waits for all of them.
	DeliverBatch int
	// ResolveUser, when set, maps a sender whose user id the export does not
	// print to a Mattermost user id (e.g. by e-mail address through the
	// Mattermost API). An empty answer keeps [DerivedUserID]; an error
	// answers 451.
	ResolveUser func(ctx context.Context, p Participant) (string, error)

	ReadTimeout      time.Duration // default DefaultReadTimeout
	WriteTimeout     time.Duration // default DefaultWriteTimeout
	DeliverTimeout   time.Duration // default DefaultDeliverTimeout
	AuthFailureDelay time.Duration // default DefaultAuthFailureDelay; negative: none

	// Logger receives counts and outcomes, never addresses, ids or
	// content. Nil discards.
	Logger *slog.Logger

	mu     sync.Mutex
	srv    *smtp.Server
	ctx    context.Context
	cancel context.CancelFunc
	closed bool
	userH  [32]byte
	passH  [32]byte
}

// LoadTLS reads a PEM certificate chain and key for the STARTTLS
// certificate.
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("smtpintake: load TLS certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ListenAndServe listens on s.Addr and serves until Close.
func (s *Server) ListenAndServe() error {
	if err := s.init(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtpintake: listen: %w", err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Close; it returns ErrServerClosed
// then.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.init(); err != nil {
		ln.Close()
		return err
	}
	s.mu.Lock()
	closed, srv := s.closed, s.srv
	s.mu.Unlock()
	if closed {
		ln.Close()
		return ErrServerClosed
	}
	err := srv.Serve(ln)
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	if closed && err == nil {
		return ErrServerClosed
	}
	return err
}

// Close closes the listeners and every connection at once; a message
// being delivered gets no reply and Mattermost sends it again.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.cancel != nil {
		s.cancel()
	}
	if s.srv == nil {
		return nil
	}
	if err := s.srv.Close(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown closes the listeners and waits for open connections to end,
// or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	srv, cancel := s.srv, s.cancel
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if cancel != nil {
		cancel()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// init checks the configuration and builds the go-smtp server once.
func (s *Server) init() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	switch {
	case s.TLS == nil || (len(s.TLS.Certificates) == 0 && s.TLS.GetCertificate == nil && s.TLS.GetConfigForClient == nil):
		return errors.New("smtpintake: TLS with a certificate is required (Mattermost always uses STARTTLS)")
	case s.Username == "" || s.Password == "":
		return errors.New("smtpintake: Username and Password are required")
	case s.Recipient == "":
		return errors.New("smtpintake: Recipient is required")
	case s.Deliver == nil:
		return errors.New("smtpintake: Deliver is required")
	case s.MaxBytes < 0:
		return errors.New("smtpintake: MaxBytes must not be negative")
	}
	s.userH, s.passH = sha256.Sum256([]byte(s.Username)), sha256.Sum256([]byte(s.Password))
	tc := s.TLS.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = s.Domain
	if srv.Domain == "" {
		srv.Domain = "localhost"
	}
	srv.TLSConfig = tc
	// go-smtp would answer AUTH before STARTTLS with 523 5.7.10; the
	// sessions refuse it themselves with RFC 3207's 530 5.7.0 and do not
	// advertise AUTH before TLS.
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = s.maxBytes()
	srv.MaxLineLength = maxLineLength
	srv.ReadTimeout = orDefault(s.ReadTimeout, DefaultReadTimeout)
	srv.WriteTimeout = orDefault(s.WriteTimeout, DefaultWriteTimeout)
	srv.ErrorLog = errorLog{s.logger()}
	if s.ResolveUser == nil {
		s.logger().Warn("smtp intake: no ResolveUser: senders whose user id the export does not print are sealed under derived ids, which orders on Mattermost user ids do not find")
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.closed {
		s.cancel()
	}
	s.srv = srv
	return nil
}

func (s *Server) maxBytes() int64 {
	if s.MaxBytes == 0 {
		return DefaultMaxBytes
	}
	return s.MaxBytes
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// checkCredentials compares in constant time: both hashes are always
// compared, whatever the first says.
func (s *Server) checkCredentials(username, password string) bool {
	u, p := sha256.Sum256([]byte(username)), sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(u[:], s.userH[:])&subtle.ConstantTimeCompare(p[:], s.passH[:]) == 1
}

type backend struct{ s *Server }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: b.s, tls: isTLS}, nil
}

// session is one SMTP session; go-smtp starts a new one after STARTTLS.
type session struct {
	s      *Server
	tls    bool
	authed bool
}

func (ss *session) AuthMechanisms() []string {
	if !ss.tls {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !ss.tls {
		return nil, errStartTLS
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return ss.authFailed()
			}
			return ss.authenticate(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(ss.authenticate), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) authenticate(username, password string) error {
	if !ss.s.checkCredentials(username, password) {
		return ss.authFailed()
	}
	ss.authed = true
	return nil
}

func (ss *session) authFailed() error {
	ss.s.logger().Warn("smtp intake: authentication failed")
	d := ss.s.AuthFailureDelay
	if d == 0 {
		d = DefaultAuthFailureDelay
	}
	if d > 0 {
		time.Sleep(d)
	}
	return errAuthInvalid
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if !ss.tls {
		return errStartTLS
	}
	if !ss.authed {
		return errAuthRequired
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if !ss.authed {
		return errAuthRequired
	}
	if !strings.EqualFold(strings.TrimSpace(to), strings.TrimSpace(ss.s.Recipient)) {
		ss.s.logger().Warn("smtp intake: recipient refused")
		return errRecipient
	}
	return nil
}

func (ss *session) Data(r io.Reader) error {
	s := ss.s
	log := s.logger()
	g := &sizeGuard{r: r}
	x, perr := ParseEML(g)
	// Read what the parser left (an epilogue): the size limit covers it
	// too, and a reply must not come before the end of the data.
	if _, err := io.Copy(io.Discard, g); err != nil && !g.tooLarge {
		return errTemporary
	}
	if g.tooLarge {
		log.Warn("smtp intake: message refused", "reason", "size", "limit", s.maxBytes())
		return errTooLarge
	}
	if perr != nil {
		log.Warn("smtp intake: message refused", "reason", "parse", "bytes", g.n, "error", perr.Error())
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: "Message is not a valid Mattermost Global Relay export: " + oneLine(perr.Error())}
	}
	ctx, cancel := context.WithTimeout(s.ctx, orDefault(s.DeliverTimeout, DefaultDeliverTimeout))
	defer cancel()
	if s.ResolveUser != nil {
		if err := x.ResolveUsers(func(p Participant) (string, error) { return s.ResolveUser(ctx, p) }); err != nil {
			log.Error("smtp intake: resolving users failed", "error", err.Error())
			return errTemporary
		}
	}
	events, err := x.Wire()
	if err != nil {
		log.Error("smtp intake: encoding events failed", "error", err.Error())
		return errTemporary
	}
	step := len(events)
	if s.DeliverBatch > 0 {
		step = s.DeliverBatch
	}
	for i := 0; i < len(events); i += step {
		if err := s.Deliver(ctx, events[i:min(i+step, len(events))]); err != nil {
			if errors.Is(err, ErrRejected) {
				log.Error("smtp intake: events rejected", "events", len(events), "from", i, "error", err.Error())
				return errRejected
			}
			log.Error("smtp intake: delivery failed", "events", len(events), "from", i)
			return errTemporary
		}
	}
	log.Info("smtp intake: export stored", "events", len(events), "messages", len(x.Messages),
		"attachments", len(x.Attachments), "bytes", g.n, "warnings", len(x.Warnings))
	for _, w := range x.Warnings {
		log.Warn("smtp intake: export inconsistency", "warning", w)
	}
	return nil
}

func (ss *session) Reset()        {}
func (ss *session) Logout() error { return nil }

// sizeGuard notices when go-smtp's data reader refuses to read past
// MaxBytes, whatever a parser does with the error.
type sizeGuard struct {
	r        io.Reader
	n        int64
	tooLarge bool
}

func (g *sizeGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	g.n += int64(n)
	if err != nil && errors.Is(err, smtp.ErrDataTooLarge) {
		g.tooLarge = true
	}
	return n, err
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// errorLog routes go-smtp's internal errors (connection-level: timeouts,
// TLS handshakes, resets) to the logger, without the peer's address.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	e.l.Warn("smtp intake: connection error", "error", fmt.Sprintf(format, noAddrs(v)...))
}

func (e errorLog) Println(v ...any) {
	e.l.Warn("smtp intake: connection error", "error", fmt.Sprint(noAddrs(v)...))
}

func noAddrs(v []any) []any {
	out := make([]any, len(v))
	for i, a := range v {
		if _, ok := a.(net.Addr); ok {
			a = "(peer)"
		}
		out[i] = a
	}
	return out
}
