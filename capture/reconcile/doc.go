// Package reconcile finds what the capture paths missed and ingests it:
// `sealgate reconcile --since T` and serve's periodic job read Mattermost's
// REST API with a system administrator's token, rebuild the events the
// plugin would have sent for every post changed since T, and hand those
// the store does not hold yet to the same parser and sealing pipeline as
// the plugin's (gateway.ParseBatch, gateway.Pipeline.Ingest).
//
// # What is read (Mattermost 9.11, model.Client4)
//
//   - GET /api/v4/channels?page=N&per_page=200&include_deleted=true: every
//     public and private channel of every team, archived ones included
//     (system admin only). Teams are not listed separately: this list
//     already spans all teams and carries each channel's team_id.
//   - Direct and group messages are not in that list (the store query
//     keeps only types O and P), and 9.11 has no admin endpoint that lists
//     them. They are found through their members: GET /api/v4/users?page=N
//     &per_page=200 (active and deactivated users alike), then for each user
//     GET /api/v4/users/{id}/channels?include_deleted=true, which streams all
//     of that user's channels, D and G included. That is one request per
//     user per run; Reconciler.SkipDirect turns it off.
//   - GET /api/v4/channels/{id}/posts?since=ms&include_deleted=true for each
//     channel: every row whose update_at is after since, deleted posts and
//     the superseded edit versions included (blanked, see below). The
//     include_deleted flag is ignored in since mode (the recorded responses
//     with and without it are the same set); it is sent anyway so that a
//     token without system admin rights fails with 403 instead of quietly
//     missing channels. The server caps this query at 1000 rows with no
//     order and no paging; when a channel answers with 1000 rows the
//     reconciler also reads page mode, GET /api/v4/channels/{id}/posts?page=N
//     &per_page=200&include_deleted=true (newest first, deleted posts and
//     edit versions included), until it reaches posts created before since.
//   - GET /api/v4/posts/{id}/edit_history, only for a live post whose
//     missing events need the text of an earlier version (the rows of the
//     listing are blanked). It answers only to the post's author (the
//     server checks session user == post user, even for system admins) and
//     not at all for a deleted post; a refusal is counted as
//     history_denied and the events that needed that text are counted as
//     unrecovered instead of being ingested.
//
// # The events rebuilt
//
// Each event is the plugin's JSON ({"kind", "post", "old_post",
// "deleted_at"} with model.Post as the server's public module marshals it)
// plus "team_id", "channel_type" and "source":"reconcile". Its version is
// computed by gateway.ParseBatch as for any other event, and the post fields
// are set so that the ref equals the one of the plugin's own event for the
// same change; the store then de-duplicates across paths:
//
//   - posted: the post as it was created. update_at is set to create_at
//     (the plugin's hook sees a fresh post, whose update_at is create_at;
//     a reply, a reaction or an edit moves update_at later), edit_at and
//     delete_at to 0. For an edited post the text is the original version
//     (the edit history entry with edit_at 0).
//   - updated, once per superseded version A (sorted by the time it was
//     superseded): post is the next version (the following history entry,
//     or the live post for the last edit) with the live id, update_at =
//     A.delete_at (the server stamps the archived copy's delete_at and the
//     new version's update_at with the same millisecond), and old_post is A
//     itself, whose id is the archived copy's, as in MessageHasBeenUpdated.
//     When A's text was not available old_post has an empty message and the
//     event carries "old_post_blanked": true.
//   - deleted: the post as listed (message blanked by the API, delete_at
//     and props.deleteBy set) with deleted_at = delete_at. This covers the
//     replies of a deleted thread root, which Mattermost deletes with the
//     root without any REST response, websocket event or plugin hook.
//
// Only events inside the window (event time after since) are considered,
// and of those only the ones Seen says are not stored. A post has one
// tombstone (gateway.TombstoneVersion), whatever time each capture path
// stamped on the deletion, so a deletion the plugin saw is seen here too.
//
// # Known gaps
//
//   - Deleted text is gone from the API: GET ?since=, page mode and
//     GET /posts/{id}?include_deleted=true (even as admin) return deleted
//     posts and superseded versions with message "". A post created and
//     deleted while every capture path was down yields only its tombstone
//     and counts as deleted_unrecovered.
//   - Earlier versions of other users' posts: edit_history is author-only,
//     so as admin only the last edit of a live post (whose new text is the
//     live post) is fully rebuilt; the original text and intermediate
//     versions of an edited post are counted as posted_unrecovered and
//     edits_unrecovered.
//   - Channels with more than 1000 changed rows in the window: page mode
//     recovers the posts created in the window, but an edit or deletion of
//     a post created before since can be among the rows the capped since
//     query left out. Shorter windows avoid it.
//   - Files: "file" events (metadata and SHA-256 of the content) are not
//     rebuilt; a post's file_ids and metadata.files are inside its sealed
//     posted event.
//   - Posts removed for good (data retention, permanent API deletion) and
//     ephemeral posts are not in the API at all.
package reconcile
