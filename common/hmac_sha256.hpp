// common/hmac_sha256.hpp - SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), internal.
//
// The Listener/Client handshake (common/listener.cpp) needs a keyed digest and nothing more, so
// mp carries its own small implementation instead of a crypto dependency. Verified in
// tests/test_hmac.cpp against the FIPS 180-4 examples and every RFC 4231 test case.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mp::detail {

class Sha256 {
public:
    static constexpr std::size_t kDigest = 32;
    static constexpr std::size_t kBlock = 64;
    using Digest = std::array<unsigned char, kDigest>;

    Sha256() noexcept { reset(); }
    void reset() noexcept;
    void update(const void* data, std::size_t n) noexcept;
    void update(std::string_view s) noexcept { update(s.data(), s.size()); }
    Digest finish() noexcept;  // the object must be reset() before reuse

private:
    void block(const unsigned char* p) noexcept;
    std::uint32_t h_[8];
    unsigned char buf_[kBlock];
    std::size_t used_ = 0;
    std::uint64_t total_ = 0;  // bytes
};

Sha256::Digest sha256(const void* data, std::size_t n) noexcept;
Sha256::Digest hmac_sha256(const void* key, std::size_t key_n, const void* msg, std::size_t msg_n) noexcept;

// Compares in time that depends only on n, never on where the first difference is, so that a
// peer guessing a digest learns nothing from how long a rejection takes.
bool constant_time_equal(const void* a, const void* b, std::size_t n) noexcept;

// Lower-case hex of n bytes: digests in tests, and the random names and keys mp makes from
// random bytes (listener socket names, the forkserver's directory, a manager's authkey).
inline std::string to_hex(const void* data, std::size_t n) {
    static const char digits[] = "0123456789abcdef";
    const auto* p = static_cast<const unsigned char*>(data);
    std::string s;
    s.reserve(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

}  // namespace mp::detail
