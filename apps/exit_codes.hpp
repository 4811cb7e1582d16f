#pragma once
// The exit codes of `levee`, one table for every subcommand (apps/README.md "Exit codes",
// `levee --help`). 2 covers both a usage error and a target that cannot be reached because
// `levee load` (k6-like codes 3, 4, 99 for its own outcomes), `levee query` and the broker
// commands already said so; a separate "unreachable" code would have changed what load's 3
// means to scripts that read it.
//
// `levee query` has two of its own (issue 18). A partial answer (server.max_result_bytes
// cut it) is 5 with or without --strict: its rows are a prefix that looks whole to a
// script, so success would be a lie (rsync's "partial transfer" code is the precedent).
// Satellites a fan-out skipped (not healthy) leave a whole answer from the others: a
// warning on stderr and 0, unless --strict asks for 6. Both at once: 5.

namespace levee::apps::exit_code {

constexpr int ok = 0;           // done (a node: stopped by SIGINT/SIGTERM)
constexpr int refused = 1;      // refused (the Reject printed) or failed at run time
constexpr int usage = 2;        // usage error, bad config, or a target that cannot be reached
constexpr int unreachable = 2;  // the same code as usage: the message says which
constexpr int load_invalid = 3;       // levee load: the tool fell behind its own schedule
constexpr int load_mismatch = 4;      // levee load: the target's counts differ from the tool's
constexpr int load_threshold = 99;    // levee load: a threshold failed
constexpr int query_partial = 5;      // levee query: server.max_result_bytes cut the answer
constexpr int query_skipped = 6;      // levee query --strict: a fan-out skipped satellites

/// The table as `levee --help` prints it.
constexpr const char* table =
  "exit codes (every subcommand):\n"
  "  0   done; a node stopped by SIGINT/SIGTERM\n"
  "  1   refused (the Reject is printed, with what to do) or failed at run time; a node\n"
  "      whose satellite registration was refused for good (wrong net.token)\n"
  "  2   usage error, bad config, or the server/broker cannot be reached (the message says which)\n"
  "  3   levee load: an invalid run (the tool fell behind its schedule)\n"
  "  4   levee load: the target's counts differ from the tool's\n"
  "  5   levee query: a partial result (server.max_result_bytes cut it; the rows printed\n"
  "      are the first ones, the last line says so)\n"
  "  6   levee query --strict: the query skipped matching satellites that were not healthy\n"
  "  99  levee load: a threshold failed\n";

} // namespace levee::apps::exit_code
