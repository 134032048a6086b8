package mmauth

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sealgate/sealgate/order"
)

// Errors of [Authenticator.User] and [TokenFromRequest], wrapped with
// context; test with errors.Is. Neither ever carries the token.
var (
	// ErrUnauthorized: the token is missing or malformed, Mattermost refused
	// it (401 or 403), or its user has been deactivated. Answer 401.
	ErrUnauthorized = errors.New("not authenticated by Mattermost")
	// ErrUnavailable: Mattermost could not be reached, or answered with
	// something other than a verdict on the token (5xx, a redirect, an
	// unexpected status, an answer that does not decode as a user). Answer
	// 503; never treat as authorised.
	ErrUnavailable = errors.New("no verdict from Mattermost on the token")
)

// User is the Mattermost user a token belongs to.
type User struct {
	ID       string // 26-character Mattermost user id
	Username string
	Locale   string // may be empty
}

const (
	defaultTTL     = 30 * time.Second
	maxNegativeTTL = 5 * time.Second
	// fetchTimeout bounds one request to Mattermost even when the
	// caller's http.Client has no timeout: the request is shared by
	// every concurrent lookup of the token, so no one caller's context
	// governs it.
	fetchTimeout = 10 * time.Second
	maxBody      = 1 << 20
	maxEntries   = 10000
	mePath       = "api/v4/users/me"
	cookieName   = "MMAUTHTOKEN"
)

// Authenticator checks Mattermost tokens against one Mattermost server and
// caches the answers. It is safe for concurrent use.
type Authenticator struct {
	meURL  string
	hc     *http.Client
	ttl    time.Duration // accepted tokens
	negTTL time.Duration // refused tokens
	now    func() time.Time
	max    int // cache bound

	flight singleflight.Group // keyed by the token's SHA-256

	mu    sync.Mutex
	cache map[[sha256.Size]byte]*entry
	order *list.List // of [sha256.Size]byte, oldest insertion first
	// nextExpiry is no later than the earliest expiry in the cache, so
	// eviction scans for expired entries only when there is one.
	nextExpiry time.Time
}

type entry struct {
	user    User
	ok      bool // false: Mattermost refused the token
	expires time.Time
	elem    *list.Element
}

// New returns an Authenticator for the Mattermost server at baseURL (an
// http or https URL, possibly with a path for a Mattermost served under a
// subpath, without query, fragment or user info). ttl is how long an
// accepted token is trusted without asking again (0: 30 seconds); refused
// tokens are remembered for ttl or five seconds, whichever is shorter. hc nil
// means a client with a 10-second timeout; otherwise a copy of hc is used,
// with redirects disabled (Mattermost does not redirect this endpoint, and
// the token must not follow one) and no cookie jar (only the token may
// authenticate the request).
func New(baseURL string, hc *http.Client, ttl time.Duration) (*Authenticator, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("mmauth: Mattermost URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("mmauth: Mattermost URL %q: scheme must be http or https", baseURL)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("mmauth: Mattermost URL %q: no host", baseURL)
	case u.User != nil:
		return nil, errors.New("mmauth: Mattermost URL must not contain user info")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("mmauth: Mattermost URL %q: must not have a query", baseURL)
	case u.Fragment != "" || u.RawFragment != "":
		return nil, fmt.Errorf("mmauth: Mattermost URL %q: must not have a fragment", baseURL)
	}
	if ttl < 0 {
		return nil, fmt.Errorf("mmauth: negative cache TTL %v", ttl)
	}
	if ttl == 0 {
		ttl = defaultTTL
	}
	var c http.Client
	if hc != nil {
		c = *hc
	} else {
		c.Timeout = fetchTimeout
	}
	c.Jar = nil
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Authenticator{
		meURL:  u.JoinPath(mePath).String(),
		hc:     &c,
		ttl:    ttl,
		negTTL: min(ttl, maxNegativeTTL),
		now:    time.Now,
		max:    maxEntries,
		cache:  make(map[[sha256.Size]byte]*entry),
		order:  list.New(),
	}, nil
}

// User returns the Mattermost user token belongs to. The error wraps
// [ErrUnauthorized] if the token is malformed, refused by Mattermost or
// belongs to a deactivated user, and [ErrUnavailable] if Mattermost could not
// give a verdict, or ctx ended before it did. The answer may come from the
// cache (see the package documentation).
func (a *Authenticator) User(ctx context.Context, token string) (User, error) {
	// Session and personal access tokens have the form of Mattermost ids.
	if !order.IsMattermostID(token) {
		return User{}, fmt.Errorf("mmauth: malformed token (want 26 lowercase letters and digits): %w", ErrUnauthorized)
	}
	key := sha256.Sum256([]byte(token))
	if u, err, hit := a.lookup(key); hit {
		return u, err
	}
	if err := ctx.Err(); err != nil {
		return User{}, fmt.Errorf("mmauth: %w: %w", ErrUnavailable, err)
	}
	ch := a.flight.DoChan(string(key[:]), func() (any, error) {
		// A lookup that just finished may have filled the cache between
		// our miss and joining the flight.
		if u, err, hit := a.lookup(key); hit {
			return u, err
		}
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		u, err := a.fetch(fctx, token)
		a.store(key, u, err)
		return u, err
	})
	select {
	case r := <-ch:
		u, _ := r.Val.(User)
		return u, r.Err
	case <-ctx.Done():
		return User{}, fmt.Errorf("mmauth: %w: %w", ErrUnavailable, ctx.Err())
	}
}

// lookup returns the cached answer for key, if there is one still valid.
func (a *Authenticator) lookup(key [sha256.Size]byte) (User, error, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e := a.cache[key]
	if e == nil {
		return User{}, nil, false
	}
	if !a.now().Before(e.expires) {
		a.remove(key, e)
		return User{}, nil, false
	}
	if !e.ok {
		return User{}, fmt.Errorf("mmauth: token refused by Mattermost (cached): %w", ErrUnauthorized), true
	}
	return e.user, nil, true
}

// store caches the outcome of a request to Mattermost: an accepted token for
// ttl, a refused one for negTTL, and nothing else.
func (a *Authenticator) store(key [sha256.Size]byte, u User, err error) {
	var ttl time.Duration
	switch {
	case err == nil:
		ttl = a.ttl
	case errors.Is(err, ErrUnauthorized):
		ttl = a.negTTL
	default:
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	expires := now.Add(ttl)
	if e := a.cache[key]; e != nil {
		a.remove(key, e)
	}
	for len(a.cache) >= a.max && len(a.cache) > 0 {
		a.evict(now)
	}
	e := &entry{user: u, ok: err == nil, expires: expires}
	e.elem = a.order.PushBack(key)
	a.cache[key] = e
	if a.nextExpiry.IsZero() || expires.Before(a.nextExpiry) {
		a.nextExpiry = expires
	}
}

// evict makes room for one entry: every expired entry if there is one,
// else the oldest. a.mu is held.
func (a *Authenticator) evict(now time.Time) {
	if !now.Before(a.nextExpiry) {
		var next time.Time
		for k, e := range a.cache {
			if !now.Before(e.expires) {
				a.remove(k, e)
			} else if next.IsZero() || e.expires.Before(next) {
				next = e.expires
			}
		}
		a.nextExpiry = next
		if len(a.cache) < a.max {
			return
		}
	}
	front := a.order.Front()
	k := front.Value.([sha256.Size]byte)
	a.remove(k, a.cache[k])
}

func (a *Authenticator) remove(key [sha256.Size]byte, e *entry) {
	a.order.Remove(e.elem)
	delete(a.cache, key)
}

// meResponse is the part of Mattermost's model.User that matters here.
type meResponse struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Locale   string `json:"locale"`
	DeleteAt int64  `json:"delete_at"`
}

// fetch asks Mattermost whose token this is, as the Mattermost web client
// does. The token goes only into the Authorization header; no error carries
// it.
func (a *Authenticator) fetch(ctx context.Context, token string) (User, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.meURL, nil)
	if err != nil {
		return User{}, fmt.Errorf("mmauth: %w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	req.Header.Set("Accept", "application/json")
	resp, err := a.hc.Do(req)
	if err != nil {
		// The token is in no URL, so a transport error cannot quote it;
		// check anyway rather than trust every layer below.
		if strings.Contains(err.Error(), token) {
			return User{}, fmt.Errorf("mmauth: %w: GET %s failed", ErrUnavailable, a.meURL)
		}
		return User{}, fmt.Errorf("mmauth: %w: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return User{}, fmt.Errorf("mmauth: %w: GET %s: reading the answer (status %d): %v", ErrUnavailable, a.meURL, resp.StatusCode, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return User{}, fmt.Errorf("mmauth: token refused by Mattermost (status %d%s): %w", resp.StatusCode, appErrorID(body), ErrUnauthorized)
	default:
		return User{}, fmt.Errorf("mmauth: %w: GET %s: status %d%s", ErrUnavailable, a.meURL, resp.StatusCode, appErrorID(body))
	}
	if len(body) > maxBody {
		return User{}, fmt.Errorf("mmauth: %w: GET %s: answer larger than %d bytes", ErrUnavailable, a.meURL, maxBody)
	}
	var me meResponse
	if err := json.Unmarshal(body, &me); err != nil {
		return User{}, fmt.Errorf("mmauth: %w: GET %s: answer is not a Mattermost user: %v", ErrUnavailable, a.meURL, err)
	}
	if !order.IsMattermostID(me.ID) || me.Username == "" {
		return User{}, fmt.Errorf("mmauth: %w: GET %s: answer is not a Mattermost user (no valid id or username)", ErrUnavailable, a.meURL)
	}
	if me.DeleteAt != 0 {
		return User{}, fmt.Errorf("mmauth: Mattermost user %s is deactivated: %w", me.ID, ErrUnauthorized)
	}
	return User{ID: me.ID, Username: me.Username, Locale: me.Locale}, nil
}

// appErrorID returns ", <id>" for a Mattermost AppError body whose id looks
// like one ("api.context.session_expired.app_error"), else "". Only the id
// is quoted: it is Mattermost's constant, never caller data.
func appErrorID(body []byte) string {
	var ae struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &ae) != nil || ae.ID == "" || len(ae.ID) > 100 {
		return ""
	}
	for _, c := range ae.ID {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '.' && c != '_' {
			return ""
		}
	}
	return ", " + ae.ID
}

// TokenFromRequest returns the Mattermost token r carries, looked for where
// Mattermost looks: an "Authorization: Bearer <token>" header (the scheme in
// any case; "Token <token>" too), else the MMAUTHTOKEN cookie. Tokens in the
// query string are not accepted (they end up in logs). The error wraps
// [ErrUnauthorized] if there is none. The token is not checked here; that is
// [Authenticator.User]'s job.
//
// A token from the cookie is sent by the browser on its own: a handler that
// changes state should, like Mattermost, require a header a cross-site form
// cannot set (X-Requested-With: XMLHttpRequest) when r has no Authorization
// header.
func TokenFromRequest(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
		if strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "token") {
			if t := strings.TrimSpace(rest); t != "" {
				return t, nil
			}
			return "", fmt.Errorf("mmauth: empty token in the Authorization header: %w", ErrUnauthorized)
		}
	}
	if c, err := r.Cookie(cookieName); err == nil && c.Value != "" {
		return c.Value, nil
	}
	return "", fmt.Errorf("mmauth: no token (Authorization: Bearer header or %s cookie): %w", cookieName, ErrUnauthorized)
}
