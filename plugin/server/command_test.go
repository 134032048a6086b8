package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

const (
	testSecret = "plugin-secret-0123456789abcdef"
	aliceID    = "g6e8xk8t6t86tjy8nrqyeqmm5c"
)

// fakeOrderAPI answers GET /v1/me/orders the way orderapi does (the
// release.MyOrder JSON), once it trusts the plugin's call.
func fakeOrderAPI(t *testing.T, body string) (url string, users *[]string) {
	var seen []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1/me/orders" {
			http.Error(w, `{"error":"no such route"}`, http.StatusNotFound)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+testSecret {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"missing, invalid or expired token","code":"unauthorized"}`))
			return
		}
		seen = append(seen, r.Header.Get(pluginUserHeader))
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(body))
	}))
	t.Cleanup(hs.Close)
	return hs.URL, &seen
}

func runCommand(t *testing.T, tp *testPlugin, command string) string {
	t.Helper()
	resp, appErr := tp.ExecuteCommand(&plugin.Context{}, &model.CommandArgs{Command: command, UserId: aliceID})
	if appErr != nil {
		t.Fatal(appErr)
	}
	if resp.ResponseType != model.CommandResponseTypeEphemeral {
		t.Fatalf("response type %q, want ephemeral", resp.ResponseType)
	}
	return resp.Text
}

const ordersJSON = `[{"order_id":"ord_7f3a","filed_at":"2026-11-20T09:15:00Z","window_from":"2026-11-01","window_to":"2026-11-14",
"purpose":"Suspected leak | of the Q3 figures","approved_by":["legal","works-council","dpo"],"activated_at":"2026-11-21T10:00:00Z",
"ended":"revoked","ended_at":"2026-11-22T08:30:00Z",
"accesses":[{"time":"2026-11-21T11:02:00Z","role":"requester","action":"viewed","messages":40},
{"time":"2026-11-21T14:45:00Z","role":"requester","action":"exported","messages":12}]},
{"order_id":"ord_91bc","filed_at":"2026-11-22T07:00:00Z","window_from":"2026-11-15","window_to":"2026-11-21","purpose":"Harassment complaint",
"approved_by":["legal","hr"],"activated_at":"2026-11-22T12:00:00Z","accesses":[]}]`

func TestSealgateCommand(t *testing.T) {
	url, users := fakeOrderAPI(t, ordersJSON)
	tp := newTestPlugin(t, newFakeKV(), configuration{SealgateOrdersURL: url + "/", PluginSecret: testSecret})
	text := runCommand(t, tp, "/sealgate")
	if len(*users) != 1 || (*users)[0] != aliceID {
		t.Fatalf("order API saw users %v, want [%s]", *users, aliceID)
	}
	for _, want := range []string{
		"| Order | Filed | Window | Purpose | Approved by | Activated | Status |",
		"| `ord_7f3a` | 2026-11-20 09:15 UTC | 2026-11-01 – 2026-11-14 | Suspected leak \\| of the Q3 figures | legal, works-council, dpo | 2026-11-21 10:00 UTC | revoked 2026-11-22 08:30 UTC |",
		"| `ord_91bc` | 2026-11-22 07:00 UTC | 2026-11-15 – 2026-11-21 | Harassment complaint | legal, hr | 2026-11-22 12:00 UTC | active |",
		"##### Reads under `ord_7f3a`",
		"| 2026-11-21 11:02 UTC | requester | viewed | 40 |",
		"| 2026-11-21 14:45 UTC | requester | exported | 12 |",
		"##### Reads under `ord_91bc`\n\nNo one has read your messages under this order.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("reply lacks %q:\n%s", want, text)
		}
	}
	if got := runCommand(t, tp, "/sealgate help"); got != helpText {
		t.Fatalf("help: %q", got)
	}
}

func TestSealgateCommandRefusals(t *testing.T) {
	url, _ := fakeOrderAPI(t, `[]`)
	tp := newTestPlugin(t, newFakeKV(), configuration{})
	if got := runCommand(t, tp, "/sealgate"); !strings.Contains(got, "not set up") {
		t.Fatalf("unconfigured: %q", got)
	}
	tp.configure(t, configuration{SealgateOrdersURL: url, PluginSecret: testSecret})
	if got := runCommand(t, tp, "/sealgate orders"); got != "No approved investigation order has named you." {
		t.Fatalf("no orders: %q", got)
	}
	tp.configure(t, configuration{SealgateOrdersURL: url, PluginSecret: "wrong-secret-0123456789"})
	if got := runCommand(t, tp, "/sealgate"); !strings.Contains(got, "refused this server's plugin credentials") {
		t.Fatalf("wrong secret: %q", got)
	}
	tp.configure(t, configuration{SealgateOrdersURL: "http://" + freeAddr(t), PluginSecret: testSecret})
	if got := runCommand(t, tp, "/sealgate"); !strings.Contains(got, "could not be reached") {
		t.Fatalf("down: %q", got)
	}
}

func TestRenderOrdersStaysUnderPostLimit(t *testing.T) {
	o := myOrder{OrderID: "ord_x", Purpose: "p", ApprovedBy: []string{"legal", "hr"}}
	for range 2000 {
		o.Accesses = append(o.Accesses, myAccess{Role: "requester", Action: "viewed", Messages: 1})
	}
	text := renderOrders([]myOrder{o, o})
	if n := len([]rune(text)); n > model.PostMessageMaxRunesV2 {
		t.Fatalf("%d runes", n)
	}
	if !strings.Contains(text, "| – | requester | viewed | 1 |") || !strings.Contains(text, "too long to show here in full") {
		t.Fatal("cut not said")
	}
}
