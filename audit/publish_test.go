package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealgate/sealgate/audit"
)

// botPostFixture is a recorded bot post against Mattermost 9.11.
const botPostFixture = "../../shared/fixtures/mattermost-9.11/http/bots-posts-create-dm.json"

type httpFixture struct {
	Request struct {
		Method  string            `json:"method"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
		Body    map[string]any    `json:"body"`
	} `json:"request"`
	Response struct {
		Status       int               `json:"status"`
		Headers      map[string]string `json:"headers"`
		Body         json.RawMessage   `json:"body"`
		BodyTrailing string            `json:"body_trailing"`
	} `json:"response"`
}

func loadFixture(t *testing.T) httpFixture {
	t.Helper()
	raw, err := os.ReadFile(botPostFixture)
	if err != nil {
		t.Fatalf("recorded Mattermost fixture: %v", err)
	}
	var f httpFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if f.Request.Method == "" || f.Request.Path == "" || f.Response.Status == 0 || len(f.Response.Body) == 0 {
		t.Fatalf("fixture %s lacks the request or response", botPostFixture)
	}
	return f
}

const (
	testToken   = "xoxo-bot-token-5ecr3t7ok3n"
	testChannel = "64yoetujjt8iumuwf99xoxyzpc"
)

// fakeMattermost serves POST /api/v4/posts the way the recorded Mattermost
// did, after checking the request against the recording, and keeps the
// messages posted. status, if set, replaces the recorded status (with body
// errBody).
type fakeMattermost struct {
	t       *testing.T
	f       httpFixture
	mu      sync.Mutex
	posted  []string
	status  int
	errBody string
}

func (s *fakeMattermost) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t, f := s.t, s.f
	if r.Method != f.Request.Method || r.URL.Path != f.Request.Path {
		t.Errorf("request %s %s, want %s %s", r.Method, r.URL.Path, f.Request.Method, f.Request.Path)
	}
	if got := r.Header.Get("Authorization"); got != "Bearer "+testToken {
		t.Errorf("Authorization = %q, want the bot token as a Bearer token", got)
	}
	if got, want := r.Header.Get("Content-Type"), f.Request.Headers["Content-Type"]; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		t.Errorf("request body: %v", err)
	}
	for k := range body {
		if _, ok := f.Request.Body[k]; !ok {
			t.Errorf("request body field %q is not a field of the recorded post", k)
		}
	}
	if body["channel_id"] != testChannel {
		t.Errorf("channel_id = %v, want %s", body["channel_id"], testChannel)
	}
	msg, _ := body["message"].(string)
	s.mu.Lock()
	s.posted = append(s.posted, msg)
	status, errBody := s.status, s.errBody
	s.mu.Unlock()
	w.Header().Set("Content-Type", f.Response.Headers["Content-Type"])
	if status != 0 {
		w.WriteHeader(status)
		fmt.Fprint(w, errBody)
		return
	}
	w.WriteHeader(f.Response.Status)
	w.Write(f.Response.Body)
	fmt.Fprint(w, f.Response.BodyTrailing)
}

func (s *fakeMattermost) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.posted...)
}

func newFakeMattermost(t *testing.T) (*fakeMattermost, *httptest.Server) {
	fm := &fakeMattermost{t: t, f: loadFixture(t)}
	srv := httptest.NewServer(fm)
	t.Cleanup(srv.Close)
	return fm, srv
}

// someLog is a log with a few entries.
func someLog(t *testing.T) (*memBackend, *audit.Log) {
	t.Helper()
	m := &memBackend{}
	l := audit.New(m, nil)
	for _, a := range []audit.Action{audit.ActionOrderFiled, audit.ActionApproved, audit.ActionActivated, audit.ActionViewed} {
		if _, err := l.Append(t.Context(), audit.Record{ActorRole: "requester", Action: a, OrderID: "ord_1"}); err != nil {
			t.Fatal(err)
		}
	}
	return m, l
}

func TestMattermostPublisher(t *testing.T) {
	fm, srv := newFakeMattermost(t)
	if fm.f.Response.Status != http.StatusCreated {
		t.Fatalf("recorded status %d, want 201", fm.f.Response.Status)
	}
	m, l := someLog(t)
	for i, base := range []string{srv.URL, srv.URL + "/"} {
		p := &audit.MattermostPublisher{BaseURL: base, BotToken: testToken, ChannelID: testChannel, Client: srv.Client()}
		c, err := audit.PublishOnce(t.Context(), l, p)
		if err != nil {
			t.Fatal(err)
		}
		msgs := fm.messages()
		if len(msgs) != i+1 {
			t.Fatalf("%d messages posted, want %d", len(msgs), i+1)
		}
		got, err := audit.ParseCheckpoint(msgs[i])
		if err != nil {
			t.Fatalf("posted message %q: %v", msgs[i], err)
		}
		if got.Seq != c.Seq || got.Hash != c.Hash || !got.Time.Equal(c.Time) {
			t.Fatalf("posted %+v, PublishOnce returned %+v", got, c)
		}
		// The checkpoint is the head of the log, and the head is the
		// checkpoint entry, naming its own seq.
		head, _, err := m.LastAudit(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != head.Seq || got.Hash != head.Hash {
			t.Fatalf("posted checkpoint seq=%d hash=%x, log head seq=%d hash=%x", got.Seq, got.Hash, head.Seq, head.Hash)
		}
		if head.Action != audit.ActionCheckpoint || head.ActorRole != "system" || head.Detail != fmt.Sprintf("seq=%d", head.Seq) ||
			head.OrderID != "" || head.ActorPseudonym != "" {
			t.Fatalf("checkpoint entry = %+v", head)
		}
		if !got.Time.Equal(head.Time.Truncate(time.Second)) {
			t.Fatalf("checkpoint time %v, entry time %v", got.Time, head.Time)
		}
		if rep, err := audit.Verify(t.Context(), m, &got); err != nil || !rep.CheckpointOK {
			t.Fatalf("Verify against the posted checkpoint: %v", err)
		}
	}
	if n := len(m.entries); n != 6 {
		t.Fatalf("log holds %d entries, want 4 + 2 checkpoint entries", n)
	}
}

func TestMattermostPublisherErrors(t *testing.T) {
	fm, srv := newFakeMattermost(t)
	c := audit.Checkpoint{Seq: 3, Hash: [32]byte{1}, Time: time.Date(2026, 5, 17, 12, 0, 0, 0, time.UTC)}
	p := &audit.MattermostPublisher{BaseURL: srv.URL, BotToken: testToken, ChannelID: testChannel}
	for _, status := range []int{500, 401, 403, 200, 404} {
		fm.mu.Lock()
		fm.status = status
		// A server that echoes the token must not get it into the error.
		fm.errBody = `{"id":"api.post.create_post.app_error","message":"bad token ` + testToken + `","status_code":` + fmt.Sprint(status) + `}`
		fm.mu.Unlock()
		err := p.Publish(t.Context(), c)
		if err == nil {
			t.Fatalf("status %d: Publish succeeded", status)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(status)) {
			t.Errorf("status %d: error %q does not name the status", status, err)
		}
		if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), "5ecr3t") {
			t.Errorf("status %d: error %q holds the token", status, err)
		}
		if !strings.Contains(err.Error(), "api.post.create_post.app_error") {
			t.Errorf("status %d: error %q lacks Mattermost's error id", status, err)
		}
		t.Log(err)
	}

	// A body that is not an AppError: only the status.
	fm.mu.Lock()
	fm.status, fm.errBody = 502, "<html>bad gateway "+testToken+"</html>"
	fm.mu.Unlock()
	if err := p.Publish(t.Context(), c); err == nil || !strings.Contains(err.Error(), "502") || strings.Contains(err.Error(), testToken) {
		t.Errorf("502 with an HTML body: %v", err)
	}

	// An unreachable server, a cancelled context.
	srv.Close()
	if err := p.Publish(t.Context(), c); err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("closed server: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.Publish(ctx, c); !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), testToken) {
		t.Errorf("cancelled context: %v, want context.Canceled", err)
	}

	// Missing configuration.
	for _, bad := range []*audit.MattermostPublisher{
		{BotToken: testToken, ChannelID: testChannel},
		{BaseURL: "https://chat.example.com", ChannelID: testChannel},
		{BaseURL: "https://chat.example.com", BotToken: testToken},
		{BaseURL: "chat.example.com", BotToken: testToken, ChannelID: testChannel},
		{BaseURL: "ftp://chat.example.com", BotToken: testToken, ChannelID: testChannel},
	} {
		if err := bad.Publish(t.Context(), c); err == nil || strings.Contains(err.Error(), testToken) {
			t.Errorf("Publish with %s/%s: %v", bad.BaseURL, bad.ChannelID, err)
		}
	}
}

// fakePublisher records checkpoints; fail decides whether call n (from 1)
// fails; after, if set, runs after each successful publish.
type fakePublisher struct {
	mu        sync.Mutex
	calls     int
	published []audit.Checkpoint
	fail      func(n int) bool
	after     func()
}

func (p *fakePublisher) Publish(_ context.Context, c audit.Checkpoint) error {
	p.mu.Lock()
	p.calls++
	n := p.calls
	failed := p.fail != nil && p.fail(n)
	if !failed {
		p.published = append(p.published, c)
	}
	p.mu.Unlock()
	if failed {
		return fmt.Errorf("publish %d: channel unavailable", n)
	}
	if p.after != nil {
		p.after()
	}
	return nil
}

func (p *fakePublisher) state() (int, []audit.Checkpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, append([]audit.Checkpoint(nil), p.published...)
}

// errorLog collects onError's errors.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (e *errorLog) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, err)
}

func (e *errorLog) all() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.errs...)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishLoop(t *testing.T) {
	m, l := someLog(t)
	p := &fakePublisher{fail: func(n int) bool { return n == 1 }} // the first tick fails
	var errs errorLog
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	const interval = 20 * time.Millisecond
	go func() {
		defer close(done)
		audit.PublishLoop(ctx, l, p, interval, errs.add)
	}()
	waitFor(t, "three publishes", func() bool { _, pub := p.state(); return len(pub) >= 3 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("PublishLoop did not return after its context was cancelled")
	}
	calls, published := p.state()
	time.Sleep(5 * interval)
	if again, _ := p.state(); again != calls {
		t.Fatalf("publisher called %d times after PublishLoop returned", again-calls)
	}

	// The failure of the first tick went to onError, once, and the next
	// tick published.
	if e := errs.all(); len(e) != 1 || !strings.Contains(e[0].Error(), "channel unavailable") {
		t.Fatalf("onError got %v, want the first tick's failure only", e)
	}
	if len(published) != calls-1 {
		t.Fatalf("%d calls, %d published", calls, len(published))
	}
	// Each checkpoint covers its own checkpoint entry and the log still
	// verifies against each; each tick appended one checkpoint entry, the
	// failed one included.
	for i, c := range published {
		if i > 0 && c.Seq <= published[i-1].Seq {
			t.Fatalf("checkpoint %d seq %d after seq %d", i, c.Seq, published[i-1].Seq)
		}
		e := m.entries[c.Seq-1]
		if e.Action != audit.ActionCheckpoint || e.Detail != fmt.Sprintf("seq=%d", c.Seq) || e.Hash != c.Hash {
			t.Fatalf("checkpoint seq=%d: entry %+v", c.Seq, e)
		}
		if rep, err := audit.Verify(t.Context(), m, &c); err != nil || !rep.CheckpointOK {
			t.Fatalf("Verify against checkpoint %d: %v", c.Seq, err)
		}
	}
	if n := len(m.entries); n != 4+calls {
		t.Fatalf("log holds %d entries after %d ticks, want %d", n, calls, 4+calls)
	}

	// A non-positive interval is reported, and the loop returns.
	var bad errorLog
	audit.PublishLoop(t.Context(), l, p, 0, bad.add)
	if len(bad.all()) != 1 {
		t.Fatalf("interval 0: onError got %v", bad.all())
	}
	audit.PublishLoop(t.Context(), l, p, -time.Second, nil) // nil onError: must not panic
}

// TestPublishLoopDetectsTruncation deletes the entries at the end of the
// log, the last checkpoint's included, after the first publish: the next
// ticks must report the truncation and publish nothing over it.
func TestPublishLoopDetectsTruncation(t *testing.T) {
	m, l := someLog(t)
	var once sync.Once
	p := &fakePublisher{}
	p.after = func() {
		once.Do(func() {
			m.mu.Lock()
			m.entries = m.entries[:len(m.entries)-2]
			m.mu.Unlock()
		})
	}
	var errs errorLog
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		audit.PublishLoop(ctx, l, p, 10*time.Millisecond, errs.add)
	}()
	waitFor(t, "two reported errors", func() bool { return len(errs.all()) >= 2 })
	cancel()
	<-done
	calls, _ := p.state()
	if calls != 1 {
		t.Fatalf("publisher called %d times, want once (before the truncation)", calls)
	}
	for _, err := range errs.all() {
		var ve *audit.VerifyError
		if !errors.As(err, &ve) || ve.Problem != audit.ProblemTruncated {
			t.Fatalf("onError got %v, want a truncation", err)
		}
	}
	if n := len(m.entries); n != 3 {
		t.Fatalf("log holds %d entries, want 3: nothing appended over the truncated log", n)
	}
}

func TestPublishOnceRefusesTamperedLog(t *testing.T) {
	m, l := someLog(t)
	m.mu.Lock()
	m.entries[1].OrderID = "ord_2"
	m.mu.Unlock()
	p := &fakePublisher{}
	c, err := audit.PublishOnce(t.Context(), l, p)
	var ve *audit.VerifyError
	if !errors.As(err, &ve) || ve.Seq != 2 || ve.Problem != audit.ProblemModified {
		t.Fatalf("PublishOnce over a modified log = %+v, %v; want entry 2 modified", c, err)
	}
	if calls, _ := p.state(); calls != 0 || len(m.entries) != 4 || c != (audit.Checkpoint{}) {
		t.Fatalf("after the refusal: %d publishes, %d entries, checkpoint %+v", calls, len(m.entries), c)
	}
}

func TestPublishOnceFailure(t *testing.T) {
	m, l := someLog(t)
	p := &fakePublisher{fail: func(int) bool { return true }}
	c, err := audit.PublishOnce(t.Context(), l, p)
	if err == nil || !strings.Contains(err.Error(), "channel unavailable") {
		t.Fatalf("PublishOnce with a failing publisher: %v", err)
	}
	// The checkpoint that could not be published is returned, and its
	// entry stays in the log as the record of the attempt.
	if c.Seq != 5 || c.Hash != m.entries[4].Hash || m.entries[4].Action != audit.ActionCheckpoint {
		t.Fatalf("checkpoint %+v, entries %d", c, len(m.entries))
	}
}

// TestPublishOnceRetriesConflicts lets another writer append just before
// the checkpoint entry's first attempts: the entry lands on the new head and
// still names its own seq.
func TestPublishOnceRetriesConflicts(t *testing.T) {
	m, l := someLog(t)
	other := audit.New(m, nil)
	interfere, inOther := 2, false
	m.beforeAppend = func() {
		if interfere > 0 && !inOther {
			interfere--
			inOther = true
			if _, err := other.Append(context.Background(), audit.Record{ActorRole: "requester", Action: audit.ActionViewed}); err != nil {
				t.Error(err)
			}
			inOther = false
		}
	}
	p := &fakePublisher{}
	c, err := audit.PublishOnce(t.Context(), l, p)
	if err != nil {
		t.Fatal(err)
	}
	e := m.entries[len(m.entries)-1]
	if c.Seq != 7 || e.Seq != 7 || e.Hash != c.Hash || e.Detail != "seq=7" {
		t.Fatalf("checkpoint %+v, last entry %+v; want seq 7 after two interfering appends", c, e)
	}
	if _, err := audit.Verify(t.Context(), m, &c); err != nil {
		t.Fatal(err)
	}
}

// TestPublishOnceConcurrentWriters publishes while other Logs append on the
// same backend: each checkpoint entry must still name its own seq.
func TestPublishOnceConcurrentWriters(t *testing.T) {
	m, l := someLog(t)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		other := audit.New(m, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				if _, err := other.Append(t.Context(), audit.Record{ActorRole: "requester", Action: audit.ActionViewed}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	p := &fakePublisher{}
	for i := 0; i < 20; i++ {
		if _, err := audit.PublishOnce(t.Context(), l, p); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	_, published := p.state()
	for _, c := range published {
		e := m.entries[c.Seq-1]
		if e.Seq != c.Seq || e.Hash != c.Hash || e.Detail != fmt.Sprintf("seq=%d", e.Seq) {
			t.Fatalf("checkpoint seq=%d: entry %+v", c.Seq, e)
		}
	}
	if rep, err := audit.Verify(t.Context(), m, &published[len(published)-1]); err != nil || rep.Entries != 4+400+20 {
		t.Fatalf("Verify: %d entries, %v", rep.Entries, err)
	}
}
