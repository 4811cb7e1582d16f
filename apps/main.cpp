// levee: the one binary of Levee. `levee <subcommand> [options]`; `levee <subcommand>
// --help` describes each.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <malloc.h>

#include "apps/exit_codes.hpp"
#include "apps/subcommands.hpp"
#include "limits/printable.hpp"

namespace {

constexpr const char* usage =
  "usage: levee <subcommand> [options]\n"
  "\n"
  "subcommands:\n"
  "  local       a server, two satellites and a broker with sample data in one process (start here)\n"
  "  node        run the roles a config file names: levee node --config configs/server.ini\n"
  "  query       run a query on satellites: levee query --satellite a 'count by level'\n"
  "  satellites  list the satellites a server knows and their state\n"
  "  stats       a server's limits, rejections and queries\n"
  "  stream      create, delete, list and show a broker's streams\n"
  "  cluster     the brokers' metadata cluster: leader, brokers, partitions\n"
  "  pub         publish messages to a subject: levee pub orders.eu 'hello'\n"
  "  sub         read a stream from any position: levee sub orders --from earliest\n"
  "  demo        flood a slow limited actor past its bounds and show every rejection\n"
  "  load        offer a node a load and account for every send: levee load --target actor stats\n"
  "\n"
  "`levee <subcommand> --help` describes the options of each.\n"
  "\n"
  "environment: LEVEE_SERVER (host:port) is the default of --server, LEVEE_BROKER of --broker;\n"
  "the flag wins.\n"
  "\n";

/// glibc gives freed memory at the top of a heap back to the kernel once more than 128 KiB
/// is free there, and takes it again at the next allocation: a broker that frees a
/// publish's buffers and allocates the next one's pays a page fault and page zeroing per
/// page, each time. A process keeps up to 64 MiB of freed heap instead, and asks the
/// kernel for 16 MiB more than it needs when it grows (bench/RESULTS.md "Issue 15, session
/// 11": batched async publish 1.2-1.4x faster). Setting these turns off glibc's own
/// raising of the mmap threshold, so that is set too: buffers below 8 MiB (1 MiB frames,
/// 4 MiB decompression buffers) come from the heap, not a fresh mapping each time.
/// glibc's own variables (MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_THRESHOLD_)
/// still decide when set.
void keep_freed_heap() {
#ifdef __GLIBC__
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr)
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
  if (std::getenv("MALLOC_TOP_PAD_") == nullptr)
    mallopt(M_TOP_PAD, 16 << 20);
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr)
    mallopt(M_MMAP_THRESHOLD, 8 << 20);
#endif
}

} // namespace

int main(int argc, char** argv) {
  keep_freed_heap();
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    std::fputs(usage, argc < 2 ? stderr : stdout);
    std::fputs(levee::apps::exit_code::table, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (std::strcmp(argv[1], "--version") == 0) {
    std::puts("levee 0.1.0");
    return 0;
  }
  std::string sub = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (sub == "demo")
    return levee::apps::run_demo(args);
  if (sub == "node")
    return levee::apps::run_node(args);
  if (sub == "local")
    return levee::apps::run_local(args);
  if (sub == "query")
    return levee::apps::run_query(args);
  if (sub == "satellites")
    return levee::apps::run_satellites(args);
  if (sub == "stats")
    return levee::apps::run_stats(args);
  if (sub == "cluster")
    return levee::apps::run_cluster(args);
  if (sub == "stream")
    return levee::apps::run_stream(args);
  if (sub == "pub")
    return levee::apps::run_pub(args);
  if (sub == "sub")
    return levee::apps::run_sub(args);
  if (sub == "load")
    return levee::apps::run_load(args);
  if (sub == "config-keys")  // for maintainers and tests, so not in the usage text
    return levee::apps::run_config_keys(args);
  std::fprintf(stderr, "levee: unknown subcommand '%s'; run `levee --help` for the list\n",
               levee::printable(sub).c_str());
  return 2;
}
