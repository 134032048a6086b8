package release

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"runtime"
	"sync"

	"github.com/sealgate/sealgate/audit"
	"github.com/sealgate/sealgate/crypto"
	"github.com/sealgate/sealgate/export"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/store"
)

// Page is one page of released messages.
type Page struct {
	Header   export.Header
	Messages []export.Message
	// Next is the cursor of the following page, empty on the last one.
	Next string
}

// MaxPage bounds one page.
const MaxPage = 1000

// Messages returns one page of the subject's released messages to the
// order's requester, starting after cursor ("" for the first page).
func (d *Desk) Messages(ctx context.Context, actor, id, cursor string, limit int) (p *Page, err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, id, "messages", err) }()
	if limit <= 0 || limit > MaxPage {
		return nil, refuse(ErrInvalid, "bad_limit", fmt.Sprintf("limit must be 1..%d", MaxPage))
	}
	cur, err := parseCursor(cursor)
	if err != nil {
		return nil, err
	}
	rel, a, err := d.readable(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	p = &Page{Header: d.header(rel, "view_"+cursorID(cursor))}
	p.Messages, p.Next, err = d.read(ctx, rel, cur, limit)
	if err != nil {
		return nil, err
	}
	// The entry is written before anything is served.
	if err := d.audit(ctx, a, audit.ActionViewed, id, "page", fmt.Sprintf("messages=%d", len(p.Messages))); err != nil {
		return nil, err
	}
	return p, nil
}

// Export writes every released message of the order, watermarked with the
// order, the requester and a fresh export id, in the given format. It
// returns the number of messages written.
func (d *Desk) Export(ctx context.Context, actor, id string, f export.Format, w io.Writer) (n int, err error) {
	a := d.actor(actor, "")
	defer func() { d.refused(ctx, a, id, "export", err) }()
	rel, a, err := d.readable(ctx, actor, id)
	if err != nil {
		return 0, err
	}
	all, err := d.readAll(ctx, rel)
	if err != nil {
		return 0, err
	}
	exportID, err := newExportID()
	if err != nil {
		return 0, err
	}
	h := d.header(rel, exportID)
	if err := d.audit(ctx, a, audit.ActionExported, id, exportID, fmt.Sprintf("format=%s messages=%d", f, len(all))); err != nil {
		return 0, err
	}
	if err := export.Write(w, f, h, all); err != nil {
		return 0, fmt.Errorf("export order %s: %w", id, err)
	}
	return len(all), nil
}

// readAll reads every released message of an order.
func (d *Desk) readAll(ctx context.Context, rel *released) ([]export.Message, error) {
	var all []export.Message
	cur := position{}
	for {
		msgs, next, err := d.read(ctx, rel, cur, MaxPage)
		if err != nil {
			return nil, err
		}
		all = append(all, msgs...)
		if next == "" {
			return all, nil
		}
		if cur, err = parseCursor(next); err != nil {
			return nil, err
		}
	}
}

// readable checks that the caller is the order's requester and the order is
// active with its keys released here.
func (d *Desk) readable(ctx context.Context, user, id string) (*released, actor, error) {
	a := d.actor(user, "")
	if err := d.checkLive(ctx, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			// Never filed, or lost with Redis: nothing to read either way.
			return nil, a, err
		}
		return nil, a, err
	}
	d.mu.Lock()
	rel := d.released[id]
	d.mu.Unlock()
	if rel == nil {
		// Active in Redis but not here: this gateway restarted since the
		// activation. Only the requester's read may trigger it again.
		st, f, err := d.load(ctx, id)
		if err != nil {
			return nil, a, err
		}
		if st.State != order.StateActive {
			return nil, a, refuse(ErrGone, "not_active", "the order has not reached its quorum; nothing is released")
		}
		if user != f.Order.Requester {
			return nil, a, refuse(ErrForbidden, "not_requester", "only the order's requester may read what it released")
		}
		if _, _, err := d.activate(ctx, id, f, "restart"); err != nil {
			return nil, a, err
		}
		d.mu.Lock()
		rel = d.released[id]
		d.mu.Unlock()
		if rel == nil {
			return nil, a, refuse(ErrGone, "not_active", "the order ended while its keys were restored")
		}
	}
	if user != rel.order.Requester {
		return nil, a, refuse(ErrForbidden, "not_requester", "only the order's requester may read what it released")
	}
	return rel, d.actorFor(user, rel.order), nil
}

func (d *Desk) header(rel *released, exportID string) export.Header {
	o := rel.order
	return export.Header{
		OrderID: o.ID, ExportID: exportID, Requester: o.Requester, Subject: o.Subject,
		WindowFrom: o.Window.From, WindowTo: o.Window.To, ExportedAt: d.cfg.Now().UTC(), Purpose: o.Purpose,
	}
}

// errPageFull stops a store scan when a page is full.
var errPageFull = errors.New("page full")

// read opens the subject's records from position cur on and returns up to
// limit messages that pass the order's filters, and the next cursor.
func (d *Desk) read(ctx context.Context, rel *released, cur position, limit int) ([]export.Message, string, error) {
	rel.mu.RLock()
	defer rel.mu.RUnlock()
	if rel.keys == nil {
		return nil, "", refuse(ErrGone, "wiped", "the order's keys have been wiped")
	}
	o := rel.order
	days := o.Days()
	var out []export.Message
	var last position
	next := ""
	for di := int(cur.day); di < len(days) && next == ""; di++ {
		keys := rel.keys[days[di]]
		if len(keys) == 0 {
			continue
		}
		t, err := crypto.ParseDay(days[di])
		if err != nil {
			return nil, "", err
		}
		resume := cur.started && di == int(cur.day)
		from := t.Unix() / 3600
		if resume {
			from = max(from, cur.hour)
		}
		tag := d.cfg.Keys.Tag(o.Subject, days[di])
		var recs []store.Record
		err = d.cfg.Store.Records(ctx, tag, from, t.Unix()/3600+23, func(r store.Record) error {
			if resume && r.Hour == cur.hour && string(r.Ref[:]) <= string(cur.ref[:]) {
				return nil
			}
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return nil, "", err
		}
		// Open in parallel, a chunk at a time, and take the results in
		// store order until the page is full.
		for len(recs) > 0 && next == "" {
			chunk := recs[:min(len(recs), openChunk)]
			recs = recs[len(chunk):]
			views, err := rel.open(o.ID, keys, chunk)
			if err != nil {
				return nil, "", err
			}
			for i, v := range views {
				if !v.ok {
					continue
				}
				if len(out) == limit {
					next = last.cursor()
					break
				}
				out = append(out, v.msg)
				last = position{day: uint16(di), hour: chunk[i].Hour, ref: chunk[i].Ref, started: true}
			}
		}
		if next == "" && len(out) == limit && di+1 < len(days) {
			// Full exactly at the end of a day: the next page starts after it.
			next = last.cursor()
		}
	}
	return out, next, nil
}

// openChunk is how many records are opened in parallel at a time: enough
// to keep every core busy, few enough that a small page does not open many
// records it will not show.
const openChunk = 128

type view struct {
	msg export.Message
	ok  bool
}

// open decrypts and filters records on every core; views[i] belongs to
// recs[i].
func (rel *released) open(orderID string, keys map[crypto.KeyRecordID]*crypto.DayKey, recs []store.Record) ([]view, error) {
	views := make([]view, len(recs))
	workers := min(runtime.GOMAXPROCS(0), len(recs))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += workers {
				dk, ok := keys[recs[i].KeyRecordID]
				if !ok {
					continue // a key record the approvals did not cover stays sealed
				}
				ev, err := crypto.OpenRecord(dk, recs[i].Ref, recs[i].Blob)
				if err != nil {
					errs[w] = fmt.Errorf("read order %s: %w", orderID, err)
					return
				}
				views[i].msg, views[i].ok = rel.view(ev)
			}
		}()
	}
	wg.Wait()
	return views, errors.Join(errs...)
}

// position is where a page ends: the day's index in the window, the hour
// bucket and the ref of the last record shown. Records are scanned in
// (hour, ref) order, so the next page starts right after it.
type position struct {
	day     uint16
	hour    int64
	ref     crypto.Ref
	started bool
}

func (p position) cursor() string {
	b := binary.BigEndian.AppendUint16(nil, p.day)
	b = binary.BigEndian.AppendUint64(b, uint64(p.hour))
	return base64.RawURLEncoding.EncodeToString(append(b, p.ref[:]...))
}

func parseCursor(s string) (position, error) {
	if s == "" {
		return position{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 2+8+len(crypto.Ref{}) {
		return position{}, refuse(ErrInvalid, "bad_cursor", "malformed page cursor")
	}
	p := position{day: binary.BigEndian.Uint16(b), hour: int64(binary.BigEndian.Uint64(b[2:])), started: true}
	copy(p.ref[:], b[10:])
	return p, nil
}

// cursorID names a page in the header without repeating the cursor.
func cursorID(cursor string) string {
	h := sha256.Sum256([]byte(cursor))
	return hex.EncodeToString(h[:6])
}

func newExportID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "exp_" + hex.EncodeToString(b[:]), nil
}

// wireEvent is the part of an ingested event (the plugin's JSON, sealed as
// received) that a reader is shown.
type wireEvent struct {
	Post *struct {
		ID         string `json:"id"`
		ChannelID  string `json:"channel_id"`
		RootID     string `json:"root_id"`
		OriginalID string `json:"original_id"`
		Message    string `json:"message"`
		Metadata   *struct {
			Files []wireFile `json:"files"`
		} `json:"metadata"`
	} `json:"post"`
	File *wireFile `json:"file"`
}

type wireFile struct {
	ID        string `json:"id"`
	ChannelID string `json:"channel_id"`
	Name      string `json:"name"`
	MIMEType  string `json:"mime_type"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	// ContentSealed: the plugin forwarded the bytes and sealgate stored
	// them before it took this metadata event.
	ContentSealed bool `json:"content_sealed"`
}

// view turns an opened event into what the requester sees, or reports that
// the order does not cover it: another employee (cannot happen with keys
// bound to the subject, checked anyway), outside the window by its
// authenticated time, or a channel out of scope or excluded.
func (rel *released) view(ev *crypto.Event) (export.Message, bool) {
	o := rel.order
	if ev.Employee != o.Subject || ev.Time.Before(rel.from) || !ev.Time.Before(rel.to) {
		return export.Message{}, false
	}
	var w wireEvent
	if err := json.Unmarshal(ev.Body, &w); err != nil {
		return export.Message{}, false
	}
	m := export.Message{PostID: ev.PostID, Kind: ev.Kind.String(), Version: ev.Version, Time: ev.Time.UTC()}
	switch {
	case w.Post != nil:
		m.ChannelID, m.RootID, m.OriginalID = w.Post.ChannelID, w.Post.RootID, w.Post.OriginalID
		if ev.Kind != crypto.KindDeleted {
			m.Text = rel.pseudo.text(w.Post.Message)
		}
		if w.Post.Metadata != nil {
			for _, f := range w.Post.Metadata.Files {
				m.Files = append(m.Files, export.File{ID: f.ID, Name: f.Name, MIMEType: f.MIMEType, Size: f.Size, SHA256: f.SHA256})
			}
		}
	case w.File != nil:
		m.ChannelID = w.File.ChannelID
		m.Files = []export.File{{ID: w.File.ID, Name: w.File.Name, MIMEType: w.File.MIMEType, Size: w.File.Size, SHA256: w.File.SHA256, ContentSealed: w.File.ContentSealed}}
	default:
		return export.Message{}, false
	}
	if !o.InScope(m.ChannelID) {
		return export.Message{}, false
	}
	return m, true
}

// pseudonyms replace co-participants' @-mentions with names that are stable
// within one order and unlinkable across orders (a random key per release).
type pseudonyms struct{ macs sync.Pool }

func newPseudonyms() (*pseudonyms, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	p := &pseudonyms{}
	p.macs.New = func() any { return hmac.New(sha256.New, key) }
	return p, nil
}

// mention is Mattermost's @username syntax (letters, digits, ".", "-", "_").
var mention = regexp.MustCompile(`@[A-Za-z0-9][A-Za-z0-9._-]*`)

func (p *pseudonyms) text(s string) string {
	return mention.ReplaceAllStringFunc(s, func(m string) string {
		name := m[1:]
		for len(name) > 0 && (name[len(name)-1] == '.' || name[len(name)-1] == '-' || name[len(name)-1] == '_') {
			name = name[:len(name)-1] // sentence punctuation after a mention
		}
		mac := p.macs.Get().(hash.Hash)
		mac.Reset()
		mac.Write([]byte(toLower(name)))
		sum := mac.Sum(nil)
		p.macs.Put(mac)
		return "@participant-" + hex.EncodeToString(sum[:4]) + m[1+len(name):]
	})
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
