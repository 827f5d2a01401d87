// Record layouts, one per output table. These structs ARE the wire contract: the Python dtypes
// and the README's byte tables are generated from the field tables below, so nothing else
// restates an offset. Change a layout => bump its schema version.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fh {

constexpr size_t kSymbolWidth = 32;  // UTF-8, NUL-padded; a longer symbol is rejected, never cut
constexpr size_t kPartialDepthLevels = 20;

// 128-bit fixed-point (scale 1e-8), little-endian two's complement: for 24 h volumes, which can
// exceed int64 at 1e-8.
struct Int128LE {
  uint64_t lo;
  int64_t hi;
};

enum Kind : uint8_t {
  KIND_TRADE,
  KIND_AGG_TRADE,
  KIND_BOOK_TICKER,
  KIND_DEPTH,
  KIND_DEPTH_PARTIAL,
  KIND_KLINE,
  KIND_MINI_TICKER,
  KIND_TICKER,
  KIND_WINDOW_TICKER,
  KIND_AVG_PRICE,
  KIND_CONTROL,  // exchange control messages: responses, errors, serverShutdown
  KIND_GAP,      // sequence discontinuities found while decoding
  KIND_COUNT,
  KIND_NONE = 0xff,
};

struct TradeRecord {
  int64_t ts_recv, ts_event, ts_trade, trade_id, price, qty;
  uint8_t buyer_is_maker;
  char symbol[kSymbolWidth];
};

struct AggTradeRecord {
  int64_t ts_recv, ts_event, ts_trade, agg_id, first_trade_id, last_trade_id, price, qty;
  uint8_t buyer_is_maker;
  char symbol[kSymbolWidth];
};

struct BookTickerRecord {
  int64_t ts_recv, update_id, bid_price, bid_qty, ask_price, ask_qty;
  char symbol[kSymbolWidth];
};

enum DepthSide : uint8_t { SIDE_BID = 0, SIDE_ASK = 1, SIDE_NONE = 2 };
enum DepthFlags : uint8_t { DEPTH_FIRST = 1, DEPTH_LAST = 2 };

// One row per price level; rows of one event share ts_event/U/u and are flagged FIRST..LAST.
// An event without levels is one SIDE_NONE row flagged FIRST|LAST, so U/u continuity stays
// checkable downstream.
struct DepthRecord {
  int64_t ts_recv, ts_event, first_update_id, last_update_id, price, qty;
  uint8_t side, flags;
  char symbol[kSymbolWidth];
};

struct DepthPartialRecord {
  int64_t ts_recv, last_update_id;
  int64_t bid_price[kPartialDepthLevels], bid_qty[kPartialDepthLevels];
  int64_t ask_price[kPartialDepthLevels], ask_qty[kPartialDepthLevels];
  uint8_t levels, bid_count, ask_count;  // levels = 5/10/20 from the stream name, 0 if unknown
  char symbol[kSymbolWidth];
};

struct KlineRecord {
  int64_t ts_recv, ts_event, ts_open, ts_close, first_trade_id, last_trade_id, n_trades;
  int64_t open, high, low, close;
  Int128LE volume, quote_volume, taker_buy_volume, taker_buy_quote_volume;
  uint8_t closed;
  char interval[4];
  int16_t utc_offset_min;  // +480 for the `@+08:00` streams
  char symbol[kSymbolWidth];
};

struct MiniTickerRecord {
  int64_t ts_recv, ts_event, close, open, high, low;
  Int128LE volume, quote_volume;
  char symbol[kSymbolWidth];
};

struct TickerRecord {
  int64_t ts_recv, ts_event, price_change, price_change_pct, weighted_avg_price, prev_close;
  int64_t last_price, last_qty, bid_price, bid_qty, ask_price, ask_qty, open, high, low;
  Int128LE volume, quote_volume;
  int64_t ts_open, ts_close, first_trade_id, last_trade_id, n_trades;
  char symbol[kSymbolWidth];
};

struct WindowTickerRecord {
  int64_t ts_recv, ts_event, price_change, price_change_pct, open, high, low, last_price;
  int64_t weighted_avg_price;
  Int128LE volume, quote_volume;
  int64_t ts_open, ts_close, first_trade_id, last_trade_id, n_trades;
  char window[4];
  char symbol[kSymbolWidth];
};

struct AvgPriceRecord {
  int64_t ts_recv, ts_event, ts_trade, price;
  char interval[8];
  char symbol[kSymbolWidth];
};

enum ControlType : uint8_t { CONTROL_RESULT = 1, CONTROL_ERROR = 2, CONTROL_SERVER_SHUTDOWN = 3 };

struct ControlRecord {
  int64_t ts_recv, ts_event, id, code;  // id = -1 when absent/null/non-integer
  uint8_t type;
};

enum GapReason : uint8_t { GAP_MISSING = 1, GAP_BACKWARDS = 2 };

// `expected` is the next id the stream owed us, `received` what came instead.
struct GapRecord {
  int64_t ts_recv, expected, received;
  uint8_t kind, reason;
  char symbol[kSymbolWidth];
};

// --- field tables --------------------------------------------------------------------------
// FT_FIXED8: int64 decimal in 1e-8 units; FT_I128: 128-bit decimal in 1e-8 units.
enum FieldType : uint8_t { FT_I64, FT_I16, FT_U8, FT_I128, FT_BYTES, FT_FIXED8 };

struct FieldDesc {
  const char* name;
  uint32_t offset;
  FieldType type;
  uint32_t count;  // array length for int64 sub-arrays, width for FT_BYTES, else 1
};

struct KindDesc {
  const char* name;    // table / stream kind name, e.g. "trade"
  const char* schema;  // e.g. "binance.spot.trade"
  uint16_t version;
  uint32_t itemsize;
  const FieldDesc* fields;
  uint32_t field_count;
};

const KindDesc& kind_desc(Kind kind) noexcept;

}  // namespace fh
