// mp/codec.hpp - the binary encoding of everything that crosses a process boundary: process
// arguments, queue items, pipe messages, results.
//
// Wire format (little-endian, no padding, no type tags - both ends know the C++ type):
//   bool                    1 byte, 0 or 1 (anything else is rejected)
//   1-byte integers, char,  1 raw byte
//     std::byte
//   unsigned integers       LEB128 varint (7 bits a byte, low first, at most 10 bytes)
//   signed integers         zigzag, then varint (so -1 is 01, 1 is 02)
//   float / double          4 / 8 bytes, IEEE-754 bits, little-endian
//   enum                    its underlying type
//   string, bytes, vector,  varint element count, then the elements (strings and vectors of
//     deque, list, set,     1-byte elements are one block copy)
//     unordered_set
//   map, unordered_map      varint count, then key, value, key, value ...
//   array<T, N>             N elements, no count
//   pair, tuple, struct     the members in order (a struct names them with MP_FIELDS)
//   optional                1 byte (0 empty, 1 full), then the value
//   variant                 varint index, then the alternative
// Integers are encoded by value, never by size, so a `long` holding 5 is the same bytes on
// Linux (64-bit long) and Windows (32-bit long).
//
// Decoding treats its input as hostile: every read is bounds-checked, a count is checked
// against the bytes left before anything is reserved (so a 10-byte input cannot ask for a
// terabyte), nesting is limited (recursive structs could otherwise exhaust the stack), and a
// map with a repeated key, a bool that is not 0/1, a variant index out of range or a varint
// that overflows its type are errors. Every failure is mp::DecodeError carrying the offset.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "errors.hpp"

// Inside a struct or class: names the members that are encoded, in order.
//     struct Point { int x; double y; std::string label; MP_FIELDS(x, y, label) };
// MP_FIELDS() with no names declares a type with no state to transfer.
#define MP_FIELDS(...)                                                 \
    auto mp_fields() { return std::tie(__VA_ARGS__); }                 \
    auto mp_fields() const { return std::tie(__VA_ARGS__); }

namespace mp {

using bytes = std::vector<std::byte>;

namespace codec_detail {

template <class T, template <class...> class Tmpl>
struct is_instance : std::false_type {};
template <template <class...> class Tmpl, class... A>
struct is_instance<Tmpl<A...>, Tmpl> : std::true_type {};
template <class T, template <class...> class Tmpl>
inline constexpr bool is_instance_v = is_instance<T, Tmpl>::value;

template <class T>
struct is_std_array : std::false_type {};
template <class T, std::size_t N>
struct is_std_array<std::array<T, N>> : std::true_type {};

template <class T, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(std::declval<const T&>().mp_fields())>> : std::true_type {};

template <class T>
using fields_tuple = decltype(std::declval<const T&>().mp_fields());

template <class T>
inline constexpr bool is_one_byte_v =
    std::is_same_v<T, char> || std::is_same_v<T, signed char> || std::is_same_v<T, unsigned char> ||
    std::is_same_v<T, std::byte>;

// Vectors of 1-byte elements (std::string's siblings, mp::bytes) move as one block.
template <class T>
struct is_byte_vector : std::false_type {};
template <class E, class A>
struct is_byte_vector<std::vector<E, A>> : std::bool_constant<is_one_byte_v<E>> {};

template <class T>
inline constexpr bool is_sequence_v = is_instance_v<T, std::vector> || is_instance_v<T, std::deque> ||
                                      is_instance_v<T, std::list>;
template <class T>
inline constexpr bool is_set_v = is_instance_v<T, std::set> || is_instance_v<T, std::unordered_set>;
template <class T>
inline constexpr bool is_map_v = is_instance_v<T, std::map> || is_instance_v<T, std::unordered_map>;

template <class T, class Tuple>
struct in_tuple;
template <class T, class... A>
struct in_tuple<T, std::tuple<A...>> : std::bool_constant<(std::is_same_v<T, A> || ...)> {};

// encodable<T, Path>: whether T can be encoded. Path lists the structs whose fields are being
// checked, so that a recursive struct (struct Node { std::vector<Node> kids; }) counts as
// encodable instead of sending the check round in a circle.
template <class T, class Path, class = void>
struct encodable : std::false_type {};

template <class Tuple, class Path>
struct all_encodable;
template <class... A, class Path>
struct all_encodable<std::tuple<A...>, Path>
    : std::bool_constant<(encodable<std::remove_cv_t<std::remove_reference_t<A>>, Path>::value && ...)> {};

template <class T, class... P>
struct encodable<T, std::tuple<P...>,
                 std::enable_if_t<(std::is_arithmetic_v<T> && !std::is_same_v<T, long double>) || std::is_enum_v<T> ||
                                  std::is_same_v<T, std::byte> || std::is_same_v<T, std::string> ||
                                  std::is_same_v<T, std::monostate>>> : std::true_type {};

template <class T, class... P>
struct encodable<T, std::tuple<P...>, std::enable_if_t<is_sequence_v<T> || is_set_v<T> || is_instance_v<T, std::optional>>>
    : encodable<typename T::value_type, std::tuple<P...>> {};

template <class T, std::size_t N, class... P>
struct encodable<std::array<T, N>, std::tuple<P...>> : encodable<T, std::tuple<P...>> {};

template <class T, class... P>
struct encodable<T, std::tuple<P...>, std::enable_if_t<is_map_v<T>>>
    : std::bool_constant<encodable<typename T::key_type, std::tuple<P...>>::value &&
                         encodable<typename T::mapped_type, std::tuple<P...>>::value> {};

template <class A, class B, class... P>
struct encodable<std::pair<A, B>, std::tuple<P...>>
    : std::bool_constant<encodable<A, std::tuple<P...>>::value && encodable<B, std::tuple<P...>>::value> {};

// Tuples of references (what MP_FIELDS's std::tie makes) encode as their values.
template <class... A, class... P>
struct encodable<std::tuple<A...>, std::tuple<P...>> : all_encodable<std::tuple<A...>, std::tuple<P...>> {};

template <class... A, class... P>
struct encodable<std::variant<A...>, std::tuple<P...>>
    : std::bool_constant<(encodable<A, std::tuple<P...>>::value && ...)> {};

template <class T, class... P>
struct encodable<T, std::tuple<P...>, std::enable_if_t<has_fields<T>::value>>
    : std::conditional_t<in_tuple<T, std::tuple<P...>>::value, std::true_type,
                         all_encodable<fields_tuple<T>, std::tuple<P..., T>>> {};

// The fewest bytes any value of T encodes to. A count of N elements needs N * this many
// bytes of input, which is how decoding refuses counts the input cannot back.
template <class T>
constexpr std::size_t min_size();

template <class Tuple>
struct min_size_of_all;
template <class... A>
struct min_size_of_all<std::tuple<A...>> {
    static constexpr std::size_t value = (std::size_t{0} + ... + min_size<std::remove_cv_t<std::remove_reference_t<A>>>());
};

template <class T>
constexpr std::size_t min_size() {
    if constexpr (std::is_same_v<T, float>) {
        return 4;
    } else if constexpr (std::is_same_v<T, double>) {
        return 8;
    } else if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_same_v<T, std::byte>) {
        return 1;
    } else if constexpr (std::is_same_v<T, std::monostate>) {
        return 0;
    } else if constexpr (is_std_array<T>::value) {
        return std::tuple_size_v<T> * min_size<typename T::value_type>();
    } else if constexpr (is_instance_v<T, std::pair> || is_instance_v<T, std::tuple>) {
        return min_size_of_all<decltype(std::tuple_cat(std::declval<std::tuple<>>(), std::declval<T>()))>::value;
    } else if constexpr (has_fields<T>::value) {
        return min_size_of_all<fields_tuple<T>>::value;
    } else {
        return 1;  // strings, containers (a count), optional (a flag), variant (an index)
    }
}

}  // namespace codec_detail

// Whether T can cross a process boundary through the codec.
template <class T>
struct is_encodable : codec_detail::encodable<std::remove_cv_t<T>, std::tuple<>> {};
template <class T>
inline constexpr bool is_encodable_v = is_encodable<T>::value;

// True for classes that declare MP_FIELDS(...).
template <class T>
inline constexpr bool has_fields_v = codec_detail::has_fields<T>::value;

class Encoder {
public:
    explicit Encoder(std::string& out) : out_(out) {}

    void write_raw(const void* data, std::size_t n) { out_.append(static_cast<const char*>(data), n); }

    void write_varint(std::uint64_t v) {
        char buf[10];
        std::size_t n = 0;
        while (v >= 0x80) {
            buf[n++] = static_cast<char>((v & 0x7f) | 0x80);
            v >>= 7;
        }
        buf[n++] = static_cast<char>(v);
        out_.append(buf, n);
    }

    template <class T>
    void write(const T& v) {
        using namespace codec_detail;
        static_assert(is_encodable_v<T>, "mp::Encoder: this type cannot be encoded (see mp/codec.hpp for the supported types)");
        if constexpr (std::is_same_v<T, bool>) {
            out_.push_back(v ? '\1' : '\0');
        } else if constexpr (is_one_byte_v<T>) {
            out_.push_back(static_cast<char>(v));
        } else if constexpr (std::is_enum_v<T>) {
            write(static_cast<std::underlying_type_t<T>>(v));
        } else if constexpr (std::is_floating_point_v<T>) {
            using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
            static_assert(sizeof(T) == sizeof(Bits), "only IEEE-754 float and double are supported");
            Bits bits;
            std::memcpy(&bits, &v, sizeof bits);
            char buf[sizeof bits];
            for (std::size_t i = 0; i < sizeof bits; ++i) buf[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
            out_.append(buf, sizeof bits);
        } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
            const auto x = static_cast<std::int64_t>(v);
            write_varint((static_cast<std::uint64_t>(x) << 1) ^ static_cast<std::uint64_t>(x >> 63));
        } else if constexpr (std::is_integral_v<T>) {
            write_varint(static_cast<std::uint64_t>(v));
        } else if constexpr (std::is_same_v<T, std::string>) {
            write_varint(v.size());
            write_raw(v.data(), v.size());
        } else if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (is_std_array<T>::value) {
            for (const auto& e : v) write(e);
        } else if constexpr (is_byte_vector<T>::value) {
            write_varint(v.size());
            write_raw(v.data(), v.size());
        } else if constexpr (is_sequence_v<T> || is_set_v<T>) {
            write_varint(v.size());
            for (const auto& e : v) write(e);
        } else if constexpr (is_map_v<T>) {
            write_varint(v.size());
            for (const auto& kv : v) {
                write(kv.first);
                write(kv.second);
            }
        } else if constexpr (is_instance_v<T, std::pair>) {
            write(v.first);
            write(v.second);
        } else if constexpr (is_instance_v<T, std::tuple>) {
            std::apply([this](const auto&... e) { (write(e), ...); }, v);
        } else if constexpr (is_instance_v<T, std::optional>) {
            out_.push_back(v ? '\1' : '\0');
            if (v) write(*v);
        } else if constexpr (is_instance_v<T, std::variant>) {
            if (v.valueless_by_exception()) throw ValueError("mp::Encoder: cannot encode a valueless variant");
            write_varint(v.index());
            std::visit([this](const auto& alt) { write(alt); }, v);
        } else {
            write_fields(v.mp_fields());
        }
    }

private:
    template <class... A>
    void write_fields(const std::tuple<A...>& fields) {
        std::apply([this](const auto&... e) { (write(e), ...); }, fields);
    }

    std::string& out_;
};

class Decoder {
public:
    Decoder(const void* data, std::size_t size, std::size_t max_depth = 64)
        : begin_(static_cast<const char*>(data)), pos_(begin_), end_(begin_ + size), max_depth_(max_depth) {}
    explicit Decoder(std::string_view in, std::size_t max_depth = 64) : Decoder(in.data(), in.size(), max_depth) {}

    std::size_t offset() const noexcept { return static_cast<std::size_t>(pos_ - begin_); }
    std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - pos_); }

    void expect_end() const {
        if (pos_ != end_) fail(std::to_string(remaining()) + " trailing bytes after the value");
    }

    const char* read_raw(std::size_t n) {
        if (n > remaining()) fail("input ends " + std::to_string(n - remaining()) + " bytes too early");
        const char* p = pos_;
        pos_ += n;
        return p;
    }

    std::uint64_t read_varint() {
        const std::size_t start = offset();
        std::uint64_t v = 0;
        for (int shift = 0;; shift += 7) {
            if (pos_ == end_) fail("input ends inside a varint");
            const auto b = static_cast<unsigned char>(*pos_++);
            if (shift == 63 && b > 1) fail_at("varint overflows 64 bits", start);
            v |= std::uint64_t(b & 0x7f) << shift;
            if (!(b & 0x80)) return v;
            if (shift == 63) fail_at("varint longer than 10 bytes", start);
        }
    }

    template <class T>
    T read() {
        T v{};
        read(v);
        return v;
    }

    template <class T>
    void read(T& v) {
        using namespace codec_detail;
        static_assert(is_encodable_v<T>, "mp::Decoder: this type cannot be decoded (see mp/codec.hpp for the supported types)");
        const std::size_t start = offset();
        if constexpr (std::is_same_v<T, bool>) {
            const auto b = static_cast<unsigned char>(*read_raw(1));
            if (b > 1) fail_at("bool byte is " + std::to_string(b) + ", not 0 or 1", start);
            v = b == 1;
        } else if constexpr (is_one_byte_v<T>) {
            v = static_cast<T>(*read_raw(1));
        } else if constexpr (std::is_enum_v<T>) {
            std::underlying_type_t<T> u{};
            read(u);
            v = static_cast<T>(u);
        } else if constexpr (std::is_floating_point_v<T>) {
            using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
            const char* p = read_raw(sizeof(Bits));
            Bits bits = 0;
            for (std::size_t i = 0; i < sizeof bits; ++i) bits |= Bits(static_cast<unsigned char>(p[i])) << (8 * i);
            std::memcpy(&v, &bits, sizeof v);
        } else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
            const std::uint64_t z = read_varint();
            const auto x = static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
            if (x < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
                x > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
                fail_at("integer " + std::to_string(x) + " does not fit the target type", start);
            v = static_cast<T>(x);
        } else if constexpr (std::is_integral_v<T>) {
            const std::uint64_t x = read_varint();
            if (x > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
                fail_at("integer " + std::to_string(x) + " does not fit the target type", start);
            v = static_cast<T>(x);
        } else if constexpr (std::is_same_v<T, std::string>) {
            const std::size_t n = read_count(1);
            v.assign(read_raw(n), n);
        } else if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (is_std_array<T>::value) {
            Nest nest(*this);
            for (auto& e : v) read(e);
        } else if constexpr (is_byte_vector<T>::value) {
            const std::size_t n = read_count(1);
            const char* p = read_raw(n);
            v.resize(n);
            if (n) std::memcpy(v.data(), p, n);
        } else if constexpr (is_sequence_v<T>) {
            using E = typename T::value_type;
            Nest nest(*this);
            const std::size_t n = read_count(element_min<E>());
            v.clear();
            if constexpr (is_instance_v<T, std::vector>) v.reserve(n < 1024 ? n : 1024);  // grows as bytes arrive
            for (std::size_t i = 0; i < n; ++i) {
                E e{};  // a local, not v.back(): std::vector<bool> has no element references
                read(e);
                v.push_back(std::move(e));
            }
        } else if constexpr (is_set_v<T>) {
            using E = typename T::value_type;
            Nest nest(*this);
            const std::size_t n = read_count(element_min<E>());
            v.clear();
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t at = offset();
                E e{};
                read(e);
                if (!v.insert(std::move(e)).second) fail_at("repeated set element", at);
            }
        } else if constexpr (is_map_v<T>) {
            using K = typename T::key_type;
            using M = typename T::mapped_type;
            Nest nest(*this);
            const std::size_t n = read_count(element_min<K>() + element_min<M>());
            v.clear();
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t at = offset();
                K k{};
                read(k);
                M m{};
                read(m);
                if (!v.emplace(std::move(k), std::move(m)).second) fail_at("repeated map key", at);
            }
        } else if constexpr (is_instance_v<T, std::pair>) {
            Nest nest(*this);
            read(v.first);
            read(v.second);
        } else if constexpr (is_instance_v<T, std::tuple>) {
            Nest nest(*this);
            std::apply([this](auto&... e) { (read(e), ...); }, v);
        } else if constexpr (is_instance_v<T, std::optional>) {
            Nest nest(*this);
            const auto flag = static_cast<unsigned char>(*read_raw(1));
            if (flag > 1) fail_at("optional flag is " + std::to_string(flag) + ", not 0 or 1", start);
            if (flag) {
                v.emplace();
                read(*v);
            } else {
                v.reset();
            }
        } else if constexpr (is_instance_v<T, std::variant>) {
            Nest nest(*this);
            const std::uint64_t index = read_varint();
            if (index >= std::variant_size_v<T>)
                fail_at("variant index " + std::to_string(index) + " is out of range", start);
            read_alternative<0>(v, static_cast<std::size_t>(index));
        } else {
            Nest nest(*this);
            auto fields = v.mp_fields();
            std::apply([this](auto&... e) { (read(e), ...); }, fields);
        }
    }

private:
    // Counts the nesting of composite values; too deep is an error, not a stack overflow.
    struct Nest {
        explicit Nest(Decoder& d) : d_(d) {
            if (++d_.depth_ > d_.max_depth_) d_.fail("nesting deeper than " + std::to_string(d_.max_depth_));
        }
        ~Nest() { --d_.depth_; }
        Nest(const Nest&) = delete;
        Nest& operator=(const Nest&) = delete;
        Decoder& d_;
    };

    template <class E>
    static constexpr std::size_t element_min() {
        constexpr std::size_t m = codec_detail::min_size<E>();
        static_assert(m > 0,
                      "mp codec: containers of types that encode to zero bytes (std::tuple<>, "
                      "std::monostate, empty MP_FIELDS()) are not supported: their element count "
                      "could not be checked against the input");
        return m;
    }

    // A count of elements that each need at least `each` bytes must fit in what is left.
    std::size_t read_count(std::size_t each) {
        const std::size_t start = offset();
        const std::uint64_t n = read_varint();
        if (n > remaining() / each)
            fail_at("count " + std::to_string(n) + " needs more bytes than the " + std::to_string(remaining()) + " left",
                    start);
        return static_cast<std::size_t>(n);
    }

    template <std::size_t I, class V>
    void read_alternative(V& v, std::size_t index) {
        if constexpr (I < std::variant_size_v<V>) {
            if (index == I) {
                read(v.template emplace<I>());
            } else {
                read_alternative<I + 1>(v, index);
            }
        }
    }

    [[noreturn]] void fail(const std::string& what) const { throw DecodeError("mp::Decoder: " + what, offset()); }
    [[noreturn]] void fail_at(const std::string& what, std::size_t at) const {
        throw DecodeError("mp::Decoder: " + what, at);
    }

    const char* begin_;
    const char* pos_;
    const char* end_;
    std::size_t max_depth_;
    std::size_t depth_ = 0;
};

// Appends the encoding of value to out.
template <class T>
void encode_to(std::string& out, const T& value) {
    Encoder(out).write(value);
}

template <class T>
std::string encode(const T& value) {
    std::string out;
    encode_to(out, value);
    return out;
}

// Decodes the whole of `in` into out; trailing bytes are an error.
template <class T>
void decode_into(std::string_view in, T& out) {
    Decoder d(in);
    d.read(out);
    d.expect_end();
}

template <class T>
T decode(std::string_view in) {
    T v{};
    decode_into(in, v);
    return v;
}

}  // namespace mp
