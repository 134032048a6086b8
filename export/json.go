package export

import (
	"bytes"
	"encoding/json"
	"time"
)

// The JSON document. Structs, not maps, keep the field order stable.
type jsonExport struct {
	Watermark  string        `json:"watermark"`
	OrderID    string        `json:"order_id"`
	ExportID   string        `json:"export_id"`
	Requester  string        `json:"requester"`
	Subject    string        `json:"subject"`
	Window     jsonWindow    `json:"window"`
	ExportedAt string        `json:"exported_at"`
	Purpose    string        `json:"purpose"`
	Count      int           `json:"count"`
	Messages   []jsonMessage `json:"messages"`
}

type jsonWindow struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type jsonMessage struct {
	PostID     string     `json:"post_id"`
	Kind       string     `json:"kind"`
	Version    int64      `json:"version"`
	Time       string     `json:"time"`
	ChannelID  string     `json:"channel_id"`
	RootID     string     `json:"root_id"`
	OriginalID string     `json:"original_id"`
	Text       string     `json:"text"`
	Files      []jsonFile `json:"files"`
	Watermark  string     `json:"watermark"`
}

type jsonFile struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	MIMEType string `json:"mime_type"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	// Sealed is omitted when false, so exports of metadata-only files
	// read as before.
	ContentSealed bool `json:"content_sealed,omitempty"`
}

func renderJSON(h Header, msgs []Message) ([]byte, error) {
	doc := jsonExport{
		Watermark:  Watermark(h),
		OrderID:    h.OrderID,
		ExportID:   h.ExportID,
		Requester:  h.Requester,
		Subject:    h.Subject,
		Window:     jsonWindow{From: h.WindowFrom, To: h.WindowTo},
		ExportedAt: h.ExportedAt.UTC().Format(time.RFC3339),
		Purpose:    h.Purpose,
		Count:      len(msgs),
		Messages:   make([]jsonMessage, 0, len(msgs)),
	}
	mark := messageMark(h)
	for _, m := range msgs {
		jm := jsonMessage{
			PostID:     m.PostID,
			Kind:       m.Kind,
			Version:    m.Version,
			Time:       utcTime(m.Time),
			ChannelID:  m.ChannelID,
			RootID:     m.RootID,
			OriginalID: m.OriginalID,
			Text:       m.Text,
			Files:      make([]jsonFile, 0, len(m.Files)),
			Watermark:  mark,
		}
		for _, f := range m.Files {
			jm.Files = append(jm.Files, jsonFile{ID: f.ID, Name: f.Name, MIMEType: f.MIMEType, Size: f.Size, SHA256: f.SHA256, ContentSealed: f.ContentSealed})
		}
		doc.Messages = append(doc.Messages, jm)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	// HTML escaping stays on: <, > and & become \u003c, \u003e and \u0026,
	// so the document is inert even if a browser renders it.
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
