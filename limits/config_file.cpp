#include "limits/config_file.hpp"

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
  // Read with POSIX calls, not an ifstream: a stream opens a directory and reads it, like a
  // file whose read fails, as an empty file -- which then passed for a valid, empty config.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == EACCES)
      return status::error(code::permission_denied,
                           "cannot open config file '" + path
                             + "': permission denied; make it readable by this user (chmod, "
                               "chown) or run as one who may read it");
    return status::error(e == ENOENT || e == ENOTDIR ? code::not_found : code::bad_request,
                         "cannot open config file '" + path + "': " + std::strerror(e)
                           + "; check the path");
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return status::error(code::storage_error, "cannot read config file '" + path + "': "
                                                + std::strerror(errno) + "; check the file");
  if (S_ISDIR(st.st_mode))
    return status::error(code::bad_request,
                         "config file '" + path + "' is a directory: give the path of an INI "
                           "file (e.g. " + path + (path.back() == '/' ? "" : "/")
                           + "server.ini)");
  // A pipe is fine (`--config <(...)`); a device or socket is no file of settings and may
  // never end (/dev/zero).
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    return status::error(code::bad_request,
                         "config file '" + path + "' is not a regular file (a device or a "
                           "socket): give the path of an INI file");
  std::string text;
  char buf[16 * 1024];
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return status::error(code::storage_error, "cannot read config file '" + path + "': "
                                                  + std::strerror(errno)
                                                  + "; check the file and the disk it is on");
    }
    text.append(buf, static_cast<size_t>(n));
  }
  std::istringstream in{text};
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
