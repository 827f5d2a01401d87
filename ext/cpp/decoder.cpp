#include "decoder.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "fixed_point.h"
#include "key_map.h"
#include "key_code.h"
#include "simdjson.h"

namespace fh {

using simdjson::error_code;
namespace od = simdjson::ondemand;

namespace {

constexpr size_t kPadding = simdjson::SIMDJSON_PADDING;
// Where a diff-depth event's bids start is looked for (a combined wrapper and a futures header
// included), and the smallest frame for which indexing only the text before them pays.
constexpr size_t kHeadScan = 320;
constexpr size_t kHeadOnlyMin = 256;
// Impl::flat_frame: not a frame it reads, for the generic path.
constexpr int kFlatDeclined = -1;

// How a keyed JSON value becomes its column (tables in decoder_gen.h).
enum Reader : uint8_t {
  R_INTEGER, R_TIMESTAMP, R_FIXED8, R_FIXED128, R_BOOL, R_TEXT, R_SYMBOL
};

struct KeyField {
  const char* key;    // JSON key, also the `field` of an error
  uint32_t offset;    // of the column in the record
  Reader reader;
  uint32_t width;     // R_TEXT/R_SYMBOL: bytes
  bool required;
  int32_t null_flag;  // nullable: offset of the uint8 column set to 1 when a value came; -1 = no
};

struct SequenceDesc {
  bool checked;
  uint32_t first, last;  // offsets of the int64 id columns
  bool contiguous;       // else: only increasing
};

struct StreamGrammar {
  const char* name;  // suffix after `<symbol>@`, or the whole market-wide name
  Kind kind;
  uint8_t levels;
  int16_t utc_offset_min;
  bool market;  // `!…`: no symbol
  bool array;   // payload is an array of events
};

// A kind decoded from its tables alone: specialised per kind in decoder_gen.h.
template <Kind K>
struct Plain;

}  // namespace
}  // namespace fh

#include "decoder_gen.h"

namespace fh {
namespace {

// The fields a plain kind must have: one bit each, in its table's order.
template <Kind K>
constexpr uint32_t required_fields() {
  uint32_t mask = 0;
  for (size_t i = 0; i < std::size(Plain<K>::fields); ++i) {
    mask |= uint32_t(Plain<K>::fields[i].required) << i;
  }
  return mask;
}

// A 128-bit value as its little-endian column.
inline Int128LE split(int128 v) {
  return {static_cast<uint64_t>(v), static_cast<int64_t>(v >> 64)};
}

Error from_simdjson(error_code err) {
  switch (err) {
    case simdjson::INCORRECT_TYPE:
      return ERR_WRONG_TYPE;
    case simdjson::NUMBER_OUT_OF_RANGE:
    case simdjson::BIGINT_ERROR:
      return ERR_OVERFLOW;
    case simdjson::UTF8_ERROR:
      return ERR_INVALID_UTF8;
    case simdjson::NO_SUCH_FIELD:
      return ERR_MISSING_FIELD;
    default:
      return ERR_MALFORMED_JSON;
  }
}

Error from_decimal(DecimalStatus s) {
  switch (s) {
    case DecimalStatus::ok:
      return ERR_NONE;
    case DecimalStatus::too_many_decimals:
      return ERR_TOO_MANY_DECIMALS;
    case DecimalStatus::overflow:
      return ERR_OVERFLOW;
    default:
      return ERR_BAD_DECIMAL;
  }
}

}  // namespace

// Per (kind, symbol): the last emitted sequence id, when it came and on which leg.
struct SeqState {
  int64_t last;
  int64_t ts_recv;
  uint32_t met[2];  // per leg: its connection (leg_epoch) that met this stream's ids, if any
  uint8_t leg;
};

// Per (kind, symbol), while two legs overlap (apart from SeqState: the one connection's path
// does not carry it): what each leg has delivered, and the frames held for the other leg.
struct LegState {
  uint32_t seen_on[2];  // per leg: its connection that delivered seen[leg]
  int64_t seen[2];      // ... the highest id it delivered, emitted or not
  uint32_t held;        // frames of this stream held for the other leg (STATUS_HELD)
  int64_t held_low;     // ... a lower bound of their first ids (exact after an owed one)
};

// Kinds without ids, while two legs overlap: the frames emitted lately, by a hash of their
// rows less ts_recv (event time plus content), with when and on which leg they came. The
// other leg's copy comes within milliseconds; the oldest are forgotten first.
struct RecentFrames {
  static constexpr size_t kCapacity = 1 << 15;
  struct Arrival {
    int64_t ts_recv;
    uint8_t leg;
  };
  std::unordered_map<uint64_t, Arrival> seen;
  std::vector<uint64_t> order;  // ring of the hashes in `seen`, oldest at `next` when full
  size_t next = 0;

  void clear() {
    seen.clear();
    order.clear();
    next = 0;
  }
  void remember(uint64_t hash) {
    if (order.size() < kCapacity) {
      order.push_back(hash);
      return;
    }
    seen.erase(order[next]);
    order[next] = hash;
    next = (next + 1) % kCapacity;
  }
};

// Per-frame state: where rows go, and what went wrong.
struct Ctx {
  int64_t ts_recv = 0;
  const StreamInfo* stream = nullptr;  // none when neither a wrapper nor a hint names it
  bool event_seen = false;             // "e" already consumed by the dispatcher
  char window[2] = {};       // window tickers: "1h" of the "1hTicker" the dispatcher read
  Error error = ERR_NONE;
  const char* where = "";
  Kind full = KIND_NONE;
  // Depth levels not in the form the fast reader takes (Impl::depth_levels): decode the frame
  // again through simdjson value by value, which finds and names whatever is wrong.
  bool retry_generic = false;
  // Depth in Binance's field order: how many closing braces end the frame after the depth
  // object's own (0: not read by hand: array elements, the generic pass), where the frame ends,
  // and whether Impl::depth_rest read it to that end (nothing is left for simdjson to walk).
  uint8_t closers = 0;
  const char* frame_end = nullptr;
  bool rest_read = false;
  // Stage 1 indexed only the event's header (Impl::parse_frame), and `bids` is where the bids'
  // '[' is in the frame: the frame decodes in this pass only if depth_rest reads it from there
  // to its end; otherwise it is indexed whole.
  bool head_only = false;
  const char* bids = nullptr;
  const char* bids_token = nullptr;  // ... and where its copy is in the indexed header
  // A sequence update to apply once the whole frame is known good.
  // Known symbol: its slot (no second lookup); new symbol: the map to insert seq_key into.
  SeqState* seq_slot = nullptr;
  SeqState* met_slot = nullptr;  // a DUPLICATE's stream: its leg is in step on it
  LegState* legs = nullptr;      // overlap: the record's stream
  KeyMap<kSymbolWidth, SeqState>* seq_map = nullptr;
  char seq_key[kSymbolWidth];
  int64_t seq_value = 0;
  int64_t seq_first = 0;       // HELD: the record's first id
  bool owed = false;           // HELD or AHEAD: the other leg owes the ids before it
  uint8_t seq_kind = 0;        // HELD, or a stream with frames held: its kind (seq_key symbol)
  // Overlap of two connections (set_overlap): the leg this frame came from, and the verdict
  // on its sequenced record (KEEP: no overlap, or no sequenced record).
  uint8_t leg = 0;
  enum : uint8_t { KEEP, IN_STEP, DUPLICATE, AHEAD, HELD } overlap = KEEP;
  int64_t lead_ns = -1;  // DUPLICATE of the last emitted id from the other leg: how late
  uint8_t winner = 0;    // ... and the leg that delivered it first
};

struct Decoder::Impl {
  od::parser parser;
  std::vector<char> scratch;
  Table tables[KIND_COUNT];
  size_t max_frame = 1 << 20;
  int64_t time_scale = 1000000;  // exchange ms -> ns
  StreamInfo hint;
  bool has_hint = false;
  std::string hint_name;
  // Borrowed: hint_name, or the wrapper's name in the parser's string buffer (valid until the
  // next frame), so no frame pays for a copy that only a rejected frame needs.
  std::string_view last_stream;
  KeyMap<kSymbolWidth, SeqState> last_seq[KIND_COUNT];
  KeyMap<kSymbolWidth, LegState> leg_state[KIND_COUNT];
  int overlap_primary = -1;  // set_overlap: < 0 when one connection feeds the decoder
  int release_mode = Decoder::kReleaseNone;  // set_release
  std::vector<Decoder::StreamKey> due;       // due_streams: whose held frames to decode again
  int64_t held_first = 0;                    // the last STATUS_HELD record's first id
  char held_symbol[kSymbolWidth] = {};       // ... and symbol
  bool held_owed = false;                    // ... and whether it waits for the primary
  uint32_t leg_epoch[2] = {1, 1};  // leg_connected: the current connection of each leg
  Decoder::OverlapCounts counts;
  RecentFrames recent;

  // A hash of the rows this frame appended, less their ts_recv (the first column), 8 bytes
  // a step (FNV-style multiply, then a final mix); 0 when it appended none (a control reply,
  // a gap row alone).
  uint64_t content_hash(const size_t* saved) const {
    constexpr uint64_t kPrime = 1099511628211ull;
    uint64_t h = 14695981039346656037ull;
    bool any = false;
    for (int k = 0; k < KIND_COUNT; ++k) {
      if (k == KIND_GAP || k == KIND_CONTROL || tables[k].size == saved[k]) continue;
      any = true;
      const size_t itemsize = kind_desc(static_cast<Kind>(k)).itemsize;
      for (size_t row = saved[k]; row < tables[k].size; ++row) {
        const char* p = tables[k].data + row * itemsize;
        size_t i = sizeof(int64_t);
        for (; i + sizeof(uint64_t) <= itemsize; i += sizeof(uint64_t)) {
          uint64_t word;
          std::memcpy(&word, p + i, sizeof word);
          h = (h ^ word) * kPrime;
          h ^= h >> 29;
        }
        for (; i < itemsize; ++i) h = (h ^ static_cast<unsigned char>(p[i])) * kPrime;
      }
      h = (h ^ static_cast<uint64_t>(k)) * kPrime;
    }
    return any ? h | 1 : 0;
  }
  bool generic_levels = false;  // set while a frame is decoded again (Ctx::retry_generic)
  std::vector<char> head_doc;  // a depth event's header, its bids emptied (index_header_only)

  DecodeResult decode(const char* data, size_t size, size_t readable_after, int64_t ts_recv,
                      uint8_t leg);
  bool parse_frame(const char* data, size_t size, size_t readable_after, bool whole, Ctx& c);
  void index_header_only(const char* buf, size_t size, simdjson::padded_string_view& text,
                         Ctx& c);

  void count_duplicate(const Ctx& c) {
    ++counts.duplicates;
    if (c.lead_ns < 0) {
      ++counts.behind;
      return;
    }
    const int w = c.winner;
    int b = 0;
    while (b < kLeadBuckets - 1 && c.lead_ns > kLeadBoundsNs[b]) ++b;
    ++counts.lead_buckets[w][b];
    ++counts.lead_count[w];
    counts.lead_sum_ns[w] += c.lead_ns;
  }

  // --- dispatch ---
  bool root(od::document& doc, Ctx& c);
  bool reordered(od::object& obj, Ctx& c);
  bool combined(od::object& obj, Ctx& c, bool stream_first = true);
  template <typename Value>
  bool event_type(Value&& value, Kind& kind, Ctx& c);
  bool event(od::object& obj, Kind kind, Ctx& c);
  bool array(od::array& arr, Kind expected, Ctx& c);
  bool by_kind(od::object& obj, Kind kind, Ctx& c);

  // --- plain kinds: from their tables (decoder_gen.h) ---
  template <Kind K>
  bool plain(od::object& obj, Ctx& c);
  template <Kind K>
  bool plain_sequence(const typename Plain<K>::Record* r, Ctx& c);
  template <Reader R>
  bool read(od::value& v, const KeyField& f, char* row, Ctx& c);
  // ... and straight from the text, when it is in Binance's compact form (flat_frame)
  int flat_frame(const char* p, size_t size, Ctx& c);
  template <Kind K>
  int flat_event(const char* p, const char* end, bool wrapped, Ctx& c);
  int flat_depth(const char* p, const char* end, bool wrapped, Ctx& c);
  template <Reader R>
  bool read_text(const char*& p, const char* end, const KeyField& f, char* row) const;

  // --- hooks: kinds that need real code ---
  bool depth(od::object& obj, Ctx& c);
  const char* depth_levels(const char* p, const char* end, const DepthRecord& tmpl, Ctx& c);
  bool depth_rest(const char* p, const DepthRecord& bid, Ctx& c);
  bool depth_finish(const DepthRecord& head, size_t first_row, bool rows_stale, Ctx& c);
  bool depth_partial(od::object& obj, Ctx& c);
  bool kline(od::object& obj, Ctx& c);
  bool window_ticker(od::object& obj, Ctx& c);
  bool control(od::object& obj, Ctx& c);

  // --- field readers: false = c.error set ---
  static bool fail(Ctx& c, Error e, const char* where) {
    c.error = e;
    c.where = where;
    return false;
  }
  static bool json_fail(Ctx& c, error_code err, const char* where) {
    return fail(c, from_simdjson(err), where);
  }
  // Depth levels the fast reader does not take: the generic pass tells exactly what is wrong.
  static bool other_levels(Ctx& c) {
    c.retry_generic = true;
    return fail(c, ERR_MALFORMED_JSON, "");
  }
  static bool integer(od::value& v, int64_t& out, Ctx& c, const char* name) {
    if (auto err = v.get_int64().get(out)) {
      // simdjson calls an integer past the int64 range INCORRECT_TYPE; to us it is an overflow.
      od::json_type type;
      od::number_type ntype;
      if (err == simdjson::INCORRECT_TYPE && !v.type().get(type) &&
          type == od::json_type::number && !v.get_number_type().get(ntype) &&
          (ntype == od::number_type::unsigned_integer || ntype == od::number_type::big_integer)) {
        return fail(c, ERR_OVERFLOW, name);
      }
      return json_fail(c, err, name);
    }
    return true;
  }
  bool timestamp(od::value& v, int64_t& out, Ctx& c, const char* name) const {
    int64_t t;
    if (!integer(v, t, c, name)) return false;
    if (__builtin_mul_overflow(t, time_scale, &out)) return fail(c, ERR_OVERFLOW, name);
    return true;
  }
  // The text of a decimal string value, up to its closing quote (stage 1 validated the
  // document, so that quote exists; the frame's padding follows it).
  static bool decimal_token(od::value& v, const char*& begin, Ctx& c, const char* name) {
    simdjson::ondemand::raw_json_string raw;
    if (auto err = v.get_raw_json_string().get(raw)) return json_fail(c, err, name);
    begin = raw.raw();
    return true;
  }
  static bool fixed(od::value& v, int64_t& out, Ctx& c, const char* name) {
    const char* b;
    if (!decimal_token(v, b, c, name)) return false;
    const Error err = from_decimal(parse_fixed8_quoted(b, out));
    return err == ERR_NONE || fail(c, err, name);
  }
  static bool fixed128(od::value& v, Int128LE& out, Ctx& c, const char* name) {
    const char* b;
    int128 wide;
    if (!decimal_token(v, b, c, name)) return false;
    const Error err = from_decimal(parse_fixed8_quoted(b, wide));
    if (err != ERR_NONE) return fail(c, err, name);
    out = split(wide);
    return true;
  }
  static bool boolean(od::value& v, uint8_t& out, Ctx& c, const char* name) {
    bool b;
    if (auto err = v.get_bool().get(b)) return json_fail(c, err, name);
    out = b;
    return true;
  }
  // A value we do not store is still read through: On-Demand would otherwise step over it
  // unchecked, and a frame is either valid JSON as a whole or rejected (e.g. `"M":tru`).
  static bool skip(od::value& v, Ctx& c, int depth = 0) {
    constexpr int kMaxDepth = 64;  // far deeper than any Binance payload; bounds the recursion
    // Any type is fine here, so every failure is one of JSON syntax.
    auto bad = [&c] { return fail(c, ERR_MALFORMED_JSON, ""); };
    od::json_type type;
    if (v.type().get(type)) return bad();
    switch (type) {
      case od::json_type::object: {
        od::object obj;
        if (depth == kMaxDepth || v.get_object().get(obj)) return bad();
        for (auto field_result : obj) {
          od::field field;
          std::string_view key;
          if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return bad();
          if (!skip(field.value(), c, depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::array: {
        od::array arr;
        if (depth == kMaxDepth || v.get_array().get(arr)) return bad();
        for (auto element_result : arr) {
          od::value element;
          if (std::move(element_result).get(element)) return bad();
          if (!skip(element, c, depth + 1)) return false;
        }
        return true;
      }
      case od::json_type::string: {
        std::string_view s;
        return !v.get_string().get(s) || bad();
      }
      case od::json_type::number: {
        // Any valid number, also one past 64 bits: it is not ours to range-check.
        od::number_type ntype;
        if (v.get_number_type().get(ntype)) return bad();
        const error_code err = ntype == od::number_type::big_integer ? v.get_double().error()
                                                                     : v.get_number().error();
        return !err || bad();
      }
      case od::json_type::boolean: {
        bool b;
        return !v.get_bool().get(b) || bad();
      }
      case od::json_type::null: {
        bool is_null = false;
        return (!v.is_null().get(is_null) && is_null) || bad();
      }
      default:
        return bad();
    }
  }
  // An unknown key and its value. Known keys are matched raw, so only an unknown one can hold
  // an escape, which must be valid.
  static bool skip_field(od::field& field, Ctx& c) {
    std::string_view key;
    if (field.escaped_key().find('\\') != std::string_view::npos &&
        field.unescaped_key().get(key)) {
      return fail(c, ERR_MALFORMED_JSON, "");
    }
    return skip(field.value(), c);
  }
  // UTF-8 text into a fixed NUL-padded field; too long is an error, never a cut.
  static bool text(od::value& v, char* out, size_t width, Ctx& c, const char* name,
                   Error too_long) {
    std::string_view s;
    if (auto err = v.get_string().get(s)) return json_fail(c, err, name);
    if (s.size() > width) return fail(c, too_long, name);
    std::memcpy(out, s.data(), s.size());
    // A repeated key must not leave the tail of a longer earlier value behind.
    std::memset(out + s.size(), 0, width - s.size());
    return true;
  }
  static bool symbol(od::value& v, char* out, Ctx& c, const char* name = "s") {
    if (!text(v, out, kSymbolWidth, c, name, ERR_SYMBOL_TOO_LONG)) return false;
    // A NUL inside (only "\u0000" puts one there) would make it one symbol cut at the NUL
    // (books, held frames: symbol_of) and another whole (numpy, the Kafka key): refused.
    for (size_t i = strnlen(out, kSymbolWidth); i < kSymbolWidth; ++i) {
      if (out[i] != 0) return fail(c, ERR_WRONG_TYPE, name);
    }
    return true;
  }
  // A payload's "e" must match the kind its stream promised.
  bool check_event(od::value& v, Kind kind, Ctx& c) {
    std::string_view e;
    if (auto err = v.get_string().get(e)) return json_fail(c, err, "e");
    return event_kind(e) == kind || fail(c, ERR_UNKNOWN_EVENT, "e");
  }
  static bool required(uint32_t seen, uint32_t all, const char* const* names, Ctx& c) {
    const uint32_t missing = all & ~seen;
    return missing == 0 || fail(c, ERR_MISSING_FIELD, names[__builtin_ctz(missing)]);
  }

  template <typename R>
  R* append(Kind kind, Ctx& c) {
    Table& t = tables[kind];
    if (t.size >= t.capacity) {
      c.full = kind;
      return nullptr;
    }
    R* row = reinterpret_cast<R*>(t.data) + t.size++;
    std::memset(row, 0, sizeof(R));  // padding and symbol tails are part of the wire bytes
    return row;
  }

  LegState& legs_of(Kind kind, const char* sym) {
    if (LegState* found = leg_state[kind].find(sym)) return *found;
    return leg_state[kind].insert(sym, LegState{});
  }

  // After `emitted`, a record from `first` on is in step or behind (int64 edges included).
  static bool reaches(int64_t emitted, int64_t first) {
    return emitted >= first || static_cast<uint64_t>(first) - static_cast<uint64_t>(emitted) == 1;
  }

  // The held frames of (kind, sym) are to be decoded again (each stream once in the list).
  void mark_due(Kind kind, const char* sym) {
    for (const auto& d : due) {
      if (d.kind == kind && std::memcmp(d.symbol, sym, kSymbolWidth) == 0) return;
    }
    Decoder::StreamKey key{kind, {}};
    std::memcpy(key.symbol, sym, kSymbolWidth);
    due.push_back(key);
  }

  // `leg`'s current connection delivered `id` of this stream, emitted or not.
  void saw(LegState& st, uint8_t leg, int64_t id) const {
    if (st.seen_on[leg] != leg_epoch[leg]) {
      st.seen_on[leg] = leg_epoch[leg];
      st.seen[leg] = id;
    } else {
      st.seen[leg] = std::max(st.seen[leg], id);
    }
  }

  // A/B peers, a jump to `first` on `leg` that no rule drops: may the other leg still fill
  // the hole before it? Yes until its current connection has delivered `first` or beyond.
  // Such a record is held, not dropped (dropping it would leave the stream to the slower leg
  // until it pauses, and lose what this one carried should that leg stall meanwhile).
  bool fillable(const LegState& st, uint8_t leg, int64_t first) const {
    const uint8_t other = leg ^ 1;
    return overlap_primary == kBothLegs && release_mode != Decoder::kReleaseForce &&
           !(st.seen_on[other] == leg_epoch[other] && st.seen[other] >= first);
  }

  // A jump to `first` from `leg`, past the last emitted id: does the other leg owe the ids
  // before it? Rollover: the primary does, unless `leg` is the primary or the primary's
  // connection delivered `first` or beyond without them (a hole of its own). A/B: when the
  // other leg's current connection has met this stream's ids and `leg`'s has not (it joined
  // later, or is ahead of the other).
  bool owed_elsewhere(const SeqState& st, const LegState& legs, uint8_t leg,
                      int64_t first) const {
    const uint8_t other = leg ^ 1;
    if (overlap_primary != kBothLegs) {
      return leg != overlap_primary &&
             !(legs.seen_on[other] == leg_epoch[other] && legs.seen[other] >= first);
    }
    return st.met[leg] != leg_epoch[leg] && st.met[other] == leg_epoch[other];
  }

  // Continuity per (kind, symbol): `first`..`last` is the id range this message covers.
  // `contiguous`: ids must follow on exactly (trade ids, agg ids, depth U/u); otherwise they
  // must only increase (bookTicker u).
  bool sequence(Kind kind, const char* sym, int64_t first, int64_t last, bool contiguous,
                Ctx& c) {
    auto& map = last_seq[kind];
    if (SeqState* st = map.find(sym)) {
      const int64_t prev = st->last;
      // Unsigned arithmetic: ids at the int64 edge must not overflow (expected then wraps).
      const uint64_t step = static_cast<uint64_t>(first) - static_cast<uint64_t>(prev);
      if (overlap_primary >= 0) {  // off the single-connection path: one predictable branch
        c.legs = &legs_of(kind, sym);
        c.seq_value = last;
        if (last <= prev) {
          c.overlap = Ctx::DUPLICATE;
          c.met_slot = st;
          if (last == prev && st->leg != c.leg) {
            c.lead_ns = std::max<int64_t>(0, c.ts_recv - st->ts_recv);
            c.winner = st->leg;
          }
          return true;
        }
        if (contiguous && first > prev && step > 1) {
          c.owed = owed_elsewhere(*st, *c.legs, c.leg, first);
          // Held for the primary (a rollover's, or a joining leg's), so that nothing it brought
          // is lost should the primary stop; dropped under A/B, and by a forced release.
          if (c.owed && (overlap_primary == kBothLegs ||
                         release_mode == Decoder::kReleaseForce)) {
            c.overlap = Ctx::AHEAD;
            return true;
          }
          // (behind frames of this stream already held: in id order, which a release keeps)
          const bool fill = c.owed || fillable(*c.legs, c.leg, first);
          const bool behind = release_mode == Decoder::kReleaseNone && c.legs->held;
          if (fill || behind) {
            if (!fill) mark_due(kind, sym);  // a real hole: what is held goes first
            c.overlap = Ctx::HELD;
            c.seq_first = first;  // (what the caller orders held frames by)
            c.seq_kind = kind;
            std::memcpy(c.seq_key, sym, kSymbolWidth);
            return true;
          }
        }
        c.overlap = Ctx::IN_STEP;
        if (c.legs->held) {  // emitted, it makes the stream's held frames due
          c.seq_kind = kind;
          std::memcpy(c.seq_key, sym, kSymbolWidth);
        }
      }
      uint8_t reason = 0;
      if (last <= prev) reason = GAP_BACKWARDS;
      else if (contiguous && first > prev && step > 1) reason = GAP_MISSING;
      if (reason) {
        auto* gap = append<GapRecord>(KIND_GAP, c);
        if (!gap) return false;
        gap->ts_recv = c.ts_recv;
        gap->expected = static_cast<int64_t>(static_cast<uint64_t>(prev) + 1);
        gap->received = first;
        gap->kind = kind;
        gap->reason = reason;
        std::memcpy(gap->symbol, sym, kSymbolWidth);
      }
      if (last <= prev) return true;  // keep the high-water mark
      c.seq_slot = st;
    } else {
      c.seq_map = &map;
      if (overlap_primary >= 0) c.legs = &legs_of(kind, sym);
      std::memcpy(c.seq_key, sym, kSymbolWidth);
    }
    c.seq_value = last;
    return true;
  }
};

DecodeResult Decoder::Impl::decode(const char* data, size_t size, size_t readable_after,
                                   int64_t ts_recv, uint8_t leg) {
  size_t saved[KIND_COUNT];
  for (int k = 0; k < KIND_COUNT; ++k) saved[k] = tables[k].size;
  auto restore = [&] {  // the tables as they were: nothing of this frame is kept
    for (int k = 0; k < KIND_COUNT; ++k) tables[k].size = saved[k];
  };
  auto start = [&](Ctx& c) {
    c.ts_recv = ts_recv;
    c.leg = leg & 1;
    c.stream = has_hint ? &hint : nullptr;
    last_stream = hint_name;
  };
  Ctx c;
  auto parse = [&](size_t readable) {
    start(c);
    bool ok = parse_frame(data, size, readable, false, c);
    // Rare, and nothing of a failed pass is kept: a frame that is not a depth event in
    // Binance's shape is indexed whole, and levels the fast reader does not take are read value
    // by value.
    while (!ok && c.full == KIND_NONE && (c.head_only || c.retry_generic) && !generic_levels) {
      restore();
      generic_levels = c.retry_generic;
      c = Ctx{};
      start(c);
      ok = parse_frame(data, size, readable, true, c);
    }
    generic_levels = false;
    return ok;
  };
  bool ok = parse(readable_after);
  // simdjson may look past an unbalanced frame's end, where picows's buffer holds the next
  // frame: a rejected frame is judged again from a copy with zeros there, so that its error
  // and field are its own. Only bad frames pay for it.
  if (!ok && c.full == KIND_NONE && readable_after >= kPadding) {
    restore();
    c = Ctx{};
    ok = parse(0);
  }

  if (!ok) {
    restore();
    if (c.full != KIND_NONE) return {STATUS_FULL, c.full, ERR_NONE, ""};
    return {STATUS_ERROR, KIND_NONE, c.error, c.where};
  }
  if (c.overlap != Ctx::KEEP) {  // one comparison on the single-connection path
    // (a frame decoded again was held: it is not any more, unless held again below)
    if (c.legs) {
      if (release_mode != Decoder::kReleaseNone && c.legs->held) --c.legs->held;
      saw(*c.legs, c.leg, c.seq_value);
    }
    // (a frame owed by the other leg counts as ahead once, when it came)
    if (c.owed && release_mode == Decoder::kReleaseNone) ++counts.ahead[c.leg];
    if (c.overlap == Ctx::HELD) {
      // An owed frame held again is the lowest left: a release stops there (the rest wait).
      const bool lowest = !c.legs->held || (c.owed && release_mode == Decoder::kReleaseRetry);
      c.legs->held_low = lowest ? c.seq_first : std::min(c.legs->held_low, c.seq_first);
      ++c.legs->held;
      restore();
      held_first = c.seq_first;
      held_owed = c.owed;
      std::memcpy(held_symbol, c.seq_key, kSymbolWidth);
      return {STATUS_HELD, static_cast<Kind>(c.seq_kind), ERR_NONE, ""};
    }
    if (c.overlap != Ctx::AHEAD) ++counts.in_step[c.leg];  // at or next to the last emitted
    if (c.overlap != Ctx::IN_STEP) {  // the other leg delivered (or owes) this record
      if (c.overlap == Ctx::DUPLICATE) {
        c.met_slot->met[c.leg] = leg_epoch[c.leg];
        count_duplicate(c);
      }
      restore();
      return {STATUS_OK, KIND_NONE, ERR_NONE, ""};
    }
  }
  if (overlap_primary >= 0) {  // off the single-connection path: one predictable branch
    if (c.overlap == Ctx::KEEP && !c.seq_map) {  // no sequence id: its content decides
      if (const uint64_t hash = content_hash(saved)) {
        auto [it, fresh] = recent.seen.try_emplace(hash, RecentFrames::Arrival{c.ts_recv, c.leg});
        if (!fresh) {
          if (it->second.leg != c.leg) {
            c.lead_ns = std::max<int64_t>(0, c.ts_recv - it->second.ts_recv);
            c.winner = it->second.leg;
          }
          count_duplicate(c);
          restore();
          return {STATUS_OK, KIND_NONE, ERR_NONE, ""};
        }
        recent.remember(hash);
        ++counts.won[c.leg];
      }
    } else {
      ++counts.won[c.leg];
    }
  }
  if (c.seq_slot) {
    c.seq_slot->last = c.seq_value;
    c.seq_slot->ts_recv = c.ts_recv;
    c.seq_slot->leg = c.leg;
    c.seq_slot->met[c.leg] = leg_epoch[c.leg];
    // (due once the ids emitted reach the held ones: not at every step of a lagging primary)
    if (c.legs && c.legs->held && reaches(c.seq_value, c.legs->held_low)) {
      mark_due(static_cast<Kind>(c.seq_kind), c.seq_key);
    }
  } else if (c.seq_map) {
    SeqState state{c.seq_value, c.ts_recv, {}, c.leg};
    state.met[c.leg] = leg_epoch[c.leg];
    if (c.legs) saw(*c.legs, c.leg, c.seq_value);
    c.seq_map->insert(c.seq_key, state);
  }
  Kind written = KIND_NONE;
  for (int k = 0; k < KIND_COUNT; ++k) {
    if (tables[k].size != saved[k] && k != KIND_GAP) written = static_cast<Kind>(k);
  }
  return {STATUS_OK, written, ERR_NONE, ""};
}

// A diff-depth event in Binance's shape needs simdjson for its header only: depth_rest reads the
// levels and the closing braces by hand, accepting ASCII alone (so UTF-8 holds there). `text`
// becomes a copy of the header whose bids are `[]`, closed by the frame's own closing braces,
// for stage 1 to index instead of every level. The first '[' of such a frame opens the bids.
// Out of line: the other frames' path stays as short as it was.
[[gnu::noinline]] void Decoder::Impl::index_header_only(const char* buf, size_t size,
                                                         simdjson::padded_string_view& text,
                                                         Ctx& c) {
  const auto* open = static_cast<const char*>(std::memchr(buf, '[', std::min(size, kHeadScan)));
  if (!open || open - buf < 4 || std::memcmp(open - 4, "\"b\":", 4) != 0) return;
  const char* tail = buf + size;  // the closing braces of the event (and of its wrapper)
  auto closing_byte = [](char b) { return b == '}' || static_cast<unsigned char>(b) <= ' '; };
  while (tail > open + 1 && closing_byte(*(tail - 1))) --tail;
  if (tail == buf + size || *(tail - 1) != ']') return;
  const size_t head = static_cast<size_t>(open - buf) + 1;
  const size_t closing = static_cast<size_t>(buf + size - tail);
  const size_t length = head + 1 + closing;
  if (head_doc.size() < length + kPadding) head_doc.resize(length + kPadding);
  std::memcpy(head_doc.data(), buf, head);
  head_doc[head] = ']';
  std::memcpy(head_doc.data() + head + 1, tail, closing);
  std::memset(head_doc.data() + length, 0, kPadding);
  text = simdjson::padded_string_view(head_doc.data(), length, head_doc.size());
  c.head_only = true;
  c.bids = open;
  c.bids_token = head_doc.data() + head - 1;
}

bool Decoder::Impl::parse_frame(const char* data, size_t size, size_t readable_after,
                                 bool whole, Ctx& c) {
  if (size > max_frame) return fail(c, ERR_OVERSIZED, "");
  const char* buf = data;
  if (readable_after < kPadding) {
    if (scratch.size() < size + kPadding) scratch.resize(size + kPadding);
    std::memcpy(scratch.data(), data, size);
    std::memset(scratch.data() + size, 0, kPadding);  // not an earlier, longer frame's bytes
    buf = scratch.data();
  }
  if (!whole) {
    const int flat = flat_frame(buf, size, c);
    if (flat != kFlatDeclined) return flat;
  }
  simdjson::padded_string_view text(buf, size, size + kPadding);
  if (!whole && size >= kHeadOnlyMin) index_header_only(buf, size, text, c);
  od::document doc;
  auto err = parser.iterate(text).get(doc);
  if (err) return json_fail(c, err, "");
  c.frame_end = buf + size;
  if (!root(doc, c)) return false;
  return c.rest_read || (!c.head_only && doc.at_end()) || fail(c, ERR_MALFORMED_JSON, "");
}

bool Decoder::Impl::root(od::document& doc, Ctx& c) {
  od::json_type type;
  if (auto err = doc.type().get(type)) return json_fail(c, err, "");
  if (type == od::json_type::array) {
    od::array arr;
    if (auto err = doc.get_array().get(arr)) return json_fail(c, err, "");
    return array(arr, KIND_NONE, c);
  }
  if (type != od::json_type::object) return fail(c, ERR_UNKNOWN_EVENT, "");
  od::object obj;
  if (auto err = doc.get_object().get(obj)) return json_fail(c, err, "");

  // The first key tells the message apart: wrapper, event, bookTicker, partial depth, control.
  std::string_view first;
  Kind kind = KIND_NONE;
  for (auto field_result : obj) {
    if (auto err = field_result.error()) return json_fail(c, err, "");
    od::field& field = field_result.value_unsafe();
    first = field.escaped_key();
    if (first == "e" && !event_type(field.value(), kind, c)) return false;
    break;
  }
  if (first == "stream") {
    if (auto err = obj.reset().error()) return json_fail(c, err, "");
    return combined(obj, c);
  }
  if (first == "e") {
    c.closers = 1;
    return event(obj, kind, c);
  }
  kind = first_key_kind(first);
  return kind == KIND_NONE ? reordered(obj, c) : event(obj, kind, c);
}

// Binance puts the key that tells a message apart first. In any other order the keys are
// looked through once more: "stream" makes it a wrapper, else "e" an event, else the first
// key that names a kind (an error reply's "msg" after a field added in front of it).
bool Decoder::Impl::reordered(od::object& obj, Ctx& c) {
  if (auto err = obj.reset().error()) return json_fail(c, err, "");
  bool wrapper = false, data_first = false, has_e = false;
  Kind kind = KIND_NONE;
  for (auto field_result : obj) {
    if (auto err = field_result.error()) return json_fail(c, err, "");
    const std::string_view key = field_result.value_unsafe().escaped_key();
    data_first |= key == "data" && !wrapper;
    wrapper |= key == "stream";
    has_e |= key == "e";
    if (kind == KIND_NONE) kind = first_key_kind(key);
  }
  if (auto err = obj.reset().error()) return json_fail(c, err, "");
  if (wrapper) return combined(obj, c, !data_first);
  if (has_e) {
    if (!event_type(obj.find_field_unordered("e"), kind, c)) return false;
    return event(obj, kind, c);
  }
  if (kind == KIND_NONE) return fail(c, ERR_UNKNOWN_EVENT, "");
  return by_kind(obj, kind, c);
}

// Reads an "e": its kind and a windowTicker's window. The fields' loop then skips that "e"
// (event_seen: see dispatch_e at FH_FIELDS).
template <typename Value>
bool Decoder::Impl::event_type(Value&& value, Kind& kind, Ctx& c) {
  std::string_view e;
  if (auto err = value.get_string().get(e)) return json_fail(c, err, "e");
  kind = event_kind(e);
  if (kind == KIND_NONE) return fail(c, ERR_UNKNOWN_EVENT, "e");
  if (kind == KIND_WINDOW_TICKER) std::memcpy(c.window, e.data(), 2);
  c.event_seen = true;
  return true;
}

bool Decoder::Impl::event(od::object& obj, Kind kind, Ctx& c) {
  if (auto err = obj.reset().error()) return json_fail(c, err, "");
  return by_kind(obj, kind, c);
}

// stream_first: "stream" comes before "data" (Binance's order). Else it is read first, from
// further on, and that "stream" skipped when the fields' loop reaches it (no string is
// unescaped twice: see dispatch_e at FH_FIELDS).
bool Decoder::Impl::combined(od::object& obj, Ctx& c, bool stream_first) {
  StreamInfo info;
  bool have_stream = false, have_data = false, stream_read = false;
  auto stream = [&](auto&& value) {
    std::string_view name;
    if (auto err = value.get_string().get(name)) return json_fail(c, err, "stream");
    last_stream = name;
    if (!classify_stream(name, info)) return fail(c, ERR_UNKNOWN_STREAM, "stream");
    have_stream = true;
    c.stream = &info;
    return true;
  };
  if (!stream_first) {
    if (!stream(obj.find_field_unordered("stream"))) return false;
    if (auto err = obj.reset().error()) return json_fail(c, err, "");
    stream_read = true;
  }
  for (auto field_result : obj) {
    if (auto err = field_result.error()) return json_fail(c, err, "");
    od::field& field = field_result.value_unsafe();
    const std::string_view key = field.escaped_key();
    // (a key met twice is refused, as at FH_FIELDS: which stream, or which data, is it?)
    if (key == "stream") {
      if (stream_read) {
        stream_read = false;
      } else if (have_stream) {
        return fail(c, ERR_MALFORMED_JSON, "stream");
      } else if (!stream(field.value())) {
        return false;
      }
    } else if (key == "data") {
      if (!have_stream) return fail(c, ERR_MISSING_FIELD, "stream");
      if (have_data) return fail(c, ERR_MALFORMED_JSON, "data");
      have_data = true;
      if (info.is_array) {
        od::array arr;
        if (auto err = field.value().get_array().get(arr)) return json_fail(c, err, "data");
        if (!array(arr, info.kind, c)) return false;
      } else {
        od::object data;
        if (auto err = field.value().get_object().get(data)) return json_fail(c, err, "data");
        c.closers = stream_first ? 2 : 0;  // the data's fast reader checks the frame ends after it
        if (!by_kind(data, info.kind, c)) return false;
        if (c.rest_read) return true;
      }
    } else if (!skip_field(field, c)) {
      return false;
    }
  }
  return have_data || fail(c, ERR_MISSING_FIELD, "data");
}

// Array payloads ("!miniTicker@arr", "!ticker_1h@arr"): every element carries its own "e".
// Unless the stream names the kind, the first element's holds for all: a frame fills one
// table, which its batch accounting (and its raw capture) belongs to.
bool Decoder::Impl::array(od::array& arr, Kind expected, Ctx& c) {
  Kind first = KIND_NONE;
  for (auto element_result : arr) {
    od::object obj;
    if (auto err = element_result.get_object().get(obj)) return json_fail(c, err, "");
    Kind kind = expected;
    if (kind == KIND_NONE) {
      if (!event_type(obj.find_field_unordered("e"), kind, c)) return false;
      if (kind != KIND_MINI_TICKER && kind != KIND_TICKER && kind != KIND_WINDOW_TICKER) {
        return fail(c, ERR_UNKNOWN_EVENT, "e");
      }
      if (first == KIND_NONE) first = kind;
      if (kind != first) return fail(c, ERR_UNKNOWN_EVENT, "e");
      if (auto err = obj.reset().error()) return json_fail(c, err, "");
    } else {
      c.event_seen = false;
    }
    if (!by_kind(obj, kind, c)) return false;
  }
  return true;
}

bool Decoder::Impl::by_kind(od::object& obj, Kind kind, Ctx& c) {
  switch (kind) {
#define FH_PLAIN_CASE(K) \
  case K: return plain<K>(obj, c);
    FH_PLAIN_KINDS(FH_PLAIN_CASE)
#undef FH_PLAIN_CASE
    case KIND_DEPTH: return depth(obj, c);
    case KIND_DEPTH_PARTIAL: return depth_partial(obj, c);
    case KIND_KLINE: return kline(obj, c);
    case KIND_WINDOW_TICKER: return window_ticker(obj, c);
    case KIND_CONTROL: return control(obj, c);
    default: return fail(c, ERR_UNKNOWN_EVENT, "");
  }
}

// The code a field is matched on. "e" by its text too: the dispatchers read it by its text,
// so a key that only shares its code is an unknown key (code 0: the empty key's, no field's).
inline uint32_t field_code(std::string_view key) {
  const uint32_t code = key_code(key);
  return code == key_code("e") && key != "e" ? key_code("") : code;
}

// Iterates an object's fields, handing each (key code, value) to `on_field`; "e" is checked
// against `kind` unless the dispatcher already read it. dispatch_e: the dispatcher read the
// first "e" (root: the first key; arrays: find_field_unordered), so that one is not read again:
// every unescape appends to simdjson's string buffer, which holds each string once (a second
// read overflows it: caught by SIMDJSON_DEVELOPMENT_CHECKS in the ASan build).
// A key met twice is refused (malformed_json at that key): which value would be the one?
#define FH_FIELDS(obj, c, kind, on_field)                                        \
  bool e_was_read = c.event_seen;                                                \
  bool e_met = false;                                                            \
  for (auto field_result : obj) {                                                \
    if (auto err = field_result.error()) return json_fail(c, err, "");           \
    od::field& field = field_result.value_unsafe(); /* no copy: see kline */     \
    const uint32_t key = field_code(field.escaped_key());                        \
    od::value& v = field.value();                                                \
    if (key == key_code("e")) {                                                  \
      if (e_met) return fail(c, ERR_MALFORMED_JSON, "e");                        \
      e_met = true;                                                              \
      if (e_was_read) { /* never unescape a string twice: see dispatch_e */      \
        e_was_read = false;                                                      \
        continue;                                                                \
      }                                                                          \
      if (!check_event(v, kind, c)) return false;                                \
      continue;                                                                  \
    }                                                                            \
    if (!(on_field)) return false;                                               \
    if (c.rest_read) break; /* Impl::depth_rest read the frame to its end */     \
  }

// Marks field `bit` as met; false when it was already: the key came twice.
inline bool first_time(uint32_t& seen, int bit) {
  const uint32_t mask = 1u << bit;
  const bool first = !(seen & mask);
  seen |= mask;
  return first;
}

// Evaluates the reader of field `bit` (named kNames[bit]) the first time; a second time the
// key is refused, as FH_FIELDS refuses a second "e".
#define FH_READ(bit, expr) \
  (first_time(seen, bit) ? (expr) : fail(c, ERR_MALFORMED_JSON, kNames[bit]))

template <Kind K>
bool Decoder::Impl::plain(od::object& obj, Ctx& c) {
  using P = Plain<K>;
  using R = typename P::Record;
  constexpr uint32_t kRequired = required_fields<K>();
  auto* r = append<R>(K, c);
  if (!r) return false;
  r->ts_recv = c.ts_recv;
  char* row = reinterpret_cast<char*>(r);
  uint32_t seen = 0;
  FH_FIELDS(obj, c, K, P::on_key(key, [&](auto slot) {
    constexpr int i = decltype(slot)::value;
    if constexpr (i < 0) {
      return skip_field(field, c);
    } else {
      if (!first_time(seen, i)) return fail(c, ERR_MALFORMED_JSON, P::fields[i].key);
      return read<P::fields[i].reader>(v, P::fields[i], row, c);
    }
  }))
  const uint32_t missing = kRequired & ~seen;
  if (missing) return fail(c, ERR_MISSING_FIELD, P::fields[__builtin_ctz(missing)].key);
  return plain_sequence<K>(r, c);
}

// A plain kind's row, complete: its continuity, when the kind has sequence ids.
template <Kind K>
bool Decoder::Impl::plain_sequence(const typename Plain<K>::Record* r, Ctx& c) {
  using P = Plain<K>;
  if constexpr (P::sequence.checked) {
    const char* row = reinterpret_cast<const char*>(r);
    int64_t first, last;
    std::memcpy(&first, row + P::sequence.first, sizeof first);
    std::memcpy(&last, row + P::sequence.last, sizeof last);
    return sequence(K, r->symbol, first, last, P::sequence.contiguous, c);
  }
  return true;
}

template <Reader R>
bool Decoder::Impl::read(od::value& v, const KeyField& f, char* row, Ctx& c) {
  char* out = row + f.offset;
  if (f.null_flag >= 0) {
    bool is_null = false;
    if (auto err = v.is_null().get(is_null)) return json_fail(c, err, f.key);
    if (is_null) {  // the column keeps 0 and its flag says "no value"
      row[f.null_flag] = 0;
      return true;
    }
    row[f.null_flag] = 1;
  }
  // Columns are at their natural alignment in the row (asserted in records_gen.h).
  if constexpr (R == R_INTEGER) return integer(v, *reinterpret_cast<int64_t*>(out), c, f.key);
  if constexpr (R == R_TIMESTAMP) {
    return timestamp(v, *reinterpret_cast<int64_t*>(out), c, f.key);
  }
  if constexpr (R == R_FIXED8) return fixed(v, *reinterpret_cast<int64_t*>(out), c, f.key);
  if constexpr (R == R_FIXED128) {
    return fixed128(v, *reinterpret_cast<Int128LE*>(out), c, f.key);
  }
  if constexpr (R == R_BOOL) return boolean(v, *reinterpret_cast<uint8_t*>(out), c, f.key);
  if constexpr (R == R_TEXT) return text(v, out, f.width, c, f.key, ERR_WRONG_TYPE);
  if constexpr (R == R_SYMBOL) return symbol(v, out, c, f.key);  // (f.width: kSymbolWidth)
}

bool Decoder::Impl::depth(od::object& obj, Ctx& c) {
  static const char* const kNames[] = {"E", "s", "U", "u", "b", "a"};
  DepthRecord head;
  std::memset(&head, 0, sizeof head);  // padding and symbol tails are part of the wire bytes
  head.ts_recv = c.ts_recv;
  Table& t = tables[KIND_DEPTH];
  const size_t first_row = t.size;
  uint32_t seen = 0;
  // Rows are written whole from `head` as the levels come; they are rewritten at the end only
  // when a header field came after them (Binance sends E, s, U, u first).
  bool rows_stale = generic_levels;
  auto header = [&](bool ok) {
    rows_stale |= t.size != first_row;
    return ok;
  };
  auto levels = [&](od::value& v, uint8_t side, const char* name) {
    if (!generic_levels) {
      head.side = side;
      rows_stale |= (seen & 0xf) != 0xf;
      if (side == SIDE_BID && c.closers) {
        const char* at = v.raw_json_token().data();
        if (c.head_only) {  // the '[' taken for the bids must be this field's: else index whole
          if (at != c.bids_token) return fail(c, ERR_MALFORMED_JSON, name);
          at = c.bids;
        }
        if (depth_rest(at, head, c)) {
          seen |= 1u << 5;  // "a" too
          return true;
        }
        if (c.full != KIND_NONE || c.retry_generic) return false;
      }
    }
    od::array arr;
    if (auto err = v.get_array().get(arr)) return json_fail(c, err, name);
    if (!generic_levels) {
      std::string_view text;
      if (arr.raw_json().get(text)) {
        c.retry_generic = true;
        return fail(c, ERR_MALFORMED_JSON, name);
      }
      const char* end = text.data() + text.size();
      const char* p = depth_levels(text.data(), end, head, c);
      return p && (p == end || other_levels(c));
    }
    for (auto level_result : arr) {
      od::array pair;
      if (auto err = level_result.get_array().get(pair)) return json_fail(c, err, name);
      auto* r = append<DepthRecord>(KIND_DEPTH, c);
      if (!r) return false;
      r->side = side;
      int i = 0;
      for (auto x_result : pair) {
        od::value x;
        if (auto err = std::move(x_result).get(x)) return json_fail(c, err, name);
        if (i > 1) return fail(c, ERR_WRONG_TYPE, name);
        if (!(i == 0 ? fixed(x, r->price, c, name) : fixed128(x, r->qty, c, name))) return false;
        ++i;
      }
      if (i != 2) return fail(c, ERR_WRONG_TYPE, name);
    }
    return true;
  };
  FH_FIELDS(obj, c, KIND_DEPTH, ([&] {
    switch (key) {
      case key_code("E"): return FH_READ(0, header(timestamp(v, head.ts_event, c, "E")));
      case key_code("s"): return FH_READ(1, header(symbol(v, head.symbol, c)));
      case key_code("U"): return FH_READ(2, header(integer(v, head.first_update_id, c, "U")));
      case key_code("u"): return FH_READ(3, header(integer(v, head.last_update_id, c, "u")));
      case key_code("b"): return FH_READ(4, levels(v, SIDE_BID, "b"));
      case key_code("a"): return FH_READ(5, levels(v, SIDE_ASK, "a"));
      default: return skip_field(field, c);
    }
  }()))
  if (!required(seen, 0x3f, kNames, c)) return false;
  return depth_finish(head, first_row, rows_stale, c);
}

// A diff-depth event's levels are rows first_row.. of the table: one row of no side when there
// are none, `head`'s fields into rows written before it was complete (`rows_stale`), the first
// and last marked; then its continuity.
bool Decoder::Impl::depth_finish(const DepthRecord& head, size_t first_row, bool rows_stale,
                                 Ctx& c) {
  Table& t = tables[KIND_DEPTH];
  if (t.size == first_row) {
    auto* r = append<DepthRecord>(KIND_DEPTH, c);
    if (!r) return false;
    r->side = SIDE_NONE;
    rows_stale = true;
  }
  auto* rows = reinterpret_cast<DepthRecord*>(t.data);
  if (rows_stale) {
    for (size_t i = first_row; i < t.size; ++i) {
      DepthRecord& r = rows[i];
      r.ts_recv = c.ts_recv;
      r.ts_event = head.ts_event;
      r.first_update_id = head.first_update_id;
      r.last_update_id = head.last_update_id;
      std::memcpy(r.symbol, head.symbol, kSymbolWidth);
    }
  }
  rows[first_row].flags |= DEPTH_FIRST;
  rows[t.size - 1].flags |= DEPTH_LAST;
  // U after u would pass as a hole followed by a step back: not an event Binance sends.
  if (head.first_update_id > head.last_update_id) return fail(c, ERR_BAD_RANGE, "U");
  return sequence(KIND_DEPTH, head.symbol, head.first_update_id, head.last_update_id, true, c);
}

namespace {

// Past JSON whitespace; the usual case, none, costs one comparison.
inline void skip_space(const char*& p, const char* end) {
  if (static_cast<unsigned char>(*p) > ' ') return;
  while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
}

// A string opens at `p` and closes before `end`. parse_fixed8_quoted reads to the closing quote,
// which stage 1 guarantees for the text it indexed; the levels of a header-only index
// (Impl::parse_frame) are not, and the padding after the frame may hold anything.
inline bool closed_string(const char* p, const char* end) {
  return p < end && *p == '"' && std::memchr(p + 1, '"', static_cast<size_t>(end - p - 1));
}

// Past `word`, if it is what comes next.
inline bool literal(const char*& p, const char* end, std::string_view word) {
  if (end - p < static_cast<ptrdiff_t>(word.size()) || std::memcmp(p, word.data(), word.size())) {
    return false;
  }
  p += word.size();
  return true;
}

// Past whitespace, `token` and whitespace, if `token` is what comes next.
inline bool skip_token(const char*& p, const char* end, std::string_view token) {
  skip_space(p, end);
  if (!literal(p, end, token)) return false;
  skip_space(p, end);
  return true;
}

// Readers of Binance's compact form for Impl::flat_frame: each takes only the common forms and
// returns false on anything else, which the generic path then reads (and judges). Numbers may
// read digits past `end` (the padding covers the loads); the caller's check that a ',' or '}'
// comes next, before `end`, rejects them.

// A string of printable ASCII with no escape, from its opening quote at `p`: its text, and `p`
// past its closing quote.
inline bool plain_string(const char*& p, const char* end, std::string_view& out) {
  if (p >= end || *p != '"') return false;
  const char* const begin = ++p;
  while (p < end && static_cast<unsigned char>(*p - 0x20) < 0x5f && *p != '"' && *p != '\\') ++p;
  if (p >= end || *p != '"') return false;
  out = std::string_view(begin, static_cast<size_t>(p - begin));
  ++p;
  return true;
}

// A JSON integer of 1-18 digits, not negative (ids and times): `p` past its digits.
inline bool plain_integer(const char*& p, int64_t& out) {
  const bool leading_zero = *p == '0';
  uint64_t value = 0;
  int digits = 0;
  for (int chunk = 0; chunk < 3; ++chunk) {
    const uint64_t w = detail::load8(p);
    const int n = detail::leading_digits(w);
    if (n == 0) break;
    value = value * detail::kPow10[n] + detail::digits_value(w, n);
    digits += n;
    p += n;
    if (n < 8) break;
  }
  if (digits == 0 || digits > 18 || (leading_zero && digits > 1)) return false;
  out = static_cast<int64_t>(value);
  return true;
}

// The closing quote of the string opening at `p`, if it is before `end`.
inline const char* closing_quote(const char* p, const char* end) {
  if (p >= end || *p != '"') return nullptr;
  const void* q = std::memchr(p + 1, '"', static_cast<size_t>(end - p - 1));
  return static_cast<const char*>(q);
}

// The value of a key the kind does not read, when it is a literal, an integer or a plain string.
inline bool skip_scalar(const char*& p, const char* end) {
  if (p >= end) return false;
  std::string_view text;
  int64_t number;
  switch (*p) {
    case '"': return plain_string(p, end, text);
    case 't': return literal(p, end, "true");
    case 'f': return literal(p, end, "false");
    case 'n': return literal(p, end, "null");
    default: return plain_integer(p, number);
  }
}

#ifdef __SSE4_1__
// The quotes of a text in order, found 64 bytes at a time: where a level ends is then known
// without waiting on the parse of its decimals, which the next level's reads would otherwise
// queue behind. Quotes at or past `end` are not reported; bytes up to end + 63 are read.
class QuoteScan {
 public:
  QuoteScan(const char* from, const char* end) : block_(from), end_(end), bits_(mask(from)) {}

  // The next quote, or nullptr when there is none before `end`.
  const char* next() {
    while (bits_ == 0) {
      block_ += 64;
      if (block_ >= end_) return nullptr;
      bits_ = mask(block_);
    }
    const char* q = block_ + __builtin_ctzll(bits_);
    bits_ &= bits_ - 1;
    return q;
  }

 private:
  uint64_t mask(const char* b) const {
    const __m128i quote = _mm_set1_epi8('"');
    uint64_t m = 0;
    for (int i = 0; i < 4; ++i) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 * i));
      m |= static_cast<uint64_t>(static_cast<uint16_t>(
               _mm_movemask_epi8(_mm_cmpeq_epi8(v, quote))))
           << (16 * i);
    }
    const size_t left = static_cast<size_t>(end_ - b);
    return left < 64 ? m & ((uint64_t{1} << left) - 1) : m;
  }

  const char* block_;
  const char* const end_;
  uint64_t bits_;
};
#endif

}  // namespace

// The levels of one side, `[["price","qty"],…]` from its '[' at `p`, whitespace allowed, read
// here with no simdjson call per level: Binance's form by its quotes, any other byte by byte.
// Stage 1 may not have seen this text (a header-only index): only ASCII is accepted and a
// string's closing quote is looked for within the frame; the buffer's padding covers the
// fixed-width reads past `end`. Each row is `tmpl` with the level's price and quantity.
// Returns where the array ends, past its ']' and whitespace; nullptr when the table is full
// (c.full), or on anything else, a bad decimal included, after asking for the generic pass
// (c.retry_generic).
const char* Decoder::Impl::depth_levels(const char* p, const char* end, const DepthRecord& tmpl,
                                        Ctx& c) {
  Table& t = tables[KIND_DEPTH];
  auto* const rows = reinterpret_cast<DepthRecord*>(t.data);
  // Locals, not t.size: the rows' stores could alias the table, so the compiler would reload it.
  size_t size = t.size;
  const size_t capacity = t.capacity;
  auto other = [&]() -> const char* {
    t.size = size;
    return other_levels(c), nullptr;
  };
  if (p >= end || *p != '[') return other();
  ++p;
  skip_space(p, end);
  if (p < end && *p == ']') {
    ++p;
    skip_space(p, end);
    return p;
  }
#ifdef __SSE4_1__
  // Binance's form, `["<usual>","<usual>"]` with no whitespace, by its four quotes; the first
  // level in another form reads the side's remaining levels byte by byte.
  QuoteScan quotes(p, end);
  bool scan = true;
  // `tmpl` in registers, its quantity's high half zero: a row is then six stores
  static_assert(sizeof(DepthRecord) == 96 && offsetof(DepthRecord, price) == 32 &&
                offsetof(DepthRecord, qty) == 40);
  __m128i row[6];
  std::memcpy(row, &tmpl, sizeof row);
  row[3] = _mm_insert_epi64(row[3], 0, 0);
#endif
  while (true) {
    if (size == capacity) {
      t.size = size;
      c.full = KIND_DEPTH;
      return nullptr;
    }
    DepthRecord* r = rows + size;
#ifdef __SSE4_1__
    const char* q0 = scan ? quotes.next() : nullptr;
    const char* q1 = q0 ? quotes.next() : nullptr;
    const char* q2 = q1 ? quotes.next() : nullptr;
    const char* q3 = q2 ? quotes.next() : nullptr;
    __m128i values;  // price, then the quantity's low 64 bits: bytes 32-47 of the row
    scan = q3 && p[0] == '[' && q0 == p + 1 && q1[1] == ',' && q2 == q1 + 2 && q3[1] == ']' &&
           fixed8_usual_pair(q0 + 1, static_cast<size_t>(q1 - q0 - 1), q2 + 1,
                             static_cast<size_t>(q3 - q2 - 1), values);
    if (scan) {
      auto* out = reinterpret_cast<__m128i*>(r);
      for (int i = 0; i < 6; ++i) _mm_storeu_si128(out + i, i == 2 ? values : row[i]);
      p = q3 + 2;
    } else {
#else
    {
#endif
      std::memcpy(r, &tmpl, sizeof tmpl);
      if (p >= end || *p != '[') return other();
      ++p;
      skip_space(p, end);
      if (!closed_string(p, end) || parse_fixed8_quoted(p + 1, r->price, &p) != DecimalStatus::ok) {
        return other();
      }
      ++p;  // the closing quote
      skip_space(p, end);
      if (*p != ',') return other();
      ++p;
      skip_space(p, end);
      int128 wide;
      if (!closed_string(p, end) || parse_fixed8_quoted(p + 1, wide, &p) != DecimalStatus::ok) {
        return other();
      }
      r->qty = split(wide);
      ++p;
      skip_space(p, end);
      if (*p != ']') return other();
      ++p;
    }
    skip_space(p, end);
    if (p >= end) return other();
    ++size;
    if (*p == ',') {
      ++p;
      skip_space(p, end);
      continue;
    }
    if (*p != ']') return other();
    t.size = size;
    ++p;
    skip_space(p, end);
    return p;
  }
}

// Binance's order, "b" (its '[' at `p`) then "a" and nothing after them but the closing braces:
// both sides and the frame's end are read here, so simdjson never walks the levels (its skip of
// a 300-level array cost a sixth of the decode). False with neither c.full nor c.retry_generic:
// another order or more fields; the rows are dropped and the frame is read field by field.
bool Decoder::Impl::depth_rest(const char* p, const DepthRecord& bid, Ctx& c) {
  Table& t = tables[KIND_DEPTH];
  const size_t first_row = t.size;
  const char* const end = c.frame_end;
  p = depth_levels(p, end, bid, c);
  if (!p) return false;
  if (skip_token(p, end, ",") && skip_token(p, end, "\"a\"") && skip_token(p, end, ":")) {
    DepthRecord ask = bid;
    ask.side = SIDE_ASK;
    p = depth_levels(p, end, ask, c);
    if (!p) return false;
    int closers = c.closers;
    while (closers > 0 && skip_token(p, end, "}")) --closers;
    if (closers == 0 && p == end) return c.rest_read = true;
  }
  t.size = first_row;
  return false;
}

// A frame of a plain kind or a diff-depth event in Binance's compact form,
// `{"stream":"…","data":{…}}` or the bare event, is read here from its text; indexing and
// walking it with simdjson cost about twice as much. Every byte is checked as it is read: no
// whitespace, only printable ASCII in strings, each known key at most once, and values of
// unknown keys only literals, integers and plain strings. Anything else, a value the readers
// above do not take included, declines (kFlatDeclined) with nothing changed, and the generic
// path reads the frame and names whatever is wrong. Otherwise true (decoded) or false (the
// table is full: c.full).
int Decoder::Impl::flat_frame(const char* p, size_t size, Ctx& c) {
  constexpr std::string_view kWrapper = "{\"stream\":", kData = ",\"data\":{";
  const char* const end = p + size;
  std::string_view name;
  StreamInfo info;
  Kind kind;
  int result;
  const bool wrapped = literal(p, end, kWrapper);
  if (wrapped) {
    if (!plain_string(p, end, name) || !literal(p, end, kData) || !classify_stream(name, info) ||
        info.is_array) {
      return kFlatDeclined;
    }
    --p;  // the payload's '{'
    kind = info.kind;
  } else {  // a bare event: its first key names the kind, as Impl::root reads it
    const char* q = p + 1;
    std::string_view key, type;
    if (*p != '{' || !plain_string(q, end, key) || !literal(q, end, ":")) return kFlatDeclined;
    if (key != "e") {
      kind = first_key_kind(key);
    } else if (plain_string(q, end, type)) {
      kind = event_kind(type);
    } else {
      return kFlatDeclined;
    }
  }
  switch (kind) {
#define FH_FLAT_CASE(K) \
  case K: result = flat_event<K>(p, end, wrapped, c); break;
    FH_PLAIN_KINDS(FH_FLAT_CASE)
#undef FH_FLAT_CASE
    case KIND_DEPTH: result = flat_depth(p, end, wrapped, c); break;
    default:
      return kFlatDeclined;
  }
  if (wrapped && result != kFlatDeclined) last_stream = name;
  return result;
}

// The event object from its '{' at `p`, then the wrapper's '}' if `wrapped`, then the frame's end.
template <Kind K>
int Decoder::Impl::flat_event(const char* p, const char* end, bool wrapped, Ctx& c) {
  using P = Plain<K>;
  using R = typename P::Record;
  Table& t = tables[K];
  auto* r = append<R>(K, c);
  if (!r) return false;
  r->ts_recv = c.ts_recv;
  char* row = reinterpret_cast<char*>(r);
  uint32_t seen = 0;
  bool e_met = false;
  auto decline = [&t] {
    --t.size;
    return kFlatDeclined;
  };
  ++p;
  while (true) {
    std::string_view key;
    if (!plain_string(p, end, key) || !literal(p, end, ":")) return decline();
    // Keys by their code, as FH_FIELDS matches them; one met twice is FH_FIELDS' to refuse
    const uint32_t code = field_code(key);
    bool ok;
    if (code == key_code("e")) {
      std::string_view type;
      ok = !e_met && plain_string(p, end, type) && event_kind(type) == K;
      e_met = true;
    } else {
      ok = P::on_key(code, [&](auto slot) {
        constexpr int i = decltype(slot)::value;
        if constexpr (i < 0) {
          return skip_scalar(p, end);
        } else {
          if (!first_time(seen, i)) return false;
          return read_text<P::fields[i].reader>(p, end, P::fields[i], row);
        }
      });
    }
    if (!ok || p >= end) return decline();
    if (*p++ == '}') break;
    if (p[-1] != ',') return decline();
  }
  if ((required_fields<K>() & ~seen) || (wrapped && !literal(p, end, "}")) || p != end) {
    return decline();
  }
  return plain_sequence<K>(r, c);
}

// A diff-depth event in Binance's order, `{"e":"depthUpdate","E":…,"s":"…","U":…,"u":…,"b":[…],
// "a":[…]}` from its '{' at `p`: the header read here, the levels and the frame's end by
// depth_rest, finished as Impl::depth finishes them. Simdjson then never sees the frame.
int Decoder::Impl::flat_depth(const char* p, const char* end, bool wrapped, Ctx& c) {
  DepthRecord head;
  std::memset(&head, 0, sizeof head);  // padding and symbol tails are part of the wire bytes
  head.ts_recv = c.ts_recv;
  head.side = SIDE_BID;
  std::string_view symbol;
  if (!literal(p, end, "{\"e\":\"depthUpdate\",\"E\":") || !plain_integer(p, head.ts_event) ||
      __builtin_mul_overflow(head.ts_event, time_scale, &head.ts_event) ||
      !literal(p, end, ",\"s\":") || !plain_string(p, end, symbol) ||
      symbol.size() > kSymbolWidth || !literal(p, end, ",\"U\":") ||
      !plain_integer(p, head.first_update_id) || !literal(p, end, ",\"u\":") ||
      !plain_integer(p, head.last_update_id) || !literal(p, end, ",\"b\":")) {
    return kFlatDeclined;
  }
  std::memcpy(head.symbol, symbol.data(), symbol.size());
  Table& t = tables[KIND_DEPTH];
  const size_t first_row = t.size;
  const Ctx before = c;
  c.closers = wrapped ? 2 : 1;
  c.frame_end = end;
  if (!depth_rest(p, head, c)) {
    if (c.full != KIND_NONE) return false;
    t.size = first_row;  // levels in another form, or more fields: the generic path's
    c = before;
    return kFlatDeclined;
  }
  return depth_finish(head, first_row, false, c);
}

// One value into its column, as read<R> would store it, if the readers above take its form.
template <Reader R>
bool Decoder::Impl::read_text(const char*& p, const char* end, const KeyField& f,
                              char* row) const {
  char* out = row + f.offset;
  if (f.null_flag >= 0) {
    if (literal(p, end, "null")) return true;  // the column keeps 0, and its flag too
    row[f.null_flag] = 1;
  }
  if constexpr (R == R_INTEGER || R == R_TIMESTAMP) {
    int64_t value;
    if (!plain_integer(p, value)) return false;
    if constexpr (R == R_TIMESTAMP) {
      if (__builtin_mul_overflow(value, time_scale, &value)) return false;
    }
    *reinterpret_cast<int64_t*>(out) = value;
    return true;
  }
  if constexpr (R == R_FIXED8 || R == R_FIXED128) {
    const char* const close = closing_quote(p, end);
    const char* stop;
    if (!close) return false;
    if constexpr (R == R_FIXED8) {
      if (parse_fixed8_quoted(p + 1, *reinterpret_cast<int64_t*>(out), &stop) !=
          DecimalStatus::ok) {
        return false;
      }
    } else {
      int128 wide;
      if (parse_fixed8_quoted(p + 1, wide, &stop) != DecimalStatus::ok) return false;
      *reinterpret_cast<Int128LE*>(out) = split(wide);
    }
    p = close + 1;
    return stop == close;
  }
  if constexpr (R == R_BOOL) {
    const bool value = *p == 't';
    *reinterpret_cast<uint8_t*>(out) = value;
    return literal(p, end, value ? "true" : "false");
  }
  if constexpr (R == R_TEXT || R == R_SYMBOL) {
    std::string_view text;
    if (!plain_string(p, end, text) || text.size() > f.width) return false;
    std::memcpy(out, text.data(), text.size());  // the rest is zero: a fresh row, one value
    return true;
  }
}

bool Decoder::Impl::depth_partial(od::object& obj, Ctx& c) {
  static const char* const kNames[] = {"lastUpdateId", "bids", "asks"};
  auto* r = append<DepthPartialRecord>(KIND_DEPTH_PARTIAL, c);
  if (!r) return false;
  r->ts_recv = c.ts_recv;
  if (c.stream) {
    r->levels = c.stream->levels;
    std::memcpy(r->symbol, c.stream->symbol, kSymbolWidth);
  }
  uint32_t seen = 0;
  // A side holds at most the stream's 5, 10 or 20 levels (20, the table's room, when unknown).
  const size_t room = r->levels ? r->levels : kPartialDepthLevels;
  auto levels = [&](od::value& v, int64_t* prices, Int128LE* qtys, uint8_t& count,
                    const char* name) {
    od::array arr;
    if (auto err = v.get_array().get(arr)) return json_fail(c, err, name);
    for (auto level_result : arr) {
      if (count == room) return fail(c, ERR_TOO_MANY_LEVELS, name);
      od::array pair;
      if (auto err = level_result.get_array().get(pair)) return json_fail(c, err, name);
      int i = 0;
      for (auto x_result : pair) {
        od::value x;
        if (auto err = std::move(x_result).get(x)) return json_fail(c, err, name);
        if (i > 1) return fail(c, ERR_WRONG_TYPE, name);
        if (!(i == 0 ? fixed(x, prices[count], c, name) : fixed128(x, qtys[count], c, name))) {
          return false;
        }
        ++i;
      }
      if (i != 2) return fail(c, ERR_WRONG_TYPE, name);
      ++count;
    }
    return true;
  };
  FH_FIELDS(obj, c, KIND_DEPTH_PARTIAL, ([&] {
    switch (key) {
      case key_code("lastUpdateId"):
        return FH_READ(0, integer(v, r->last_update_id, c, "lastUpdateId"));
      case key_code("bids"): return FH_READ(1, levels(v, r->bid_price, r->bid_qty, r->bid_count, "bids"));
      case key_code("asks"): return FH_READ(2, levels(v, r->ask_price, r->ask_qty, r->ask_count, "asks"));
      default: return skip_field(field, c);
    }
  }()))
  return required(seen, 0x7, kNames, c);
}

bool Decoder::Impl::kline(od::object& obj, Ctx& c) {
  static const char* const kNames[] = {"E", "s", "k", "k.t", "k.T", "k.i", "k.f", "k.L",
                                       "k.o", "k.c", "k.h", "k.l", "k.v", "k.n", "k.x",
                                       "k.q", "k.V", "k.Q"};
  auto* r = append<KlineRecord>(KIND_KLINE, c);
  if (!r) return false;
  r->ts_recv = c.ts_recv;
  if (c.stream) r->utc_offset_min = c.stream->utc_offset_min;
  uint32_t seen = 0;
  auto bar = [&](od::value& kv) {
    od::object k;
    if (auto err = kv.get_object().get(k)) return json_fail(c, err, "k");
    for (auto field_result : k) {
      // Used in place: moving the field out costs a store-forwarding stall per field.
      if (auto err = field_result.error()) return json_fail(c, err, "k");
      od::field& field = field_result.value_unsafe();
      const std::string_view name = field.escaped_key();
      od::value& v = field.value();
      bool ok = true;
      if (name.size() != 1) {
        if (!skip_field(field, c)) return false;
        continue;
      }
      switch (name[0]) {
        case 't': ok = FH_READ(3, timestamp(v, r->ts_open, c, "k.t")); break;
        case 'T': ok = FH_READ(4, timestamp(v, r->ts_close, c, "k.T")); break;
        case 'i': ok = FH_READ(5, text(v, r->interval, sizeof r->interval, c, "k.i", ERR_WRONG_TYPE)); break;
        case 'f': ok = FH_READ(6, integer(v, r->first_trade_id, c, "k.f")); break;
        case 'L': ok = FH_READ(7, integer(v, r->last_trade_id, c, "k.L")); break;
        case 'o': ok = FH_READ(8, fixed(v, r->open, c, "k.o")); break;
        case 'c': ok = FH_READ(9, fixed(v, r->close, c, "k.c")); break;
        case 'h': ok = FH_READ(10, fixed(v, r->high, c, "k.h")); break;
        case 'l': ok = FH_READ(11, fixed(v, r->low, c, "k.l")); break;
        case 'v': ok = FH_READ(12, fixed128(v, r->volume, c, "k.v")); break;
        case 'n': ok = FH_READ(13, integer(v, r->n_trades, c, "k.n")); break;
        case 'x': ok = FH_READ(14, boolean(v, r->closed, c, "k.x")); break;
        case 'q': ok = FH_READ(15, fixed128(v, r->quote_volume, c, "k.q")); break;
        case 'V': ok = FH_READ(16, fixed128(v, r->taker_buy_volume, c, "k.V")); break;
        case 'Q': ok = FH_READ(17, fixed128(v, r->taker_buy_quote_volume, c, "k.Q")); break;
        default: ok = skip_field(field, c); break;
      }
      if (!ok) return false;
    }
    return true;
  };
  FH_FIELDS(obj, c, KIND_KLINE, ([&] {
    switch (key) {
      case key_code("E"): return FH_READ(0, timestamp(v, r->ts_event, c, "E"));
      case key_code("s"): return FH_READ(1, symbol(v, r->symbol, c));
      case key_code("k"): return FH_READ(2, bar(v));
      default: return skip_field(field, c);
    }
  }()))
  return required(seen, 0x3ffff, kNames, c);
}

bool Decoder::Impl::window_ticker(od::object& obj, Ctx& c) {
  static const char* const kNames[] = {"E", "s", "p", "P", "o", "h", "l", "c", "w",
                                       "v", "q", "O", "C", "F", "L", "n"};
  auto* r = append<WindowTickerRecord>(KIND_WINDOW_TICKER, c);
  if (!r) return false;
  r->ts_recv = c.ts_recv;
  uint32_t seen = 0;
  bool event_ok = true;
  bool e_was_read = c.event_seen;  // see dispatch_e at FH_FIELDS
  bool e_met = false;
  std::memcpy(r->window, c.window, 2);
  // The window comes from "e" ("1hTicker"), read here unless the dispatcher already did.
  auto window = [&](od::value& v) {
    std::string_view e;
    if (auto err = v.get_string().get(e)) return json_fail(c, err, "e");
    if (event_kind(e) != KIND_WINDOW_TICKER) return fail(c, ERR_UNKNOWN_EVENT, "e");
    std::memcpy(r->window, e.data(), 2);
    return true;
  };
  for (auto field_result : obj) {
    if (auto err = field_result.error()) return json_fail(c, err, "");
    od::field& field = field_result.value_unsafe();
    const uint32_t key = field_code(field.escaped_key());
    od::value& v = field.value();
    switch (key) {
      case key_code("e"):
        if (e_met) return fail(c, ERR_MALFORMED_JSON, "e");  // twice, as at FH_FIELDS
        e_met = true;
        if (e_was_read) {
          e_was_read = false;
        } else {
          event_ok = window(v);
        }
        break;
      case key_code("E"): event_ok = FH_READ(0, timestamp(v, r->ts_event, c, "E")); break;
      case key_code("s"): event_ok = FH_READ(1, symbol(v, r->symbol, c)); break;
      case key_code("p"): event_ok = FH_READ(2, fixed(v, r->price_change, c, "p")); break;
      case key_code("P"): event_ok = FH_READ(3, fixed(v, r->price_change_pct, c, "P")); break;
      case key_code("o"): event_ok = FH_READ(4, fixed(v, r->open, c, "o")); break;
      case key_code("h"): event_ok = FH_READ(5, fixed(v, r->high, c, "h")); break;
      case key_code("l"): event_ok = FH_READ(6, fixed(v, r->low, c, "l")); break;
      case key_code("c"): event_ok = FH_READ(7, fixed(v, r->last_price, c, "c")); break;
      case key_code("w"): event_ok = FH_READ(8, fixed(v, r->weighted_avg_price, c, "w")); break;
      case key_code("v"): event_ok = FH_READ(9, fixed128(v, r->volume, c, "v")); break;
      case key_code("q"): event_ok = FH_READ(10, fixed128(v, r->quote_volume, c, "q")); break;
      case key_code("O"): event_ok = FH_READ(11, timestamp(v, r->ts_open, c, "O")); break;
      case key_code("C"): event_ok = FH_READ(12, timestamp(v, r->ts_close, c, "C")); break;
      case key_code("F"): event_ok = FH_READ(13, integer(v, r->first_trade_id, c, "F")); break;
      case key_code("L"): event_ok = FH_READ(14, integer(v, r->last_trade_id, c, "L")); break;
      case key_code("n"): event_ok = FH_READ(15, integer(v, r->n_trades, c, "n")); break;
      default: event_ok = skip_field(field, c); break;
    }
    if (!event_ok) return false;
  }
  return required(seen, 0xffff, kNames, c);
}

// {"result":…,"id":…}, {"code":…,"msg":…}, {"e":"serverShutdown","E":…}
bool Decoder::Impl::control(od::object& obj, Ctx& c) {
  auto* r = append<ControlRecord>(KIND_CONTROL, c);
  if (!r) return false;
  r->ts_recv = c.ts_recv;
  r->id = -1;
  r->type = c.event_seen || (c.stream && c.stream->kind == KIND_CONTROL) ? CONTROL_SERVER_SHUTDOWN
                                                                         : CONTROL_RESULT;
  FH_FIELDS(obj, c, KIND_CONTROL, ([&] {
    switch (key) {
      case key_code("E"): return timestamp(v, r->ts_event, c, "E");
      case key_code("code"): r->type = CONTROL_ERROR; return integer(v, r->code, c, "code");
      case key_code("id"): {
        od::json_type type;
        if (auto err = v.type().get(type)) return json_fail(c, err, "id");
        return type != od::json_type::number ? skip(v, c) : integer(v, r->id, c, "id");
      }
      default: return skip_field(field, c);
    }
  }()))
  return true;
}

#undef FH_FIELDS
#undef FH_READ

// --- public API ------------------------------------------------------------------------------

bool classify_stream(std::string_view name, StreamInfo& out) noexcept {
  out = StreamInfo{};
  const StreamGrammar* g;
  if (!name.empty() && name[0] == '!') {
    g = stream_grammar(name);
    if (!g || !g->market) return false;
  } else {
    const size_t at = name.find('@');
    if (at == 0 || at == std::string_view::npos || at > kSymbolWidth) return false;
    g = stream_grammar(name.substr(at + 1));
    if (!g || g->market) return false;
    for (size_t i = 0; i < at; ++i) {
      const char ch = name[i];
      out.symbol[i] = (ch >= 'a' && ch <= 'z') ? static_cast<char>(ch - 32) : ch;
    }
  }
  out.kind = g->kind;
  out.is_array = g->array;
  out.levels = g->levels;
  out.utc_offset_min = g->utc_offset_min;
  return true;
}


Decoder::Decoder() : impl_(std::make_unique<Impl>()) {}
Decoder::~Decoder() = default;

void Decoder::attach(Kind kind, char* data, size_t capacity) noexcept {
  impl_->tables[kind] = Table{data, capacity, 0};
}

const Table& Decoder::table(Kind kind) const noexcept { return impl_->tables[kind]; }

bool Decoder::set_stream_hint(std::string_view stream) noexcept {
  impl_->has_hint = classify_stream(stream, impl_->hint);
  impl_->hint_name.assign(stream);
  return impl_->has_hint;
}

void Decoder::set_time_unit_us(bool microseconds) noexcept {
  impl_->time_scale = microseconds ? 1000 : 1000000;
}

void Decoder::set_max_frame(size_t bytes) noexcept { impl_->max_frame = bytes; }

void Decoder::reset_sequences() noexcept {
  for (auto& m : impl_->last_seq) m.clear();
  for (auto& m : impl_->leg_state) m.clear();
  impl_->recent.clear();
}

void Decoder::set_overlap(int primary) noexcept {
  impl_->overlap_primary = primary;
  if (primary < 0) {
    impl_->recent.clear();
    return;
  }
  for (int leg = 0; leg < 2; ++leg) impl_->counts.in_step[leg] = impl_->counts.ahead[leg] = 0;
}

int Decoder::overlap() const noexcept { return impl_->overlap_primary; }

void Decoder::leg_connected(int leg) noexcept { ++impl_->leg_epoch[leg & 1]; }

void Decoder::set_release(int mode) noexcept { impl_->release_mode = mode; }

bool Decoder::release_due() const noexcept { return !impl_->due.empty(); }

size_t Decoder::due_streams() const noexcept { return impl_->due.size(); }

Kind Decoder::due_kind(size_t i) const noexcept { return impl_->due[i].kind; }

std::string_view Decoder::due_symbol(size_t i) const noexcept {
  return symbol_of(impl_->due[i].symbol);
}

void Decoder::clear_due() noexcept { impl_->due.clear(); }

int64_t Decoder::held_first() const noexcept { return impl_->held_first; }

std::string_view Decoder::held_symbol() const noexcept { return symbol_of(impl_->held_symbol); }

bool Decoder::held_owed() const noexcept { return impl_->held_owed; }

const Decoder::OverlapCounts& Decoder::overlap_counts() const noexcept { return impl_->counts; }

DecodeResult Decoder::decode(const char* data, size_t size, size_t readable_after,
                             int64_t ts_recv, bool is_text, uint8_t leg) noexcept {
  if (!is_text) {
    impl_->last_stream = impl_->hint_name;
    return {STATUS_ERROR, KIND_NONE, ERR_BINARY_FRAME, ""};
  }
  return impl_->decode(data, size, readable_after, ts_recv, leg);
}

std::string_view Decoder::last_stream() const noexcept { return impl_->last_stream; }

const char* error_name(Error error) noexcept {
  static const char* const kNames[ERR_COUNT] = {
      "none",          "malformed_json",    "invalid_utf8",   "missing_field",
      "wrong_type",    "bad_decimal",       "too_many_decimals", "overflow",
      "unknown_stream", "unknown_event",    "oversized",      "binary_frame",
      "symbol_too_long", "too_many_levels", "bad_range",
  };
  return error < ERR_COUNT ? kNames[error] : "unknown";
}

const char* simd_kernel() noexcept {
  static const std::string name = simdjson::builtin_implementation()->name();
  return name.c_str();
}

Error parse_decimal(const char* data, size_t size, bool wide, int64_t* lo, int64_t* hi) noexcept {
  // Through the decoder's own quoted fast path, as a JSON string token in a padded buffer,
  // unless the text holds a quote itself (no string token can).
  std::string token(data, size);
  const bool quoted = token.find('"') == std::string::npos;
  token.append(1, '"').append(kPadding, ' ');
  DecimalStatus status;
  int128 v = 0;
  int64_t narrow = 0;
  if (wide) {
    status = quoted ? parse_fixed8_quoted(token.data(), v) : parse_fixed8(data, data + size, v);
  } else {
    status = quoted ? parse_fixed8_quoted(token.data(), narrow)
                    : parse_fixed8(data, data + size, narrow);
    v = narrow;
  }
  *lo = static_cast<int64_t>(static_cast<uint64_t>(v));
  *hi = static_cast<int64_t>(v >> 64);
  return from_decimal(status);
}

}  // namespace fh
