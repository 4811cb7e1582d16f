// One HTTP/1.1 request at the front of a buffer (request_parser.hpp).

#include "http/request_parser.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace levee::http {

namespace {

constexpr const char* request_bytes_key = "http.max_request_bytes";

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || std::string_view{"!#$%&'*+-.^_`|~"}.find(c)
                                                          != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
              return std::tolower(static_cast<unsigned char>(x))
                     == std::tolower(static_cast<unsigned char>(y));
            });
}

/// Whether the comma-separated header value lists `token` (case-insensitive).
bool lists_token(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    auto comma = value.find(',');
    auto item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t'))
      item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t'))
      item.remove_suffix(1);
    if (iequals(item, token))
      return true;
    if (comma == std::string_view::npos)
      break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

parse_result malformed(std::string detail) {
  parse_result out;
  out.state = parse_state::refused;
  out.why.status = 400;
  out.why.code = code::bad_request;
  out.why.detail = std::move(detail);
  return out;
}

parse_result too_large(int status, uint64_t observed, uint64_t max, std::string detail) {
  parse_result out;
  out.state = parse_state::refused;
  out.why.status = status;
  out.why.code = code::message_too_large;
  out.why.limit = request_bytes_key;
  out.why.observed = observed;
  out.why.max = max;
  out.why.detail = std::move(detail);
  return out;
}

/// The path of a request target: origin-form "/p?q" or absolute-form "http://h/p?q".
std::string_view path_of(std::string_view target) {
  if (auto scheme = target.find("://"); target.front() != '/' && scheme != std::string_view::npos) {
    auto slash = target.find('/', scheme + 3);
    target = slash == std::string_view::npos ? std::string_view{"/"} : target.substr(slash);
  }
  return target.substr(0, target.find_first_of("?#"));
}

} // namespace

parse_result parse_request(std::string_view buffer, uint64_t max_request_bytes) {
  auto full = buffer.size() >= max_request_bytes;
  auto line_end = buffer.find('\n');
  if (line_end == std::string_view::npos) {
    if (full)
      return too_large(414, buffer.size(), max_request_bytes,
                       "the request line did not end within http.max_request_bytes: ask for "
                       "/metrics, /healthz or /readyz, or raise http.max_request_bytes");
    return {};
  }
  if (line_end == 0 || buffer[line_end - 1] != '\r')
    return malformed("the request line must end with CRLF (\\r\\n): send an HTTP/1.1 request, "
                     "e.g. GET /metrics HTTP/1.1");
  auto line = buffer.substr(0, line_end - 1);
  auto sp1 = line.find(' ');
  auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0
      || sp2 == sp1 + 1 || line.find(' ', sp2 + 1) != std::string_view::npos)
    return malformed("the request line must be METHOD TARGET HTTP/1.1, e.g. GET /metrics HTTP/1.1");
  auto method = line.substr(0, sp1);
  auto target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  auto version = line.substr(sp2 + 1);
  if (!std::all_of(method.begin(), method.end(), is_token_char))
    return malformed("the method is not a token: send GET (or HEAD)");
  if (!std::all_of(target.begin(), target.end(),
                   [](char c) { return c > 0x20 && c < 0x7f; }))
    return malformed("the request target holds a control, space or non-ASCII byte: "
                     "percent-encode it");
  bool http11 = version == "HTTP/1.1";
  if (!http11 && version != "HTTP/1.0")
    return malformed("the version must be HTTP/1.1 or HTTP/1.0");

  auto head_end = buffer.find("\r\n\r\n", line_end - 1);
  if (head_end == std::string_view::npos) {
    if (full)
      return too_large(431, buffer.size(), max_request_bytes,
                       "the request's headers did not end within http.max_request_bytes: send "
                       "fewer or shorter headers, or raise http.max_request_bytes");
    // A bare LF ending a header line would never match CRLFCRLF: refuse it now instead of
    // waiting for the buffer to fill.
    for (size_t i = line_end + 1; i < buffer.size(); ++i)
      if (buffer[i] == '\n' && buffer[i - 1] != '\r')
        return malformed("header lines must end with CRLF (\\r\\n)");
    return {};
  }
  parse_result out;
  out.req.method = std::string{method};
  out.req.path = std::string{path_of(target)};
  out.req.keep_alive = http11;
  uint64_t content_length = 0;
  bool have_length = false;
  size_t at = line_end + 1;
  auto head_bytes = head_end + 4;
  while (at < head_end + 2) {
    auto eol = buffer.find("\r\n", at);
    auto field = buffer.substr(at, eol - at);
    at = eol + 2;
    if (field.find('\n') != std::string_view::npos)
      return malformed("header lines must end with CRLF (\\r\\n)");
    if (field.front() == ' ' || field.front() == '\t')
      return malformed("a folded header line (starting with a space) is not accepted: send "
                       "each header on one line");
    auto colon = field.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return malformed("a header line is not 'Name: value'");
    auto name = field.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char))
      return malformed("a header name is not a token (no spaces before the colon)");
    auto value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
      value.remove_suffix(1);
    if (iequals(name, "Connection")) {
      if (lists_token(value, "close"))
        out.req.keep_alive = false;
      else if (lists_token(value, "keep-alive"))
        out.req.keep_alive = true;
    } else if (iequals(name, "Content-Length")) {
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc{} || end != value.data() + value.size() || value.empty()
          || (have_length && n != content_length))
        return malformed("Content-Length must be one whole number of bytes");
      content_length = n;
      have_length = true;
    } else if (iequals(name, "Transfer-Encoding")) {
      return malformed("Transfer-Encoding is not accepted: these endpoints take no body; "
                       "send the request without one");
    }
  }
  if (content_length > max_request_bytes || head_bytes + content_length > max_request_bytes)
    return too_large(413, head_bytes + content_length, max_request_bytes,
                     "the request's body takes it past http.max_request_bytes: /metrics, "
                     "/healthz and /readyz take no body; send GET without one");
  if (buffer.size() < head_bytes + content_length)
    return {};
  out.req.bytes = head_bytes + static_cast<size_t>(content_length);
  out.state = parse_state::complete;
  return out;
}

size_t refusal_index(int status) noexcept {
  for (size_t i = 0; i < refusal_status_count; ++i)
    if (refusal_statuses[i] == status)
      return i;
  return refusal_status_count;
}

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Unknown";
  }
}

} // namespace levee::http
