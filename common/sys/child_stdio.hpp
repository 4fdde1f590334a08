// common/sys/child_stdio.hpp - the internal contract for a child's standard streams
// (mp::subprocess): the pipes between us and its stdin, stdout and stderr, and communicate's
// exchange, which moves all three at once. (DEVNULL is open_null_device, sys/handle.hpp.)
//
// posix/child_stdio.cpp and win32/child_stdio.cpp implement these functions, in this order, the
// way libuv keeps a child's stdio apart from its other pipes. Everything here is noexcept and
// reports std::error_code; common/subprocess.cpp adds the buffering, text mode, the drain after
// the child's exit and Python's exceptions. Our end of each pipe is a PipeEnd
// (sys/connection.hpp), read and written with pipe_read_some, pipe_write and pipe_poll outside
// communicate; the child's end goes into SpawnRequest::std*_handle (sys/process.hpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <system_error>

#include "connection.hpp"
#include "handle.hpp"

namespace mp::sys {

// A one-way pipe between this process and a child's stdin, stdout or stderr. parent is our
// end, child the end that goes into SpawnRequest::std*_handle. parent_reads: the child writes
// (its stdout or stderr), else the child reads (its stdin). The child's end is an ordinary
// blocking (POSIX) or synchronous (Windows) handle, because the child's runtime reads and
// writes it with plain calls; ours can wait with a timeout (on POSIX a writing end is
// non-blocking, on Windows it is overlapped). Both are close-on-exec / non-inheritable until
// spawn_process passes the child's.
std::error_code make_child_pipe(bool parent_reads, PipeEnd& parent, Handle& child) noexcept;

// Readies our end of a child pipe to be another child's standard stream instead (a pipeline:
// b's stdin is a's stdout pipe), before it is given to spawn_process; ours is closed once that
// child runs. POSIX: the end is made blocking (a writing end of ours is non-blocking, and the
// flag belongs to the open file, which the child shares). Windows: nothing; our end is
// overlapped, and a C runtime's plain ReadFile/WriteFile on it waits for its own transfer
// (the file object's completion), which is all one user of the handle needs.
std::error_code ready_end_for_child(PipeEnd& ours) noexcept;

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
// commits it). The same on both systems, so it is written here once.
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

}  // namespace mp::sys
