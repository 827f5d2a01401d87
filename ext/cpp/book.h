// Order books rebuilt from depth records (diffs and published snapshots), per symbol, following
// Binance's local-book procedure (protocol doc §5) on the consumer side.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "records.h"

namespace fh {

// A row of a published depth snapshot (with DEPTH_FIRST..DEPTH_LAST; U = u = lastUpdateId).
constexpr uint8_t DEPTH_SNAPSHOT = 4;

// Prices fit int64 at 1e-8; level quantities of cheap tokens do not (128-bit, as on the wire).
struct Level {
  int64_t price;
  Int128LE qty;
};

// Price levels of one symbol, best first on each side. max_levels > 0 keeps only the best
// max_levels per side (levels pushed out are forgotten).
class Book {
 public:
  explicit Book(uint32_t max_levels = 0) : max_levels_(max_levels) {}
  void clear() { sides_[0].clear(); sides_[1].clear(); }
  void set(uint8_t side, int64_t price, Int128LE qty);  // qty 0 removes the level
  const std::vector<Level>& side(uint8_t side) const { return sides_[side]; }
  bool crossed() const {  // best bid at or above best ask: crossed or locked
    return !sides_[0].empty() && !sides_[1].empty() && sides_[0][0].price >= sides_[1][0].price;
  }

 private:
  std::vector<Level> sides_[2];  // [SIDE_BID] descending prices, [SIDE_ASK] ascending
  uint32_t max_levels_;
};

enum BookState : uint8_t {
  BOOK_NO_SNAPSHOT = 0,  // no snapshot seen yet: buffering diffs
  BOOK_VALID = 1,
  BOOK_GAP = 2,          // a diff skipped update ids: buffering until the next snapshot
  BOOK_STALE = 3,        // the last snapshot was older than the buffered diffs
  BOOK_OVERFLOW = 4,     // the diff buffer filled before a snapshot came
};

struct SymbolBook {
  explicit SymbolBook(uint32_t max_levels) : book(max_levels) {}
  Book book;
  int64_t update_id = 0;  // u of the last applied event (lastUpdateId after a snapshot)
  uint8_t state = BOOK_NO_SNAPSHOT;
  int64_t expected = 0, received = 0;  // last gap: U expected (<=), U received; or stale: U
  int64_t changed_ns = 0;               // ts_recv of the row that last changed `state`
  uint64_t gaps = 0, snapshots = 0, events = 0;
  uint64_t crossed = 0;  // events after which the valid book was crossed or locked
  std::vector<DepthRecord> buffer;  // diff rows since the book became invalid (§5 step 2)
  // event in progress (its rows may span several apply() calls)
  uint8_t mode = 0;
};

class BookSet {
 public:
  BookSet(uint32_t max_levels, size_t max_buffer)
      : max_levels_(max_levels), max_buffer_(max_buffer) {}
  void apply(const DepthRecord* rows, size_t count);
  const SymbolBook* find(std::string_view symbol) const;
  std::vector<std::string> symbols() const;

 private:
  SymbolBook& book_for(const DepthRecord& row);
  void row(SymbolBook& b, const DepthRecord& r);
  void begin_diff(SymbolBook& b, const DepthRecord& r);
  void end_snapshot(SymbolBook& b, const DepthRecord& r);
  void invalidate(SymbolBook& b, uint8_t state, const DepthRecord& r, int64_t expected);
  std::unordered_map<std::string, SymbolBook> books_;
  uint32_t max_levels_;
  size_t max_buffer_;
  SymbolBook* last_ = nullptr;  // rows of one symbol come in runs: skip the hash lookup
  char last_symbol_[kSymbolWidth] = {};
};

}  // namespace fh
