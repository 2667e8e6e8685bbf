// Status codes and Result<T>: how every public entry of the core reports
// failure. The core has no exceptions; a failed call returns a Status named
// after the POSIX errno it corresponds to, and leaves all state unchanged.
#pragma once

#include <type_traits>

#include "mm/base/types.hpp"

namespace mm {

enum class Status : u8 {
  Ok = 0,
  InvalidArgument,  // EINVAL: misaligned, zero count, out-of-range order, malformed request
  OutOfMemory,      // ENOMEM: nothing left that this request may take
  Busy,             // EBUSY: the object is pinned or in use
  AlreadyExists,    // EEXIST: a fixed mapping collides with an existing one
  NotFound,         // ENOENT: nothing is allocated or mapped where the caller says
  BadAddress,       // EFAULT: the address is outside what this object manages, or reserved
  NotSupported,     // EOPNOTSUPP: this allocator cannot serve this kind of request
  TooBig,           // E2BIG: more entries than the fixed-size structure holds
};

// The POSIX name of a status ("EINVAL"), or "OK".
const char* errno_name(Status status);
// A short human description ("invalid argument").
const char* describe(Status status);

// A value or the Status that explains why there is none. [[nodiscard]] so a
// failure cannot be ignored silently. T is kept trivial: the core passes
// addresses, frame numbers and small handles, never owning objects.
template <typename T>
class [[nodiscard]] Result {
  static_assert(std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>);

 public:
  constexpr Result(T value) : value_(value), status_(Status::Ok) {}  // NOLINT: implicit by design
  constexpr Result(Status status) : status_(status) {}              // NOLINT: implicit by design

  constexpr bool ok() const { return status_ == Status::Ok; }
  constexpr Status status() const { return status_; }
  // Only meaningful when ok().
  constexpr T value() const { return value_; }
  constexpr T value_or(T fallback) const { return ok() ? value_ : fallback; }

 private:
  T value_{};
  Status status_;
};

}  // namespace mm

// Early return on failure, SerenityOS TRY-style. Works on a Status or a
// Result<T>; on a Result it yields the value. Uses a GNU statement expression
// (GCC and Clang both accept it).
#define MM_TRY(expr)                                          \
  ({                                                          \
    auto mm_try_result_ = (expr);                             \
    if (!::mm::detail::is_ok(mm_try_result_)) {               \
      return ::mm::detail::status_of(mm_try_result_);         \
    }                                                         \
    ::mm::detail::value_of(mm_try_result_);                   \
  })

// Like MM_TRY, but runs `on_error` (a statement such as `return false`)
// instead of returning the status: for callers that do not return a Status.
#define MM_TRY_OR(expr, on_error)                             \
  ({                                                          \
    auto mm_try_result_ = (expr);                             \
    if (!::mm::detail::is_ok(mm_try_result_)) {               \
      on_error;                                               \
    }                                                         \
    ::mm::detail::value_of(mm_try_result_);                   \
  })

namespace mm::detail {
constexpr bool is_ok(Status s) { return s == Status::Ok; }
template <typename T>
constexpr bool is_ok(const Result<T>& r) { return r.ok(); }
constexpr Status status_of(Status s) { return s; }
template <typename T>
constexpr Status status_of(const Result<T>& r) { return r.status(); }
constexpr void value_of(Status) {}
template <typename T>
constexpr T value_of(const Result<T>& r) { return r.value(); }
}  // namespace mm::detail
