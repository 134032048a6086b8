package notice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// MattermostDirectory finds a recipient's e-mail address and locale with
// the sealgate bot's token (GET /api/v4/users/{id}), at send time, so that
// neither is kept in the outbox longer than needed.
type MattermostDirectory struct {
	BaseURL  string
	BotToken string
	HTTP     *http.Client // nil: a client with DefaultMattermostTimeout
}

// Lookup fills n.Email and n.Locale when they are empty. A user without an
// e-mail address (bots, some SSO setups) keeps an empty Email: the mail
// channel then reports ErrNoAddress and is skipped.
func (d *MattermostDirectory) Lookup(ctx context.Context, n *Notice) error {
	if n.Email != "" && n.Locale != "" {
		return nil
	}
	base, err := url.Parse(strings.TrimRight(d.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") {
		return errors.New("mattermost directory: base URL must be http(s)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.String()+"/api/v4/users/"+url.PathEscape(n.UserID), nil)
	if err != nil {
		return fmt.Errorf("mattermost directory: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+d.BotToken)
	req.Header.Set("X-Requested-With", "XMLHttpRequest")
	hc := d.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: DefaultMattermostTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("mattermost directory: look up user of notice %s: %w", n.ID, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mattermost directory: look up user of notice %s: HTTP %d", n.ID, resp.StatusCode)
	}
	var u struct {
		ID     string `json:"id"`
		Email  string `json:"email"`
		Locale string `json:"locale"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&u); err != nil || u.ID != n.UserID {
		return fmt.Errorf("mattermost directory: look up user of notice %s: unexpected answer", n.ID)
	}
	if n.Email == "" {
		n.Email = u.Email
	}
	if n.Locale == "" {
		n.Locale = u.Locale
	}
	return nil
}
