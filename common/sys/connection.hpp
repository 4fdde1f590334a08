// common/sys/pipe.hpp - the internal contract for the two ends of a Connection (mp::Pipe).
//
// posix/pipe.cpp and win32/pipe.cpp implement these functions, in this order. Everything here
// is noexcept and reports std::error_code; common/connection.cpp does the framing, the codec
// and the exceptions. A closed peer is reported the same way on both sides: a read that meets
// it returns got < n with no error (end of file), a write that meets it returns
// std::errc::broken_pipe (never a SIGPIPE death).
#pragma once

#include <cstddef>
#include <memory>
#include <system_error>

#include "handle.hpp"

namespace mp::sys {

// One end of a pipe as a Connection holds it. Windows does its reads and writes as overlapped
// I/O and keeps one event per direction here (made on first use), so that a thread reading
// and another writing the same duplex end do not wait on each other's completion. POSIX needs
// only the fd.
struct PipeEnd {
    Handle h;
#if defined(_WIN32)
    Handle read_event;
    Handle write_event;
    // A connected SOCKET (a Listener/Client connection over TCP), not a pipe: reads and writes
    // go through recv/send/select instead, and it is closed with closesocket().
    bool is_socket = false;
    PipeEnd() = default;
    PipeEnd(PipeEnd&&) = default;
    PipeEnd& operator=(PipeEnd&&) = default;
    ~PipeEnd();
#endif
};

// Makes a connected pair. duplex: both ends read and write. One-way: first reads, second
// writes. Both ends are close-on-exec / non-inheritable.
std::error_code make_connection_pair(bool duplex, PipeEnd& first, PipeEnd& second) noexcept;

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

// Waits until a read would not block (data is there, or the peer has closed: ready) or the
// deadline passes (not ready). Deadline::now() only looks.
std::error_code pipe_poll(PipeEnd& end, const Deadline& deadline, bool& ready) noexcept;

#if defined(_WIN32)
// ---- Windows only: what the other win32/ files use ------------------------------------------

// The pair behind make_connection_pair and make_child_pipe (sys/child_stdio.hpp): a uniquely
// named pipe's one server end and its client end, connected. duplex: both read and write;
// to_server: the client writes; to_client: the server writes. The server end is overlapped,
// the client end only if client_overlapped (a child's runtime needs a synchronous one).
enum class PairFlow { duplex, to_server, to_client };
std::error_code make_named_pair(PairFlow flow, bool client_overlapped, Handle& server, Handle& client) noexcept;
#endif

#if defined(_WIN32)
// Closes a socket end with closesocket() (a no-op for a pipe end). Windows-only: on POSIX a
// socket is an fd and closes like one.
void close_socket_end(PipeEnd& end) noexcept;
#endif

}  // namespace mp::sys
