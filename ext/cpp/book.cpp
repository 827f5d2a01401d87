#include "book.h"

#include <algorithm>
#include <cstring>

namespace fh {

namespace {
enum Mode : uint8_t { MODE_SKIP = 0, MODE_APPLY, MODE_BUFFER, MODE_SNAPSHOT };

// A buffer past max_buffer: emptied, and its memory given back (clear() keeps the capacity).
void release(std::vector<DepthRecord>& buffer) { std::vector<DepthRecord>().swap(buffer); }

Top top_of(const Book& book, int64_t update_id) {
  Top t;
  t.update_id = update_id;
  if (book.depth(SIDE_BID)) {
    t.bid_price = book.level(SIDE_BID, 0).price;
    t.bid_qty = book.level(SIDE_BID, 0).qty;
  }
  if (book.depth(SIDE_ASK)) {
    t.ask_price = book.level(SIDE_ASK, 0).price;
    t.ask_qty = book.level(SIDE_ASK, 0).qty;
  }
  return t;
}

// Copies the best `depth` levels of one side into a book record's columns.
uint8_t copy_levels(const Book& book, uint8_t side, uint32_t depth, int64_t* prices,
                    Int128LE* qtys) {
  const size_t n = std::min<size_t>({book.depth(side), depth, kBookLevels});
  for (size_t i = 0; i < n; i++) {
    prices[i] = book.level(side, i).price;
    qtys[i] = book.level(side, i).qty;
  }
  return static_cast<uint8_t>(n);
}
}  // namespace

void Book::set(uint8_t side, int64_t price, Int128LE qty) {
  if (side > SIDE_ASK) return;
  std::vector<Level>& levels = sides_[side];
  // worst first, best last: bids by ascending price, asks by descending price
  auto it = side == SIDE_BID
      ? std::lower_bound(levels.begin(), levels.end(), price,
                         [](const Level& l, int64_t p) { return l.price < p; })
      : std::lower_bound(levels.begin(), levels.end(), price,
                         [](const Level& l, int64_t p) { return l.price > p; });
  bool found = it != levels.end() && it->price == price;
  if (qty.lo == 0 && qty.hi == 0) {
    if (found) levels.erase(it);
    return;
  }
  if (found) {
    it->qty = qty;
    return;
  }
  // a level no better than one forgotten may sit below others we no longer know: not kept
  const int64_t horizon = horizon_[side];
  if (side == SIDE_BID ? price <= horizon : price >= horizon) return;
  // the levels better than this one are those after `it`
  if (max_levels_ && static_cast<size_t>(levels.end() - it) >= max_levels_) {
    forget(side, price);
    return;
  }
  levels.insert(it, Level{price, qty});
  if (max_levels_ && levels.size() > max_levels_) {
    forget(side, levels.front().price);
    levels.erase(levels.begin());
  }
}

void Book::forget(uint8_t side, int64_t price) {
  horizon_[side] = side == SIDE_BID ? std::max(horizon_[side], price)
                                    : std::min(horizon_[side], price);
}

size_t Book::copy_best(uint8_t side, size_t n, Level* out) const {
  const size_t count = std::min(n, depth(side));
  for (size_t i = 0; i < count; i++) out[i] = level(side, i);
  return count;
}

SymbolBook* BookSet::lookup(const char* symbol) {
  if (last_ != nullptr && std::memcmp(last_symbol_, symbol, kSymbolWidth) == 0) return last_;
  auto it = books_.find(std::string(symbol_of(symbol)));
  if (it == books_.end()) return nullptr;
  last_ = &it->second;
  std::memcpy(last_symbol_, symbol, kSymbolWidth);
  return last_;
}

SymbolBook& BookSet::book_for(const DepthRecord& r) {
  if (last_ != nullptr && std::memcmp(last_symbol_, r.symbol, kSymbolWidth) == 0) return *last_;
  auto it = books_.try_emplace(std::string(symbol_of(r.symbol)), max_levels_).first;
  last_ = &it->second;  // unordered_map never moves its elements
  std::memcpy(last_symbol_, r.symbol, kSymbolWidth);
  return *last_;
}

void BookSet::invalidate(SymbolBook& b, uint8_t state, const DepthRecord& r, int64_t expected) {
  if (b.state == BOOK_VALID || b.state != state) b.changed_ns = r.ts_recv;
  b.expected = expected;
  if (state == BOOK_GAP) {
    b.gaps++;
    b.received = r.first_update_id;
  }
  b.state = state;
  b.recording = false;  // (what it recorded stays buffered: the diffs since then, in order)
  b.book.clear();
  b.tops_count = 0;  // tickers are compared with valid books only
  b.tickers_uncovered += b.pending.size();
  b.pending.clear();
}

void BookSet::end_event(SymbolBook& b, const DepthRecord& r) {
  const size_t known = b.book.known_depth();
  if (known < min_levels_) {  // its best may be a level it does not know
    invalidate(b, BOOK_SHORT, r, b.update_id + 1);
    b.shorts++;
    want(r, b.update_id + 1, WANT_SHORT);
    return;
  }
  applied(b, r);
  if (known < refresh_levels_ && !b.recording) {
    b.recording = true;  // from the next event on
    b.buffer.clear();
    b.refreshes++;
    want(r, b.update_id + 1, WANT_REFRESH);
  }
}

void BookSet::want(const DepthRecord& r, int64_t first_update_id, WantKind kind) {
  if (keep_wants_) wants_.push_back({std::string(symbol_of(r.symbol)), first_update_id, kind});
}

int64_t BookSet::need(const SymbolBook& b) {
  // (with nothing buffered, the book was valid at update_id: short, stale after a short, or
  // recording before its first diff; or it never had a snapshot, update_id 0)
  return b.buffer.empty() ? b.update_id + 1 : b.buffer.front().first_update_id;
}

std::vector<Want> BookSet::take_wants() {
  std::vector<Want> out;
  for (Want& w : wants_) {
    const SymbolBook* b = find(w.symbol);  // (a snapshot since may have made it valid)
    if (b == nullptr) continue;
    if (w.kind == WANT_REFRESH ? b->state == BOOK_VALID && b->recording
                               : b->state != BOOK_VALID) {
      out.push_back(std::move(w));
    }
  }
  wants_.clear();
  return out;
}

void BookSet::applied(SymbolBook& b, const DepthRecord& r) {
  b.ts_event = r.ts_event;
  b.ts_recv = r.ts_recv;
  const bool unchecked = b.update_id > b.checked;  // (not an event a rebuild replays)
  b.checked = std::max(b.checked, b.update_id);
  if (unchecked && b.book.crossed()) {
    b.crossed++;
    b.crossed_update_id = b.update_id;
    b.crossed_bid = b.book.level(SIDE_BID, 0).price;
    b.crossed_ask = b.book.level(SIDE_ASK, 0).price;
  }
  const size_t newest = (b.tops_count + kTopHistory - 1) % kTopHistory;
  if (b.tops_count && b.tops[newest].update_id == b.update_id) return;  // (snapshot replay)
  b.tops[b.tops_count % kTopHistory] = top_of(b.book, b.update_id);
  b.tops_count++;
  if (b.pending.empty()) return;
  size_t kept = 0;
  for (const Top& t : b.pending) {
    if (t.update_id > b.update_id) {
      b.pending[kept++] = t;
    } else {
      compare(b, t);
    }
  }
  b.pending.resize(kept);
}

void BookSet::compare(SymbolBook& b, const Top& ticker) {
  const size_t n = std::min(b.tops_count, kTopHistory);
  for (size_t i = 0; i < n; i++) {
    const Top& top = b.tops[(b.tops_count - 1 - i) % kTopHistory];
    if (top.update_id < ticker.update_id) break;  // newest first: not at an event's end
    if (top.update_id != ticker.update_id) continue;
    b.tickers_checked++;
    if (!(top == ticker)) {
      b.ticker_mismatches++;
      b.mismatch_ticker = ticker;
      b.mismatch_book = top;
    }
    return;
  }
  b.tickers_uncovered++;
}

void BookSet::check_tickers(const BookTickerRecord* rows, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const BookTickerRecord& r = rows[i];
    SymbolBook* found = lookup(r.symbol);
    if (found == nullptr) continue;  // no depth of this symbol: nothing to compare with
    SymbolBook& b = *found;
    if (b.state != BOOK_VALID) {
      b.tickers_uncovered++;
      continue;
    }
    Top t;
    t.update_id = r.update_id;
    t.bid_price = r.bid_price;
    t.bid_qty = r.bid_qty;
    t.ask_price = r.ask_price;
    t.ask_qty = r.ask_qty;
    if (t.update_id <= b.update_id) {
      compare(b, t);
    } else {
      if (b.pending.size() >= kPendingTickers) {
        b.pending.erase(b.pending.begin());
        b.tickers_uncovered++;
      }
      b.pending.push_back(t);
    }
  }
}

size_t BookSet::take_tops(BookRecord* out, uint32_t depth, int64_t now_ns) {
  size_t n = 0;
  for (auto& [symbol, b] : books_) {
    if (b.state != BOOK_VALID || b.published == b.update_id) continue;
    BookRecord& rec = out[n++];
    std::memset(&rec, 0, sizeof(rec));
    rec.ts_recv = b.ts_recv;
    rec.ts_event = b.ts_event;
    rec.ts = now_ns;
    rec.update_id = b.update_id;
    rec.bid_count = copy_levels(b.book, SIDE_BID, depth, rec.bid_price, rec.bid_qty);
    rec.ask_count = copy_levels(b.book, SIDE_ASK, depth, rec.ask_price, rec.ask_qty);
    std::memcpy(rec.symbol, symbol.data(), std::min(symbol.size(), kSymbolWidth));
    b.published = b.update_id;
  }
  return n;
}

std::vector<Alert> BookSet::take_alerts(int64_t now_ns, int64_t min_interval_ns) {
  std::vector<Alert> out;
  for (auto& [symbol, b] : books_) {
    if (b.crossed == b.reported_crossed && b.ticker_mismatches == b.reported_mismatches) continue;
    if (b.reported_ns && now_ns - b.reported_ns < min_interval_ns) continue;
    out.push_back({symbol, b.crossed - b.reported_crossed,
                   b.ticker_mismatches - b.reported_mismatches});
    b.reported_crossed = b.crossed;
    b.reported_mismatches = b.ticker_mismatches;
    b.reported_ns = now_ns;
  }
  std::sort(out.begin(), out.end(),
            [](const Alert& a, const Alert& b) { return a.symbol < b.symbol; });
  return out;
}

void BookSet::begin_diff(SymbolBook& b, const DepthRecord& r) {
  if (b.state == BOOK_VALID) {
    if (r.last_update_id < b.update_id) {
      b.mode = MODE_SKIP;  // older than the book (§5 step 7)
      return;
    }
    if (r.first_update_id <= b.update_id + 1) {
      b.mode = MODE_APPLY;
      return;
    }
    invalidate(b, BOOK_GAP, r, b.update_id + 1);
    b.buffer.clear();
  }
  b.mode = MODE_BUFFER;
  if (b.buffer.size() >= max_buffer_) {  // keep the newest diffs: a fresh snapshot fits them
    release(b.buffer);
    if (b.state != BOOK_GAP) invalidate(b, BOOK_OVERFLOW, r, 0);
  }
}

void BookSet::end_snapshot(SymbolBook& b, const DepthRecord& r) {
  const int64_t last = r.last_update_id;
  b.snapshots++;
  const int64_t needed = need(b);
  if (last + 1 < needed) {
    invalidate(b, BOOK_STALE, r, needed);
    want(r, needed, WANT_STALE);
    return;  // its buffered diffs wait for a newer snapshot
  }
  std::vector<DepthRecord> buffered;
  buffered.swap(b.buffer);
  b.recording = false;
  for (uint8_t side : {SIDE_BID, SIDE_ASK}) {
    if (b.cut_sides & (1u << side)) b.book.cut(side);
  }
  b.update_id = last;
  b.state = BOOK_VALID;
  b.changed_ns = r.ts_recv;
  b.published = -1;  // a rebuilt book is published again, even at the same update id
  end_event(b, r);  // (short: the rest is buffered for the next one)
  // replay the buffered diffs (§5 steps 5-7): drop u <= lastUpdateId, apply the rest in order
  for (const DepthRecord& d : buffered) {
    if (d.flags & DEPTH_FIRST) {
      if (b.state != BOOK_VALID) {
        b.mode = MODE_BUFFER;  // a gap among the buffered diffs: wait for the next snapshot
      } else if (d.last_update_id <= last) {
        b.mode = MODE_SKIP;  // already in the snapshot
      } else {
        begin_diff(b, d);  // the first kept one must have U <= lastUpdateId + 1
      }
    }
    row(b, d);
  }
}

void BookSet::row(SymbolBook& b, const DepthRecord& r) {
  switch (b.mode) {
    case MODE_SNAPSHOT:
      if ((r.flags & DEPTH_CUT) && r.side <= SIDE_ASK) b.cut_sides |= 1u << r.side;
      b.book.set(r.side, r.price, r.qty);
      break;
    case MODE_APPLY:
      b.book.set(r.side, r.price, r.qty);
      if (b.recording) {
        if (b.buffer.size() < max_buffer_) {
          b.buffer.push_back(r);
        } else {  // too long without a snapshot: again once an event ends short
          b.recording = false;
          release(b.buffer);
        }
      }
      break;
    case MODE_BUFFER:
      b.buffer.push_back(r);
      return;
    default:
      break;
  }
  if (r.flags & DEPTH_LAST) {
    if (b.mode == MODE_APPLY) {
      b.update_id = r.last_update_id;
      end_event(b, r);
    }
    if (b.mode == MODE_SNAPSHOT) end_snapshot(b, r);
    b.mode = MODE_SKIP;
  }
}

void BookSet::apply(const DepthRecord* rows, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const DepthRecord& r = rows[i];
    SymbolBook& b = book_for(r);
    if (r.flags & DEPTH_FIRST) {
      if (r.flags & DEPTH_SNAPSHOT) {
        // A valid book needs none unless it records for a refresh and the diffs it recorded
        // follow on from this one; otherwise it replaces whatever we have.
        const bool rebuild = b.state != BOOK_VALID ||
                             (b.recording && r.last_update_id + 1 >= need(b));
        b.mode = rebuild ? MODE_SNAPSHOT : MODE_SKIP;
        if (rebuild) {
          b.book.clear();
          b.cut_sides = 0;
          // not valid while its rows come (they may span several calls)
          if (b.state == BOOK_VALID) b.state = BOOK_REBUILDING;
        } else {
          b.snapshots++;
        }
      } else {
        b.events++;
        begin_diff(b, r);
      }
    }
    row(b, r);
  }
}

const SymbolBook* BookSet::find(std::string_view symbol) const {
  auto it = books_.find(std::string(symbol));
  return it == books_.end() ? nullptr : &it->second;
}

std::vector<std::string> BookSet::symbols() const {
  std::vector<std::string> out;
  out.reserve(books_.size());
  for (const auto& item : books_) out.push_back(item.first);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace fh
