package order

import (
	"crypto/sha256"
	"time"
	"unicode/utf8"
)

// HashDomain separates order hashes from every other hash sealgate signs.
const HashDomain = "sealgate/order/v1\n"

const canonicalTime = "2006-01-02T15:04:05.000000000Z07:00"

// Canonical returns the canonical form of the order, version 1, as the
// package documentation specifies: a JSON object with every field in a fixed
// order, lists in the order given, times in UTC with nanoseconds.
func (o *Order) Canonical() []byte {
	var c canon
	c.raw(`{"id":`)
	c.str(o.ID)
	c.raw(`,"subject":`)
	c.str(o.Subject)
	c.raw(`,"requester":`)
	c.str(o.Requester)
	c.raw(`,"legal_basis":`)
	c.str(o.LegalBasis)
	c.raw(`,"legitimate_interest_ref":`)
	c.str(o.LegitimateInterestRef)
	c.raw(`,"purpose":`)
	c.str(o.Purpose)
	c.raw(`,"suspicion":{"facts":`)
	c.str(o.Suspicion.Facts)
	c.raw(`,"first_noticed":`)
	c.str(o.Suspicion.FirstNoticed)
	c.raw(`,"evidence_refs":`)
	c.list(o.Suspicion.EvidenceRefs)
	c.raw(`,"policy_clause":`)
	c.str(o.Suspicion.PolicyClause)
	c.raw(`},"prior_warning":{"ref":`)
	c.str(o.PriorWarning.Ref)
	c.raw(`,"why_none":`)
	c.str(o.PriorWarning.WhyNone)
	c.raw(`},"less_intrusive":{"tried":`)
	c.str(o.LessIntrusive.Tried)
	c.raw(`,"why_insufficient":`)
	c.str(o.LessIntrusive.WhyInsufficient)
	c.raw(`},"why_content":`)
	c.str(o.WhyContent)
	c.raw(`,"window":{"from":`)
	c.str(o.Window.From)
	c.raw(`,"to":`)
	c.str(o.Window.To)
	c.raw(`},"channels":`)
	c.list(o.Channels)
	c.raw(`,"excluded_channels":`)
	c.list(o.ExcludedChannels)
	c.raw(`,"expires_at":`)
	c.time(o.ExpiresAt)
	c.raw(`,"dpia_ref":`)
	c.str(o.DPIARef)
	c.raw(`,"works_council_ref":`)
	c.str(o.WorksCouncilRef)
	c.raw(`,"ict_policy_ref":`)
	c.str(o.ICTPolicyRef)
	c.raw(`,"notice":{"mode":`)
	c.str(string(o.Notice.Mode))
	c.raw(`,"deferral_ground":`)
	c.str(o.Notice.DeferralGround)
	c.raw(`,"defer_until":`)
	c.str(o.Notice.DeferUntil)
	c.raw(`},"dpo_advice_ref":`)
	c.str(o.DPOAdviceRef)
	c.raw(`,"new_facts":`)
	c.str(o.NewFacts)
	c.raw(`,"filed_at":`)
	c.time(o.FiledAt)
	c.raw(`}`)
	return c.b
}

// Hash is SHA-256 over HashDomain and the canonical form. Approvals and the
// requester's signature sign it; any change to any field changes it.
func (o *Order) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte(HashDomain))
	h.Write(o.Canonical())
	var out [32]byte
	h.Sum(out[:0])
	return out
}

type canon struct{ b []byte }

func (c *canon) raw(s string) { c.b = append(c.b, s...) }

func (c *canon) str(s string) {
	const hex = "0123456789abcdef"
	c.b = append(c.b, '"')
	for _, r := range s { // invalid UTF-8 comes out as U+FFFD
		switch {
		case r == '"' || r == '\\':
			c.b = append(c.b, '\\', byte(r))
		case r < 0x20:
			c.b = append(c.b, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		default:
			c.b = utf8.AppendRune(c.b, r)
		}
	}
	c.b = append(c.b, '"')
}

func (c *canon) list(l []string) {
	c.b = append(c.b, '[')
	for i, s := range l {
		if i > 0 {
			c.b = append(c.b, ',')
		}
		c.str(s)
	}
	c.b = append(c.b, ']')
}

func (c *canon) time(t time.Time) {
	c.b = append(c.b, '"')
	c.b = t.UTC().AppendFormat(c.b, canonicalTime)
	c.b = append(c.b, '"')
}
