// What OpenMessages::append (ext/cpp/grouping.h) costs a row: the Kafka sink's copy of each
// record into its symbol's message (bench/bench_open_messages.py builds and runs it).
// Usage: open_messages WIDTH KEY_OFFSET KEY_WIDTH ROWS SYMBOLS BATCHES FLUSH_KIB
// Each batch is ROWS rows of WIDTH bytes over SYMBOLS random symbols. Every fourth batch the
// messages are taken and handed on; they are freed eight takes later (what librdkafka holds
// until its acknowledgement), so new messages are written into memory freed long before, as
// in the handler. FLUSH_KIB > 0: that much memory is written between batches (what the
// decoder, the socket and librdkafka's thread move between two of the sink's calls), which
// takes the rows and messages out of the caches.
// Prints: <ns per row of append()>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "grouping.h"

// Whole rows into their messages (the records encoding). Builds of grouping.h before append
// took `copied` (bench_open_messages.py --against an older revision) take the other overload.
template <typename Open>
auto append(Open& open, const char* rows, size_t n, size_t width, size_t key_offset,
            size_t key_width, const uint8_t* keep, size_t most, int)
    -> decltype(open.append(rows, n, width, width, key_offset, key_width, keep, most, 1)) {
  open.append(rows, n, width, width, key_offset, key_width, keep, most, 1);
}
template <typename Open>
void append(Open& open, const char* rows, size_t n, size_t width, size_t key_offset,
            size_t key_width, const uint8_t* keep, size_t most, long) {
  open.append(rows, n, width, key_offset, key_width, keep, most, 1);
}

int main(int argc, char** argv) {
  if (argc != 8) {
    std::fprintf(stderr, "usage: %s WIDTH KEY_OFFSET KEY_WIDTH ROWS SYMBOLS BATCHES FLUSH_KIB\n",
                 argv[0]);
    return 2;
  }
  const size_t width = std::strtoul(argv[1], nullptr, 10);
  const size_t key_offset = std::strtoul(argv[2], nullptr, 10);
  const size_t key_width = std::strtoul(argv[3], nullptr, 10);
  const size_t n = std::strtoul(argv[4], nullptr, 10);
  const unsigned symbols = std::strtoul(argv[5], nullptr, 10);
  const long batches = std::strtol(argv[6], nullptr, 10);
  std::vector<char> flush(std::strtoul(argv[7], nullptr, 10) << 10);

  std::mt19937 random(1);
  std::vector<char> rows(n * width);
  for (size_t i = 0; i < n; ++i) {
    char* row = &rows[i * width];
    for (size_t b = 0; b < width; ++b) row[b] = static_cast<char>(random());
    std::memset(row + key_offset, 0, key_width);
    std::snprintf(row + key_offset, key_width, "SYM%03uUSDT", random() % symbols);
  }
  const std::vector<uint8_t> keep(width, 0xff);
  constexpr size_t kMost = 1 << 20;  // rows: no message fills up
  fh::OpenMessages open;
  std::vector<fh::HeldMessage> taken;
  std::deque<std::vector<fh::HeldMessage>> held;  // taken, not yet "acknowledged"
  const long warm_up = batches / 10;
  double seconds = 0;
  for (long b = 0; b < batches; ++b) {
    for (size_t at = 0; at < flush.size(); at += 64) ++flush[at];
    asm volatile("" : : "r"(flush.data()) : "memory");  // (the writes are not optimised away)
    const auto start = std::chrono::steady_clock::now();
    append(open, rows.data(), n, width, key_offset, key_width, keep.data(), kMost, 0);
    if (b >= warm_up) {
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    if (b % 4 == 3) {
      open.take(true, kMost, taken);
      held.push_back(taken);
    }
    if (held.size() > 8) {
      for (const fh::HeldMessage& message : held.front()) std::free(message.value);
      held.pop_front();
    }
  }
  for (const auto& messages : held) {
    for (const fh::HeldMessage& message : messages) std::free(message.value);
  }
  std::printf("%.2f\n", seconds / static_cast<double>((batches - warm_up) * n) * 1e9);
  return 0;
}
