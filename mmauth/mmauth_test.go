package mmauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const fixtureDir = "../../shared/fixtures/mattermost-9.11/http/"

// Tokens of the Mattermost form (26 lowercase letters and digits).
const (
	goodToken  = "ujzde8gxd6ncf10epf91dhodzd"
	badToken   = "oc9is0j8ht9lgmxg9edn581u33"
	otherToken = "xtplpft75v2seh60kvj50ce9uv"
	aliceID    = "g6e8xk8t6t86tjy8nrqyeqmm5c"
)

// fixture is a recorded Mattermost 9.11 exchange.
type fixture struct {
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Query   string            `json:"query"`
		Headers map[string]string `json:"headers"`
	} `json:"request"`
	Response struct {
		Status       int               `json:"status"`
		Headers      map[string]string `json:"headers"`
		BodyFormat   string            `json:"body_format"`
		Body         json.RawMessage   `json:"body"`
		BodyTrailing string            `json:"body_trailing"`
	} `json:"response"`
}

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	b, err := os.ReadFile(fixtureDir + name)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if f.Response.BodyFormat != "json" {
		t.Fatalf("%s: body_format %q, want json", name, f.Response.BodyFormat)
	}
	return f
}

// reply is what the fake Mattermost answers.
type reply struct {
	status int
	header map[string]string
	body   []byte
}

// fixtureReply is the recorded response of fixture name, its JSON body
// changed by edit if not nil.
func fixtureReply(t *testing.T, name string, edit func(map[string]any)) reply {
	t.Helper()
	f := loadFixture(t, name)
	var body bytes.Buffer
	if edit == nil {
		if err := json.Compact(&body, f.Response.Body); err != nil {
			t.Fatal(err)
		}
	} else {
		var m map[string]any
		if err := json.Unmarshal(f.Response.Body, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		body.Write(b)
	}
	body.WriteString(f.Response.BodyTrailing)
	h := map[string]string{}
	for k, v := range f.Response.Headers {
		if k != "Content-Length" { // the body is re-encoded
			h[k] = v
		}
	}
	return reply{status: f.Response.Status, header: h, body: body.Bytes()}
}

type seenRequest struct {
	method, path, rawQuery string
	header                 http.Header
}

// fakeMM is a Mattermost server answering GET /api/v4/users/me from the
// recorded fixtures: the users-me answer for goodToken, the 401 of a bad
// token for anything else, unless answer says otherwise.
type fakeMM struct {
	srv     *httptest.Server
	me      reply
	bad     reply
	answer  func(token string) (reply, bool) // optional override
	gate    chan struct{}                    // optional: requests wait for it to close
	arrived chan struct{}                    // one value per request

	mu   sync.Mutex
	seen []seenRequest
}

func newFakeMM(t *testing.T) *fakeMM {
	t.Helper()
	f := &fakeMM{
		me:      fixtureReply(t, "users-me.json", nil),
		bad:     fixtureReply(t, "posts-create-401-bad-token.json", nil),
		arrived: make(chan struct{}, 1000),
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeMM) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen = append(f.seen, seenRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone()})
	gate := f.gate
	f.mu.Unlock()
	f.arrived <- struct{}{}
	if gate != nil {
		<-gate
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	rep := f.bad
	if token == goodToken {
		rep = f.me
	}
	if f.answer != nil {
		if a, ok := f.answer(token); ok {
			rep = a
		}
	}
	for k, v := range rep.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(rep.status)
	w.Write(rep.body)
}

func (f *fakeMM) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

func (f *fakeMM) count() int { return len(f.requests()) }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newAuth(t *testing.T, baseURL string, hc *http.Client, ttl time.Duration) (*Authenticator, *fakeClock) {
	t.Helper()
	a, err := New(baseURL, hc, ttl)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 11, 19, 9, 0, 0, 0, time.UTC)}
	a.now = clk.now
	return a, clk
}

// checkErr fails unless err wraps want, does not wrap the other sentinel,
// and does not quote the token.
func checkErr(t *testing.T, err, want error, token string) {
	t.Helper()
	other := ErrUnavailable
	if want == ErrUnavailable {
		other = ErrUnauthorized
	}
	switch {
	case !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	case errors.Is(err, other):
		t.Fatalf("error %v is also %v", err, other)
	case token != "" && strings.Contains(err.Error(), token):
		t.Fatalf("error quotes the token: %v", err)
	}
}

func TestUserGoodToken(t *testing.T) {
	mm := newFakeMM(t)
	a, _ := newAuth(t, mm.srv.URL, nil, 0)
	u, err := a.User(context.Background(), goodToken)
	if err != nil {
		t.Fatal(err)
	}
	if want := (User{ID: aliceID, Username: "alice", Locale: "en"}); u != want {
		t.Fatalf("user %+v, want %+v", u, want)
	}
	want := loadFixture(t, "users-me.json").Request
	reqs := mm.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != want.Method || r.path != want.Path || r.rawQuery != want.Query {
		t.Errorf("request %s %s?%s, want %s %s?%s", r.method, r.path, r.rawQuery, want.Method, want.Path, want.Query)
	}
	if got := r.header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+goodToken {
		t.Errorf("Authorization %q, want one Bearer header with the token", got)
	}
	if got := r.header.Get("X-Requested-With"); got != "XMLHttpRequest" {
		t.Errorf("X-Requested-With %q", got)
	}
	if c := r.header.Get("Cookie"); c != "" {
		t.Errorf("request carries cookies: %q", c)
	}
}

func TestUserSubpath(t *testing.T) {
	mm := newFakeMM(t)
	a, _ := newAuth(t, mm.srv.URL+"/chat/", nil, 0)
	if _, err := a.User(context.Background(), goodToken); err != nil {
		t.Fatal(err)
	}
	if p := mm.requests()[0].path; p != "/chat/api/v4/users/me" {
		t.Fatalf("path %q", p)
	}
}

// The caller's client may carry a cookie jar; only the token may
// authenticate the request to Mattermost.
func TestUserIgnoresCallerJar(t *testing.T) {
	mm := newFakeMM(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(mm.srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "MMAUTHTOKEN", Value: otherToken, Path: "/"}})
	a, _ := newAuth(t, mm.srv.URL, &http.Client{Jar: jar}, 0)
	if _, err := a.User(context.Background(), goodToken); err != nil {
		t.Fatal(err)
	}
	if c := mm.requests()[0].header.Get("Cookie"); c != "" {
		t.Fatalf("request carries the jar's cookies: %q", c)
	}
}

func TestUserCacheTTL(t *testing.T) {
	mm := newFakeMM(t)
	a, clk := newAuth(t, mm.srv.URL, nil, 0)
	if a.ttl != 30*time.Second {
		t.Fatalf("default ttl %v", a.ttl)
	}
	ctx := context.Background()
	for i := range 3 {
		if u, err := a.User(ctx, goodToken); err != nil || u.ID != aliceID {
			t.Fatalf("call %d: %+v, %v", i, u, err)
		}
	}
	clk.advance(30*time.Second - time.Nanosecond)
	if _, err := a.User(ctx, goodToken); err != nil {
		t.Fatal(err)
	}
	if n := mm.count(); n != 1 {
		t.Fatalf("%d requests within the ttl, want 1", n)
	}
	clk.advance(time.Nanosecond)
	if u, err := a.User(ctx, goodToken); err != nil || u.ID != aliceID {
		t.Fatalf("after ttl: %+v, %v", u, err)
	}
	if n := mm.count(); n != 2 {
		t.Fatalf("%d requests after the ttl, want 2", n)
	}
	// A short ttl also bounds the negative cache.
	b, _ := newAuth(t, mm.srv.URL, nil, 2*time.Second)
	if b.ttl != 2*time.Second || b.negTTL != 2*time.Second {
		t.Fatalf("ttl %v, negative ttl %v", b.ttl, b.negTTL)
	}
	if a.negTTL != 5*time.Second {
		t.Fatalf("default negative ttl %v", a.negTTL)
	}
}

func TestUserRefused(t *testing.T) {
	cases := []struct {
		name  string
		reply func(t *testing.T) reply
		inErr string
	}{
		{"401 bad token", func(t *testing.T) reply { return fixtureReply(t, "posts-create-401-bad-token.json", nil) }, "api.context.session_expired.app_error"},
		{"403", func(t *testing.T) reply {
			return fixtureReply(t, "channels-posts-include-deleted-403-regular-user.json", nil)
		}, "status 403"},
		{"deleted user", func(t *testing.T) reply {
			return fixtureReply(t, "users-me.json", func(m map[string]any) { m["delete_at"] = 1795346600000 })
		}, "deactivated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mm := newFakeMM(t)
			rep := c.reply(t)
			mm.answer = func(string) (reply, bool) { return rep, true }
			a, clk := newAuth(t, mm.srv.URL, nil, 0)
			ctx := context.Background()
			u, err := a.User(ctx, badToken)
			checkErr(t, err, ErrUnauthorized, badToken)
			if u != (User{}) {
				t.Fatalf("user %+v with an error", u)
			}
			if !strings.Contains(err.Error(), c.inErr) {
				t.Errorf("error %q does not say %q", err, c.inErr)
			}
			// Refusals are remembered for five seconds.
			clk.advance(5*time.Second - time.Nanosecond)
			_, err = a.User(ctx, badToken)
			checkErr(t, err, ErrUnauthorized, badToken)
			if n := mm.count(); n != 1 {
				t.Fatalf("%d requests within the negative ttl, want 1", n)
			}
			clk.advance(time.Nanosecond)
			_, err = a.User(ctx, badToken)
			checkErr(t, err, ErrUnauthorized, badToken)
			if n := mm.count(); n != 2 {
				t.Fatalf("%d requests after the negative ttl, want 2", n)
			}
		})
	}
}

func TestUserMalformedToken(t *testing.T) {
	mm := newFakeMM(t)
	a, _ := newAuth(t, mm.srv.URL, nil, 0)
	for _, tok := range []string{
		"",
		"short",
		goodToken + "a",
		goodToken[:25],
		strings.ToUpper(goodToken),
		goodToken[:25] + "-",
		goodToken[:12] + " " + goodToken[13:],
		"é" + goodToken[:24], // 26 bytes, not ASCII
		"Bearer " + goodToken,
		goodToken + "\n",
		"../../../../etc/passwd/x/y",
	} {
		_, err := a.User(context.Background(), tok)
		checkErr(t, err, ErrUnauthorized, tok)
	}
	if n := mm.count(); n != 0 {
		t.Fatalf("malformed tokens made %d requests", n)
	}
}

type countingRT struct {
	n  atomic.Int32
	rt http.RoundTripper
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func TestUserServerDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rt := &countingRT{rt: http.DefaultTransport}
	a, _ := newAuth(t, "http://"+addr, &http.Client{Transport: rt, Timeout: 5 * time.Second}, 0)
	ctx := context.Background()
	for range 2 {
		u, err := a.User(ctx, goodToken)
		checkErr(t, err, ErrUnavailable, goodToken)
		if u != (User{}) {
			t.Fatalf("user %+v with an error", u)
		}
	}
	if n := rt.n.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2: a failure must not be cached", n)
	}
	if len(a.cache) != 0 {
		t.Fatalf("%d cache entries after failures", len(a.cache))
	}
	// Mattermost comes back on the same address: the next call asks it.
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen again on %s: %v", addr, err)
	}
	mm := newFakeMM(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(mm.serve))
	srv.Listener.Close()
	srv.Listener = l2
	srv.Start()
	defer srv.Close()
	if u, err := a.User(ctx, goodToken); err != nil || u.ID != aliceID {
		t.Fatalf("after recovery: %+v, %v", u, err)
	}
}

func TestUserNoVerdict(t *testing.T) {
	bigNick := strings.Repeat("x", 1<<20)
	cases := []struct {
		name  string
		reply func(t *testing.T, base string) reply
	}{
		{"500", func(t *testing.T, _ string) reply {
			return reply{500, map[string]string{"Content-Type": "application/json"},
				[]byte(`{"id":"app.user.get.app_error","message":"We encountered an error finding the account.","status_code":500}`)}
		}},
		{"502 from a proxy", func(*testing.T, string) reply {
			return reply{502, map[string]string{"Content-Type": "text/html"}, []byte("<html>Bad Gateway</html>")}
		}},
		{"503", func(*testing.T, string) reply { return reply{503, nil, nil} }},
		{"404", func(*testing.T, string) reply { return reply{404, nil, []byte("404 page not found")} }},
		{"429", func(*testing.T, string) reply { return reply{429, nil, nil} }},
		{"redirect to a page that would say alice", func(t *testing.T, base string) reply {
			return reply{302, map[string]string{"Location": base + "/api/v4/users/me?follow=1"}, nil}
		}},
		{"200 not JSON", func(*testing.T, string) reply { return reply{200, nil, []byte("<html>login</html>")} }},
		{"200 JSON array", func(*testing.T, string) reply { return reply{200, nil, []byte(`[]`)} }},
		{"200 empty", func(*testing.T, string) reply { return reply{200, nil, nil} }},
		{"200 id not a Mattermost id", func(t *testing.T, _ string) reply {
			return fixtureReply(t, "users-me.json", func(m map[string]any) { m["id"] = "alice" })
		}},
		{"200 no username", func(t *testing.T, _ string) reply {
			return fixtureReply(t, "users-me.json", func(m map[string]any) { delete(m, "username") })
		}},
		{"200 over 1 MiB", func(t *testing.T, _ string) reply {
			return fixtureReply(t, "users-me.json", func(m map[string]any) { m["nickname"] = bigNick })
		}},
	}
	inErr := map[string]string{ // what some errors must say
		"500": "status 500, app.user.get.app_error",
		"redirect to a page that would say alice": "status 302",
		"200 id not a Mattermost id":              "not a Mattermost user",
		"200 over 1 MiB":                          "larger than 1048576 bytes",
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mm := newFakeMM(t)
			rep := c.reply(t, mm.srv.URL)
			mm.answer = func(string) (reply, bool) { return rep, true }
			a, _ := newAuth(t, mm.srv.URL, nil, 0)
			for range 2 {
				u, err := a.User(context.Background(), goodToken)
				checkErr(t, err, ErrUnavailable, goodToken)
				if u != (User{}) {
					t.Fatalf("user %+v with an error", u)
				}
				if !strings.Contains(err.Error(), inErr[c.name]) {
					t.Fatalf("error %q does not say %q", err, inErr[c.name])
				}
			}
			if n := mm.count(); n != 2 {
				t.Fatalf("%d requests, want 2: no verdict must not be cached", n)
			}
		})
	}
}

func TestUserConcurrent(t *testing.T) {
	mm := newFakeMM(t)
	mm.gate = make(chan struct{})
	a, _ := newAuth(t, mm.srv.URL, nil, 0)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			u, err := a.User(context.Background(), goodToken)
			if err == nil && u.ID != aliceID {
				err = errors.New("wrong user " + u.ID)
			}
			errs <- err
		})
	}
	<-mm.arrived
	time.Sleep(50 * time.Millisecond) // let the others pile up behind the first
	close(mm.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := mm.count(); c != 1 {
		t.Fatalf("%d requests for %d concurrent lookups, want 1", c, n)
	}
}

func TestUserCallerGivesUp(t *testing.T) {
	mm := newFakeMM(t)
	mm.gate = make(chan struct{})
	a, _ := newAuth(t, mm.srv.URL, nil, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := a.User(ctx, goodToken)
		done <- err
	}()
	<-mm.arrived
	cancel()
	err := <-done
	checkErr(t, err, ErrUnavailable, goodToken)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled too", err)
	}
	// The shared request goes on for whoever else waits, and its answer
	// is cached.
	close(mm.gate)
	if u, err := a.User(context.Background(), goodToken); err != nil || u.ID != aliceID {
		t.Fatalf("%+v, %v", u, err)
	}
	if u, err := a.User(context.Background(), goodToken); err != nil || u.ID != aliceID {
		t.Fatalf("%+v, %v", u, err)
	}
	if c := mm.count(); c != 1 {
		t.Fatalf("%d requests, want 1", c)
	}
	// A context already over makes no request.
	_, err = a.User(ctx, otherToken)
	checkErr(t, err, ErrUnavailable, otherToken)
	if c := mm.count(); c != 1 {
		t.Fatalf("%d requests, want 1", c)
	}
}

func TestCacheBound(t *testing.T) {
	mm := newFakeMM(t)
	tokens := []string{
		"w53efr4edt2sywb3wkh5dnsipz", "z5fk2z9ri19r0wyojfljooa5lq",
		"saj08xui6d39zzzzg4zdmen2kh", "vdgaj8gxbenyjqwx4hh5344tfj",
		"gvq4k7bn7xj8b7tfq7xkwo886v",
	}
	refused := tokens[1]
	mm.answer = func(tok string) (reply, bool) {
		if tok == refused {
			return mm.bad, true
		}
		return mm.me, true // every other token is alice's
	}
	a, clk := newAuth(t, mm.srv.URL, nil, 0)
	a.max = 3
	ctx := context.Background()
	cached := func(tok string) bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		_, ok := a.cache[sha256.Sum256([]byte(tok))]
		return ok
	}
	for _, tok := range tokens[:3] {
		a.User(ctx, tok)
	}
	// The refusal (second) expires after 5s, the others live 30s: the
	// expired entry goes first, although the first one is older.
	clk.advance(6 * time.Second)
	if _, err := a.User(ctx, tokens[3]); err != nil {
		t.Fatal(err)
	}
	if !cached(tokens[0]) || cached(refused) || !cached(tokens[2]) || !cached(tokens[3]) {
		t.Fatal("the expired entry was not the one evicted")
	}
	// Nothing expired: the oldest goes.
	if _, err := a.User(ctx, tokens[4]); err != nil {
		t.Fatal(err)
	}
	if cached(tokens[0]) || !cached(tokens[2]) || !cached(tokens[3]) || !cached(tokens[4]) {
		t.Fatal("the oldest entry was not the one evicted")
	}
	if len(a.cache) != 3 || a.order.Len() != 3 {
		t.Fatalf("cache %d entries, order %d", len(a.cache), a.order.Len())
	}
	before := mm.count()
	a.User(ctx, tokens[2])
	if mm.count() != before {
		t.Fatal("a cached token made a request")
	}
	a.User(ctx, tokens[0])
	if mm.count() != before+1 {
		t.Fatal("an evicted token made no request")
	}
}

func TestNew(t *testing.T) {
	for _, u := range []string{
		"",
		"mattermost.example.test",
		"/api",
		"ftp://mattermost.example.test",
		"http://",
		"https://mattermost.example.test/?x=1",
		"https://mattermost.example.test/?",
		"https://mattermost.example.test/#top",
		"https://bot:secret@mattermost.example.test",
		"mailto:ops@example.test",
		"https://mattermost.example.test/%zz",
	} {
		if _, err := New(u, nil, 0); err == nil {
			t.Errorf("New(%q) accepted", u)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q): error quotes the password: %v", u, err)
		}
	}
	if _, err := New("https://mattermost.example.test", nil, -time.Second); err == nil {
		t.Error("negative ttl accepted")
	}
	for base, want := range map[string]string{
		"https://mattermost.example.test":           "https://mattermost.example.test/api/v4/users/me",
		"https://mattermost.example.test/":          "https://mattermost.example.test/api/v4/users/me",
		"http://10.0.0.7:8065/chat":                 "http://10.0.0.7:8065/chat/api/v4/users/me",
		"https://mattermost.example.test/chat/":     "https://mattermost.example.test/chat/api/v4/users/me",
		"https://MatterMost.example.test:443/team/": "https://MatterMost.example.test:443/team/api/v4/users/me",
	} {
		a, err := New(base, nil, 0)
		if err != nil {
			t.Fatalf("New(%q): %v", base, err)
		}
		if a.meURL != want {
			t.Errorf("New(%q): %q, want %q", base, a.meURL, want)
		}
		if a.hc.Timeout != 10*time.Second {
			t.Errorf("default client timeout %v", a.hc.Timeout)
		}
	}
	hc := &http.Client{Timeout: time.Second}
	a, err := New("https://mattermost.example.test", hc, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if a.hc == hc || a.hc.Timeout != time.Second || hc.CheckRedirect != nil {
		t.Error("the caller's client is not copied, or was changed")
	}
	if a.ttl != time.Minute || a.negTTL != 5*time.Second {
		t.Errorf("ttl %v, negative ttl %v", a.ttl, a.negTTL)
	}
}

func TestTokenFromRequest(t *testing.T) {
	const tok = goodToken
	cases := []struct {
		name   string
		auth   string
		cookie string
		query  string
		want   string // "": ErrUnauthorized
	}{
		{"Bearer", "Bearer " + tok, "", "", tok},
		{"lowercase bearer", "bearer " + tok, "", "", tok},
		{"BEARER", "BEARER " + tok, "", "", tok},
		{"Token", "Token " + tok, "", "", tok},
		{"lowercase token", "token " + tok, "", "", tok},
		{"Bearer with extra spaces", "Bearer   " + tok + " ", "", "", tok},
		{"cookie", "", tok, "", tok},
		{"header wins over cookie", "Bearer " + tok, otherToken, "", tok},
		{"other scheme, cookie", "Basic dXNlcjpwYXNz", tok, "", tok},
		{"none", "", "", "", ""},
		{"empty Bearer", "Bearer ", "", "", ""},
		{"Bearer without space", "Bearer" + tok, "", "", ""},
		{"other scheme only", "Basic dXNlcjpwYXNz", "", "", ""},
		{"query string is not accepted", "", "", "access_token=" + tok, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/orders?"+c.query, nil)
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			if c.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "MMAUTHTOKEN", Value: c.cookie})
			}
			got, err := TokenFromRequest(r)
			if c.want == "" {
				checkErr(t, err, ErrUnauthorized, tok)
				if got != "" {
					t.Fatalf("token %q with an error", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("%q, %v; want %q", got, err, c.want)
			}
		})
	}
}
