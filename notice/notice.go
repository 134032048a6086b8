// Package notice tells an employee that their messages were unsealed.
//
// When an investigation order about an employee is activated (unless its
// notice is deferred) and when it ends — closed, expired or revoked — the
// release desk queues a Notice for the subject. A Dispatcher takes due
// notices from a durable, encrypted outbox and delivers them through the
// configured Senders in order: the sealgate bot's Mattermost direct
// message first, e-mail as the second channel or fallback. A notice that
// cannot be delivered is retried with backoff and, after a while,
// escalated (audit entry, metric, a message to the compliance channel); it
// is never dropped.
//
// A notice carries no message content: the order id, the window and scope,
// the purpose and legal basis, a summary of the grounds, the roles that
// approved (never names), the validity, what was accessed (counts and
// times) and the employee's rights with contacts. Texts exist in English
// and Dutch, chosen by the recipient's Mattermost locale, and can be
// overridden by configuration.
package notice

import (
	"context"
	"time"
)

// Kind says which notice it is.
type Kind string

const (
	// Activated: the order reached its quorum and messages may be read.
	Activated Kind = "activated"
	// Ended: the order closed, expired or was revoked; always sent, also
	// after a deferral.
	Ended Kind = "ended"
)

// Notice is one message to one employee about one order.
type Notice struct {
	// ID is unique per notice (e.g. "ntc_" + random); delivery is
	// idempotent by it.
	ID   string `json:"id"`
	Kind Kind   `json:"kind"`
	// Recipient: the subject's Mattermost user id, e-mail address (may be
	// empty) and locale ("en", "nl"; others fall back to English).
	UserID string `json:"user_id"`
	Email  string `json:"email,omitempty"`
	Locale string `json:"locale,omitempty"`

	OrderID    string `json:"order_id"`
	WindowFrom string `json:"window_from"` // YYYY-MM-DD
	WindowTo   string `json:"window_to"`
	// Scope says which channels: "all" (every channel except the excluded
	// ones) or a count of listed channels; never channel names.
	Channels     int    `json:"channels"` // 0 means all except excluded
	Purpose      string `json:"purpose"`
	LegalBasis   string `json:"legal_basis"`
	PolicyClause string `json:"policy_clause"` // the summary of the grounds: the clause at stake
	// ApprovedBy are the roles that approved (never names).
	ApprovedBy  []string  `json:"approved_by"`
	ActivatedAt time.Time `json:"activated_at"`
	ValidUntil  time.Time `json:"valid_until"`
	// Ended says how the order ended ("closed", "expired", "revoked"); empty
	// for an Activated notice.
	Ended   string    `json:"ended,omitempty"`
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Accessed summarises what was read under the order so far.
	Accessed Accessed `json:"accessed"`
	// DueAt is when the notice may be sent: now, or the end of a deferral.
	DueAt time.Time `json:"due_at"`
}

// Accessed is what was read under an order: counts and times, no content.
type Accessed struct {
	Views    int       `json:"views"`    // pages read
	Exports  int       `json:"exports"`  // exports made
	Messages int       `json:"messages"` // messages shown, over all views and exports
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
}

// Contacts are the employee's points of contact, from the configuration.
type Contacts struct {
	DPO       string `yaml:"dpo" json:"dpo"`             // e.g. "privacy@example.com"
	Authority string `yaml:"authority" json:"authority"` // default: Autoriteit Persoonsgegevens, https://autoriteitpersoonsgegevens.nl
}

// Message is a rendered notice.
type Message struct {
	Subject string // e-mail subject line
	Body    string // Markdown for Mattermost, plain text for e-mail
}

// Sender delivers one rendered notice through one channel. Send must be
// idempotent by n.ID where the channel allows it, and must not put the
// message body into its errors.
type Sender interface {
	// Name is the channel's name for logs and metrics ("mattermost", "email").
	Name() string
	Send(ctx context.Context, n *Notice, m Message) error
}
