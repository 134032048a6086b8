package order

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Size bounds on what one order may carry.
const (
	MaxTextBytes = 64 << 10 // any one string field
	MaxListLen   = 1000     // evidence_refs, channels, excluded_channels
)

// MaxClockSkew is how far filed_at may lie ahead of now: Validate also runs
// on approvers' machines, whose clocks may be a little behind the gateway's.
const MaxClockSkew = 5 * time.Minute

// FieldError is one problem with one field.
type FieldError struct {
	// Field is the JSON path of the field: "subject", "suspicion.evidence_refs",
	// "channels[2]", or a group such as "window" or "prior_warning" when the
	// problem lies between its fields.
	Field string
	// Reason says what is wrong. It never quotes the requester's free text;
	// it may quote ids and dates.
	Reason string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidationError is a refused order with every problem found.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return "invalid order: " + strings.Join(parts, "; ")
}

// Has reports whether a problem names the field.
func (e *ValidationError) Has(field string) bool {
	return slices.ContainsFunc(e.Fields, func(f FieldError) bool { return f.Field == field })
}

// SamePerson reports whether two Mattermost user ids belong to one person,
// for deployments where a person may hold several accounts (a directory
// lookup done by the caller). Ids that are equal are always the same person;
// a nil SamePerson knows nothing more.
type SamePerson func(a, b string) bool

// Validate checks the order against the rules at time now and returns nil or
// a [*ValidationError] listing every problem. samePerson (may be nil) widens
// the check that the requester is not the subject. Rules looser than
// [DefaultRules] are refused with a plain error: they are a configuration
// fault, not the order's. See the package documentation for which bounds are
// measured from filed_at and which from now.
func (o *Order) Validate(r Rules, now time.Time, samePerson SamePerson) error {
	if o == nil {
		return errors.New("validate order: no order")
	}
	if err := r.check(); err != nil {
		return fmt.Errorf("validate order: %w", err)
	}
	v := &validator{}
	now = now.UTC()
	today := dateOf(now)

	if v.required("id", o.ID) && !IsID(o.ID) {
		v.add("id", "not an order id (ord_ and 26 lowercase base32 characters)")
	}

	subjectOK := v.required("subject", o.Subject)
	if subjectOK {
		if reason := subjectProblem(o.Subject); reason != "" {
			v.add("subject", reason)
			subjectOK = false
		}
	}
	if v.required("requester", o.Requester) {
		switch {
		case !IsMattermostID(o.Requester):
			v.add("requester", "not a Mattermost user id")
		case subjectOK && (o.Requester == o.Subject || (samePerson != nil && samePerson(o.Requester, o.Subject))):
			v.add("requester", "the requester must not be the subject")
		}
	}

	v.required("legal_basis", o.LegalBasis)
	v.required("legitimate_interest_ref", o.LegitimateInterestRef)
	if v.required("purpose", o.Purpose) && !slices.Contains(r.Purposes, o.Purpose) {
		v.add("purpose", "not one of the configured purposes: "+strings.Join(r.Purposes, ", "))
	}

	v.required("suspicion.facts", o.Suspicion.Facts)
	if noticed, ok := v.date("suspicion.first_noticed", o.Suspicion.FirstNoticed); ok && noticed.After(today) {
		v.add("suspicion.first_noticed", fmt.Sprintf("%s is in the future", o.Suspicion.FirstNoticed))
	}
	if v.list("suspicion.evidence_refs", o.Suspicion.EvidenceRefs) {
		if len(o.Suspicion.EvidenceRefs) == 0 {
			v.add("suspicion.evidence_refs", "missing: at least one evidence reference")
		}
		for i, ref := range o.Suspicion.EvidenceRefs {
			v.required(fmt.Sprintf("suspicion.evidence_refs[%d]", i), ref)
		}
	}
	v.required("suspicion.policy_clause", o.Suspicion.PolicyClause)

	refSet := strings.TrimSpace(o.PriorWarning.Ref) != ""
	whySet := strings.TrimSpace(o.PriorWarning.WhyNone) != ""
	switch {
	case !refSet && !whySet:
		v.add("prior_warning", "missing: give the warning's ref, or why_none")
	case refSet && whySet:
		v.add("prior_warning", "give either ref or why_none, not both")
	default:
		v.optional("prior_warning.ref", o.PriorWarning.Ref)
		v.optional("prior_warning.why_none", o.PriorWarning.WhyNone)
	}

	v.required("less_intrusive.tried", o.LessIntrusive.Tried)
	v.required("less_intrusive.why_insufficient", o.LessIntrusive.WhyInsufficient)
	v.required("why_content", o.WhyContent)

	filedOK := false
	if o.FiledAt.IsZero() {
		v.add("filed_at", "missing")
	} else if o.FiledAt.After(now.Add(MaxClockSkew)) {
		v.add("filed_at", fmt.Sprintf("%s is in the future", o.FiledAt.UTC().Format(time.RFC3339)))
	} else {
		filedOK = true
	}
	filedDate := dateOf(o.FiledAt)

	from, fromOK := v.date("window.from", o.Window.From)
	to, toOK := v.date("window.to", o.Window.To)
	if toOK && !to.Before(today) {
		v.add("window.to", fmt.Sprintf("%s is not in the past: the window must end before %s (UTC)", o.Window.To, today.Format(dateLayout)))
	}
	if fromOK && filedOK {
		if earliest := filedDate.AddDate(0, 0, -r.MaxLookbackDays); from.Before(earliest) {
			v.add("window.from", fmt.Sprintf("%s is more than %d days before filing; the earliest allowed is %s", o.Window.From, r.MaxLookbackDays, earliest.Format(dateLayout)))
		}
	}
	if fromOK && toOK {
		if from.After(to) {
			v.add("window", fmt.Sprintf("from %s is after to %s", o.Window.From, o.Window.To))
		} else if n := daysBetween(from, to) + 1; n > r.MaxWindowDays {
			v.add("window", fmt.Sprintf("%d days long, at most %d", n, r.MaxWindowDays))
		}
	}

	excluded := make(map[string]bool)
	if v.list("excluded_channels", o.ExcludedChannels) {
		v.channels("excluded_channels", o.ExcludedChannels)
		for _, ch := range o.ExcludedChannels {
			excluded[ch] = true
		}
		for _, ch := range r.ExcludedChannels {
			if !excluded[ch] {
				v.add("excluded_channels", fmt.Sprintf("configured excluded channel %s is missing", ch))
			}
		}
	}
	for _, ch := range r.ExcludedChannels {
		excluded[ch] = true
	}
	if v.list("channels", o.Channels) {
		v.channels("channels", o.Channels)
		for i, ch := range o.Channels {
			if excluded[ch] {
				v.add(fmt.Sprintf("channels[%d]", i), fmt.Sprintf("channel %s is excluded (works council, union, confidential adviser, company doctor or whistleblower) and can never be in scope", ch))
			}
		}
	}

	if o.ExpiresAt.IsZero() {
		v.add("expires_at", "missing")
	} else {
		limit := now.Add(r.MaxValidity)
		if filedOK && o.FiledAt.Add(r.MaxValidity).Before(limit) {
			limit = o.FiledAt.Add(r.MaxValidity)
		}
		switch {
		case !o.ExpiresAt.After(now):
			v.add("expires_at", fmt.Sprintf("%s is not in the future: the order has expired", o.ExpiresAt.UTC().Format(time.RFC3339)))
		case o.ExpiresAt.After(limit):
			v.add("expires_at", fmt.Sprintf("%s is more than %s after filing (at most %s)", o.ExpiresAt.UTC().Format(time.RFC3339), days(r.MaxValidity), limit.UTC().Format(time.RFC3339)))
		}
	}

	v.required("dpia_ref", o.DPIARef)
	v.required("works_council_ref", o.WorksCouncilRef)
	v.required("ict_policy_ref", o.ICTPolicyRef)

	switch o.Notice.Mode {
	case NoticeImmediate:
		if o.Notice.DeferralGround != "" {
			v.add("notice.deferral_ground", "only for mode deferred")
		}
		if o.Notice.DeferUntil != "" {
			v.add("notice.defer_until", "only for mode deferred")
		}
	case NoticeDeferred:
		v.required("notice.deferral_ground", o.Notice.DeferralGround)
		if until, ok := v.date("notice.defer_until", o.Notice.DeferUntil); ok && filedOK {
			last := dateOf(o.FiledAt.Add(r.MaxDeferral))
			switch {
			case !until.After(filedDate):
				v.add("notice.defer_until", fmt.Sprintf("%s is not after the filing date %s", o.Notice.DeferUntil, filedDate.Format(dateLayout)))
			case until.After(last):
				v.add("notice.defer_until", fmt.Sprintf("%s is more than %s after filing (at most %s)", o.Notice.DeferUntil, days(r.MaxDeferral), last.Format(dateLayout)))
			}
		}
	default:
		if v.required("notice.mode", string(o.Notice.Mode)) {
			v.add("notice.mode", "must be immediate or deferred")
		}
	}

	v.optional("dpo_advice_ref", o.DPOAdviceRef)
	v.optional("new_facts", o.NewFacts)

	return v.err()
}

// subjectProblem says why s (present, valid UTF-8) is not exactly one user
// id, or "". It never quotes s: a refused subject may be a name.
func subjectProblem(s string) string {
	if IsMattermostID(s) {
		return ""
	}
	if strings.ContainsAny(s, ",;|/&+\n\r\t ") {
		return "names more than one person: an order names exactly one Mattermost user id"
	}
	word := strings.ToLower(strings.TrimPrefix(s, "@"))
	switch {
	case strings.ContainsAny(s, "*?%"):
		return "a wildcard: an order names exactly one Mattermost user id"
	case word == "all" || word == "everyone" || word == "everybody" || word == "here" ||
		word == "channel" || word == "team" || word == "group" || word == "any":
		return "a group, not one person: an order names exactly one Mattermost user id"
	case strings.HasPrefix(s, "@"):
		return "a mention, not a user id: an order names exactly one Mattermost user id"
	case len(s) > 26 && len(s)%26 == 0 && IsMattermostID(s[:26]):
		return "names more than one person: an order names exactly one Mattermost user id"
	}
	return "not a Mattermost user id (26 lowercase letters and digits)"
}

// days writes a duration of whole days as "14 days".
func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

type validator struct{ errs []FieldError }

func (v *validator) add(field, reason string) {
	v.errs = append(v.errs, FieldError{Field: field, Reason: reason})
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	return &ValidationError{Fields: v.errs}
}

// text checks what every present string must be: UTF-8 and not too long.
func (v *validator) text(field, s string) bool {
	switch {
	case !utf8.ValidString(s):
		v.add(field, "not valid UTF-8")
	case len(s) > MaxTextBytes:
		v.add(field, fmt.Sprintf("longer than %d bytes", MaxTextBytes))
	default:
		return true
	}
	return false
}

// required refuses an empty or whitespace-only s and reports whether s is
// present and sound.
func (v *validator) required(field, s string) bool {
	if strings.TrimSpace(s) == "" {
		v.add(field, "missing")
		return false
	}
	return v.text(field, s)
}

// optional accepts "" and a sound value, and refuses whitespace only.
func (v *validator) optional(field, s string) {
	if s != "" && strings.TrimSpace(s) == "" {
		v.add(field, "whitespace only: leave it empty or fill it in")
		return
	}
	if s != "" {
		v.text(field, s)
	}
}

// date requires a "YYYY-MM-DD" date.
func (v *validator) date(field, s string) (time.Time, bool) {
	if !v.required(field, s) {
		return time.Time{}, false
	}
	t, err := parseDate(s)
	if err != nil {
		v.add(field, err.Error())
		return time.Time{}, false
	}
	return t, true
}

// list bounds a list's length.
func (v *validator) list(field string, l []string) bool {
	if len(l) > MaxListLen {
		v.add(field, fmt.Sprintf("more than %d entries", MaxListLen))
		return false
	}
	return true
}

// channels requires channel ids, each listed once.
func (v *validator) channels(field string, l []string) {
	for i, ch := range l {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case !IsMattermostID(ch):
			v.add(f, "not a Mattermost channel id")
		case slices.Index(l, ch) < i:
			v.add(f, fmt.Sprintf("channel %s listed twice", ch))
		}
	}
}
