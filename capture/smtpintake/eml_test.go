package smtpintake

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/gateway"
	"github.com/sealgate/sealgate/order"
)

var update = flag.Bool("update", false, "rewrite the golden event files in testdata")

const fixtures = "../../../shared/fixtures/mattermost-9.11"

// fixtureNow is inside the recording: ParseBatch refuses events more than
// 24 h after "now".
var fixtureNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

var ingestLimits = gateway.Limits{MaxPostBytes: 1 << 20, MaxBatchEvents: 1000}

func sampleEML(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "globalrelay", "sample-town-square.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withoutHTML drops the text/html alternative of the sample, leaving the
// html2text body only.
func withoutHTML(t testing.TB, eml []byte) []byte {
	t.Helper()
	s := string(eml)
	const inner = "--aa4e1bbd9cc4fa97a6e71c281d7e97773ea18c824eb06341a8c236207648"
	start := strings.Index(s, inner+"\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Type: text/html")
	if start < 0 {
		t.Fatal("the sample's HTML part was not found")
	}
	end := strings.Index(s[start+len(inner):], inner+"--")
	if end < 0 {
		t.Fatal("the sample's inner closing boundary was not found")
	}
	return []byte(s[:start] + s[start+len(inner)+end:])
}

// line is what a reader of the sample sees in each message line, written
// down by hand from the EML.
type line struct {
	kind     string // "posted" or "file"
	email    string // sender
	at       string // sent_time, HH:MM:SS on 2026-11-22
	text     string // message, or file name for "file"
	override string // props.override_username
	files    int    // len(file_ids)
}

var sampleLines = []line{
	{"posted", "alice@example.test", "11:22:10", "Goedemorgen allemaal, the weekly sync starts at 11:00 (moved again).", "", 0},
	{"posted", "bob@example.test", "11:22:11", "Thanks Alice, I'll be there.", "", 0},
	{"file", "alice@example.test", "11:22:12", "notulen-vergadering.txt", "", 0},
	{"posted", "alice@example.test", "11:22:12", "Minutes attached.", "", 1},
	{"posted", "alice@example.test", "11:22:13", "Deployment summary below.", "", 0},
	{"posted", "alice@example.test", "11:22:13", "@bob please review the #release-2024 notes and ping @carol in ~town-square #privacy", "", 0},
	{"posted", "alice@example.test", "11:22:13", "Beste collega's, de vergadering over het privacybeleid is verplaatst naar donderdag. Café 'De Ĳssel' om 15:00 — graag één reactie vóór woensdag. Zoë & Anaïs zijn er ook bij. Groetjes, Élise 🍰🚀👩🏽\u200d💻🇳🇱", "", 0},
	{"posted", "admin@example.test", "11:22:18", "Build #42 of sealgate passed :white_check_mark:", "ci", 0},
	{"posted", "admin@example.test", "11:22:19", "Nightly backup completed", "webhook", 0},
}

// laterLines are the lines of testdata/later-exporter-private.eml, which
// is hand-written in the layout of Mattermost's later, source-available
// exporter (post_id, userid, update_type), not a recording.
var laterLines = []line{
	{"posted", "alice@example.test", "11:22:10", "Private note for the project team: budget <draft> & timeline.", "", 0},
	{"posted", "bob@example.test", "11:22:11", "Line one\nline two", "", 0},
	{"file", "alice@example.test", "11:22:12", "plan.pdf", "", 0},
	{"posted", "alice@example.test", "11:22:12", "Plan attached.", "", 1},
	{"posted", "alice@example.test", "11:22:13", "Meeting at 10", "", 0},
	{"updated", "alice@example.test", "11:22:13", "Meeting at 11", "", 0},
	{"deleted", "bob@example.test", "11:22:16", "Wrong channel, sorry", "", 0},
	{"file", "alice@example.test", "11:22:18", "disk.iso", "", 0},
	{"posted", "alice@example.test", "11:22:18", "The image is on the share.", "", 1},
}

// TestParseEMLFixtures parses every Global Relay e-mail of the fixtures and
// its variants and checks the exact events: the wire JSON against a golden
// file, the readable fields against a hand-written table, and that the
// gateway's ParseBatch accepts the batch.
func TestParseEMLFixtures(t *testing.T) {
	sample := sampleEML(t)
	later, err := os.ReadFile("testdata/later-exporter-private.eml")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, golden string
		eml          []byte
		lines        []line
		channel      string
		userIDs      map[string]string // email → user id printed by the export; nil: derived
	}{
		{"9.11 sample", "sample-town-square.events.jsonl", sample, sampleLines, "8s6ug79ctbfp8bm4q1fdjfjxho", nil},
		{"9.11 sample, LF line endings", "sample-town-square.events.jsonl", bytes.ReplaceAll(sample, []byte("\r\n"), []byte("\n")), sampleLines, "8s6ug79ctbfp8bm4q1fdjfjxho", nil},
		{"9.11 sample, text body only", "sample-town-square.events.jsonl", withoutHTML(t, sample), sampleLines, "8s6ug79ctbfp8bm4q1fdjfjxho", nil},
		{"later exporter layout", "later-exporter-private.events.jsonl", later, laterLines, "qgrjjwpm6frgznmapkpze56dfe",
			map[string]string{"alice@example.test": "g6e8xk8t6t86tjy8nrqyeqmm5c", "bob@example.test": "jwmtcrk65byjmjan5bgpkh18iw"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x, err := ParseEML(bytes.NewReader(tc.eml))
			if err != nil {
				t.Fatalf("ParseEML: %v", err)
			}
			if len(x.Warnings) != 0 {
				t.Errorf("warnings: %q", x.Warnings)
			}
			wire, err := x.Wire()
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.golden, wire)

			if len(x.Events) != len(tc.lines) {
				t.Fatalf("%d events, want %d", len(x.Events), len(tc.lines))
			}
			for i, want := range tc.lines {
				ev := x.Events[i]
				at, _ := time.Parse(time.RFC3339, "2026-11-22T"+want.at+"Z")
				uid := DerivedUserID(want.email, "")
				if tc.userIDs != nil {
					uid = tc.userIDs[want.email]
				}
				if ev.Kind != want.kind || ev.Source != Source {
					t.Errorf("event %d: kind %q source %q, want %q %q", i, ev.Kind, ev.Source, want.kind, Source)
					continue
				}
				if want.kind == "file" {
					f := ev.File
					if f == nil || f.Name != want.text || f.UserID != uid || f.ChannelID != tc.channel || f.CreateAt != at.UnixMilli() || !order.IsMattermostID(f.ID) {
						t.Errorf("event %d: file %+v, want %s by %s at %s", i, f, want.text, uid, want.at)
					}
					continue
				}
				p := ev.Post
				if p == nil || p.Message != want.text || p.UserId != uid || p.ChannelId != tc.channel || p.CreateAt != at.UnixMilli() || !order.IsMattermostID(p.Id) || len(p.FileIds) != want.files {
					t.Errorf("event %d: post %+v\nwant %q by %s at %s with %d files", i, p, want.text, uid, want.at, want.files)
					continue
				}
				if got, _ := p.Props["override_username"].(string); got != want.override {
					t.Errorf("event %d: override_username %q, want %q", i, got, want.override)
				}
			}

			// The gateway parses the batch as it parses the plugin's.
			body, err := x.Batch()
			if err != nil {
				t.Fatal(err)
			}
			evs, err := gateway.ParseBatch(body, ingestLimits, fixtureNow)
			if err != nil {
				t.Fatalf("gateway.ParseBatch: %v", err)
			}
			kinds := map[string]crypto.Kind{"posted": crypto.KindPosted, "updated": crypto.KindEdited, "deleted": crypto.KindDeleted, "file": crypto.KindFile}
			for i, ev := range evs {
				e := x.Events[i]
				id, uid := "", ""
				if e.Post != nil {
					id, uid = e.Post.Id, e.Post.UserId
				} else {
					id, uid = e.File.ID, e.File.UserID
				}
				if ev.Kind != kinds[e.Kind] || ev.PostID != id || ev.Employee != uid || !bytes.Equal(ev.Body, wire[i]) {
					t.Errorf("gateway event %d: %v %s %s, want %s %s %s", i, ev.Kind, ev.PostID, ev.Employee, e.Kind, id, uid)
				}
			}
		})
	}
}

// TestLaterExporterFields checks what only the later layout carries: the
// printed ids, the update types and the attachment's hash.
func TestLaterExporterFields(t *testing.T) {
	b, err := os.ReadFile("testdata/later-exporter-private.eml")
	if err != nil {
		t.Fatal(err)
	}
	x, err := ParseEML(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if x.ChannelName != "Project X" || x.ChannelType != "private" || x.ChannelID != "qgrjjwpm6frgznmapkpze56dfe" {
		t.Errorf("channel %q %q %q", x.ChannelName, x.ChannelType, x.ChannelID)
	}
	ids := []string{"jhf5m8yys3gz9ydn943d9y3sta", "k3o9wq1ph7ghdcm8fsu5tbs6ar", "", "t5xi4fzh1pbqtr8xaa6jmuchgr", "u8cw3hpd9jdo7qbh1oz5kmhhzy", "c1bh4wkxojr6ukdaxi6t73qzcw", "5iy1y6rj3inbzdzxkbzz4tdbnw", "oemc8dhk4tgbfxa6r3sgw9aq8e", "7ztnhxtsfbb5xdajyq6eqpt3mo"}
	for i, want := range ids {
		ev := x.Events[i]
		switch {
		case ev.Post != nil && ev.Post.Id != want:
			t.Errorf("event %d: post id %s, want %s", i, ev.Post.Id, want)
		case ev.File != nil && want != "" && ev.File.ID != want:
			t.Errorf("event %d: file id %s, want %s", i, ev.File.ID, want)
		}
	}
	plan := x.Events[2].File
	pdf := sha256.Sum256([]byte("%PDF-1.4\n% sealgate test plan\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"))
	if plan.PostID != "t5xi4fzh1pbqtr8xaa6jmuchgr" || plan.Size != 66 || plan.MIMEType != "application/pdf" || plan.SHA256 != hex.EncodeToString(pdf[:]) {
		t.Errorf("plan.pdf: %+v", plan)
	}
	if got := x.Events[3].Post.FileIds; len(got) != 1 || got[0] != plan.ID {
		t.Errorf("post file_ids %v, want [%s]", got, plan.ID)
	}
	iso := x.Events[7].File
	if iso.PostID != "7ztnhxtsfbb5xdajyq6eqpt3mo" || iso.Size != 0 || iso.SHA256 != "" || iso.SHA256Omitted == "" {
		t.Errorf("removed disk.iso: %+v", iso)
	}
	edited := x.Events[5].Post
	at := time.Date(2026, 11, 22, 11, 22, 15, 0, time.UTC).UnixMilli()
	if edited.EditAt != at || edited.UpdateAt != at {
		t.Errorf("edited post: edit_at %d update_at %d, want %d", edited.EditAt, edited.UpdateAt, at)
	}
	del := x.Events[6]
	at = time.Date(2026, 11, 22, 11, 22, 17, 0, time.UTC).UnixMilli()
	if del.DeletedAt != at || del.Post.DeleteAt != at {
		t.Errorf("deleted post: %d %d, want %d", del.DeletedAt, del.Post.DeleteAt, at)
	}
	for i, p := range x.Participants {
		if p.UserID == "" || p.Joined.IsZero() || p.Left.IsZero() {
			t.Errorf("participant %d: %+v", i, p)
		}
	}
}

// TestSampleMatchesPluginHooks holds the parsed sample against the real
// recording: with user ids resolved from the recorded users, every post of
// the e-mail is a town-square post the plugin saw, by the same user, in the
// same second, with the text it had at the end of the run; the posts the
// export leaves out are exactly the deleted ones and the 16 KB one.
func TestSampleMatchesPluginHooks(t *testing.T) {
	users := map[string]string{} // email → id
	for _, f := range []string{"create-admin", "create-user-alice", "create-user-bob", "create-user-carol"} {
		var ex struct {
			Response struct {
				Body struct{ ID, Email string }
			}
		}
		readJSON(t, filepath.Join(fixtures, "http", "setup", f+".json"), &ex)
		users[ex.Response.Body.Email] = ex.Response.Body.ID
	}
	var ids map[string]any
	readJSON(t, filepath.Join(fixtures, "ids.json"), &ids)

	type hookPost struct {
		ID        string         `json:"id"`
		UserID    string         `json:"user_id"`
		ChannelID string         `json:"channel_id"`
		CreateAt  int64          `json:"create_at"`
		Message   string         `json:"message"`
		FileIDs   []string       `json:"file_ids"`
		Props     map[string]any `json:"props"`
	}
	final := map[string]*hookPost{} // post id → last seen version
	var order []string
	f, err := os.Open(filepath.Join(fixtures, "plugin-hooks.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var h struct {
			Hook    string    `json:"hook"`
			Post    *hookPost `json:"post"`
			NewPost *hookPost `json:"new_post"`
		}
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatal(err)
		}
		p := h.Post
		if h.NewPost != nil {
			p = h.NewPost
		}
		if p.ChannelID != ids["town_square_id"] || h.Hook == "MessageHasBeenDeleted" {
			continue
		}
		if final[p.ID] == nil {
			order = append(order, p.ID)
		}
		final[p.ID] = p
	}

	x, err := ParseEML(bytes.NewReader(sampleEML(t)))
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	err = x.ResolveUsers(func(p Participant) (string, error) {
		asked = append(asked, p.Email)
		return users[p.Email], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alice@example.test", "bob@example.test", "admin@example.test"}; !slices.Equal(asked, want) {
		t.Errorf("resolver asked for %v, want each sender once: %v", asked, want)
	}
	var upload struct {
		Response struct {
			Body struct {
				FileInfos []struct {
					UserID    string `json:"user_id"`
					ChannelID string `json:"channel_id"`
					CreateAt  int64  `json:"create_at"`
					Name      string `json:"name"`
					Extension string `json:"extension"`
					Size      int64  `json:"size"`
					MIMEType  string `json:"mime_type"`
				} `json:"file_infos"`
			}
		}
	}
	readJSON(t, filepath.Join(fixtures, "http", "files-upload.json"), &upload)
	fi := upload.Response.Body.FileInfos[0]
	matched := map[string]bool{}
	for i, ev := range x.Events {
		if f := ev.File; f != nil {
			if f.UserID != fi.UserID || f.ChannelID != fi.ChannelID || f.CreateAt/1000 != fi.CreateAt/1000 ||
				f.Name != fi.Name || f.Extension != fi.Extension || f.Size != fi.Size || f.MIMEType != fi.MIMEType {
				t.Errorf("file event %d: %+v, recorded upload %+v", i, f, fi)
			}
			continue
		}
		p := ev.Post
		var hit *hookPost
		for _, id := range order {
			h := final[id]
			if !matched[id] && h.UserID == p.UserId && h.CreateAt/1000 == p.CreateAt/1000 && h.Message == p.Message {
				hit = h
				break
			}
		}
		if hit == nil {
			t.Errorf("event %d (%s at %d) matches no recorded post", i, p.UserId, p.CreateAt)
			continue
		}
		matched[hit.ID] = true
		if len(hit.FileIDs) != len(p.FileIds) {
			t.Errorf("post %s: %d file ids, recorded %d", hit.ID, len(p.FileIds), len(hit.FileIDs))
		}
		if got, want := p.Props["override_username"], hit.Props["override_username"]; got != want {
			t.Errorf("post %s: override_username %v, recorded %v", hit.ID, got, want)
		}
	}
	var missing []string
	for _, id := range order {
		if !matched[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	want := []string{ids["deleted_post_id"].(string), ids["deleted_root_id"].(string), ids["deleted_root_reply_id"].(string), ids["long_post_id"].(string)}
	slices.Sort(want)
	if !slices.Equal(missing, want) {
		t.Errorf("recorded town-square posts not in the export: %v, want the deleted and the 16 KB ones %v", missing, want)
	}
}

// TestParseEMLErrors: refusals name the problem and never quote content.
func TestParseEMLErrors(t *testing.T) {
	const canary = "CANARY-TEXT-7f3a"
	sample := string(sampleEML(t))
	// The canary stands in for a message, in both bodies, so that any error
	// quoting message text shows.
	base := strings.ReplaceAll(sample, "Nightly b=\r\nackup completed", canary)
	base = strings.ReplaceAll(base, "Nightly backup completed", canary)
	if strings.Count(base, canary) != 2 {
		t.Fatal("canary not placed in both bodies")
	}
	html := strings.Index(base, "<html><body>")
	edit := func(old, new string, n int) string {
		t.Helper()
		if !strings.Contains(base, old) {
			t.Fatalf("%q not in the sample", old)
		}
		return strings.Replace(base, old, new, n)
	}
	htmlEdit := func(old, new string) string {
		t.Helper()
		i := strings.Index(base[html:], old)
		if i < 0 {
			t.Fatalf("%q not in the HTML body", old)
		}
		return base[:html+i] + new + base[html+i+len(old):]
	}
	cases := []struct {
		name, eml, want string
	}{
		{"no channel id", edit("X-Mattermost-ChannelID: 8s6ug79ctbfp8bm4q1fdjfjxho\r\n", "", 1), "X-Mattermost-ChannelID is missing or not a Mattermost id"},
		{"channel id not an id", edit("X-Mattermost-ChannelID: 8s6ug79ctbfp8bm4q1fdjfjxho", "X-Mattermost-ChannelID: "+canary, 1), "X-Mattermost-ChannelID is missing or not a Mattermost id"},
		{"not an export", strings.Replace(edit("X-GlobalRelay-MsgType: Mattermost\r\n", "", 1), "Subject: Mattermost Compliance Export: Town Square", "Subject: "+canary, 1), "not a Mattermost Global Relay export"},
		{"not multipart", edit("Content-Type: multipart/mixed;\r\n boundary=eef451e41a1707faadde43e2089c1bb44d529670bcbf1027cbfb789faa82", "Content-Type: text/plain", 1), "not multipart"},
		{"no boundary", edit("Content-Type: multipart/mixed;\r\n boundary=eef451e41a1707faadde43e2089c1bb44d529670bcbf1027cbfb789faa82", "Content-Type: multipart/mixed", 1), "has no boundary"},
		{"header garbage", canary + "\r\n" + base, "the message header is malformed"},
		{"bad sent_time", htmlEdit("<span class=3D\"sent_time\">2026-11-22T11:22:19Z</span>", "<span class=3D\"sent_time\">"+canary+"</span>"), "message 9: sent_time is not an RFC 3339 time"},
		{"sent_time before 1970", htmlEdit("<span class=3D\"sent_time\">2026-11-22T11:22:19Z</span>", "<span class=3D\"sent_time\">1969-12-31T23:59:59Z</span>"), "message 9: sent_time is not after 1970"},
		{"no username", htmlEdit("<span class=3D\"username\">@admin</span>\r\n    <span class=3D\"postusername\">@webhook</span>", "<span class=3D\"postusername\">@webhook</span>"), "message 9 has no username"},
		{"no message field", htmlEdit("<span class=3D\"message\">"+canary+"</span>", ""), "message 9 has no message field"},
		{"two message fields", htmlEdit("<span class=3D\"message\">"+canary+"</span>", "<span class=3D\"message\">"+canary+"</span><span class=3D\"message\">x</span>"), "message 9 has two message fields"},
		{"bad participant count", htmlEdit("<td class=3D\"messages\">2</td>", "<td class=3D\"messages\">"+canary+"</td>"), "participant 1: messages is not a count"},
		{"bad joined", htmlEdit("<td class=3D\"joined\">2026-11-22T11:00:00Z</td>", "<td class=3D\"joined\">"+canary+"</td>"), "participant 1: joined is not an RFC 3339 time"},
		{"unsupported charset", edit("Content-Type: text/html; charset=UTF-8", "Content-Type: text/html; charset=ISO-2022-JP", 1), "MIME part 3: the charset is not supported"},
		{"unsupported transfer encoding", edit("Content-Transfer-Encoding: base64\r\nContent-Type: text/plain; charset=utf-8; name", "Content-Transfer-Encoding: x-"+canary+"\r\nContent-Type: text/plain; charset=utf-8; name", 1), "MIME part 4: the Content-Transfer-Encoding is not supported"},
		{"no body", strings.Replace(edit("Content-Type: text/html; charset=UTF-8", "Content-Type: text/html; charset=UTF-8\r\nContent-Disposition: attachment", 1),
			"Content-Type: text/plain; charset=UTF-8", "Content-Type: text/plain; charset=UTF-8\r\nContent-Disposition: attachment", 1), "no text/html or text/plain body"},
		{"invalid UTF-8", edit(canary+"</span>", canary+"=FF=FE</span>", 1), "body is not valid UTF-8"},
		{"truncated", base[:len(base)/2], "MIME part"},
		{"no message list", strings.Replace(edit("class=3D\"participants\"", "", 1), "class=3D\"message-list\"", "", 1), "no participants table and no message list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseEML(strings.NewReader(tc.eml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "Goedemorgen") {
				t.Errorf("error quotes content: %q", err)
			}
		})
	}
}

// TestRepeatedLines: identical lines (same sender, second and text) are
// different posts, and a second parse gives the same ids.
func TestRepeatedLines(t *testing.T) {
	eml := buildEML("8s6ug79ctbfp8bm4q1fdjfjxho", []testMsg{
		{"alice", "alice@example.test", "2026-11-22T11:22:10Z", "ok"},
		{"alice", "alice@example.test", "2026-11-22T11:22:10Z", "ok"},
		{"alice", "alice@example.test", "2026-11-22T11:22:11Z", "ok"},
	})
	a, err := ParseEML(bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseEML(bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i := range a.Events {
		id := a.Events[i].Post.Id
		if seen[id] {
			t.Errorf("event %d repeats id %s", i, id)
		}
		seen[id] = true
		if b.Events[i].Post.Id != id {
			t.Errorf("event %d: id %s then %s", i, id, b.Events[i].Post.Id)
		}
	}
}

// TestFileLines911: in the 9.11 layout a file line belongs to the next post
// of its sender, other senders' lines in between; a deleted file belongs to
// no post; a file the e-mail does not carry says so.
func TestFileLines911(t *testing.T) {
	eml := buildEML("8s6ug79ctbfp8bm4q1fdjfjxho", []testMsg{
		{"alice", "alice@example.test", "2026-11-22T11:22:10Z", "Uploaded file a.txt"},
		{"bob", "bob@example.test", "2026-11-22T11:22:11Z", "hi"},
		{"alice", "alice@example.test", "2026-11-22T11:22:11Z", "Uploaded file b.txt"},
		{"alice", "alice@example.test", "2026-11-22T11:22:12Z", "two files"},
		{"carol", "carol@example.test", "2026-11-22T11:22:13Z", "Deleted file c.txt"},
		{"alice", "alice@example.test", "2026-11-22T11:22:14Z", "Uploaded file d.txt"},
	})
	x, err := ParseEML(bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	if len(x.Warnings) != 0 {
		t.Errorf("warnings %q", x.Warnings)
	}
	ev := x.Events
	if len(ev) != 6 {
		t.Fatalf("%d events", len(ev))
	}
	post := ev[3].Post
	if post == nil || post.Message != "two files" || !slices.Equal([]string(post.FileIds), []string{ev[0].File.ID, ev[2].File.ID}) {
		t.Fatalf("post %+v, want file_ids of a.txt and b.txt", post)
	}
	for _, i := range []int{0, 2} {
		if f := ev[i].File; f.PostID != post.Id || f.SHA256Omitted != "not attached to the export" || f.UserID != post.UserId {
			t.Errorf("file %d: %+v", i, f)
		}
	}
	if c := ev[4].File; c == nil || c.PostID != "" || c.DeleteAt != c.CreateAt || c.Name != "c.txt" {
		t.Errorf("deleted file: %+v", c)
	}
	if d := ev[5].File; d == nil || d.PostID != "" {
		t.Errorf("file without a later post: %+v", d)
	}
	body, _ := x.Batch()
	if _, err := gateway.ParseBatch(body, ingestLimits, fixtureNow); err != nil {
		t.Fatal(err)
	}
}

func TestResolveUsers(t *testing.T) {
	x, err := ParseEML(bytes.NewReader(sampleEML(t)))
	if err != nil {
		t.Fatal(err)
	}
	// An empty answer keeps the derived id.
	if err := x.ResolveUsers(func(Participant) (string, error) { return "", nil }); err != nil {
		t.Fatal(err)
	}
	if got, want := x.Events[0].Post.UserId, DerivedUserID("ALICE@example.test", "alice"); got != want {
		t.Errorf("user id %s, want the derived %s (case-insensitive in the address)", got, want)
	}
	boom := errors.New("mattermost unreachable")
	if err := x.ResolveUsers(func(Participant) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Errorf("resolver error not wrapped: %v", err)
	}
	if err := x.ResolveUsers(func(Participant) (string, error) { return "not-an-id", nil }); err == nil {
		t.Error("a resolver answer that is no Mattermost id was taken")
	}
}

func TestDerivedUserID(t *testing.T) {
	a := DerivedUserID("Alice@Example.test ", "alice")
	if a != DerivedUserID("alice@example.test", "someone-else") || !order.IsMattermostID(a) {
		t.Errorf("derived id %q: not stable over case and username, or not an id", a)
	}
	if DerivedUserID("", "alice") == DerivedUserID("", "bob") || DerivedUserID("", "alice") == a {
		t.Error("derived ids collide")
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// checkGolden compares the events, one JSON line each, with
// testdata/<name>; -update rewrites it.
func checkGolden(t *testing.T, name string, wire []json.RawMessage) {
	t.Helper()
	var buf bytes.Buffer
	for _, w := range wire {
		buf.Write(w)
		buf.WriteByte('\n')
	}
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		got := strings.Split(buf.String(), "\n")
		exp := strings.Split(string(want), "\n")
		for i := range max(len(got), len(exp)) {
			g, e := "", ""
			if i < len(got) {
				g = got[i]
			}
			if i < len(exp) {
				e = exp[i]
			}
			if g != e {
				t.Fatalf("%s line %d:\n got %s\nwant %s", path, i+1, g, e)
			}
		}
	}
}

type testMsg struct{ username, email, at, text string }

// buildEML renders a small export in the 9.11 layout (HTML body only, not
// quoted-printable: 8bit), for tests that need many or special messages.
func buildEML(channel string, msgs []testMsg) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nSubject: Mattermost Compliance Export: Test\r\nX-GlobalRelay-MsgType: Mattermost\r\n"+
		"X-Mattermost-ChannelID: %s\r\nX-Mattermost-ChannelName: Test\r\nX-Mattermost-ChannelType: public\r\n"+
		"From: %s\r\nTo: %s\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"+
		"--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n"+
		"--inner\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"+
		"<html><body>\r\n<table class=\"participants\">\r\n", channel, msgs[0].email, msgs[0].email)
	counts := map[string]int{}
	var users []testMsg
	seenUser := map[string]bool{}
	for _, m := range msgs {
		if !seenUser[m.email] {
			seenUser[m.email] = true
			users = append(users, m)
		}
		if !strings.HasPrefix(m.text, "Uploaded file ") && !strings.HasPrefix(m.text, "Deleted file ") {
			counts[m.email]++
		}
	}
	for _, u := range users {
		fmt.Fprintf(&b, "<tr>\r\n<td class=\"username\">@%s</td>\r\n<td class=\"usertype\">user</td>\r\n<td class=\"email\">%s</td>\r\n"+
			"<td class=\"joined\">2026-11-22T11:00:00Z</td>\r\n<td class=\"left\">2026-11-22T12:00:00Z</td>\r\n"+
			"<td class=\"duration\">1 hour</td>\r\n<td class=\"messages\">%d</td>\r\n</tr>\r\n", u.username, u.email, counts[u.email])
	}
	b.WriteString("</table>\r\n<div class=\"message-list\">\r\n<ul>\r\n")
	for _, m := range msgs {
		fmt.Fprintf(&b, "<li class=\"message\">\r\n<span class=\"sent_time\">%s</span>\r\n<span class=\"username\">@%s</span>\r\n"+
			"<span class=\"postusername\"></span>\r\n<span class=\"usertype\">user</span>\r\n<span class=\"email\">(%s):</span>\r\n"+
			"<span class=\"message\">%s</span>\r\n<span class=\"previews_post\"></span>\r\n</li>\r\n", m.at, m.username, m.email, htmlEscape(m.text))
	}
	b.WriteString("</ul>\r\n</div>\r\n<p>Exported on 2026-11-22T12:00:05Z</p>\r\n</body></html>\r\n--inner--\r\n\r\n--outer--\r\n")
	return []byte(b.String())
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&#39;", `"`, "&#34;").Replace(s)
}
