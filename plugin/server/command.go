package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mattermost/mattermost/server/public/model"
	"github.com/mattermost/mattermost/server/public/plugin"
)

// The /sealgate command shows the employee the investigation orders that
// named them and every read under them (sealgate's GET /v1/me/orders). The
// plugin cannot use the employee's own token, so it calls the order API
// with the plugin secret and names the user Mattermost authenticated:
//
//	Authorization: Bearer <PluginSecret>
//	X-Sealgate-Plugin-User: <user id>
const (
	commandTrigger   = "sealgate"
	pluginUserHeader = "X-Sealgate-Plugin-User"
	// maxReplyRunes keeps the reply under Mattermost's post limit (16383).
	maxReplyRunes = 15000
)

func sealgateCommand() *model.Command {
	return &model.Command{
		Trigger:          commandTrigger,
		DisplayName:      "sealgate",
		Description:      "Shows the investigation orders that named you and who read your messages under them.",
		AutoComplete:     true,
		AutoCompleteDesc: "Show the investigation orders that named you, and every read under them",
		AutoCompleteHint: "[orders|help]",
	}
}

const helpText = "`/sealgate` (or `/sealgate orders`) shows the investigation orders that named you once they were approved, " +
	"and every time your messages were read or exported under them. Only you see the answer."

// ExecuteCommand answers /sealgate with an ephemeral post.
func (p *Plugin) ExecuteCommand(_ *plugin.Context, args *model.CommandArgs) (*model.CommandResponse, *model.AppError) {
	fields := strings.Fields(args.Command)
	sub := "orders"
	if len(fields) > 1 {
		sub = strings.ToLower(fields[1])
	}
	var text string
	switch sub {
	case "orders":
		text = p.myOrdersReply(args.UserId)
	default:
		text = helpText
	}
	return &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: text}, nil
}

// myOrder is one element of GET /v1/me/orders (release.MyOrder).
type myOrder struct {
	OrderID     string     `json:"order_id"`
	FiledAt     time.Time  `json:"filed_at"`
	WindowFrom  string     `json:"window_from"`
	WindowTo    string     `json:"window_to"`
	Purpose     string     `json:"purpose"`
	ApprovedBy  []string   `json:"approved_by"`
	ActivatedAt time.Time  `json:"activated_at"`
	Ended       string     `json:"ended"`
	EndedAt     time.Time  `json:"ended_at"`
	Accesses    []myAccess `json:"accesses"`
}

type myAccess struct {
	Time     time.Time `json:"time"`
	Role     string    `json:"role"`
	Action   string    `json:"action"`
	Messages int       `json:"messages"`
}

func (p *Plugin) myOrdersReply(userID string) string {
	cfg := p.getConfiguration()
	u := cfg.ordersURL()
	if u == "" {
		return "sealgate's order lookup is not set up on this server (SealgateOrdersURL and PluginSecret in the plugin settings). Ask your administrator."
	}
	if userID == "" {
		return "Mattermost did not say who you are; try again."
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "sealgate's order lookup is misconfigured. Ask your administrator."
	}
	req.Header.Set("Authorization", "Bearer "+cfg.PluginSecret)
	req.Header.Set(pluginUserHeader, userID)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "sealgate-mattermost-plugin")
	resp, err := p.client.Do(req)
	if err != nil {
		p.API.LogWarn("sealgate: /sealgate: order API unreachable", "err", err.Error())
		return "sealgate could not be reached. Try again later."
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "sealgate's answer could not be read. Try again later."
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(body, &e)
		p.API.LogWarn("sealgate: /sealgate: order API refused", "status", resp.StatusCode, "reason", e.Error)
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return "sealgate refused this server's plugin credentials. Ask your administrator."
		case http.StatusServiceUnavailable:
			return "sealgate is busy or cannot reach its dependencies. Try again later."
		}
		return fmt.Sprintf("sealgate answered %d. Try again later.", resp.StatusCode)
	}
	var orders []myOrder
	if err := json.Unmarshal(body, &orders); err != nil {
		return "sealgate's answer could not be read. Ask your administrator."
	}
	return renderOrders(orders)
}

// renderOrders renders the orders as Markdown tables.
func renderOrders(orders []myOrder) string {
	if len(orders) == 0 {
		return "No approved investigation order has named you."
	}
	var b strings.Builder
	b.WriteString("#### Investigation orders that named you\n\n")
	b.WriteString("| Order | Filed | Window | Purpose | Approved by | Activated | Status |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, o := range orders {
		status := "active"
		if o.Ended != "" {
			status = o.Ended
			if !o.EndedAt.IsZero() {
				status += " " + when(o.EndedAt)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s – %s | %s | %s | %s | %s |\n",
			code(o.OrderID), when(o.FiledAt), cell(o.WindowFrom), cell(o.WindowTo), cell(o.Purpose),
			cell(strings.Join(o.ApprovedBy, ", ")), when(o.ActivatedAt), cell(status))
	}
	// The reads, as many as fit in one post.
	runes := utf8.RuneCountInString(b.String())
	add := func(line string) bool {
		n := utf8.RuneCountInString(line)
		if runes+n > maxReplyRunes {
			return false
		}
		b.WriteString(line)
		runes += n
		return true
	}
	for _, o := range orders {
		ok := add(fmt.Sprintf("\n##### Reads under %s\n\n", code(o.OrderID)))
		switch {
		case ok && len(o.Accesses) == 0:
			ok = add("No one has read your messages under this order.\n")
		case ok:
			ok = add("| Time | Role | Action | Messages |\n| --- | --- | --- | --- |\n")
			for i := 0; ok && i < len(o.Accesses); i++ {
				a := o.Accesses[i]
				ok = add(fmt.Sprintf("| %s | %s | %s | %d |\n", when(a.Time), cell(a.Role), cell(a.Action), a.Messages))
			}
		}
		if !ok {
			b.WriteString("\n_The list is too long to show here in full; ask the DPO office for the complete record._\n")
			break
		}
	}
	return b.String()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	if s == "" {
		return "–"
	}
	return s
}

func code(s string) string {
	return "`" + strings.ReplaceAll(cell(s), "`", "'") + "`"
}
