// common/sys/pipe.hpp - the internal contract for the two ends of a Connection (mp::Pipe).
//
// posix/pipe.cpp and win32/pipe.cpp implement these functions, in this order. Everything here
// is noexcept and reports std::error_code; common/connection.cpp does the framing, the codec
// and the exceptions. A closed peer is reported the same way on both sides: a read that meets
// it returns got < n with no error (end of file), a write that meets it returns
// std::errc::broken_pipe (never a SIGPIPE death).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
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

// ---- the pipes of a child's standard streams (mp::subprocess) -------------------------------

// A one-way pipe between this process and a child's stdin, stdout or stderr. parent is our
// end, used with the functions above and pipe_exchange; child is the end that goes into
// SpawnRequest::std*_handle. parent_reads: the child writes (its stdout or stderr), else the
// child reads (its stdin). The child's end is an ordinary blocking (POSIX) or synchronous
// (Windows) handle, because the child's runtime reads and writes it with plain calls; ours can
// wait with a timeout (on POSIX a writing end is non-blocking, on Windows it is overlapped).
// Both are close-on-exec / non-inheritable until spawn_process passes the child's.
std::error_code make_child_pipe(bool parent_reads, PipeEnd& parent, Handle& child) noexcept;

// The state of Popen.communicate: the child's stdin fed from data[sent..size) while its stdout
// and stderr are read into sink[0] and sink[1], all at once, so that no pipe fills up while we
// wait on another (the deadlock of writing all input before reading any output). Kept between
// calls, so that a call that ran out of time can be continued. Once everything is written, or
// the child has closed its end (the rest is dropped, as Python drops it on BrokenPipeError),
// pipe_exchange closes the input end at once (the child may be waiting for end of file) and
// sets input to nullptr; at an output's end of file it sets output[i] to nullptr.
struct PipeExchange {
    PipeEnd* input = nullptr;
    const char* data = nullptr;
    std::size_t size = 0;
    std::size_t sent = 0;
    PipeEnd* output[2] = {nullptr, nullptr};
    std::string* sink[2] = {nullptr, nullptr};
    std::unique_ptr<char[]> scratch;  // the reads land here (64 KiB per output), made once
};

// Appends a read to a capture buffer. Past 1 MiB the buffer grows 4x at a time instead of
// std::string's 2x: every growth copies what is there into fresh pages, and at 64 MiB that
// copying costs a third of the throughput with 2x. Pages the reads never reach are not
// touched, so the larger reservation costs address space, not memory (on Linux; Windows
// commits it).
inline void append_captured(std::string& sink, const char* p, std::size_t n) {
    if (sink.size() + n > sink.capacity() && sink.capacity() >= (std::size_t{1} << 20))
        sink.reserve(std::max(sink.capacity() * 4, sink.size() + n));
    sink.append(p, n);
}

// Moves bytes until every stream is finished, the deadline passes (Deadline::now(): one round
// of what can move without waiting), or `watch` (a sentinel of the child, see open_sentinel;
// invalid_handle(): none) is ready, which sets watch_ready. EINTR never surfaces. Reads go
// into the reused scratch and are appended to the sinks.
std::error_code pipe_exchange(PipeExchange& x, native_handle watch, const Deadline& deadline, bool& watch_ready) noexcept;

#if defined(_WIN32)
// Closes a socket end with closesocket() (a no-op for a pipe end). Windows-only: on POSIX a
// socket is an fd and closes like one.
void close_socket_end(PipeEnd& end) noexcept;
#endif

}  // namespace mp::sys
