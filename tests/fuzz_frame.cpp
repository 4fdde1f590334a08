// tests/fuzz_frame.cpp - libFuzzer target for Connection's framing: what a broken or hostile
// peer can put on the wire. The input goes, as raw bytes, into one end of a socketpair made
// through the internal contract (so no well-behaved sender shapes it), and that end is closed;
// the other end, a Connection, then receives until the stream ends. Every receive must either
// give a message or throw mp::EOFError, mp::DecodeError, mp::TypeError (a type fingerprint that
// is not std::string's: the frame is consumed) or mp::OSError (EMSGSIZE) - never crash,
// hang, trip a sanitizer or allocate by what a header announces: run with -malloc_limit_mb, a
// header claiming 2^40 bytes followed by a few must cost about what arrived (1 MiB at most).
// The first input byte picks the receive: recv_bytes, recv_bytes(maxlength), recv_bytes_into,
// recv<std::string>, or a max_message_size set first.
// Built by .ci/test against the clang++ ASan build of the library:
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Icommon/include -Icommon
//       tests/fuzz_frame.cpp build-asan/libmp.so.0.1.0 -Wl,-rpath,$PWD/build-asan -o fuzz_frame
//   ./fuzz_frame -max_total_time=30 -malloc_limit_mb=16 -max_len=4096
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "mp/codec.hpp"
#include "mp/connection.hpp"
#include "mp/errors.hpp"
#include "sys/connection.hpp"

namespace {

mp::Connection adopt(mp::sys::PipeEnd& end) {
    std::string payload;
    payload.push_back('\0');  // handle index 0
    payload.push_back('\3');  // readable | writable
    mp::HandleList handles({mp::sys::handle_to_value(end.h.release())}, nullptr);
    mp::Decoder d(payload, &handles);
    mp::Connection c;
    c.mp_decode(d);
    return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned mode = data[0] % 5;
    ++data;
    --size;
    mp::sys::PipeEnd writer, reader;
    if (mp::sys::make_connection_pair(true, writer, reader)) std::abort();
    // Up to 4 KiB fits the socket's buffer: the write cannot block with no reader yet.
    if (size > 0 && mp::sys::pipe_write(writer, data, size, nullptr, 0)) std::abort();
    writer.h.reset();
    mp::Connection c = adopt(reader);
    if (mode == 4) c.set_max_message_size(100);
    std::vector<std::byte> into(64);
    for (int round = 0; round < 10000; ++round) {
        try {
            switch (mode) {
            case 0:
            case 4: (void)c.recv_bytes(); break;
            case 1: (void)c.recv_bytes(200); break;
            case 2: {
                try {
                    (void)c.recv_bytes_into(into.data(), into.size());
                } catch (const mp::BufferTooShort&) {
                }
                break;
            }
            default: (void)c.recv<std::string>(); break;
            }
        } catch (const mp::EOFError&) {
            return 0;  // the whole stream was read
        } catch (const mp::DecodeError&) {
            if (c.closed()) return 0;  // cut inside a frame: closed, as documented
        } catch (const mp::TypeError&) {
            if (c.closed()) std::abort();  // another type's fingerprint: the frame is consumed, still open
        } catch (const mp::OSError& e) {
            if (e.code() != std::errc::message_size || !c.closed()) std::abort();
            return 0;  // a length over the limit: refused and closed
        }
    }
    std::abort();  // 4 KiB of input cannot hold 10000 frames: the loop did not advance
}
