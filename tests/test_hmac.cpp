// tests/test_hmac.cpp - the SHA-256 and HMAC-SHA256 used by the Listener/Client handshake,
// against FIPS 180-4's examples and every RFC 4231 test case.
#include <string>

#include "hmac_sha256.hpp"
#include "test_util.hpp"

namespace {

std::string hex(const mp::detail::Sha256::Digest& d) { return mp::detail::to_hex(d.data(), d.size()); }

std::string hmac_hex(const std::string& key, const std::string& msg) {
    return hex(mp::detail::hmac_sha256(key.data(), key.size(), msg.data(), msg.size()));
}

}  // namespace

TEST(Hmac, Sha256Fips180Examples) {
    EXPECT_EQ(hex(mp::detail::sha256("abc", 3)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 448 bits
    EXPECT_EQ(hex(mp::detail::sha256(two_blocks.data(), two_blocks.size())),
              "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    EXPECT_EQ(hex(mp::detail::sha256("", 0)), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    // A million 'a', fed in uneven pieces so that the block buffering is exercised too.
    mp::detail::Sha256 s;
    const std::string piece(997, 'a');
    std::size_t left = 1000000;
    while (left) {
        const std::size_t n = left < piece.size() ? left : piece.size();
        s.update(piece.data(), n);
        left -= n;
    }
    EXPECT_EQ(hex(s.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Hmac, Rfc4231AllCases) {
    EXPECT_EQ(hmac_hex(std::string(20, '\x0b'), "Hi There"),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    EXPECT_EQ(hmac_hex("Jefe", "what do ya want for nothing?"),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    EXPECT_EQ(hmac_hex(std::string(20, '\xaa'), std::string(50, '\xdd')),
              "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    std::string key4;
    for (int i = 1; i <= 25; ++i) key4 += static_cast<char>(i);
    EXPECT_EQ(hmac_hex(key4, std::string(50, '\xcd')),
              "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    // Case 5 is specified truncated to 128 bits.
    EXPECT_EQ(hmac_hex(std::string(20, '\x0c'), "Test With Truncation").substr(0, 32), "a3b6167473100ee06e0c796c2955552b");
    // Cases 6 and 7: a key longer than a block is hashed first.
    EXPECT_EQ(hmac_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First"),
              "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    EXPECT_EQ(hmac_hex(std::string(131, '\xaa'),
                       "This is a test using a larger than block-size key and a larger than block-size data. The key "
                       "needs to be hashed before being used by the HMAC algorithm."),
              "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(Hmac, ConstantTimeEqual) {
    const unsigned char a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4}, c[4] = {1, 2, 3, 5}, d[4] = {0, 2, 3, 4};
    EXPECT_TRUE(mp::detail::constant_time_equal(a, b, 4));
    EXPECT_FALSE(mp::detail::constant_time_equal(a, c, 4));
    EXPECT_FALSE(mp::detail::constant_time_equal(a, d, 4));
    EXPECT_TRUE(mp::detail::constant_time_equal(a, d, 0));
}
