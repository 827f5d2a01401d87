#include "book.h"

#include <algorithm>
#include <cstring>

namespace fh {

namespace {
enum Mode : uint8_t { MODE_SKIP = 0, MODE_APPLY, MODE_BUFFER, MODE_SNAPSHOT };

std::string_view symbol_of(const DepthRecord& r) {
  return std::string_view(r.symbol, strnlen(r.symbol, kSymbolWidth));
}
}  // namespace

void Book::set(uint8_t side, int64_t price, Int128LE qty) {
  if (side > SIDE_ASK) return;
  std::vector<Level>& levels = sides_[side];
  // best first: bids by descending price, asks by ascending price
  auto it = side == SIDE_BID
      ? std::lower_bound(levels.begin(), levels.end(), price,
                         [](const Level& l, int64_t p) { return l.price > p; })
      : std::lower_bound(levels.begin(), levels.end(), price,
                         [](const Level& l, int64_t p) { return l.price < p; });
  bool found = it != levels.end() && it->price == price;
  if (qty.lo == 0 && qty.hi == 0) {
    if (found) levels.erase(it);
    return;
  }
  if (found) {
    it->qty = qty;
    return;
  }
  if (max_levels_ && static_cast<size_t>(it - levels.begin()) >= max_levels_) return;
  levels.insert(it, Level{price, qty});
  if (max_levels_ && levels.size() > max_levels_) levels.pop_back();
}

SymbolBook& BookSet::book_for(const DepthRecord& r) {
  if (last_ != nullptr && std::memcmp(last_symbol_, r.symbol, kSymbolWidth) == 0) return *last_;
  auto it = books_.try_emplace(std::string(symbol_of(r)), max_levels_).first;
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
  b.book.clear();
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
    b.buffer.clear();
    if (b.state != BOOK_GAP) invalidate(b, BOOK_OVERFLOW, r, 0);
  }
}

void BookSet::end_snapshot(SymbolBook& b, const DepthRecord& r) {
  const int64_t last = r.last_update_id;
  b.snapshots++;
  std::vector<DepthRecord> buffered;
  buffered.swap(b.buffer);
  if (!buffered.empty() && last < buffered.front().first_update_id) {
    invalidate(b, BOOK_STALE, r, buffered.front().first_update_id);
    b.buffer.swap(buffered);  // wait for a newer snapshot
    return;
  }
  b.update_id = last;
  b.state = BOOK_VALID;
  b.changed_ns = r.ts_recv;
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
    case MODE_APPLY:
    case MODE_SNAPSHOT:
      b.book.set(r.side, r.price, r.qty);
      break;
    case MODE_BUFFER:
      b.buffer.push_back(r);
      return;
    default:
      break;
  }
  if (r.flags & DEPTH_LAST) {
    if (b.mode == MODE_APPLY) b.update_id = r.last_update_id;
    if (b.mode == MODE_SNAPSHOT) end_snapshot(b, r);
    if (b.mode != MODE_SKIP && b.state == BOOK_VALID && b.book.crossed()) b.crossed++;
    b.mode = MODE_SKIP;
  }
}

void BookSet::apply(const DepthRecord* rows, size_t count) {
  for (size_t i = 0; i < count; i++) {
    const DepthRecord& r = rows[i];
    SymbolBook& b = book_for(r);
    if (r.flags & DEPTH_FIRST) {
      if (r.flags & DEPTH_SNAPSHOT) {
        // a valid book does not need it; otherwise it replaces whatever we have
        b.mode = b.state == BOOK_VALID ? MODE_SKIP : MODE_SNAPSHOT;
        if (b.mode == MODE_SNAPSHOT) b.book.clear();
        if (b.mode == MODE_SKIP) b.snapshots++;
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
