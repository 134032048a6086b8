package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/capture/smtpintake"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/internal/privacyscan"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/store/boltstore"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns a
// pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sealgate intake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "intake.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "intake.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// TestServeSMTPIntake: serve with the SMTP intake on; the recorded Global
// Relay export, sent as Mattermost sends it (STARTTLS, PLAIN), is sealed
// into the store, and no message text is in it in clear.
func TestServeSMTPIntake(t *testing.T) {
	t.Setenv("SEALGATE_PASSPHRASE", "correct-horse-battery")
	dep := filepath.Join(t.TempDir(), "dep")
	if _, err := sealgate(t, carol, "init", "--dir", dep, "--approvers", "3", "--quorum", "2", "--kem", "x25519"); err != nil {
		t.Fatal(err)
	}
	pool := writeCert(t, dep)
	cfgPath := filepath.Join(dep, "sealgate.yaml")
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	rs := testredis.Start(t)
	cfg.Redis.Addr = rs.Addr()
	cfg.Listen.Admin = addr(t)
	cfg.Intake.SMTP = config.SMTPIntake{Listen: addr(t), Domain: "sealgate.test", CertFile: "intake.crt", KeyFile: "intake.key",
		Username: "globalrelay", Password: "intake-password-1", Recipient: "archive@sealgate.test"}
	if err := cfg.Write(cfgPath); err != nil {
		t.Fatal(err)
	}
	if cfg, err = config.Load(cfgPath); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, logs bytes.Buffer
	go func() { done <- serveConfig(ctx, cfg, &out, &logs) }()
	waitFor(t, "http://"+cfg.Listen.Admin+"/healthz")

	eml, err := os.ReadFile("../../../shared/fixtures/mattermost-9.11/globalrelay/sample-town-square.eml")
	if err != nil {
		t.Fatal(err)
	}
	x, err := smtpintake.ParseEML(bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.Dial(cfg.Intake.SMTP.Listen)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "globalrelay", "intake-password-1", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("mattermost@example.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("archive@sealgate.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(eml)
	if err := w.Close(); err != nil {
		t.Fatalf("export not accepted: %v", err)
	}
	c.Quit()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	st, err := boltstore.Open(cfg.Path(cfg.Store.Path))
	if err != nil {
		t.Fatal(err)
	}
	stats, err := st.Stats(context.Background())
	st.Close()
	if err != nil || stats.Records != int64(len(x.Events)) {
		t.Fatalf("stored %d records (%v), want the export's %d events", stats.Records, err, len(x.Events))
	}
	var canaries []string
	for _, m := range x.Messages {
		if len(m.Text) >= 12 {
			canaries = append(canaries, m.Text[:12])
		}
	}
	hits, scanned, err := privacyscan.Dir(filepath.Dir(cfg.Path(cfg.Store.Path)), canaries)
	if err != nil || scanned == 0 || len(canaries) == 0 {
		t.Fatalf("scan: %v, %d bytes, %d canaries", err, scanned, len(canaries))
	}
	hits = append(hits, privacyscan.Bytes("log", logs.Bytes(), canaries)...)
	for _, h := range hits {
		t.Errorf("in clear: %s", h)
	}
	if !strings.Contains(out.String(), "SMTP intake on") {
		t.Fatalf("serve did not say it runs the intake: %s", out.String())
	}
}
