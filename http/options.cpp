// [http] (options.hpp).

#include "http/options.hpp"

#include "base/host_port.hpp"
#include "limits/config_fields.hpp"

namespace levee::http {

namespace {

using O = http_options;
const field_spec<O> fields[] = {
  {"max_connections", &O::max_connections, 1, defaults::http_max_connections_ceiling,
   "connections"},
  {"max_request_bytes", &O::max_request_bytes, 1024, defaults::http_max_request_bytes_ceiling,
   "bytes"},
  {"request_timeout_ms", &O::request_timeout_ms, 100, defaults::http_request_timeout_ms_ceiling,
   "ms"},
};

} // namespace

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  append_keys(out, "http", fields, {"listen"});
  return out;
}

result<http_options> http_from_config(const flat_config& cfg) {
  http_options out;
  if (auto st = read_fields(out, cfg, "http", fields, {"listen"}); !st)
    return st;
  if (auto i = cfg.find("http.listen"); i != cfg.end() && i->second != "none") {
    base::host_port hp;
    std::string bad;
    if (!base::parse_host_port("http.listen", i->second, hp, bad, base::port_zero::any_free_port))
      return status::error(code::bad_request,
                           bad + " (or 'none' for no HTTP listener)");
    out.listen = i->second;
  }
  return out;
}

} // namespace levee::http
