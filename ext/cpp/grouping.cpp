#include "grouping.h"

#include <cstring>
#include <vector>

#include "key_map.h"
#include "records.h"

namespace fh {

namespace {

// Keys ahead to prefetch. By the time a batch is sent its rows have mostly left the first two
// cache levels (the rest of the read burst, every kind's, was decoded in between): loading a
// row's key, not the work on it, was a third of the grouping's time in the Kafka benchmark.
constexpr size_t kAhead = 16;

// `Width`: the key width when known at compile time (a record's symbol: its comparisons and
// hash are then a few word loads, not a call per row), else 0 and `width` says.
template <size_t Width>
size_t group_keys(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds) {
  auto same = [&](const char* a, const char* b) {
    return std::memcmp(a, b, Width != 0 ? Width : width) == 0;
  };
  // Open addressing, at most half full; sized for the groups (symbols), not the rows.
  std::vector<int32_t> slots(64, -1);
  std::vector<int64_t> first_row;  // per group: its first row, whose key stands for the group
  std::vector<int64_t> sizes;
  std::vector<int32_t> group_of(n);
  auto key_of = [&](int64_t row) { return keys + static_cast<size_t>(row) * stride; };
  auto home = [&](const char* key) {
    return hash_key(key, Width != 0 ? Width : width) & (slots.size() - 1);
  };
  int32_t previous = -1;
  for (size_t i = 0; i < n; ++i) {
    const char* key = key_of(static_cast<int64_t>(i));
    if (i + kAhead < n) __builtin_prefetch(key + kAhead * stride);
    // Exchange batches come in bursts of one symbol: compare with the previous row first.
    if (previous >= 0 && same(key_of(first_row[previous]), key)) {
      group_of[i] = previous;
      ++sizes[previous];
      continue;
    }
    size_t slot = home(key);
    for (;;) {
      int32_t group = slots[slot];
      if (group < 0) {
        group = static_cast<int32_t>(first_row.size());
        slots[slot] = group;
        first_row.push_back(static_cast<int64_t>(i));
        sizes.push_back(0);
        if (2 * first_row.size() > slots.size()) {  // grow: re-insert every group
          slots.assign(2 * slots.size(), -1);
          for (size_t g = 0; g < first_row.size(); ++g) {
            size_t s = home(key_of(first_row[g]));
            while (slots[s] >= 0) s = (s + 1) & (slots.size() - 1);
            slots[s] = static_cast<int32_t>(g);
          }
        }
      } else if (!same(key_of(first_row[group]), key)) {
        slot = (slot + 1) & (slots.size() - 1);
        continue;
      }
      group_of[i] = previous = group;
      ++sizes[group];
      break;
    }
  }
  const size_t groups = sizes.size();
  bounds[0] = 0;
  for (size_t g = 0; g < groups; ++g) bounds[g + 1] = bounds[g] + sizes[g];
  std::vector<int64_t> next(bounds, bounds + groups);
  for (size_t i = 0; i < n; ++i) order[next[group_of[i]]++] = static_cast<int64_t>(i);
  return groups;
}

}  // namespace

size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds) {
  return width == kSymbolWidth ? group_keys<kSymbolWidth>(keys, n, stride, width, order, bounds)
                               : group_keys<0>(keys, n, stride, width, order, bounds);
}

void gather_rows(const char* rows, size_t width, const int64_t* order, size_t count,
                 const uint8_t* keep, char* out) {
  const size_t words = width / 8;
  for (size_t i = 0; i < count; ++i) {
    const char* row = rows + static_cast<size_t>(order[i]) * width;
    for (size_t w = 0; w < words; ++w) {  // fixed-size memcpy: plain 8-byte moves
      uint64_t value, mask;
      std::memcpy(&value, row + 8 * w, 8);
      std::memcpy(&mask, keep + 8 * w, 8);
      value &= mask;
      std::memcpy(out + 8 * w, &value, 8);
    }
    for (size_t b = 8 * words; b < width; ++b) out[b] = static_cast<char>(row[b] & keep[b]);
    out += width;
  }
}

}  // namespace fh
