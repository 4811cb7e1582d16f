#pragma once
// One HTTP/1.1 request at the front of a connection's buffer (RFC 9112), within
// http.max_request_bytes: the parser looks at bytes already read and says whether a whole
// request is there, more bytes are needed, or the request is refused (with the status,
// Levee code and limit the answer carries). Plain C++, no I/O: tested alone.

#include <cstdint>
#include <string>
#include <string_view>

#include "http/refusal.hpp"

namespace levee::http {

struct request {
  std::string method;   // as sent: GET, HEAD, POST, ...
  std::string path;     // the target's path, without query string or scheme://authority
  bool keep_alive = true;  // HTTP/1.1 without "Connection: close", or 1.0 with keep-alive
  size_t bytes = 0;     // the request's length in the buffer: head and body
};

enum class parse_state { incomplete, complete, refused };

struct parse_result {
  parse_state state = parse_state::incomplete;
  request req;     // complete
  refusal why;     // refused
};

/// Parses the request at the front of `buffer`. The caller never holds more than
/// `max_request_bytes` unanswered: `incomplete` with a buffer that full is refused here
/// (414 while the request line has not ended, 431 while the headers have not, 413 when
/// Content-Length takes the request past the bound, said before the body is read).
parse_result parse_request(std::string_view buffer, uint64_t max_request_bytes);

} // namespace levee::http
