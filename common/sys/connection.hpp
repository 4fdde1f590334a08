// common/sys/connection.hpp - the internal contract for the ends of mp::Connection (mp::Pipe,
// and the ends a Listener or Client hands over): how a pair is made, how one end is written,
// read, waited on and closed, and mp::wait's wait over ends and waitable objects together.
//
// posix/connection.cpp and win32/connection.cpp implement these functions, in this order.
// Everything here is noexcept and reports std::error_code; common/connection.cpp does the
// framing, the codec and the exceptions. The same end serves mp::NamedPipe (sys/named_pipe.hpp)
// and the parent's side of a child's standard streams (sys/child_stdio.hpp). A closed peer is
// reported the same way on both sides: a read that meets it returns got < n with no error (end
// of file), a write that meets it returns std::errc::broken_pipe (never a SIGPIPE death).
#pragma once

#include <cstddef>
#include <memory>
#include <system_error>

#include "handle.hpp"
#include "socket.hpp"

namespace mp::sys {

// What an OS keeps beside an end's handle, defined in its own connection.cpp. Windows: the two
// events its overlapped reads and writes wait on, and whether the end is a SOCKET. POSIX:
// whether the fd is a socket or a pipe (so that a write is one call), and end_allow_sigpipe's
// choice.
struct EndState;
struct EndStateDeleter {
    void operator()(EndState* s) const noexcept;
};

// One end of a pipe, a socket or a named pipe, as a Connection, a NamedPipe or a child's stream
// holds it: the same on both systems. It closes with close_end (below), also on destruction.
struct PipeEnd {
    Handle h;
    std::unique_ptr<EndState, EndStateDeleter> os;  // made by the platform on need

    PipeEnd() noexcept = default;
    PipeEnd(PipeEnd&&) noexcept = default;
    PipeEnd& operator=(PipeEnd&& o) noexcept;
    ~PipeEnd();
};

// Makes a connected pair. duplex: both ends read and write. One-way: first reads, second
// writes. Both ends are close-on-exec / non-inheritable.
std::error_code make_connection_pair(bool duplex, PipeEnd& first, PipeEnd& second) noexcept;

// Makes a connected socket (one a Listener accepted, or a Client's) the end of a Connection:
// blocking again (a Connection's reads and writes block), and on Windows marked as a socket,
// which is then written, read, waited on and closed with Winsock calls (win32/socket.cpp).
std::error_code end_from_socket(SocketHandle&& s, PipeEnd& out) noexcept;

// Writes head[0..head_n) then body[0..body_n) completely, as one gather write where the OS has
// one, retrying on EINTR and short writes. A closed peer is std::errc::broken_pipe.
// The deadline bounds the time spent waiting for room in the OS buffer: when it passes, the
// result is std::errc::timed_out and *written (if given) says how many bytes went out (0:
// none, the stream is as it was; more: a partial message is in the stream).
std::error_code pipe_write(PipeEnd& end, const void* head, std::size_t head_n, const void* body,
                           std::size_t body_n, const Deadline& deadline = Deadline::never(),
                           std::size_t* written = nullptr) noexcept;

// Reads exactly n bytes unless the peer closes first: got < n then means end of file.
// Retries on EINTR.
std::error_code pipe_read(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept;

// One read of at most n bytes: waits until at least one byte is there (or end of file, got = 0)
// and returns what has arrived. Retries on EINTR. Connection reads headers with it, so that a
// small message comes in with its header in one call.
std::error_code pipe_read_some(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept;

// One read of at most n bytes of what has already arrived, never waiting: got = 0 when nothing
// is there yet or at end of file (pipe_poll then tells them apart). A pool's collector reads an
// answer that is already in the pipe with it, without a wait first. Retries on EINTR.
// std::errc::operation_not_supported when this end cannot be read so (POSIX: a kernel without
// RWF_NOWAIT on pipes; Windows: a socket end); the caller then waits as usual.
std::error_code pipe_read_nowait(PipeEnd& end, void* data, std::size_t n, std::size_t& got) noexcept;

// Waits until a read would not block (data is there, or the peer has closed: ready) or the
// deadline passes (not ready). Deadline::now() only looks.
std::error_code pipe_poll(PipeEnd& end, const Deadline& deadline, bool& ready) noexcept;

// Closes an end and what the OS kept beside it (Windows: closesocket() for a socket end, whose
// SOCKET CloseHandle must not be given). The end is left empty; closing it again does nothing.
void close_end(PipeEnd& end) noexcept;

// mp::wait: waits until at least one of ends[0..n_ends) is ready to read (pipe_poll's meaning)
// or one of objects[0..n_objects) is ready (wait_handles' meaning: a process sentinel), or the
// deadline passes. ready[0..n_ends) are set for the ends, ready[n_ends..n_ends + n_objects)
// for the objects: 1 ready, 0 not. POSIX: one poll(2) over all of them. Windows: a pipe or a
// socket is no waitable object, so the ends are looked at, the objects waited for in slices
// that grow from 1 to 10 ms, and the ends looked at again: data is seen within one slice.
std::error_code wait_ready(PipeEnd* const* ends, std::size_t n_ends, const native_handle* objects,
                           std::size_t n_objects, const Deadline& deadline, unsigned char* ready) noexcept;

// Why this end cannot be passed to a spawned child, or nullptr when it can. POSIX: never (an
// fd passes like any other). Windows: a socket end (an inherited SOCKET is not usable there).
const char* end_inherit_problem(const PipeEnd& end) noexcept;

// Lets writes to this end raise SIGPIPE when the peer has gone, for an end whose process has
// no use left once its peer is gone (a pool worker's result pipe, read only by the pool that
// started it): POSIX then writes a pipe with a bare writev() and saves the two sigprocmask
// calls per write that keep the signal off. Windows has no SIGPIPE: nothing to do.
void end_allow_sigpipe(PipeEnd& end) noexcept;

#if defined(_WIN32)
// ---- Windows only: what the other win32/ files use ------------------------------------------

// The event that an overlapped transfer on this end waits on, one per direction (made on first
// use, so that a thread reading and another writing one duplex end never share one): win32/
// child_stdio.cpp's exchange keeps its transfers on them.
std::error_code end_event(PipeEnd& end, bool for_write, native_handle& out) noexcept;

// The pair behind make_connection_pair and make_child_pipe (sys/child_stdio.hpp): a uniquely
// named pipe's one server end and its client end, connected. duplex: both read and write;
// to_server: the client writes; to_client: the server writes. The server end is overlapped,
// the client end only if client_overlapped (a child's runtime needs a synchronous one).
enum class PairFlow { duplex, to_server, to_client };
std::error_code make_named_pair(PairFlow flow, bool client_overlapped, Handle& server, Handle& client) noexcept;
#endif

inline PipeEnd& PipeEnd::operator=(PipeEnd&& o) noexcept {
    if (this != &o) {
        close_end(*this);
        h = std::move(o.h);
        os = std::move(o.os);
    }
    return *this;
}

inline PipeEnd::~PipeEnd() { close_end(*this); }

}  // namespace mp::sys
