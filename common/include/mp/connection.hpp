// mp/connection.hpp - mp::Pipe and mp::Connection (Python's multiprocessing.Pipe and
// multiprocessing.connection.Connection).
//
//     auto [a, b] = mp::Pipe();          // duplex: both ends send and receive
//     a.send(std::vector<int>{1, 2});    // any type the codec knows (mp/codec.hpp)
//     auto v = b.recv<std::vector<int>>();
//     b.send_bytes("raw", 3);  a.recv_bytes();
//     auto [r, w] = mp::Pipe(false);     // one-way: r receives only, w sends only
//
// On POSIX a duplex pair is a socketpair(AF_UNIX, SOCK_STREAM), a one-way pair a pipe(2); on
// Windows both are a uniquely named pipe opened from both sides (see posix/connection.cpp and
// win32/connection.cpp). Every handle is close-on-exec / non-inheritable.
//
// Wire format (the same on every platform): each message is a header then the payload.
//   header  4 bytes, the payload length as an unsigned 32-bit little-endian number, when the
//           length is below 0x7fffffff; otherwise the 4 bytes ff ff ff ff followed by the
//           length as an unsigned 64-bit little-endian number (12 bytes in all).
//   payload the bytes given to send_bytes, or for send(obj) the codec's typed message: obj's
//           4-byte type fingerprint, then its encoding (mp/codec.hpp).
// Message boundaries are kept; an empty message is a header of 0 and no payload.
//
// Errors:
//   recv* when the peer has closed and nothing is left to read    EOFError (the connection
//                                                                  stays open; it says so again)
//   recv* when the peer closed in the middle of a frame            DecodeError; the connection
//                                                                  is then closed (unusable)
//   recv<T> when the payload holds another type (its type         TypeError naming both types;
//     fingerprint is not T's: the peer sent another type, or raw    the frame was consumed and
//     bytes of 4 or more)                                          the connection stays usable
//   recv<T> when the payload is not a valid encoding of T          DecodeError; the frame was
//     (too short for a fingerprint, truncated, a value out of     consumed and the connection
//     T's range)                                                   stays usable
//   recv_bytes(maxlength) when the announced length > maxlength    OSError "bad message length"
//                                                                  (EMSGSIZE); the connection is
//                                                                  then closed, as in Python
//   recv* when the announced length > max_message_size()          OSError "bad message length"
//                                                                  (EMSGSIZE); then closed
//   recv_bytes_into(buf, size) when the message is longer          BufferTooShort carrying the
//                                                                  whole message; still usable
//   send* when the peer has closed                                 BrokenPipeError (never SIGPIPE)
//   anything after close()                                         OSError EBADF "handle is closed"
//   send on a read-only end / recv on a write-only end             OSError EBADF "connection is
//                                                                  read-only" / "write-only"
// EINTR never surfaces: every call retries it (and a wait restarts with the time left).
//
// The std::error_code forms (mp/errors.hpp) send(obj, ec), send_bytes(..., ec), recv<T>(ec)
// and recv_bytes(ec) throw nothing for what a peer that goes away causes; the connection is
// left as the throwing form leaves it, and ec is cleared on success:
//   end of file (EOFError)                      ec == mp::errc::end_of_file, recv -> nullopt
//   the peer closed inside a frame (DecodeError) ec == mp::errc::truncated_message (closed)
//   a broken or reset connection, EMSGSIZE,     ec = that OSError's code(), e.g.
//     a closed or one-way end (OSError ...)       ec == std::errc::broken_pipe (closed peer)
//   a send whose timeout ran out (TimeoutError) ec == std::errc::timed_out; closed() says
//                                               whether part of it went out
// Still thrown: TypeError and DecodeError for a payload that arrived whole but is not a T,
// DecodeError for an announced length no process can hold, ValueError for a bad timeout.
//     std::error_code ec;
//     while (auto job = c.recv<Job>(ec)) run(*job);
//     if (ec != mp::errc::end_of_file) log("worker lost: " + ec.message());
//
// Timeouts: poll(timeout) waits until a message (or end of file) is there; a receive with a
// timeout is `if (c.poll(t)) v = c.recv<T>();`. poll only sees that bytes have arrived: if the
// peer wrote half a frame and stalls, the recv that follows waits for the rest. A send blocks
// while the OS buffer is full; send(obj, timeout) / send_bytes(data, size, timeout) bound
// that wait with TimeoutError. If the time ran out before any byte of the message went out,
// the connection stays usable; if part of it went out, the connection is closed, because the
// peer would otherwise read the rest of the stream out of frame (it sees the cut message as
// a DecodeError once every copy of this end is closed).
//
// Copies share: a Connection is a handle to shared state (shared_ptr), as a Python object
// reference is. close() on one copy closes it for all; the OS handle closes when the last copy
// goes. Passing to a child: under fork the child gets its own copy of the object and of the
// fd; under spawn (and forkserver) the Connection encodes its handle through the codec's
// HandleList (mp_encode/mp_decode) and the child's copy owns a handle of its own.
// Read-ahead: a receive reads a header with one call of up to 4 KiB, so a small message comes
// with its header in one system call; bytes beyond that message stay in the Connection for the
// next receive (poll() sees them). So: passing a Connection to a spawned child while it holds
// such bytes is a ValueError (receive them first); under fork the child's copy would hold them
// too, so do not receive from one end in both parent and child. Do not use one
// Connection from two threads at once for the same direction (a message is several calls).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "codec.hpp"
#include "duration.hpp"
#include "errors.hpp"

namespace mp {

// recv_bytes_into's buffer was too small (Python multiprocessing.BufferTooShort). The whole
// message was read and is here; the connection stays usable.
class BufferTooShort : public ProcessError {
public:
    explicit BufferTooShort(bytes message)
        : ProcessError("mp::Connection: buffer too short for a message of " + std::to_string(message.size()) + " bytes"),
          message_(std::move(message)) {}
    const bytes& message() const noexcept { return message_; }

private:
    bytes message_;
};

class Connection {
public:
    Connection() = default;  // no handle: closed() is true

    // Sends one message: data[0..size).
    void send_bytes(const void* data, std::size_t size);
    // Python's send_bytes(buf, offset, size): buf[offset .. offset+size), size defaulting to
    // the rest; a range outside buf is ValueError.
    void send_bytes(const bytes& buf, std::size_t offset = 0, std::size_t size = npos);
    void send_bytes(std::string_view s) { send_bytes(s.data(), s.size()); }

    // Receives one message. maxlength: a longer message is OSError (see above).
    bytes recv_bytes();
    bytes recv_bytes(std::size_t maxlength);
    // The std::error_code forms (see the top of this file): std::nullopt and ec set where the
    // forms above throw.
    std::optional<bytes> recv_bytes(std::error_code& ec);
    std::optional<bytes> recv_bytes(std::size_t maxlength, std::error_code& ec);
    // Receives one message into buf[0..size) and returns its length; BufferTooShort if longer.
    // This is the form that reuses a buffer and allocates nothing.
    std::size_t recv_bytes_into(void* buf, std::size_t size);
    // Python's recv_bytes_into(buffer, offset): into buf starting at offset.
    std::size_t recv_bytes_into(bytes& buf, std::size_t offset);

    template <class T>
    void send(const T& obj) {
        std::string out;
        encode_message_to(out, obj);
        send_bytes(out.data(), out.size());
    }

    // Sends with a bound on the time spent waiting for room in the OS buffer (a reader that
    // does not read). TimeoutError when it runs out: if nothing of the message had gone out,
    // the connection stays usable; if part had, it is closed (see the top of this file).
    // std::nullopt waits without limit (as send_bytes(data, size) does).
    void send_bytes(const void* data, std::size_t size, std::optional<double> timeout_seconds) {
        send_bytes_ms(data, size, mp::detail::timeout_to_ms(timeout_seconds, "mp::Connection::send"));
    }
    template <class Rep, class Period>
    void send_bytes(const void* data, std::size_t size, std::chrono::duration<Rep, Period> timeout) {
        send_bytes_ms(data, size, mp::detail::nonnegative_seconds(timeout) * 1000.0);
    }
    template <class T>
    void send(const T& obj, std::optional<double> timeout_seconds) {
        std::string out;
        encode_message_to(out, obj);
        send_bytes(out.data(), out.size(), timeout_seconds);
    }
    template <class T, class Rep, class Period>
    void send(const T& obj, std::chrono::duration<Rep, Period> timeout) {
        std::string out;
        encode_message_to(out, obj);
        send_bytes(out.data(), out.size(), timeout);
    }
    template <class T>
    T recv() {
        std::string in;
        recv_frame(in);
        return decode_message<T>(in);
    }

    // The std::error_code forms of the sends and receives above (see the top of this file).
    void send_bytes(const void* data, std::size_t size, std::error_code& ec);
    void send_bytes(std::string_view s, std::error_code& ec) { send_bytes(s.data(), s.size(), ec); }
    void send_bytes(const bytes& buf, std::error_code& ec) { send_bytes(buf.data(), buf.size(), ec); }
    void send_bytes(const void* data, std::size_t size, std::optional<double> timeout_seconds, std::error_code& ec) {
        send_bytes_ms(data, size, mp::detail::timeout_to_ms(timeout_seconds, "mp::Connection::send"), ec);
    }
    template <class Rep, class Period>
    void send_bytes(const void* data, std::size_t size, std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        send_bytes_ms(data, size, mp::detail::nonnegative_seconds(timeout) * 1000.0, ec);
    }
    template <class T>
    void send(const T& obj, std::error_code& ec) {
        std::string out;
        encode_message_to(out, obj);
        send_bytes(out.data(), out.size(), ec);
    }
    template <class T>
    void send(const T& obj, std::optional<double> timeout_seconds, std::error_code& ec) {
        std::string out;
        encode_message_to(out, obj);
        send_bytes(out.data(), out.size(), timeout_seconds, ec);
    }
    template <class T, class Rep, class Period>
    void send(const T& obj, std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        std::string out;
        encode_message_to(out, obj);
        send_bytes(out.data(), out.size(), timeout, ec);
    }
    template <class T>
    std::optional<T> recv(std::error_code& ec) {
        std::string in;
        if (!recv_frame(in, ec)) return std::nullopt;
        return decode_message<T>(in);
    }

    // Whether a message (or the peer's end of file) is waiting; waits up to timeout seconds.
    // poll() only looks; std::nullopt waits without limit (Python's poll(None)).
    [[nodiscard]] bool poll() { return poll_ms(0); }
    [[nodiscard]] bool poll(std::optional<double> timeout_seconds) {
        return poll_ms(mp::detail::timeout_to_ms(timeout_seconds, "mp::Connection::poll"));
    }
    template <class Rep, class Period>
    [[nodiscard]] bool poll(std::chrono::duration<Rep, Period> timeout) {
        return poll_ms(mp::detail::nonnegative_seconds(timeout) * 1000.0);
    }

    // The longest message this end accepts (every receive; copies share it). A protocol that
    // knows its largest message sets it, so that a broken or hostile peer announcing more is
    // refused at the header (OSError EMSGSIZE, and the end is closed). No limit by default, as
    // in Python; in any case memory grows with the bytes that arrive, never by the announced
    // length up front. 0 is ValueError.
    void set_max_message_size(std::size_t n);
    std::size_t max_message_size() const;

    void close();
    bool closed() const noexcept;
    bool readable() const noexcept;
    bool writable() const noexcept;
    // The fd (POSIX) or HANDLE value (Windows); OSError if closed.
    std::uintptr_t native_handle() const;
    std::uintptr_t fileno() const { return native_handle(); }

    // The codec hook: a Connection can be a Process argument (see the top of this file).
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    struct State;  // defined in connection.cpp

private:
    friend std::pair<Connection, Connection> Pipe(bool duplex);
    friend struct ConnectionAccess;  // common/connection_internal.hpp: Listener/Client ends
    explicit Connection(std::shared_ptr<State> s) : s_(std::move(s)) {}
    void recv_frame(std::string& out);
    bool recv_frame(std::string& out, std::error_code& ec);  // false: ec is set
    bool poll_ms(double timeout_ms);
    void send_bytes_ms(const void* data, std::size_t size, double timeout_ms);
    void send_bytes_ms(const void* data, std::size_t size, double timeout_ms, std::error_code& ec);

    std::shared_ptr<State> s_;
};

// Python's multiprocessing.Pipe(duplex=True). Duplex: both ends send and receive. One-way:
// first receives, second sends.
std::pair<Connection, Connection> Pipe(bool duplex = true);

}  // namespace mp
