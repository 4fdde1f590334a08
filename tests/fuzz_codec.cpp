// tests/fuzz_codec.cpp - libFuzzer target for the codec. The first byte picks a type; the rest
// is decoded as that type. Decoding must either succeed or throw mp::DecodeError - never crash,
// hang, allocate wildly or trip a sanitizer - and whatever decodes must re-encode, in no more
// bytes than it was read from, to bytes that decode again to an equal value.
// Build and run from the source root:
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Icommon/include
//       tests/fuzz_codec.cpp -o fuzz_codec
//   ./fuzz_codec -max_total_time=60 -rss_limit_mb=1024 -max_len=4096
#include <array>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "mp/codec.hpp"

namespace {

enum class Kind : std::int8_t { a = -1, b = 0, c = 1 };

struct Node {
    std::int32_t value = 0;
    std::vector<Node> kids;
    MP_FIELDS(value, kids)
    bool operator==(const Node& o) const { return value == o.value && kids == o.kids; }
};

struct Record {
    std::uint64_t id = 0;
    std::string name;
    std::optional<double> score;
    std::set<std::int16_t> flags;
    mp::bytes blob;
    Kind kind = Kind::b;
    std::array<std::uint16_t, 2> pair{};
    std::vector<bool> bits;
    std::map<std::uint32_t, std::pair<char, float>> table;
    MP_FIELDS(id, name, score, flags, blob, kind, pair, bits, table)
};

using Map = std::map<std::string, std::vector<std::optional<std::variant<std::int64_t, std::string, double>>>>;
using Tuple = std::tuple<bool, char, std::uint32_t, std::array<std::int8_t, 3>, std::pair<float, std::string>,
                         std::variant<std::monostate, wchar_t, std::list<std::int64_t>>, std::deque<std::uint8_t>>;

// Values are compared by their encodings, which holds for NaN (equal to itself bit for bit)
// and is deterministic here because none of these types has an unordered container.
template <class T>
void check(std::string_view in) {
    T v{};
    try {
        mp::decode_into(in, v);
    } catch (const mp::DecodeError& e) {
        if (e.offset() > in.size()) std::abort();
        return;
    }
    const std::string again = mp::encode(v);
    if (again.size() > in.size()) std::abort();  // the encoder writes the shortest form
    T back{};
    try {
        mp::decode_into(again, back);
    } catch (const mp::DecodeError&) {
        std::abort();  // the codec rejected its own output
    }
    if (mp::encode(back) != again) std::abort();
    if constexpr (std::is_same_v<T, std::vector<Node>>) {
        if (!(back == v)) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 4) {
        case 0: check<std::vector<Node>>(in); break;
        case 1: check<Map>(in); break;
        case 2: check<Record>(in); break;
        default: check<Tuple>(in); break;
    }
    return 0;
}
