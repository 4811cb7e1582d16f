#include "base/host_port.hpp"

#include <algorithm>

namespace levee::base {

namespace {

bool refuse(std::string_view name, std::string_view text, const std::string& why,
            std::string& error) {
  bool option = name.substr(0, 2) == "--";
  error.assign(name);
  error += option ? " " : " = ";
  error += text;
  error += ": ";
  error += why;
  return false;
}

} // namespace

bool parse_host_port(std::string_view name, std::string_view text, host_port& out,
                     std::string& error, port_zero zero) {
  const std::string example = ", e.g. 127.0.0.1:7400";
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    // [IPv6]:port: the brackets keep the address's colons apart from the port's.
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return refuse(name, text, "must be [IPv6 address]:port, e.g. [::1]:7400", error);
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return refuse(name, text, "must be host:port" + example, error);
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return refuse(name, text, "an IPv6 address goes in brackets, e.g. [::1]:7400", error);
  }
  if (host.empty())
    return refuse(name, text, "the host is missing: must be host:port" + example, error);
  const uint32_t lowest = zero == port_zero::any_free_port ? 0 : 1;
  const std::string port_rule =
    lowest == 0 ? "the port must be a whole number from 0 (any free port) to 65535"
                : "the port must be a whole number from 1 to 65535";
  // Digits only: stoul would take "-1" (wrapped around) and "7400x" (as 7400).
  bool digits = !port.empty();
  uint32_t value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') {
      digits = false;
      break;
    }
    // Stops growing past 65535, which is refused anyway: no overflow however long.
    value = std::min<uint32_t>(value * 10 + static_cast<uint32_t>(c - '0'), 65536);
  }
  if (!digits || value > 65535 || value < lowest)
    return refuse(name, text, port_rule + example, error);
  out.host.assign(host);
  out.port = static_cast<uint16_t>(value);
  return true;
}

} // namespace levee::base
