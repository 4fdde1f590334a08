// tests/fuzz_codec.cpp - libFuzzer target for the codec. The first byte picks a type; the rest
// is decoded as that type. Decoding must either succeed or throw mp::DecodeError - never crash,
// hang or trip a sanitizer - and whatever decodes must re-encode to bytes that decode to an
// equal value.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Icommon/include \
//       tests/fuzz_codec.cpp -o fuzz_codec && ./fuzz_codec -max_total_time=60
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "mp/codec.hpp"

namespace {

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
    MP_FIELDS(id, name, score, flags, blob)
    bool operator==(const Record& o) const {
        // Compare encodings: NaN scores are equal bit for bit but not by ==.
        return mp::encode(*this) == mp::encode(o);
    }
};

using Map = std::map<std::string, std::vector<std::optional<std::variant<std::int64_t, std::string, double>>>>;
using Tuple = std::tuple<bool, char, std::uint32_t, std::array<std::int8_t, 3>, std::pair<float, std::string>>;

template <class T>
void check(std::string_view in) {
    T v{};
    try {
        mp::decode_into(in, v);
    } catch (const mp::DecodeError&) {
        return;
    }
    const std::string again = mp::encode(v);
    if (mp::encode(mp::decode<T>(again)) != again) std::abort();
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
