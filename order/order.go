package order

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Order is one investigation order. Every field is required unless its
// comment says optional; Validate says which are missing.
type Order struct {
	// ID is set by [Order.Stamp] with [NewID]: "ord_" and 26 base32 characters.
	ID string `json:"id"`
	// Subject is the one employee the order is about: exactly one Mattermost
	// user id. Lists, wildcards and group mentions are refused.
	Subject string `json:"subject"`
	// Requester is the Mattermost user id of the compliance officer filing it.
	Requester string `json:"requester"`
	// LegalBasis is the legal ground for the processing (e.g. GDPR art. 6(1)(f)).
	LegalBasis string `json:"legal_basis"`
	// LegitimateInterestRef refers to the legitimate-interest assessment.
	LegitimateInterestRef string `json:"legitimate_interest_ref"`
	// Purpose is one of the configured purposes ([Rules.Purposes]).
	Purpose       string        `json:"purpose"`
	Suspicion     Suspicion     `json:"suspicion"`
	PriorWarning  PriorWarning  `json:"prior_warning"`
	LessIntrusive LessIntrusive `json:"less_intrusive"`
	// WhyContent says why metadata does not suffice and content is needed.
	WhyContent string `json:"why_content"`
	// Window is the inclusive date range whose messages the order covers.
	Window Window `json:"window"`
	// Channels optionally restricts the scope to these channel ids. Empty
	// means every channel except the excluded ones.
	Channels []string `json:"channels"`
	// ExcludedChannels are never in scope. [Order.Stamp] fills them from the
	// configuration; a scope channel that is excluded is refused.
	ExcludedChannels []string `json:"excluded_channels"`
	// ExpiresAt ends the order's validity, at most [Rules.MaxValidity] after
	// filing.
	ExpiresAt time.Time `json:"expires_at"`
	// DPIARef refers to the data protection impact assessment.
	DPIARef string `json:"dpia_ref"`
	// WorksCouncilRef refers to the works-council agreement on monitoring.
	WorksCouncilRef string `json:"works_council_ref"`
	// ICTPolicyRef refers to the published ICT policy.
	ICTPolicyRef string `json:"ict_policy_ref"`
	// Notice is the plan for telling the subject.
	Notice Notice `json:"notice"`
	// DPOAdviceRef optionally refers to the data protection officer's advice.
	DPOAdviceRef string `json:"dpo_advice_ref"`
	// NewFacts is optional. It lets an order be filed on a subject who
	// already has an open order (see [CheckOpenOrders]).
	NewFacts string `json:"new_facts"`
	// FiledAt is set by [Order.Stamp].
	FiledAt time.Time `json:"filed_at"`
}

// Suspicion is the concrete suspicion that justifies the order.
type Suspicion struct {
	Facts string `json:"facts"`
	// FirstNoticed is the date ("YYYY-MM-DD") the facts were first noticed;
	// not in the future.
	FirstNoticed string `json:"first_noticed"`
	// EvidenceRefs refer to the evidence; at least one.
	EvidenceRefs []string `json:"evidence_refs"`
	// PolicyClause is the clause of the ICT policy or code of conduct at stake.
	PolicyClause string `json:"policy_clause"`
}

// PriorWarning documents the warning the subject received. Exactly one of
// Ref (the warning) and WhyNone (why there was none) is filled in.
type PriorWarning struct {
	Ref     string `json:"ref"`
	WhyNone string `json:"why_none"`
}

// LessIntrusive documents subsidiarity: what was tried and why it did not
// suffice.
type LessIntrusive struct {
	Tried           string `json:"tried"`
	WhyInsufficient string `json:"why_insufficient"`
}

// Window is an inclusive range of UTC dates "YYYY-MM-DD".
type Window struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// NoticeMode says when the subject is told.
type NoticeMode string

// Notice modes.
const (
	NoticeImmediate NoticeMode = "immediate" // at activation
	NoticeDeferred  NoticeMode = "deferred"  // at DeferUntil (and always at closure)
)

// Notice is the plan for telling the subject. A deferral needs a ground and
// an end date; it is bounded by [Rules.MaxDeferral].
type Notice struct {
	Mode           NoticeMode `json:"mode"`
	DeferralGround string     `json:"deferral_ground"`
	// DeferUntil is the date ("YYYY-MM-DD") the deferred notice is sent.
	DeferUntil string `json:"defer_until"`
}

// Stamp fills the fields the system sets when an order is filed, overwriting
// whatever the draft held: a fresh unguessable id, the filing time (now, in
// UTC) and the excluded channels of the configuration. Validate afterwards.
func (o *Order) Stamp(r Rules, now time.Time) {
	o.ID = NewID()
	o.FiledAt = now.UTC()
	o.ExcludedChannels = slices.Clone(r.ExcludedChannels)
}

// Days lists the dates of the window, from first to last, as "YYYY-MM-DD".
// It returns nil for a window that could not pass Validate: a date that does
// not parse, from after to, or more days than [DefaultRules] allow. Nil means
// nothing to release, which is the safe failure.
func (o *Order) Days() []string {
	from, err1 := parseDate(o.Window.From)
	to, err2 := parseDate(o.Window.To)
	if err1 != nil || err2 != nil || from.After(to) {
		return nil
	}
	n := daysBetween(from, to) + 1
	if n > maxWindowDays {
		return nil
	}
	days := make([]string, 0, n)
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d.Format(dateLayout))
	}
	return days
}

// InWindow reports whether the instant t falls on a UTC date inside the
// window. Release uses it on authenticated record timestamps, so that nothing
// from the hours next to the window leaks. False for a window that could not
// pass Validate.
func (o *Order) InWindow(t time.Time) bool {
	from, err1 := parseDate(o.Window.From)
	to, err2 := parseDate(o.Window.To)
	if err1 != nil || err2 != nil || from.After(to) || daysBetween(from, to)+1 > maxWindowDays {
		return false
	}
	d := dateOf(t)
	return !d.Before(from) && !d.After(to)
}

// InScope reports whether messages of the channel are covered by the order:
// never for an excluded channel; for any other channel when the scope is
// empty, else only for the channels listed.
func (o *Order) InScope(channelID string) bool {
	if channelID == "" || slices.Contains(o.ExcludedChannels, channelID) {
		return false
	}
	return len(o.Channels) == 0 || slices.Contains(o.Channels, channelID)
}

// ParseJSON decodes one order strictly: unknown fields and trailing data are
// refused, so that a misspelt field is an error and not a silently empty one.
// It does not validate.
func ParseJSON(data []byte) (*Order, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var o Order
	if err := dec.Decode(&o); err != nil {
		var te *time.ParseError
		if errors.As(err, &te) {
			// time.ParseError quotes the input; say what is wrong without it.
			return nil, errors.New("parse order: expires_at or filed_at is not an RFC 3339 time")
		}
		return nil, fmt.Errorf("parse order: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("parse order: data after the order")
	}
	return &o, nil
}

// IsMattermostID reports whether s has the form of a Mattermost id (user,
// channel, post, …): 26 characters, lowercase letters and digits.
func IsMattermostID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

const dateLayout = "2006-01-02"

// maxWindowDays is the hard ceiling of the window, the default limit, which
// configuration can only lower.
const maxWindowDays = 90

// parseDate parses a "YYYY-MM-DD" date as midnight UTC. It accepts only the
// exact form (no time, no offset, two-digit month and day, a real date).
func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil || t.Format(dateLayout) != s {
		return time.Time{}, errors.New("not a date YYYY-MM-DD")
	}
	return t, nil
}

// dateOf is midnight UTC of the day t falls on in UTC.
func dateOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// daysBetween counts whole days from a to b, both midnight UTC.
func daysBetween(a, b time.Time) int {
	return int((b.Unix() - a.Unix()) / 86400) // Unix seconds do not saturate like Duration
}
