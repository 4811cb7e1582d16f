#pragma once
// Every event source: the common poll interface (source.hpp) and the four kinds.

#include "events/file_tail.hpp"
#include "events/proc_metrics.hpp"
#include "events/source.hpp"
#include "events/synthetic.hpp"
#include "events/unix_socket_source.hpp"
