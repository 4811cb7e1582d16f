#pragma once
// The public API for writing your own limited actors on Levee. Include this one header.
//
//   levee::limits_config       limits of a node, from INI ([limits], [limits.<kind>])
//   levee::runtime             one node's limits at run time: budget, stats per kind
//   levee::limited<Base>       a CAF actor whose mailbox is gated (limited_actor for short)
//   levee::spawn_limited<T>    spawn one with the limits of an actor kind
//   levee::gate_of(handle)     live limit changes and observation
//   levee::rejection           the typed answer to a limit hit; rejection_from(caf::error)
//   levee::rejection_notice    what a fire-and-forget sender gets back (call take())
//   levee::to_error(rejection) the caf::error a handler returns to refuse with a rejection
//   levee::register_payload_type<T>()  make the size caps count your own message types
//   levee::wire_request_target the signature of an actor served over the wire (serve.hpp)
//
// Serving actors over the wire: levee/serve.hpp. Running a node's roles (and your own) from
// your own main(): levee/node.hpp. Custom event sources: levee/source.hpp. Talking to a
// node without an actor system: levee/client.hpp. The guide: levee/EXTENDING.md.
//
// Headers live in their layer's folder; this file is the stable entry point.

#include "actors/atoms.hpp"
#include "actors/caf_error.hpp"
#include "actors/gate.hpp"
#include "actors/limited_actor.hpp"
#include "actors/message_size.hpp"
#include "actors/rejection_notice.hpp"
#include "actors/runtime.hpp"
#include "actors/wire_target.hpp"
#include "limits/config_file.hpp"
#include "limits/defaults.hpp"
#include "limits/error_code.hpp"
#include "limits/limits_config.hpp"
#include "limits/rejection.hpp"
#include "limits/status.hpp"
