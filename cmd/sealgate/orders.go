package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/term"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/config"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/mmauth"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/order/redisstore"
	"github.com/sealgate/sealgate/orderapi"
	"github.com/sealgate/sealgate/release"
	"github.com/sealgate/sealgate/store"
)

// attachOrders builds the release desk and the order API for serve.
func (rt *gatewayRuntime) attachOrders(cfg *config.Config, rdb redis.UniversalClient) error {
	backend, ok := rt.store.(audit.Backend)
	if !ok {
		return errors.New("the configured store cannot hold the audit log")
	}
	rt.auditLog = audit.New(backend, nil)
	nr, err := rt.newNotices(cfg, func() *release.Desk { return rt.desk })
	if err != nil {
		return err
	}
	rt.notices = nr
	desk, err := newDesk(cfg, rt.keys, rt.store, rt.auditLog, redisstore.New(rdb, cfg.Orders.Grace.Duration, nil), wakingOutbox{nr.outbox, nr.dispatcher})
	if err != nil {
		return err
	}
	rt.desk = desk
	auth, err := mmauth.New(cfg.Mattermost.URL, nil, cfg.Mattermost.TokenCache.Duration)
	if err != nil {
		return err
	}
	rt.auth = auth
	mux := http.NewServeMux()
	mux.Handle("/v1/aggregates", rt.stats.handler(cfg, auth))
	mux.Handle("/", (&orderapi.Server{Desk: desk, Auth: auth, Log: rt.log, PluginSecret: cfg.Orders.PluginSecret}).Handler())
	rt.orders = mux
	if cfg.Mattermost.CheckpointChannel != "" {
		rt.checkpoint = &audit.MattermostPublisher{BaseURL: cfg.Mattermost.URL, BotToken: cfg.Mattermost.BotToken, ChannelID: cfg.Mattermost.CheckpointChannel}
		rt.checkpointEvery = cfg.Mattermost.CheckpointEvery.Duration
	}
	return nil
}

// newDesk wires a release desk from the configuration.
func newDesk(cfg *config.Config, keys *crypto.GatewayKeys, st store.Store, log *audit.Log, orders *redisstore.Store, notices release.Notices) (*release.Desk, error) {
	rules, err := cfg.Rules()
	if err != nil {
		return nil, err
	}
	var slots []release.Slot
	for i, s := range cfg.Slots {
		r, err := readRecipient(cfg.Path(s.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("slot %d (%s): %w", i, s.Role, err)
		}
		slots = append(slots, release.Slot{Role: s.Role, Recipient: r, Holders: s.Holders})
	}
	requesters := map[string]*crypto.HPKERecipient{}
	for _, r := range cfg.Orders.Requesters {
		k, err := readRecipient(cfg.Path(r.PublicKey))
		if err != nil {
			return nil, fmt.Errorf("requester %s: %w", r.UserID, err)
		}
		requesters[r.UserID] = k
	}
	return release.New(release.Config{
		Orders: orders, Store: st, Keys: keys, Audit: log, Slots: slots, Quorum: cfg.Quorum,
		Requesters: requesters, Auditors: cfg.Orders.Auditors, DPO: cfg.Orders.DPO,
		VetoRoles: cfg.Orders.VetoRoles, Rules: rules, Notices: notices,
	})
}

func readRecipient(path string) (*crypto.HPKERecipient, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return crypto.ParseRecipient(string(raw))
}

// sweepOrders wipes the keys of orders that expired or ended.
func (rt *gatewayRuntime) sweepOrders(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n := rt.desk.Sweep(ctx); n > 0 {
				rt.log.Info("ended orders wiped", "count", n)
			}
		}
	}
}

// orderClient reads the configuration an order command needs and returns a
// client of the order API. The token is the caller's Mattermost token, from
// SEALGATE_TOKEN: never a flag, so it stays out of shell history and ps.
func orderClient(fs interface {
	String(string, string, string) *string
}) func() (*config.Config, *orderapi.Client, error) {
	cfgPath := fs.String("config", "", "configuration file (YAML): slots, requesters, gateway public key, order API address")
	server := fs.String("server", "", "order API base URL (default: http:// + listen.orders from the configuration)")
	return func() (*config.Config, *orderapi.Client, error) {
		if *cfgPath == "" {
			return nil, nil, fmt.Errorf("%w: --config FILE is required", errUsage)
		}
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return nil, nil, err
		}
		base := *server
		if base == "" {
			if cfg.Listen.Orders == "" {
				return nil, nil, fmt.Errorf("%w: the configuration has no listen.orders; give --server URL", errUsage)
			}
			base = "http://" + cfg.Listen.Orders
		}
		tok := os.Getenv("SEALGATE_TOKEN")
		if tok == "" {
			return nil, nil, errors.New("SEALGATE_TOKEN is not set: export your Mattermost personal access token or session token")
		}
		return cfg, &orderapi.Client{BaseURL: base, Token: tok}, nil
	}
}

// cmdOrder: sealgate order file|show|revoke.
func cmdOrder(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: sealgate order file|show|revoke|defer", errUsage)
	}
	sub, args := args[0], args[1:]
	fs := newFlags("order " + sub)
	load := orderClient(fs)
	ctx := context.Background()
	switch sub {
	case "file":
		keyPath := fs.String("key", "", "the requester's key file (sealgate keygen)")
		form := fs.String("form", "", "the order as JSON (id, filed_at and excluded_channels are set when filing)")
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if *keyPath == "" || *form == "" {
			return fmt.Errorf("%w: --key FILE and --form FILE are required", errUsage)
		}
		_, c, err := load()
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(*form)
		if err != nil {
			return err
		}
		o, err := order.ParseJSON(raw)
		if err != nil {
			return err
		}
		rules, err := c.Rules(ctx)
		if err != nil {
			return err
		}
		o.Stamp(rules, time.Now())
		if err := o.Validate(rules, time.Now(), nil); err != nil {
			return err
		}
		pass, err := passphrase("passphrase for "+*keyPath, false)
		if err != nil {
			return err
		}
		id, err := readSlotIdentity(*keyPath, pass)
		if err != nil {
			return err
		}
		f, err := c.File(ctx, o, crypto.SignOrder(id, o.Hash()))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "filed %s: subject %s, window %s..%s, expires %s\n", f.Order.ID, o.Subject, o.Window.From, o.Window.To, o.ExpiresAt.UTC().Format(time.RFC3339))
		return nil
	case "show":
		if len(args) == 0 {
			return fmt.Errorf("%w: sealgate order show ORDER", errUsage)
		}
		id := args[0]
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		_, c, err := load()
		if err != nil {
			return err
		}
		doc, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		printOrder(stdout, doc)
		return nil
	case "revoke":
		if len(args) == 0 {
			return fmt.Errorf("%w: sealgate order revoke ORDER --reason TEXT", errUsage)
		}
		id := args[0]
		reason := fs.String("reason", "", "why the order is withdrawn")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *reason == "" {
			return fmt.Errorf("%w: --reason is required", errUsage)
		}
		_, c, err := load()
		if err != nil {
			return err
		}
		if err := c.Revoke(ctx, id, *reason); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s: released keys wiped\n", id)
		return nil
	case "defer":
		if len(args) == 0 {
			return fmt.Errorf("%w: sealgate order defer ORDER --key REQUESTER.key --until YYYY-MM-DD --ground TEXT", errUsage)
		}
		id := args[0]
		keyPath := fs.String("key", "", "the requester's key file")
		until := fs.String("until", "", "the new end of the deferral (YYYY-MM-DD)")
		ground := fs.String("ground", "", "why the subject may not be told yet")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if *keyPath == "" || *until == "" || *ground == "" {
			return fmt.Errorf("%w: --key, --until and --ground are required", errUsage)
		}
		_, c, err := load()
		if err != nil {
			return err
		}
		doc, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		pass, err := passphrase("passphrase for "+*keyPath, false)
		if err != nil {
			return err
		}
		key, err := readSlotIdentity(*keyPath, pass)
		if err != nil {
			return err
		}
		st := crypto.DeferralStatement(doc.Order.Hash(), *until, *ground)
		if err := c.RequestDeferral(ctx, id, *until, *ground, crypto.SignDeferralRequest(key, st)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "renewal of the deferral of %s until %s requested; it needs %d approvals (sealgate approve %s --deferral)\n", id, *until, doc.Quorum, id)
		return nil
	}
	return fmt.Errorf("%w: unknown order command %q (file, show, revoke, defer)", errUsage, sub)
}

// slotOf finds the configured slot whose public key is the identity's.
func slotOf(cfg *config.Config, id *crypto.HPKEIdentity) (int, error) {
	for i, s := range cfg.Slots {
		r, err := readRecipient(cfg.Path(s.PublicKey))
		if err == nil && r.KeyID() == id.KeyID() {
			return i, nil
		}
	}
	return 0, errors.New("this key is not one of the configured slots")
}

func gatewayVerifier(cfg *config.Config) (*crypto.GatewayVerifier, error) {
	if cfg.GatewayPublicKey == "" {
		return nil, errors.New("the configuration has no gateway_public_key")
	}
	f, err := os.Open(cfg.Path(cfg.GatewayPublicKey))
	if err != nil {
		return nil, fmt.Errorf("gateway public key: %w", err)
	}
	defer f.Close()
	return crypto.ReadGatewayVerifier(f)
}

// cmdApprove: sealgate approve ORDER --config FILE --key SLOT.key [--yes].
func cmdApprove(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: sealgate approve ORDER --config FILE --key SLOT.key", errUsage)
	}
	id := args[0]
	fs := newFlags("approve")
	load := orderClient(fs)
	keyPath := fs.String("key", "", "your slot key file")
	yes := fs.Bool("yes", false, "approve without typing the order id (after reviewing it elsewhere)")
	renewal := fs.Bool("deferral", false, "approve the pending renewal of the order's deferred notice instead of the order")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *keyPath == "" {
		return fmt.Errorf("%w: --key SLOT.key is required", errUsage)
	}
	cfg, c, err := load()
	if err != nil {
		return err
	}
	gw, err := gatewayVerifier(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	doc, err := c.Get(ctx, id)
	if err != nil {
		return err
	}
	var requester *crypto.HPKERecipient
	for _, r := range cfg.Orders.Requesters {
		if r.UserID == doc.Order.Requester {
			if requester, err = readRecipient(cfg.Path(r.PublicKey)); err != nil {
				return err
			}
		}
	}
	if requester == nil {
		return fmt.Errorf("order %s: its requester is not a configured requester; do not approve", id)
	}
	if err := crypto.VerifyOrder(requester, doc.Order.Hash(), doc.RequesterSignature); err != nil {
		return fmt.Errorf("order %s: %w; do not approve", id, err)
	}
	printOrder(stdout, doc)
	if *renewal {
		if doc.Renewal == nil {
			return fmt.Errorf("order %s: no renewal of its deferral awaits approval", id)
		}
		fmt.Fprintf(stdout, "  renewal of the deferred notice until %s\n  ground: %s\n", doc.Renewal.Until, doc.Renewal.Ground)
	}
	if !*yes {
		if err := confirm(stdin, stdout, id); err != nil {
			return err
		}
	}
	pass, err := passphrase("passphrase for "+*keyPath, false)
	if err != nil {
		return err
	}
	slotKey, err := readSlotIdentity(*keyPath, pass)
	if err != nil {
		return err
	}
	slot, err := slotOf(cfg, slotKey)
	if err != nil {
		return err
	}
	if *renewal {
		st := crypto.DeferralStatement(doc.Order.Hash(), doc.Renewal.Until, doc.Renewal.Ground)
		res, err := c.ApproveDeferral(ctx, id, slot, crypto.SignDeferralApproval(slotKey, slot, st))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "approved the renewal of %s's deferral as slot %d (%s): %d of %d\n", id, slot, cfg.Slots[slot].Role, res.Approvals, res.Quorum)
		if res.Activated {
			fmt.Fprintf(stdout, "quorum reached: the notice is deferred until %s\n", doc.Renewal.Until)
		}
		return nil
	}
	esc, err := c.Escrow(ctx, id, slot)
	if err != nil {
		return err
	}
	blob, n, err := release.MakeApproval(doc, esc, slot, slotKey, gw, requester)
	if err != nil {
		return err
	}
	res, err := c.Approve(ctx, id, slot, blob)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "approved %s as slot %d (%s): %d shares re-encrypted to the order; %d of %d approvals\n",
		id, slot, cfg.Slots[slot].Role, n, res.Approvals, res.Quorum)
	if res.Activated {
		fmt.Fprintf(stdout, "quorum reached: order active, %d days released\n", res.Days)
	}
	return nil
}

// confirm asks the approver to type the order id.
func confirm(stdin io.Reader, stdout io.Writer, id string) error {
	if f, ok := stdin.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return fmt.Errorf("%w: no terminal to confirm on; review the order and pass --yes", errUsage)
	}
	fmt.Fprintf(stdout, "Type the order id to approve it: ")
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("not approved")
	}
	if strings.TrimSpace(line) != id {
		return errors.New("not approved: the id typed does not match")
	}
	return nil
}

// cmdReject: sealgate reject ORDER --config FILE --key SLOT.key --reason TEXT.
func cmdReject(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: sealgate reject ORDER --config FILE --key SLOT.key --reason TEXT", errUsage)
	}
	id := args[0]
	fs := newFlags("reject")
	load := orderClient(fs)
	keyPath := fs.String("key", "", "your slot key file (identifies your slot)")
	reason := fs.String("reason", "", "why the order is rejected")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *keyPath == "" || *reason == "" {
		return fmt.Errorf("%w: --key and --reason are required", errUsage)
	}
	cfg, c, err := load()
	if err != nil {
		return err
	}
	pass, err := passphrase("passphrase for "+*keyPath, false)
	if err != nil {
		return err
	}
	slotKey, err := readSlotIdentity(*keyPath, pass)
	if err != nil {
		return err
	}
	slot, err := slotOf(cfg, slotKey)
	if err != nil {
		return err
	}
	rejected, err := c.Reject(context.Background(), id, slot, *reason)
	if err != nil {
		return err
	}
	if rejected {
		fmt.Fprintf(stdout, "rejected %s: the order is closed\n", id)
	} else {
		fmt.Fprintf(stdout, "rejection of %s recorded (slot %s has no veto)\n", id, cfg.Slots[slot].Role)
	}
	return nil
}

// cmdUnseal: sealgate unseal ORDER --config FILE --format json|html|eml --out FILE,
// or with --file ID the content of one released shared file.
func cmdUnseal(args []string, stdout io.Writer) error {
	const usage = "sealgate unseal ORDER --config FILE (--format html|json|eml | --file FILE_ID) --out FILE"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	id := args[0]
	fs := newFlags("unseal")
	load := orderClient(fs)
	format := fs.String("format", "html", "html, json or eml")
	fileID := fs.String("file", "", "write the content of this shared file (its id in the export) instead of the messages")
	out := fs.String("out", "", "file to write (refuses to overwrite)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out FILE is required", errUsage)
	}
	_, c, err := load()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if *fileID != "" {
		err = c.SharedFile(context.Background(), id, *fileID, f)
	} else {
		err = c.Export(context.Background(), id, *format, f)
	}
	if err != nil {
		// A cut or mismatching download must not be mistaken for the file.
		f.Close()
		os.Remove(*out)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if *fileID != "" {
		fmt.Fprintf(stdout, "wrote %s (content of file %s, released under order %s; SHA-256 checked)\n", *out, *fileID, id)
		return nil
	}
	fmt.Fprintf(stdout, "wrote %s (%s, watermarked for order %s)\n", *out, *format, id)
	return nil
}

// printOrder shows the whole documented order, as an approver must review it.
func printOrder(w io.Writer, doc *release.Document) {
	o := doc.Order
	fmt.Fprintf(w, "order %s (%s, %d of %d approvals)\n", o.ID, doc.State, len(doc.Approvals), doc.Quorum)
	b, _ := json.MarshalIndent(o, "  ", "  ")
	fmt.Fprintf(w, "  %s\n", b)
	for _, a := range doc.Approvals {
		fmt.Fprintf(w, "  approved by slot %d (%s)\n", a.Slot, a.Role)
	}
}
