// Package crypto seals captured chat events so that nobody can read them until
// a quorum of approvers releases the key of one employee-day.
//
// # The model
//
// For every (employee, day) that has activity, the gateway draws a fresh random
// seed and derives a [DayKey] from it: a Tink AES-256-GCM keyset. Every event of
// that employee on that day (post, edit, delete tombstone, file metadata) is
// sealed under the day key into a record; a shared file's content, if it is
// forwarded, under the day key's streaming sibling (see the formats below).
// The day key lives in gateway memory only while its day is current plus a
// grace period; after that the [Sealer] forgets it and the only way back to
// it is through escrow.
//
// Escrow is a fan-out: the seed is split M-of-N with Shamir secret sharing
// (circl's secretsharing over the ristretto255 scalar field) and share i is
// encrypted to approver slot i. Slots are roles (legal, hr, works council, …),
// not people. Encrypting to a slot is abstracted by two small interfaces in the
// style of filippo.io/age: a [Recipient] (public side, used by the gateway) and
// an [Identity] (private side, used by an approver). The built-in
// implementation is HPKE from Go's crypto/hpke with the post-quantum hybrid KEM
// ML-KEM-768 + X25519 by default (X25519 optional); a KMS- or HSM-backed slot
// implements the same two interfaces without touching the sealing code.
//
// The KEM is amortised. Once per gateway process and day the [Sealer] opens an
// epoch: one HPKE encapsulation per slot, whose encapsulated keys are written
// once to an [EpochRecord]. The share of every employee-day in that epoch is
// sealed with AES-256-GCM under a key exported from the slot's HPKE context
// with the key record's id as exporter context. A key record therefore
// carries N short sealed shares, not N KEM ciphertexts, and stays small.
//
// Records and key records are found in the store by a [Tag], a keyed PRF of
// (employee, day) under a gateway key, so the store alone cannot link two days
// of the same person. Records are de-duplicated by a [Ref], a keyed PRF of
// (post id, event kind, event version).
//
// # Authenticity
//
// The gateway signs every key record and every epoch record with its Tink
// Ed25519 key. A record is authenticated by the AEAD under a day key whose key
// record carries a valid gateway signature: someone who holds only public keys
// can create a day key and escrow it, but cannot sign its key record, so the
// forged records are refused at unseal time.
//
// # Formats (version 1)
//
// All integers are big-endian. lp(x) is a 2-byte length followed by x. day is
// the UTC date "YYYY-MM-DD".
//
// Record:
//
//	0x01 | key record id (16) | Tink AES-GCM ciphertext (nonce 12 | ct | tag 16)
//	AAD       = "sealgate/record/v1" | lp(employee) | lp(day) | key record id | ref (16)
//	plaintext = kind (1) | event version (8) | timestamp ms (8) | lp(post id) | body
//
// The ref in the AAD is the keyed PRF of (post id, kind, event version), so a
// record moved to the row of another post, version or kind fails to open, and
// the post id, kind, version and timestamp inside the plaintext are
// authenticated; [OpenRecord] checks the timestamp against the day. None of
// them is visible in the store.
//
// Key record:
//
//	0x01 | key record id (16) | epoch id (16) | M (1) | N (1)
//	     | check (28) | N × ( slot (1) | nonce (12) | sealed share (32+16) )
//	     | signature (64)
//	check      = Tink AEAD(day key, "", AAD = "sealgate/keycheck/v1" | lp(employee) | lp(day) | key record id)
//	share key  = HPKE-Export(epoch context of slot, "sealgate/share/v1" | key record id, 32)
//	share AAD  = "sealgate/share/v1" | lp(employee) | lp(day) | header (first 35 bytes) | slot
//	signature  = Ed25519(gateway, "sealgate/keyrecord/v1" | tag | everything before the signature)
//	day key    = HKDF-SHA256(seed, info = "sealgate/daykey/v1" | lp(employee) | lp(day) | key record id)
//
// Epoch record:
//
//	0x01 | epoch id (16) | lp(day) | N (1) | N × ( slot (1) | lp(slot key id) | lp(enc) ) | signature (64)
//	HPKE info = "sealgate/epoch/v1" | epoch id | lp(day) | slot | lp(slot key id)
//	signature = Ed25519(gateway, "sealgate/epoch/v1" | everything before the signature)
//
// Sealed file (the content of a shared file, when the capture path forwards
// it): a Tink streaming AEAD under a sibling key of the day key, so that a
// file of any size is sealed and opened as a stream, one authenticated
// segment at a time, and one release opens a day's records and files alike.
//
//	0x01 | key record id (16) | Tink AES-256-GCM-HKDF streaming ciphertext (1 MiB segments)
//	AAD       = "sealgate/file/v1" | lp(employee) | lp(day) | key record id | ref (16)
//	file key  = HKDF-SHA256(seed, info = "sealgate/filekey/v1" | lp(employee) | lp(day) | key record id)
//	ref       = the ref of the file's metadata record: PRF(file id, file, create_at)
//
// Test vectors for each format live in testdata/ as good_* and fail_* files.
package crypto
