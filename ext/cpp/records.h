// Record layouts, one per output table: the wire contract. The structs, the Kind enum and the
// field tables are generated (records_gen.h) from feedhandler/contract/kinds.py, which is also
// where the Python dtypes and the README's byte tables come from; nothing else restates an
// offset. Change a layout => bump its schema version there, then regenerate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <string_view>

namespace fh {

// 128-bit fixed-point (scale 1e-8), little-endian two's complement.
struct Int128LE {
  uint64_t lo;
  int64_t hi;
};

enum DepthSide : uint8_t { SIDE_BID = 0, SIDE_ASK = 1, SIDE_NONE = 2 };
enum DepthFlags : uint8_t { DEPTH_FIRST = 1, DEPTH_LAST = 2 };
enum ControlType : uint8_t { CONTROL_RESULT = 1, CONTROL_ERROR = 2, CONTROL_SERVER_SHUTDOWN = 3 };
// A gap's `expected` is the next id the stream owed us, `received` what came instead.
enum GapReason : uint8_t { GAP_MISSING = 1, GAP_BACKWARDS = 2 };

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

}  // namespace fh

#include "records_gen.h"

namespace fh {

const KindDesc& kind_desc(Kind kind) noexcept;

// A record's NUL-padded symbol field as text.
inline std::string_view symbol_of(const char* symbol) noexcept {
  return {symbol, strnlen(symbol, kSymbolWidth)};
}

}  // namespace fh
