package notice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The recorded Mattermost 9.11 exchanges the sender must reproduce.
const mmFixtureDir = "../../shared/fixtures/mattermost-9.11/http/"

type mmFixture struct {
	Request struct {
		Method     string            `json:"method"`
		Path       string            `json:"path"`
		Query      string            `json:"query"`
		Headers    map[string]string `json:"headers"`
		BodyFormat string            `json:"body_format"`
		Body       json.RawMessage   `json:"body"`
	} `json:"request"`
	Response struct {
		Status       int               `json:"status"`
		Headers      map[string]string `json:"headers"`
		BodyFormat   string            `json:"body_format"`
		Body         json.RawMessage   `json:"body"`
		BodyTrailing string            `json:"body_trailing"`
	} `json:"response"`
}

func loadMMFixture(t *testing.T, name string) mmFixture {
	t.Helper()
	raw, err := os.ReadFile(mmFixtureDir + name)
	if err != nil {
		t.Fatalf("recorded Mattermost fixture: %v", err)
	}
	var f mmFixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if f.Request.BodyFormat != "json" || f.Response.BodyFormat != "json" {
		t.Fatalf("%s: bodies are not JSON", name)
	}
	return f
}

// wire is the exact body bytes of a recorded JSON body.
func wire(t *testing.T, body json.RawMessage) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// jsonKeys returns the top-level keys of a JSON object in wire order.
func jsonKeys(t *testing.T, body []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", body)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

type mmRequest struct {
	method, path, query string
	header              http.Header
	body                []byte
}

// mmReply is one canned answer: a recorded response, or another status
// and raw body.
type mmReply struct {
	f      *mmFixture
	status int
	body   string
}

// replayServer answers the requests in order with the replies and keeps
// the requests.
type replayServer struct {
	t       *testing.T
	replies []mmReply
	mu      sync.Mutex
	got     []mmRequest
}

func (s *replayServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.t.Errorf("read request: %v", err)
	}
	s.mu.Lock()
	i := len(s.got)
	s.got = append(s.got, mmRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
	s.mu.Unlock()
	if i >= len(s.replies) {
		s.t.Errorf("unexpected request %d: %s %s", i+1, r.Method, r.URL.Path)
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	rep := s.replies[i]
	if rep.f != nil {
		for k, v := range rep.f.Response.Headers {
			if k != "Content-Length" {
				w.Header().Set(k, v)
			}
		}
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	status, out := rep.status, []byte(rep.body)
	if rep.f != nil {
		if status == 0 {
			status = rep.f.Response.Status
		}
		if rep.body == "" {
			out = append(wire(s.t, rep.f.Response.Body), rep.f.Response.BodyTrailing...)
		}
	}
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (s *replayServer) requests() []mmRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]mmRequest(nil), s.got...)
}

const (
	mmTestToken = "bot-T0KEN-5ecr3t-9f8e7d"
	mmBodyText  = "BODY-TEXT-MARKER"
)

// mmSetup starts a replay server and a sender for the bot and the user of
// the recorded bot DM (or of dmFixture's request).
func mmSetup(t *testing.T, replies ...mmReply) (*replayServer, *MattermostSender) {
	t.Helper()
	srv := &replayServer{t: t, replies: replies}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	dm := loadMMFixture(t, "bots-channels-direct-create.json")
	var ids []string
	if err := json.Unmarshal(dm.Request.Body, &ids); err != nil || len(ids) != 2 {
		t.Fatalf("recorded DM request body: %s", dm.Request.Body)
	}
	return srv, &MattermostSender{BaseURL: ts.URL + "/", BotToken: mmTestToken, BotUserID: ids[0], HTTP: ts.Client()}
}

// mmNotice is the notice to the recorded DM's other user, with its body.
func mmNotice(t *testing.T) (*Notice, Message) {
	t.Helper()
	dm := loadMMFixture(t, "bots-channels-direct-create.json")
	var ids []string
	if err := json.Unmarshal(dm.Request.Body, &ids); err != nil {
		t.Fatal(err)
	}
	n := goodNotice(Ended, "nl")
	n.UserID = ids[1]
	m, err := Render(n, testContacts, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Body += "\n" + mmBodyText + " <&> [x](y)\n"
	return n, m
}

// checkRecorded asserts that a request has the recorded method, path,
// query, Authorization scheme and Content-Type.
func checkRecorded(t *testing.T, step string, got mmRequest, f mmFixture) {
	t.Helper()
	if got.method != f.Request.Method || got.path != f.Request.Path || got.query != f.Request.Query {
		t.Errorf("%s: %s %s?%s, want %s %s?%s", step, got.method, got.path, got.query, f.Request.Method, f.Request.Path, f.Request.Query)
	}
	if a := got.header.Get("Authorization"); a != "Bearer "+mmTestToken || !strings.HasPrefix(f.Request.Headers["Authorization"], "Bearer ") {
		t.Errorf("%s: Authorization %q, want Bearer and the bot token (recorded %q)", step, a, f.Request.Headers["Authorization"])
	}
	if ct := got.header.Get("Content-Type"); ct != f.Request.Headers["Content-Type"] {
		t.Errorf("%s: Content-Type %q, want %q", step, ct, f.Request.Headers["Content-Type"])
	}
	for _, h := range []string{"Cookie", "X-Csrf-Token", "X-Requested-With"} {
		if v := got.header.Get(h); v != "" && f.Request.Headers[h] == "" {
			t.Errorf("%s: %s header %q, not in the recording", step, h, v)
		}
	}
}

// checkPostBody asserts that the post body is the recorded Client4 shape:
// the same keys in the same order, the same values except the message and
// the props, and byte for byte what the recording becomes with those two
// replaced.
func checkPostBody(t *testing.T, got []byte, f mmFixture, channelID, message, noticeID string) {
	t.Helper()
	if g, w := jsonKeys(t, got), jsonKeys(t, f.Request.Body); !reflect.DeepEqual(g, w) {
		t.Errorf("post body keys\n got %v\nwant %v", g, w)
	}
	var gm, wm map[string]any
	if err := json.Unmarshal(got, &gm); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(f.Request.Body, &wm); err != nil {
		t.Fatal(err)
	}
	for k, w := range wm {
		switch k {
		case "message", "props", "channel_id":
			continue
		}
		if !reflect.DeepEqual(gm[k], w) {
			t.Errorf("post body %s = %#v, recorded %#v", k, gm[k], w)
		}
	}
	if gm["channel_id"] != channelID {
		t.Errorf("post channel_id = %v, want %s", gm["channel_id"], channelID)
	}
	if gm["message"] != message {
		t.Errorf("post message differs from the rendered body")
	}
	if want := map[string]any{NoticeIDProp: noticeID}; !reflect.DeepEqual(gm["props"], want) {
		t.Errorf("post props = %#v, want %#v", gm["props"], want)
	}
	if gm["pending_post_id"] != "" {
		t.Errorf("pending_post_id = %v; the recorded Client4 shape leaves it empty", gm["pending_post_id"])
	}
	// Byte for byte: the recording with channel, message and props replaced.
	recMsg, _ := json.Marshal(wm["message"])
	msg, _ := json.Marshal(message)
	props, _ := json.Marshal(map[string]string{NoticeIDProp: noticeID})
	want := string(wire(t, f.Request.Body))
	want = strings.Replace(want, `"channel_id":"`+wm["channel_id"].(string)+`"`, `"channel_id":"`+channelID+`"`, 1)
	want = strings.Replace(want, `"message":`+string(recMsg), `"message":`+string(msg), 1)
	want = strings.Replace(want, `"props":null`, `"props":`+string(props), 1)
	if string(got) != want {
		t.Errorf("post body\n got %s\nwant %s", got, want)
	}
}

func TestMattermostSenderName(t *testing.T) {
	var s Sender = &MattermostSender{}
	if s.Name() != "mattermost" {
		t.Errorf("Name() = %q", s.Name())
	}
}

// TestMattermostSenderRecordedShapes: the two requests are the recorded
// 9.11 bot requests, in order.
func TestMattermostSenderRecordedShapes(t *testing.T) {
	dmF := loadMMFixture(t, "bots-channels-direct-create.json")
	postF := loadMMFixture(t, "bots-posts-create-dm.json")
	srv, s := mmSetup(t, mmReply{f: &dmF}, mmReply{f: &postF})
	n, m := mmNotice(t)
	if err := s.Send(context.Background(), n, m); err != nil {
		t.Fatal(err)
	}
	got := srv.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	checkRecorded(t, "create direct channel", got[0], dmF)
	if w := wire(t, dmF.Request.Body); !bytes.Equal(got[0].body, w) {
		t.Errorf("direct channel body %s, recorded %s", got[0].body, w)
	}
	if cl := got[0].header.Get("Content-Length"); cl != "" && cl != dmF.Request.Headers["Content-Length"] {
		t.Errorf("direct channel Content-Length %s, recorded %s", cl, dmF.Request.Headers["Content-Length"])
	}
	checkRecorded(t, "create post", got[1], postF)
	var ch struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(dmF.Response.Body, &ch); err != nil {
		t.Fatal(err)
	}
	checkPostBody(t, got[1].body, postF, ch.ID, m.Body, n.ID)
}

// TestMattermostSenderRecordedShapesUserDM: the same against the user DM
// recording (alice–bob): the request body is [sender, other], the post
// goes to the channel the server returned.
func TestMattermostSenderRecordedShapesUserDM(t *testing.T) {
	dmF := loadMMFixture(t, "channels-direct-create.json")
	postF := loadMMFixture(t, "bots-posts-create-dm.json")
	srv, s := mmSetup(t, mmReply{f: &dmF}, mmReply{f: &postF})
	var ids []string
	if err := json.Unmarshal(dmF.Request.Body, &ids); err != nil {
		t.Fatal(err)
	}
	s.BotUserID = ids[0]
	n, m := mmNotice(t)
	n.UserID = ids[1]
	if err := s.Send(context.Background(), n, m); err != nil {
		t.Fatal(err)
	}
	got := srv.requests()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	checkRecorded(t, "create direct channel", got[0], dmF)
	if w := wire(t, dmF.Request.Body); !bytes.Equal(got[0].body, w) {
		t.Errorf("direct channel body %s, recorded %s", got[0].body, w)
	}
	checkPostBody(t, got[1].body, postF, "oupn9tr9iiykxkk8ugtzm1j8gc", m.Body, n.ID)
}

// TestMattermostSenderExistingDM: an existing DM answered with 200 still
// gets the post.
func TestMattermostSenderExistingDM(t *testing.T) {
	dmF := loadMMFixture(t, "bots-channels-direct-create.json")
	postF := loadMMFixture(t, "bots-posts-create-dm.json")
	srv, s := mmSetup(t, mmReply{f: &dmF, status: http.StatusOK}, mmReply{f: &postF})
	n, m := mmNotice(t)
	if err := s.Send(context.Background(), n, m); err != nil {
		t.Fatal(err)
	}
	if got := srv.requests(); len(got) != 2 || got[1].path != "/api/v4/posts" {
		t.Fatalf("requests %+v, want the post after the DM", got)
	}
}

// TestMattermostSenderPostEchoUnreadable: a 201 for the post is delivery,
// even if its body cannot be read (reporting failure would send it twice).
func TestMattermostSenderPostEchoUnreadable(t *testing.T) {
	dmF := loadMMFixture(t, "bots-channels-direct-create.json")
	_, s := mmSetup(t, mmReply{f: &dmF}, mmReply{status: http.StatusCreated, body: "{not json"})
	n, m := mmNotice(t)
	if err := s.Send(context.Background(), n, m); err != nil {
		t.Fatalf("201 with an unreadable body: %v", err)
	}
	// A DM answer without a usable channel is an error.
	_, s = mmSetup(t, mmReply{status: http.StatusCreated, body: "{not json"})
	if err := s.Send(context.Background(), n, m); err == nil {
		t.Error("unreadable DM channel accepted")
	}
	_, s = mmSetup(t, mmReply{status: http.StatusCreated, body: `{"id":""}`})
	if err := s.Send(context.Background(), n, m); err == nil {
		t.Error("DM channel without id accepted")
	}
}

// checkSafeError: no token, no message text, no response body.
func checkSafeError(t *testing.T, name string, err error, m Message) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", name)
	}
	s := err.Error()
	for _, bad := range []string{mmTestToken, mmBodyText, "Bearer", "Kennisgeving", "onderzoeksopdracht", "Invalid or expired session", "LEAKED"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s: error %q contains %q", name, s, bad)
		}
	}
	if strings.Contains(s, m.Body) {
		t.Errorf("%s: error contains the message", name)
	}
}

func TestMattermostSenderErrors(t *testing.T) {
	dmF := loadMMFixture(t, "bots-channels-direct-create.json")
	postF := loadMMFixture(t, "bots-posts-create-dm.json")
	unauth := loadMMFixture(t, "posts-create-401-bad-token.json")
	n, m := mmNotice(t)
	echo, _ := json.Marshal(map[string]any{
		"id": "app.post.save.app_error", "message": "LEAKED " + m.Body + " " + mmTestToken,
		"detailed_error": "LEAKED " + mmTestToken, "request_id": "x", "status_code": 500,
	})
	badID, _ := json.Marshal(map[string]any{"id": "LEAKED " + mmBodyText, "status_code": 403})
	for _, tc := range []struct {
		name      string
		replies   []mmReply
		requests  int
		op        string
		status    int
		id        string
		temporary bool
	}{
		{"dm 401", []mmReply{{f: &unauth}}, 1, "create direct channel", 401, "api.context.session_expired.app_error", false},
		{"dm 500", []mmReply{{status: 500, body: string(echo)}}, 1, "create direct channel", 500, "app.post.save.app_error", true},
		{"dm 403 odd id", []mmReply{{status: 403, body: string(badID)}}, 1, "create direct channel", 403, "", false},
		{"post 401", []mmReply{{f: &dmF}, {f: &unauth}}, 2, "create post", 401, "api.context.session_expired.app_error", false},
		{"post 500", []mmReply{{f: &dmF}, {status: 500, body: string(echo)}}, 2, "create post", 500, "app.post.save.app_error", true},
		{"post 502 html", []mmReply{{f: &dmF}, {status: 502, body: "<html>LEAKED " + m.Body + "</html>"}}, 2, "create post", 502, "", true},
		{"post 429", []mmReply{{f: &dmF}, {status: 429, body: `{"id":"api.context.rate_limit","status_code":429}`}}, 2, "create post", 429, "api.context.rate_limit", true},
		{"post 400", []mmReply{{f: &dmF}, {f: &postF, status: 400, body: `{"id":"model.post.is_valid.msg.app_error","message":"Invalid message.","status_code":400}`}}, 2, "create post", 400, "model.post.is_valid.msg.app_error", false},
	} {
		srv, s := mmSetup(t, tc.replies...)
		err := s.Send(context.Background(), n, m)
		checkSafeError(t, tc.name, err, m)
		var me *MattermostError
		if !errors.As(err, &me) {
			t.Errorf("%s: %T is not a *MattermostError", tc.name, err)
			continue
		}
		if me.Op != tc.op || me.Status != tc.status || me.ID != tc.id || me.NoticeID != n.ID || me.Temporary() != tc.temporary {
			t.Errorf("%s: %+v (temporary %v)", tc.name, me, me.Temporary())
		}
		for _, w := range []string{tc.op, n.ID, strconv.Itoa(tc.status), tc.id} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if got := srv.requests(); len(got) != tc.requests {
			t.Errorf("%s: %d requests, want %d", tc.name, len(got), tc.requests)
		}
	}
}

func TestMattermostSenderTransportErrors(t *testing.T) {
	n, m := mmNotice(t)
	_, s := mmSetup(t)
	ts := httptest.NewServer(http.NotFoundHandler())
	s.BaseURL = ts.URL
	ts.Close() // connection refused
	err := s.Send(context.Background(), n, m)
	checkSafeError(t, "refused", err, m)
	var me *MattermostError
	if !errors.As(err, &me) || me.Status != 0 || !me.Temporary() {
		t.Errorf("refused: %#v", err)
	}
	if strings.Contains(err.Error(), ts.URL) {
		t.Errorf("error %q has the URL", err)
	}

	_, s = mmSetup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.Send(ctx, n, m)
	checkSafeError(t, "cancelled", err, m)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v is not context.Canceled", err)
	}
}

// TestMattermostSenderRefusesUnsendable: nothing is sent for what no retry
// could deliver, and the errors do not repeat the values.
func TestMattermostSenderRefusesUnsendable(t *testing.T) {
	n0, m0 := mmNotice(t)
	for name, mut := range map[string]func(*MattermostSender, *Notice, *Message){
		"no base url":  func(s *MattermostSender, _ *Notice, _ *Message) { s.BaseURL = "" },
		"ftp base url": func(s *MattermostSender, _ *Notice, _ *Message) { s.BaseURL = "ftp://" + mmTestToken },
		"no token":     func(s *MattermostSender, _ *Notice, _ *Message) { s.BotToken = "" },
		"bad bot id":   func(s *MattermostSender, _ *Notice, _ *Message) { s.BotUserID = "bot" },
		"no user":      func(_ *MattermostSender, n *Notice, _ *Message) { n.UserID = "" },
		"bad user":     func(_ *MattermostSender, n *Notice, _ *Message) { n.UserID = "alice@example.com" },
		"no id":        func(_ *MattermostSender, n *Notice, _ *Message) { n.ID = "" },
		"empty body":   func(_ *MattermostSender, _ *Notice, m *Message) { m.Body = " \n" },
		"bad utf8":     func(_ *MattermostSender, _ *Notice, m *Message) { m.Body = mmBodyText + "\xff" },
		"too long": func(_ *MattermostSender, _ *Notice, m *Message) {
			m.Body = mmBodyText + strings.Repeat("é", MaxMattermostMessageRunes)
		},
	} {
		srv, s := mmSetup(t)
		n, m := *n0, m0
		mut(s, &n, &m)
		err := s.Send(context.Background(), &n, m)
		checkSafeError(t, name, err, m)
		if got := srv.requests(); len(got) != 0 {
			t.Errorf("%s: %d requests sent", name, len(got))
		}
	}
	// Exactly the limit is fine.
	dmF := loadMMFixture(t, "bots-channels-direct-create.json")
	postF := loadMMFixture(t, "bots-posts-create-dm.json")
	_, s := mmSetup(t, mmReply{f: &dmF}, mmReply{f: &postF})
	if err := s.Send(context.Background(), n0, Message{Body: strings.Repeat("é", MaxMattermostMessageRunes)}); err != nil {
		t.Errorf("a message of %d runes: %v", MaxMattermostMessageRunes, err)
	}
	if err := (&MattermostSender{}).Send(context.Background(), nil, m0); err == nil {
		t.Error("nil notice accepted")
	}
}
