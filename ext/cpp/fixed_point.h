// Exact decimal-string -> fixed-point integer (scale 1e-8), no float round trip.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

namespace fh {

constexpr int kScaleDigits = 8;

enum class DecimalStatus : uint8_t { ok, malformed, too_many_decimals, overflow };

using int128 = __int128;
using uint128 = unsigned __int128;

// Parses `-?[0-9]+(\.[0-9]+)?` starting at `p` and ending at `end` (exclusive) into value*1e8.
// Digits past the 8th decimal are accepted only when they are zeros: the value stays exact.
// Never wraps: a magnitude beyond the signed range of T is `overflow`.
template <typename T>
inline DecimalStatus parse_fixed8(const char* p, const char* end, T& out) noexcept {
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, int128>);
  using U = std::conditional_t<std::is_same_v<T, int64_t>, uint64_t, uint128>;
  constexpr U kMaxPositive = static_cast<U>(std::numeric_limits<T>::max());

  const bool negative = p < end && *p == '-';
  if (negative) ++p;
  if (p == end || static_cast<unsigned>(*p - '0') > 9) return DecimalStatus::malformed;

  U mantissa = 0;
  bool overflow = false;
  auto push_digit = [&](char c) {
    overflow |= __builtin_mul_overflow(mantissa, U(10), &mantissa);
    overflow |= __builtin_add_overflow(mantissa, U(c - '0'), &mantissa);
  };
  while (p < end && static_cast<unsigned>(*p - '0') <= 9) push_digit(*p++);

  int decimals = 0;
  bool inexact = false;  // a non-zero digit past the 8th decimal
  if (p < end && *p == '.') {
    ++p;
    if (p == end || static_cast<unsigned>(*p - '0') > 9) return DecimalStatus::malformed;
    for (; p < end && static_cast<unsigned>(*p - '0') <= 9; ++p) {
      if (decimals < kScaleDigits) {
        push_digit(*p);
        ++decimals;
      } else {
        inexact |= *p != '0';
      }
    }
  }
  // Syntax first: "1.123456789x" is malformed, not merely too precise.
  if (p != end) return DecimalStatus::malformed;
  if (inexact) return DecimalStatus::too_many_decimals;
  for (; decimals < kScaleDigits; ++decimals) {
    overflow |= __builtin_mul_overflow(mantissa, U(10), &mantissa);
  }
  // The negative range holds one more value than the positive one.
  if (overflow || mantissa > kMaxPositive + (negative ? 1 : 0)) return DecimalStatus::overflow;
  out = negative ? static_cast<T>(U(0) - mantissa) : static_cast<T>(mantissa);
  return DecimalStatus::ok;
}

}  // namespace fh
