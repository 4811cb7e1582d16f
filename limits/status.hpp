#pragma once
// Errors are values (after LevelDB's Status and Abseil's StatusOr): a `status` is a code
// and a message, free when OK; `result<T>` is a value or a status. No exceptions cross
// Levee's hot paths. Both are [[nodiscard]]: an ignored error is a compile warning, and a
// caller that may drop one says why with `(void)` and a comment.

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "limits/error_code.hpp"
#include "limits/rejection.hpp"

namespace levee {

class [[nodiscard]] status {
public:
  status() = default;  // OK

  static status error(levee::code c, std::string message) {
    return status{c, std::move(message)};
  }

  /// An error made by a limit: the status keeps the whole rejection (limit, observed,
  /// max, retry-after, detail), so whoever turns it into a refusal (a Reject on the wire)
  /// passes on every field, not only the code and a sentence. `message` is what
  /// message() says (by default the rejection's one-line text without its code).
  static status refused(rejection r, std::string message = {}) {
    if (message.empty()) {
      message = r.to_string();
      auto colon = message.find("): ");  // "<code> (<n>): " is said by to_string()
      if (colon != std::string::npos)
        message.erase(0, colon + 3);
    }
    status out{r.code, std::move(message)};
    out.refusal_ = std::make_shared<const rejection>(std::move(r));
    return out;
  }

  bool ok() const noexcept { return !code_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  /// The code of an error; calling this on an OK status is a contract violation.
  levee::code code() const { return *code_; }
  const std::string& message() const noexcept { return message_; }

  /// The refusal this error is: the rejection it was made from (status::refused), or
  /// one with its code and the message as detail. Calling this on an OK status is a
  /// contract violation.
  rejection as_rejection() const {
    if (refusal_)
      return *refusal_;
    return rejection::of(*code_).detail(message_);
  }

  /// "OK" or "<code>: <message>".
  std::string to_string() const {
    return ok() ? std::string{"OK"}
                : std::string{levee::to_string(*code_)} + ": " + message_;
  }

private:
  status(levee::code c, std::string m) : code_(c), message_(std::move(m)) {}
  std::optional<levee::code> code_;
  std::string message_;
  std::shared_ptr<const rejection> refusal_;  // set by refused(): null for most errors
};

template <class T>
class [[nodiscard]] result {
public:
  result(T value) : value_(std::move(value)) {}                 // NOLINT: implicit by design
  result(status error) : status_(std::move(error)) {}           // NOLINT: implicit by design

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const status& error() const noexcept { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }

private:
  std::optional<T> value_;
  status status_;
};

} // namespace levee
