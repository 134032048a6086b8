// Package smtpintake receives Mattermost's Global Relay compliance export
// over SMTP and turns each e-mail into ingest events, the same JSON the
// sealgate plugin sends, for Enterprise servers whose administrators point
// the export (customer type CUSTOM) at sealgate instead of Global Relay.
//
// # The SMTP side
//
// [Server] is a github.com/emersion/go-smtp server. Mattermost's exporter
// always connects with STARTTLS and verifies the certificate, authenticates
// with AUTH PLAIN when offered (else LOGIN), sends one e-mail per channel
// batch to the configured address and reconnects after every 400 e-mails.
// The server offers STARTTLS with the configured certificate, advertises
// and accepts AUTH (PLAIN and LOGIN, github.com/emersion/go-sasl) only
// after TLS, compares the configured credentials in constant time, accepts
// only the configured recipient, bounds the message size, and answers 250
// only after Deliver has stored the events; see [Server] for the refusal
// codes. A parse refusal is permanent (554): Mattermost's export job then
// fails loudly instead of losing the batch. A storage failure is temporary
// (451): Mattermost sends the batch again, and the events' ids are
// deterministic, so the second delivery stores nothing twice.
//
// # The e-mail
//
// [ParseEML] reads the message the exporter builds with gopkg.in/mail.v2:
// headers (X-GlobalRelay-MsgType: Mattermost, X-Mattermost-ChannelID,
// -ChannelName, -ChannelType, Subject "Mattermost Compliance Export: …"),
// multipart/mixed holding a multipart/alternative with a text/plain
// (html2text) and a text/html body, both quoted-printable UTF-8, then one
// attachment per exported file. The HTML body is the source: a summary, a
// participants table and one li.message per line, each field in an element
// whose class names it. The text body is read only when there is no HTML
// body (html2text loses line breaks inside messages). Both the 9.11 layout
// (the fixture ../shared/fixtures/mattermost-9.11/globalrelay) and the
// later source-available one, which adds post_id and userid fields and
// update_type/update_time, are read.
//
// # Mapping to the plugin's events
//
// Each message line becomes {"kind":"posted","post":<model.Post JSON>,
// "source":"globalrelay"}; each file line becomes {"kind":"file","file":
// <the plugin's file event: FileInfo names + "sha256">, "source":"globalrelay"}. The export
// lacks much of what the plugin has; this is what is mapped:
//
//   - post.channel_id: the X-Mattermost-ChannelID header (required; the
//     channel's name is not put into events, as the plugin's posts do not
//     carry it either).
//   - post.create_at, update_at: sent_time, which the export prints in whole
//     seconds (milliseconds are lost: ×1000).
//   - post.message: the message field, unescaped, byte for byte.
//   - post.props.override_username: the postusername field (a webhook's or
//     integration's override name, without "@"); props.previewed_post: the
//     previews_post field.
//   - post.id: the post_id field when the exporter prints one. The 9.11
//     exporter does not: the id is then derived, 26 characters in
//     Mattermost's alphabet from SHA-256 over the channel id, the sent
//     second, the sender's e-mail address (username if none), the override
//     name, the text and the line's ordinal among identical lines. A
//     re-sent batch yields the same ids (idempotent ingest). It is not the
//     real post id, and the times are whole seconds, so events from this
//     path never deduplicate against the plugin's or the proxy's: use the
//     SMTP intake where the plugin cannot be installed, not beside it. An
//     edit that Mattermost exports in a later batch (9.11 selects posts by
//     update time) arrives as another post with the new text.
//   - post.user_id: the userid field of the message or of the sender's
//     participants row when printed. 9.11 prints none: then
//     [Server.ResolveUser] (or [Export.ResolveUsers]) maps the sender —
//     e-mail, username, type — to the Mattermost user id, e.g. through the
//     Mattermost API by e-mail. Without a resolver, or when it answers "",
//     the id is [DerivedUserID] of the e-mail address. Orders name real
//     Mattermost user ids, so a deployment should configure a resolver;
//     records sealed under a derived id can only be found by an order on
//     that derived id, which a requester can compute from the address.
//   - the file lines Mattermost adds ("Uploaded file NAME", "Deleted file
//     NAME", "… (id 'ID') was removed because it was too large to send.")
//     become file events, not posts: file.id is the id the line prints, or
//     derived like post ids; file.user_id is the sender's; file.name,
//     extension, size, mime_type and sha256 come from the attachment of
//     that name (content is hashed, not kept: the plugin path carries no
//     content either); create_at is the line's time (the upload time).
//     file.post_id is the post_id field, or in 9.11 the next post line of
//     the same sender at or after the upload time (Mattermost sorts the
//     upload line just before its post); that post's file_ids lists the
//     file. A "Deleted file" line is a file event with delete_at set to its
//     time and is linked to no post (Global Relay keeps deleted files but
//     drops deleted posts).
//   - update_type (later exporters only): "Deleted" gives kind "deleted"
//     (delete_at = deleted_at = update_time), "EditedNewMsg" kind "updated"
//     (edit_at = update_at = update_time), "UpdatedNoMsgChange" kind
//     "updated", anything else kind "posted".
//   - not in the export, left at Mattermost's zero values: root_id (threads),
//     type, hashtags, metadata, edit history (9.11); deleted posts are not
//     exported at all.
//
// [Export.Warnings] lists content-free inconsistencies that did not stop the
// parse (a participant's message count that does not match its lines, an
// attachment named by no file line — that attachment is not captured,
// having no sender).
//
// Errors name the problem — the part, message or participant number and the
// field — and never quote content; errors of the MIME and HTML libraries
// (which may quote input) are kept for errors.Is/As but not put in the
// message.
package smtpintake
