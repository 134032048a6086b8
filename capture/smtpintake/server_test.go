package smtpintake

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/sealgate/sealgate/gateway"
)

const (
	testUser      = "mattermost-export"
	testPassword  = "correct horse battery staple"
	testRecipient = "archive@sealgate.example"
	testHost      = "localhost" // the certificate's name, as Mattermost's CustomSMTPServerName
)

// selfSigned makes a certificate for localhost and 127.0.0.1 and a pool
// that trusts it: the client verifies it as Mattermost does.
func selfSigned(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sealgate smtp intake test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{testHost},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, pool
}

// intake is a running Server with what it delivered.
type intake struct {
	*Server
	addr    string
	pool    *x509.CertPool
	conns   atomic.Int32
	mu      sync.Mutex
	batches [][]json.RawMessage
	fail    atomic.Int32 // Deliver fails this many more times
}

func (in *intake) delivered() [][]json.RawMessage {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([][]json.RawMessage(nil), in.batches...)
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func startIntake(t *testing.T, configure func(*Server)) *intake {
	t.Helper()
	tc, pool := selfSigned(t)
	in := &intake{pool: pool}
	in.Server = &Server{
		Domain:           "sealgate.test",
		TLS:              tc,
		Username:         testUser,
		Password:         testPassword,
		Recipient:        testRecipient,
		MaxBytes:         1 << 20,
		AuthFailureDelay: -1,
		Deliver: func(ctx context.Context, events []json.RawMessage) error {
			if in.fail.Load() > 0 {
				in.fail.Add(-1)
				return errors.New("store unavailable")
			}
			// What the lead's wiring does: the gateway parses the batch.
			body, err := json.Marshal(map[string]any{"events": events})
			if err != nil {
				return err
			}
			if _, err := gateway.ParseBatch(body, ingestLimits, fixtureNow); err != nil {
				return fmt.Errorf("gateway refused the batch: %w", err)
			}
			in.mu.Lock()
			in.batches = append(in.batches, events)
			in.mu.Unlock()
			return nil
		},
	}
	if configure != nil {
		configure(in.Server)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- in.Serve(countingListener{ln, &in.conns}) }()
	t.Cleanup(func() {
		if err := in.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return in
}

func (in *intake) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: testHost, RootCAs: in.pool}
}

// mattermostClient connects as Mattermost's exporter does (net/smtp,
// STARTTLS with verification, PLAIN when offered).
func (in *intake) mattermostClient(t *testing.T, auth netsmtp.Auth) *netsmtp.Client {
	t.Helper()
	conn, err := net.Dial("tcp", in.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := netsmtp.NewClient(conn, testHost)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello("mattermost.example.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before TLS")
	}
	if err := c.StartTLS(in.tlsConfig()); err != nil {
		t.Fatal(err)
	}
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") || !strings.Contains(mechs, "LOGIN") {
		t.Fatalf("AUTH after TLS offers %q, want PLAIN and LOGIN", mechs)
	}
	if auth == nil {
		auth = netsmtp.PlainAuth("", testUser, testPassword, testHost)
	}
	if err := c.Auth(auth); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	return c
}

// send does MAIL, RCPT and DATA as Mattermost's deliverEmail does.
func send(c *netsmtp.Client, from, to string, eml []byte) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(eml); err != nil {
		return err
	}
	return w.Close()
}

func wantEvents(t *testing.T, eml []byte) []json.RawMessage {
	t.Helper()
	x, err := ParseEML(bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	w, err := x.Wire()
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sameEvents(t *testing.T, got, want []json.RawMessage) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d events delivered, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("event %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

// TestMattermostDelivery sends the fixture as Mattermost does: net/smtp,
// STARTTLS with certificate verification, AUTH PLAIN.
func TestMattermostDelivery(t *testing.T) {
	in := startIntake(t, nil)
	c := in.mattermostClient(t, nil)
	eml := sampleEML(t)
	if err := send(c, "admin@example.test", testRecipient, eml); err != nil {
		t.Fatalf("delivery: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	got := in.delivered()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	sameEvents(t, got[0], wantEvents(t, eml))
}

// mattermostLogin is Mattermost's own LOGIN auth (used when PLAIN is not
// offered): no initial response, answers the Username:/Password:
// challenges. swaks does the same.
type mattermostLogin struct{ user, pass string }

func (a mattermostLogin) Start(s *netsmtp.ServerInfo) (string, []byte, error) {
	if !s.TLS {
		return "", nil, errors.New("unencrypted connection")
	}
	return "LOGIN", []byte{}, nil
}

func (a mattermostLogin) Next(from []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch string(from) {
	case "Username:":
		return []byte(a.user), nil
	case "Password:":
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected challenge")
}

// TestLoginDelivery: AUTH LOGIN with go-sasl's client through go-smtp's
// client (username as initial response) and with Mattermost's LOGIN (no
// initial response).
func TestLoginDelivery(t *testing.T) {
	in := startIntake(t, nil)
	eml := sampleEML(t)

	c, err := smtp.DialStartTLS(in.addr, in.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(sasl.NewLoginClient(testUser, testPassword)); err != nil {
		t.Fatalf("AUTH LOGIN (go-sasl): %v", err)
	}
	if err := c.SendMail("admin@example.test", []string{testRecipient}, bytes.NewReader(eml)); err != nil {
		t.Fatalf("delivery: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}

	mc := in.mattermostClient(t, mattermostLogin{testUser, testPassword})
	if err := send(mc, "admin@example.test", testRecipient, eml); err != nil {
		t.Fatalf("delivery: %v", err)
	}
	mc.Quit()

	got := in.delivered()
	if len(got) != 2 {
		t.Fatalf("%d deliveries, want 2", len(got))
	}
	for _, b := range got {
		sameEvents(t, b, wantEvents(t, eml))
	}
}

// TestSwaksLogin sends the fixture with swaks, STARTTLS and AUTH LOGIN.
// swaks does not verify the certificate unless asked.
func TestSwaksLogin(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks is not installed (apt-get install swaks)")
	}
	in := startIntake(t, nil)
	host, port, _ := net.SplitHostPort(in.addr)
	eml := sampleEML(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, swaks,
		"--server", host, "--port", port, "--ehlo", "mattermost.example.test",
		"--tls", "--auth", "LOGIN", "--auth-user", testUser, "--auth-password", testPassword,
		"--from", "admin@example.test", "--to", testRecipient, "--data", "-")
	cmd.Stdin = bytes.NewReader(eml)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	got := in.delivered()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1\n%s", len(got), out)
	}
	sameEvents(t, got[0], wantEvents(t, eml))
}

// raw speaks SMTP line by line, to see the exact replies.
type raw struct {
	t    *testing.T
	conn net.Conn
	tp   *textproto.Conn
}

func dialRaw(t *testing.T, in *intake) *raw {
	t.Helper()
	conn, err := net.Dial("tcp", in.addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := &raw{t: t, conn: conn, tp: textproto.NewConn(conn)}
	t.Cleanup(func() { r.tp.Close() })
	r.expect(220, "")
	return r
}

// cmd sends a line and returns the reply's code and text.
func (r *raw) cmd(format string, args ...any) (int, string) {
	r.t.Helper()
	if err := r.tp.PrintfLine(format, args...); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

func (r *raw) read() (int, string) {
	r.t.Helper()
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil && code == 0 {
		r.t.Fatalf("reading the reply: %v", err)
	}
	return code, msg
}

func (r *raw) expect(code int, enhanced string) string {
	r.t.Helper()
	c, msg := r.read()
	if c != code || !strings.HasPrefix(msg, enhanced) {
		r.t.Fatalf("reply %d %s, want %d %s", c, msg, code, enhanced)
	}
	return msg
}

func (r *raw) want(code int, enhanced string, format string, args ...any) string {
	r.t.Helper()
	c, msg := r.cmd(format, args...)
	if c != code || !strings.HasPrefix(msg, enhanced) {
		r.t.Fatalf("%s: reply %d %s, want %d %s", strings.Fields(fmt.Sprintf(format, args...))[0], c, msg, code, enhanced)
	}
	return msg
}

func (r *raw) startTLS(in *intake) {
	r.t.Helper()
	r.want(250, "", "EHLO mattermost.example.test")
	r.want(220, "2.0.0", "STARTTLS")
	tc := tls.Client(r.conn, in.tlsConfig())
	if err := tc.Handshake(); err != nil {
		r.t.Fatal(err)
	}
	r.conn, r.tp = tc, textproto.NewConn(tc)
	r.want(250, "", "EHLO mattermost.example.test")
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// sendData sends DATA with the message (dot-stuffed) and returns the reply.
func (r *raw) sendData(eml []byte) (int, string) {
	r.t.Helper()
	r.want(354, "", "DATA")
	w := r.tp.DotWriter()
	if _, err := w.Write(eml); err != nil {
		r.t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		r.t.Fatal(err)
	}
	return r.read()
}

// TestRefusals: every way in that is not Mattermost's gets the proper
// reply, and nothing is delivered.
func TestRefusals(t *testing.T) {
	const canary = "CANARY-TEXT-0c1d"
	in := startIntake(t, func(s *Server) { s.MaxBytes = 64 << 10 })
	eml := sampleEML(t)

	t.Run("AUTH before STARTTLS", func(t *testing.T) {
		r := dialRaw(t, in)
		msg := r.want(250, "", "EHLO mattermost.example.test")
		if strings.Contains(msg, "AUTH") || !strings.Contains(msg, "STARTTLS") {
			t.Errorf("EHLO before TLS: %q, want STARTTLS and no AUTH", msg)
		}
		r.want(530, "5.7.0", "AUTH PLAIN %s", plainIR(testUser, testPassword))
		r.want(530, "5.7.0", "AUTH LOGIN")
	})
	t.Run("MAIL before STARTTLS", func(t *testing.T) {
		r := dialRaw(t, in)
		r.want(250, "", "EHLO mattermost.example.test")
		r.want(530, "5.7.0", "MAIL FROM:<admin@example.test>")
	})
	t.Run("MAIL before AUTH", func(t *testing.T) {
		r := dialRaw(t, in)
		r.startTLS(in)
		r.want(530, "5.7.0", "MAIL FROM:<admin@example.test>")
	})
	t.Run("wrong password PLAIN", func(t *testing.T) {
		r := dialRaw(t, in)
		r.startTLS(in)
		r.want(535, "5.7.8", "AUTH PLAIN %s", plainIR(testUser, testPassword+"x"))
		r.want(535, "5.7.8", "AUTH PLAIN %s", plainIR(testUser+"x", testPassword))
		r.want(535, "5.7.8", "AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte("someone\x00"+testUser+"\x00"+testPassword)))
		r.want(530, "5.7.0", "MAIL FROM:<admin@example.test>")
	})
	t.Run("wrong password LOGIN", func(t *testing.T) {
		r := dialRaw(t, in)
		r.startTLS(in)
		if got := r.want(334, "", "AUTH LOGIN"); got != b64("Username:") {
			t.Errorf("first challenge %q", got)
		}
		if got := r.want(334, "", "%s", b64(testUser)); got != b64("Password:") {
			t.Errorf("second challenge %q", got)
		}
		r.want(535, "5.7.8", "%s", b64("wrong"))
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		r := dialRaw(t, in)
		r.startTLS(in)
		r.want(504, "5.7.4", "AUTH CRAM-MD5")
	})
	authed := func(t *testing.T) *raw {
		r := dialRaw(t, in)
		r.startTLS(in)
		r.want(235, "2.0.0", "AUTH PLAIN %s", plainIR(testUser, testPassword))
		return r
	}
	t.Run("wrong recipient", func(t *testing.T) {
		r := authed(t)
		r.want(250, "", "MAIL FROM:<admin@example.test>")
		r.want(550, "5.1.1", "RCPT TO:<someone@sealgate.example>")
		r.want(250, "", "RCPT TO:<%s>", strings.ToUpper(testRecipient))
	})
	t.Run("declared size over the limit", func(t *testing.T) {
		r := authed(t)
		r.want(552, "5.3.4", "MAIL FROM:<admin@example.test> SIZE=%d", 64<<10+1)
	})
	t.Run("message over the limit", func(t *testing.T) {
		r := authed(t)
		r.want(250, "", "MAIL FROM:<admin@example.test>")
		r.want(250, "", "RCPT TO:<%s>", testRecipient)
		big := bytes.Replace(eml, []byte("Nightly backup completed"), []byte("Nightly backup completed"+strings.Repeat("x", 70<<10)), 1)
		if code, msg := r.sendData(big); code != 552 || !strings.HasPrefix(msg, "5.3.4") {
			t.Fatalf("reply %d %s, want 552 5.3.4", code, msg)
		}
		// The session goes on: the next message is accepted.
		r.want(250, "", "MAIL FROM:<admin@example.test>")
		r.want(250, "", "RCPT TO:<%s>", testRecipient)
		if code, msg := r.sendData(eml); code != 250 {
			t.Fatalf("after the refusal: %d %s", code, msg)
		}
	})
	t.Run("not an export", func(t *testing.T) {
		r := authed(t)
		r.want(250, "", "MAIL FROM:<admin@example.test>")
		r.want(250, "", "RCPT TO:<%s>", testRecipient)
		bad := []byte("Subject: " + canary + "\r\nContent-Type: text/plain\r\n\r\n" + canary + "\r\n")
		code, msg := r.sendData(bad)
		if code != 554 || !strings.HasPrefix(msg, "5.6.0") {
			t.Fatalf("reply %d %s, want 554 5.6.0", code, msg)
		}
		if strings.Contains(msg, canary) {
			t.Errorf("the reply quotes content: %q", msg)
		}
	})
	if n := len(in.delivered()); n != 1 {
		t.Errorf("%d deliveries, want only the one after the size refusal", n)
	}
}

// TestDeliverFailure: a storage failure answers 451 4.3.0, Mattermost's
// resend is accepted, and the events are the same (idempotent ids).
func TestDeliverFailure(t *testing.T) {
	in := startIntake(t, nil)
	in.fail.Store(1)
	eml := sampleEML(t)
	c := in.mattermostClient(t, nil)
	err := send(c, "admin@example.test", testRecipient, eml)
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 451 || !strings.HasPrefix(te.Msg, "4.3.0") {
		t.Fatalf("first delivery: %v, want 451 4.3.0", err)
	}
	if err := send(c, "admin@example.test", testRecipient, eml); err != nil {
		t.Fatalf("resend: %v", err)
	}
	c.Quit()
	got := in.delivered()
	if len(got) != 1 {
		t.Fatalf("%d deliveries stored, want 1", len(got))
	}
	sameEvents(t, got[0], wantEvents(t, eml))
}

// TestDeliverRejected: a Deliver error wrapping ErrRejected is permanent.
func TestDeliverRejected(t *testing.T) {
	in := startIntake(t, func(s *Server) {
		s.Deliver = func(context.Context, []json.RawMessage) error {
			return fmt.Errorf("events[3]: event time is more than 24h in the future: %w", ErrRejected)
		}
	})
	c := in.mattermostClient(t, nil)
	err := send(c, "admin@example.test", testRecipient, sampleEML(t))
	var te *textproto.Error
	if !errors.As(err, &te) || te.Code != 554 || !strings.HasPrefix(te.Msg, "5.6.0") {
		t.Fatalf("delivery: %v, want 554 5.6.0", err)
	}
	c.Quit()
}

// TestReconnectEvery400 sends 401 small exports the way Mattermost does:
// one connection for the first 400, a new one for the 401st.
func TestReconnectEvery400(t *testing.T) {
	in := startIntake(t, nil)
	const total, perConn = 401, 400
	var c *netsmtp.Client
	for i := 0; i < total; i++ {
		if i%perConn == 0 {
			if c != nil {
				c.Close() // Mattermost closes without QUIT
			}
			c = in.mattermostClient(t, nil)
		}
		eml := buildEML("8s6ug79ctbfp8bm4q1fdjfjxho", []testMsg{{"alice", "alice@example.test", "2026-11-22T11:22:10Z", fmt.Sprintf("message %d", i)}})
		if err := send(c, "alice@example.test", testRecipient, eml); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	c.Close()
	if n := in.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	got := in.delivered()
	if len(got) != total {
		t.Fatalf("%d deliveries, want %d", len(got), total)
	}
	ids := map[string]bool{}
	for i, b := range got {
		var ev struct {
			Post struct{ ID, Message string }
		}
		if len(b) != 1 || json.Unmarshal(b[0], &ev) != nil || ev.Post.Message != fmt.Sprintf("message %d", i) {
			t.Fatalf("delivery %d: %s", i, b)
		}
		ids[ev.Post.ID] = true
	}
	if len(ids) != total {
		t.Errorf("%d distinct post ids, want %d", len(ids), total)
	}
}

// TestDeliverBatch splits a message's events into Deliver calls of at most
// DeliverBatch events.
func TestDeliverBatch(t *testing.T) {
	in := startIntake(t, func(s *Server) { s.DeliverBatch = 4 })
	eml := sampleEML(t)
	c := in.mattermostClient(t, nil)
	if err := send(c, "admin@example.test", testRecipient, eml); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	var all []json.RawMessage
	var sizes []int
	for _, b := range in.delivered() {
		sizes = append(sizes, len(b))
		all = append(all, b...)
	}
	if fmt.Sprint(sizes) != "[4 4 1]" {
		t.Errorf("batch sizes %v, want [4 4 1]", sizes)
	}
	sameEvents(t, all, wantEvents(t, eml))
}

// TestResolveUser: the server asks the resolver for senders without a
// printed user id; a resolver failure answers 451.
func TestResolveUser(t *testing.T) {
	var fail atomic.Bool
	in := startIntake(t, func(s *Server) {
		s.ResolveUser = func(ctx context.Context, p Participant) (string, error) {
			if fail.Load() {
				return "", errors.New("mattermost api unreachable")
			}
			if p.Email == "alice@example.test" {
				return "g6e8xk8t6t86tjy8nrqyeqmm5c", nil
			}
			return "", nil
		}
	})
	eml := sampleEML(t)
	c := in.mattermostClient(t, nil)
	fail.Store(true)
	var te *textproto.Error
	if err := send(c, "admin@example.test", testRecipient, eml); !errors.As(err, &te) || te.Code != 451 {
		t.Fatalf("with the resolver failing: %v, want 451", err)
	}
	fail.Store(false)
	if err := send(c, "admin@example.test", testRecipient, eml); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	got := in.delivered()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	var first, second struct {
		Post struct {
			UserID string `json:"user_id"`
		} `json:"post"`
	}
	json.Unmarshal(got[0][0], &first)
	json.Unmarshal(got[0][1], &second)
	if first.Post.UserID != "g6e8xk8t6t86tjy8nrqyeqmm5c" || second.Post.UserID != DerivedUserID("bob@example.test", "") {
		t.Errorf("user ids %s, %s: want alice's real id and bob's derived one", first.Post.UserID, second.Post.UserID)
	}
}

func TestServerConfig(t *testing.T) {
	tc, _ := selfSigned(t)
	deliver := func(context.Context, []json.RawMessage) error { return nil }
	ok := Server{TLS: tc, Username: "u", Password: "p", Recipient: "r@x", Deliver: deliver}
	cases := map[string]func(*Server){
		"no TLS":        func(s *Server) { s.TLS = nil },
		"no cert":       func(s *Server) { s.TLS = &tls.Config{} },
		"no username":   func(s *Server) { s.Username = "" },
		"no password":   func(s *Server) { s.Password = "" },
		"no recipient":  func(s *Server) { s.Recipient = "" },
		"no deliver":    func(s *Server) { s.Deliver = nil },
		"negative size": func(s *Server) { s.MaxBytes = -1 },
	}
	for name, mutate := range cases {
		s := &Server{TLS: ok.TLS, Username: ok.Username, Password: ok.Password, Recipient: ok.Recipient, Deliver: ok.Deliver}
		mutate(s)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(ln); err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("%s: Serve returned %v, want a configuration error", name, err)
		}
	}
	// Close before Serve: Serve returns at once.
	s := &Server{TLS: ok.TLS, Username: ok.Username, Password: ok.Password, Recipient: ok.Recipient, Deliver: ok.Deliver}
	s.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
}
