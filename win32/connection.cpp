// win32/connection.cpp - the ends of mp::Connection on Windows: a named-pipe pair.
//
// Windows has no socketpair() and its anonymous pipes are one-way and cannot do overlapped
// I/O, so a pair is made as CPython does: a named pipe with a unique name
// (\\.\pipe\mp-<pid>-<counter>-<random>) is created with FILE_FLAG_FIRST_PIPE_INSTANCE (so no
// one can have squatted the name), a DACL that lets only the current user open it, and one
// instance, and its client end is opened at once with CreateFileW. Duplex: PIPE_ACCESS_DUPLEX,
// both ends read and write. One-way: the server end is PIPE_ACCESS_INBOUND (the reader), the
// client opens it write-only. Byte mode: Connection adds its own framing, the same bytes as on
// POSIX. Both handles are overlapped and non-inheritable. A closed peer is an error code, never
// a signal: ERROR_BROKEN_PIPE on a read (end of file), ERROR_BROKEN_PIPE / ERROR_NO_DATA /
// ERROR_PIPE_NOT_CONNECTED on a write (broken_pipe). There is no EINTR. Reads and writes are
// overlapped ReadFile/WriteFile on an event the end keeps beside its handle (EndState, one per
// direction). There is no poll() for pipes: PeekNamedPipe says how many bytes wait, and a wait
// with timeout is a zero-byte overlapped ReadFile, which completes when bytes arrive
// (consuming none) or the peer closes, and is cancelled (CancelIoEx) when the time runs out.
// So mp::wait, which has pipes and process handles to wait for at once, looks at the pipes and
// waits on the handles in short slices. An end can also be a connected SOCKET (a Listener or
// Client connection over TCP, marked in its EndState): those ends are written, read, waited on
// and closed with Winsock's calls (win32/socket.cpp); the framing above them is the same.
// POSIX differs: a socketpair (duplex) or pipe (one-way), SIGPIPE to guard against on write,
// poll(2) to wait, and a socket is an fd that needs no branch. A child's standard streams are
// in win32/child_stdio.cpp, named pipes (and the Listener's) in win32/named_pipe.cpp.
#include "../common/sys/connection.hpp"

#include <winsock2.h>
#include <windows.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <random>

#include "../common/sys/error.hpp"
#include "../common/sys/socket.hpp"

namespace mp::sys {

// What Windows keeps beside an end's handle. Made on an end's first overlapped transfer, or
// when a socket becomes an end.
struct EndState {
    Handle read_event;   // overlapped reads (and pipe_poll's zero-byte read) wait here
    Handle write_event;  // overlapped writes wait here
    bool is_socket = false;  // h holds a SOCKET: Winsock calls, and closesocket()
};

void EndStateDeleter::operator()(EndState* s) const noexcept { delete s; }

namespace {

bool is_peer_gone(DWORD e) noexcept {
    return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED;
}

bool is_socket(const PipeEnd& end) noexcept { return end.os && end.os->is_socket; }

std::error_code state_of(PipeEnd& end, EndState*& out) noexcept {
    if (!end.os) {
        end.os.reset(new (std::nothrow) EndState);
        if (!end.os) return std::make_error_code(std::errc::not_enough_memory);
    }
    out = end.os.get();
    return {};
}

// One overlapped ReadFile or WriteFile, waited for. done is the bytes moved.
BOOL overlapped_io(bool write, HANDLE h, HANDLE ev, void* p, DWORD n, DWORD& done) noexcept {
    OVERLAPPED ov{};
    ov.hEvent = ev;
    done = 0;
    const BOOL ok = write ? WriteFile(h, p, n, nullptr, &ov) : ReadFile(h, p, n, nullptr, &ov);
    if (!ok && GetLastError() != ERROR_IO_PENDING) return FALSE;
    return GetOverlappedResult(h, &ov, &done, TRUE);
}

// Writes p[0..n), waiting for each overlapped write until the deadline. When it passes, the
// write is cancelled; `total` counts what went out either way.
std::error_code write_block(HANDLE h, HANDLE ev, const char* p, std::size_t n, const Deadline& deadline,
                            std::size_t& total) noexcept {
    while (n > 0) {
        const DWORD chunk = n > 0x40000000 ? 0x40000000 : static_cast<DWORD>(n);
        OVERLAPPED ov{};
        ov.hEvent = ev;
        if (!WriteFile(h, const_cast<char*>(p), chunk, nullptr, &ov) && GetLastError() != ERROR_IO_PENDING) {
            const DWORD e = GetLastError();
            if (is_peer_gone(e)) return std::make_error_code(std::errc::broken_pipe);
            return os_error(e);
        }
        bool ok = false;
        unsigned long e = 0, put = 0;
        if (auto ec = finish_overlapped(h, ov, deadline, ok, e, put)) return ec;
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

// Writes one block to a pipe end or a socket end.
std::error_code write_any(PipeEnd& end, const char* p, std::size_t n, const Deadline& deadline,
                          std::size_t& total) noexcept {
    if (is_socket(end)) return socket_end_write(end.h.get(), p, n, deadline, total);
    native_handle ev = nullptr;
    if (auto ec = end_event(end, true, ev)) return ec;
    return write_block(end.h.get(), ev, p, n, deadline, total);
}

}  // namespace

std::error_code make_connection_pair(bool duplex, PipeEnd& first, PipeEnd& second) noexcept {
    return make_named_pair(duplex ? PairFlow::duplex : PairFlow::to_server, true, first.h, second.h);
}

std::error_code end_from_socket(SocketHandle&& s, PipeEnd& out) noexcept {
    if (auto ec = socket_set_blocking(s.get(), true)) return ec;
    EndState* st = nullptr;
    PipeEnd end;
    if (auto ec = state_of(end, st)) return ec;
    st->is_socket = true;  // set before h, so that a failure never CloseHandle()s a SOCKET
    end.h.reset(s.release());
    out = std::move(end);
    return {};
}

std::error_code pipe_write(PipeEnd& end, const void* head, std::size_t head_n, const void* body,
                           std::size_t body_n, const Deadline& deadline, std::size_t* written) noexcept {
    std::size_t total = 0;
    std::error_code ec;
    // No gather write: a small message is copied behind its header and written once (under
    // Wine every call costs a wineserver round trip).
    if (head_n + body_n <= 4096) {
        char buf[4096];
        if (head_n) std::memcpy(buf, head, head_n);
        if (body_n) std::memcpy(buf + head_n, body, body_n);
        ec = write_any(end, buf, head_n + body_n, deadline, total);
    } else {
        ec = write_any(end, static_cast<const char*>(head), head_n, deadline, total);
        if (!ec) ec = write_any(end, static_cast<const char*>(body), body_n, deadline, total);
    }
    if (written) *written = total;
    return ec;
}

std::error_code pipe_read(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    char* p = static_cast<char*>(data);
    got = 0;
    if (is_socket(end)) {
        while (got < n) {
            std::size_t r = 0;
            if (auto ec = socket_end_read_some(end.h.get(), p + got, n - got, r)) return ec;
            if (r == 0) break;  // end of file
            got += r;
        }
        return {};
    }
    native_handle ev = nullptr;
    if (auto ec = end_event(end, false, ev)) return ec;
    while (got < n) {
        const std::size_t left = n - got;
        const DWORD chunk = left > 0x40000000 ? 0x40000000 : static_cast<DWORD>(left);
        DWORD r = 0;
        if (!overlapped_io(false, end.h.get(), ev, p + got, chunk, r)) {
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
    if (is_socket(end)) return socket_end_read_some(end.h.get(), data, n, got);
    native_handle ev = nullptr;
    if (auto ec = end_event(end, false, ev)) return ec;
    got = 0;
    const DWORD chunk = n > 0x40000000 ? 0x40000000 : static_cast<DWORD>(n);
    DWORD r = 0;
    if (!overlapped_io(false, end.h.get(), ev, data, chunk, r)) {
        const DWORD e = GetLastError();
        if (is_peer_gone(e)) return {};  // end of file
        if (e != ERROR_MORE_DATA) return os_error(e);
    }
    got = r;
    return {};
}

std::error_code pipe_read_nowait(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept {
    // PeekNamedPipe says how many bytes have arrived; a read of no more than that completes
    // at once. A socket end is not read so (the pool's ends are pipes).
    got = 0;
    if (is_socket(end)) return std::make_error_code(std::errc::operation_not_supported);
    DWORD avail = 0;
    if (!PeekNamedPipe(end.h.get(), nullptr, 0, nullptr, &avail, nullptr)) {
        const DWORD e = GetLastError();
        if (is_peer_gone(e)) return {};  // end of file: pipe_poll says so
        return os_error(e);
    }
    if (avail == 0 || n == 0) return {};
    return pipe_read_some(end, data, n < avail ? n : static_cast<std::size_t>(avail), got);
}

std::error_code pipe_poll(PipeEnd& end, const Deadline& deadline, bool& ready) noexcept {
    if (is_socket(end)) return socket_wait(end.h.get(), false, deadline, ready);
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
    native_handle ev = nullptr;
    if (auto ec = end_event(end, false, ev)) return ec;
    OVERLAPPED ov{};
    ov.hEvent = ev;
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

void close_end(PipeEnd& end) noexcept {
    if (is_socket(end) && end.h) socket_close(end.h.release());  // never CloseHandle() on a SOCKET
    end.h.reset();
    end.os.reset();  // the events
}

std::error_code wait_ready(PipeEnd* const* ends, std::size_t n_ends, const native_handle* objects,
                           std::size_t n_objects, const Deadline& deadline, unsigned char* ready) noexcept {
    // WaitForMultipleObjects cannot wait for a pipe or a socket to become readable, so the
    // ends are looked at between waits on the objects, in slices of 1 ms that grow to 10 ms:
    // quick to see a message that comes soon, cheap when none comes for long.
    int step_ms = 1;
    for (;;) {
        bool any = false;
        for (std::size_t i = 0; i < n_ends; ++i) {
            bool r = false;
            if (auto ec = pipe_poll(*ends[i], Deadline::now(), r)) return ec;
            ready[i] = r ? 1 : 0;
            any = any || r;
        }
        const Deadline slice = any ? Deadline::now() : deadline.or_within(std::chrono::milliseconds(step_ms));
        if (auto ec = wait_handles(objects, n_objects, slice, ready + n_ends)) return ec;
        for (std::size_t k = 0; k < n_objects; ++k) any = any || ready[n_ends + k];
        if (any || deadline.passed()) return {};
        step_ms = std::min(step_ms + 1, 10);
    }
}

const char* end_inherit_problem(const PipeEnd& end) noexcept {
    return is_socket(end) ? socket_inherit_problem() : nullptr;  // a pipe HANDLE passes like any other
}

void end_allow_sigpipe(PipeEnd&) noexcept {}  // Windows has no SIGPIPE: a closed peer is an error code

std::error_code end_event(PipeEnd& end, bool for_write, native_handle& out) noexcept {
    EndState* st = nullptr;
    if (auto ec = state_of(end, st)) return ec;
    Handle& ev = for_write ? st->write_event : st->read_event;
    if (!ev) {
        ev.reset(CreateEventW(nullptr, TRUE, FALSE, nullptr));
        if (!ev) return last_error();
    }
    out = ev.get();
    return {};
}

std::error_code make_named_pair(PairFlow flow, bool client_overlapped, Handle& server_out, Handle& client_out) noexcept {
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
    // The server's direction, and how the client opens it. FILE_READ_ATTRIBUTES or
    // FILE_WRITE_ATTRIBUTES on a one-way client lets it ask PeekNamedPipe and the like.
    const DWORD server_mode = flow == PairFlow::duplex    ? PIPE_ACCESS_DUPLEX
                              : flow == PairFlow::to_server ? PIPE_ACCESS_INBOUND
                                                            : PIPE_ACCESS_OUTBOUND;
    const DWORD client_access = flow == PairFlow::duplex    ? GENERIC_READ | GENERIC_WRITE
                                : flow == PairFlow::to_server ? GENERIC_WRITE | FILE_READ_ATTRIBUTES
                                                              : GENERIC_READ | FILE_WRITE_ATTRIBUTES;
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
                                (client_overlapped ? FILE_FLAG_OVERLAPPED : 0) | SECURITY_SQOS_PRESENT |
                                    SECURITY_IDENTIFICATION,
                                nullptr);
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

}  // namespace mp::sys
