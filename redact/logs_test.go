package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLogHandlerScrubs logs at debug level the ways content could leak and
// scans the output for the canary: nothing. What must stay, stays.
func TestLogHandlerScrubs(t *testing.T) {
	const canary = "CANARY-LOG-7f3k"
	var buf bytes.Buffer
	log := slog.New(NewLogHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	_, numErr := strconv.Atoi(canary)
	jsonErr := json.Unmarshal([]byte(`{"a": `+canary+`}`), &struct{}{})
	log.Debug("ingest", "message", canary, "file_name", canary+".xlsx", "channel_name", canary, "props", map[string]string{"x": canary})
	log.Info("parse", "err", fmt.Errorf("event 3: field %q: %w", canary, numErr), "json", jsonErr)
	log.Warn(fmt.Sprintf("bad value %q", canary), "reason", strconv.Quote(canary), "struct", struct{ S string }{canary})
	log.With("email", canary+"@example.com").WithGroup("g").Error("x", slog.Group("inner", "text", canary, "note", `"`+canary+`"`))
	log.Info("kept", "order", "ord_3p5ynbrxrhn4kxkyqzbo2wjkwe", "count", 42, "took", time.Second, "ok", true)

	out := buf.String()
	if strings.Contains(out, canary) || strings.Contains(out, "7f3k") {
		t.Fatalf("canary in the log:\n%s", out)
	}
	for _, keep := range []string{`"order":"ord_3p5ynbrxrhn4kxkyqzbo2wjkwe"`, `"count":42`, `"ok":true`, `"msg":"ingest"`, `"message":"[scrubbed]"`} {
		if !strings.Contains(out, keep) {
			t.Errorf("log lost %s:\n%s", keep, out)
		}
	}
	wrapped := scrubAttr(slog.Any("err", fmt.Errorf("x: %w", errSentinel))).Value.Any().(error)
	if !errors.Is(wrapped, errSentinel) {
		t.Error("scrubbed errors lose errors.Is")
	}
}

var errSentinel = errors.New("sentinel")

func TestUnquote(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:                 `plain`,
		`a "b" c`:               `a "…" c`,
		`a "b \" c" d`:          `a "…" d`,
		`open "quote`:           `open "…`,
		`"x" and "y"`:           `"…" and "…"`,
		`field "sub\\" ject" x`: `field "…" ject"…`,
	} {
		if got := unquote(in); got != want {
			t.Errorf("unquote(%q) = %q, want %q", in, got, want)
		}
	}
}
