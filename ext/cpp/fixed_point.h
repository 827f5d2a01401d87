// Exact decimal-string -> fixed-point integer (scale 1e-8), no float round trip.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#ifdef __SSE4_1__
#include <immintrin.h>
#endif

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

#ifdef __SSE4_1__
// Which of the 16 bytes of `d` (text less '0') are digits.
[[gnu::always_inline]] inline unsigned digit_mask(__m128i d) noexcept {
  return static_cast<unsigned>(
      _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, _mm_set1_epi8(9)), d)));
}

// "<n1 digits>.<8 digits>" (1 <= n1 <= 6) whose bytes less '0' are `d`, as its 16 digits
// int||frac, right-aligned, in four-digit groups: eight 32-bit lanes of values below 10^4.
[[gnu::always_inline]] inline __m128i fixed8_quads(__m128i d, unsigned n1) noexcept {
  // Per n1: the digits right-aligned in 16 bytes, 8 - n1 leading zeros (index 0x80 -> 0).
  alignas(16) static constexpr int8_t kShuffle[7][16] = {
      {},
      {-128, -128, -128, -128, -128, -128, -128, 0, 2, 3, 4, 5, 6, 7, 8, 9},
      {-128, -128, -128, -128, -128, -128, 0, 1, 3, 4, 5, 6, 7, 8, 9, 10},
      {-128, -128, -128, -128, -128, 0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11},
      {-128, -128, -128, -128, 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12},
      {-128, -128, -128, 0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13},
      {-128, -128, 0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14},
  };
  const __m128i t =
      _mm_shuffle_epi8(d, _mm_load_si128(reinterpret_cast<const __m128i*>(kShuffle[n1])));
  const __m128i pairs = _mm_maddubs_epi16(t, _mm_setr_epi8(10, 1, 10, 1, 10, 1, 10, 1, 10, 1,
                                                            10, 1, 10, 1, 10, 1));
  return _mm_madd_epi16(pairs, _mm_setr_epi16(100, 1, 100, 1, 100, 1, 100, 1));
}

// Two numbers' quads (fixed8_quads) -> their values in 1e-8 units, the first in the low 64 bits.
[[gnu::always_inline]] inline __m128i fixed8_values(__m128i quads1, __m128i quads2) noexcept {
  // 32-bit lanes: the first's 8 high digits, its 8 low ones, then the second's
  const __m128i eights = _mm_madd_epi16(_mm_packus_epi32(quads1, quads2),
                                        _mm_setr_epi16(10000, 1, 10000, 1, 10000, 1, 10000, 1));
  return _mm_add_epi64(_mm_mul_epu32(eights, _mm_set1_epi64x(static_cast<int64_t>(kPow10[8]))),
                       _mm_srli_epi64(eights, 32));
}

// The digits of Binance's own format, "<1-6 digits>.<8 digits>", filling exactly the `size`
// bytes at `q` (a caller that found the closing quote already: nothing here that the next
// token's position waits on), less '0', and the count of integer digits; false for anything
// else.
[[gnu::always_inline]] inline bool fixed8_sse_sized(const char* q, size_t size, __m128i& d,
                                                    unsigned& n1) noexcept {
  const size_t ints = size - 9;
  if (ints - 1 > 5) return false;  // 1..6 integer digits (size_t: a size below 10 wraps high)
  d = _mm_sub_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), _mm_set1_epi8('0'));
  const unsigned token = (1u << size) - 1;
  n1 = static_cast<unsigned>(ints);
  return (digit_mask(d) & token) == (token & ~(1u << n1)) && q[n1] == '.';
}

// The same form and its closing quote within the 16 bytes at `q`, its length found from the
// dot; `stop` receives the quote's position.
[[gnu::always_inline]] inline bool fixed8_sse(const char* q, uint64_t& units, const char*& stop) noexcept {
  const unsigned dots = static_cast<unsigned>(_mm_movemask_epi8(
      _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(q)), _mm_set1_epi8('.'))));
  const unsigned size = static_cast<unsigned>(__builtin_ctz(dots | 0x10000)) + 9;
  __m128i d;
  unsigned n1;
  if (size > 15 || q[size] != '"' || !fixed8_sse_sized(q, size, d, n1)) return false;
  const __m128i quads = fixed8_quads(d, n1);
  units = static_cast<uint64_t>(_mm_cvtsi128_si64(fixed8_values(quads, quads)));
  stop = q + size;
  return true;
}
#endif

}  // namespace detail

namespace detail {

// parse_fixed8_quoted past its SSE path: up to 8 integer and 8 decimal digits 8 bytes at a time;
// anything else (longer, malformed) the exact byte-wise way.
template <typename T>
inline DecimalStatus parse_fixed8_quoted_swar(const char* p, T& out, const char** stop) noexcept {
  const bool negative = *p == '-';
  const char* q = p + negative;
  const uint64_t w1 = load8(q);
  const int n1 = leading_digits(w1);
  if (n1 > 0 && n1 < 8) {
    uint64_t units = digits_value(w1, n1) * kPow10[8];
    q += n1;
    bool fast = true;
    if (*q == '.') {
      const uint64_t w2 = load8(q + 1);
      const int n2 = leading_digits(w2);
      fast = n2 > 0 && n2 < 8;
      if (n2 == 8) fast = static_cast<unsigned>(q[9] - '0') > 9;  // exactly 8 decimals
      if (fast) {
        units += digits_value(w2, n2) * kPow10[8 - n2];
        q += 1 + n2;
      }
    }
    // units < 1e15: in range of every T, either sign.
    if (fast && *q == '"') {
      if (stop) *stop = q;
      out = negative ? static_cast<T>(-static_cast<int64_t>(units)) : static_cast<T>(units);
      return DecimalStatus::ok;
    }
  }
  const char* end = p;
  while (*end != '"') ++end;
  if (stop) *stop = end;
  return parse_fixed8(p, end, out);
}

}  // namespace detail

// Binance's usual form alone, unsigned "<1-6 digits>.<8 digits>" and its closing quote at once
// (`stop`), as value*1e8; false for anything else, which parse_fixed8_quoted then reads. Needs
// 16 readable bytes at `p`.
[[gnu::always_inline]] inline bool fixed8_usual(const char* p, uint64_t& units,
                                                const char*& stop) noexcept {
#ifdef __SSE4_1__
  return detail::fixed8_sse(p, units, stop);
#else
  return false;
#endif
}

#ifdef __SSE4_1__
// Two numbers in Binance's usual form, each filling exactly its `size` bytes (their closing
// quotes found by the caller), converted together: the values in 1e-8 units, the first in the
// low 64 bits of `values`. Needs 16 readable bytes at each.
[[gnu::always_inline]] inline bool fixed8_usual_pair(const char* p1, size_t size1, const char* p2,
                                                     size_t size2, __m128i& values) noexcept {
  __m128i d1, d2;
  unsigned n1, n2;
  if (!detail::fixed8_sse_sized(p1, size1, d1, n1) ||
      !detail::fixed8_sse_sized(p2, size2, d2, n2)) {
    return false;
  }
  values = detail::fixed8_values(detail::fixed8_quads(d1, n1), detail::fixed8_quads(d2, n2));
  return true;
}
#endif

// The decoder's hot path: a decimal string token whose text starts at `p` and ends at the next
// '"'. Requires 24 readable bytes past `p` (simdjson's padding after the frame guarantees it).
// Binance's usual "<1-6>.<8>" digits go 16 bytes at once where SSE4.1 is there (x86-64-v2), the
// rest as parse_fixed8_quoted_swar says: results are those of parse_fixed8 in every case.
// `stop`, when given, receives the closing quote's position (callers scanning on past it).
// Always inlined: a call (through the PLT, from a shared object) would cost what parsing does.
template <typename T>
[[gnu::always_inline]] inline DecimalStatus parse_fixed8_quoted(
    const char* p, T& out, const char** stop = nullptr) noexcept {
  const bool negative = *p == '-';
  uint64_t units;  // < 1e14: in range of every T, either sign
  const char* q;
  if (fixed8_usual(p + negative, units, q)) {
    if (stop) *stop = q;
    out = negative ? static_cast<T>(-static_cast<int64_t>(units)) : static_cast<T>(units);
    return DecimalStatus::ok;
  }
  return detail::parse_fixed8_quoted_swar(p, out, stop);
}

}  // namespace fh
