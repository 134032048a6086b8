package aggregates

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sealgate/sealgate/redact"
	"github.com/sealgate/sealgate/store"
)

// Noise turns a publication into the one that is shown, e.g. with
// differential-privacy noise (dp.Noiser.Apply). An error wrapping
// store.ErrBudgetExhausted refuses the publication.
type Noise func(ctx context.Context, t redact.Table) (redact.Table, error)

// Handler serves GET /v1/aggregates (mount it at that path, or at "/")
// from r at threshold k, through noise if it is not nil. authorize is
// asked first, before the parameters are read; when it refuses, the
// response has its status (401, 403 or 503 when the token could not be
// checked; any other status that is not a 4xx error is taken as 403). A
// publication refused for its privacy budget is a 403
// with code "budget_exhausted".
func Handler(r Reader, k int, authorize func(*http.Request) (ok bool, status int), noise Noise) http.Handler {
	h := &handler{r: r, k: k, authorize: authorize, noise: noise}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/aggregates", h.serve)
	return mux
}

type handler struct {
	r         Reader
	k         int
	authorize func(*http.Request) (bool, int)
	noise     Noise
}

var knownParams = map[string]bool{"from": true, "to": true, "by": true, "format": true}

func (h *handler) serve(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if h.authorize == nil {
		writeError(w, http.StatusForbidden, "forbidden", "not allowed")
		return
	}
	if ok, status := h.authorize(req); !ok {
		switch {
		case status == http.StatusUnauthorized:
			writeError(w, status, "unauthorized", "missing, invalid or expired token")
		case status == http.StatusServiceUnavailable:
			writeError(w, status, "unavailable", "the token could not be checked now; try again")
		case status >= 400 && status < 500 && status != http.StatusForbidden:
			writeError(w, status, "refused", http.StatusText(status))
		default:
			writeError(w, http.StatusForbidden, "forbidden", "not allowed to read the aggregates")
		}
		return
	}
	ps, err := params(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	format := ps["format"]
	switch format {
	case "":
		format = "json"
	case "json", "csv":
	default:
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("format must be json or csv, not %q", format))
		return
	}
	q, err := ParseQuery(ps["from"], ps["to"], ps["by"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), ErrBadQuery.Error()+": "))
		return
	}
	t, err := Query(req.Context(), h.r, q, h.k)
	if err == nil && h.noise != nil {
		t, err = h.noise(req.Context(), t)
	}
	switch {
	case errors.Is(err, store.ErrBudgetExhausted):
		writeError(w, http.StatusForbidden, "budget_exhausted", "the privacy budget of a day in this range is spent: no further publication about it")
		return
	case err != nil:
		slog.Default().Error("aggregates API", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	switch format {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		name := fmt.Sprintf("aggregates-%s-%s-by-%s.csv", ps["from"], ps["to"], q.By)
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		_ = WriteCSV(w, t)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = WriteJSON(w, t)
	}
}

// params returns the query parameters, refusing unknown and repeated ones.
func params(req *http.Request) (map[string]string, error) {
	vals, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, errors.New("the query string is not well formed")
	}
	out := map[string]string{}
	for name, vs := range vals {
		if !knownParams[name] {
			return nil, fmt.Errorf("unknown parameter %q (want from, to, by, format)", name)
		}
		if len(vs) > 1 {
			return nil, fmt.Errorf("parameter %q given %d times", name, len(vs))
		}
		out[name] = vs[0]
	}
	return out, nil
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}

// JSONTable is the JSON form of a publication (WriteJSON).
type JSONTable struct {
	K    int       `json:"k"`
	By   string    `json:"by"` // "hour" or "day"
	Rows []JSONRow `json:"rows"`
}

// JSONRow is one cell. A suppressed cell has no figures.
type JSONRow struct {
	Start        time.Time `json:"start"`
	Team         string    `json:"team"`         // a team id, "*" all teams, "(other)" or "(unknown)"
	ChannelType  string    `json:"channel_type"` // "O", "P", "D", "G", "?" or "*" (all)
	Suppressed   bool      `json:"suppressed"`
	Partial      bool      `json:"partial,omitempty"`
	UsersAtLeast bool      `json:"users_at_least,omitempty"`
	*Figures
}

// Figures are the counts of a cell that is shown.
type Figures struct {
	Messages  int64 `json:"messages"`
	Edits     int64 `json:"edits"`
	Deletes   int64 `json:"deletes"`
	Bytes     int64 `json:"bytes"`
	Files     int64 `json:"files"`
	Reactions int64 `json:"reactions"`
	Users     int64 `json:"users"`
}

// ToJSON converts a publication to its JSON form.
func ToJSON(t redact.Table) JSONTable {
	out := JSONTable{K: t.K, By: t.By.String(), Rows: make([]JSONRow, 0, len(t.Rows))}
	for i := range t.Rows {
		r := &t.Rows[i]
		jr := JSONRow{
			Start: r.Start.UTC(), Team: r.Team, ChannelType: string(rune(r.ChannelType)),
			Suppressed: r.Suppressed, Partial: r.Partial, UsersAtLeast: r.UsersAtLeast,
		}
		if !r.Suppressed {
			n := &r.Counts
			jr.Figures = &Figures{n.Messages, n.Edits, n.Deletes, n.Bytes, n.Files, n.Reactions, n.Users}
		}
		out.Rows = append(out.Rows, jr)
	}
	return out
}

// WriteJSON writes t as a JSONTable, indented.
func WriteJSON(w io.Writer, t redact.Table) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(ToJSON(t))
}

// CSVHeader is the header row of WriteCSV.
var CSVHeader = []string{"start", "span", "team", "channel_type", "suppressed", "partial", "users_at_least",
	"messages", "edits", "deletes", "bytes", "files", "reactions", "users"}

// Suppressed is what WriteCSV writes in the figures of a suppressed cell.
const Suppressed = "suppressed"

// WriteCSV writes t as CSV with a header row (CSVHeader): start in RFC
// 3339, span "hour" or "day", team and channel type as in JSONRow, and
// "suppressed" in every figure of a suppressed cell. A team id that a
// spreadsheet would take for a formula is prefixed with "'".
func WriteCSV(w io.Writer, t redact.Table) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	rec := make([]string, len(CSVHeader))
	for i := range t.Rows {
		r := &t.Rows[i]
		rec[0] = r.Start.UTC().Format(time.RFC3339)
		rec[1] = r.Span.String()
		rec[2] = csvSafe(r.Team)
		rec[3] = string(rune(r.ChannelType))
		rec[4] = strconv.FormatBool(r.Suppressed)
		rec[5] = strconv.FormatBool(r.Partial)
		rec[6] = strconv.FormatBool(r.UsersAtLeast)
		n := &r.Counts
		for j, x := range [...]int64{n.Messages, n.Edits, n.Deletes, n.Bytes, n.Files, n.Reactions, n.Users} {
			if r.Suppressed {
				rec[7+j] = Suppressed
			} else {
				rec[7+j] = strconv.FormatInt(x, 10)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
