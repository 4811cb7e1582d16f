// A program that only talks to Levee: it links levee_client alone (no CAF, no actor
// system) and asks a running server who it is and which satellites it knows.
//
//   levee node --config configs/server.ini      # in another terminal
//   client_hello 127.0.0.1 7400
//
// It connects (retrying with backoff for up to 5 s), prints the limits the server
// advertised in its Hello, measures a ping, lists the satellites, and shows a refusal:
// a request to a target nobody exposes comes back as a typed rejection, not a hang.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "levee/client.hpp"
#include "net/satellite.pb.h"  // the payloads of the server's targets

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: client_hello <host> <port>\n");
    return 2;
  }
  char* end = nullptr;
  auto port = std::strtoul(argv[2], &end, 10);
  if (*argv[2] == '\0' || *end != '\0' || port == 0 || port > 65535) {
    std::fprintf(stderr, "client_hello: port '%s' is not a number from 1 to 65535\n", argv[2]);
    return 2;
  }
  levee::client_options opts;
  opts.host = argv[1];
  opts.port = static_cast<uint16_t>(port);
  opts.node_id = "client-hello";
  levee::client c{opts};
  if (auto st = c.connect_with_backoff(5s); !st.ok()) {
    std::fprintf(stderr, "client_hello: %s\n", st.to_string().c_str());
    return 1;
  }
  auto& limits = c.limits();
  std::printf("server '%s': frames up to %u bytes, %u requests in flight, %llu msgs/s\n",
              limits.node_id.c_str(), limits.max_frame_bytes, limits.max_inflight_requests,
              static_cast<unsigned long long>(limits.max_msgs_per_sec));

  if (auto rtt = c.ping(2s); rtt.ok())
    std::printf("ping: %lld us\n", static_cast<long long>(rtt.value().count()));

  auto list = c.request("satellites", levee::wire::SatellitesRequest{}.SerializeAsString(), 5s);
  levee::wire::SatelliteList satellites;
  if (!list.ok() || !satellites.ParseFromString(*list.payload)) {
    std::fprintf(stderr, "client_hello: no satellite list: %s\n",
                 list.rejected ? list.rejected->to_string().c_str() : "not parseable");
    return 1;
  }
  std::printf("satellites: %d\n", satellites.satellites_size());
  for (auto& s : satellites.satellites())
    std::printf("  %s\n", s.satellite_id().c_str());

  auto refused = c.request("no-such-target", "", 5s);
  std::printf("refused: %s\n",
              refused.rejected ? refused.rejected->to_string().c_str() : "(answered?)");
  return refused.rejected ? 0 : 1;
}
