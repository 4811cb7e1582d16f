#include "limits/config_file.hpp"

#include <fstream>
#include <sstream>

#include <boost/program_options/parsers.hpp>

namespace levee {

namespace po = boost::program_options;

namespace {

result<flat_config> parse_stream(std::istream& in, const std::string& origin) {
  flat_config out;
  try {
    po::options_description none;
    auto parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
    for (auto& opt : parsed.options) {
      auto value = opt.value.empty() ? std::string{} : opt.value.front();
      if (!out.emplace(opt.string_key, value).second)
        return status::error(code::bad_request,
                             origin + ": key '" + opt.string_key + "' is given twice");
    }
  } catch (const std::exception& e) {
    return status::error(code::bad_request, origin + ": " + e.what());
  }
  return out;
}

} // namespace

result<flat_config> load_config_file(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return status::error(code::not_found,
                         "cannot open config file '" + path + "': check the path");
  return parse_stream(in, path);
}

result<flat_config> parse_config_text(const std::string& text, const std::string& origin) {
  std::istringstream in{text};
  return parse_stream(in, origin);
}

status apply_overrides(flat_config& cfg, const std::vector<std::string>& overrides) {
  for (auto& kv : overrides) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return status::error(code::bad_request,
                           "override '" + kv + "' is not of the form section.key=value");
    cfg[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return {};
}

} // namespace levee
