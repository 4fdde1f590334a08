// tests/test_codec.cpp - the codec: round trips of every supported type, the pinned wire
// format, and rejection of truncated, oversized and hostile input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

#include "mp/codec.hpp"

namespace {

enum class Colour : std::int16_t { red = -3, green = 0, blue = 7 };
enum Plain { plain_a = 1, plain_b = 200 };

struct Point {
    int x = 0;
    double y = 0;
    std::string label;
    MP_FIELDS(x, y, label)
    bool operator==(const Point& o) const { return x == o.x && y == o.y && label == o.label; }
};

struct Nested {
    std::vector<Point> points;
    std::optional<Point> best;
    std::map<std::string, std::variant<int, std::string>> tags;
    Colour colour = Colour::green;
    MP_FIELDS(points, best, tags, colour)
    bool operator==(const Nested& o) const {
        return points == o.points && best == o.best && tags == o.tags && colour == o.colour;
    }
};

struct Node {
    int value = 0;
    std::vector<Node> kids;
    MP_FIELDS(value, kids)
    bool operator==(const Node& o) const { return value == o.value && kids == o.kids; }
};

struct Empty {
    MP_FIELDS()
};

struct WithPointer {
    int* p = nullptr;
    MP_FIELDS(p)
};

// ---- what can be encoded, decided at compile time --------------------------------------------
static_assert(mp::is_encodable_v<int>);
static_assert(mp::is_encodable_v<std::string>);
static_assert(mp::is_encodable_v<mp::bytes>);
static_assert(mp::is_encodable_v<std::map<std::string, std::vector<std::optional<double>>>>);
static_assert(mp::is_encodable_v<std::tuple<int, std::pair<char, bool>, std::array<float, 3>>>);
static_assert(mp::is_encodable_v<std::variant<std::monostate, int, std::string>>);
static_assert(mp::is_encodable_v<Point>);
static_assert(mp::is_encodable_v<Nested>);
static_assert(mp::is_encodable_v<Node>);  // recursive
static_assert(mp::is_encodable_v<Empty>);
static_assert(mp::is_encodable_v<Colour>);
static_assert(!mp::is_encodable_v<int*>);
static_assert(!mp::is_encodable_v<const char*>);
static_assert(!mp::is_encodable_v<long double>);
static_assert(!mp::is_encodable_v<std::function<void()>>);
static_assert(!mp::is_encodable_v<WithPointer>);
static_assert(!mp::is_encodable_v<std::vector<WithPointer>>);
static_assert(!mp::is_encodable_v<std::map<int, int*>>);

template <class T>
T round_trip(const T& v) {
    return mp::decode<T>(mp::encode(v));
}

template <class T>
std::string hex(const T& v) {
    std::string out;
    char buf[4];
    for (unsigned char c : mp::encode(v)) {
        std::snprintf(buf, sizeof buf, "%02X", c);
        out += buf;
    }
    return out;
}

template <class T>
void expect_decode_error(const std::string& wire, std::size_t offset, const char* why) {
    try {
        (void)mp::decode<T>(wire);
        ADD_FAILURE() << why << ": decoded without error";
    } catch (const mp::DecodeError& e) {
        EXPECT_EQ(e.offset(), offset) << why << ": " << e.what();
    }
}

template <class T>
void check_integer_limits() {
    for (T v : {std::numeric_limits<T>::min(), T(0), T(1), std::numeric_limits<T>::max()}) EXPECT_EQ(round_trip(v), v);
}

}  // namespace

TEST(Codec, IntegersAtTheirLimits) {
    check_integer_limits<std::int8_t>();
    check_integer_limits<std::uint8_t>();
    check_integer_limits<std::int16_t>();
    check_integer_limits<std::uint16_t>();
    check_integer_limits<std::int32_t>();
    check_integer_limits<std::uint32_t>();
    check_integer_limits<std::int64_t>();
    check_integer_limits<std::uint64_t>();
    check_integer_limits<long>();
    check_integer_limits<unsigned long>();
    check_integer_limits<char>();
    check_integer_limits<wchar_t>();
    check_integer_limits<char16_t>();
    check_integer_limits<char32_t>();
    EXPECT_EQ(round_trip(true), true);
    EXPECT_EQ(round_trip(false), false);
    EXPECT_EQ(round_trip(std::byte{0xAB}), std::byte{0xAB});
}

TEST(Codec, WireFormatIsPinned) {
    EXPECT_EQ(hex(std::uint32_t{300}), "AC02");
    EXPECT_EQ(hex(std::int32_t{-1}), "01");
    EXPECT_EQ(hex(std::int32_t{1}), "02");
    EXPECT_EQ(hex(std::int64_t{-64}), "7F");
    EXPECT_EQ(hex(std::uint64_t{0}), "00");
    EXPECT_EQ(hex(std::numeric_limits<std::uint64_t>::max()), "FFFFFFFFFFFFFFFFFF01");
    EXPECT_EQ(hex(std::string("hi")), "026869");
    EXPECT_EQ(hex(1.0), "000000000000F03F");
    EXPECT_EQ(hex(1.0f), "0000803F");
    EXPECT_EQ(hex(std::optional<int>{}), "00");
    EXPECT_EQ(hex(std::optional<int>{3}), "0106");
    EXPECT_EQ(hex(std::variant<int, std::string>{std::string("a")}), "010161");
    EXPECT_EQ(hex(Colour::red), "05");
    EXPECT_EQ(hex(Point{1, 0.0, "z"}), "020000000000000000017A");
    // The same value encodes the same way whatever the width of its type on this platform.
    EXPECT_EQ(mp::encode(long{-5}), mp::encode(std::int64_t{-5}));
    EXPECT_EQ(mp::encode(static_cast<unsigned long>(7)), mp::encode(std::uint8_t{7} + 0u));
}

TEST(Codec, FloatsBitExact) {
    for (double d : {0.0, -0.0, 1.5, -2.25e300, std::numeric_limits<double>::denorm_min(),
                     std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
        const double back = round_trip(d);
        EXPECT_EQ(std::memcmp(&back, &d, sizeof d), 0) << d;
    }
    for (float f : {0.0f, -0.0f, 3.25f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max()}) {
        const float back = round_trip(f);
        EXPECT_EQ(std::memcmp(&back, &f, sizeof f), 0) << f;
    }
    EXPECT_TRUE(std::signbit(round_trip(-0.0)));
}

TEST(Codec, StringsAndBytes) {
    EXPECT_EQ(round_trip(std::string()), "");
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    EXPECT_EQ(round_trip(all), all);
    mp::bytes b(all.size());
    std::memcpy(b.data(), all.data(), all.size());
    EXPECT_EQ(round_trip(b), b);
    EXPECT_EQ(round_trip(std::vector<std::uint8_t>{1, 2, 255}), (std::vector<std::uint8_t>{1, 2, 255}));
    const std::string big(16 << 20, 'x');
    EXPECT_EQ(round_trip(big), big);
}

TEST(Codec, Containers) {
    EXPECT_EQ(round_trip(std::vector<int>{}), std::vector<int>{});
    EXPECT_EQ(round_trip(std::vector<int>{-1, 0, 1 << 30}), (std::vector<int>{-1, 0, 1 << 30}));
    EXPECT_EQ(round_trip(std::vector<bool>{true, false, true}), (std::vector<bool>{true, false, true}));
    EXPECT_EQ(round_trip(std::deque<short>{1, 2}), (std::deque<short>{1, 2}));
    EXPECT_EQ(round_trip(std::list<std::string>{"a", ""}), (std::list<std::string>{"a", ""}));
    EXPECT_EQ(round_trip(std::array<double, 3>{1, 2, 3}), (std::array<double, 3>{1, 2, 3}));
    const std::map<std::string, int> m{{"a", 1}, {"b", -2}};
    EXPECT_EQ(round_trip(m), m);
    const std::unordered_map<int, std::string> um{{1, "x"}, {2, "y"}};
    EXPECT_EQ(round_trip(um), um);
    EXPECT_EQ(round_trip(std::set<int>{3, 1, 2}), (std::set<int>{1, 2, 3}));
    EXPECT_EQ(round_trip(std::unordered_set<std::string>{"p", "q"}), (std::unordered_set<std::string>{"p", "q"}));
    const auto t = std::make_tuple(1, std::string("two"), 3.0, std::make_pair('4', false));
    EXPECT_EQ(round_trip(t), t);
    EXPECT_EQ(round_trip(std::tuple<>{}), std::tuple<>{});
}

TEST(Codec, OptionalVariantEnum) {
    EXPECT_EQ(round_trip(std::optional<std::string>{}), std::nullopt);
    EXPECT_EQ(round_trip(std::optional<std::string>{"x"}), std::optional<std::string>{"x"});
    using V = std::variant<std::monostate, int, std::string, std::vector<double>>;
    for (const V& v : {V{}, V{42}, V{std::string("s")}, V{std::vector<double>{1.5}}}) EXPECT_EQ(round_trip(v), v);
    EXPECT_EQ(round_trip(Colour::red), Colour::red);
    EXPECT_EQ(round_trip(Colour::blue), Colour::blue);
    EXPECT_EQ(round_trip(plain_b), plain_b);
}

TEST(Codec, UserStructsNestedAndRecursive) {
    Nested n;
    n.points = {{1, 2.5, "a"}, {-3, -0.5, "b"}};
    n.best = Point{9, 9.0, "best"};
    n.tags = {{"k", 1}, {"s", std::string("v")}};
    n.colour = Colour::blue;
    EXPECT_EQ(round_trip(n), n);

    Node tree{1, {{2, {}}, {3, {{4, {{5, {}}}}}}}};
    EXPECT_EQ(round_trip(tree), tree);
    EXPECT_EQ(round_trip(Empty{}).mp_fields(), std::tuple<>{});
}

// ---- malformed input ---------------------------------------------------------------------------

TEST(Codec, EveryTruncationIsRejected) {
    Nested n;
    n.points = {{1, 2.5, "abc"}, {300, -1, ""}};
    n.best = Point{7, 1, "x"};
    n.tags = {{"t", std::string("long enough")}};
    const std::string wire = mp::encode(n);
    for (std::size_t len = 0; len < wire.size(); ++len) {
        try {
            (void)mp::decode<Nested>(wire.substr(0, len));
            ADD_FAILURE() << "a prefix of " << len << " bytes decoded";
        } catch (const mp::DecodeError& e) {
            EXPECT_LE(e.offset(), len);
        }
    }
}

TEST(Codec, HugeCountsAreRefusedBeforeAllocating) {
    // count 2^60, then nothing: must fail at once, without reserving anything.
    std::string wire = mp::encode(std::uint64_t{1} << 60);
    expect_decode_error<std::vector<std::int64_t>>(wire, 0, "vector count");
    expect_decode_error<std::string>(wire, 0, "string count");
    expect_decode_error<mp::bytes>(wire, 0, "bytes count");
    expect_decode_error<std::map<int, int>>(wire, 0, "map count");
    // A count that would fit if elements were 1 byte but not at their real minimum (8 bytes).
    expect_decode_error<std::vector<double>>(std::string("\x02") + std::string(15, '\0'), 0, "double count");
}

TEST(Codec, HostileValuesAreRejected) {
    expect_decode_error<bool>("\x02", 0, "bool byte 2");
    expect_decode_error<std::optional<int>>("\x07", 0, "optional flag 7");
    expect_decode_error<std::variant<int, std::string>>("\x02\x00", 0, "variant index 2");
    expect_decode_error<std::uint64_t>(std::string(10, '\xff') + "\x01", 0, "11-byte varint");
    expect_decode_error<std::uint64_t>(std::string(9, '\xff') + "\x02", 0, "varint over 64 bits");
    expect_decode_error<std::int32_t>(mp::encode(std::int64_t{1} << 40), 0, "int32 overflow");
    expect_decode_error<std::uint16_t>(mp::encode(std::uint32_t{70000}), 0, "uint16 overflow");
    expect_decode_error<std::uint32_t>("\x80\x80", 2, "varint cut short");
}

TEST(Codec, RepeatedKeysAndTrailingBytes) {
    std::string dup = "\x02";
    dup += mp::encode(1) + mp::encode(10) + mp::encode(1) + mp::encode(20);
    expect_decode_error<std::map<int, int>>(dup, 3, "repeated map key");
    std::string dup_set = "\x02" + mp::encode(std::string("a")) + mp::encode(std::string("a"));
    expect_decode_error<std::set<std::string>>(dup_set, 3, "repeated set element");
    expect_decode_error<int>(mp::encode(5) + "x", 1, "trailing byte");
}

TEST(Codec, DeepNestingIsAnErrorNotACrash) {
    // Node{0, [Node{0, [ ... 100000 levels ...]}]}: each level is value 0, count 1.
    std::string wire;
    for (int i = 0; i < 100000; ++i) wire += std::string("\x00\x01", 2);
    wire += std::string("\x00\x00", 2);
    try {
        (void)mp::decode<Node>(wire);
        FAIL() << "decoded 100000 levels";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("nesting deeper than 64"), std::string::npos) << e.what();
    }
    // The limit is the decoder's to choose.
    Node chain;
    Node* at = &chain;
    for (int i = 0; i < 20; ++i) {
        at->kids.emplace_back();
        at = &at->kids.back();
    }
    const std::string ok = mp::encode(chain);
    EXPECT_EQ(mp::decode<Node>(ok), chain);
    mp::Decoder shallow(ok, 10);
    Node out;
    EXPECT_THROW(shallow.read(out), mp::DecodeError);
}

TEST(Codec, RandomGarbageNeverCrashes) {
    std::mt19937_64 rng(12345);
    int decoded = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string wire(rng() % 64, '\0');
        for (auto& c : wire) c = static_cast<char>(rng() & 0xff);
        auto attempt = [&](auto tag) {
            using T = decltype(tag);
            try {
                (void)mp::decode<T>(wire);
                ++decoded;
            } catch (const mp::DecodeError&) {
            }
        };
        attempt(Nested{});
        attempt(Node{});
        attempt(std::map<std::string, std::vector<std::optional<std::variant<std::int64_t, std::string, double>>>>{});
        attempt(std::tuple<std::uint16_t, bool, std::set<int>>{});
    }
    EXPECT_GT(decoded, 0);  // some garbage is valid input, and it decodes
}
