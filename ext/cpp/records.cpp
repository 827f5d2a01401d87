#include "records.h"

#include <iterator>
#include <type_traits>

namespace fh {
namespace {

template <typename M>
constexpr FieldType field_type() {
  using T = std::remove_all_extents_t<M>;
  if constexpr (std::is_same_v<T, Int128LE>) return FT_I128;
  else if constexpr (std::is_same_v<T, char>) return FT_BYTES;
  else if constexpr (std::is_same_v<T, uint8_t>) return FT_U8;
  else if constexpr (std::is_same_v<T, int16_t>) return FT_I16;
  else return FT_I64;
}

template <typename M>
constexpr uint32_t field_count() {
  return std::is_array_v<M> ? std::extent_v<M> : 1;
}

#define FH_FIELD(R, f)                                                        \
  FieldDesc {                                                                 \
    #f, offsetof(R, f), field_type<decltype(R::f)>(), field_count<decltype(R::f)>() \
  }

// An int64 holding a decimal in 1e-8 units (the FT_I128 volumes always are).
#define FH_FIXED(R, f) \
  FieldDesc { #f, offsetof(R, f), FT_FIXED8, field_count<decltype(R::f)>() }

#define FH_KIND(name, schema, version, R, table) \
  KindDesc { name, schema, version, sizeof(R), table, std::size(table) }

constexpr FieldDesc kTrade[] = {
    FH_FIELD(TradeRecord, ts_recv),   FH_FIELD(TradeRecord, ts_event),
    FH_FIELD(TradeRecord, ts_trade),  FH_FIELD(TradeRecord, trade_id),
    FH_FIXED(TradeRecord, price),     FH_FIXED(TradeRecord, qty),
    FH_FIELD(TradeRecord, buyer_is_maker), FH_FIELD(TradeRecord, symbol),
};
constexpr FieldDesc kAggTrade[] = {
    FH_FIELD(AggTradeRecord, ts_recv),        FH_FIELD(AggTradeRecord, ts_event),
    FH_FIELD(AggTradeRecord, ts_trade),       FH_FIELD(AggTradeRecord, agg_id),
    FH_FIELD(AggTradeRecord, first_trade_id), FH_FIELD(AggTradeRecord, last_trade_id),
    FH_FIXED(AggTradeRecord, price),          FH_FIXED(AggTradeRecord, qty),
    FH_FIELD(AggTradeRecord, buyer_is_maker), FH_FIELD(AggTradeRecord, symbol),
};
constexpr FieldDesc kBookTicker[] = {
    FH_FIELD(BookTickerRecord, ts_recv),   FH_FIELD(BookTickerRecord, update_id),
    FH_FIXED(BookTickerRecord, bid_price), FH_FIXED(BookTickerRecord, bid_qty),
    FH_FIXED(BookTickerRecord, ask_price), FH_FIXED(BookTickerRecord, ask_qty),
    FH_FIELD(BookTickerRecord, symbol),
};
constexpr FieldDesc kDepth[] = {
    FH_FIELD(DepthRecord, ts_recv),         FH_FIELD(DepthRecord, ts_event),
    FH_FIELD(DepthRecord, first_update_id), FH_FIELD(DepthRecord, last_update_id),
    FH_FIXED(DepthRecord, price),           FH_FIXED(DepthRecord, qty),
    FH_FIELD(DepthRecord, side),            FH_FIELD(DepthRecord, flags),
    FH_FIELD(DepthRecord, symbol),
};
constexpr FieldDesc kDepthPartial[] = {
    FH_FIELD(DepthPartialRecord, ts_recv),   FH_FIELD(DepthPartialRecord, last_update_id),
    FH_FIXED(DepthPartialRecord, bid_price), FH_FIXED(DepthPartialRecord, bid_qty),
    FH_FIXED(DepthPartialRecord, ask_price), FH_FIXED(DepthPartialRecord, ask_qty),
    FH_FIELD(DepthPartialRecord, levels),    FH_FIELD(DepthPartialRecord, bid_count),
    FH_FIELD(DepthPartialRecord, ask_count), FH_FIELD(DepthPartialRecord, symbol),
};
constexpr FieldDesc kKline[] = {
    FH_FIELD(KlineRecord, ts_recv),          FH_FIELD(KlineRecord, ts_event),
    FH_FIELD(KlineRecord, ts_open),          FH_FIELD(KlineRecord, ts_close),
    FH_FIELD(KlineRecord, first_trade_id),   FH_FIELD(KlineRecord, last_trade_id),
    FH_FIELD(KlineRecord, n_trades),         FH_FIXED(KlineRecord, open),
    FH_FIXED(KlineRecord, high),             FH_FIXED(KlineRecord, low),
    FH_FIXED(KlineRecord, close),            FH_FIELD(KlineRecord, volume),
    FH_FIELD(KlineRecord, quote_volume),     FH_FIELD(KlineRecord, taker_buy_volume),
    FH_FIELD(KlineRecord, taker_buy_quote_volume), FH_FIELD(KlineRecord, closed),
    FH_FIELD(KlineRecord, interval),         FH_FIELD(KlineRecord, utc_offset_min),
    FH_FIELD(KlineRecord, symbol),
};
constexpr FieldDesc kMiniTicker[] = {
    FH_FIELD(MiniTickerRecord, ts_recv), FH_FIELD(MiniTickerRecord, ts_event),
    FH_FIXED(MiniTickerRecord, close),   FH_FIXED(MiniTickerRecord, open),
    FH_FIXED(MiniTickerRecord, high),    FH_FIXED(MiniTickerRecord, low),
    FH_FIELD(MiniTickerRecord, volume),  FH_FIELD(MiniTickerRecord, quote_volume),
    FH_FIELD(MiniTickerRecord, symbol),
};
constexpr FieldDesc kTicker[] = {
    FH_FIELD(TickerRecord, ts_recv),        FH_FIELD(TickerRecord, ts_event),
    FH_FIXED(TickerRecord, price_change),   FH_FIXED(TickerRecord, price_change_pct),
    FH_FIXED(TickerRecord, weighted_avg_price), FH_FIXED(TickerRecord, prev_close),
    FH_FIXED(TickerRecord, last_price),     FH_FIXED(TickerRecord, last_qty),
    FH_FIXED(TickerRecord, bid_price),      FH_FIXED(TickerRecord, bid_qty),
    FH_FIXED(TickerRecord, ask_price),      FH_FIXED(TickerRecord, ask_qty),
    FH_FIXED(TickerRecord, open),           FH_FIXED(TickerRecord, high),
    FH_FIXED(TickerRecord, low),            FH_FIELD(TickerRecord, volume),
    FH_FIELD(TickerRecord, quote_volume),   FH_FIELD(TickerRecord, ts_open),
    FH_FIELD(TickerRecord, ts_close),       FH_FIELD(TickerRecord, first_trade_id),
    FH_FIELD(TickerRecord, last_trade_id),  FH_FIELD(TickerRecord, n_trades),
    FH_FIELD(TickerRecord, symbol),
};
constexpr FieldDesc kWindowTicker[] = {
    FH_FIELD(WindowTickerRecord, ts_recv),       FH_FIELD(WindowTickerRecord, ts_event),
    FH_FIXED(WindowTickerRecord, price_change),  FH_FIXED(WindowTickerRecord, price_change_pct),
    FH_FIXED(WindowTickerRecord, open),          FH_FIXED(WindowTickerRecord, high),
    FH_FIXED(WindowTickerRecord, low),           FH_FIXED(WindowTickerRecord, last_price),
    FH_FIXED(WindowTickerRecord, weighted_avg_price), FH_FIELD(WindowTickerRecord, volume),
    FH_FIELD(WindowTickerRecord, quote_volume),  FH_FIELD(WindowTickerRecord, ts_open),
    FH_FIELD(WindowTickerRecord, ts_close),      FH_FIELD(WindowTickerRecord, first_trade_id),
    FH_FIELD(WindowTickerRecord, last_trade_id), FH_FIELD(WindowTickerRecord, n_trades),
    FH_FIELD(WindowTickerRecord, window),        FH_FIELD(WindowTickerRecord, symbol),
};
constexpr FieldDesc kAvgPrice[] = {
    FH_FIELD(AvgPriceRecord, ts_recv),  FH_FIELD(AvgPriceRecord, ts_event),
    FH_FIELD(AvgPriceRecord, ts_trade), FH_FIXED(AvgPriceRecord, price),
    FH_FIELD(AvgPriceRecord, interval), FH_FIELD(AvgPriceRecord, symbol),
};
constexpr FieldDesc kControl[] = {
    FH_FIELD(ControlRecord, ts_recv), FH_FIELD(ControlRecord, ts_event),
    FH_FIELD(ControlRecord, id),      FH_FIELD(ControlRecord, code),
    FH_FIELD(ControlRecord, type),
};
constexpr FieldDesc kGap[] = {
    FH_FIELD(GapRecord, ts_recv), FH_FIELD(GapRecord, expected), FH_FIELD(GapRecord, received),
    FH_FIELD(GapRecord, kind),    FH_FIELD(GapRecord, reason),   FH_FIELD(GapRecord, symbol),
};

const KindDesc kKinds[KIND_COUNT] = {
    FH_KIND("trade", "binance.spot.trade", 1, TradeRecord, kTrade),
    FH_KIND("aggTrade", "binance.spot.aggTrade", 1, AggTradeRecord, kAggTrade),
    FH_KIND("bookTicker", "binance.spot.bookTicker", 1, BookTickerRecord, kBookTicker),
    FH_KIND("depth", "binance.spot.depth", 1, DepthRecord, kDepth),
    FH_KIND("depthPartial", "binance.spot.depthPartial", 1, DepthPartialRecord, kDepthPartial),
    FH_KIND("kline", "binance.spot.kline", 1, KlineRecord, kKline),
    FH_KIND("miniTicker", "binance.spot.miniTicker", 1, MiniTickerRecord, kMiniTicker),
    FH_KIND("ticker", "binance.spot.ticker", 1, TickerRecord, kTicker),
    FH_KIND("windowTicker", "binance.spot.windowTicker", 1, WindowTickerRecord, kWindowTicker),
    FH_KIND("avgPrice", "binance.spot.avgPrice", 1, AvgPriceRecord, kAvgPrice),
    FH_KIND("control", "feedhandler.control", 1, ControlRecord, kControl),
    FH_KIND("gap", "feedhandler.gap", 1, GapRecord, kGap),
};

#undef FH_FIELD
#undef FH_KIND
#undef FH_FIXED

}  // namespace

const KindDesc& kind_desc(Kind kind) noexcept { return kKinds[kind]; }

}  // namespace fh
