#pragma once
// Your own event source for a satellite: where events come from besides the four built-in
// types (file_tail, unix_socket, proc, synthetic). Register the type at start-up, before
// the satellite reads its config; a `[source.<name>] type = <your type>` section then
// makes one, and the satellite polls it like the others: its events are stored, counted,
// kept within retention and answered to queries.
//
//   class counter : public levee::event_source {
//     size_t poll(std::vector<levee::event>& out, size_t max_events, int64_t now_ms) override;
//     std::string_view kind() const noexcept override { return "counter"; }
//   };
//   levee::register_source_type({"counter", {"step"}, make_counter});
//
// What a source promises (events/source.hpp):
//   - poll() never blocks and appends at most `max_events` events (the satellite's
//     satellite.poll_max_events); what it could not return yet it keeps, within bounds of
//     its own, for the next poll. A source that can fall behind says how in its stats.
//   - It runs on one actor (kind "source", [limits.source]), one poll at a time, every
//     `poll_interval_ms` of its section (or satellite.poll_interval_ms). The satellite
//     polls again only after the store took the last batch: a store that refuses (its
//     mailbox or the node's memory budget full) slows the polls, so a source is never
//     asked for more than the store can take. Count what you refuse or drop in
//     stats_ (record_bad_line, record_error): nothing is lost silently.
//   - Errors are recorded, not thrown: record_error(status) keeps the newest for
//     `levee stats` and counts it.
//   - An event is a timestamp (epoch ms: `now_ms` for one without a time of its own) and
//     flat, typed fields
//     (events/event.hpp). A source that reads JSON lines may call take_line(), which parses,
//     checks the [events] limits (settings.json) and counts bad lines by kind.
//
// Keys: the section may set `type`, `poll_interval_ms` and the keys you list; any other key
// is an error naming it. `make` builds the source from the section's values (as text);
// `check`, if given, validates them for `levee node --check` without making one. Say in
// errors which key is wrong and what it takes: "source.<name>.step = x: a whole number".
//
// examples/custom_source.cpp is a whole program; include/levee/EXTENDING.md the guide.

#include "events/event.hpp"
#include "events/source.hpp"
#include "events/source_registry.hpp"

namespace levee {

using event = events::event;
using event_field = events::field;
using event_value = events::value;
using event_source = events::source;
using event_source_stats = events::source_stats;
using source_settings = events::source_settings;
using source_type = events::source_type;
using events::register_source_type;

} // namespace levee
