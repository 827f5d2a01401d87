// Order books rebuilt from depth records (diffs and published snapshots), per symbol, following
// Binance's local-book procedure (protocol doc §5) on the consumer side.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "records.h"

namespace fh {

// A row of a published depth snapshot (with DEPTH_FIRST..DEPTH_LAST; U = u = lastUpdateId).
constexpr uint8_t DEPTH_SNAPSHOT = 4;
// A snapshot row of a side the request's limit cut: levels beyond the side's last are unknown.
constexpr uint8_t DEPTH_CUT = 8;

// Prices fit int64 at 1e-8; level quantities of cheap tokens do not (128-bit, as on the wire).
struct Level {
  int64_t price;
  Int128LE qty;
};

// Price levels of one symbol. max_levels > 0 keeps only the best max_levels per side: a level
// pushed out is forgotten, and the best forgotten price is the side's horizon. Once the levels
// above it are deleted a forgotten one may be the best, so a level no better than the horizon
// is not kept either: a side may then hold fewer, never a wrong best, until the book is
// rebuilt from a snapshot (BookSet's refresh_levels and min_levels say when). A snapshot side
// cut at its limit has a horizon too: its worst level.
class Book {
 public:
  explicit Book(uint32_t max_levels = 0) : max_levels_(max_levels) {}
  void clear() {
    sides_[0].clear();
    sides_[1].clear();
    horizon_[0] = INT64_MIN;
    horizon_[1] = INT64_MAX;
  }
  void set(uint8_t side, int64_t price, Int128LE qty);  // qty 0 removes the level
  void cut(uint8_t side) {  // levels worse than the side's worst are unknown
    if (depth(side)) forget(side, sides_[side].front().price);
  }
  size_t depth(uint8_t side) const { return sides_[side].size(); }
  // The levels of its thinner side that forgot levels (beyond them, levels are unknown);
  // SIZE_MAX when neither did.
  size_t known_depth() const {
    size_t known = SIZE_MAX;
    if (horizon_[0] != INT64_MIN) known = depth(0);
    if (horizon_[1] != INT64_MAX) known = std::min(known, depth(1));
    return known;
  }
  const Level& level(uint8_t side, size_t i) const {  // i = 0: the best
    return sides_[side][sides_[side].size() - 1 - i];
  }
  // The best min(n, depth) levels, best first, into `out`; returns how many.
  size_t copy_best(uint8_t side, size_t n, Level* out) const;
  bool crossed() const {  // best bid at or above best ask: crossed or locked
    return depth(0) && depth(1) && level(0, 0).price >= level(1, 0).price;
  }

 private:
  // Best LAST ([SIDE_BID] ascending prices, [SIDE_ASK] descending): most changes are near
  // the top, so an insert or delete there moves few levels even in a 5000-level book.
  std::vector<Level> sides_[2];
  // per side, the best price forgotten since the last clear (none: the worst price there is)
  int64_t horizon_[2] = {INT64_MIN, INT64_MAX};
  uint32_t max_levels_;
  void forget(uint8_t side, int64_t price);
};

// Best bid and ask at one update id, of the book or of a bookTicker (0 price: side empty).
struct Top {
  int64_t update_id = 0;
  int64_t bid_price = 0, ask_price = 0;
  Int128LE bid_qty = {0, 0}, ask_qty = {0, 0};
  bool operator==(const Top& o) const {
    return bid_price == o.bid_price && ask_price == o.ask_price && bid_qty.lo == o.bid_qty.lo &&
           bid_qty.hi == o.bid_qty.hi && ask_qty.lo == o.ask_qty.lo && ask_qty.hi == o.ask_qty.hi;
  }
};

// A bookTicker is compared with the book only at its own update id `u` (the two streams are
// not synchronised): with the tops after the last kTopHistory applied events when it arrives
// late, or, when early, once the book reaches `u` (up to kPendingTickers wait). A `u` inside
// a depth event's [U; u) is an intermediate state the diffs never show: not compared.
constexpr size_t kTopHistory = 64;
constexpr size_t kPendingTickers = 64;

enum BookState : uint8_t {
  BOOK_NO_SNAPSHOT = 0,  // no snapshot seen yet: buffering diffs
  BOOK_VALID = 1,
  BOOK_GAP = 2,          // a diff skipped update ids: buffering until the next snapshot
  BOOK_STALE = 3,        // the last snapshot was older than the buffered diffs
  BOOK_OVERFLOW = 4,     // the diff buffer filled before a snapshot came
  BOOK_SHORT = 5,        // a side with a horizon fell below min_levels: buffering until a snapshot
  BOOK_REBUILDING = 6,   // was valid; a snapshot it recorded for is being applied (rows to come)
};

struct SymbolBook {
  explicit SymbolBook(uint32_t max_levels) : book(max_levels) {}
  Book book;
  int64_t update_id = 0;  // u of the last applied event (lastUpdateId after a snapshot)
  uint8_t state = BOOK_NO_SNAPSHOT;
  int64_t expected = 0, received = 0;  // last gap: U expected (<=), U received; or stale: U
  int64_t changed_ns = 0;               // ts_recv of the row that last changed `state`
  uint64_t gaps = 0, snapshots = 0, events = 0, shorts = 0, refreshes = 0;
  // valid, and its diffs kept in `buffer` since a side fell below refresh_levels: a snapshot
  // they follow on from rebuilds it (the book stays valid meanwhile)
  bool recording = false;
  uint64_t crossed = 0;  // events after which the valid book was crossed or locked
  std::vector<DepthRecord> buffer;  // diff rows since the book became invalid (§5 step 2)
  int64_t ts_event = 0, ts_recv = 0;  // of the depth row that last changed the book
  int64_t published = -1;             // update_id of the last top taken (take_tops)
  int64_t checked = 0;  // the newest update id checked for a crossing (a rebuild replays older)
  int64_t crossed_update_id = 0, crossed_bid = 0, crossed_ask = 0;  // the last crossing
  // bookTicker checks
  Top tops[kTopHistory];  // ring, newest at tops_count - 1 (mod kTopHistory)
  size_t tops_count = 0;
  std::vector<Top> pending;  // tickers ahead of the book
  uint64_t tickers_checked = 0, ticker_mismatches = 0, tickers_uncovered = 0;
  Top mismatch_ticker, mismatch_book;  // the last disagreement
  uint64_t reported_crossed = 0, reported_mismatches = 0;  // as of the last alert
  int64_t reported_ns = 0;
  // event in progress (its rows may span several apply() calls)
  uint8_t mode = 0;
  uint8_t cut_sides = 0;  // snapshot in progress: bit 1 << side for a side cut at its limit
};

// New crossings / ticker disagreements of one symbol since its last alert.
struct Alert {
  std::string symbol;
  uint64_t crossed, mismatches;
};

// Why a book wants a snapshot.
enum WantKind : uint8_t {
  WANT_SHORT = 0,    // invalid: a side fell below min_levels
  WANT_STALE = 1,    // invalid: the snapshot it got was too old for its buffered diffs
  WANT_REFRESH = 2,  // valid, recording: a side fell below refresh_levels
};

// A symbol's book that needs a snapshot its own diffs follow on from (lastUpdateId + 1 >=
// first_update_id).
struct Want {
  std::string symbol;
  int64_t first_update_id;
  uint8_t kind;  // WantKind
};

class BookSet {
 public:
  // For a side with a horizon (levels beyond it unknown): fewer than min_levels makes the
  // book invalid until the next snapshot, as a gap does (its best may be unknown); fewer than
  // refresh_levels starts recording its diffs, so that a snapshot can rebuild the valid book.
  // Wants are kept for take_wants only when `wants` (a reader that fetches snapshots).
  BookSet(uint32_t max_levels, size_t max_buffer, uint32_t min_levels = 0,
          uint32_t refresh_levels = 0, bool wants = false)
      : max_levels_(max_levels),
        max_buffer_(max_buffer),
        min_levels_(min_levels),
        refresh_levels_(refresh_levels),
        keep_wants_(wants) {}
  void apply(const DepthRecord* rows, size_t count);
  void check_tickers(const BookTickerRecord* rows, size_t count);
  // A record of the best `depth` levels of every valid book changed since its last one;
  // `out` holds size() records. Returns how many were written.
  size_t take_tops(BookRecord* out, uint32_t depth, int64_t now_ns);
  // Symbols with new crossings or disagreements, each at most once per min_interval_ns.
  std::vector<Alert> take_alerts(int64_t now_ns, int64_t min_interval_ns);
  // The Wants since the last call that still hold (the book not rebuilt since), in order.
  std::vector<Want> take_wants();
  size_t size() const { return books_.size(); }
  const SymbolBook* find(std::string_view symbol) const;
  std::vector<std::string> symbols() const;

 private:
  SymbolBook& book_for(const DepthRecord& row);
  SymbolBook* lookup(const char* symbol);  // nullptr: no book of it yet
  void row(SymbolBook& b, const DepthRecord& r);
  void begin_diff(SymbolBook& b, const DepthRecord& r);
  void end_snapshot(SymbolBook& b, const DepthRecord& r);
  void invalidate(SymbolBook& b, uint8_t state, const DepthRecord& r, int64_t expected);
  // After an event (or a snapshot) applied to a valid book: a side with a horizon short of
  // min_levels makes it invalid, as a gap does; short of refresh_levels, it records (a Want).
  void end_event(SymbolBook& b, const DepthRecord& r);
  // The U a snapshot's lastUpdateId + 1 must reach for the book's buffered diffs (or, with
  // none, for the id the book reached) to follow on from it.
  static int64_t need(const SymbolBook& b);
  void applied(SymbolBook& b, const DepthRecord& r);
  void compare(SymbolBook& b, const Top& ticker);
  std::unordered_map<std::string, SymbolBook> books_;
  uint32_t max_levels_;
  size_t max_buffer_;
  uint32_t min_levels_, refresh_levels_;
  bool keep_wants_;
  std::vector<Want> wants_;
  void want(const DepthRecord& r, int64_t first_update_id, WantKind kind);
  SymbolBook* last_ = nullptr;  // rows of one symbol come in runs: skip the hash lookup
  char last_symbol_[kSymbolWidth] = {};
};

}  // namespace fh
