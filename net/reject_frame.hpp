#pragma once
// A `rejection` on the wire: the Reject message, and back.

#include "limits/rejection.hpp"
#include "net/levee.pb.h"

namespace levee::net {

/// The Reject message for `r`; `closing` tells the peer the connection closes after it.
wire::Reject to_wire(const rejection& r, bool closing = false);

/// The rejection a Reject message carries. An unknown code (from a newer peer) becomes
/// bad_request with the number kept in the detail.
rejection from_wire(const wire::Reject& r);

} // namespace levee::net
