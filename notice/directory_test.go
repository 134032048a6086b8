package notice

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestMattermostDirectory looks a user up the way the bot does, answered
// with the recorded 9.11 user shape.
func TestMattermostDirectory(t *testing.T) {
	raw, err := os.ReadFile("../../shared/fixtures/mattermost-9.11/http/users-me.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		Response struct{ Body map[string]any } `json:"response"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	user := fx.Response.Body["id"].(string)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer bottoken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.URL.Path != "/api/v4/users/"+user {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(fx.Response.Body)
	}))
	defer srv.Close()
	d := &MattermostDirectory{BaseURL: srv.URL, BotToken: "bottoken"}
	n := &Notice{ID: "ntc_1", UserID: user}
	if err := d.Lookup(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if n.Email != fx.Response.Body["email"] || n.Locale != fx.Response.Body["locale"] {
		t.Fatalf("looked up %q %q", n.Email, n.Locale)
	}
	other := &Notice{ID: "ntc_2", UserID: "jwmtcrk65byjmjan5bgpkh18iw"}
	if err := d.Lookup(context.Background(), other); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown user: %v", err)
	}
	bad := &MattermostDirectory{BaseURL: srv.URL, BotToken: "wrong"}
	if err := bad.Lookup(context.Background(), &Notice{ID: "ntc_3", UserID: user}); err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("bad token: %v", err)
	}
}
