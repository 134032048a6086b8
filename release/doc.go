// Package release is the gateway's side of an investigation order: the only
// code path by which sealed content is ever read.
//
// A [Desk] takes an order from filing to release and back to nothing:
//
//  1. File. A requester (configured, with their own signing key) sends an
//     order stamped and signed by their key. The desk validates it against
//     the rules (order.Validate), checks the signature, makes a fresh
//     post-quantum HPKE order key, signs the order key's binding to the order
//     with the gateway key, and files the order in Redis (one Lua script; at
//     most one open order per subject unless it cites new facts). The order
//     key's private half stays in memory, and in Redis only wrapped under the
//     gateway's key.
//  2. Review and escrow. A slot holder reads the order and fetches the
//     subject's key records for the window's days (still sealed: only their
//     slot key opens their shares, on their own machine).
//  3. Approve. The approver's tool (MakeApproval) verifies the requester's
//     and the gateway's signatures, decrypts only its slot's shares for the
//     subject's days, re-encrypts them to the order key and signs the whole
//     (crypto.SealApproval). The desk checks the approval by opening it
//     (signature, order binding, every share decrypts and belongs to the
//     subject and a day of the window) before Redis stores it; the Redis
//     script refuses the subject, the requester, a slot twice, a person twice
//     and a role twice, and activates the order atomically at the quorum.
//  4. Activate. The approval that completes the quorum makes the desk open
//     every stored approval, combine the shares per key record and recover
//     the subject's day keys, each checked by authenticated decryption. The
//     day keys live in memory until the order expires or is revoked; the
//     order key is wiped at once (it has done its job).
//  5. Read. Only the requester reads, page by page or as a watermarked
//     export. Records are found by the subject's day tags and opened with
//     the recovered keys; an event is shown only if its authenticated time
//     is inside the window and its channel is in scope and not excluded.
//     Co-participants appear as pseudonyms.
//  6. End. Revocation, expiry or closure wipes every day key; reads are
//     refused from then on. Redis forgets the order after a grace period.
//
// Every call is authorised against the configured roles and appended to the
// audit log before it acts; a refused call is audited too (audit.ActionRefused
// with a reason code), and an action whose audit entry cannot be written does
// not happen.
//
// A gateway restart costs nothing: the order key is kept in Redis wrapped
// under the gateway's own key (useless to Redis alone), so a pending order
// can still be approved, and an active order's day keys are recovered again
// from its stored approvals on the requester's next read (audited as an
// activation with object "restart"). Redis losing everything is the safe
// failure: nothing can be unsealed without filing the order again.
package release
