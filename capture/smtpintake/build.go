package smtpintake

import (
	"fmt"
	"mime"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/sealgate/sealgate/order"
)

// removedFile is the line Mattermost writes instead of an attachment that
// was too large to send.
var removedFile = regexp.MustCompile(`^(Uploaded|Deleted) file '(.*)' \(id '([a-z0-9]{26})'\) was removed because it was too large to send\.$`)

// build validates the document and fills x: participants, messages and
// events.
func (x *Export) build(doc *document) error {
	if x.ChannelID == "" {
		x.ChannelID = doc.summary["channelid"]
	}
	if !order.IsMattermostID(x.ChannelID) {
		return fail("X-Mattermost-ChannelID is missing or not a Mattermost id")
	}
	if x.ChannelName == "" {
		x.ChannelName = doc.summary["channel"]
		if x.ChannelName == "" {
			x.ChannelName = doc.summary["channeldisplayname"]
		}
	}
	var err error
	if x.Start, err = optTime(doc.summary["started"]); err != nil {
		return fail("the summary's Started is not an RFC 3339 time")
	}
	if x.End, err = optTime(doc.summary["ended"]); err != nil {
		return fail("the summary's Ended is not an RFC 3339 time")
	}
	if x.ExportedAt, err = optTime(doc.exportedOn); err != nil {
		return fail("Exported on is not an RFC 3339 time")
	}

	byEmail, byUsername := map[string]int{}, map[string]int{}
	counted := make([]bool, len(doc.participants))
	for i, row := range doc.participants {
		p, hasCount, err := participant(i+1, row)
		if err != nil {
			return err
		}
		counted[i] = hasCount
		x.Participants = append(x.Participants, p)
		if e := strings.ToLower(p.Email); e != "" {
			if _, dup := byEmail[e]; !dup {
				byEmail[e] = i
			}
		}
		if _, dup := byUsername[p.Username]; !dup {
			byUsername[p.Username] = i
		}
	}

	for i, f := range doc.messages {
		m, err := message(i+1, f)
		if err != nil {
			return err
		}
		x.Messages = append(x.Messages, m)
	}

	// Senders: the participants table row of each message's author, or a
	// participant made from the message line.
	extra := map[string]*Participant{}
	sender := make([]*Participant, len(x.Messages))
	for i := range x.Messages {
		m := &x.Messages[i]
		k, ok := byEmail[strings.ToLower(m.Email)]
		if !ok || m.Email == "" {
			k, ok = byUsername[m.Username]
		}
		if ok {
			sender[i] = &x.Participants[k]
			continue
		}
		key := senderKey(m.Email, m.Username)
		if extra[key] == nil {
			extra[key] = &Participant{UserID: m.UserID, Username: m.Username, UserType: m.UserType, Email: m.Email}
		}
		sender[i] = extra[key]
	}

	// Post ids: the export's, or derived from what identifies the line.
	postID := make([]string, len(x.Messages))
	seen := map[string]int{}
	for i := range x.Messages {
		m := &x.Messages[i]
		if m.File != nil {
			continue
		}
		if m.PostID != "" {
			postID[i] = m.PostID
			continue
		}
		k := derive("line", strconv.FormatInt(m.Time.Unix(), 10), senderKey(m.Email, m.Username), m.PostUsername, m.Text)
		postID[i] = derive("post", x.ChannelID, strconv.FormatInt(m.Time.Unix(), 10), senderKey(m.Email, m.Username), m.PostUsername, m.Text, strconv.Itoa(seen[k]))
		seen[k]++
	}

	// File lines: the post each belongs to, the attachment it names, its id.
	postLine := map[string]int{} // post id → its first post line
	next := make([]int, len(x.Messages))
	lastBy := map[*Participant]int{}
	for i := len(x.Messages) - 1; i >= 0; i-- {
		next[i] = -1 // the next post line of the same sender
		if j, ok := lastBy[sender[i]]; ok {
			next[i] = j
		}
		if x.Messages[i].File == nil {
			lastBy[sender[i]] = i
		}
	}
	for i := range x.Messages {
		if _, dup := postLine[postID[i]]; !dup && x.Messages[i].File == nil {
			postLine[postID[i]] = i
		}
	}
	byName := map[string][]int{} // attachment name → unmatched attachments
	for k, a := range x.Attachments {
		byName[a.Name] = append(byName[a.Name], k)
	}
	fileIDs := make([][]string, len(x.Messages))
	linked := make([]int, len(x.Messages)) // index of the post line, or -1
	attachment := make([]int, len(x.Messages))
	fileID := make([]string, len(x.Messages))
	for i := range x.Messages {
		m := &x.Messages[i]
		linked[i], attachment[i] = -1, -1
		if m.File == nil {
			continue
		}
		switch {
		case m.PostID != "":
			if j, ok := postLine[m.PostID]; ok {
				linked[i] = j
			}
		case !m.File.Deleted:
			// 9.11 prints no post id: the file belongs to the next post of
			// the same sender at or after the upload time.
			j := next[i]
			for j >= 0 && x.Messages[j].Time.Before(m.Time) {
				j = next[j]
			}
			linked[i] = j
		}
		if q := byName[m.File.Name]; !m.File.Removed && len(q) > 0 {
			attachment[i], byName[m.File.Name] = q[0], q[1:]
			x.Attachments[q[0]].Matched = true
		}
		post := m.PostID
		if linked[i] >= 0 {
			post = postID[linked[i]]
		}
		switch {
		case m.File.ID != "":
			fileID[i] = m.File.ID
		default:
			deleted := ""
			if m.File.Deleted {
				deleted = "deleted"
			}
			k := derive("fileline", post, senderKey(m.Email, m.Username), strconv.FormatInt(m.Time.Unix(), 10), m.File.Name, deleted)
			fileID[i] = derive("file", x.ChannelID, post, senderKey(m.Email, m.Username), strconv.FormatInt(m.Time.Unix(), 10), m.File.Name, deleted, strconv.Itoa(seen[k]))
			seen[k]++
		}
		if linked[i] >= 0 && !m.File.Deleted {
			fileIDs[linked[i]] = append(fileIDs[linked[i]], fileID[i])
		}
	}
	for k, a := range x.Attachments {
		if !a.Matched {
			x.Warnings = append(x.Warnings, fmt.Sprintf("attachment %d is named by no file line and is not captured", k+1))
		}
	}

	// Events, in export order.
	posts := map[*Participant]int{}
	for i := range x.Messages {
		m := &x.Messages[i]
		p := sender[i]
		uid, derived := m.UserID, false
		if uid == "" {
			uid = p.UserID
		}
		if uid == "" {
			uid, derived = DerivedUserID(m.Email, m.Username), true
		}
		ms := m.Time.UnixMilli()
		ev := Event{Source: Source}
		if m.File == nil {
			posts[p]++
			props := model.StringInterface{}
			if m.PostUsername != "" {
				props["override_username"] = m.PostUsername
			}
			if order.IsMattermostID(m.PreviewsPost) {
				props["previewed_post"] = m.PreviewsPost
			}
			post := &model.Post{
				Id: postID[i], CreateAt: ms, UpdateAt: ms, UserId: uid, ChannelId: x.ChannelID,
				Message: m.Text, Props: props, FileIds: fileIDs[i],
			}
			ev.Kind = "posted"
			ut := int64(0)
			if !m.UpdateTime.IsZero() {
				ut = m.UpdateTime.UnixMilli()
			}
			switch m.UpdateType {
			case "", "EditedOriginalMsg":
			case "EditedNewMsg":
				ev.Kind = "updated"
				if ut > ms {
					post.UpdateAt, post.EditAt = ut, ut
				}
			case "UpdatedNoMsgChange":
				ev.Kind = "updated"
				if ut > ms {
					post.UpdateAt = ut
				}
			case "Deleted":
				if ut <= 0 {
					return fail("message %d: update_type Deleted without update_time", i+1)
				}
				ev.Kind = "deleted"
				post.DeleteAt, post.UpdateAt, ev.DeletedAt = ut, ut, ut
			default:
				x.Warnings = append(x.Warnings, fmt.Sprintf("message %d: unknown update_type, taken as posted", i+1))
			}
			ev.Post = post
		} else {
			f := &File{
				ID: fileID[i], UserID: uid, ChannelID: x.ChannelID, CreateAt: ms,
				Name: m.File.Name, Extension: extension(m.File.Name),
			}
			if linked[i] >= 0 {
				f.PostID = postID[linked[i]]
			} else {
				f.PostID = m.PostID
			}
			if m.File.Deleted {
				f.DeleteAt = ms
			}
			switch k := attachment[i]; {
			case k >= 0:
				a := x.Attachments[k]
				f.Size, f.MIMEType, f.SHA256 = a.Size, a.ContentType, a.SHA256
			case m.File.Removed:
				f.SHA256Omitted = "removed from the export by Mattermost as too large"
			default:
				f.SHA256Omitted = "not attached to the export"
			}
			ev.Kind, ev.File = "file", f
		}
		x.Events = append(x.Events, ev)
		if derived {
			x.senders = append(x.senders, p)
		} else {
			x.senders = append(x.senders, nil)
		}
	}

	for i := range x.Participants {
		if counted[i] {
			if got := posts[&x.Participants[i]]; got != x.Participants[i].Messages {
				x.Warnings = append(x.Warnings, fmt.Sprintf("participant %d: the table counts %d messages, the export has %d", i+1, x.Participants[i].Messages, got))
			}
		}
	}
	return nil
}

// participant validates one row of the participants table.
func participant(n int, row map[string]string) (Participant, bool, error) {
	p := Participant{
		UserID:   strings.TrimSpace(row["userid"]),
		Username: strings.TrimPrefix(strings.TrimSpace(row["username"]), "@"),
		UserType: strings.TrimSpace(row["usertype"]),
		Email:    strings.TrimSpace(row["email"]),
	}
	if p.Username == "" {
		return p, false, fail("participant %d has no username", n)
	}
	if p.UserID != "" && !order.IsMattermostID(p.UserID) {
		return p, false, fail("participant %d: userid is not a Mattermost id", n)
	}
	var err error
	if p.Joined, err = optTime(row["joined"]); err != nil {
		return p, false, fail("participant %d: joined is not an RFC 3339 time", n)
	}
	if p.Left, err = optTime(row["left"]); err != nil {
		return p, false, fail("participant %d: left is not an RFC 3339 time", n)
	}
	c, ok := row["messages"]
	if !ok {
		return p, false, nil
	}
	if p.Messages, err = strconv.Atoi(strings.TrimSpace(c)); err != nil || p.Messages < 0 {
		return p, false, fail("participant %d: messages is not a count", n)
	}
	return p, true, nil
}

// message validates one message line.
func message(n int, f map[string]string) (Message, error) {
	m := Message{
		PostID:       strings.TrimSpace(f["post_id"]),
		Username:     strings.TrimPrefix(strings.TrimSpace(f["username"]), "@"),
		UserID:       strings.TrimSpace(f["userid"]),
		PostUsername: strings.TrimPrefix(strings.TrimSpace(f["postusername"]), "@"),
		UserType:     strings.TrimSpace(f["usertype"]),
		Email:        trimEmail(f["email"]),
		PreviewsPost: strings.TrimSpace(f["previews_post"]),
		UpdateType:   strings.TrimSpace(f["update_type"]),
	}
	st, ok := f["sent_time"]
	if !ok {
		return m, fail("message %d has no sent_time", n)
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(st))
	if err != nil {
		return m, fail("message %d: sent_time is not an RFC 3339 time", n)
	}
	if t.Unix() <= 0 {
		return m, fail("message %d: sent_time is not after 1970", n)
	}
	if t.Year() > 9999 {
		return m, fail("message %d: sent_time is after 9999", n)
	}
	m.Time = t.UTC()
	if m.Username == "" {
		return m, fail("message %d has no username", n)
	}
	if m.PostID != "" && !order.IsMattermostID(m.PostID) {
		return m, fail("message %d: post_id is not a Mattermost id", n)
	}
	if m.UserID != "" && !order.IsMattermostID(m.UserID) {
		return m, fail("message %d: userid is not a Mattermost id", n)
	}
	text, ok := f["message"]
	if !ok {
		return m, fail("message %d has no message field", n)
	}
	m.Text = text
	if ut := strings.TrimSpace(f["update_time"]); ut != "" && m.UpdateType != "" {
		if m.UpdateTime, err = time.Parse(time.RFC3339, ut); err != nil || m.UpdateTime.Unix() <= 0 || m.UpdateTime.Year() > 9999 {
			return m, fail("message %d: update_time is not an RFC 3339 time after 1970", n)
		}
		m.UpdateTime = m.UpdateTime.UTC()
	}
	if (m.PostUsername == "" || m.PostUsername == m.Username) && m.PreviewsPost == "" && (m.UpdateType == "" || m.UpdateType == "FileDeleted") {
		switch r := removedFile.FindStringSubmatch(text); {
		case r != nil:
			m.File = &FileLine{Name: r[2], ID: r[3], Deleted: r[1] == "Deleted", Removed: true}
		case strings.HasPrefix(text, "Uploaded file "):
			m.File = &FileLine{Name: strings.TrimPrefix(text, "Uploaded file ")}
		case strings.HasPrefix(text, "Deleted file "):
			m.File = &FileLine{Name: strings.TrimPrefix(text, "Deleted file "), Deleted: true}
		}
	}
	return m, nil
}

// trimEmail turns the template's "(a@b):" (9.11) or "(a@b)" into "a@b".
func trimEmail(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(s, ":")
	s = strings.TrimPrefix(s, "(")
	return strings.TrimSpace(strings.TrimSuffix(s, ")"))
}

func senderKey(email, username string) string {
	if e := strings.ToLower(strings.TrimSpace(email)); e != "" {
		return "email:" + e
	}
	return "username:" + username
}

func optTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// extension is Mattermost's FileInfo.Extension: the lower-cased extension
// without the dot.
func extension(name string) string {
	i := strings.LastIndexAny(name, "./\\")
	if i < 0 || name[i] != '.' {
		return ""
	}
	return strings.ToLower(name[i+1:])
}

// mediaType formats a part's Content-Type without its name parameter, as
// Mattermost stores FileInfo.MimeType ("text/plain; charset=utf-8").
func mediaType(mt string, params map[string]string) string {
	p := map[string]string{}
	for k, v := range params {
		if k != "name" {
			p[k] = v
		}
	}
	if s := mime.FormatMediaType(mt, p); s != "" {
		return s
	}
	return mt
}
