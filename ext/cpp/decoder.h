// Binance Spot frame -> records. One Decoder per shard (it keeps per-symbol sequence state),
// fed by one connection, or by two while one replaces the other (set_overlap).
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string_view>

#include "records.h"

namespace fh {

enum Error : uint8_t {
  ERR_NONE,
  ERR_MALFORMED_JSON,
  ERR_INVALID_UTF8,
  ERR_MISSING_FIELD,
  ERR_WRONG_TYPE,
  ERR_BAD_DECIMAL,
  ERR_TOO_MANY_DECIMALS,
  ERR_OVERFLOW,
  ERR_UNKNOWN_STREAM,
  ERR_UNKNOWN_EVENT,
  ERR_OVERSIZED,
  ERR_BINARY_FRAME,
  ERR_SYMBOL_TOO_LONG,
  ERR_TOO_MANY_LEVELS,
  ERR_BAD_RANGE,  // an event's first id after its last (depth U > u)
  ERR_COUNT,
};

const char* error_name(Error error) noexcept;

// What a stream name carries, by the stream grammar (generated from the kind declarations).
struct StreamInfo {
  Kind kind = KIND_NONE;
  bool is_array = false;  // "!miniTicker@arr", "!ticker_<w>@arr"
  uint8_t levels = 0;     // partial depth: 5/10/20
  int16_t utc_offset_min = 0;
  char symbol[kSymbolWidth] = {};  // upper-cased from the stream name; empty for "!" streams
};

// False for a name that is not a stream we decode.
bool classify_stream(std::string_view name, StreamInfo& out) noexcept;

// STATUS_HELD: A/B peers, a record past a hole the other leg may still fill; the caller keeps
// the frame and decodes it again (set_release) once release_due(), or forced.
enum Status : uint8_t { STATUS_OK, STATUS_ERROR, STATUS_FULL, STATUS_HELD };

// A caller-owned array the decoder appends rows to (numpy memory on the Python side).
struct Table {
  char* data = nullptr;
  size_t capacity = 0;  // rows
  size_t size = 0;      // rows written since the last attach()
};

struct DecodeResult {
  Status status;
  Kind kind;          // table written to; on STATUS_FULL the table that needs room
  Error error;        // on STATUS_ERROR
  const char* field;  // on STATUS_ERROR: the field at fault ("" when it is the frame itself)
};

class Decoder {
 public:
  Decoder();
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  void attach(Kind kind, char* data, size_t capacity) noexcept;
  const Table& table(Kind kind) const noexcept;

  // Raw /ws/<stream> connections: payloads without a symbol (partial depth) take it from here.
  // Returns false when the stream name is not one we can decode.
  bool set_stream_hint(std::string_view stream) noexcept;
  void set_time_unit_us(bool microseconds) noexcept;  // timeUnit=MICROSECOND connections
  void set_max_frame(size_t bytes) noexcept;
  // Forget per-symbol sequence state (a new connection starts a new epoch).
  void reset_sequences() noexcept;

  // Two connections ("legs" 0 and 1) feeding this decoder: a record at or before the last one
  // emitted for its (kind, symbol) is dropped and counted as a duplicate, not reported as a
  // gap. `primary` 0 or 1 (make-before-break rollover, or a redundant leg joining): a jump
  // past the last emitted from the other leg is owed by the primary, until the primary's
  // connection passes it: held (STATUS_HELD, counted as ahead), emitted in step once the
  // primary's ids reach it, or dropped by a forced release (the primary serves, it delivers
  // them); once the primary stops delivering, turn the other leg primary before the forced
  // release, so that what was held goes out past a hole of exactly the ids neither leg
  // delivered. kBothLegs (A/B redundancy, both legs in step): the first arrival wins, from
  // either leg. `primary` < 0: one connection, records are checked as before. Turning the
  // overlap on zeroes the per-leg in_step/ahead counts.
  // kBothLegs judges a jump per stream: it is dropped when the other leg's connection has met
  // the stream's ids (it owes the ones before) and this leg's has not; otherwise, while the
  // other leg has not reached it, it is held (STATUS_HELD) for the other leg to fill the hole.
  static constexpr int kBothLegs = 2;
  void set_overlap(int primary) noexcept;
  int overlap() const noexcept;  // the last set_overlap's `primary` (< 0: none)
  // A new connection of `leg`: it has met no stream's ids yet.
  void leg_connected(int leg) noexcept;
  // How the next decode() calls judge frames held before: kReleaseNone (new frames),
  // kReleaseRetry (held frames again, in order: held once more if still ahead), kReleaseForce
  // (held frames again: a hole is now real).
  static constexpr int kReleaseNone = 0, kReleaseRetry = 1, kReleaseForce = 2;
  void set_release(int mode) noexcept;
  // Streams whose held frames are due to be decoded again (one of them advanced, or a jump
  // behind them is a real hole), each once, since clear_due(); release_due(): any.
  struct StreamKey {
    Kind kind;
    char symbol[kSymbolWidth];
  };
  bool release_due() const noexcept;
  size_t due_streams() const noexcept;
  Kind due_kind(size_t i) const noexcept;
  std::string_view due_symbol(size_t i) const noexcept;
  void clear_due() noexcept;
  // After STATUS_HELD (its `kind`): the held record's symbol and first id, the order a release
  // decodes a stream's held frames in.
  int64_t held_first() const noexcept;
  std::string_view held_symbol() const noexcept;
  // ... and whether it waits for the primary (later ids of its leg would wait too), not for
  // A/B's other leg to fill a hole.
  bool held_owed() const noexcept;
  // Lead of the winning leg: receive-time difference between an emitted record and the other
  // leg's copy of the same last id, in buckets with these upper bounds (ns) plus one more.
  static constexpr int64_t kLeadBoundsNs[] = {50'000,     100'000,    250'000,    500'000,
                                              1'000'000,  2'500'000,  5'000'000,  10'000'000,
                                              25'000'000, 100'000'000, 1'000'000'000};
  static constexpr int kLeadBuckets = std::size(kLeadBoundsNs) + 1;
  struct OverlapCounts {
    uint64_t duplicates = 0;  // records dropped as already emitted, over the decoder's life
    uint64_t in_step[2] = {};  // per leg, this overlap: records at or next to the last emitted
    uint64_t ahead[2] = {};    // per leg, this overlap: records past a hole the other owes
    // Per winning leg, over the decoder's life, while two legs overlap: sequenced records it
    // emitted, and the lead over the other leg's copy (a copy of an older id than the last
    // emitted has no lead measured: it counts in `behind`).
    uint64_t won[2] = {};
    uint64_t lead_count[2] = {};
    int64_t lead_sum_ns[2] = {};
    uint64_t lead_buckets[2][kLeadBuckets] = {};
    uint64_t behind = 0;
  };
  const OverlapCounts& overlap_counts() const noexcept;

  // `readable_after`: bytes readable past data+size (picows tail_size); simdjson needs
  // SIMDJSON_PADDING of them, else the frame is copied to a padded scratch buffer.
  // All-or-nothing: a frame that fails or does not fit leaves every table as it was.
  DecodeResult decode(const char* data, size_t size, size_t readable_after, int64_t ts_recv,
                      bool is_text, uint8_t leg = 0) noexcept;

  // The `stream` of the last decoded frame (combined wrapper or hint), for dead-letter headers;
  // valid until the next decode().
  std::string_view last_stream() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The SIMD kernel simdjson's On-Demand API was compiled for ("haswell", "icelake", "fallback").
const char* simd_kernel() noexcept;

// Exposed for tests: the exact decimal parser the decoder uses. Returns an Error.
Error parse_decimal(const char* data, size_t size, bool wide, int64_t* lo, int64_t* hi) noexcept;

}  // namespace fh
