// Package synth generates Mattermost post events shaped like the recorded
// 9.11 traffic (model.Post JSON with props, file metadata and mentions),
// with canary strings in every place that must never reach storage in
// clear: message text, file names, props and channel names. The demo and
// the privacy tests ingest them.
package synth

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

// Event is one ingest event as the plugin sends it.
type Event struct {
	Kind        string      `json:"kind"`
	Post        *model.Post `json:"post"`
	DeletedAt   int64       `json:"deleted_at,omitempty"`
	TeamID      string      `json:"team_id,omitempty"`
	ChannelType string      `json:"channel_type,omitempty"`
}

// Corpus produces events for a set of employees and channels.
type Corpus struct {
	Employees []string // Mattermost user ids
	Channels  []string // channel ids
	// ChannelNames are display names, one per channel, each with a canary.
	ChannelNames []string
	// Teams are the two teams' ids. Channel i is public (i%3 == 0), private
	// (1) or a direct message (2, no team), in team i%2.
	Teams []string
	rnd   *rand.Rand
	run   string
	posts []*model.Post
}

// New returns a deterministic corpus for the seed.
func New(seed uint64, employees, channels int) *Corpus {
	c := &Corpus{rnd: rand.New(rand.NewPCG(seed, seed^0x5ea19a7e)), run: fmt.Sprintf("%06x", seed&0xffffff)}
	for i := 0; i < employees; i++ {
		c.Employees = append(c.Employees, c.id())
	}
	c.Teams = []string{c.id(), c.id()}
	for i := 0; i < channels; i++ {
		c.Channels = append(c.Channels, c.id())
		c.ChannelNames = append(c.ChannelNames, fmt.Sprintf("CANARY-CHANNEL-%s-%d", c.run, i))
	}
	return c
}

// id makes a 26-character Mattermost-style id.
func (c *Corpus) id() string {
	const alphabet = "abcdefghijkmnopqrstuwxyz13456789"
	b := make([]byte, 26)
	for i := range b {
		b[i] = alphabet[c.rnd.IntN(len(alphabet))]
	}
	return string(b)
}

// Canaries are the strings that must never appear in clear outside
// Mattermost: the prefixes of every canary this corpus writes, plus every
// employee and channel id.
func (c *Corpus) Canaries() []string {
	out := []string{"CANARY-MSG-" + c.run, "CANARY-FILE-" + c.run, "CANARY-PROP-" + c.run, "CANARY-CHANNEL-" + c.run, "CANARY-EDIT-" + c.run}
	out = append(out, c.Employees...)
	return append(out, c.Channels...)
}

// Events returns n events whose times are spread over days days starting at
// start: about 80% new posts, 12% edits and 8% deletes of earlier posts.
func (c *Corpus) Events(n int, start time.Time, days int) []Event {
	span := int64(days) * 24 * int64(time.Hour/time.Millisecond)
	startMs := start.UnixMilli()
	out := make([]Event, 0, n)
	for len(out) < n {
		at := startMs + c.rnd.Int64N(span)
		r := c.rnd.IntN(100)
		switch {
		case r < 80 || len(c.posts) == 0:
			p := c.newPost(at)
			c.posts = append(c.posts, p)
			out = append(out, c.event(Event{Kind: "posted", Post: p}))
		case r < 92:
			p := c.posts[c.rnd.IntN(len(c.posts))].Clone()
			edit := p.CreateAt + 1 + c.rnd.Int64N(3600_000)
			p.Message = fmt.Sprintf("CANARY-EDIT-%s %s", c.run, p.Message)
			p.EditAt, p.UpdateAt = edit, edit
			out = append(out, c.event(Event{Kind: "updated", Post: p}))
		default:
			// A post is deleted once: it leaves the pool of posts that
			// later edits and deletes pick from.
			i := c.rnd.IntN(len(c.posts))
			p := c.posts[i].Clone()
			c.posts[i] = c.posts[len(c.posts)-1]
			c.posts = c.posts[:len(c.posts)-1]
			// As the plugin hook delivers it: delete_at 0, the plugin stamps the time.
			out = append(out, c.event(Event{Kind: "deleted", Post: p, DeletedAt: p.CreateAt + 1 + c.rnd.Int64N(7200_000)}))
		}
	}
	return out
}

// event adds the team and channel type of the post's channel, as the
// plugin does.
func (c *Corpus) event(ev Event) Event {
	for i, ch := range c.Channels {
		if ch == ev.Post.ChannelId {
			ev.ChannelType = string("OPD"[i%3])
			if i%3 != 2 {
				ev.TeamID = c.Teams[i%2]
			}
		}
	}
	return ev
}

func (c *Corpus) newPost(at int64) *model.Post {
	ch := c.rnd.IntN(len(c.Channels))
	p := &model.Post{
		Id:        c.id(),
		CreateAt:  at,
		UpdateAt:  at,
		UserId:    c.Employees[c.rnd.IntN(len(c.Employees))],
		ChannelId: c.Channels[ch],
		Message:   fmt.Sprintf("CANARY-MSG-%s-%d: zullen we de offerte voor ~%s vandaag afronden? #release", c.run, c.rnd.IntN(1e6), c.ChannelNames[ch]),
		Hashtags:  "#release",
		Type:      "",
	}
	props := model.StringInterface{
		"channel_mentions": map[string]any{"town-square": map[string]any{"display_name": c.ChannelNames[ch]}},
	}
	if c.rnd.IntN(4) == 0 {
		props["attachments"] = []map[string]any{{"id": 0, "fallback": "CANARY-PROP-" + c.run, "text": "CANARY-PROP-" + c.run + " quarterly numbers"}}
	}
	p.SetProps(props)
	if c.rnd.IntN(5) == 0 {
		fid := c.id()
		p.FileIds = model.StringArray{fid}
		p.Metadata = &model.PostMetadata{Files: []*model.FileInfo{{
			Id: fid, CreatorId: p.UserId, PostId: p.Id, ChannelId: p.ChannelId, CreateAt: at, UpdateAt: at,
			Name: fmt.Sprintf("CANARY-FILE-%s-salarissen.xlsx", c.run), Extension: "xlsx", Size: 18213,
			MimeType: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
		}}}
	}
	return p
}

// Batches encodes events as ingest bodies of at most size events each.
func Batches(events []Event, size int) [][]byte {
	var out [][]byte
	for i := 0; i < len(events); i += size {
		j := min(i+size, len(events))
		b, err := json.Marshal(map[string]any{"events": events[i:j]})
		if err != nil {
			panic(err) // model.Post always marshals
		}
		out = append(out, b)
	}
	return out
}
