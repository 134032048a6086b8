// Package orderapi is the HTTP face of the release desk: the order API that
// compliance officers, approvers, auditors and DPOs use (through the
// sealgate CLI), on its own listener, apart from the ingest API.
//
// Every request carries a Mattermost session or personal access token
// ("Authorization: Bearer …"); the server validates it against Mattermost
// (mmauth, cached briefly) and passes the user id to the desk, which
// authorises the call by the configured roles and audits it. A browser's
// MMAUTHTOKEN cookie is accepted only with "X-Requested-With:
// XMLHttpRequest", which a cross-site form cannot send.
//
//	GET  /v1/orders/rules                       the rules to stamp an order with
//	POST /v1/orders                             file: {"order": …, "signature": base64}
//	GET  /v1/orders/{id}                        the order for review
//	GET  /v1/orders/{id}/escrow?slot=N          the subject's key records, for slot N
//	POST /v1/orders/{id}/approvals              {"slot": N, "approval": base64}
//	POST /v1/orders/{id}/rejections             {"slot": N, "reason": "…"}
//	POST /v1/orders/{id}/revocation             {"reason": "…"}
//	POST /v1/orders/{id}/deferral               renew a deferred notice once: {"until", "ground", "signature"}
//	POST /v1/orders/{id}/deferral/approvals     {"slot": N, "signature": base64}
//	GET  /v1/orders/{id}/messages?cursor=&limit= one watermarked JSON page; the next
//	                                            cursor is in the Sealgate-Next-Cursor header
//	GET  /v1/orders/{id}/export?format=json|html|eml
//
// and, for every employee about themselves (art. 15 GDPR):
//
//	GET  /v1/me/orders                          the activated orders that named the caller
//	                                            (once any deferral ended), with every access
//	GET  /v1/me/accesses                        the same accesses, one list
//	GET  /v1/me/orders/{id}/messages?format=    a copy of the caller's own released
//	                                            messages, while the order is active
//
// Errors are JSON {"error": "…", "code": "…"}: 401 bad token, 403 not
// allowed, 404 no such order, 409 conflict (a slot, role or person twice, a
// busy subject), 410 the order is not live (expired, revoked, rejected, not
// yet approved), 422 an invalid order or request, 503 Mattermost or Redis
// unreachable. They never hold content.
package orderapi

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/sealgate/sealgate/export"
	"github.com/sealgate/sealgate/mmauth"
	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/release"
)

// Authenticator resolves a Mattermost token to its user (mmauth.Authenticator).
type Authenticator interface {
	User(ctx context.Context, token string) (mmauth.User, error)
}

// Server serves the order API.
type Server struct {
	Desk *release.Desk
	Auth Authenticator
	Log  *slog.Logger
	// PluginSecret lets the sealgate Mattermost plugin ask /v1/me/orders and
	// /v1/me/accesses on behalf of the user who typed /sealgate
	// (X-Sealgate-Plugin-User), which Mattermost authenticated. Empty
	// disables it. Nothing else is reachable with it.
	PluginSecret string
}

// PluginUserHeader names the user the plugin asks for.
const PluginUserHeader = "X-Sealgate-Plugin-User"

// maxRequest bounds a request body: an order, or an approval of a 90-day
// window (a few hundred bytes per key record).
const maxRequest = 4 << 20

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/orders/rules", s.authed(s.rules))
	mux.HandleFunc("POST /v1/orders", s.authed(s.file))
	mux.HandleFunc("GET /v1/orders/{id}", s.authed(s.get))
	mux.HandleFunc("GET /v1/orders/{id}/escrow", s.authed(s.escrow))
	mux.HandleFunc("POST /v1/orders/{id}/approvals", s.authed(s.approve))
	mux.HandleFunc("POST /v1/orders/{id}/rejections", s.authed(s.reject))
	mux.HandleFunc("POST /v1/orders/{id}/revocation", s.authed(s.revoke))
	mux.HandleFunc("POST /v1/orders/{id}/deferral", s.authed(s.requestDeferral))
	mux.HandleFunc("POST /v1/orders/{id}/deferral/approvals", s.authed(s.approveDeferral))
	mux.HandleFunc("GET /v1/orders/{id}/messages", s.authed(s.messages))
	mux.HandleFunc("GET /v1/orders/{id}/export", s.authed(s.export))
	mux.HandleFunc("GET /v1/orders/{id}/files/{file_id}", s.authed(s.sharedFile))
	mux.HandleFunc("GET /v1/me/orders", s.selfService(s.myOrders))
	mux.HandleFunc("GET /v1/me/accesses", s.selfService(s.myAccesses))
	mux.HandleFunc("GET /v1/me/orders/{id}/messages", s.authed(s.myMessages))
	return mux
}

type handler func(w http.ResponseWriter, r *http.Request, user string) error

// selfService accepts, besides a user's own token, the plugin's secret with
// the user id Mattermost authenticated for the /sealgate command.
func (s *Server) selfService(h handler) http.HandlerFunc {
	user := s.authed(h)
	return func(w http.ResponseWriter, r *http.Request) {
		uid := r.Header.Get(PluginUserHeader)
		if uid == "" {
			user(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if s.PluginSecret == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.PluginSecret)) != 1 || !order.IsMattermostID(uid) {
			s.fail(w, r, fmt.Errorf("%w: plugin credentials refused", mmauth.ErrUnauthorized))
			return
		}
		if err := h(w, r, uid); err != nil {
			s.fail(w, r, err)
		}
	}
}

// authed validates the caller's token and turns a handler's error into a
// JSON error response.
func (s *Server) authed(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token, err := mmauth.TokenFromRequest(r)
		if err == nil && r.Header.Get(PluginUserHeader) != "" {
			err = fmt.Errorf("%w: the plugin may only ask for /v1/me", mmauth.ErrUnauthorized)
		}
		if err == nil && r.Header.Get("Authorization") == "" && r.Header.Get("X-Requested-With") != "XMLHttpRequest" {
			err = fmt.Errorf("%w: a cookie token needs X-Requested-With: XMLHttpRequest", mmauth.ErrUnauthorized)
		}
		var u mmauth.User
		if err == nil {
			u, err = s.Auth.User(r.Context(), token)
		}
		if err == nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxRequest)
			err = h(w, r, u.ID)
		}
		if err != nil {
			s.fail(w, r, err)
		}
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code, msg := http.StatusInternalServerError, "internal", "internal error"
	var ref *release.Refusal
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, mmauth.ErrUnauthorized):
		status, code, msg = http.StatusUnauthorized, "unauthorized", "missing, invalid or expired Mattermost token"
	case errors.Is(err, mmauth.ErrUnavailable):
		status, code, msg = http.StatusServiceUnavailable, "mattermost_unavailable", "Mattermost could not confirm the token; try again"
	case errors.As(err, &mbe):
		status, code, msg = http.StatusRequestEntityTooLarge, "too_large", "request body too large"
	case errors.As(err, &ref):
		code, msg = ref.Code, ref.Error()
		switch {
		case errors.Is(err, release.ErrForbidden):
			status = http.StatusForbidden
		case errors.Is(err, release.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, release.ErrConflict):
			status = http.StatusConflict
		case errors.Is(err, release.ErrGone):
			status = http.StatusGone
		default:
			status = http.StatusUnprocessableEntity
		}
	case errors.Is(err, errBadRequest):
		status, code, msg = http.StatusBadRequest, "bad_request", err.Error()
	default:
		s.log().Error("order API", "method", r.Method, "route", r.Pattern, "err", err)
	}
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

var errBadRequest = errors.New("bad request")

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fmt.Errorf("%w: the body is not the expected JSON", errBadRequest)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func slotParam(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("%w: slot must be a slot number", errBadRequest)
	}
	return n, nil
}

func (s *Server) rules(w http.ResponseWriter, r *http.Request, user string) error {
	rules, err := s.Desk.Rules(r.Context(), user)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rules)
	return nil
}

// FileRequest is the body of POST /v1/orders. The order is kept as raw
// JSON so that it is parsed strictly (order.ParseJSON).
type FileRequest struct {
	Order     json.RawMessage `json:"order"`
	Signature []byte          `json:"signature"`
}

func (s *Server) file(w http.ResponseWriter, r *http.Request, user string) error {
	var req FileRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	o, err := order.ParseJSON(req.Order)
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	f, err := s.Desk.File(r.Context(), user, o, req.Signature)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, f)
	return nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, user string) error {
	doc, err := s.Desk.Get(r.Context(), user, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}

func (s *Server) escrow(w http.ResponseWriter, r *http.Request, user string) error {
	slot, err := slotParam(r.URL.Query().Get("slot"))
	if err != nil {
		return err
	}
	esc, err := s.Desk.Escrow(r.Context(), user, r.PathValue("id"), slot)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, esc)
	return nil
}

// ApproveRequest is the body of POST /v1/orders/{id}/approvals.
type ApproveRequest struct {
	Slot     int    `json:"slot"`
	Approval []byte `json:"approval"`
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request, user string) error {
	var req ApproveRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	res, err := s.Desk.Approve(r.Context(), user, r.PathValue("id"), req.Slot, req.Approval)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// RejectRequest is the body of POST /v1/orders/{id}/rejections.
type RejectRequest struct {
	Slot   int    `json:"slot"`
	Reason string `json:"reason"`
}

func (s *Server) reject(w http.ResponseWriter, r *http.Request, user string) error {
	var req RejectRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	rejected, err := s.Desk.Reject(r.Context(), user, r.PathValue("id"), req.Slot, req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"rejected": rejected})
	return nil
}

// RevokeRequest is the body of POST /v1/orders/{id}/revocation.
type RevokeRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request, user string) error {
	var req RevokeRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := s.Desk.Revoke(r.Context(), user, r.PathValue("id"), req.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"revoked": true})
	return nil
}

// NextCursorHeader carries the cursor of the next page of messages.
const NextCursorHeader = "Sealgate-Next-Cursor"

func (s *Server) messages(w http.ResponseWriter, r *http.Request, user string) error {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%w: limit must be a number", errBadRequest)
		}
		limit = n
	}
	p, err := s.Desk.Messages(r.Context(), user, r.PathValue("id"), q.Get("cursor"), limit)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := export.Write(&buf, export.JSON, p.Header, p.Messages); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(NextCursorHeader, p.Next)
	_, err = io.Copy(w, &buf)
	return err
}

var contentTypes = map[export.Format]string{
	export.JSON: "application/json",
	export.HTML: "text/html; charset=utf-8",
	export.EML:  "message/rfc822",
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, user string) error {
	f, err := export.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	var buf bytes.Buffer
	id := r.PathValue("id")
	if _, err := s.Desk.Export(r.Context(), user, id, f, &buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentTypes[f])
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+"."+string(f)))
	_, err = io.Copy(w, &buf)
	return err
}

// ContentSHA256Header carries the SHA-256 the file's sealed metadata
// recorded, so a client can check the download end to end.
const ContentSHA256Header = "X-Sealgate-Content-SHA256"

// sharedFile streams one released file's content. It is never served with
// the file's own MIME type, so a browser saves rather than renders it. A
// failure after the first byte (a segment that does not authenticate, a
// digest mismatch) aborts the connection: the client sees a cut download,
// never a complete-looking one.
func (s *Server) sharedFile(w http.ResponseWriter, r *http.Request, user string) error {
	id, fileID := r.PathValue("id"), r.PathValue("file_id")
	f, err := s.Desk.SharedFile(r.Context(), user, id, fileID)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", fileID))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set(ContentSHA256Header, f.Meta.SHA256)
	if _, err := io.Copy(w, f.Content); err != nil {
		if s.Log != nil {
			s.Log.Error("shared file download cut", "order", id, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

func (s *Server) myOrders(w http.ResponseWriter, r *http.Request, user string) error {
	mine, err := s.Desk.MyOrders(r.Context(), user)
	if err != nil {
		return err
	}
	if mine == nil {
		mine = []release.MyOrder{}
	}
	writeJSON(w, http.StatusOK, mine)
	return nil
}

// MyAccess is one access under an order that named the caller.
type MyAccess struct {
	OrderID string `json:"order_id"`
	release.Access
}

func (s *Server) myAccesses(w http.ResponseWriter, r *http.Request, user string) error {
	mine, err := s.Desk.MyOrders(r.Context(), user)
	if err != nil {
		return err
	}
	out := []MyAccess{}
	for _, o := range mine {
		for _, a := range o.Accesses {
			out = append(out, MyAccess{OrderID: o.OrderID, Access: a})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) myMessages(w http.ResponseWriter, r *http.Request, user string) error {
	f, err := export.ParseFormat(r.URL.Query().Get("format"))
	if err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	var buf bytes.Buffer
	if _, err := s.Desk.MyMessages(r.Context(), user, r.PathValue("id"), f, &buf); err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentTypes[f])
	_, err = io.Copy(w, &buf)
	return err
}

// DeferralRequest is the body of POST /v1/orders/{id}/deferral.
type DeferralRequest struct {
	Until     string `json:"until"`
	Ground    string `json:"ground"`
	Signature []byte `json:"signature"`
}

func (s *Server) requestDeferral(w http.ResponseWriter, r *http.Request, user string) error {
	var req DeferralRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := s.Desk.RequestDeferral(r.Context(), user, r.PathValue("id"), req.Until, req.Ground, req.Signature); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"until": req.Until, "state": "awaiting approval"})
	return nil
}

// DeferralApproval is the body of POST /v1/orders/{id}/deferral/approvals.
type DeferralApproval struct {
	Slot      int    `json:"slot"`
	Signature []byte `json:"signature"`
}

func (s *Server) approveDeferral(w http.ResponseWriter, r *http.Request, user string) error {
	var req DeferralApproval
	if err := decode(r, &req); err != nil {
		return err
	}
	res, err := s.Desk.ApproveDeferral(r.Context(), user, r.PathValue("id"), req.Slot, req.Signature)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
