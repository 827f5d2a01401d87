#include "grouping.h"

#include <cstring>

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
void group_keys(const char* keys, size_t n, size_t stride, size_t width,
                std::vector<int32_t>& slots, std::vector<size_t>& taken,
                std::vector<int32_t>& group_of, std::vector<int64_t>& first_row,
                std::vector<int64_t>& sizes) {
  auto same = [&](const char* a, const char* b) {
    return std::memcmp(a, b, Width != 0 ? Width : width) == 0;
  };
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
        first_row.push_back(static_cast<int64_t>(i));  // (may throw: before the slot is set)
        sizes.push_back(0);
        taken.push_back(slot);
        slots[slot] = group;
        if (2 * first_row.size() > slots.size()) {  // grow: re-insert every group
          slots.assign(2 * slots.size(), -1);
          for (size_t g = 0; g < first_row.size(); ++g) {
            size_t s = home(key_of(first_row[g]));
            while (slots[s] >= 0) s = (s + 1) & (slots.size() - 1);
            slots[s] = static_cast<int32_t>(g);
            taken[g] = s;
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
}

}  // namespace

size_t RowGrouper::group(const char* keys, size_t n, size_t stride, size_t width) {
  // The table keeps the size the largest batch so far grew it to (no regrowing per batch);
  // only the slots the last batch took are cleared.
  for (size_t slot : taken_) slots_[slot] = -1;
  taken_.clear();
  if (group_of_.size() < n) group_of_.resize(n);
  rows_ = n;
  first_row_.clear();
  sizes_.clear();
  if (width == kSymbolWidth) {
    group_keys<kSymbolWidth>(keys, n, stride, width, slots_, taken_, group_of_, first_row_,
                             sizes_);
  } else {
    group_keys<0>(keys, n, stride, width, slots_, taken_, group_of_, first_row_, sizes_);
  }
  cursor_.resize(sizes_.size());
  room_.resize(sizes_.size());
  next_.resize(sizes_.size());
  return sizes_.size();
}

void RowGrouper::order(int64_t* order, int64_t* bounds) const {
  const size_t groups = sizes_.size();
  bounds[0] = 0;
  for (size_t g = 0; g < groups; ++g) bounds[g + 1] = bounds[g] + sizes_[g];
  const size_t n = static_cast<size_t>(bounds[groups]);
  std::vector<int64_t> next(bounds, bounds + groups);  // each group's next place
  for (size_t i = 0; i < n; ++i) order[next[group_of_[i]]++] = static_cast<int64_t>(i);
}

void RowGrouper::scatter(const char* rows, size_t width, size_t most, const uint8_t* keep,
                         char* const* outs) noexcept {
  size_t message = 0;
  for (size_t g = 0; g < sizes_.size(); ++g) {
    next_[g] = message;
    room_[g] = 0;
    message += messages(g, most);
  }
  const size_t words = width / 8;
  for (size_t i = 0; i < rows_; ++i) {
    const int32_t g = group_of_[i];
    if (room_[g] == 0) {
      cursor_[g] = outs[next_[g]++];
      room_[g] = static_cast<int64_t>(most);
    }
    char* out = cursor_[g];
    const char* row = rows + i * width;
    for (size_t w = 0; w < words; ++w) {  // fixed-size memcpy: plain 8-byte moves
      uint64_t value, mask;
      std::memcpy(&value, row + 8 * w, 8);
      std::memcpy(&mask, keep + 8 * w, 8);
      value &= mask;
      std::memcpy(out + 8 * w, &value, 8);
    }
    for (size_t b = 8 * words; b < width; ++b) out[b] = static_cast<char>(row[b] & keep[b]);
    cursor_[g] = out + width;
    --room_[g];
  }
}

size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds) {
  RowGrouper grouper;
  const size_t groups = grouper.group(keys, n, stride, width);
  grouper.order(order, bounds);
  return groups;
}

}  // namespace fh
