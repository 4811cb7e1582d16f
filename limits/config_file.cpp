#include "limits/config_file.hpp"

#include <cerrno>
#include <cstring>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/program_options/errors.hpp>
#include <boost/program_options/parsers.hpp>

#include "limits/printable.hpp"

namespace levee {

namespace po = boost::program_options;

namespace {

/// The 1-based number of the first line of `text` that reads as `line` once Boost's config
/// parser has cut its comment and trimmed it (what its syntax error shows); 0 if none does.
size_t line_number_of(const std::string& text, const std::string& line) {
  size_t number = 0, at = 0;
  while (at <= text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos)
      end = text.size();
    ++number;
    auto candidate = text.substr(at, end - at);
    if (auto hash = candidate.find('#'); hash != std::string::npos)
      candidate.erase(hash);
    auto first = candidate.find_first_not_of(" \t\r\n");
    auto last = candidate.find_last_not_of(" \t\r\n");
    if (first != std::string::npos && candidate.substr(first, last - first + 1) == line)
      return number;
    at = end + 1;
  }
  return 0;
}

/// Every message shows the file's name and its lines through printable(): a line of binary
/// garbage must not reach the terminal as it is.
result<flat_config> parse_text(const std::string& text, const std::string& origin) {
  flat_config out;
  auto where = printable(origin);
  try {
    std::istringstream in{text};
    po::options_description none;
    auto parsed = po::parse_config_file(in, none, /*allow_unregistered=*/true);
    for (auto& opt : parsed.options) {
      auto value = opt.value.empty() ? std::string{} : opt.value.front();
      if (!out.emplace(opt.string_key, value).second)
        return status::error(code::bad_request, where + ": key '" + printable(opt.string_key)
                                                  + "' is given twice; keep one of them");
    }
  } catch (const po::invalid_config_file_syntax& e) {
    auto line = e.tokens();
    auto number = line_number_of(text, line);
    return status::error(code::bad_request,
                         where + (number != 0 ? " line " + std::to_string(number) : std::string{})
                           + ": not a setting: '" + printable(line)
                           + "'; a line is [section], key = value or a # comment");
  } catch (const std::exception& e) {
    return status::error(code::bad_request, where + ": " + printable(e.what()));
  }
  return out;
}

} // namespace

result<flat_config> load_config_file(const std::string& path) {
  // Read with POSIX calls, not an ifstream: a stream opens a directory and reads it, like a
  // file whose read fails, as an empty file -- which then passed for a valid, empty config.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  auto shown = printable(path);
  if (fd < 0) {
    int e = errno;
    if (e == EACCES)
      return status::error(code::permission_denied,
                           "cannot open config file '" + shown
                             + "': permission denied; make it readable by this user (chmod, "
                               "chown) or run as one who may read it");
    return status::error(e == ENOENT || e == ENOTDIR ? code::not_found : code::bad_request,
                         "cannot open config file '" + shown + "': " + std::strerror(e)
                           + "; check the path");
  }
  struct closer {
    int fd;
    ~closer() { ::close(fd); }
  } guard{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return status::error(code::storage_error, "cannot read config file '" + shown + "': "
                                                + std::strerror(errno) + "; check the file");
  if (S_ISDIR(st.st_mode))
    return status::error(code::bad_request,
                         "config file '" + shown + "' is a directory: give the path of an INI "
                           "file (e.g. " + shown + (path.back() == '/' ? "" : "/")
                           + "server.ini)");
  // A pipe is fine (`--config <(...)`); a device or socket is no file of settings and may
  // never end (/dev/zero).
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
    return status::error(code::bad_request,
                         "config file '" + shown + "' is not a regular file (a device or a "
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
      return status::error(code::storage_error, "cannot read config file '" + shown + "': "
                                                  + std::strerror(errno)
                                                  + "; check the file and the disk it is on");
    }
    text.append(buf, static_cast<size_t>(n));
  }
  return parse_text(text, path);
}

result<flat_config> parse_config_text(const std::string& text, const std::string& origin) {
  return parse_text(text, origin);
}

status apply_overrides(flat_config& cfg, const std::vector<std::string>& overrides) {
  for (auto& kv : overrides) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      return status::error(code::bad_request,
                           "override '" + printable(kv)
                             + "' is not of the form section.key=value, e.g. "
                               "server.max_queries=64");
    cfg[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return {};
}

} // namespace levee
