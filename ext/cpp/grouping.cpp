#include "grouping.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>

#include "key_map.h"
#include "records.h"

namespace fh {

namespace {

// Rows ahead to prefetch. By the time a batch is sent its rows have mostly left the first two
// cache levels (the rest of the read burst, every kind's, was decoded in between): loading a
// row's key, not the work on it, was a third of the grouping's time in the Kafka benchmark.
constexpr size_t kAhead = 16;
// A key's first message starts with room for this many rows, later ones for twice as many as
// its last: room never written costs no copy, a realloc that moves the message does.
constexpr int64_t kFirstRows = 16;
// A message's next bytes are memory untouched since its last message was acknowledged, most
// often out of every cache: their place is prefetched for writing this many rows ahead (with
// 6 MiB written between batches, 43 % off the copy's time; 4-7 % with 1-2 MiB; none warm:
// bench/bench_open_messages.py).
constexpr size_t kWriteAhead = 8;

// Room for `more` elements in `v`, doubling (reserve alone would allocate exactly, each time).
template <typename T>
void grow_for(std::vector<T>& v, size_t more) {
  if (v.size() + more > v.capacity()) v.reserve(std::max(2 * v.capacity(), v.size() + more));
}

template <size_t Width>
bool same(const char* a, const char* b, size_t width) noexcept {
  return std::memcmp(a, b, Width != 0 ? Width : width) == 0;
}

// Calls f(i, key number) for each of n keys (the i-th at keys + i * stride), numbered by
// `index`. Exchange batches come in bursts of one symbol: a key is first compared with the
// previous row's.
template <size_t Width, typename F>
void number_keys(KeyIndex& index, const char* keys, size_t n, size_t stride, F&& f) {
  int32_t previous = -1;
  for (size_t i = 0; i < n; ++i) {
    const char* key = keys + i * stride;
    if (i + kAhead < n) __builtin_prefetch(key + kAhead * stride);
    if (previous < 0 || !same<Width>(index.key(previous), key, index.width())) {
      previous = index.find_or_add<Width>(key);
    }
    f(i, previous);
  }
}

template <typename F>
void number_keys(KeyIndex& index, const char* keys, size_t n, size_t stride, F&& f) {
  if (index.width() == kSymbolWidth) {
    number_keys<kSymbolWidth>(index, keys, n, stride, f);
  } else {
    number_keys<0>(index, keys, n, stride, f);
  }
}

}  // namespace

void KeyIndex::reset(size_t width) {
  for (size_t slot : taken_) slots_[slot] = -1;
  taken_.clear();
  keys_.clear();
  width_ = width;
}

template <size_t Width>
int32_t KeyIndex::find_or_add(const char* key) {
  auto home = [&](const char* k) {
    return hash_key(k, Width != 0 ? Width : width_) & (slots_.size() - 1);
  };
  auto probe = [&](const char* k) {
    size_t s = home(k);
    while (slots_[s] >= 0 && !same<Width>(this->key(slots_[s]), k, width_)) {
      s = (s + 1) & (slots_.size() - 1);
    }
    return s;
  };
  size_t slot = probe(key);
  if (slots_[slot] >= 0) return slots_[slot];
  // A new key. Whatever may throw comes before the table changes.
  grow_for(keys_, width_);
  grow_for(taken_, 1);
  if (2 * (taken_.size() + 1) > slots_.size()) {  // grow: place every key again
    std::vector<int32_t> grown(2 * slots_.size(), -1);
    slots_.swap(grown);
    for (size_t k = 0; k < taken_.size(); ++k) {
      taken_[k] = probe(this->key(static_cast<int32_t>(k)));
      slots_[taken_[k]] = static_cast<int32_t>(k);
    }
    slot = probe(key);
  }
  const auto number = static_cast<int32_t>(taken_.size());
  keys_.insert(keys_.end(), key, key + width_);
  taken_.push_back(slot);
  slots_[slot] = number;
  return number;
}

size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds) {
  KeyIndex index;
  index.reset(width);
  std::vector<int32_t> group_of(n);
  std::vector<int64_t> sizes;
  number_keys(index, keys, n, stride, [&](size_t i, int32_t g) {
    if (static_cast<size_t>(g) == sizes.size()) sizes.push_back(0);
    group_of[i] = g;
    ++sizes[g];
  });
  const size_t groups = sizes.size();
  bounds[0] = 0;
  for (size_t g = 0; g < groups; ++g) bounds[g + 1] = bounds[g] + sizes[g];
  std::vector<int64_t> next(bounds, bounds + groups);  // each group's next place
  for (size_t i = 0; i < n; ++i) order[next[group_of[i]]++] = static_cast<int64_t>(i);
  return groups;
}

OpenMessages::~OpenMessages() {
  for (Open& open : open_) {
    std::free(open.value);
    for (HeldMessage& message : open.finished) std::free(message.value);
  }
}

HeldMessage OpenMessages::close(int32_t k, Open& open) const noexcept {
  // Room never written is given back (glibc shrinks in place): librdkafka holds a value until
  // its acknowledgement and counts only its length against its queue's bound.
  if (open.capacity > open.rows) {
    void* exact = std::realloc(open.value, static_cast<size_t>(open.rows) * width_);
    if (exact != nullptr) open.value = static_cast<char*>(exact);
  }
  const HeldMessage message{k, open.value, open.rows, open.epoch};
  open.last = open.rows;
  open.value = nullptr;
  open.rows = open.capacity = 0;
  return message;
}

void OpenMessages::finish(int32_t k, Open& open) {
  open.finished.emplace_back();  // (may throw: then nothing changed)
  open.finished.back() = close(k, open);
}

void OpenMessages::room(int32_t k, Open& open, size_t most) {
  const auto limit = static_cast<int64_t>(most);
  if (open.rows >= limit) finish(k, open);  // full: it waits for take()
  const int64_t rows = std::min(open.capacity ? 2 * open.capacity
                                               : std::max(2 * open.last, kFirstRows),
                                 limit);
  void* grown = std::realloc(open.value, static_cast<size_t>(rows) * width_);
  if (grown == nullptr) throw std::bad_alloc();
  open.value = static_cast<char*>(grown);
  open.capacity = rows;
}

void OpenMessages::append(const char* rows, size_t n, size_t width, size_t copied,
                          size_t key_offset, size_t key_width, const uint8_t* keep, size_t most,
                          int64_t epoch) {
  if (keys_.size() == 0) {
    keys_.reset(key_width);
    width_ = copied;
  }
  // The keys first, so that the copy can prefetch the place of the row kWriteAhead rows on.
  batch_keys_.resize(n);
  number_keys(keys_, rows + key_offset, n, width, [&](size_t i, int32_t k) {
    if (static_cast<size_t>(k) >= open_.size()) open_.resize(static_cast<size_t>(k) + 1);
    Open& open = open_[k];
    if (!open.listed) {
      order_.push_back(k);
      open.listed = true;
    }
    batch_keys_[i] = k;
  });
  const size_t words = copied / 8;
  for (size_t i = 0; i < n; ++i) {
    if (i + kWriteAhead < n) {
      const Open& ahead = open_[batch_keys_[i + kWriteAhead]];
      if (ahead.rows < ahead.capacity) {
        const char* place = ahead.value + static_cast<size_t>(ahead.rows) * copied;
        __builtin_prefetch(place, 1);
        __builtin_prefetch(place + copied - 1, 1);
      }
    }
    const int32_t k = batch_keys_[i];
    Open& open = open_[k];
    if (open.rows > 0 && open.epoch != epoch) finish(k, open);  // (a reconnect: a new epoch)
    if (open.rows == open.capacity) room(k, open, most);
    open.epoch = epoch;
    char* out = open.value + static_cast<size_t>(open.rows) * copied;
    const char* row = rows + i * width;
    for (size_t w = 0; w < words; ++w) {  // fixed-size memcpy: plain 8-byte moves
      uint64_t value, mask;
      std::memcpy(&value, row + 8 * w, 8);
      std::memcpy(&mask, keep + 8 * w, 8);
      value &= mask;
      std::memcpy(out + 8 * w, &value, 8);
    }
    for (size_t b = 8 * words; b < copied; ++b) out[b] = static_cast<char>(row[b] & keep[b]);
    ++open.rows;
    ++held_;
  }
}

void OpenMessages::take(bool all, size_t most, std::vector<HeldMessage>& out) {
  const auto limit = static_cast<int64_t>(most);
  auto goes = [&](const Open& open) { return open.rows > 0 && (all || open.rows >= limit); };
  size_t count = 0;
  for (int32_t k : order_) count += open_[k].finished.size() + goes(open_[k]);
  out.clear();
  out.reserve(count);  // (the only call that may throw: then nothing is taken)
  size_t kept = 0;
  for (int32_t k : order_) {
    Open& open = open_[k];
    out.insert(out.end(), open.finished.begin(), open.finished.end());
    open.finished.clear();
    if (goes(open)) out.push_back(close(k, open));
    open.listed = open.rows > 0;
    if (open.listed) order_[kept++] = k;
  }
  order_.resize(kept);
  for (const HeldMessage& message : out) held_ -= message.rows;
}

}  // namespace fh
