// mp/portability.hpp - the one place where mp meets compiler-specific spellings.
//
// Every other header of mp, public or internal, and every source file compiled on Windows, is
// standard C++17; what a compiler can do better than the standard says (branch hints, cold
// paths, a thread-local without a wrapper call) is spelled here once, with a branch for GCC
// and Clang, one for MSVC, and a plain fallback. Nothing here changes behaviour: only speed
// (and, with MP_PRINTF_LIKE, what the compiler checks).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
// GCC, Clang, and Clang-cl's GNU mode: mingw-w64 too.
#define MP_LIKELY(x) __builtin_expect(!!(x), 1)
#define MP_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MP_NOINLINE __attribute__((noinline))
#define MP_COLD __attribute__((cold, noinline))
#elif defined(_MSC_VER)
#define MP_LIKELY(x) (x)
#define MP_UNLIKELY(x) (x)
#define MP_NOINLINE __declspec(noinline)
#define MP_COLD __declspec(noinline)
#else
#define MP_LIKELY(x) (x)
#define MP_UNLIKELY(x) (x)
#define MP_NOINLINE
#define MP_COLD
#endif

// MP_FAST_TLS: a thread-local integer read on every lock, with no call behind the read.
// `extern thread_local` makes GCC and Clang call a wrapper on each use (the variable might
// have a dynamic initialiser in another file); `__thread` promises it has none. In an ELF
// shared library the default model also calls __tls_get_addr; initial-exec makes the read
// one %fs-relative load (libmp is linked into the program or loaded with it, never dlopen'ed
// late enough to run out of static TLS). MSVC's thread_local has neither cost.
#if (defined(__GNUC__) || defined(__clang__)) && defined(__ELF__)
#define MP_FAST_TLS __thread __attribute__((tls_model("initial-exec")))
#elif defined(__GNUC__) || defined(__clang__)
#define MP_FAST_TLS __thread
#else
#define MP_FAST_TLS thread_local
#endif

// MP_INTERNAL: a function of libmp that nothing outside it calls; on ELF it is then called
// directly, not through the PLT (the platform layer's lock functions are on every lock's
// path).
#if (defined(__GNUC__) || defined(__clang__)) && defined(__ELF__)
#define MP_INTERNAL __attribute__((visibility("hidden")))
#else
#define MP_INTERNAL
#endif

// MP_PRINTF_LIKE(f, a): argument f of the function is a printf format for the arguments from a
// on, checked like printf's (mp's internal log call). mingw-w64's C++ headers select its
// C99-conforming printf family (__USE_MINGW_ANSI_STDIO), which is GNU's format, not MSVCRT's.
// clang for mingw-w64 has no gnu_printf archetype: there the check is left to the other builds.
#if defined(__MINGW32__) && defined(__clang__)
#define MP_PRINTF_LIKE(f, a)
#elif defined(__MINGW32__) && defined(__GNUC__)
#define MP_PRINTF_LIKE(f, a) __attribute__((format(gnu_printf, f, a)))
#elif defined(__GNUC__) || defined(__clang__)
#define MP_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define MP_PRINTF_LIKE(f, a)
#endif

// MP_PRETTY_FUNCTION: the enclosing function's signature as a string literal that constant
// expressions may read, with its template arguments spelled out; mp/codec.hpp takes a type's
// readable name from it (GCC and Clang: "... [with T = Point]" / "... [T = Point]"; MSVC:
// "...<struct Point>(void)"). Elsewhere it is the bare function name, and names are poorer.
#if defined(__GNUC__) || defined(__clang__)
#define MP_PRETTY_FUNCTION __PRETTY_FUNCTION__
#elif defined(_MSC_VER)
#define MP_PRETTY_FUNCTION __FUNCSIG__
#else
#define MP_PRETTY_FUNCTION __func__
#endif

// MP_UNIQUE_LINE_ID: a number that differs between two uses in one file, for the names of the
// registrar objects MP_TARGET defines. __COUNTER__ is not in C++17, but GCC, Clang and MSVC
// all have it; elsewhere the line number does (two registrations on one line then clash, at
// compile time).
#if defined(__COUNTER__)
#define MP_UNIQUE_LINE_ID __COUNTER__
#else
#define MP_UNIQUE_LINE_ID __LINE__
#endif
