// tests/test_codec.cpp - the codec: round trips of every supported type, the pinned wire
// format, and rejection of truncated, oversized and hostile input.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <random>
#include <string_view>

#include "mp/codec.hpp"

namespace {

enum class Colour : std::int16_t { red = -3, green = 0, blue = 7, lowest = -32768 };
enum Plain : int { plain_a = 1, plain_b = 200, plain_neg = -70000 };
enum class Small : std::uint8_t { zero = 0, big = 250 };
enum NoFixedType { nft_a, nft_b };  // its valid range is its enumerators' bit range: refused

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
    int v = 0;
    std::vector<Node> kids;
    MP_FIELDS(v, kids)
    bool operator==(const Node& o) const { return v == o.v && kids == o.kids; }
};

// Mutual recursion through containers.
struct Forest;
struct Tree {
    std::string name;
    std::vector<Forest> forests;
    MP_FIELDS(name, forests)
};
struct Forest {
    std::list<Tree> trees;
    MP_FIELDS(trees)
};

struct Empty {
    MP_FIELDS()
    bool operator==(const Empty&) const { return true; }
};

// Members private, MP_FIELDS public: the usual shape of a class.
class Account {
public:
    Account() = default;
    Account(std::string owner, std::int64_t cents) : owner_(std::move(owner)), cents_(cents) {}
    bool operator==(const Account& o) const { return owner_ == o.owner_ && cents_ == o.cents_; }
    MP_FIELDS(owner_, cents_)

private:
    std::string owner_;
    std::int64_t cents_ = 0;
};

struct WithPointer {
    int x = 0;
    int* p = nullptr;
    MP_FIELDS(x, p)
};
struct WithLongDouble {
    long double x = 0;
    MP_FIELDS(x)
};
struct HoldsBadStruct {
    std::vector<WithPointer> bad;
    MP_FIELDS(bad)
};
struct NoDefaultConstructor {
    explicit NoDefaultConstructor(int v) : x(v) {}
    int x;
    MP_FIELDS(x)
};
struct NoFields {
    int x = 0;
};
struct ConstMember {
    const int x = 0;  // decoding could not write it
    MP_FIELDS(x)
};

// ---- what can be encoded, decided at compile time --------------------------------------------
static_assert(mp::is_encodable_v<bool>);
static_assert(mp::is_encodable_v<char> && mp::is_encodable_v<signed char> && mp::is_encodable_v<unsigned char>);
static_assert(mp::is_encodable_v<std::int8_t> && mp::is_encodable_v<std::uint64_t> && mp::is_encodable_v<long>);
static_assert(mp::is_encodable_v<wchar_t> && mp::is_encodable_v<char16_t> && mp::is_encodable_v<char32_t>);
static_assert(mp::is_encodable_v<float> && mp::is_encodable_v<double>);
static_assert(mp::is_encodable_v<std::byte>);
static_assert(mp::is_encodable_v<const int>);
static_assert(mp::is_encodable_v<std::string>);
static_assert(mp::is_encodable_v<mp::bytes>);
static_assert(std::is_same_v<mp::bytes, std::vector<std::byte>>);
static_assert(mp::is_encodable_v<std::map<std::string, std::vector<std::optional<double>>>>);
static_assert(mp::is_encodable_v<std::unordered_map<int, std::set<std::string>>>);
static_assert(mp::is_encodable_v<std::unordered_set<long>>);
static_assert(mp::is_encodable_v<std::deque<std::list<short>>>);
static_assert(mp::is_encodable_v<std::tuple<int, std::pair<char, bool>, std::array<float, 3>>>);
static_assert(mp::is_encodable_v<std::tuple<>>);
static_assert(mp::is_encodable_v<std::array<int, 0>>);
static_assert(mp::is_encodable_v<std::variant<std::monostate, int, std::string>>);
static_assert(mp::is_encodable_v<std::monostate>);
static_assert(mp::is_encodable_v<std::tuple<int&, const std::string&>>);  // what MP_FIELDS makes
static_assert(mp::is_encodable_v<Colour> && mp::is_encodable_v<Plain> && mp::is_encodable_v<Small>);
static_assert(mp::is_encodable_v<Point>);
static_assert(mp::is_encodable_v<Nested>);
static_assert(mp::is_encodable_v<Node>);  // recursive
static_assert(mp::is_encodable_v<Tree> && mp::is_encodable_v<Forest>);
static_assert(mp::is_encodable_v<std::vector<Node>>);
static_assert(mp::is_encodable_v<Empty>);
static_assert(mp::is_encodable_v<std::optional<Empty>>);
static_assert(mp::is_encodable_v<Account>);
static_assert(mp::is_encodable<Point>::value);

static_assert(!mp::is_encodable_v<int*>);
static_assert(!mp::is_encodable_v<const char*>);
static_assert(!mp::is_encodable_v<int&>);
static_assert(!mp::is_encodable_v<char[4]>);
static_assert(!mp::is_encodable_v<long double>);
static_assert(!mp::is_encodable_v<void>);
static_assert(!mp::is_encodable_v<void()>);
static_assert(!mp::is_encodable_v<int[]>);
static_assert(!mp::is_encodable_v<std::nullptr_t>);
static_assert(!mp::is_encodable_v<std::string_view>);
static_assert(!mp::is_encodable_v<std::unique_ptr<int>>);
static_assert(!mp::is_encodable_v<std::function<void()>>);
static_assert(!mp::is_encodable_v<NoFixedType>);
static_assert(!mp::is_encodable_v<NoFields>);
static_assert(!mp::is_encodable_v<WithPointer>);
static_assert(!mp::is_encodable_v<WithLongDouble>);
static_assert(!mp::is_encodable_v<HoldsBadStruct>);
static_assert(!mp::is_encodable_v<NoDefaultConstructor>);
static_assert(!mp::is_encodable_v<ConstMember>);
static_assert(!mp::is_encodable_v<std::vector<WithPointer>>);
static_assert(!mp::is_encodable_v<std::map<int, int*>>);
static_assert(!mp::is_encodable_v<std::optional<std::function<int()>>>);
static_assert(!mp::is_encodable_v<std::variant<int, long double>>);
static_assert(!mp::is_encodable_v<std::pair<int, void*>>);
static_assert(!mp::is_encodable_v<std::tuple<int, int*>>);
// Zero-byte elements: a count of them could not be checked against the input.
static_assert(!mp::is_encodable_v<std::vector<std::tuple<>>>);
static_assert(!mp::is_encodable_v<std::vector<std::array<int, 0>>>);
static_assert(!mp::is_encodable_v<std::list<std::monostate>>);
static_assert(!mp::is_encodable_v<std::vector<Empty>>);
static_assert(!mp::is_encodable_v<std::map<std::tuple<>, Empty>>);

// ---- helpers ----------------------------------------------------------------------------------

template <class T>
T round_trip(const T& v) {
    return mp::decode<T>(mp::encode(v));
}

std::string to_hex(std::string_view s) {
    std::string out;
    char buf[4];
    for (char ch : s) {
        std::snprintf(buf, sizeof buf, "%02X", static_cast<unsigned>(static_cast<unsigned char>(ch)));
        out += buf;
    }
    return out;
}

template <class T>
std::string hex(const T& v) {
    return to_hex(mp::encode(v));
}

std::string from_hex(std::string_view h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    return out;
}

// Decoding `wire` as T must fail with a DecodeError at `offset`.
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
    for (T v : {std::numeric_limits<T>::min(), T(0), T(1), std::numeric_limits<T>::max(),
                static_cast<T>(std::numeric_limits<T>::min() + 1), static_cast<T>(std::numeric_limits<T>::max() - 1)})
        EXPECT_EQ(round_trip(v), v);
}

template <class T>
bool same_bits(T a, T b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
}

// Counts what a container allocates, to show that hostile counts allocate nothing.
std::size_t allocated_bytes = 0;
template <class T>
struct Counting {
    using value_type = T;
    Counting() = default;
    template <class U>
    Counting(const Counting<U>&) noexcept {}  // NOLINT(google-explicit-constructor)
    T* allocate(std::size_t n) {
        allocated_bytes += n * sizeof(T);
        return std::allocator<T>{}.allocate(n);
    }
    void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
    friend bool operator==(const Counting&, const Counting&) { return true; }
    friend bool operator!=(const Counting&, const Counting&) { return false; }
};

// A chain of `levels` Nodes, each the only kid of the one before.
Node chain(int levels) {
    Node root{0, {}};
    Node* at = &root;
    for (int i = 1; i < levels; ++i) {
        at->kids.push_back(Node{i, {}});
        at = &at->kids.back();
    }
    return root;
}

using BigMap = std::map<std::string, std::vector<std::optional<std::variant<std::int64_t, std::string, double>>>>;

Nested sample_nested() {
    Nested n;
    n.points = {{1, 2.5, "abc"}, {300, -1, ""}, {-70000, 1e300, "long label here"}};
    n.best = Point{7, 1, "x"};
    n.tags = {{"t", std::string("long enough")}, {"u", -5}};
    n.colour = Colour::red;
    return n;
}

BigMap sample_map() {
    return BigMap{{"", {}},
                  {"a", {std::nullopt, std::int64_t{-1}, std::string("s"), 2.5}},
                  {"b", {std::numeric_limits<std::int64_t>::min()}}};
}

}  // namespace

// ---- round trips -------------------------------------------------------------------------------

TEST(Codec, IntegersAtTheirLimits) {
    check_integer_limits<std::int8_t>();
    check_integer_limits<std::uint8_t>();
    check_integer_limits<std::int16_t>();
    check_integer_limits<std::uint16_t>();
    check_integer_limits<std::int32_t>();
    check_integer_limits<std::uint32_t>();
    check_integer_limits<std::int64_t>();
    check_integer_limits<std::uint64_t>();
    check_integer_limits<short>();
    check_integer_limits<unsigned short>();
    check_integer_limits<int>();
    check_integer_limits<unsigned>();
    check_integer_limits<long>();
    check_integer_limits<unsigned long>();
    check_integer_limits<long long>();
    check_integer_limits<unsigned long long>();
    check_integer_limits<char>();
    check_integer_limits<signed char>();
    check_integer_limits<unsigned char>();
    check_integer_limits<wchar_t>();
    check_integer_limits<char16_t>();
    check_integer_limits<char32_t>();
    EXPECT_EQ(round_trip(std::size_t{12345678901234567ull}), 12345678901234567ull);
    EXPECT_EQ(round_trip(std::ptrdiff_t{-5}), -5);
    // Every varint length boundary, both sides, both signs.
    for (unsigned bits = 0; bits < 64; ++bits) {
        const std::uint64_t p = std::uint64_t{1} << bits;
        for (std::uint64_t u : {p - 1, p, p + 1}) {
            EXPECT_EQ(round_trip(u), u);
            const auto s = static_cast<std::int64_t>(u);
            const auto minus_s = static_cast<std::int64_t>(0 - u);  // -s, without overflow at 2^63
            EXPECT_EQ(round_trip(s), s);
            EXPECT_EQ(round_trip(minus_s), minus_s);
        }
    }
    EXPECT_EQ(round_trip(true), true);
    EXPECT_EQ(round_trip(false), false);
    for (int i = 0; i < 256; ++i) EXPECT_EQ(round_trip(std::byte(i)), std::byte(i));
}

TEST(Codec, FloatsAreBitExact) {
    const double dnan = std::numeric_limits<double>::quiet_NaN();
    double payload_nan;  // a NaN with a payload and the sign bit set
    const std::uint64_t payload_bits = 0xFFF4000000ABCDEFull;
    std::memcpy(&payload_nan, &payload_bits, sizeof payload_nan);
    for (double d : {0.0, -0.0, 1.5, -2.25e300, std::numeric_limits<double>::denorm_min(),
                     std::numeric_limits<double>::min(), std::numeric_limits<double>::max(),
                     std::numeric_limits<double>::lowest(), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity(), dnan, -dnan, payload_nan}) {
        EXPECT_TRUE(same_bits(round_trip(d), d)) << d;
    }
    for (float f : {0.0f, -0.0f, 3.25f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::max(),
                    std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::infinity()}) {
        EXPECT_TRUE(same_bits(round_trip(f), f)) << f;
    }
    EXPECT_TRUE(std::signbit(round_trip(-0.0)));
    EXPECT_TRUE(std::isnan(round_trip(std::vector<double>{dnan})[0]));
}

TEST(Codec, StringsAndBytes) {
    EXPECT_EQ(round_trip(std::string()), "");
    std::string all;
    for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
    EXPECT_EQ(round_trip(all), all);
    EXPECT_EQ(round_trip(all + all + all), all + all + all);
    mp::bytes b(all.size());
    std::memcpy(b.data(), all.data(), all.size());
    EXPECT_EQ(round_trip(b), b);
    EXPECT_EQ(round_trip(mp::bytes{}), mp::bytes{});
    EXPECT_EQ(mp::encode(b), mp::encode(all));  // the same wire format
    EXPECT_EQ(round_trip(std::vector<char>(all.begin(), all.end())), std::vector<char>(all.begin(), all.end()));
    EXPECT_EQ(round_trip(std::vector<std::uint8_t>{1, 2, 255}), (std::vector<std::uint8_t>{1, 2, 255}));
    EXPECT_EQ(round_trip(std::vector<std::int8_t>{-128, 0, 127}), (std::vector<std::int8_t>{-128, 0, 127}));
    EXPECT_EQ(round_trip(std::vector<Small>{Small::big, Small::zero}), (std::vector<Small>{Small::big, Small::zero}));
    EXPECT_EQ(round_trip(std::array<char, 4>{'a', '\0', '\xff', 'z'}), (std::array<char, 4>{'a', '\0', '\xff', 'z'}));
    EXPECT_EQ(round_trip(std::array<std::byte, 2>{std::byte{1}, std::byte{0xfe}}),
              (std::array<std::byte, 2>{std::byte{1}, std::byte{0xfe}}));
    const std::string embedded_nul("a\0b", 3);
    EXPECT_EQ(round_trip(embedded_nul), embedded_nul);
}

TEST(Codec, SixteenMebibyteStringRoundTrip) {
    std::string big(16u << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 12));
    const std::string wire = mp::encode(big);
    const std::string back = mp::decode<std::string>(wire);
    EXPECT_EQ(wire.size(), big.size() + 4);  // 2^24 is a 4-byte varint
    EXPECT_TRUE(back == big);
    mp::bytes blob(big.size());
    std::memcpy(blob.data(), big.data(), big.size());
    EXPECT_TRUE(round_trip(blob) == blob);
}

TEST(Codec, Containers) {
    EXPECT_EQ(round_trip(std::vector<int>{}), std::vector<int>{});
    EXPECT_EQ(round_trip(std::vector<int>{-1, 0, 1 << 30}), (std::vector<int>{-1, 0, 1 << 30}));
    EXPECT_EQ(round_trip(std::vector<bool>{true, false, true}), (std::vector<bool>{true, false, true}));
    EXPECT_EQ(round_trip(std::vector<std::string>{"", "a", std::string(300, 'q')}),
              (std::vector<std::string>{"", "a", std::string(300, 'q')}));
    EXPECT_EQ(round_trip(std::vector<std::vector<std::string>>{{}, {"x"}, {"y", "z"}}),
              (std::vector<std::vector<std::string>>{{}, {"x"}, {"y", "z"}}));
    EXPECT_EQ(round_trip(std::deque<short>{1, 2}), (std::deque<short>{1, 2}));
    EXPECT_EQ(round_trip(std::list<std::string>{"a", ""}), (std::list<std::string>{"a", ""}));
    EXPECT_EQ(round_trip(std::array<double, 3>{1, 2, 3}), (std::array<double, 3>{1, 2, 3}));
    EXPECT_EQ(round_trip(std::array<int, 0>{}), (std::array<int, 0>{}));
    const std::map<std::string, int> m{{"a", 1}, {"b", -2}};
    EXPECT_EQ(round_trip(m), m);
    const std::unordered_map<int, std::string> um{{1, "x"}, {2, "y"}, {-3, ""}};
    EXPECT_EQ(round_trip(um), um);
    EXPECT_EQ(round_trip(std::set<int>{3, 1, 2}), (std::set<int>{1, 2, 3}));
    EXPECT_EQ(round_trip(std::unordered_set<std::string>{"p", "q"}), (std::unordered_set<std::string>{"p", "q"}));
    EXPECT_EQ(round_trip(std::map<int, std::set<double>>{{1, {0.5, -0.5}}, {2, {}}}),
              (std::map<int, std::set<double>>{{1, {0.5, -0.5}}, {2, {}}}));
    const auto t = std::make_tuple(1, std::string("two"), 3.0, std::make_pair('4', false));
    EXPECT_EQ(round_trip(t), t);
    EXPECT_EQ(round_trip(std::tuple<>{}), std::tuple<>{});
    EXPECT_EQ(round_trip(std::pair<std::string, std::vector<int>>{"k", {1}}),
              (std::pair<std::string, std::vector<int>>{"k", {1}}));
    EXPECT_EQ(round_trip(sample_map()), sample_map());
    std::vector<std::int64_t> many(100000);
    for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<std::int64_t>(i * i) - 5000000000LL;
    EXPECT_EQ(round_trip(many), many);
    std::map<int, int> big_map;
    for (int i = 0; i < 10000; ++i) big_map[i * 7] = -i;
    EXPECT_EQ(round_trip(big_map), big_map);
}

TEST(Codec, OptionalVariantEnum) {
    EXPECT_EQ(round_trip(std::optional<std::string>{}), std::nullopt);
    EXPECT_EQ(round_trip(std::optional<std::string>{"x"}), std::optional<std::string>{"x"});
    EXPECT_EQ(round_trip(std::optional<std::optional<int>>{std::optional<int>{}}),
              std::optional<std::optional<int>>{std::optional<int>{}});
    EXPECT_EQ(round_trip(std::optional<Empty>{Empty{}}), std::optional<Empty>{Empty{}});
    using V = std::variant<std::monostate, int, std::string, std::vector<double>, Point, bool>;
    for (const V& v : {V{}, V{42}, V{std::string("s")}, V{std::vector<double>{1.5}}, V{Point{1, 2, "p"}}, V{true}}) {
        const V back = round_trip(v);
        EXPECT_EQ(back.index(), v.index());
        EXPECT_EQ(back, v);
    }
    // Alternatives of the same type are told apart by index.
    using Twice = std::variant<int, int>;
    EXPECT_EQ(round_trip(Twice{std::in_place_index<1>, 5}).index(), 1u);
    EXPECT_EQ(round_trip(Twice{std::in_place_index<0>, 5}).index(), 0u);
    for (Colour c : {Colour::red, Colour::green, Colour::blue, Colour::lowest}) EXPECT_EQ(round_trip(c), c);
    for (Plain p : {plain_a, plain_b, plain_neg}) EXPECT_EQ(round_trip(p), p);
    EXPECT_EQ(round_trip(Small::big), Small::big);
    // An enum with a fixed type holds any value of that type, named or not.
    EXPECT_EQ(round_trip(static_cast<Colour>(1234)), static_cast<Colour>(1234));
}

TEST(Codec, UserStructsNestedAndRecursive) {
    const Nested n = sample_nested();
    EXPECT_EQ(round_trip(n), n);
    EXPECT_EQ(round_trip(Point{-1, -0.25, "pt"}), (Point{-1, -0.25, "pt"}));
    EXPECT_EQ(round_trip(Account("ann", -12345)), Account("ann", -12345));
    EXPECT_EQ(round_trip(Empty{}), Empty{});
    EXPECT_EQ(mp::encode(Empty{}), "");

    const Node tree{1, {{2, {}}, {3, {{4, {{5, {{6, {}}}}}}}}, {7, {{8, {}}, {9, {}}}}}};
    EXPECT_EQ(round_trip(tree), tree);
    EXPECT_EQ(round_trip(chain(20)), chain(20));

    Tree t{"root", {Forest{{Tree{"a", {}}, Tree{"b", {Forest{{Tree{"c", {}}}}}}}}}};
    const Tree back = round_trip(t);
    EXPECT_EQ(mp::encode(back), mp::encode(t));
    EXPECT_EQ(back.forests.at(0).trees.back().forests.at(0).trees.front().name, "c");
}

TEST(Codec, SameWireFormatAcrossTypesAndPlatforms) {
    // Integers travel by value, so widths may differ between the ends (Windows `long` is
    // 32-bit, Linux `long` 64-bit) as long as the value fits.
    EXPECT_EQ(mp::encode(long{-5}), mp::encode(std::int64_t{-5}));
    EXPECT_EQ(mp::encode(long{-5}), mp::encode(std::int16_t{-5}));
    EXPECT_EQ(mp::encode(static_cast<unsigned long>(7)), mp::encode(std::uint16_t{7}));
    EXPECT_EQ(mp::decode<long>(mp::encode(std::int64_t{2147483647})), 2147483647L);
    // 1-byte types are the exception: a raw byte, not a varint.
    EXPECT_EQ(mp::encode(std::int8_t{-7}), "\xF9");
    EXPECT_NE(mp::encode(std::int8_t{-7}), mp::encode(std::int16_t{-7}));
    // wchar_t is signed 32-bit on Linux and unsigned 16-bit on Windows; both encode as signed.
    EXPECT_EQ(mp::encode(L'A'), mp::encode(std::int32_t{65}));
    EXPECT_EQ(mp::encode(static_cast<wchar_t>(0xFFFF)), mp::encode(std::int32_t{0xFFFF}));
    // Containers of the same shape share a format.
    EXPECT_EQ(mp::decode<std::deque<long>>(mp::encode(std::vector<int>{1, -2})), (std::deque<long>{1, -2}));
    EXPECT_EQ(mp::decode<std::list<short>>(mp::encode(std::set<int>{4, 5})), (std::list<short>{4, 5}));
    EXPECT_EQ((mp::decode<std::map<int, std::string>>(mp::encode(std::unordered_map<int, std::string>{{2, "b"}, {1, "a"}}))),
              (std::map<int, std::string>{{1, "a"}, {2, "b"}}));
    EXPECT_EQ(mp::decode<std::string>(mp::encode(mp::bytes{std::byte{'h'}, std::byte{'i'}})), "hi");
    EXPECT_EQ((mp::decode<std::tuple<int, double, std::string>>(mp::encode(Point{3, 0.5, "l"}))),
              std::make_tuple(3, 0.5, std::string("l")));
    EXPECT_EQ((mp::decode<std::pair<int, int>>(mp::encode(std::array<int, 2>{8, 9}))), std::make_pair(8, 9));
}

TEST(Codec, DecodeOverwritesTheTarget) {
    std::vector<int> v{9, 9, 9};
    mp::decode_into(mp::encode(std::vector<int>{1}), v);
    EXPECT_EQ(v, std::vector<int>{1});
    std::map<int, int> m{{5, 5}};
    mp::decode_into(mp::encode(std::map<int, int>{{1, 2}}), m);
    EXPECT_EQ(m, (std::map<int, int>{{1, 2}}));
    std::optional<std::string> o{"old"};
    mp::decode_into(mp::encode(std::optional<std::string>{}), o);
    EXPECT_FALSE(o.has_value());
    std::variant<int, std::string> var{std::string("old")};
    mp::decode_into(mp::encode(std::variant<int, std::string>{3}), var);
    EXPECT_EQ(var, (std::variant<int, std::string>{3}));
    mp::bytes b{std::byte{1}, std::byte{2}};
    mp::decode_into(mp::encode(mp::bytes{}), b);
    EXPECT_TRUE(b.empty());
    std::set<std::string> s{"zz"};
    mp::decode_into(mp::encode(std::set<std::string>{"a"}), s);
    EXPECT_EQ(s, std::set<std::string>{"a"});
}

TEST(Codec, EncoderAndDecoderStreams) {
    std::string out = "prefix";
    mp::encode_to(out, 300u);
    EXPECT_EQ(out, "prefix\xAC\x02");

    std::string wire;
    mp::Encoder enc(wire);
    enc.write(std::string("head"));
    enc.write_varint(3);
    enc.write_raw("abc", 3);
    enc.write(Point{1, 2, "p"});
    enc.write(true);

    mp::Decoder d(wire);
    EXPECT_EQ(d.read<std::string>(), "head");
    EXPECT_EQ(d.offset(), 5u);
    EXPECT_EQ(d.read_varint(), 3u);
    EXPECT_EQ(std::string(d.read_raw(3), 3), "abc");
    Point p;
    d.read(p);
    EXPECT_EQ(p, (Point{1, 2, "p"}));
    EXPECT_EQ(d.remaining(), 1u);
    EXPECT_THROW(d.expect_end(), mp::DecodeError);
    EXPECT_TRUE(d.read<bool>());
    EXPECT_EQ(d.remaining(), 0u);
    EXPECT_EQ(d.offset(), wire.size());
    d.expect_end();
    try {
        d.read_raw(1);
        ADD_FAILURE() << "read past the end";
    } catch (const mp::DecodeError& err) {
        EXPECT_EQ(err.offset(), wire.size());
    }

    // The pointer constructor, and MP_FIELDS read straight into a class's members.
    const std::string fields = mp::encode(std::make_tuple(std::string("bob"), std::int64_t{42}));
    mp::Decoder fd(fields.data(), fields.size());
    Account a;
    auto tied = a.mp_fields();
    fd.read(tied);
    fd.expect_end();
    EXPECT_EQ(a, Account("bob", 42));

    mp::Decoder empty(nullptr, 0);
    EXPECT_EQ(empty.remaining(), 0u);
    EXPECT_THROW(empty.read<int>(), mp::DecodeError);
}

TEST(Codec, ValuelessVariantCannotBeEncoded) {
    struct Throws {
        std::string s;  // not trivially copyable, so emplace constructs in place and can fail there
        Throws() = default;
        explicit Throws(int) { throw std::runtime_error("no"); }
        MP_FIELDS(s)
    };
    std::variant<int, Throws> v;
    try {
        v.emplace<Throws>(1);
    } catch (const std::runtime_error&) {
    }
    if (!v.valueless_by_exception()) GTEST_SKIP() << "this standard library avoided the valueless state";
    EXPECT_THROW((void)mp::encode(v), mp::ValueError);
}

// ---- the wire format, pinned -------------------------------------------------------------------

TEST(Codec, WireFormatIsPinned) {
    EXPECT_EQ(hex(std::uint32_t{300}), "AC02");
    EXPECT_EQ(hex(std::uint16_t{127}), "7F");
    EXPECT_EQ(hex(std::uint16_t{128}), "8001");
    EXPECT_EQ(hex(std::int32_t{-1}), "01");
    EXPECT_EQ(hex(std::int32_t{1}), "02");
    EXPECT_EQ(hex(std::int32_t{-2}), "03");
    EXPECT_EQ(hex(std::int64_t{-64}), "7F");
    EXPECT_EQ(hex(std::int64_t{64}), "8001");
    EXPECT_EQ(hex(std::uint64_t{0}), "00");
    EXPECT_EQ(hex(std::numeric_limits<std::uint64_t>::max()), "FFFFFFFFFFFFFFFFFF01");
    EXPECT_EQ(hex(std::numeric_limits<std::int64_t>::max()), "FEFFFFFFFFFFFFFFFF01");
    EXPECT_EQ(hex(std::numeric_limits<std::int64_t>::min()), "FFFFFFFFFFFFFFFFFF01");
    EXPECT_EQ(hex(std::numeric_limits<std::int32_t>::min()), "FFFFFFFF0F");
    // 1-byte types are the raw byte, whatever their signedness.
    EXPECT_EQ(hex(std::int8_t{-1}), "FF");
    EXPECT_EQ(hex(std::uint8_t{200}), "C8");
    EXPECT_EQ(hex('A'), "41");
    EXPECT_EQ(hex(std::byte{0xAB}), "AB");
    EXPECT_EQ(hex(true), "01");
    EXPECT_EQ(hex(false), "00");
    EXPECT_EQ(hex(u'A'), "41");
    EXPECT_EQ(hex(U'\x1F600'), "80EC07");
    EXPECT_EQ(hex(L'A'), "8201");
    EXPECT_EQ(hex(1.0), "000000000000F03F");
    EXPECT_EQ(hex(-0.0), "0000000000000080");
    EXPECT_EQ(hex(1.0f), "0000803F");
    EXPECT_EQ(hex(std::numeric_limits<double>::infinity()), "000000000000F07F");
    EXPECT_EQ(hex(std::string("hi")), "026869");
    EXPECT_EQ(hex(std::string()), "00");
    EXPECT_EQ(hex(mp::bytes{std::byte{0}, std::byte{0xff}}), "0200FF");
    EXPECT_EQ(hex(std::vector<int>{1, -1}), "020201");
    EXPECT_EQ(hex(std::vector<bool>{true, false}), "020100");
    EXPECT_EQ(hex(std::array<std::uint16_t, 2>{1, 300}), "01AC02");
    EXPECT_EQ(hex(std::map<std::string, int>{{"b", 2}, {"a", 1}}), "02016102016204");
    EXPECT_EQ(hex(std::set<unsigned>{5, 3}), "020305");
    EXPECT_EQ(hex(std::make_pair(1, std::string("x"))), "020178");
    EXPECT_EQ(hex(std::make_tuple(true, 'c', 2.0f)), "016300000040");
    EXPECT_EQ(hex(std::tuple<>{}), "");
    EXPECT_EQ(hex(std::monostate{}), "");
    EXPECT_EQ(hex(std::optional<int>{}), "00");
    EXPECT_EQ(hex(std::optional<int>{3}), "0106");
    EXPECT_EQ(hex(std::variant<int, std::string>{std::string("a")}), "010161");
    EXPECT_EQ(hex(std::variant<std::monostate, int>{}), "00");
    EXPECT_EQ(hex(Colour::red), "05");
    EXPECT_EQ(hex(Small::big), "FA");
    EXPECT_EQ(hex(Point{1, 0.0, "z"}), "020000000000000000017A");
    EXPECT_EQ(hex(Node{-1, {Node{1, {}}}}), "01010200");
}

TEST(Codec, PaddedVarintsAreAcceptedUpToTenBytes) {
    // Writers may reserve a fixed-width varint and patch it later; decoders accept that.
    EXPECT_EQ(mp::decode<std::uint32_t>(from_hex("8000")), 0u);
    EXPECT_EQ(mp::decode<std::uint32_t>(from_hex("AC8280808000")), 300u);
    EXPECT_EQ(mp::decode<std::string>(from_hex("828000" "6869")), "hi");
    EXPECT_EQ(mp::decode<std::uint64_t>(from_hex("80808080808080808000")), 0u);
    expect_decode_error<std::uint64_t>(from_hex("8080808080808080808000"), 0, "11-byte padded zero");
}

// ---- malformed input ---------------------------------------------------------------------------

namespace {

// Every proper prefix of wire must fail, at an offset within the prefix; wire itself decodes;
// one byte more is "trailing bytes" at the end of the value.
template <class T>
void check_truncations(const T& value) {
    const std::string wire = mp::encode(value);
    for (std::size_t len = 0; len < wire.size(); ++len) {
        try {
            (void)mp::decode<T>(std::string_view(wire).substr(0, len));
            ADD_FAILURE() << "a prefix of " << len << " of " << wire.size() << " bytes decoded";
        } catch (const mp::DecodeError& e) {
            EXPECT_LE(e.offset(), len);
        }
    }
    EXPECT_EQ(mp::encode(mp::decode<T>(wire)), wire);
    try {
        (void)mp::decode<T>(wire + '\0');
        ADD_FAILURE() << "a trailing byte was accepted";
    } catch (const mp::DecodeError& e) {
        EXPECT_EQ(e.offset(), wire.size());
        EXPECT_NE(std::string(e.what()).find("trailing bytes"), std::string::npos) << e.what();
    }
}

}  // namespace

TEST(Codec, EveryTruncationIsRejected) {
    check_truncations(sample_nested());
    check_truncations(sample_map());
    check_truncations(Node{1, {{2, {}}, {3, {{4, {{5, {}}}}}}}});
    check_truncations(std::make_tuple(std::uint64_t{1} << 62, std::string(200, 'x'), 1.5f, mp::bytes(130)));
    check_truncations(std::array<std::int64_t, 3>{-1, 1000000, 7});
}

TEST(Codec, HugeCountsAreRefusedBeforeAllocating) {
    // count 2^60, then nothing: must fail at once, having allocated nothing.
    const std::string wire = mp::encode(std::uint64_t{1} << 60);
    {
        std::vector<std::int64_t, Counting<std::int64_t>> v;
        allocated_bytes = 0;
        EXPECT_THROW(mp::decode_into(wire, v), mp::DecodeError);
        EXPECT_EQ(allocated_bytes, 0u);
    }
    {
        std::map<int, int, std::less<int>, Counting<std::pair<const int, int>>> m;
        allocated_bytes = 0;
        EXPECT_THROW(mp::decode_into(wire, m), mp::DecodeError);
        EXPECT_EQ(allocated_bytes, 0u);
    }
    {
        std::deque<std::string, Counting<std::string>> dq;  // a deque allocates when built, not later
        allocated_bytes = 0;
        EXPECT_THROW(mp::decode_into(wire, dq), mp::DecodeError);
        EXPECT_EQ(allocated_bytes, 0u);
    }
    expect_decode_error<std::vector<std::int64_t>>(wire, 0, "vector count");
    expect_decode_error<std::string>(wire, 0, "string count");
    expect_decode_error<mp::bytes>(wire, 0, "bytes count");
    expect_decode_error<std::map<int, int>>(wire, 0, "map count");
    expect_decode_error<std::unordered_set<int>>(wire, 0, "set count");
    expect_decode_error<std::list<Node>>(wire, 0, "list count");
    expect_decode_error<std::string>(mp::encode(std::numeric_limits<std::uint64_t>::max()), 0, "count 2^64-1");
    // Counts that would fit if elements were 1 byte but not at their real minimum size.
    expect_decode_error<std::vector<double>>(std::string("\x02") + std::string(15, '\0'), 0, "double count");
    expect_decode_error<std::vector<Point>>(std::string("\x02") + std::string(19, '\0'), 0, "Point count");
    expect_decode_error<std::map<double, float>>(std::string("\x02") + std::string(23, '\0'), 0, "map count");
    expect_decode_error<std::string>(std::string("\x05") + "abcd", 0, "string one byte short");

    // A count the input does back, followed by garbage: what is reserved up front is never
    // more than the input left, though the elements take more memory than their encodings.
    std::string backed = mp::encode(std::uint64_t{1000});
    backed += std::string(1000, '\x80');
    {
        std::vector<std::int64_t, Counting<std::int64_t>> v;
        allocated_bytes = 0;
        EXPECT_THROW(mp::decode_into(backed, v), mp::DecodeError);
        EXPECT_LE(allocated_bytes, backed.size());
    }
    std::string strings = mp::encode(std::uint64_t{1000});
    strings += std::string(1000, '\x7f');
    {
        std::vector<std::string, Counting<std::string>> v;
        allocated_bytes = 0;
        EXPECT_THROW(mp::decode_into(strings, v), mp::DecodeError);
        EXPECT_LE(allocated_bytes, strings.size());
    }
}

TEST(Codec, HostileValuesAreRejected) {
    expect_decode_error<bool>("\x02", 0, "bool byte 2");
    expect_decode_error<bool>("\xff", 0, "bool byte 255");
    expect_decode_error<std::vector<bool>>(from_hex("03010005"), 3, "third bool of a vector");
    expect_decode_error<Point>(from_hex("02") + std::string(8, '\0') + from_hex("05616263"), 9, "short label");
    expect_decode_error<std::optional<int>>("\x07", 0, "optional flag 7");
    expect_decode_error<std::variant<int, std::string>>(std::string("\x02\x00", 2), 0, "variant index 2");
    expect_decode_error<std::variant<int, std::string>>(mp::encode(std::uint64_t{1} << 63) + '\0', 0,
                                                        "variant index 2^63");
    expect_decode_error<std::variant<std::monostate>>("\x01", 0, "variant index 1 of 1");
    expect_decode_error<std::uint64_t>(std::string(10, '\xff') + "\x01", 0, "11-byte varint");
    expect_decode_error<std::uint64_t>(std::string(9, '\xff') + "\x02", 0, "varint over 64 bits");
    expect_decode_error<std::uint64_t>(std::string(9, '\xff') + "\x7f", 0, "varint far over 64 bits");
    expect_decode_error<std::int32_t>(mp::encode(std::int64_t{1} << 40), 0, "int32 overflow");
    expect_decode_error<std::int32_t>(mp::encode(std::int64_t{2147483648LL}), 0, "INT32_MAX + 1");
    expect_decode_error<std::int32_t>(mp::encode(std::int64_t{-2147483649LL}), 0, "INT32_MIN - 1");
    expect_decode_error<std::int16_t>(mp::encode(40000), 0, "int16 overflow");
    expect_decode_error<std::uint16_t>(mp::encode(std::uint32_t{70000}), 0, "uint16 overflow");
    expect_decode_error<std::uint32_t>(mp::encode(std::uint64_t{1} << 32), 0, "uint32 overflow");
    expect_decode_error<char16_t>(mp::encode(std::uint32_t{0x10000}), 0, "char16_t overflow");
    expect_decode_error<Colour>(mp::encode(std::int32_t{40000}), 0, "enum overflowing int16");
    expect_decode_error<std::vector<std::uint8_t>>(from_hex("02FF"), 0, "bytes one short");
    expect_decode_error<std::uint32_t>("\x80\x80", 2, "varint cut short");
    expect_decode_error<std::uint32_t>("", 0, "nothing at all");
    expect_decode_error<double>(std::string(7, '\0'), 0, "7-byte double");
    expect_decode_error<std::array<int, 3>>(from_hex("0202"), 2, "array of 3 with 2");
    // A NaN key cannot be ordered or compared equal, so no std::set or map can hold it sanely.
    expect_decode_error<std::set<double>>(from_hex("01") + mp::encode(std::numeric_limits<double>::quiet_NaN()), 1,
                                          "NaN in a set");
    expect_decode_error<std::unordered_map<float, int>>(
        from_hex("01") + mp::encode(std::numeric_limits<float>::quiet_NaN()) + std::string(1, '\0'), 1, "NaN map key");
}

TEST(Codec, RepeatedKeysAndTrailingBytes) {
    const std::string dup = "\x02" + mp::encode(1) + mp::encode(10) + mp::encode(1) + mp::encode(20);
    expect_decode_error<std::map<int, int>>(dup, 3, "repeated map key");
    expect_decode_error<std::unordered_map<int, int>>(dup, 3, "repeated unordered_map key");
    const std::string dup_set = "\x02" + mp::encode(std::string("a")) + mp::encode(std::string("a"));
    expect_decode_error<std::set<std::string>>(dup_set, 3, "repeated set element");
    expect_decode_error<std::unordered_set<std::string>>(dup_set, 3, "repeated unordered_set element");
    // 0.0 and -0.0 are the same key.
    expect_decode_error<std::set<double>>("\x02" + mp::encode(0.0) + mp::encode(-0.0), 9, "0.0 and -0.0");
    // Out of order but distinct is fine: unordered_map encodes in any order.
    const std::string unsorted = "\x02" + mp::encode(5) + mp::encode(1) + mp::encode(2) + mp::encode(3);
    EXPECT_EQ((mp::decode<std::map<int, int>>(unsorted)), (std::map<int, int>{{2, 3}, {5, 1}}));

    expect_decode_error<int>(mp::encode(5) + "x", 1, "trailing byte");
    expect_decode_error<Point>(mp::encode(Point{}) + std::string(3, '\0'), 10, "trailing bytes after a struct");
    expect_decode_error<std::tuple<>>(std::string(1, '\0'), 0, "a byte where nothing was expected");
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
        EXPECT_LT(e.offset(), 200u);
    }
    try {
        (void)mp::decode<std::vector<Node>>("\x01" + wire);
        FAIL() << "decoded 100000 levels";
    } catch (const mp::DecodeError& e) {
        EXPECT_NE(std::string(e.what()).find("nesting deeper than 64"), std::string::npos) << e.what();
    }

    // Each Node level is two: the struct and its vector. 32 levels are exactly 64 deep.
    EXPECT_EQ(mp::decode<Node>(mp::encode(chain(32))), chain(32));
    EXPECT_THROW((void)mp::decode<Node>(mp::encode(chain(33))), mp::DecodeError);

    // The limit is the decoder's to choose.
    const std::string twenty = mp::encode(chain(20));
    Node out;
    mp::Decoder shallow(twenty, 10);
    EXPECT_THROW(shallow.read(out), mp::DecodeError);
    mp::Decoder deep(twenty, 40);
    deep.read(out);
    EXPECT_EQ(out, chain(20));
    const std::string thousand = mp::encode(chain(1000));  // a Decoder views its input: keep it alive
    mp::Decoder very_deep(thousand, 2000);
    very_deep.read(out);
    EXPECT_EQ(out, chain(1000));

    // Every kind of composite counts.
    using Inner = std::tuple<std::variant<int, Point>>;
    using M = std::map<int, std::pair<int, Inner>>;
    using Deep = std::optional<std::vector<M>>;  // 7 deep: optional vector map pair tuple variant Point
    M m;
    m.emplace(1, std::make_pair(2, Inner{Point{1, 2, "p"}}));
    const Deep deep_value = std::vector<M>{m};
    EXPECT_EQ(round_trip(deep_value), deep_value);
    const std::string deep_wire = mp::encode(deep_value);
    for (std::size_t limit = 0; limit < 7; ++limit) {
        Deep d;
        mp::Decoder dec(deep_wire, limit);
        EXPECT_THROW(dec.read(d), mp::DecodeError) << "limit " << limit;
    }
    Deep d;
    mp::Decoder dec(deep_wire, 7);
    dec.read(d);
    EXPECT_EQ(d, deep_value);
}

namespace {

// Decoding must either succeed or throw DecodeError; what succeeds must re-encode to bytes that
// decode again to an equal value, and never to more bytes than were read (the encoder writes
// the shortest form). Equal is judged by encoding, so that NaN equals itself, except for
// unordered containers, whose encoding follows their iteration order.
template <class T, bool compare_values = false>
bool decode_or_reject(std::string_view wire) {
    T v{};
    try {
        mp::decode_into(wire, v);
    } catch (const mp::DecodeError& e) {
        EXPECT_LE(e.offset(), wire.size());
        return false;
    }
    const std::string again = mp::encode(v);
    EXPECT_LE(again.size(), wire.size());
    if constexpr (compare_values) {
        EXPECT_TRUE(mp::decode<T>(again) == v);
    } else {
        EXPECT_EQ(mp::encode(mp::decode<T>(again)), again);
    }
    return true;
}

struct Fuzzed {
    std::uint16_t a = 0;
    bool b = false;
    std::set<int> s;
    std::optional<Colour> c;
    std::array<std::int8_t, 2> arr{};
    std::variant<std::monostate, float, mp::bytes> var;
    std::map<char, std::deque<std::uint64_t>> um;
    MP_FIELDS(a, b, s, c, arr, var, um)
};

}  // namespace

TEST(Codec, RandomGarbageNeverCrashes) {
    std::mt19937_64 rng(12345);  // the same sequence on every platform
    int decoded = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string wire(rng() % 64, '\0');
        for (auto& c : wire) c = static_cast<char>(rng() & 0xff);
        if (i % 4 == 0 && !wire.empty()) wire[0] = static_cast<char>(wire[0] & 0x07);  // small counts
        decoded += decode_or_reject<Nested>(wire);
        decoded += decode_or_reject<Node>(wire);
        decoded += decode_or_reject<std::vector<Node>>(wire);
        decoded += decode_or_reject<BigMap>(wire);
        decoded += decode_or_reject<std::tuple<std::uint16_t, bool, std::set<int>>>(wire);
        decoded += decode_or_reject<Fuzzed>(wire);
        decoded += decode_or_reject<std::variant<std::int8_t, std::string, std::optional<double>>>(wire);
        decoded += decode_or_reject<std::unordered_map<std::int16_t, std::unordered_set<std::string>>, true>(wire);
    }
    EXPECT_GT(decoded, 0);  // some garbage is valid input, and it decodes
}

TEST(Codec, MutatedEncodingsNeverCrash) {
    Fuzzed f;
    f.a = 777;
    f.s = {1, -1, 300};
    f.c = Colour::blue;
    f.var = mp::bytes(5, std::byte{7});
    f.um = {{'k', {1, 1u << 20}}, {'j', {}}};
    const std::vector<std::string> seeds = {mp::encode(sample_nested()), mp::encode(sample_map()), mp::encode(f),
                                            mp::encode(std::vector<Node>{chain(5), Node{3, {Node{4, {}}}}})};
    std::mt19937_64 rng(987654321);
    int decoded = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string wire = seeds[rng() % seeds.size()];
        for (int edits = 1 + static_cast<int>(rng() % 3); edits > 0; --edits) {
            if (wire.empty()) break;
            const std::size_t at = rng() % wire.size();
            switch (rng() % 4) {
                case 0: wire[at] = static_cast<char>(rng() & 0xff); break;
                case 1: wire.erase(at, 1); break;
                case 2: wire.insert(at, 1, static_cast<char>(rng() & 0xff)); break;
                default: wire.resize(at); break;
            }
        }
        decoded += decode_or_reject<Nested>(wire);
        decoded += decode_or_reject<BigMap>(wire);
        decoded += decode_or_reject<Fuzzed>(wire);
        decoded += decode_or_reject<std::vector<Node>>(wire);
    }
    EXPECT_GT(decoded, 0);
}

// ---- typed values: the type fingerprint ---------------------------------------------------------

namespace {

struct Reading {  // another struct than Point, of another shape
    std::string sensor;
    int value = 0;
    MP_FIELDS(sensor, value)
};

// What `f` throws must be a TypeError whose text holds every one of `parts`.
template <class F>
void expect_type_error(F f, std::initializer_list<const char*> parts) {
    try {
        f();
        ADD_FAILURE() << "no TypeError";
    } catch (const mp::TypeError& e) {
        const std::string what = e.what();
        for (const char* p : parts) EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' is not in: " << what;
    }
}

// The part of a mismatch's text that names the sender's type: "received X where".
std::string sender_part(const std::string& what) {
    const auto from = what.find("received "), to = what.find(" where ");
    return from == std::string::npos || to == std::string::npos ? what : what.substr(from + 9, to - from - 9);
}

}  // namespace

// Integers are encoded by value, so every signed integer has one shape and every unsigned one
// another; containers and products are described by their elements, not their names.
TEST(Codec, TypeFingerprintsFollowTheShape) {
    static_assert(mp::type_fingerprint<int>() == mp::type_fingerprint<long>());
    static_assert(mp::type_fingerprint<int>() == mp::type_fingerprint<std::int64_t>());
    static_assert(mp::type_fingerprint<int>() == mp::type_fingerprint<short>());
    static_assert(mp::type_fingerprint<int>() == mp::type_fingerprint<wchar_t>());
    static_assert(mp::type_fingerprint<int>() == mp::type_fingerprint<Plain>());
    static_assert(mp::type_fingerprint<int>() == mp::type_fingerprint<const int>());
    static_assert(mp::type_fingerprint<unsigned>() == mp::type_fingerprint<std::uint64_t>());
    static_assert(mp::type_fingerprint<unsigned>() == mp::type_fingerprint<char16_t>());
    static_assert(mp::type_fingerprint<char>() == mp::type_fingerprint<std::uint8_t>());
    static_assert(mp::type_fingerprint<char>() == mp::type_fingerprint<std::byte>());
    static_assert(mp::type_fingerprint<char>() == mp::type_fingerprint<Small>());
    static_assert(mp::type_fingerprint<std::string>() == mp::type_fingerprint<mp::bytes>());
    static_assert(mp::type_fingerprint<std::string>() == mp::type_fingerprint<std::vector<char>>());
    static_assert(mp::type_fingerprint<std::vector<int>>() == mp::type_fingerprint<std::deque<long>>());
    static_assert(mp::type_fingerprint<std::vector<int>>() == mp::type_fingerprint<std::set<short>>());
    static_assert(mp::type_fingerprint<std::map<int, std::string>>() ==
                  mp::type_fingerprint<std::vector<std::pair<long, std::string>>>());
    static_assert(mp::type_fingerprint<Point>() == mp::type_fingerprint<std::tuple<int, double, std::string>>());
    static_assert(mp::type_fingerprint<std::pair<int, int>>() == mp::type_fingerprint<std::tuple<long, short>>());

    static_assert(mp::type_fingerprint<int>() != mp::type_fingerprint<unsigned>());
    static_assert(mp::type_fingerprint<int>() != mp::type_fingerprint<std::int8_t>());
    static_assert(mp::type_fingerprint<int>() != mp::type_fingerprint<bool>());
    static_assert(mp::type_fingerprint<int>() != mp::type_fingerprint<std::string>());
    static_assert(mp::type_fingerprint<float>() != mp::type_fingerprint<double>());
    static_assert(mp::type_fingerprint<int>() != mp::type_fingerprint<std::optional<int>>());
    static_assert(mp::type_fingerprint<int>() != mp::type_fingerprint<std::tuple<int>>());
    static_assert(mp::type_fingerprint<Point>() != mp::type_fingerprint<Reading>());
    static_assert(mp::type_fingerprint<Point>() != mp::type_fingerprint<std::tuple<int, float, std::string>>());
    static_assert(mp::type_fingerprint<std::variant<int, std::string>>() !=
                  mp::type_fingerprint<std::variant<std::string, int>>());
    static_assert(mp::type_fingerprint<std::array<int, 2>>() != mp::type_fingerprint<std::array<int, 3>>());
    static_assert(mp::type_fingerprint<std::vector<std::vector<int>>>() != mp::type_fingerprint<std::vector<int>>());
    static_assert(mp::type_fingerprint<Node>() != mp::type_fingerprint<Tree>());
    static_assert(mp::type_fingerprint<Nested>() != mp::type_fingerprint<Fuzzed>());

    // Pinned: the same numbers on every compiler and platform (the Windows run checks them too),
    // so that two programs built apart agree.
    EXPECT_EQ(mp::type_fingerprint<int>(), 0xec0c35c4u);
    EXPECT_EQ(mp::type_fingerprint<std::string>(), 0x7ad8bdb2u);
    EXPECT_EQ(mp::type_fingerprint<Node>(), 0x348258f3u);
}

TEST(Codec, TypeNamesAreReadable) {
    EXPECT_EQ(mp::type_name<int>(), "int");
    EXPECT_EQ(mp::type_name<unsigned>(), "unsigned int");
    EXPECT_EQ(mp::type_name<std::string>(), "std::string");
    EXPECT_EQ(mp::type_name<mp::bytes>(), "std::vector<std::byte>");
    EXPECT_EQ((mp::type_name<std::map<std::string, std::vector<std::optional<double>>>>()),
              "std::map<std::string, std::vector<std::optional<double>>>");
    EXPECT_EQ((mp::type_name<std::variant<std::monostate, std::pair<int, bool>, std::array<char, 3>>>()),
              "std::variant<std::monostate, std::pair<int, bool>, std::array<char, 3>>");
    EXPECT_EQ(mp::type_name<std::tuple<>>(), "std::tuple<>");
    // Classes and enums by the compiler's name (in an anonymous namespace here, which GCC and
    // Clang spell differently).
    const std::string point = mp::type_name<Point>(), colour = mp::type_name<Colour>();
    EXPECT_EQ(point.substr(point.size() - 7), "::Point") << point;
    EXPECT_EQ(colour.substr(colour.size() - 8), "::Colour") << colour;
}

TEST(Codec, TypedValuesCheckTheFingerprint) {
    // The fingerprint, little-endian, then the value as encode writes it.
    EXPECT_EQ(to_hex(mp::encode_message(300)), "C4350CEC" + hex(300));
    EXPECT_EQ(mp::decode_message<int>(mp::encode_message(300)), 300);

    expect_type_error([] { (void)mp::decode_message<unsigned>(mp::encode_message(300)); },
                      {"where unsigned int was expected", "0xec0c35c4"});
    try {
        (void)mp::decode_message<unsigned>(mp::encode_message(300));
    } catch (const mp::TypeError& e) {
        const std::string sender = sender_part(e.what());
        EXPECT_EQ(sender.rfind("int", 0), 0u) << e.what();  // "int", or "int (or long ...)"
    }
    expect_type_error([] { (void)mp::decode_message<int>(mp::encode_message(std::string("hello"))); },
                      {"received std::string", "where int was expected"});
    expect_type_error([] { (void)mp::decode_message<Reading>(mp::encode_message(Point{1, 2.5, "p"})); },
                      {"Point", "Reading was expected"});
    expect_type_error([] { (void)mp::decode_message<std::vector<std::string>>(mp::encode_message(std::vector<int>{1})); },
                      {"std::vector<int>", "where std::vector<std::string> was expected"});

    // A fingerprint nobody here encodes is named by its number.
    expect_type_error([] { (void)mp::decode_message<int>(from_hex("EFBEADDE") + mp::encode(1)); },
                      {"a type this program never encodes", "0xdeadbeef", "int was expected"});

    // What the codec converts between today still arrives: another spelling of the same shape.
    EXPECT_EQ(mp::decode_message<long>(mp::encode_message(std::int16_t{-5})), -5L);
    EXPECT_EQ(mp::decode_message<std::deque<long>>(mp::encode_message(std::vector<int>{1, -2})), (std::deque<long>{1, -2}));
    EXPECT_EQ(mp::decode_message<std::string>(mp::encode_message(mp::bytes{std::byte{'h'}, std::byte{'i'}})), "hi");
    EXPECT_EQ((mp::decode_message<std::tuple<int, double, std::string>>(mp::encode_message(Point{3, 0.5, "l"}))),
              std::make_tuple(3, 0.5, std::string("l")));
    EXPECT_EQ(mp::decode_message<Colour>(mp::encode_message(std::int32_t{7})), Colour::blue);

    // A value that does not fit stays a DecodeError, found after the fingerprint.
    try {
        (void)mp::decode_message<std::int16_t>(mp::encode_message(40000));
        ADD_FAILURE() << "int16 overflow decoded";
    } catch (const mp::DecodeError& e) {
        EXPECT_EQ(e.offset(), 4u) << e.what();
    }
    // Untyped bytes (a raw message, or encode() rather than encode_message()) are too short or
    // carry a fingerprint that names nothing.
    EXPECT_THROW((void)mp::decode_message<int>(mp::encode(5)), mp::DecodeError);
    EXPECT_THROW((void)mp::decode_message<std::string>(""), mp::DecodeError);

    // In a stream: several typed values back to back.
    std::string wire;
    mp::Encoder e(wire);
    e.write_typed(std::string("a"));
    e.write_typed(7u);
    mp::Decoder d(wire);
    EXPECT_EQ(d.read_typed<std::string>(), "a");
    expect_type_error([&] { (void)d.read_typed<int>(); }, {"unsigned int", "where int was expected"});
}
