// Rows grouped by a fixed-width key (a record's symbol): the Kafka sink sends one message per
// (kind, symbol), and the other encodings and the precision check group a batch by symbol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fh {

// Dense numbers 0, 1, ... for fixed-width keys, in order of first appearance (open
// addressing, at most half full; keys are copied).
class KeyIndex {
 public:
  // Forgets every key; keys are `width` bytes from now on. Clears only the slots taken.
  void reset(size_t width);
  // The key's number, a new one (size() - 1 after) for a key not met since reset(). `Width`:
  // width() when known at compile time (a record's symbol: comparisons and the hash are then
  // a few word loads, not a call), else 0.
  template <size_t Width>
  int32_t find_or_add(const char* key);
  const char* key(int32_t i) const noexcept { return keys_.data() + static_cast<size_t>(i) * width_; }
  size_t size() const noexcept { return taken_.size(); }
  size_t width() const noexcept { return width_; }

 private:
  size_t width_ = 0;
  std::vector<int32_t> slots_ = std::vector<int32_t>(64, -1);
  std::vector<size_t> taken_;  // per key: its slot
  std::vector<char> keys_;
};

// Groups n keys of `width` bytes, the i-th at keys + i * stride (a column of records), by
// equality: groups in order of first appearance, rows in their order inside a group; rows
// order[bounds[g]] .. order[bounds[g + 1] - 1] form group g (`bounds` holds n + 1 entries).
// Returns the number of groups.
size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds);

// A message OpenMessages::take hands over: `rows` rows of the key numbered `key`, all of
// `epoch`, in `value` (malloc'd, exactly that size; the taker frees it or passes it on).
struct HeldMessage {
  int32_t key;
  char* value;
  int64_t rows;
  int64_t epoch;
};

// One kind's rows copied, in one pass in row order, into one open message per symbol, which
// stays open from batch to batch until taken; a message holds rows of one epoch (a
// connection's), at most `most` of them (`most` the same on every call).
class OpenMessages {
 public:
  OpenMessages() = default;
  OpenMessages(const OpenMessages&) = delete;
  OpenMessages& operator=(const OpenMessages&) = delete;
  ~OpenMessages();

  // Appends n rows of `epoch` and `width` bytes (the key at key_offset, key_width bytes: the
  // same for every call) to their keys' messages, each row's first `copied` bytes (the same
  // for every call: all of them, or those before the key), each byte ANDed with keep[its
  // offset in the row] (0 over padding, which a message carries as zeros whatever the rows
  // hold); a key's message of another epoch is finished first. On an exception numbering the
  // keys (an allocation) no row is appended; copying, the rows before the one it met are.
  void append(const char* rows, size_t n, size_t width, size_t copied, size_t key_offset,
              size_t key_width, const uint8_t* keep, size_t most, int64_t epoch);
  // Into `out`: every finished message (`most` rows, or of an earlier epoch), and with `all`
  // every open one too; key by key in order of first appearance since that key's last take,
  // each key's in row order.
  void take(bool all, size_t most, std::vector<HeldMessage>& out);
  const char* key(int32_t k) const noexcept { return keys_.key(k); }
  // Rows appended and not yet taken.
  int64_t held() const noexcept { return held_; }

 private:
  struct Open {
    char* value = nullptr;  // its open message, nullptr when none
    int64_t rows = 0, capacity = 0;
    int64_t epoch = 0;
    int64_t last = 0;  // the rows of its last message (the next one's room follows it)
    std::vector<HeldMessage> finished;  // not yet taken
    bool listed = false;  // in order_
  };
  // Key k's open message, handed over: `open` is empty after.
  HeldMessage close(int32_t k, Open& open) const noexcept;
  void finish(int32_t k, Open& open);  // closed into open.finished, for take()
  void room(int32_t k, Open& open, size_t most);

  KeyIndex keys_;
  size_t width_ = 0;  // a row's in a message (append's `copied`)
  std::vector<Open> open_;  // per key number
  std::vector<int32_t> order_;  // keys with rows not yet taken, in order of first appearance
  std::vector<int32_t> batch_keys_;  // append()'s rows' key numbers
  int64_t held_ = 0;
};

}  // namespace fh
