package orderapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sealgate/sealgate/order"
	"github.com/sealgate/sealgate/release"
)

// Client calls the order API with one user's Mattermost token. The sealgate
// CLI uses it.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8082
	Token   string
	HTTP    *http.Client // default http.DefaultClient
}

// APIError is an error answer of the API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
}

func (c *Client) do(ctx context.Context, method, path string, in any, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("order API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct{ Error, Code string }
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		if e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return nil, &APIError{Status: resp.StatusCode, Code: e.Code, Message: e.Error}
	}
	switch o := out.(type) {
	case nil:
	case io.Writer:
		if _, err := io.Copy(o, resp.Body); err != nil {
			return nil, fmt.Errorf("order API: %w", err)
		}
	default:
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, fmt.Errorf("order API: undecodable answer: %w", err)
		}
	}
	return resp.Header, nil
}

func orderPath(id string, rest ...string) string {
	return "/v1/orders/" + url.PathEscape(id) + strings.Join(rest, "")
}

// Rules fetches the rules to stamp an order with.
func (c *Client) Rules(ctx context.Context) (order.Rules, error) {
	var r order.Rules
	_, err := c.do(ctx, http.MethodGet, "/v1/orders/rules", nil, &r)
	return r, err
}

// File files a stamped, signed order.
func (c *Client) File(ctx context.Context, o *order.Order, sig []byte) (*release.Filed, error) {
	raw, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var f release.Filed
	_, err = c.do(ctx, http.MethodPost, "/v1/orders", FileRequest{Order: raw, Signature: sig}, &f)
	return &f, err
}

// Get fetches an order for review.
func (c *Client) Get(ctx context.Context, id string) (*release.Document, error) {
	var d release.Document
	_, err := c.do(ctx, http.MethodGet, orderPath(id), nil, &d)
	return &d, err
}

// Escrow fetches the subject's key records for one slot.
func (c *Client) Escrow(ctx context.Context, id string, slot int) (*release.Escrow, error) {
	var e release.Escrow
	_, err := c.do(ctx, http.MethodGet, orderPath(id, "/escrow?slot=", strconv.Itoa(slot)), nil, &e)
	return &e, err
}

// Approve submits an approval.
func (c *Client) Approve(ctx context.Context, id string, slot int, approval []byte) (release.ApproveResult, error) {
	var r release.ApproveResult
	_, err := c.do(ctx, http.MethodPost, orderPath(id, "/approvals"), ApproveRequest{Slot: slot, Approval: approval}, &r)
	return r, err
}

// Reject submits a rejection and reports whether it rejected the order.
func (c *Client) Reject(ctx context.Context, id string, slot int, reason string) (bool, error) {
	var r struct{ Rejected bool }
	_, err := c.do(ctx, http.MethodPost, orderPath(id, "/rejections"), RejectRequest{Slot: slot, Reason: reason}, &r)
	return r.Rejected, err
}

// Revoke revokes an order.
func (c *Client) Revoke(ctx context.Context, id, reason string) error {
	_, err := c.do(ctx, http.MethodPost, orderPath(id, "/revocation"), RevokeRequest{Reason: reason}, nil)
	return err
}

// Messages writes one watermarked JSON page to w and returns the next
// cursor ("" after the last page).
func (c *Client) Messages(ctx context.Context, id, cursor string, limit int, w io.Writer) (string, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	h, err := c.do(ctx, http.MethodGet, orderPath(id, "/messages?", q.Encode()), nil, w)
	if err != nil {
		return "", err
	}
	return h.Get(NextCursorHeader), nil
}

// Export writes the order's watermarked export in the format to w.
func (c *Client) Export(ctx context.Context, id, format string, w io.Writer) error {
	_, err := c.do(ctx, http.MethodGet, orderPath(id, "/export?format=", url.QueryEscape(format)), nil, w)
	return err
}

// SharedFile writes the content of one released shared file to w and
// checks it against the SHA-256 the server names; a mismatch or a cut
// download is an error, and w then holds bytes to discard.
func (c *Client) SharedFile(ctx context.Context, id, fileID string, w io.Writer) error {
	h := sha256.New()
	hdr, err := c.do(ctx, http.MethodGet, orderPath(id, "/files/", url.PathEscape(fileID)), nil, io.MultiWriter(w, h))
	if err != nil {
		return err
	}
	if want := hdr.Get(ContentSHA256Header); want != "" && want != hex.EncodeToString(h.Sum(nil)) {
		return fmt.Errorf("order API: file %s does not match its recorded SHA-256", fileID)
	}
	return nil
}

// MyOrders lists the activated orders that named the caller.
func (c *Client) MyOrders(ctx context.Context) ([]release.MyOrder, error) {
	var out []release.MyOrder
	_, err := c.do(ctx, http.MethodGet, "/v1/me/orders", nil, &out)
	return out, err
}

// MyAccesses lists every access under the orders that named the caller.
func (c *Client) MyAccesses(ctx context.Context) ([]MyAccess, error) {
	var out []MyAccess
	_, err := c.do(ctx, http.MethodGet, "/v1/me/accesses", nil, &out)
	return out, err
}

// MyMessages writes the caller's own messages released under an active
// order to w.
func (c *Client) MyMessages(ctx context.Context, id, format string, w io.Writer) error {
	_, err := c.do(ctx, http.MethodGet, "/v1/me/orders/"+url.PathEscape(id)+"/messages?format="+url.QueryEscape(format), nil, w)
	return err
}

// RequestDeferral asks to renew an order's deferred notice.
func (c *Client) RequestDeferral(ctx context.Context, id, until, ground string, sig []byte) error {
	_, err := c.do(ctx, http.MethodPost, orderPath(id, "/deferral"), DeferralRequest{Until: until, Ground: ground, Signature: sig}, nil)
	return err
}

// ApproveDeferral approves the pending renewal with one slot's signature.
func (c *Client) ApproveDeferral(ctx context.Context, id string, slot int, sig []byte) (release.ApproveResult, error) {
	var r release.ApproveResult
	_, err := c.do(ctx, http.MethodPost, orderPath(id, "/deferral/approvals"), DeferralApproval{Slot: slot, Signature: sig}, &r)
	return r, err
}
