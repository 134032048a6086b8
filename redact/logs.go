package redact

import (
	"context"
	"log/slog"
	"strings"
)

// NewLogHandler wraps a slog handler so that content cannot reach the log
// by accident (invariant 1). sealgate's code logs ids, counts and codes
// only; this handler is the net under that discipline:
//
//   - an attribute whose key names content (message, text, body, props,
//     file or channel names, e-mail, user names, …) is replaced by
//     "[scrubbed]", whatever its value;
//   - in every other string, error and log message, each double-quoted
//     segment is blanked to "…", because a quoted string in an error is how
//     input usually leaks (fmt's %q, json and strconv errors);
//   - groups are scrubbed the same way, recursively.
//
// Numbers, booleans, times and durations pass unchanged.
func NewLogHandler(inner slog.Handler) slog.Handler { return &logHandler{inner: inner} }

type logHandler struct{ inner slog.Handler }

// contentKeys are attribute keys whose values are content by their name.
var contentKeys = map[string]bool{
	"message": true, "msg_text": true, "text": true, "body": true, "props": true, "post": true,
	"file_name": true, "filename": true, "file": true, "name": true, "display_name": true,
	"channel_name": true, "email": true, "username": true, "subject": true, "content": true, "payload": true,
}

func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, unquote(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	return h.inner.Handle(ctx, out)
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	s := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		s[i] = scrubAttr(a)
	}
	return &logHandler{inner: h.inner.WithAttrs(s)}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return &logHandler{inner: h.inner.WithGroup(name)}
}

func scrubAttr(a slog.Attr) slog.Attr {
	if contentKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, "[scrubbed]")
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, unquote(v.String()))
	case slog.KindGroup:
		g := v.Group()
		s := make([]any, len(g))
		for i, ga := range g {
			s[i] = scrubAttr(ga)
		}
		return slog.Group(a.Key, s...)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.Any(a.Key, scrubbedError{text: unquote(err.Error()), err: err})
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, unquote(s.String()))
		}
		return slog.String(a.Key, "[scrubbed]") // an arbitrary value may marshal its content
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// scrubbedError keeps errors.Is/As for handlers that look, with the text
// scrubbed.
type scrubbedError struct {
	text string
	err  error
}

func (e scrubbedError) Error() string { return e.text }
func (e scrubbedError) Unwrap() error { return e.err }

// unquote blanks every double-quoted segment: `field "x" is bad` becomes
// `field "…" is bad`. Escaped quotes inside a segment are honoured.
func unquote(s string) string {
	if !strings.Contains(s, `"`) {
		return s
	}
	var b strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case in && c == '\\' && i+1 < len(s):
			i++
		case c == '"':
			if in {
				b.WriteString(`…"`)
			} else {
				b.WriteByte('"')
			}
			in = !in
		case !in:
			b.WriteByte(c)
		}
	}
	if in {
		b.WriteString("…")
	}
	return b.String()
}
