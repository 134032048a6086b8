// Package gateway is sealgate's capture front end: it accepts Mattermost post
// events, seals them and writes them to the retention store.
//
// The path of one ingest request:
//
//  1. [Server] authenticates the bearer token (constant-time compare) and
//     bounds the body (limits.max_body_bytes, then limits.max_post_bytes per
//     event).
//  2. [ParseBatch] turns the JSON batch into events. Anything malformed —
//     bad JSON, an unknown kind, a missing id, a missing time — refuses the
//     whole batch with a 4xx that names the event index and the field, never
//     its content. Nothing is stored.
//  3. [Pipeline.Ingest] computes each event's ref (a keyed PRF of post id,
//     kind and version), drops repeats within the batch, seals every event
//     under its author's day key and writes records, new key records and new
//     epoch records in one durable store transaction.
//  4. Only after the commit does the server answer 200. A re-sent batch
//     stores nothing new: records are unique by ref.
//
// What is sealed is the event's JSON exactly as received; what the store
// sees is only tags, hour buckets, refs and ciphertext. Logs and metrics
// carry counts and sizes, never ids or content.
package gateway
