// win32/pipe.cpp - the ends of mp::Pipe on Windows: a named-pipe pair.
//
// Windows has no socketpair() and its anonymous pipes are one-way and cannot do overlapped
// I/O, so a pair is made as CPython does: a named pipe with a unique name
// (\\.\pipe\mp-<pid>-<counter>-<random>) is created with FILE_FLAG_FIRST_PIPE_INSTANCE (so no
// one can have squatted the name), a DACL that lets only the current user open it, and one instance, and its client end is opened at once with
// CreateFileW. Duplex: PIPE_ACCESS_DUPLEX, both ends read and write. One-way: the server end is
// PIPE_ACCESS_INBOUND (the reader), the client opens it write-only. Byte mode: Connection adds
// its own framing, the same bytes as on POSIX. Both handles are overlapped and non-inheritable.
// A closed peer is an error code, never a signal: ERROR_BROKEN_PIPE on a read (end of file),
// ERROR_BROKEN_PIPE / ERROR_NO_DATA / ERROR_PIPE_NOT_CONNECTED on a write (broken_pipe). There
// is no EINTR. Reads and writes are overlapped ReadFile/WriteFile completed with
// GetOverlappedResult on an event of the end's own, one per direction. There is no poll() for
// pipes: PeekNamedPipe says how many bytes wait, and a wait with timeout is a zero-byte
// overlapped ReadFile, which completes when bytes arrive (consuming none) or the peer closes,
// and is cancelled (CancelIoEx) when the time runs out.
// An end can also be a connected SOCKET (a Listener/Client connection over TCP, flagged
// is_socket): a SOCKET is not a pipe, so those ends use send/recv and select() to wait, and
// closesocket() to close; the framing above them is the same.
// A child's standard stream (mp::subprocess) is such a pair with a synchronous client end for
// the child, whose C runtime uses plain ReadFile/WriteFile. communicate's pipe_exchange keeps
// one overlapped transfer in flight per pipe (stdin, stdout, stderr) and waits for the first
// to finish, or for the process, in one WaitForMultipleObjects; what is still in flight when
// it returns is cancelled with CancelIoEx, keeping the bytes it had moved.
// POSIX differs: a socketpair (duplex) or pipe (one-way), SIGPIPE to guard against on write,
// and poll(2) to wait (one poll() over all of a child's pipes); a TCP or Unix socket fd needs
// no branch there.
#include "../common/sys/pipe.hpp"

#include <winsock2.h>
#include <windows.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>

#include "../common/sys/error.hpp"
#include "../common/sys/socket.hpp"

namespace mp::sys {


static bool is_peer_gone(DWORD e) noexcept {
    return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED;
}

// A uniquely named pipe and its client end, connected. server_mode says the server end's
// direction and flags, client_access and client_flags how the client end opens it.
static std::error_code make_named_pair(DWORD server_mode, DWORD client_access, DWORD client_flags, Handle& server_out,
                                       Handle& client_out) noexcept {
    static std::atomic<unsigned> counter{0};
    unsigned random = 0;
    try {
        random = std::random_device{}();
    } catch (...) {
        random = static_cast<unsigned>(GetTickCount()) ^ static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(&random));
    }
    wchar_t name[96];
    std::swprintf(name, sizeof name / sizeof name[0], L"\\\\.\\pipe\\mp-%lu-%u-%08x",
                  static_cast<unsigned long>(GetCurrentProcessId()), counter.fetch_add(1), random);
    const DWORD buffer = 64 * 1024;
    // Not inheritable, and only this user may open the name in the moment before our own
    // client end does (FIRST_PIPE_INSTANCE already keeps anyone from having created it first).
    std::error_code sec_ec;
    SECURITY_ATTRIBUTES sa{sizeof sa, owner_only_security_descriptor(sec_ec), FALSE};
    if (sec_ec) return sec_ec;
    HANDLE server = CreateNamedPipeW(name, server_mode | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
                                     PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                     1, buffer, buffer, 0, &sa);
    if (server == INVALID_HANDLE_VALUE) return last_error();
    Handle s(server);
    HANDLE client = CreateFileW(name, client_access, 0, nullptr, OPEN_EXISTING,
                                client_flags | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
    if (client == INVALID_HANDLE_VALUE) return last_error();
    Handle c(client);
    // The client is already there, so this reports ERROR_PIPE_CONNECTED at once.
    OVERLAPPED ov{};
    Handle ev(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    if (!ev) return last_error();
    ov.hEvent = ev.get();
    if (!ConnectNamedPipe(server, &ov)) {
        const DWORD e = GetLastError();
        if (e == ERROR_IO_PENDING) {
            DWORD ignored = 0;
            if (!GetOverlappedResult(server, &ov, &ignored, TRUE)) return last_error();
        } else if (e != ERROR_PIPE_CONNECTED) {
            return os_error(e);
        }
    }
    server_out = std::move(s);
    client_out = std::move(c);
    return {};
}

std::error_code make_connection_pair(bool duplex, PipeEnd& first, PipeEnd& second) noexcept {
    return make_named_pair(duplex ? PIPE_ACCESS_DUPLEX : PIPE_ACCESS_INBOUND,
                           duplex ? GENERIC_READ | GENERIC_WRITE : GENERIC_WRITE | FILE_READ_ATTRIBUTES,
                           FILE_FLAG_OVERLAPPED, first.h, second.h);
}

// ---- socket ends (is_socket) ---------------------------------------------------------------

static SOCKET sock_of(const PipeEnd& end) noexcept {
    return static_cast<SOCKET>(reinterpret_cast<std::uintptr_t>(end.h.get()));
}

static bool is_socket_peer_gone(int e) noexcept {
    return e == WSAECONNRESET || e == WSAECONNABORTED || e == WSAESHUTDOWN || e == WSAENOTCONN;
}

// Sends p[0..n). With a deadline the socket is switched to non-blocking for the call (a
// Windows socket end never leaves this process, so no one else sees the mode change), and
// select() waits for room until the deadline.
static std::error_code socket_write_block(PipeEnd& end, const char* p, std::size_t n, const Deadline& deadline,
                                          std::size_t& total) noexcept {
    const bool forever = deadline.is_never();
    const SOCKET s = sock_of(end);
    u_long mode = forever ? 0 : 1;
    if (!forever && ::ioctlsocket(s, FIONBIO, &mode) == SOCKET_ERROR) return last_socket_error();
    std::error_code ec;
    while (n > 0) {
        const int chunk = n > 0x40000000 ? 0x40000000 : static_cast<int>(n);
        const int w = ::send(s, p, chunk, 0);
        if (w == SOCKET_ERROR) {
            const int e = WSAGetLastError();
            if (e == WSAEWOULDBLOCK) {
                bool room = false;
                if ((ec = socket_wait(end.h.get(), true, deadline, room))) break;
                if (!room) {
                    ec = std::make_error_code(std::errc::timed_out);
                    break;
                }
                continue;
            }
            ec = is_socket_peer_gone(e) ? std::make_error_code(std::errc::broken_pipe)
                                        : os_error(e);
            break;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
        total += static_cast<std::size_t>(w);
    }
    if (!forever) {
        mode = 0;
        ::ioctlsocket(s, FIONBIO, &mode);
    }
    return ec;
}

// One blocking recv; a peer that reset or shut down reads as end of file, as on POSIX.
static std::error_code socket_read_some(PipeEnd& end, char* p, std::size_t n, std::size_t& got) noexcept {
    got = 0;
    const int chunk = n > 0x40000000 ? 0x40000000 : static_cast<int>(n);
    const int r = ::recv(sock_of(end), p, chunk, 0);
    if (r == SOCKET_ERROR) {
        const int e = WSAGetLastError();
        if (is_socket_peer_gone(e)) return {};
        return os_error(e);
    }
    got = static_cast<std::size_t>(r);
    return {};
}

// ---- pipe ends -------------------------------------------------------------------------------

static std::error_code ensure_event(Handle& ev) noexcept {
    if (!ev) {
        ev.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
        if (!ev) return last_error();
    }
    return {};
}

// One overlapped ReadFile or WriteFile, waited for. done is the bytes moved.
static BOOL overlapped_io(bool write, HANDLE h, HANDLE ev, void* p, DWORD n, DWORD& done) noexcept {
    OVERLAPPED ov{};
    ov.hEvent = ev;
    done = 0;
    const BOOL ok = write ? WriteFile(h, p, n, nullptr, &ov) : ReadFile(h, p, n, nullptr, &ov);
    if (!ok && GetLastError() != ERROR_IO_PENDING) return FALSE;
    return GetOverlappedResult(h, &ov, &done, TRUE);
}

// Writes p[0..n), waiting for each overlapped write until the deadline. When it passes, the
// write is cancelled; `total` counts what went out either way.
static std::error_code write_block(PipeEnd& end, const char* p, std::size_t n, const Deadline& deadline,
                                   std::size_t& total) noexcept {
    while (n > 0) {
        const DWORD chunk = n > 0x40000000 ? 0x40000000 : static_cast<DWORD>(n);
        OVERLAPPED ov{};
        ov.hEvent = end.write_event.get();
        if (!WriteFile(end.h.get(), const_cast<char*>(p), chunk, nullptr, &ov) && GetLastError() != ERROR_IO_PENDING) {
            const DWORD e = GetLastError();
            if (is_peer_gone(e)) return std::make_error_code(std::errc::broken_pipe);
            return os_error(e);
        }
        bool ok = false;
        unsigned long e = 0, put = 0;
        if (auto ec = finish_overlapped(end.h.get(), ov, deadline, ok, e, put)) return ec;
        total += put;
        if (!ok) {
            if (e == ERROR_OPERATION_ABORTED) return std::make_error_code(std::errc::timed_out);
            if (is_peer_gone(e)) return std::make_error_code(std::errc::broken_pipe);
            return os_error(static_cast<int>(e));
        }
        p += put;
        n -= put;
        // Cancelled after part of it went out: the deadline has passed.
        if (put < chunk && deadline.passed()) return std::make_error_code(std::errc::timed_out);
    }
    return {};
}

std::error_code pipe_write(PipeEnd& end, const void* head, std::size_t head_n, const void* body,
                           std::size_t body_n, const Deadline& deadline, std::size_t* written) noexcept {
    if (!end.is_socket) {
        if (auto ec = ensure_event(end.write_event)) return ec;
    }
    const auto block = end.is_socket ? socket_write_block : write_block;
    std::size_t total = 0;
    std::error_code ec;
    // No gather write: a small message is copied behind its header and written once (under
    // Wine every call costs a wineserver round trip).
    if (head_n + body_n <= 4096) {
        char buf[4096];
        if (head_n) std::memcpy(buf, head, head_n);
        if (body_n) std::memcpy(buf + head_n, body, body_n);
        ec = block(end, buf, head_n + body_n, deadline, total);
    } else {
        ec = block(end, static_cast<const char*>(head), head_n, deadline, total);
        if (!ec) ec = block(end, static_cast<const char*>(body), body_n, deadline, total);
    }
    if (written) *written = total;
    return ec;
}

std::error_code pipe_read(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    if (end.is_socket) {
        got = 0;
        while (got < n) {
            std::size_t r = 0;
            if (auto ec = socket_read_some(end, static_cast<char*>(data) + got, n - got, r)) return ec;
            if (r == 0) break;  // end of file
            got += r;
        }
        return {};
    }
    if (auto ec = ensure_event(end.read_event)) return ec;
    char* p = static_cast<char*>(data);
    got = 0;
    while (got < n) {
        const std::size_t left = n - got;
        const DWORD chunk = left > 0x40000000 ? 0x40000000 : static_cast<DWORD>(left);
        DWORD r = 0;
        if (!overlapped_io(false, end.h.get(), end.read_event.get(), p + got, chunk, r)) {
            const DWORD e = GetLastError();
            if (is_peer_gone(e)) break;  // the peer closed: end of file
            if (e != ERROR_MORE_DATA) return os_error(e);
        }
        if (r == 0) break;
        got += r;
    }
    return {};
}

std::error_code pipe_read_some(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    if (end.is_socket) return socket_read_some(end, static_cast<char*>(data), n, got);
    if (auto ec = ensure_event(end.read_event)) return ec;
    got = 0;
    const DWORD chunk = n > 0x40000000 ? 0x40000000 : static_cast<DWORD>(n);
    DWORD r = 0;
    if (!overlapped_io(false, end.h.get(), end.read_event.get(), data, chunk, r)) {
        const DWORD e = GetLastError();
        if (is_peer_gone(e)) return {};  // end of file
        if (e != ERROR_MORE_DATA) return os_error(e);
    }
    got = r;
    return {};
}

std::error_code pipe_poll(PipeEnd& end, const Deadline& deadline, bool& ready) noexcept {
    if (end.is_socket) return socket_wait(end.h.get(), false, deadline, ready);
    ready = false;
    DWORD avail = 0;
    if (!PeekNamedPipe(end.h.get(), nullptr, 0, nullptr, &avail, nullptr)) {
        const DWORD e = GetLastError();
        if (!is_peer_gone(e)) return os_error(e);
        ready = true;  // the peer closed: a read will not block (it sees end of file)
        return {};
    }
    if (avail > 0 || deadline.passed()) {
        ready = avail > 0;
        return {};
    }
    // A zero-byte overlapped read completes when bytes arrive (consuming none) or the peer
    // closes: a real wait, where PeekNamedPipe alone would have to be asked again and again.
    if (auto ec = ensure_event(end.read_event)) return ec;
    OVERLAPPED ov{};
    ov.hEvent = end.read_event.get();
    char none = 0;
    if (ReadFile(end.h.get(), &none, 0, nullptr, &ov)) {
        ready = true;
        return {};
    }
    const DWORD e = GetLastError();
    if (is_peer_gone(e)) {
        ready = true;
        return {};
    }
    if (e != ERROR_IO_PENDING) return os_error(e);
    bool ok = false;
    unsigned long err = 0, moved = 0;
    if (auto ec = finish_overlapped(end.h.get(), ov, deadline, ok, err, moved)) return ec;
    // Completed (perhaps just as it was cancelled): bytes are there. Cancelled: out of time.
    if (ok || is_peer_gone(err)) {
        ready = true;
        return {};
    }
    if (err == ERROR_OPERATION_ABORTED) return {};
    return os_error(static_cast<int>(err));
}

std::error_code make_child_pipe(bool parent_reads, PipeEnd& parent, Handle& child) noexcept {
    // Our end is the overlapped server, the child's a synchronous client: a C runtime reads
    // and writes its standard handles without an OVERLAPPED, which an overlapped handle does
    // not allow. Overlapped-ness belongs to each handle, so one pipe can have one of each (an
    // anonymous CreatePipe pipe cannot: both of its ends are synchronous).
    return make_named_pair(parent_reads ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND,
                           parent_reads ? GENERIC_WRITE | FILE_READ_ATTRIBUTES : GENERIC_READ | FILE_WRITE_ATTRIBUTES,
                           0, parent.h, child);
}

namespace {

constexpr DWORD kExchangeChunk = 64 * 1024;

// One overlapped ReadFile or WriteFile of pipe_exchange, possibly still in flight.
struct Transfer {
    OVERLAPPED ov{};
    bool pending = false;
};

}  // namespace

// Puts what a finished (or cancelled) transfer moved where it belongs. A peer that has gone
// ends that stream; any other failure is the caller's error.
static std::error_code account(PipeExchange& x, int slot, BOOL ok, DWORD moved) noexcept {
    const DWORD e = ok ? 0 : GetLastError();
    if (slot < 0) {
        x.sent += moved;
        if (x.sent == x.size || (!ok && is_peer_gone(e))) {
            x.input->h.reset();  // the child may be waiting for end of file
            x.input = nullptr;
        }
    } else {
        if (moved) append_captured(*x.sink[slot], x.scratch.get() + static_cast<std::size_t>(slot) * kExchangeChunk, moved);
        if (!ok && is_peer_gone(e)) x.output[slot] = nullptr;  // end of file
    }
    if (!ok && !is_peer_gone(e) && e != ERROR_OPERATION_ABORTED && e != ERROR_MORE_DATA)
        return os_error(e);
    return {};
}

std::error_code pipe_exchange(PipeExchange& x, native_handle watch, const Deadline& deadline, bool& watch_ready) noexcept try {
    watch_ready = false;
    if (!x.scratch) x.scratch.reset(new char[2 * kExchangeChunk]);
    // Slot -1 is stdin, 0 and 1 the outputs. Each end waits on its own event.
    Transfer in, out[2];
    auto end_of = [&](int slot) -> PipeEnd* { return slot < 0 ? x.input : x.output[slot]; };
    auto transfer_of = [&](int slot) -> Transfer& { return slot < 0 ? in : out[slot]; };
    // Whatever is still in flight when we leave is cancelled, and what it moved is kept.
    auto settle = [&]() -> std::error_code {
        std::error_code first;
        for (int slot = -1; slot < 2; ++slot) {
            Transfer& t = transfer_of(slot);
            if (!t.pending) continue;
            PipeEnd* end = end_of(slot);
            CancelIoEx(end->h.get(), &t.ov);
            DWORD moved = 0;
            const BOOL ok = GetOverlappedResult(end->h.get(), &t.ov, &moved, TRUE);
            t.pending = false;
            if (auto ec = account(x, slot, ok, moved); ec && !first) first = ec;
        }
        return first;
    };
    if (x.input && x.sent == x.size) account(x, -1, TRUE, 0);
    for (;;) {
        // Start what is not running; a transfer that completes at once is counted and started
        // again, until one has to wait. A few rounds at most, so that a peer that always has
        // more cannot keep us from looking at the watch and the clock.
        bool busy = false;
        for (int slot = -1; slot < 2; ++slot) {
            Transfer& t = transfer_of(slot);
            for (int round = 0; end_of(slot) && !t.pending; ++round) {
                if (round == 16) {
                    busy = true;
                    break;
                }
                PipeEnd* end = end_of(slot);
                Handle& ev = slot < 0 ? end->write_event : end->read_event;
                if (auto ec = ensure_event(ev)) {
                    settle();
                    return ec;
                }
                t.ov = OVERLAPPED{};
                t.ov.hEvent = ev.get();
                BOOL ok;
                if (slot < 0) {
                    const std::size_t rest = x.size - x.sent;
                    ok = WriteFile(end->h.get(), const_cast<char*>(x.data + x.sent),
                                   rest > kExchangeChunk ? kExchangeChunk : static_cast<DWORD>(rest), nullptr, &t.ov);
                } else {
                    ok = ReadFile(end->h.get(), x.scratch.get() + static_cast<std::size_t>(slot) * kExchangeChunk,
                                  kExchangeChunk, nullptr, &t.ov);
                }
                if (!ok && GetLastError() == ERROR_IO_PENDING) {
                    t.pending = true;
                    break;
                }
                DWORD moved = 0;
                if (ok) ok = GetOverlappedResult(end->h.get(), &t.ov, &moved, TRUE);
                if (auto ec = account(x, slot, ok, moved)) {
                    settle();
                    return ec;
                }
            }
        }
        if (!x.input && !x.output[0] && !x.output[1]) return {};
        // The watch first: WaitForMultipleObjects reports the lowest ready index, and once the
        // child has ended the caller's drain takes over from here.
        HANDLE hs[4];
        int slots[4];
        DWORD n = 0;
        if (watch) hs[n++] = watch;
        for (int slot = -1; slot < 2; ++slot) {
            if (!transfer_of(slot).pending) continue;
            slots[n] = slot;
            hs[n++] = transfer_of(slot).ov.hEvent;
        }
        std::size_t index = n;
        if (n) {
            if (auto ec = wait_objects(hs, n, busy ? Deadline::now() : deadline, index)) {
                settle();
                return ec;
            }
        }
        if (index == n) {
            if (!deadline.passed()) continue;  // busy: another round
            return settle();
        }
        if (watch && index == 0) {
            watch_ready = true;
            return settle();
        }
        const int slot = slots[index];
        Transfer& t = transfer_of(slot);
        DWORD moved = 0;
        const BOOL ok = GetOverlappedResult(end_of(slot)->h.get(), &t.ov, &moved, FALSE);
        t.pending = false;
        if (auto ec = account(x, slot, ok, moved)) {
            settle();
            return ec;
        }
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

void close_socket_end(PipeEnd& end) noexcept {
    if (!end.is_socket) return;  // a pipe end closes through its Handle
    if (end.h) ::closesocket(sock_of(end));
    end.h.release();
    end.is_socket = false;
}

PipeEnd::~PipeEnd() {
    if (is_socket) close_socket_end(*this);
}

}  // namespace mp::sys
