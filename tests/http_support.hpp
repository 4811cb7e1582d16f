#pragma once
// A raw HTTP/1.1 client for tests of the HTTP listener (http/): real TCP on 127.0.0.1,
// every read bounded. Raw sockets rather than a client library, so a test can send what
// no library would (slow bytes, oversized headers, a body to /metrics).

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace levee::test {

struct http_answer {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower case
  std::string body;
  std::string header(const std::string& name) const {
    auto i = headers.find(name);
    return i == headers.end() ? std::string{} : i->second;
  }
};

class http_connection {
public:
  explicit http_connection(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  ~http_connection() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  http_connection(const http_connection&) = delete;
  http_connection& operator=(const http_connection&) = delete;

  bool connected() const noexcept { return fd_ >= 0; }

  bool send(const std::string& bytes) {
    size_t at = 0;
    while (at < bytes.size()) {
      auto n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      at += static_cast<size_t>(n);
    }
    return true;
  }

  /// One whole answer (head and Content-Length bytes of body), or nullopt when none came
  /// within `bound` or the connection closed first. HEAD answers: pass head_only.
  std::optional<http_answer> read_answer(std::chrono::milliseconds bound = std::chrono::seconds{10},
                                         bool head_only = false) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      auto end = buffer_.find("\r\n\r\n");
      if (end != std::string::npos) {
        http_answer a;
        auto head = buffer_.substr(0, end);
        auto first = head.find("\r\n");
        auto status_line = head.substr(0, first);
        if (status_line.size() >= 12)
          a.status = std::atoi(status_line.c_str() + 9);
        size_t at = first == std::string::npos ? head.size() : first + 2;
        while (at < head.size()) {
          auto eol = head.find("\r\n", at);
          if (eol == std::string::npos)
            eol = head.size();
          auto line = head.substr(at, eol - at);
          at = eol + 2;
          auto colon = line.find(':');
          if (colon == std::string::npos)
            continue;
          std::string name = line.substr(0, colon);
          for (auto& c : name)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          auto value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ')
            value.erase(0, 1);
          a.headers[name] = value;
        }
        size_t length = head_only ? 0 : std::strtoull(a.header("content-length").c_str(), nullptr, 10);
        if (buffer_.size() >= end + 4 + length) {
          a.body = buffer_.substr(end + 4, length);
          buffer_.erase(0, end + 4 + length);
          return a;
        }
      }
      if (!fill(deadline))
        return std::nullopt;
    }
  }

  /// True when the server closed the connection (EOF) within `bound`, whatever it sent
  /// first.
  bool closed_by_peer(std::chrono::milliseconds bound) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (fill(deadline)) {
    }
    return eof_;
  }

private:
  bool fill(std::chrono::steady_clock::time_point deadline) {
    if (eof_)
      return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0)
      return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0)
      return false;
    char buf[65536];
    auto n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

/// GET `path` on a new connection: the answer, or nullopt.
inline std::optional<http_answer> http_get(uint16_t port, const std::string& path,
                                           std::chrono::milliseconds bound = std::chrono::seconds{10}) {
  http_connection c{port};
  if (!c.connected() || !c.send("GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"))
    return std::nullopt;
  return c.read_answer(bound);
}

/// The value of the sample `series` (name with labels exactly as rendered, e.g.
/// `levee_http_requests_total{path="/metrics"}`) in a /metrics text, or nullopt.
inline std::optional<double> metric_value(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n')
      return std::strtod(text.c_str() + at + series.size() + 1, nullptr);
    at += series.size();
  }
  return std::nullopt;
}

} // namespace levee::test
