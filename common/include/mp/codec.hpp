// mp/codec.hpp - the binary encoding of everything that crosses a process boundary: process
// arguments, queue items, pipe messages, results.
//
// Wire format of a value (no padding, and no type information inside: both ends know the C++
// type; a message carries one type fingerprint in front, below):
//   bool                     1 byte, 0 or 1 (anything else is rejected)
//   char, signed char,       1 raw byte
//     unsigned char, std::byte (so int8_t and uint8_t too)
//   unsigned integers        LEB128 varint: 7 bits a byte, low group first, high bit = more
//   signed integers,         zigzag (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...), then varint; wchar_t
//     wchar_t                is always zigzag because its signedness differs between platforms
//   float / double           4 / 8 bytes, the IEEE-754 bits, little-endian
//   enum                     its underlying type (the enum needs a fixed underlying type)
//   string, bytes, vector,   varint element count, then the elements (1-byte elements are one
//     deque, list, set,        block copy)
//     unordered_set
//   map, unordered_map       varint count, then key, value, key, value ...
//   array<T, N>              the N elements, no count
//   pair, tuple, struct      the members in order (a struct names them with MP_FIELDS)
//   optional                 1 byte (0 empty, 1 full), then the value if full
//   variant                  varint index, then the alternative; monostate is nothing
// Integers are encoded by value, never by size, so a `long` holding 5 is the same bytes on
// Linux (64-bit long) and Windows (32-bit long); a value that does not fit the receiving type
// is rejected. A decoder accepts varints padded with 0x80 bytes up to the 10-byte maximum (so a
// writer can reserve a fixed-width length and patch it), but never writes them.
//
// Typed messages. Every message mp sends for a caller (Connection::send, Queue::put, process
// arguments, pool and executor calls and results, managers' values, MPI tasks) is a typed
// value: its type's 4-byte fingerprint (little-endian), then the value as above; the receiver
// compares the fingerprint with that of the type it asked for before decoding anything, so a
// receive of the wrong type is mp::TypeError naming both types ("mp: received std::string where
// int was expected (type fingerprints 0x7ad8bdb2 and 0xec0c35c4, at byte 0)"), never a wrong
// value. encode_message / decode_message and Encoder::write_typed / Decoder::read_typed are
// those entry points; encode / decode and write / read are the bare values, without one (as
// are Connection::send_bytes and recv_bytes).
//   The fingerprint is the 32-bit FNV-1a hash of the type's shape, a description of its
//   encoding computed at compile time (codec_detail::shape_hash): b bool, c a 1-byte type, i a
//   signed integer or wchar_t, u an unsigned integer, f4 / f8 float / double, [E] anything
//   encoded as a count and elements (string and bytes are [c], a map is [(KV)]), aN(E) an
//   array, (AB...) a pair, tuple or MP_FIELDS struct, ?E an optional, <|A|B> a variant, 0
//   monostate, ^K a recursive struct's reference to the K-th enclosing struct, and xNAME; a
//   class with its own mp_encode (named by the compiler, as it has no visible structure). So it
//   is the same in every process, on every compiler and platform, and two types have one
//   fingerprint exactly when they are spellings of one encoding: int, long and an enum over
//   short are all "i" (integers travel by value: send an int, receive a long); vector<int>,
//   deque<long> and set<short> are all "[i]"; a struct and the tuple of its fields' types
//   agree. What it tells apart: signed from unsigned, integers from strings and floats, float
//   from double, and containers, structs and variants whose element or member shapes differ.
//   What it cannot: two structs with the same member shapes in the same order (the name of an
//   MP_FIELDS struct is not part of its shape, so that a tuple can stand for it); and a value
//   out of the receiving type's range is still a DecodeError, found after the fingerprint.
//   Names: a receiver names its own type from the C++ type (type_name<T>()); it names the
//   sender's from a process-wide registry (common/codec.cpp) that every type used with
//   write_typed fills at static initialisation, through a template static member
//   (TypeTag<T>::registered). The peer is nearly always the same program (a fork, spawn or
//   forkserver child, a pool worker, an MPI rank), so its types are there even if this process
//   never sent one; types of one shape are listed together ("int (or long: the same shape)"),
//   and a fingerprint that nobody here registered is "a type this program never encodes".
//   The cost is 4 bytes a message and one compare: bench/run queue. (typed put/get) moved
//   within its noise on a loaded 2-core machine and kept its targets; pipe.pingpong uses
//   send_bytes, which carries no fingerprint. So it is always on: no build option.
//
// Decoding treats its input as hostile. Every read is bounds-checked; a count is checked
// against the bytes left before anything is reserved (N elements of a type whose smallest
// encoding is m bytes need N * m bytes), so ten bytes cannot ask for a terabyte; nesting is
// limited (a recursive struct could otherwise exhaust the stack); and a repeated map key or
// set element, a NaN key, a bool or optional flag that is not 0/1, a variant index out of range
// or a varint that overflows its type are errors. Every failure is mp::DecodeError with the
// offset at which it was found; only a typed value's fingerprint that is not the expected one
// is mp::TypeError (raw bytes given as a typed message are usually one of the two: shorter than
// 4 bytes is a DecodeError, longer most likely names no type).
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
#include "portability.hpp"

// Inside a struct or class, in a public section: names the members that are encoded, in order.
//     struct Point { int x; double y; std::string label; MP_FIELDS(x, y, label) };
// MP_FIELDS() with no names declares a type with no state to transfer. The type also needs a
// default constructor: decoding default-constructs it, then decodes into the named members.
#define MP_FIELDS(...)                                                 \
    auto mp_fields() { return std::tie(__VA_ARGS__); }                 \
    auto mp_fields() const { return std::tie(__VA_ARGS__); }

namespace mp {

using bytes = std::vector<std::byte>;

class Encoder;
class Decoder;

namespace codec_detail {

template <class T>
using bare_t = std::remove_cv_t<std::remove_reference_t<T>>;

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
template <class T>
inline constexpr bool is_std_array_v = is_std_array<T>::value;

// Both overloads are needed: the const one to encode, the other to decode into the members.
template <class T, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(std::declval<const T&>().mp_fields()),
                                 decltype(std::declval<T&>().mp_fields())>> : std::true_type {};
template <class T>
inline constexpr bool has_fields_v = has_fields<T>::value;
template <class T>
using fields_t = decltype(std::declval<T&>().mp_fields());

// Only an enum with a fixed underlying type may hold every value of that type. Any other enum
// may hold only the values of its enumerators' bit range, and a decoded value outside it would
// be undefined behaviour, which a hostile peer must not be able to cause. C++17 lets exactly
// the fixed enums be list-initialised from their underlying type, which is the test here.
template <class E, class = void>
struct has_fixed_underlying : std::false_type {};
template <class E>
struct has_fixed_underlying<E, std::void_t<decltype(E{std::declval<std::underlying_type_t<E>>()})>>
    : std::true_type {};

template <class T>
inline constexpr bool is_byte_v = std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                                  std::is_same_v<T, unsigned char> || std::is_same_v<T, std::byte>;

// Integers wider than a byte; 128-bit extensions are left out because a varint here carries 64.
// (Specialised on is_integral so that sizeof is never asked of void or a function type.)
template <class T, bool = std::is_integral_v<T>>
struct is_varint : std::false_type {};
template <class T>
struct is_varint<T, true> : std::bool_constant<!std::is_same_v<T, bool> && !is_byte_v<T> && sizeof(T) <= 8> {};
template <class T>
inline constexpr bool is_varint_v = is_varint<T>::value;

// wchar_t is signed 32-bit on Linux and unsigned 16-bit on Windows; encoding it always as
// signed keeps the same character the same bytes on both.
template <class T>
inline constexpr bool is_zigzag_v = std::is_signed_v<T> || std::is_same_v<T, wchar_t>;

// float and double, if they are IEEE-754 binary32 and binary64 (they are on every target mp has).
template <class T, bool = std::is_same_v<T, float> || std::is_same_v<T, double>>
struct is_float : std::false_type {};
template <class T>
struct is_float<T, true>
    : std::bool_constant<std::numeric_limits<T>::is_iec559 && (sizeof(T) == 4 || sizeof(T) == 8)> {};
template <class T>
inline constexpr bool is_float_v = is_float<T>::value;

template <class E, bool = std::is_enum_v<E>>
struct is_byte_enum : std::false_type {};
template <class E>
struct is_byte_enum<E, true> : std::bool_constant<is_byte_v<std::underlying_type_t<E>>> {};

// Element types whose encoding is exactly their one byte of memory, so that a run of them is
// one memcpy (bool is left out: its byte must be checked).
template <class T>
inline constexpr bool is_block_element_v = is_byte_v<T> || is_byte_enum<T>::value;

template <class T>
struct is_block_vector : std::false_type {};
template <class E, class A>
struct is_block_vector<std::vector<E, A>> : std::bool_constant<is_block_element_v<E>> {};
template <class T>
inline constexpr bool is_block_vector_v = is_block_vector<T>::value;

template <class T>
inline constexpr bool is_sequence_v =
    is_instance_v<T, std::vector> || is_instance_v<T, std::deque> || is_instance_v<T, std::list>;
template <class T>
inline constexpr bool is_set_v = is_instance_v<T, std::set> || is_instance_v<T, std::unordered_set>;
template <class T>
inline constexpr bool is_map_v = is_instance_v<T, std::map> || is_instance_v<T, std::unordered_map>;

// A class that carries OS resources (a pipe end, a shared-memory segment, a lock) encodes
// itself: it declares
//     void mp_encode(mp::Encoder& e) const;   // e.write_handle(...), e.write(...)
//     void mp_decode(mp::Decoder& d);         // into a default-constructed object
// It must write at least one byte (a handle index does), so that a count of them is bounded
// by the input like any other element.
template <class T, class = void>
struct has_custom_codec : std::false_type {};
template <class T>
struct has_custom_codec<T, std::void_t<decltype(std::declval<const T&>().mp_encode(std::declval<Encoder&>())),
                                       decltype(std::declval<T&>().mp_decode(std::declval<Decoder&>()))>>
    : std::true_type {};
template <class T>
inline constexpr bool has_custom_codec_v = has_custom_codec<T>::value;

// The fewest bytes any value of T encodes to. A count of N elements needs N * this many bytes
// of input, which is how decoding refuses counts the input cannot back. Containers, optionals
// and variants need at least their 1-byte count, flag or index, and are not looked into: that
// is also what ends the recursion for struct Node { std::vector<Node> kids; }.
template <class T>
constexpr std::size_t min_size();

template <class Tuple>
struct min_size_of_all : std::integral_constant<std::size_t, 0> {};
template <class... A>
struct min_size_of_all<std::tuple<A...>>
    : std::integral_constant<std::size_t, (std::size_t{0} + ... + min_size<bare_t<A>>())> {};

template <class T>
constexpr std::size_t min_size() {
    if constexpr (is_float_v<T>) {
        return sizeof(T);
    } else if constexpr (std::is_same_v<T, std::monostate>) {
        return 0;
    } else if constexpr (is_std_array_v<T>) {
        return std::tuple_size_v<T> * min_size<typename T::value_type>();
    } else if constexpr (is_instance_v<T, std::pair>) {
        return min_size<bare_t<typename T::first_type>>() + min_size<bare_t<typename T::second_type>>();
    } else if constexpr (is_instance_v<T, std::tuple>) {
        return min_size_of_all<T>::value;
    } else if constexpr (has_custom_codec_v<T>) {
        return 1;
    } else if constexpr (has_fields_v<T>) {
        return min_size_of_all<fields_t<T>>::value;
    } else {
        return 1;
    }
}

// A container whose elements can encode to nothing: its count could not be bounded by the
// input, so a 10-byte count could ask for 2^64 default-constructed elements. Not supported.
template <class T>
constexpr bool has_empty_elements() {
    if constexpr (is_sequence_v<T> || is_set_v<T>) {
        return min_size<typename T::value_type>() == 0;
    } else if constexpr (is_map_v<T>) {
        return min_size<typename T::key_type>() + min_size<typename T::mapped_type>() == 0;
    } else {
        return false;
    }
}

// encodable<T, Seen...>(): whether T can be encoded and decoded. Seen lists the structs whose
// fields are being checked further up, so that a recursive struct counts as encodable (its
// other fields decide) instead of sending the check round in a circle. Every branch only
// names what exists for the types it is taken for, so the answer for an unsupported type is
// false, never a compile error.
template <class T, class... Seen>
constexpr bool encodable();

// Tuples (also the std::tie of MP_FIELDS, hence the references) and variants: every member.
template <class Tuple, class... Seen>
struct all_encodable : std::false_type {};  // e.g. a hand-written mp_fields() returning a non-tuple
template <class... A, class... Seen>
struct all_encodable<std::tuple<A...>, Seen...> : std::bool_constant<(encodable<bare_t<A>, Seen...>() && ...)> {};
template <class... A, class... Seen>
struct all_encodable<std::variant<A...>, Seen...> : std::bool_constant<(encodable<A, Seen...>() && ...)> {};

// Decoding writes through the references that a non-const mp_fields() returns, so a const
// member cannot be named there.
template <class Tuple>
struct all_writable : std::false_type {};
template <class... A>
struct all_writable<std::tuple<A...>> : std::bool_constant<(!std::is_const_v<std::remove_reference_t<A>> && ...)> {};

template <class T, class... Seen>
constexpr bool encodable() {
    if constexpr (std::is_same_v<T, bool> || is_byte_v<T> || is_varint_v<T> || is_float_v<T> ||
                  std::is_same_v<T, std::string> || std::is_same_v<T, std::monostate>) {
        return true;
    } else if constexpr (std::is_enum_v<T>) {
        if constexpr (has_fixed_underlying<T>::value) {
            return encodable<std::underlying_type_t<T>>();
        } else {
            return false;
        }
    } else if constexpr (is_std_array_v<T> || is_instance_v<T, std::optional>) {
        return encodable<typename T::value_type, Seen...>();
    } else if constexpr (is_sequence_v<T> || is_set_v<T>) {
        return encodable<typename T::value_type, Seen...>() && !has_empty_elements<T>();
    } else if constexpr (is_map_v<T>) {
        return encodable<typename T::key_type, Seen...>() && encodable<typename T::mapped_type, Seen...>() &&
               !has_empty_elements<T>();
    } else if constexpr (is_instance_v<T, std::pair>) {
        return encodable<bare_t<typename T::first_type>, Seen...>() &&
               encodable<bare_t<typename T::second_type>, Seen...>();
    } else if constexpr (is_instance_v<T, std::tuple> || is_instance_v<T, std::variant>) {
        return all_encodable<T, Seen...>::value;
    } else if constexpr (has_custom_codec_v<T>) {
        return std::is_default_constructible_v<T>;
    } else if constexpr (has_fields_v<T>) {
        if constexpr ((std::is_same_v<T, Seen> || ...)) {
            return true;
        } else {
            return std::is_default_constructible_v<T> && all_writable<fields_t<T>>::value &&
                   all_encodable<fields_t<T>, Seen..., T>::value;
        }
    } else {
        return false;  // pointers, references, long double, std::function, string_view, C arrays ...
    }
}

}  // namespace codec_detail

// Whether T can cross a process boundary through the codec: every type listed at the top of
// this file, nested in any way, and default-constructible classes with MP_FIELDS whose fields
// are all encodable. False (never a compile error) for anything else.
template <class T>
struct is_encodable : std::bool_constant<codec_detail::encodable<std::remove_cv_t<T>>()> {};
template <class T>
inline constexpr bool is_encodable_v = is_encodable<T>::value;

namespace codec_detail {

template <class T>
inline constexpr bool dependent_false = false;

// Stated at the top of Encoder::write and Decoder::read, so that using an unsupported type is
// one error that says why.
template <class T>
constexpr void check_encodable() {
    if constexpr (has_empty_elements<T>()) {
        static_assert(dependent_false<T>,
                      "mp codec: containers of a type that encodes to zero bytes (std::tuple<>, "
                      "std::array<T, 0>, std::monostate, a class with an empty MP_FIELDS()) are not "
                      "supported: a decoder could not check their element count against the input, so "
                      "a few hostile bytes could demand billions of elements");
    } else if constexpr (std::is_enum_v<T> && !has_fixed_underlying<T>::value) {
        static_assert(dependent_false<T>,
                      "mp codec: give the enum a fixed underlying type (enum E : int { ... }): only then "
                      "is every decoded value of that type a valid value of the enum");
    } else {
        static_assert(is_encodable_v<T>,
                      "mp codec: this type cannot be encoded. Supported: bool, integers up to 64 bits, "
                      "float, double, enums with a fixed underlying type, std::string, std::vector, "
                      "std::array, std::deque, std::list, std::map, std::unordered_map, std::set, "
                      "std::unordered_set, std::pair, std::tuple, std::optional, std::variant, "
                      "std::monostate, and default-constructible classes with MP_FIELDS(...) naming "
                      "non-const members, all nested as you like. Not: pointers, references, long "
                      "double, callables");
    }
}

inline std::uint64_t zigzag(std::int64_t x) noexcept {
    const auto u = static_cast<std::uint64_t>(x);
    return x < 0 ? ~(u << 1) : u << 1;  // no right shift of a negative value: that is not portable
}

inline std::int64_t unzigzag(std::uint64_t z) noexcept {
    return static_cast<std::int64_t>(z >> 1) ^ -static_cast<std::int64_t>(z & 1);
}

// Whether x is a value of T, compared without converting either side into a type too narrow
// for it.
template <class T>
bool fits(std::int64_t x) noexcept {
    if constexpr (std::is_signed_v<T>) {
        return x >= static_cast<std::int64_t>(std::numeric_limits<T>::min()) &&
               x <= static_cast<std::int64_t>(std::numeric_limits<T>::max());
    } else {
        return x >= 0 && static_cast<std::uint64_t>(x) <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    }
}

template <class T>
using float_bits_t = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;

}  // namespace codec_detail

// Type fingerprints (see the top of this file). A typed value starts with the 4-byte FNV-1a
// hash of its type's shape, which is computed here at compile time.
namespace codec_detail {

inline constexpr std::uint32_t fnv_offset = 2166136261u;

constexpr std::uint32_t fnv(std::uint32_t h, char c) noexcept {
    return (h ^ static_cast<unsigned char>(c)) * 16777619u;
}
constexpr std::uint32_t fnv(std::uint32_t h, const char* s) noexcept {
    for (; *s; ++s) h = fnv(h, *s);
    return h;
}
constexpr std::uint32_t fnv_number(std::uint32_t h, std::size_t n) noexcept {
    char digits[20] = {};
    int k = 0;
    do {
        digits[k++] = static_cast<char>('0' + n % 10);
        n /= 10;
    } while (n);
    while (k) h = fnv(h, digits[--k]);
    return h;
}

// The compiler's spelling of T, cut out of MP_PRETTY_FUNCTION: GCC writes
// "... signature_of() [with T = X]", Clang "... signature_of() [T = X]". Names only enums,
// MP_FIELDS structs and classes with their own codec; it differs between compilers (an
// anonymous namespace is "{anonymous}" to GCC, "(anonymous namespace)" to Clang).
template <class T>
constexpr const char* signature_of() noexcept {
    return MP_PRETTY_FUNCTION;
}
struct NameSpan {
    const char* data;
    std::size_t size;
};
constexpr NameSpan name_in_signature(const char* sig) noexcept {
    std::size_t n = 0;
    while (sig[n]) ++n;
    for (std::size_t i = 0; i + 4 <= n; ++i) {
        if (sig[i] == 'T' && sig[i + 1] == ' ' && sig[i + 2] == '=' && sig[i + 3] == ' ' && sig[n - 1] == ']')
            return {sig + i + 4, n - 1 - (i + 4)};
    }
    return {sig, n};  // another compiler: the whole signature, which still names T somewhere
}
template <class T>
std::string compiler_name() {
    constexpr NameSpan s = name_in_signature(signature_of<T>());
    return std::string(s.data, s.size);
}

template <class T, class... Seen>
constexpr std::uint32_t shape_hash(std::uint32_t h);

// Tuples (also the std::tie of MP_FIELDS) and variants: each member's shape in order.
template <class Tuple, class... Seen>
struct members_shape;
template <class... A, class... Seen>
struct members_shape<std::tuple<A...>, Seen...> {
    static constexpr std::uint32_t apply(std::uint32_t h) {
        ((h = shape_hash<bare_t<A>, Seen...>(h)), ...);
        return h;
    }
};
template <class... A, class... Seen>
struct members_shape<std::variant<A...>, Seen...> {
    static constexpr std::uint32_t apply(std::uint32_t h) {
        ((h = shape_hash<A, Seen...>(fnv(h, '|'))), ...);
        return h;
    }
};

// Where T is in Seen (the structs being described further up): a recursive struct refers back
// to itself by this number instead of describing itself forever.
template <class T, class... Seen>
constexpr std::size_t seen_index() {
    std::size_t i = 0, found = 0;
    ((std::is_same_v<T, Seen> ? (found = i, ++i) : ++i), ...);
    return found;
}

// Feeds T's shape into the hash h. The branches follow encodable()'s; the shape of each is
//   b bool   c one raw byte   i zigzag varint   u varint   f4 f8 float, double   0 monostate
//   [E] a count then E's (string, bytes, vector, deque, list, set; a map is [(KV)])
//   aN(E) array of N   (AB...) pair, tuple, MP_FIELDS struct   ?E optional
//   <|A|B...> variant   xNAME; a class with its own codec   ^K the K-th enclosing struct
template <class T, class... Seen>
constexpr std::uint32_t shape_hash(std::uint32_t h) {
    if constexpr (std::is_same_v<T, bool>) {
        return fnv(h, 'b');
    } else if constexpr (is_byte_v<T>) {
        return fnv(h, 'c');
    } else if constexpr (is_varint_v<T>) {
        return fnv(h, is_zigzag_v<T> ? 'i' : 'u');
    } else if constexpr (is_float_v<T>) {
        return fnv(h, sizeof(T) == 4 ? "f4" : "f8");
    } else if constexpr (std::is_same_v<T, std::string>) {
        return fnv(h, "[c]");
    } else if constexpr (std::is_same_v<T, std::monostate>) {
        return fnv(h, '0');
    } else if constexpr (std::is_enum_v<T>) {
        return shape_hash<std::underlying_type_t<T>>(h);
    } else if constexpr (is_std_array_v<T>) {
        h = fnv(fnv_number(fnv(h, 'a'), std::tuple_size_v<T>), '(');
        return fnv(shape_hash<typename T::value_type, Seen...>(h), ')');
    } else if constexpr (is_instance_v<T, std::optional>) {
        return shape_hash<typename T::value_type, Seen...>(fnv(h, '?'));
    } else if constexpr (is_sequence_v<T> || is_set_v<T>) {
        return fnv(shape_hash<typename T::value_type, Seen...>(fnv(h, '[')), ']');
    } else if constexpr (is_map_v<T>) {
        h = shape_hash<typename T::key_type, Seen...>(fnv(h, "[("));
        return fnv(shape_hash<typename T::mapped_type, Seen...>(h), ")]");
    } else if constexpr (is_instance_v<T, std::pair>) {
        h = shape_hash<bare_t<typename T::first_type>, Seen...>(fnv(h, '('));
        return fnv(shape_hash<bare_t<typename T::second_type>, Seen...>(h), ')');
    } else if constexpr (is_instance_v<T, std::tuple>) {
        return fnv(members_shape<T, Seen...>::apply(fnv(h, '(')), ')');
    } else if constexpr (is_instance_v<T, std::variant>) {
        return fnv(members_shape<T, Seen...>::apply(fnv(h, '<')), '>');
    } else if constexpr (has_custom_codec_v<T>) {
        constexpr NameSpan name = name_in_signature(signature_of<T>());
        h = fnv(h, 'x');
        for (std::size_t i = 0; i < name.size; ++i) h = fnv(h, name.data[i]);
        return fnv(h, ';');
    } else if constexpr (has_fields_v<T>) {
        if constexpr ((std::is_same_v<T, Seen> || ...)) {
            return fnv_number(fnv(h, '^'), seen_index<T, Seen...>());
        } else {
            return fnv(members_shape<fields_t<T>, Seen..., T>::apply(fnv(h, '(')), ')');
        }
    } else {
        return h;  // not encodable: check_encodable has already stopped the compile
    }
}

template <class T>
std::string name_of();
template <class... A>
std::string names_of() {
    std::string s;
    ((s += (s.empty() ? std::string() : std::string(", ")) + name_of<A>()), ...);
    return s;
}
template <class Tuple>
struct tuple_names;
template <class... A>
struct tuple_names<std::tuple<A...>> {  // also MP_FIELDS's std::tie: the members' own types
    static std::string get() { return names_of<bare_t<A>...>(); }
};
template <class... A>
struct tuple_names<std::variant<A...>> {
    static std::string get() { return names_of<A...>(); }
};

// T as a C++ reader would spell it: the standard types by their usual names (no allocators,
// comparators or hashers), enums and classes by the compiler's name.
template <class T>
std::string name_of() {
    if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_same_v<T, char>) return "char";
    else if constexpr (std::is_same_v<T, signed char>) return "signed char";
    else if constexpr (std::is_same_v<T, unsigned char>) return "unsigned char";
    else if constexpr (std::is_same_v<T, std::byte>) return "std::byte";
    else if constexpr (std::is_same_v<T, short>) return "short";
    else if constexpr (std::is_same_v<T, unsigned short>) return "unsigned short";
    else if constexpr (std::is_same_v<T, int>) return "int";
    else if constexpr (std::is_same_v<T, unsigned>) return "unsigned int";
    else if constexpr (std::is_same_v<T, long>) return "long";
    else if constexpr (std::is_same_v<T, unsigned long>) return "unsigned long";
    else if constexpr (std::is_same_v<T, long long>) return "long long";
    else if constexpr (std::is_same_v<T, unsigned long long>) return "unsigned long long";
    else if constexpr (std::is_same_v<T, wchar_t>) return "wchar_t";
    else if constexpr (std::is_same_v<T, char16_t>) return "char16_t";
    else if constexpr (std::is_same_v<T, char32_t>) return "char32_t";
    else if constexpr (std::is_same_v<T, float>) return "float";
    else if constexpr (std::is_same_v<T, double>) return "double";
    else if constexpr (std::is_same_v<T, std::string>) return "std::string";
    else if constexpr (std::is_same_v<T, std::monostate>) return "std::monostate";
    else if constexpr (is_std_array_v<T>)
        return "std::array<" + name_of<typename T::value_type>() + ", " + std::to_string(std::tuple_size_v<T>) + ">";
    else if constexpr (is_instance_v<T, std::vector>) return "std::vector<" + name_of<typename T::value_type>() + ">";
    else if constexpr (is_instance_v<T, std::deque>) return "std::deque<" + name_of<typename T::value_type>() + ">";
    else if constexpr (is_instance_v<T, std::list>) return "std::list<" + name_of<typename T::value_type>() + ">";
    else if constexpr (is_instance_v<T, std::set>) return "std::set<" + name_of<typename T::value_type>() + ">";
    else if constexpr (is_instance_v<T, std::unordered_set>)
        return "std::unordered_set<" + name_of<typename T::value_type>() + ">";
    else if constexpr (is_instance_v<T, std::map>)
        return "std::map<" + names_of<typename T::key_type, typename T::mapped_type>() + ">";
    else if constexpr (is_instance_v<T, std::unordered_map>)
        return "std::unordered_map<" + names_of<typename T::key_type, typename T::mapped_type>() + ">";
    else if constexpr (is_instance_v<T, std::optional>) return "std::optional<" + name_of<typename T::value_type>() + ">";
    else if constexpr (is_instance_v<T, std::pair>)
        return "std::pair<" + names_of<bare_t<typename T::first_type>, bare_t<typename T::second_type>>() + ">";
    else if constexpr (is_instance_v<T, std::tuple>) return "std::tuple<" + tuple_names<T>::get() + ">";
    else if constexpr (is_instance_v<T, std::variant>) return "std::variant<" + tuple_names<T>::get() + ">";
    else return compiler_name<T>();
}

// The registry of the types this program encodes as typed values (common/codec.cpp): every
// TypeTag<T> that write_typed uses adds T at static initialisation, so that a receiver can
// name what a peer of the same program sent. Thread-safe; never throws.
bool register_type_name(std::uint32_t fingerprint, std::string (*name)()) noexcept;
// Throws the TypeError of a fingerprint that is not the expected one, naming both types.
[[noreturn]] void throw_type_mismatch(std::uint32_t found, std::uint32_t expected, std::string (*expected_name)(),
                                      std::size_t at);

template <class T>
struct TypeTag {
    static constexpr std::uint32_t fingerprint = shape_hash<T>(fnv_offset);
    static const bool registered;
};
template <class T>
const bool TypeTag<T>::registered = register_type_name(TypeTag<T>::fingerprint, &name_of<T>);

}  // namespace codec_detail

// T's type fingerprint: what write_typed puts before a value of T. Equal for two types exactly
// when their shapes are (see the top of this file), and the same in every process, compiler
// and platform (but for classes with their own codec, which are named by the compiler).
template <class T>
constexpr std::uint32_t type_fingerprint() noexcept {
    codec_detail::check_encodable<std::remove_cv_t<T>>();
    return codec_detail::TypeTag<std::remove_cv_t<T>>::fingerprint;
}

// A readable name of T, as the TypeError of a wrong receive spells it ("int",
// "std::vector<std::string>", "Point").
template <class T>
std::string type_name() {
    return codec_detail::name_of<std::remove_cv_t<T>>();
}

// The names this program knows for a fingerprint: the types encoded anywhere in it with that
// shape, the shortest name first ("int (or long, short: the same shape)"), or "a type this
// program never encodes".
std::string type_name_of_fingerprint(std::uint32_t fingerprint);

// The OS handles (POSIX fds, Windows HANDLEs, as numbers) that travel beside a message's
// bytes. Bytes can be copied anywhere; a handle means something only inside one process, so it
// crosses by a separate road: a spawned child inherits exactly the handles in the list (POSIX
// places them at fixed fd numbers, Windows names them in PROC_THREAD_ATTRIBUTE_HANDLE_LIST),
// and the encoded bytes hold only their indices in it.
class HandleList {
public:
    // Adds h (once: a repeat gets its first index) and returns its index.
    std::size_t add(std::uintptr_t h) {
        for (std::size_t i = 0; i < values_.size(); ++i)
            if (values_[i] == h) return i;
        values_.push_back(h);
        return values_.size() - 1;
    }
    std::size_t size() const noexcept { return values_.size(); }
    const std::vector<std::uintptr_t>& values() const noexcept { return values_; }

    // The receiving side: the handles as they are numbered in this process, and a function that
    // duplicates one, used when one index is read twice (the same object sent twice) so that
    // every decoded object owns its own handle.
    HandleList() = default;
    HandleList(std::vector<std::uintptr_t> received, std::uintptr_t (*duplicate)(std::uintptr_t))
        : values_(std::move(received)), taken_(values_.size(), false), duplicate_(duplicate) {}

    // Hands out handle i for an object to own.
    std::uintptr_t take(std::size_t i) {
        if (i >= values_.size()) throw DecodeError("mp::Decoder: handle index " + std::to_string(i) + " out of range", 0);
        if (!taken_[i]) {
            taken_[i] = true;
            return values_[i];
        }
        if (!duplicate_) throw DecodeError("mp::Decoder: handle index " + std::to_string(i) + " used twice", 0);
        return duplicate_(values_[i]);
    }
    bool taken(std::size_t i) const noexcept { return i < taken_.size() && taken_[i]; }

private:
    std::vector<std::uintptr_t> values_;
    std::vector<bool> taken_;
    std::uintptr_t (*duplicate_)(std::uintptr_t) = nullptr;
};

class Encoder {
public:
    // Appends to out, which it must outlive. Objects that carry OS handles can be encoded only
    // with a HandleList to put them in (mp provides one when it starts a child).
    explicit Encoder(std::string& out, HandleList* handles = nullptr) : out_(out), handles_(handles) {}

    // Records an OS handle to send alongside the bytes; see HandleList.
    void write_handle(std::uintptr_t native) {
        if (!handles_)
            throw TypeError(
                "this object holds an operating-system handle (a pipe, a lock, shared memory), which "
                "can only cross to another process where mp passes handles: as an argument of a "
                "Process (spawn passes it, fork inherits it)");
        write_varint(handles_->add(native));
    }

    void write_raw(const void* data, std::size_t n) {
        if (n) out_.append(static_cast<const char*>(data), n);  // data may be null when n is 0
    }

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

    // A typed value: T's fingerprint (4 bytes, little-endian), then v. What every message of
    // mp carries (see the top of this file); Decoder::read_typed checks it.
    template <class T>
    void write_typed(const T& v) {
        using namespace codec_detail;
        check_encodable<T>();
        (void)TypeTag<T>::registered;  // instantiates the registration of T's name
        write_fingerprint(TypeTag<T>::fingerprint);
        write(v);
    }

    void write_fingerprint(std::uint32_t f) {
        const char buf[4] = {static_cast<char>(f & 0xff), static_cast<char>((f >> 8) & 0xff),
                             static_cast<char>((f >> 16) & 0xff), static_cast<char>((f >> 24) & 0xff)};
        out_.append(buf, sizeof buf);
    }

    template <class T>
    void write(const T& v) {
        using namespace codec_detail;
        check_encodable<T>();
        if constexpr (std::is_same_v<T, bool>) {
            put(v ? 1 : 0);
        } else if constexpr (is_byte_v<T>) {
            put(static_cast<unsigned char>(v));
        } else if constexpr (std::is_enum_v<T>) {
            write(static_cast<std::underlying_type_t<T>>(v));
        } else if constexpr (is_float_v<T>) {
            // Through an integer and shifts, so the bytes are little-endian on any host.
            float_bits_t<T> bits;
            std::memcpy(&bits, &v, sizeof bits);
            char buf[sizeof bits];
            for (std::size_t i = 0; i < sizeof bits; ++i) buf[i] = static_cast<char>((bits >> (8 * i)) & 0xff);
            out_.append(buf, sizeof buf);
        } else if constexpr (is_varint_v<T>) {
            if constexpr (is_zigzag_v<T>) {
                write_varint(zigzag(static_cast<std::int64_t>(v)));
            } else {
                write_varint(static_cast<std::uint64_t>(v));
            }
        } else if constexpr (std::is_same_v<T, std::string> || is_block_vector_v<T>) {
            write_varint(v.size());
            write_raw(v.data(), v.size());
        } else if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (is_std_array_v<T>) {
            if constexpr (is_block_element_v<typename T::value_type>) {
                write_raw(v.data(), v.size());
            } else {
                for (const auto& e : v) write(e);
            }
        } else if constexpr (is_sequence_v<T> || is_set_v<T>) {
            write_varint(v.size());
            for (const auto& e : v) write(e);  // vector<bool> yields bool here, which is fine
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
            std::apply([this](const auto&... e) { (this->write(e), ...); }, v);
        } else if constexpr (is_instance_v<T, std::optional>) {
            put(v ? 1 : 0);
            if (v) write(*v);
        } else if constexpr (is_instance_v<T, std::variant>) {
            if (v.valueless_by_exception()) throw ValueError("mp::Encoder: cannot encode a valueless variant");
            write_varint(v.index());
            std::visit([this](const auto& alt) { this->write(alt); }, v);
        } else if constexpr (has_custom_codec_v<T>) {
            v.mp_encode(*this);
        } else if constexpr (has_fields_v<T>) {
            write(v.mp_fields());
        }
    }

private:
    void put(unsigned char b) { out_.push_back(static_cast<char>(b)); }

    std::string& out_;
    HandleList* handles_;
};

class Decoder {
public:
    // Reads from [data, data + size), which must outlive the decoder. Composite values may nest
    // max_depth deep.
    Decoder(const void* data, std::size_t size, std::size_t max_depth = 64)
        : begin_(static_cast<const char*>(data)), pos_(begin_), end_(begin_ + size), max_depth_(max_depth) {}
    explicit Decoder(std::string_view in, std::size_t max_depth = 64) : Decoder(in.data(), in.size(), max_depth) {}
    // A decoder for bytes that arrived with handles (see HandleList).
    Decoder(std::string_view in, HandleList* handles, std::size_t max_depth = 64)
        : Decoder(in.data(), in.size(), max_depth) {
        handles_ = handles;
    }

    // The handle written by Encoder::write_handle, now owned by the caller.
    std::uintptr_t read_handle() {
        const std::size_t start = offset();
        const std::uint64_t index = read_varint();
        if (!handles_) fail_at("a handle arrived where no handles can travel", start);
        if (index >= handles_->size()) fail_at("handle index " + std::to_string(index) + " out of range", start);
        return handles_->take(static_cast<std::size_t>(index));
    }

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
        for (unsigned shift = 0;; shift += 7) {
            if (pos_ == end_) fail("input ends inside a varint");
            const auto b = static_cast<unsigned char>(*pos_++);
            if (shift == 63) {  // the 10th byte has room for one bit and no continuation
                if (b & 0x80) fail_at("varint longer than 10 bytes", start);
                if (b > 1) fail_at("varint overflows 64 bits", start);
            }
            v |= std::uint64_t{b & 0x7fu} << shift;
            if (!(b & 0x80)) return v;
        }
    }

    template <class T>
    T read() {
        T v{};
        read(v);
        return v;
    }

    // A typed value, as Encoder::write_typed writes it: a fingerprint other than T's is
    // TypeError naming both types (the input is then left just after the fingerprint).
    template <class T>
    void read_typed(T& v) {
        using namespace codec_detail;
        check_encodable<T>();
        const std::size_t start = offset();
        const std::uint32_t found = read_fingerprint();
        if (MP_UNLIKELY(found != TypeTag<T>::fingerprint))
            throw_type_mismatch(found, TypeTag<T>::fingerprint, &name_of<T>, start);
        read(v);
    }
    template <class T>
    T read_typed() {
        T v{};
        read_typed(v);
        return v;
    }

    std::uint32_t read_fingerprint() {
        if (remaining() < 4)
            fail("input ends inside the 4-byte type fingerprint (raw bytes received as a typed value?)");
        const auto* p = reinterpret_cast<const unsigned char*>(read_raw(4));
        return std::uint32_t{p[0]} | std::uint32_t{p[1]} << 8 | std::uint32_t{p[2]} << 16 | std::uint32_t{p[3]} << 24;
    }

    // Decodes into v, overwriting it. On a DecodeError v is left valid but unspecified.
    template <class T>
    void read(T& v) {
        using namespace codec_detail;
        check_encodable<T>();
        [[maybe_unused]] const std::size_t start = offset();
        if constexpr (std::is_same_v<T, bool>) {
            v = read_flag("bool");
        } else if constexpr (is_byte_v<T>) {
            v = static_cast<T>(static_cast<unsigned char>(*read_raw(1)));
        } else if constexpr (std::is_enum_v<T>) {
            std::underlying_type_t<T> u{};
            read(u);
            v = static_cast<T>(u);  // every underlying value is valid: the enum's type is fixed
        } else if constexpr (is_float_v<T>) {
            const char* p = read_raw(sizeof(T));
            float_bits_t<T> bits = 0;
            for (std::size_t i = 0; i < sizeof bits; ++i)
                bits |= static_cast<float_bits_t<T>>(static_cast<unsigned char>(p[i])) << (8 * i);
            std::memcpy(&v, &bits, sizeof v);
        } else if constexpr (is_varint_v<T>) {
            const std::uint64_t u = read_varint();
            if constexpr (is_zigzag_v<T>) {
                const std::int64_t x = unzigzag(u);
                if (!fits<T>(x)) fail_at("integer " + std::to_string(x) + " does not fit the target type", start);
                v = static_cast<T>(x);
            } else {
                if (u > std::uint64_t{std::numeric_limits<T>::max()})
                    fail_at("integer " + std::to_string(u) + " does not fit the target type", start);
                v = static_cast<T>(u);
            }
        } else if constexpr (std::is_same_v<T, std::string>) {
            const std::size_t n = read_count(1);
            v.assign(read_raw(n), n);
        } else if constexpr (is_block_vector_v<T>) {
            read_block(v, read_count(1));
        } else if constexpr (std::is_same_v<T, std::monostate>) {
        } else if constexpr (is_std_array_v<T>) {
            Nest nest(*this);
            if constexpr (is_block_element_v<typename T::value_type>) {
                if (v.size()) std::memcpy(v.data(), read_raw(v.size()), v.size());
            } else {
                for (auto& e : v) read(e);
            }
        } else if constexpr (is_sequence_v<T>) {
            using E = typename T::value_type;
            Nest nest(*this);
            const std::size_t n = read_count(min_size<E>());
            v.clear();
            if constexpr (is_instance_v<T, std::vector>) {
                // n is backed by input bytes, but an element can take more memory than input
                // (an int64 from 1 byte). Reserving no more memory than there is input left
                // keeps a truncated hostile message from costing more than its size; past
                // that the vector grows as elements actually arrive.
                const std::size_t backed = remaining() / sizeof(E);
                v.reserve(n < backed ? n : backed);
            }
            for (std::size_t i = 0; i < n; ++i) {
                if constexpr (std::is_same_v<E, bool>) {  // vector<bool> has no element references
                    v.push_back(read_flag("bool"));
                } else {
                    read(v.emplace_back());
                }
            }
        } else if constexpr (is_set_v<T>) {
            using E = typename T::value_type;
            Nest nest(*this);
            const std::size_t n = read_count(min_size<E>());
            v.clear();
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t at = offset();
                E e{};
                read(e);
                check_key(e, at);
                insert_unique(v, at, "repeated set element", std::move(e));
            }
        } else if constexpr (is_map_v<T>) {
            using K = typename T::key_type;
            using M = typename T::mapped_type;
            Nest nest(*this);
            const std::size_t n = read_count(min_size<K>() + min_size<M>());
            v.clear();
            for (std::size_t i = 0; i < n; ++i) {
                const std::size_t at = offset();
                K k{};
                read(k);
                check_key(k, at);
                M m{};
                read(m);
                insert_unique(v, at, "repeated map key", std::move(k), std::move(m));
            }
        } else if constexpr (is_instance_v<T, std::pair>) {
            Nest nest(*this);
            read(v.first);
            read(v.second);
        } else if constexpr (is_instance_v<T, std::tuple>) {
            Nest nest(*this);
            std::apply([this](auto&... e) { (this->read(e), ...); }, v);
        } else if constexpr (is_instance_v<T, std::optional>) {
            Nest nest(*this);
            if (read_flag("optional flag")) {
                read(v.emplace());
            } else {
                v.reset();
            }
        } else if constexpr (is_instance_v<T, std::variant>) {
            Nest nest(*this);
            const std::uint64_t index = read_varint();
            if (index >= std::variant_size_v<T>)
                fail_at("variant index " + std::to_string(index) + " is out of range (the variant has " +
                            std::to_string(std::variant_size_v<T>) + " alternatives)",
                        start);
            read_alternative<0>(v, static_cast<std::size_t>(index));
        } else if constexpr (has_custom_codec_v<T>) {
            Nest nest(*this);
            v.mp_decode(*this);
        } else if constexpr (has_fields_v<T>) {
            Nest nest(*this);
            auto fields = v.mp_fields();
            std::apply([this](auto&... e) { (this->read(e), ...); }, fields);
        }
    }

private:
    // Counts the nesting of composite values, so that too deep is an error, not a stack overflow.
    class Nest {
    public:
        explicit Nest(Decoder& d) : d_(d) {
            if (d_.depth_ >= d_.max_depth_) d_.fail("nesting deeper than " + std::to_string(d_.max_depth_));
            ++d_.depth_;
        }
        ~Nest() { --d_.depth_; }
        Nest(const Nest&) = delete;
        Nest& operator=(const Nest&) = delete;

    private:
        Decoder& d_;
    };

    bool read_flag(const char* what) {
        const auto b = static_cast<unsigned char>(*read_raw(1));
        if (b > 1) fail_at(std::string(what) + " byte is " + std::to_string(b) + ", not 0 or 1", offset() - 1);
        return b == 1;
    }

    // A count of elements that each need at least `each` bytes must fit in what is left.
    // (each is never 0: containers of zero-byte elements do not compile.)
    std::size_t read_count(std::size_t each) {
        const std::size_t start = offset();
        const std::uint64_t n = read_varint();
        if (n > remaining() / each)
            fail_at("count " + std::to_string(n) + " needs more bytes than the " + std::to_string(remaining()) +
                        " left",
                    start);
        return static_cast<std::size_t>(n);
    }

    // One copy from the input. char, unsigned char and std::byte may view any object's bytes,
    // so the input can be handed to assign() as a range of them; other 1-byte types go through
    // memcpy instead.
    template <class V>
    void read_block(V& v, std::size_t n) {
        using E = typename V::value_type;
        const char* p = read_raw(n);
        if constexpr (std::is_same_v<E, char> || std::is_same_v<E, unsigned char> || std::is_same_v<E, std::byte>) {
            const E* first = reinterpret_cast<const E*>(p);
            v.assign(first, first + n);
        } else {
            v.resize(n);
            if (n) std::memcpy(v.data(), p, n);
        }
    }

    // A NaN key breaks the ordering (or equality) that std::set and std::map rely on, and
    // cannot have come from a well-formed container anyway.
    template <class K>
    void check_key([[maybe_unused]] const K& k, [[maybe_unused]] std::size_t at) const {
        if constexpr (codec_detail::is_float_v<K>) {
            if (k != k) fail_at("NaN as a map key or set element", at);
        }
    }

    // Inserting at the end makes a std::map or std::set built from sorted input (which is what
    // encoding one produces) linear rather than n log n.
    template <class C, class... A>
    void insert_unique(C& c, std::size_t at, const char* what, A&&... a) {
        const std::size_t before = c.size();
        c.emplace_hint(c.end(), std::forward<A>(a)...);
        if (c.size() == before) fail_at(what, at);
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

    [[noreturn]] void fail(const std::string& what) const { fail_at(what, offset()); }
    [[noreturn]] void fail_at(const std::string& what, std::size_t at) const {
        throw DecodeError("mp::Decoder: " + what, at);
    }

    const char* begin_;
    const char* pos_;
    const char* end_;
    std::size_t max_depth_;
    std::size_t depth_ = 0;
    HandleList* handles_ = nullptr;
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

// Decodes the whole of `in` into out; bytes left after the value are an error.
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

// The same for one typed message: the fingerprint, then the value (Encoder::write_typed). Every
// message mp sends for a caller goes through these (Connection::send/recv, Queue::put/get,
// process arguments, pool and executor calls and results, managers, MPI).
template <class T>
void encode_message_to(std::string& out, const T& value) {
    Encoder(out).write_typed(value);
}

template <class T>
std::string encode_message(const T& value) {
    std::string out;
    encode_message_to(out, value);
    return out;
}

// TypeError if the message holds another type; DecodeError if it is not a valid encoding.
template <class T>
void decode_message_into(std::string_view in, T& out) {
    Decoder d(in);
    d.read_typed(out);
    d.expect_end();
}

template <class T>
T decode_message(std::string_view in) {
    T v{};
    decode_message_into(in, v);
    return v;
}

}  // namespace mp
