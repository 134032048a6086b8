// Package order is the investigation order: the one document under which
// sealed chat content may ever be read. It holds the model, the rules an order
// must satisfy, the rules an approval must satisfy, the lifecycle states and
// the canonical form that approvals sign. It is pure Go: no Redis, no network.
// The store, approvals and release are built on top of it.
//
// # Filing
//
// A requester drafts an [Order] naming exactly one employee (the subject, a
// Mattermost user id) and every documented ground: legal basis, purpose,
// concrete suspicion with evidence, prior warning, less intrusive means, why
// content and not metadata, a date window, an optional channel scope, the
// DPIA, works-council and ICT-policy references and a notice plan. The system
// then calls [Order.Stamp], which sets what the requester must not choose: an
// unguessable id ([NewID]), the filing time and the configured excluded
// channels (works council, union, confidential adviser, company doctor,
// whistleblower). [Order.Validate] checks the result against the configured
// [Rules] and returns every problem at once as a [*ValidationError], each
// naming its field by JSON path (suspicion.evidence_refs, window.to, …).
// Reasons never quote free text the requester wrote; they may quote ids and
// dates.
//
// Validate is meant to run twice: at filing, and again wherever the order is
// relied upon (before each approval, before release). Bounds that define the
// order are therefore measured from filed_at, which does not move: the window
// may start at most MaxLookbackDays before the filing date, expires_at may be
// at most MaxValidity after filing, a deferred notice must end after the
// filing date and at most MaxDeferral after it. Liveness is measured from now:
// expires_at must be after now, so an expired order fails validation.
//
// [Rules] start from [DefaultRules] (window ≤ 90 days, look-back ≤ 90 days,
// validity ≤ 14 days, deferral ≤ 30 days). Configuration goes through
// [Rules.Tighten], which only makes them stricter: smaller limits, a subset of
// the purposes, more excluded channels. Validate refuses rules that are looser
// than the defaults however they were built.
//
// What Validate cannot see is checked by pure functions the store calls inside
// its atomic sections: [CheckApprover] (the subject and the requester never
// approve; one approval per slot, per person and per role) and
// [CheckOpenOrders] (at most one pending or active order per subject unless
// the new order cites new facts). Their errors wrap sentinels
// ([ErrSubjectApproval], [ErrSelfApproval], [ErrDuplicateSlot],
// [ErrDuplicateApprover], [ErrDuplicateRole], [ErrBadApproval],
// [ErrSubjectBusy]) for errors.Is.
//
// # Lifecycle
//
// An order is in one [State]. The allowed transitions ([CanTransition]) are:
//
//	pending → active    the quorum of approvals is reached
//	pending → rejected  an approver (or the veto role) rejects it
//	pending → expired   expires_at passes before the quorum
//	pending → revoked   the requester or an administrator withdraws it
//	active  → expired   expires_at passes
//	active  → revoked   it is withdrawn while active
//	active  → closed    the investigation is finished early
//
// Rejected, expired, revoked and closed are terminal. Nothing moves back to
// pending or active, and no state moves to itself.
//
// # Canonical form (version 1)
//
// Approvals sign [Order.Hash]:
//
//	hash = SHA-256("sealgate/order/v1\n" | canonical)
//
// canonical ([Order.Canonical]) is one JSON object without any whitespace,
// with every field of the order, always present, in this fixed order (the
// names are the JSON names of the order):
//
//	{"id","subject","requester","legal_basis","legitimate_interest_ref","purpose",
//	 "suspicion":{"facts","first_noticed","evidence_refs","policy_clause"},
//	 "prior_warning":{"ref","why_none"},
//	 "less_intrusive":{"tried","why_insufficient"},
//	 "why_content","window":{"from","to"},"channels","excluded_channels",
//	 "expires_at","dpia_ref","works_council_ref","ict_policy_ref",
//	 "notice":{"mode","deferral_ground","defer_until"},
//	 "dpo_advice_ref","new_facts","filed_at"}
//
// Values are encoded as follows:
//
//   - A string is written between double quotes. `"` becomes \", `\` becomes
//     \\, every character below U+0020 becomes \u00xx (two lowercase hex
//     digits); every other character is written as itself in UTF-8. Nothing
//     is trimmed or normalised. Invalid UTF-8 would be written as U+FFFD, so
//     Validate refuses it: for every order that can pass Validate, distinct
//     orders have distinct canonical forms.
//   - A list of strings is [ "a","b" ] without spaces, in the order given:
//     lists are never sorted, because their order is part of what was
//     approved. An empty or missing list is [].
//   - Dates (first_noticed, window, defer_until) are the strings as filed.
//   - A time (expires_at, filed_at) is converted to UTC and written as
//     "2006-01-02T15:04:05.000000000Z": always nine fractional digits, so that
//     every instant a time.Time can hold has its own form. The zero time is
//     "0001-01-01T00:00:00.000000000Z".
//
// The canonical form is itself a valid order in JSON: decoding it gives back
// the same order.
package order
