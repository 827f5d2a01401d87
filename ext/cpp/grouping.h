// Grouping rows by a fixed-width key (a record's symbol) in one pass, and copying each group's
// rows into its messages: the Kafka sink sends one message per (kind, symbol) run of a batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fh {

// Groups the rows of one batch after another, reusing its buffers: a batch allocates nothing
// once the grouper has met one as large.
class RowGrouper {
 public:
  // Groups n keys of `width` bytes, the i-th at keys + i * stride (a column of records), by
  // equality. Groups come in order of first appearance and rows keep their order inside a
  // group. Returns the number of groups.
  size_t group(const char* keys, size_t n, size_t stride, size_t width);
  int64_t size(size_t g) const noexcept { return sizes_[g]; }
  // Group g's messages of at most `most` (>= 1) rows each.
  size_t messages(size_t g, size_t most) const noexcept {
    return 1 + (static_cast<size_t>(sizes_[g]) - 1) / most;
  }
  // The last group()'s groups as row numbers: group g is rows order[bounds[g]] ..
  // order[bounds[g + 1] - 1]. `order` holds n entries, `bounds` one per group and one more.
  void order(int64_t* order, int64_t* bounds) const;
  // Copies the last group()'s `rows` (`width` bytes each) into messages of at most `most`
  // rows: group 0's first, cut in row order, then group 1's, ...; message m to outs[m] (as
  // many as messages() says, each of `width` times its rows), back
  // to back, each byte ANDed with keep[its offset in the row] (0 over padding, which a
  // message carries as zeros whatever the rows hold). One pass over the rows in their order.
  void scatter(const char* rows, size_t width, size_t most, const uint8_t* keep,
               char* const* outs) noexcept;

 private:
  std::vector<int32_t> slots_ = std::vector<int32_t>(64, -1);  // open addressing, half full
  std::vector<size_t> taken_;  // per group: its slot
  size_t rows_ = 0;
  std::vector<int32_t> group_of_;  // per row
  std::vector<int64_t> first_row_;  // per group: its first row, whose key stands for it
  std::vector<int64_t> sizes_;
  std::vector<char*> cursor_;  // scatter, per group: where its next row goes ...
  std::vector<int64_t> room_;  // ... rows left in its current message
  std::vector<size_t> next_;   // ... its next message
};

// RowGrouper::group and ::order of a single batch; returns the number of groups (`bounds`
// holds n + 1 entries).
size_t group_rows(const char* keys, size_t n, size_t stride, size_t width, int64_t* order,
                  int64_t* bounds);

}  // namespace fh
