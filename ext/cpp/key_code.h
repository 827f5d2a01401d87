// A JSON key or stream name as a 32-bit code, computable at compile time: switch on it instead
// of comparing strings one by one (a case that matches still confirms the text when a hash
// collision would matter).
#pragma once

#include <cstdint>
#include <string_view>

namespace fh {

constexpr uint32_t key_code(std::string_view k) {
  uint32_t code = 0;
  for (char c : k) code = code * 131 + static_cast<unsigned char>(c);
  return code;
}

}  // namespace fh
