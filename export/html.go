package export

import (
	"bytes"
	"html/template"
	"strconv"
	"time"
)

// wmTiles is how often the watermark is repeated in the page's background
// layer: enough to cover a large screen or a printed page at any scroll
// position.
const wmTiles = 96

// pageTemplate is the whole HTML export. It is parsed by html/template, so
// every value is escaped for its context; it has no scripts, no external
// resources and no URLs at all.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex, nofollow">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Confidential: sealgate export {{.OrderID}}</title>
<style>
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#111;background:#fff}
.wm-bg{position:fixed;top:-50%;left:-50%;width:200%;height:200%;z-index:1000;overflow:hidden;pointer-events:none;-webkit-user-select:none;user-select:none;transform:rotate(-30deg);opacity:.07;color:#000;font-size:15px;line-height:2.8;word-spacing:.2em}
.wm-bg span{margin-right:3em;white-space:nowrap}
.banner{position:sticky;top:0;z-index:10;margin:0;padding:.6em 1em;background:#7a0000;color:#fff;font-weight:600}
.wm-foot{margin-top:2em;padding:.6em 1em;background:#7a0000;color:#fff;font-weight:600}
main{padding:1em}
h1{font-size:1.3em;margin:.4em 0 .8em}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em;margin:0 0 1.5em}
dl.meta dt{font-weight:600}
dl.meta dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #bbb;padding:.35em .5em;vertical-align:top;text-align:left}
th{background:#eee}
.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:anywhere}
td.text{white-space:pre-wrap;overflow-wrap:anywhere;min-width:20em}
.none{color:#666;font-style:italic}
tr.kind-deleted td{background:#fbecec}
tr.kind-updated td{background:#fdf7e3}
ul.files{margin:0;padding-left:1.1em}
@media print{.banner{position:static}}
</style>
</head>
<body>
<div class="wm-bg" aria-hidden="true">{{range .Tiles}}<span>{{$.Watermark}}</span> {{end}}</div>
<header class="banner">{{.Watermark}}</header>
<main>
<h1>Messages released under investigation order {{.OrderID}}</h1>
<dl class="meta">
<dt>Order</dt><dd class="id">{{.OrderID}}</dd>
<dt>Export</dt><dd class="id">{{.ExportID}}</dd>
<dt>Requester</dt><dd class="id">{{.Requester}}</dd>
<dt>Subject</dt><dd class="id">{{.Subject}}</dd>
<dt>Window</dt><dd>{{.Window}}</dd>
<dt>Exported at</dt><dd>{{.ExportedAt}}</dd>
<dt>Purpose</dt><dd>{{.Purpose}}</dd>
<dt>Messages</dt><dd>{{.Count}}</dd>
</dl>
<table>
<thead><tr><th>#</th><th>Time (UTC)</th><th>Kind</th><th>Post</th><th>Channel</th><th>Thread</th><th>Text</th><th>Files</th></tr></thead>
<tbody>
{{range .Messages -}}
<tr class="kind-{{.KindClass}}">
<td>{{.N}}</td>
<td class="id">{{.Time}}</td>
<td>{{.Kind}} v{{.Version}}{{if .OriginalID}}<br>old version of <span class="id">{{.OriginalID}}</span>{{end}}</td>
<td class="id">{{.PostID}}</td>
<td class="id">{{.ChannelID}}</td>
<td class="id">{{if .RootID}}{{.RootID}}{{else}}<span class="none">none</span>{{end}}</td>
<td class="text">{{if .Text}}{{.Text}}{{else}}<span class="none">(no text)</span>{{end}}</td>
<td>{{if .Files}}<ul class="files">{{range .Files}}<li>{{.Name}} <span class="none">({{.MIMEType}}, {{.Size}} bytes)</span><br><span class="id">id {{.ID}}</span><br><span class="id">sha256 {{.SHA256}}</span></li>{{end}}</ul>{{end}}</td>
</tr>
{{else -}}
<tr><td colspan="8" class="none">No messages were released under this order.</td></tr>
{{end -}}
</tbody>
</table>
</main>
<footer class="wm-foot">{{.Watermark}}</footer>
</body>
</html>
`))

type htmlPage struct {
	Watermark           string
	Tiles               []struct{}
	OrderID, ExportID   string
	Requester, Subject  string
	Window              string
	ExportedAt, Purpose string
	Count               int
	Messages            []htmlMessage
}

type htmlMessage struct {
	N                                     int
	Time                                  string
	Kind, KindClass                       string
	Version                               int64
	PostID, ChannelID, RootID, OriginalID string
	Text                                  string
	Files                                 []htmlFile
}

type htmlFile struct {
	ID, Name, MIMEType, SHA256 string
	Size                       string
}

func renderHTML(h Header, msgs []Message) ([]byte, error) {
	p := htmlPage{
		Watermark:  Watermark(h),
		Tiles:      make([]struct{}, wmTiles),
		OrderID:    h.OrderID,
		ExportID:   h.ExportID,
		Requester:  h.Requester,
		Subject:    h.Subject,
		Window:     windowText(h),
		ExportedAt: h.ExportedAt.UTC().Format(time.RFC3339),
		Purpose:    h.Purpose,
		Count:      len(msgs),
		Messages:   make([]htmlMessage, 0, len(msgs)),
	}
	for i, m := range msgs {
		hm := htmlMessage{
			N:          i + 1,
			Time:       utcTime(m.Time),
			Kind:       m.Kind,
			KindClass:  kindClass(m.Kind),
			Version:    m.Version,
			PostID:     m.PostID,
			ChannelID:  m.ChannelID,
			RootID:     m.RootID,
			OriginalID: m.OriginalID,
			Text:       m.Text,
		}
		for _, f := range m.Files {
			hm.Files = append(hm.Files, htmlFile{ID: f.ID, Name: f.Name, MIMEType: f.MIMEType, SHA256: f.SHA256, Size: strconv.FormatInt(f.Size, 10)})
		}
		p.Messages = append(p.Messages, hm)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// kindClass maps a message kind to one of a fixed set of CSS class suffixes.
func kindClass(kind string) string {
	switch kind {
	case "posted", "updated", "deleted", "file":
		return kind
	}
	return "other"
}
