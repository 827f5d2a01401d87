// Grouping rows by a fixed-width key (a record's symbol) in one pass, and gathering a group's
// rows into a message: the Kafka sink sends one message per (kind, symbol) run of a batch.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fh {

// Groups n keys of `width` bytes, the i-th at keys + i * stride (a column of records), by
// equality. Groups come in order of first appearance and rows keep their order inside a
// group: group g is rows order[bounds[g]] .. order[bounds[g + 1] - 1]. `order` holds n
// entries, `bounds` n + 1. Returns the number of groups.
size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds);

// Rows order[0..count) of `width` bytes each from `rows` to `out`, back to back, each byte
// ANDed with keep[its offset in the row]: 0 over padding, which a message carries as zeros
// whatever the rows hold. One pass, no call per row.
void gather_rows(const char* rows, size_t width, const int64_t* order, size_t count,
                 const uint8_t* keep, char* out);

}  // namespace fh
