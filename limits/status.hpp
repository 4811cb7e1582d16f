#pragma once
// Errors are values (after LevelDB's Status and Abseil's StatusOr): a `status` is a code
// and a message, free when OK; `result<T>` is a value or a status. No exceptions cross
// Levee's hot paths. Both are [[nodiscard]]: an ignored error is a compile warning, and a
// caller that may drop one says why with `(void)` and a comment.

#include <optional>
#include <string>
#include <utility>

#include "limits/error_code.hpp"

namespace levee {

class [[nodiscard]] status {
public:
  status() = default;  // OK

  static status error(levee::code c, std::string message) {
    return status{c, std::move(message)};
  }

  bool ok() const noexcept { return !code_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  /// The code of an error; calling this on an OK status is a contract violation.
  levee::code code() const { return *code_; }
  const std::string& message() const noexcept { return message_; }

  /// "OK" or "<code>: <message>".
  std::string to_string() const {
    return ok() ? std::string{"OK"}
                : std::string{levee::to_string(*code_)} + ": " + message_;
  }

private:
  status(levee::code c, std::string m) : code_(c), message_(std::move(m)) {}
  std::optional<levee::code> code_;
  std::string message_;
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
