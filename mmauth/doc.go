// Package mmauth authenticates callers of the order API with their own
// Mattermost credentials: a session token or a personal access token.
//
// [TokenFromRequest] takes the token from the request the way Mattermost
// does — an "Authorization: Bearer <token>" (or "Token <token>") header,
// else the MMAUTHTOKEN cookie — and [Authenticator.User] asks the Mattermost
// server who it belongs to, with GET /api/v4/users/me sent as the Mattermost
// web client sends it. Mattermost is the only judge: a token it refuses (401
// or 403), or one whose user has been deactivated (delete_at set), is
// [ErrUnauthorized]. Anything that keeps it from answering — a network
// error, a timeout, a 5xx, a redirect, an answer that is too large or does
// not decode as a Mattermost user — is [ErrUnavailable], which callers must
// answer with 503 and must never treat as authorised.
//
// Tokens that are not 26 lowercase letters and digits (the form of every
// Mattermost session and access token) are refused before any network call,
// so junk never reaches Mattermost.
//
// Answers are cached so that a burst of order API calls costs one request to
// Mattermost: accepted tokens for the configured TTL (30 seconds by
// default), refused tokens for at most five seconds, to blunt floods of
// guessed tokens; [ErrUnavailable] is never cached. Concurrent lookups of the
// same uncached token share one request. The cache holds at most 10,000
// entries; when full, expired entries go first, then the oldest.
//
// Tokens are never kept in clear: the cache and the table of lookups in
// flight are keyed by the SHA-256 of the token, and a token lives in memory
// only for the duration of the request that checks it. Tokens never appear
// in errors, and this package logs nothing.
package mmauth
