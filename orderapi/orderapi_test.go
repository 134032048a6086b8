package orderapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/internal/testredis"
	"github.com/sealgate/sealgate/mmauth"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/order/redisstore"
	"github.com/sealgate/sealgate/orderapi"
	"github.com/sealgate/sealgate/release"
	"github.com/sealgate/sealgate/store/boltstore"
)

const (
	alice    = "g6e8xk8t6t86tjy8nrqyeqmm5c" // subject
	bob      = "jwmtcrk65byjmjan5bgpkh18iw"
	carol    = "98nqi1qftjd9trxzg7t6prraao" // requester
	stranger = "str1str1str1str1str1str1st"
	channel  = "8s6ug79ctbfp8bm4q1fdjfjxho"
)

const pluginSecret = "0123456789abcdef0123456789abcdef-plugin"

func holder(i int) string { return fmt.Sprintf("holder%dholder%dholder%dholdr", i, i, i) }

// token is a person's Mattermost token in the fake server: 26 characters.
func token(user string) string { return "t" + user[1:] }

// mattermost answers GET /api/v4/users/me like the recorded 9.11 server,
// for the tokens of the people above.
func mattermost(t *testing.T) *httptest.Server {
	raw, err := os.ReadFile("../../shared/fixtures/mattermost-9.11/http/users-me.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Response struct {
			Body map[string]any `json:"body"`
		} `json:"response"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for _, u := range []string{alice, bob, carol, stranger, holder(0), holder(1), holder(2)} {
		users["Bearer "+token(u)] = u
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := users[r.Header.Get("Authorization")]
		if r.URL.Path != "/api/v4/users/me" || !ok {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"id":"api.context.session_expired.app_error","message":"Invalid or expired session, please login again.","status_code":401}`)
			return
		}
		body := maps(fx.Response.Body)
		body["id"], body["username"] = u, "user-"+u[:4]
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type env struct {
	api       *httptest.Server
	keys      *crypto.GatewayKeys
	slots     []*crypto.HPKEIdentity
	requester *crypto.HPKEIdentity
	store     *boltstore.Store
	rules     order.Rules
}

func newEnv(t *testing.T) *env {
	ctx := context.Background()
	e := &env{}
	rs := testredis.Start(t)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.store = st
	e.keys, _ = crypto.NewGatewayKeys()
	var slots []release.Slot
	var rcps []crypto.Recipient
	for i, role := range []string{"legal", "hr", "works-council"} {
		id, err := crypto.GenerateSlotKey(crypto.KEMMLKEM768X25519)
		if err != nil {
			t.Fatal(err)
		}
		e.slots = append(e.slots, id)
		rcps = append(rcps, id.Recipient())
		slots = append(slots, release.Slot{Role: role, Recipient: id.Recipient(), Holders: []string{holder(i)}})
	}
	e.requester, _ = crypto.GenerateSlotKey(crypto.KEMX25519)
	e.rules = order.DefaultRules()

	// Ten days of alice and bob, ingested through the real pipeline.
	sealer, _ := crypto.NewSealer(crypto.SealerConfig{Keys: e.keys, Slots: rcps, Quorum: 2, Grace: time.Hour})
	var evs []map[string]any
	base := time.Now().UTC().AddDate(0, 0, -12).Truncate(24 * time.Hour)
	for d := 0; d < 10; d++ {
		for i, u := range []string{alice, bob} {
			ms := base.AddDate(0, 0, d).Add(10 * time.Hour).UnixMilli()
			evs = append(evs, map[string]any{"kind": "posted", "post": map[string]any{
				"id": fmt.Sprintf("p%d%d%024d", d, i, 0), "user_id": u, "channel_id": channel,
				"create_at": ms, "update_at": ms, "message": fmt.Sprintf("note %d by %s", d, u[:4]),
			}})
		}
	}
	body, _ := json.Marshal(map[string]any{"events": evs})
	parsed, err := gateway.ParseBatch(body, gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 100}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&gateway.Pipeline{Sealer: sealer, Keys: e.keys, Store: st}).Ingest(ctx, parsed); err != nil {
		t.Fatal(err)
	}

	desk, err := release.New(release.Config{
		Orders: redisstore.New(rs.Client(), time.Hour, nil), Store: st, Keys: e.keys, Audit: audit.New(st, nil),
		Slots: slots, Quorum: 2, Requesters: map[string]*crypto.HPKERecipient{carol: e.requester.Recipient()},
		Rules: e.rules,
	})
	if err != nil {
		t.Fatal(err)
	}
	auth, err := mmauth.New(mattermost(t).URL, nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.api = httptest.NewServer((&orderapi.Server{Desk: desk, Auth: auth, PluginSecret: pluginSecret}).Handler())
	t.Cleanup(e.api.Close)
	return e
}

func (e *env) client(user string) *orderapi.Client {
	return &orderapi.Client{BaseURL: e.api.URL, Token: token(user)}
}

func (e *env) draft(t *testing.T, c *orderapi.Client) *order.Order {
	rules, err := c.Rules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	o := &order.Order{
		Subject: alice, Requester: carol, LegalBasis: "GDPR art. 6(1)(f)", LegitimateInterestRef: "LIA-1",
		Purpose:       rules.Purposes[0],
		Suspicion:     order.Suspicion{Facts: "facts", FirstNoticed: now.AddDate(0, 0, -2).Format("2006-01-02"), EvidenceRefs: []string{"EV-1"}, PolicyClause: "4.2"},
		PriorWarning:  order.PriorWarning{WhyNone: "would warn the suspect"},
		LessIntrusive: order.LessIntrusive{Tried: "logs", WhyInsufficient: "logs lack content"},
		WhyContent:    "content needed", DPIARef: "DPIA-1", WorksCouncilRef: "OR-1", ICTPolicyRef: "ICT-1",
		Window:    order.Window{From: now.AddDate(0, 0, -10).Format("2006-01-02"), To: now.AddDate(0, 0, -5).Format("2006-01-02")},
		ExpiresAt: now.Add(48 * time.Hour),
		Notice:    order.Notice{Mode: order.NoticeImmediate},
	}
	o.Stamp(rules, now)
	return o
}

func status(t *testing.T, err error) int {
	t.Helper()
	var ae *orderapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an API error", err)
	}
	return ae.Status
}

// TestOrderAPI runs one order through the HTTP API with the client the CLI
// uses, and checks the status of each refusal.
func TestOrderAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := e.client(carol)

	o := e.draft(t, req)
	if _, err := req.File(ctx, o, []byte("not a signature")); status(t, err) != http.StatusForbidden {
		t.Fatalf("forged signature: %v", err)
	}
	bad := *o
	bad.WhyContent = ""
	if _, err := req.File(ctx, &bad, crypto.SignOrder(e.requester, bad.Hash())); status(t, err) != http.StatusUnprocessableEntity || !strings.Contains(err.Error(), "why_content") {
		t.Fatalf("missing field: %v", err)
	}
	if _, err := req.File(ctx, o, crypto.SignOrder(e.requester, o.Hash())); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client(stranger).Get(ctx, o.ID); status(t, err) != http.StatusForbidden {
		t.Fatalf("stranger reads the order: %v", err)
	}
	if _, err := (&orderapi.Client{BaseURL: e.api.URL, Token: "zzzzzzzzzzzzzzzzzzzzzzzzzz"}).Get(ctx, o.ID); status(t, err) != http.StatusUnauthorized {
		t.Fatalf("bad token: %v", err)
	}

	approve := func(slot int) (release.ApproveResult, error) {
		c := e.client(holder(slot))
		doc, err := c.Get(ctx, o.ID)
		if err != nil {
			return release.ApproveResult{}, err
		}
		esc, err := c.Escrow(ctx, o.ID, slot)
		if err != nil {
			return release.ApproveResult{}, err
		}
		blob, n, err := release.MakeApproval(doc, esc, slot, e.slots[slot], e.keys.Verifier(), e.requester.Recipient())
		if err != nil {
			return release.ApproveResult{}, err
		}
		if n != 6 {
			t.Fatalf("approval holds %d shares, want one per day of the window (6)", n)
		}
		return c.Approve(ctx, o.ID, slot, blob)
	}
	if _, err := approve(0); err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if _, err := req.Messages(ctx, o.ID, "", 10, &page); status(t, err) != http.StatusGone {
		t.Fatalf("read with one approval: %v", err)
	}
	if _, err := approve(0); status(t, err) != http.StatusConflict {
		t.Fatalf("same slot twice: %v", err)
	}
	res, err := approve(1)
	if err != nil || !res.Activated {
		t.Fatalf("quorum: %+v %v", res, err)
	}

	var texts []string
	cursor := ""
	for {
		page.Reset()
		next, err := req.Messages(ctx, o.ID, cursor, 2, &page)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Watermark string
			Messages  []struct{ Text string }
		}
		if err := json.Unmarshal(page.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(doc.Watermark, o.ID) {
			t.Fatal("page is not watermarked")
		}
		for _, m := range doc.Messages {
			texts = append(texts, m.Text)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(texts) != 6 {
		t.Fatalf("read %d messages, want alice's 6: %q", len(texts), texts)
	}
	for _, s := range texts {
		if !strings.Contains(s, alice[:4]) {
			t.Fatalf("released a message that is not alice's: %q", s)
		}
	}
	if _, err := e.client(holder(0)).Messages(ctx, o.ID, "", 10, &page); status(t, err) != http.StatusForbidden {
		t.Fatalf("approver reads content: %v", err)
	}
	var eml bytes.Buffer
	if err := req.Export(ctx, o.ID, "eml", &eml); err != nil || !strings.Contains(eml.String(), "X-Sealgate-Order: "+o.ID) {
		t.Fatalf("eml export: %v", err)
	}
	if err := req.Export(ctx, o.ID, "pdf", &eml); status(t, err) != http.StatusBadRequest {
		t.Fatalf("unknown format: %v", err)
	}
	if err := req.Revoke(ctx, o.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if _, err := req.Messages(ctx, o.ID, "", 10, &page); status(t, err) != http.StatusGone {
		t.Fatalf("read after revocation: %v", err)
	}
}

// TestCookieNeedsXRequestedWith: a browser's session cookie alone (which a
// cross-site form would send) is not enough.
func TestCookieNeedsXRequestedWith(t *testing.T) {
	e := newEnv(t)
	for _, xrw := range []string{"", "XMLHttpRequest"} {
		req, _ := http.NewRequest(http.MethodGet, e.api.URL+"/v1/orders/rules", nil)
		req.AddCookie(&http.Cookie{Name: "MMAUTHTOKEN", Value: token(carol)})
		if xrw != "" {
			req.Header.Set("X-Requested-With", xrw)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusUnauthorized
		if xrw != "" {
			want = http.StatusOK
		}
		if resp.StatusCode != want {
			t.Fatalf("cookie with X-Requested-With %q: %d, want %d", xrw, resp.StatusCode, want)
		}
	}
}

// TestSelfService: the subject sees the order that named them, every
// access, and can download their own released messages; another employee
// sees nothing of it; a bad token gets 401.
func TestSelfService(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := e.client(carol)
	o := e.draft(t, req)
	if _, err := req.File(ctx, o, crypto.SignOrder(e.requester, o.Hash())); err != nil {
		t.Fatal(err)
	}
	for slot := 0; slot < 2; slot++ {
		c := e.client(holder(slot))
		doc, _ := c.Get(ctx, o.ID)
		esc, _ := c.Escrow(ctx, o.ID, slot)
		blob, _, err := release.MakeApproval(doc, esc, slot, e.slots[slot], e.keys.Verifier(), e.requester.Recipient())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Approve(ctx, o.ID, slot, blob); err != nil {
			t.Fatal(err)
		}
	}
	var page bytes.Buffer
	if _, err := req.Messages(ctx, o.ID, "", 100, &page); err != nil {
		t.Fatal(err)
	}

	mine, err := e.client(alice).MyOrders(ctx)
	if err != nil || len(mine) != 1 || mine[0].OrderID != o.ID || len(mine[0].Accesses) != 1 || mine[0].Accesses[0].Messages != 6 {
		t.Fatalf("alice's orders: %+v %v", mine, err)
	}
	acc, err := e.client(alice).MyAccesses(ctx)
	if err != nil || len(acc) != 1 || acc[0].OrderID != o.ID || acc[0].Role != "requester" || acc[0].Action != "viewed" {
		t.Fatalf("alice's accesses: %+v %v", acc, err)
	}
	var copyOf bytes.Buffer
	if err := e.client(alice).MyMessages(ctx, o.ID, "json", &copyOf); err != nil || strings.Count(copyOf.String(), "by "+alice[:4]) != 6 {
		t.Fatalf("alice's copy: %v\n%s", err, copyOf.String())
	}

	for _, other := range []string{bob, holder(0), carol} {
		theirs, err := e.client(other).MyOrders(ctx)
		if err != nil || len(theirs) != 0 {
			t.Fatalf("%s sees %d orders: %v", other, len(theirs), err)
		}
		acc, err := e.client(other).MyAccesses(ctx)
		if err != nil || len(acc) != 0 {
			t.Fatalf("%s sees %d accesses: %v", other, len(acc), err)
		}
		if err := e.client(other).MyMessages(ctx, o.ID, "json", &copyOf); status(t, err) != http.StatusNotFound {
			t.Fatalf("%s downloads alice's messages: %v", other, err)
		}
	}
	bad := &orderapi.Client{BaseURL: e.api.URL, Token: "expiredtokenexpiredtokenex"}
	if _, err := bad.MyOrders(ctx); status(t, err) != http.StatusUnauthorized {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := (&orderapi.Client{BaseURL: e.api.URL}).MyAccesses(ctx); status(t, err) != http.StatusUnauthorized {
		t.Fatalf("no token: %v", err)
	}
}

// TestPluginSelfService: the /sealgate command's path — the plugin's secret
// with the user Mattermost authenticated — reaches /v1/me and nothing else.
func TestPluginSelfService(t *testing.T) {
	e := newEnv(t)
	get := func(path, secret, user string) int {
		req, _ := http.NewRequest(http.MethodGet, e.api.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		req.Header.Set(orderapi.PluginUserHeader, user)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, secret, user string
		want               int
	}{
		{"/v1/me/orders", pluginSecret, alice, http.StatusOK},
		{"/v1/me/accesses", pluginSecret, bob, http.StatusOK},
		{"/v1/me/orders", pluginSecret + "x", alice, http.StatusUnauthorized},
		{"/v1/me/orders", "", alice, http.StatusUnauthorized},
		{"/v1/me/orders", pluginSecret, "not-an-id", http.StatusUnauthorized},
		{"/v1/orders/rules", pluginSecret, carol, http.StatusUnauthorized},
		{"/v1/orders/rules", token(carol), carol, http.StatusUnauthorized},
		{"/v1/me/orders/ord_aaaaaaaaaaaaaaaaaaaaaaaaaa/messages?format=json", pluginSecret, alice, http.StatusUnauthorized},
	} {
		if got := get(c.path, c.secret, c.user); got != c.want {
			t.Errorf("%s as %s with secret %.8q: %d, want %d", c.path, c.user, c.secret, got, c.want)
		}
	}
}
