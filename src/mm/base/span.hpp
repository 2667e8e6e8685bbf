// Span<T>: a pointer and a count, for the core's array parameters.
//
// Not std::span: libstdc++'s <span> includes <array> and, under Clang with
// the kernel's -mgeneral-regs-only, fails on the long double overloads those
// headers declare. Converts implicitly from arrays and from anything with
// data() and size() (std::vector, std::array, std::span) in hosted callers.
#pragma once

#include <cstddef>
#include <concepts>
#include <type_traits>

namespace mm {

template <typename T>
class Span {
 public:
  constexpr Span() = default;
  constexpr Span(T* data, std::size_t size) : data_(data), size_(size) {}
  template <std::size_t N>
  constexpr Span(T (&array)[N]) : data_(array), size_(N) {}  // NOLINT: implicit by design
  template <typename C>
    requires requires(C& c) {
      { c.data() } -> std::convertible_to<T*>;
      { c.size() } -> std::convertible_to<std::size_t>;
    } && (!std::is_same_v<std::remove_cvref_t<C>, Span>)
  constexpr Span(C&& container) : data_(container.data()), size_(container.size()) {}  // NOLINT

  constexpr T* data() const { return data_; }
  constexpr std::size_t size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr T& operator[](std::size_t i) const { return data_[i]; }
  constexpr T* begin() const { return data_; }
  constexpr T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace mm
