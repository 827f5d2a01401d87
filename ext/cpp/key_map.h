// Fixed-width keys (a record's symbol field, NUL-padded) hashed in place: the decoder looks up
// a symbol's sequence state for every sequenced frame with no string copy or node walk.
// hash_key also serves the Kafka sink's grouping (grouping.cpp), whose key width is a
// run-time value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace fh {

// A hash of the `width` bytes at `key`, 8 at a time.
inline uint64_t hash_key(const char* key, size_t width) noexcept {
  uint64_t h = 0x9E3779B97F4A7C15ull;
  size_t j = 0;
  for (; j + 8 <= width; j += 8) {  // (a fixed-size memcpy compiles to one load)
    uint64_t word;
    std::memcpy(&word, key + j, 8);
    h = (h ^ word) * 0xC2B2AE3D27D4EB4Full;
  }
  if (j < width) {
    uint64_t word = 0;
    std::memcpy(&word, key + j, width - j);
    h = (h ^ word) * 0xC2B2AE3D27D4EB4Full;
  }
  // Tables mask the low bits, which a product only fills from the factors' low bits: finish
  // by folding the high bits down (MurmurHash3's fmix64).
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ull;
  return h ^ (h >> 33);
}

// V per key of Width bytes, by open addressing at most half full. A pointer from find() holds
// until the next insert() or clear().
template <size_t Width, typename V>
class KeyMap {
 public:
  V* find(const char* key) noexcept {
    for (size_t s = home(key);; s = (s + 1) & (slots_.size() - 1)) {
      Slot& slot = slots_[s];
      if (!slot.used) return nullptr;
      if (std::memcmp(slot.key, key, Width) == 0) return &slot.value;
    }
  }

  // `key` must not be in the map; its value, until the next insert() or clear().
  V& insert(const char* key, const V& value) {
    if (2 * (size_ + 1) > slots_.size()) {
      std::vector<Slot> old(2 * slots_.size());
      old.swap(slots_);
      for (const Slot& slot : old) {
        if (slot.used) place(slot);
      }
    }
    Slot slot{{}, value, true};
    std::memcpy(slot.key, key, Width);
    ++size_;
    return place(slot).value;
  }

  void clear() {
    slots_.assign(kInitialSlots, Slot{});
    size_ = 0;
  }

 private:
  static constexpr size_t kInitialSlots = 16;
  struct Slot {
    char key[Width];
    V value;
    bool used;
  };

  size_t home(const char* key) const noexcept {
    return hash_key(key, Width) & (slots_.size() - 1);
  }
  Slot& place(const Slot& slot) {
    size_t s = home(slot.key);
    while (slots_[s].used) s = (s + 1) & (slots_.size() - 1);
    return slots_[s] = slot;
  }

  std::vector<Slot> slots_ = std::vector<Slot>(kInitialSlots);
  size_t size_ = 0;
};

}  // namespace fh
