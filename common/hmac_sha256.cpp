// common/hmac_sha256.cpp - SHA-256 and HMAC-SHA256, written from FIPS 180-4 and RFC 2104.
#include "hmac_sha256.hpp"

#include <cstring>

namespace mp::detail {

namespace {

constexpr std::uint32_t kK[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

constexpr std::uint32_t rotr(std::uint32_t x, int n) noexcept { return (x >> n) | (x << (32 - n)); }

}  // namespace

void Sha256::reset() noexcept {
    static constexpr std::uint32_t init[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    std::memcpy(h_, init, sizeof h_);
    used_ = 0;
    total_ = 0;
}

void Sha256::block(const unsigned char* p) noexcept {
    std::uint32_t w[64];
    for (int i = 0; i < 16; ++i)
        w[i] = std::uint32_t{p[4 * i]} << 24 | std::uint32_t{p[4 * i + 1]} << 16 | std::uint32_t{p[4 * i + 2]} << 8 |
               std::uint32_t{p[4 * i + 3]};
    for (int i = 16; i < 64; ++i) {
        const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    std::uint32_t a = h_[0], b = h_[1], c = h_[2], d = h_[3], e = h_[4], f = h_[5], g = h_[6], h = h_[7];
    for (int i = 0; i < 64; ++i) {
        const std::uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
        const std::uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h_[0] += a;
    h_[1] += b;
    h_[2] += c;
    h_[3] += d;
    h_[4] += e;
    h_[5] += f;
    h_[6] += g;
    h_[7] += h;
}

void Sha256::update(const void* data, std::size_t n) noexcept {
    const auto* p = static_cast<const unsigned char*>(data);
    total_ += n;
    if (used_) {
        const std::size_t take = n < kBlock - used_ ? n : kBlock - used_;
        std::memcpy(buf_ + used_, p, take);
        used_ += take;
        p += take;
        n -= take;
        if (used_ < kBlock) return;
        block(buf_);
        used_ = 0;
    }
    for (; n >= kBlock; p += kBlock, n -= kBlock) block(p);
    if (n) std::memcpy(buf_, p, n);
    used_ = n;
}

Sha256::Digest Sha256::finish() noexcept {
    const std::uint64_t bits = total_ * 8;
    buf_[used_++] = 0x80;
    if (used_ > kBlock - 8) {
        std::memset(buf_ + used_, 0, kBlock - used_);
        block(buf_);
        used_ = 0;
    }
    std::memset(buf_ + used_, 0, kBlock - 8 - used_);
    for (int i = 0; i < 8; ++i) buf_[kBlock - 1 - i] = static_cast<unsigned char>(bits >> (8 * i));
    block(buf_);
    Digest out;
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<unsigned char>(h_[i] >> (24 - 8 * j));
    return out;
}

Sha256::Digest sha256(const void* data, std::size_t n) noexcept {
    Sha256 s;
    s.update(data, n);
    return s.finish();
}

Sha256::Digest hmac_sha256(const void* key, std::size_t key_n, const void* msg, std::size_t msg_n) noexcept {
    unsigned char k[Sha256::kBlock] = {};
    if (key_n > Sha256::kBlock) {  // RFC 2104: a key longer than a block is hashed first
        const auto d = sha256(key, key_n);
        std::memcpy(k, d.data(), d.size());
    } else if (key_n) {
        std::memcpy(k, key, key_n);
    }
    unsigned char pad[Sha256::kBlock];
    for (std::size_t i = 0; i < sizeof pad; ++i) pad[i] = static_cast<unsigned char>(k[i] ^ 0x36);
    Sha256 inner;
    inner.update(pad, sizeof pad);
    inner.update(msg, msg_n);
    const auto ih = inner.finish();
    for (std::size_t i = 0; i < sizeof pad; ++i) pad[i] = static_cast<unsigned char>(k[i] ^ 0x5c);
    Sha256 outer;
    outer.update(pad, sizeof pad);
    outer.update(ih.data(), ih.size());
    return outer.finish();
}

bool constant_time_equal(const void* a, const void* b, std::size_t n) noexcept {
    const auto* x = static_cast<const volatile unsigned char*>(a);
    const auto* y = static_cast<const volatile unsigned char*>(b);
    unsigned char diff = 0;
    for (std::size_t i = 0; i < n; ++i) diff = static_cast<unsigned char>(diff | (x[i] ^ y[i]));
    return diff == 0;
}

}  // namespace mp::detail
