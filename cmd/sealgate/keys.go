package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
)

// defaultRoles name the approver slots of an init'd deployment, in order.
var defaultRoles = []string{"legal", "hr", "works-council", "security", "dpo-office"}

func cmdKeygen(args []string, stdout io.Writer) error {
	fs := newFlags("keygen")
	out := fs.String("out", "", "file for the passphrase-protected private key; the public key goes to FILE.pub")
	kemName := fs.String("kem", "mlkem768x25519", "KEM: mlkem768x25519 (post-quantum hybrid) or x25519")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out FILE is required", errUsage)
	}
	kem, err := kemByName(*kemName)
	if err != nil {
		return err
	}
	pass, err := passphrase("passphrase for the new slot key", true)
	if err != nil {
		return err
	}
	id, err := crypto.GenerateSlotKey(kem)
	if err != nil {
		return err
	}
	if err := writeSlotKey(*out, id, pass, crypto.ScryptWorkFactor); err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Recipient().String())
	return nil
}

func kemByName(name string) (uint16, error) {
	switch name {
	case "mlkem768x25519":
		return crypto.KEMMLKEM768X25519, nil
	case "x25519":
		return crypto.KEMX25519, nil
	}
	return 0, fmt.Errorf("%w: --kem %q: want mlkem768x25519 or x25519", errUsage, name)
}

// writeSlotKey writes the private key file (refusing to overwrite one) and
// FILE.pub beside it.
func writeSlotKey(path string, id *crypto.HPKEIdentity, pass string, workFactor int) error {
	var buf bytes.Buffer
	if err := crypto.EncryptIdentity(&buf, id, pass, workFactor); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write slot key: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("write slot key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write slot key: %w", err)
	}
	return os.WriteFile(path+".pub", []byte(id.Recipient().String()+"\n"), 0o644)
}

// readSlotIdentity opens a slot key file with a passphrase.
func readSlotIdentity(path, pass string) (*crypto.HPKEIdentity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open slot key: %w", err)
	}
	defer f.Close()
	return crypto.DecryptIdentity(f, pass)
}

// passphrase reads SEALGATE_PASSPHRASE, or prompts on the terminal (twice
// when confirm is set).
func passphrase(prompt string, confirm bool) (string, error) {
	if p, ok := os.LookupEnv("SEALGATE_PASSPHRASE"); ok {
		if p == "" {
			return "", errors.New("SEALGATE_PASSPHRASE is set but empty")
		}
		return p, nil
	}
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil || !term.IsTerminal(int(tty.Fd())) {
		return "", errors.New("no terminal to ask for a passphrase; set SEALGATE_PASSPHRASE")
	}
	defer tty.Close()
	read := func(p string) (string, error) {
		fmt.Fprintf(tty, "%s: ", p)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		return string(b), err
	}
	p, err := read(prompt)
	if err != nil {
		return "", fmt.Errorf("read passphrase: %w", err)
	}
	if len(p) < 8 {
		return "", errors.New("passphrase shorter than 8 characters")
	}
	if confirm {
		again, err := read("again")
		if err != nil {
			return "", fmt.Errorf("read passphrase: %w", err)
		}
		if again != p {
			return "", errors.New("passphrases differ")
		}
	}
	return p, nil
}

// initWorkFactor is lower than keygen's: init writes test and demo
// deployments, where a second per key file and approval is only friction.
const initWorkFactor = 15

func cmdInit(args []string, stdout io.Writer) error {
	fs := newFlags("init")
	dir := fs.String("dir", "", "directory to create")
	n := fs.Int("approvers", 5, "number of approver slots N")
	m := fs.Int("quorum", 3, "quorum M")
	kemName := fs.String("kem", "mlkem768x25519", "slot KEM: mlkem768x25519 or x25519")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: --dir DIR is required", errUsage)
	}
	if *n < 2 || *n > len(defaultRoles)*4 {
		return fmt.Errorf("%w: --approvers %d: want 2..%d", errUsage, *n, len(defaultRoles)*4)
	}
	if *m < 2 || *m > *n {
		return fmt.Errorf("%w: --quorum %d: want 2..%d (no single approver may unseal)", errUsage, *m, *n)
	}
	kem, err := kemByName(*kemName)
	if err != nil {
		return err
	}
	if entries, err := os.ReadDir(*dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s exists and is not empty; refusing to overwrite keys", *dir)
	}
	pass, err := passphrase("passphrase for the slot keys", true)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(*dir, "slots"), 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	gk, err := crypto.NewGatewayKeys()
	if err != nil {
		return err
	}
	if err := writeGatewayKeys(filepath.Join(*dir, "gateway.keys"), gk); err != nil {
		return err
	}
	if err := writeGatewayPublic(filepath.Join(*dir, "gateway.pub"), gk.Verifier()); err != nil {
		return err
	}
	cfg := config.Defaults()
	cfg.IngestToken = randomToken()
	cfg.GatewayKeys = "gateway.keys"
	cfg.GatewayPublicKey = "gateway.pub"
	cfg.Store.Path = "data/sealgate.db"
	cfg.Quorum = *m
	for i := 0; i < *n; i++ {
		role := defaultRoles[i%len(defaultRoles)]
		if i >= len(defaultRoles) {
			role = fmt.Sprintf("%s-%d", role, i/len(defaultRoles)+1)
		}
		id, err := crypto.GenerateSlotKey(kem)
		if err != nil {
			return err
		}
		keyPath := filepath.Join("slots", role+".key")
		if err := writeSlotKey(filepath.Join(*dir, keyPath), id, pass, initWorkFactor); err != nil {
			return err
		}
		cfg.Slots = append(cfg.Slots, config.Slot{Role: role, PublicKey: keyPath + ".pub"})
	}
	if err := os.MkdirAll(filepath.Join(*dir, "data"), 0o700); err != nil {
		return fmt.Errorf("init: %w", err)
	}
	if err := cfg.Write(filepath.Join(*dir, "sealgate.yaml")); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: sealgate.yaml, gateway.keys, %d slot keys (quorum %d of %d: %s)\n",
		*dir, *n, *m, *n, strings.Join(roles(cfg.Slots), ", "))
	return nil
}

func roles(slots []config.Slot) []string {
	var out []string
	for _, s := range slots {
		out = append(out, s.Role)
	}
	return out
}

func writeGatewayKeys(path string, gk *crypto.GatewayKeys) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write gateway keys: %w", err)
	}
	if err := gk.Write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeGatewayPublic(path string, v *crypto.GatewayVerifier) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("write gateway public key: %w", err)
	}
	if err := v.WritePublic(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readGatewayKeys(path string) (*crypto.GatewayKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gateway keys: %w", err)
	}
	defer f.Close()
	return crypto.ReadGatewayKeys(f)
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
