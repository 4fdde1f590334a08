// mp/utf8_path.hpp - a std::filesystem::path as the UTF-8 text the rest of the API takes (a
// Windows path is wide inside), the same in C++17 and C++20: path::u8string() is a std::string
// in C++17 and a std::u8string in C++20, which converts back to a path, not to a std::string
// (so `f(p.u8string())` with an f(std::string) and an f(path) would call f(path) again).
#pragma once

#include <filesystem>
#include <string>

namespace mp::detail {
inline std::string utf8_path(const std::filesystem::path& p) {
    const auto text = p.u8string();
    return std::string(reinterpret_cast<const char*>(text.data()), text.size());
}
}  // namespace mp::detail
