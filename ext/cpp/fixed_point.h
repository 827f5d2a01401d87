// Exact decimal-string -> fixed-point integer (scale 1e-8), no float round trip.
#pragma once

#include <cstdint>
#include <cstring>
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

namespace detail {

inline uint64_t load8(const char* p) noexcept {
  uint64_t w;
  std::memcpy(&w, p, 8);  // little-endian: p[0] is the lowest byte
  return w;
}

// How many of the 8 bytes of `w`, from the first, are ASCII digits.
inline int leading_digits(uint64_t w) noexcept {
  // Per byte 0 iff '0'..'9': high nibble 3, and still 3 after adding 6. A carry out of a
  // non-digit byte may spoil the bytes after it, never the ones before.
  const uint64_t t = ((w & 0xF0F0F0F0F0F0F0F0ull) |
                      (((w + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) >> 4)) ^
                     0x3333333333333333ull;
  const uint64_t nonzero =
      (((t & 0x7F7F7F7F7F7F7F7Full) + 0x7F7F7F7F7F7F7F7Full) | t) & 0x8080808080808080ull;
  return nonzero ? __builtin_ctzll(nonzero) / 8 : 8;
}

// The value of the first `n` (1..8) bytes of `w`, all digits.
inline uint64_t digits_value(uint64_t w, int n) noexcept {
  w <<= 8 * (8 - n);  // right-align: the vacated low bytes read as leading zeros
  w = ((w & 0x0F0F0F0F0F0F0F0Full) * 2561) >> 8;
  w = ((w & 0x00FF00FF00FF00FFull) * 6553601) >> 16;
  return ((w & 0x0000FFFF0000FFFFull) * 42949672960001ull) >> 32;
}

constexpr uint64_t kPow10[9] = {1,      10,      100,      1000,     10000,
                                100000, 1000000, 10000000, 100000000};

}  // namespace detail

// The decoder's hot path: a decimal string token whose text starts at `p` and ends at the next
// '"'. Requires 24 readable bytes past `p` (simdjson's padding after the frame guarantees it).
// Up to 8 integer and 8 decimal digits are read 8 bytes at a time; anything else (longer,
// malformed) goes the exact byte-wise way, so results are those of parse_fixed8 in every case.
template <typename T>
inline DecimalStatus parse_fixed8_quoted(const char* p, T& out) noexcept {
  const bool negative = *p == '-';
  const char* q = p + negative;
  const uint64_t w1 = detail::load8(q);
  const int n1 = detail::leading_digits(w1);
  if (n1 > 0 && n1 < 8) {
    uint64_t units = detail::digits_value(w1, n1) * detail::kPow10[8];
    q += n1;
    bool fast = true;
    if (*q == '.') {
      const uint64_t w2 = detail::load8(q + 1);
      const int n2 = detail::leading_digits(w2);
      fast = n2 > 0 && n2 < 8;
      if (n2 == 8) fast = static_cast<unsigned>(q[9] - '0') > 9;  // exactly 8 decimals
      if (fast) {
        units += detail::digits_value(w2, n2) * detail::kPow10[8 - n2];
        q += 1 + n2;
      }
    }
    // units < 1e15: in range of every T, either sign.
    if (fast && *q == '"') {
      out = negative ? static_cast<T>(-static_cast<int64_t>(units)) : static_cast<T>(units);
      return DecimalStatus::ok;
    }
  }
  const char* end = p;
  while (*end != '"') ++end;
  return parse_fixed8(p, end, out);
}

}  // namespace fh
