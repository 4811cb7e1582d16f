#pragma once
// The storage encoding of an event: the protobuf message levee.events.Event of
// event.proto, written and read by hand (EVENTS.md "Storage encoding").

#include <string>
#include <string_view>
#include <vector>

#include "events/event.hpp"
#include "limits/status.hpp"
#include "persistence/batch.hpp"

namespace levee::events {

/// Appends the encoding of `e` to `out`. Byte for byte what protobuf's own serializer
/// writes for the same Event.
void encode(const event& e, std::string& out);

/// Decodes `bytes` into `out`, reusing the strings and field slots `out` already holds, so
/// a scan that decodes into one event allocates only when an event is bigger than the ones
/// before. Unknown fields are skipped (newer writers). Corrupt input is `storage_error`
/// saying what is wrong at which byte, and leaves `out` valid but unspecified.
status decode(std::string_view bytes, event& out);

/// decode() of only the fields named in `names` (and the timestamp): a field with another
/// name is skipped once its name is read, its value neither decoded nor copied. What a
/// scan uses when its filter reads a few fields of a wide event. The encoding outside
/// the kept fields is checked only as far as finding each field's name and length, and
/// not at all past the last of them: once every name in `names` is read (up to 64 names),
/// decoding stops (names are unique in an event and every encoder writes the timestamp
/// before the fields, EVENTS.md).
status decode_only(std::string_view bytes, event& out, const std::vector<std::string>& names);

/// The event as a segment-log record: no key, value = encode(e), timestamp_ms = e's.
persistence::record to_record(const event& e);

/// Decodes `r.value` into `out`. The record's timestamp is the one the log indexes by;
/// a value whose own timestamp differs is refused as corrupt.
status from_record(const persistence::record& r, event& out);

} // namespace levee::events
