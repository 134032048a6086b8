// Package redact keeps the only clear-text metadata sealgate is allowed to
// keep by default: aggregates of chat activity that describe groups of at
// least k people, never a person.
//
// # What is counted
//
// The ingest pipeline hands every newly stored event to Aggregator.Observe
// as an Event: its time, its team, its channel type (public, private,
// direct, group), what happened (a post, an edit, a delete, a file, a
// reaction), its size and the id of the user who acted. The aggregator adds
// it to the cell of its hour, team and channel type: messages, edits,
// deletes, bytes, files, reactions and distinct active users.
//
// To count distinct users the aggregator must recognise a user it has seen,
// but it never holds the user id: it keeps a 64-bit keyed hash of it
// (hash/maphash under a random seed made at start-up and never written
// anywhere), in a set per open cell, in memory only. A collision of two
// users' hashes makes a cell look smaller, never larger, so it can only
// cause more suppression. Observe takes one of 32 locks, chosen by the
// user's hash, so the sets of different locks never share a user; it does
// not allocate once the cell and the user are known.
//
// # When a day is released
//
// Nothing is written while a UTC day is open. Once the day has ended and a
// lateness allowance has passed (10 minutes by default), Close or Persist
// releases it: the day's cells are laid out as one table — hours and the
// whole day, by team, by channel type, with every margin ("all teams",
// "all types", the day) — and protected as described below. Then the
// distinct-user sets are dropped and only counts leave the aggregator, as
// Buckets, for a Sink to store. Events of a day that was already released
// are dropped and counted in Stats.Late.
//
// Why wait for the day, not just the hour? Distinct users do not add up: a
// person active at 9:00 and at 10:00 is one user of the day, not two, so a
// day's or a margin's user count cannot be computed from stored hourly
// counts. The alternatives are worse. Taking the largest part as a lower
// bound is safe but suppresses most daily cells that hourly thresholds
// already hid; storing the hashed sets, or sketches built from them such as
// HyperLogLog, would put per-person data in the store, and a sketch's
// estimate can err on the unsafe side. Keeping the sets in memory until the
// day is released gives exact distinct counts for every cell and margin,
// and the whole day's table is decided at once, so hourly and daily cells
// are protected together.
//
// # How a day is protected
//
// A team is named only if at least k distinct users were active in it that
// day; smaller teams are merged into one "other teams" row, which is itself
// subject to the threshold. Then:
//
//   - every cell with fewer than k distinct users is suppressed (k is 5 by
//     default and can only be raised);
//   - a line of the table (the cells of one group and their margin: the
//     teams of one hour and type, the hours of one team and type, the types
//     of one hour and team) with exactly one suppressed cell would give it
//     away as the margin minus the others, so the cheapest other cell of
//     that line is suppressed too;
//   - finally an audit treats the suppressed cells as unknowns of the linear
//     system formed by all lines and finds, by Gaussian elimination, every
//     suppressed cell whose value follows from the shown ones by any
//     combination of lines — a pattern no single line reveals, like a bridge
//     between two rings of suppressed cells. The cheapest nearby shown cell
//     is suppressed for each, and the process repeats until nothing is
//     exposed. The elimination is exact arithmetic modulo the prime 2^61−1;
//     it could only miss a disclosure if that prime divided a minor of the
//     system's 0/±1 matrix, and the tests verify every suppressed cell of
//     their releases with an exact rational certificate instead.
//
// A suppressed cell is stored as a Bucket with Suppressed set and no
// figures. So the store holds counts of groups of at least k people and
// markers; it cannot answer "when did employee X post?", and no figure it
// holds about fewer than k people can be recomputed from the others.
//
// # Publication
//
// Publish turns stored buckets into a Table for a time range, by hour or by
// day. It always works on whole days' releases, so every publication with
// the same k is a view of one protected table, and combining publications
// (an hourly and a daily one, or overlapping ranges) reveals nothing more.
// When k is higher than it was at release, Publish raises the threshold
// step by step, folding teams it can no longer prove to have k users into
// "other teams" and suppressing further; a publication at a larger k can be
// computed from one at a smaller k, never the reverse. When a day has two
// releases (see below), Publish adds them up; a merged cell is shown only if
// all its parts were, and its user count is then a lower bound (the largest
// part), marked by Row.UsersAtLeast.
//
// # Restarts
//
// The sets live in memory, so a restart loses the open days. Flush (or
// FlushTo) on shutdown releases them early, marked Partial; the new process
// counts from its Config.Start, and the day it started in gets a second,
// Partial release with its own Release id. The new process still counts
// events of that day that happened before it started (a capture path's
// buffer, replayed): the pipeline observes only newly stored events, so
// none of them was counted before. Events of days released before Start
// are not counted: they are lost to the statistics (the sealed records
// themselves are complete regardless).
//
// # Limits
//
// The audit excludes exact recomputation of a suppressed cell. It does not
// compute protection intervals: from a margin and the shown cells an
// observer learns that the suppressed cells of a line together hold the
// remainder, which bounds each of them and can be tight when the remainder
// is small. Nor does the threshold blur a large cell dominated by one
// person. Package redact/dp adds calibrated Laplace noise under a privacy
// budget for publications that need that.
package redact
