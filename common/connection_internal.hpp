// common/connection_internal.hpp - what common/ (not the public API) may do with a Connection:
// wrap an end made elsewhere, such as a socket or named pipe accepted by a Listener, and give
// mp::wait the end to wait on.
#pragma once

#include "mp/connection.hpp"
#include "sys/connection.hpp"

namespace mp {

struct ConnectionAccess {
    // A duplex Connection that owns end (the same framing as a Pipe end).
    static Connection from_end(sys::PipeEnd&& end);
    // The end of a connection that can be read, for sys::wait_ready (OSError as poll() raises
    // it for a closed or write-only connection), and whether a message's first bytes already
    // sit in its read-ahead, where no OS wait can see them.
    static sys::PipeEnd& readable_end(const Connection& c);
    static bool has_buffered(const Connection& c) noexcept;
    // Whether a whole message sits in c's read-ahead, after at most one read of what has
    // already arrived (sys::pipe_read_nowait, never a wait): recv() then takes it without
    // waiting. False when it has not all come yet, at end of file, on an error (recv reports
    // it), or where the OS cannot read without waiting.
    static bool whole_message_nowait(const Connection& c) noexcept;
    // The end of a connection that can be written (OSError for a closed or read-only one).
    static sys::PipeEnd& writable_end(const Connection& c);
};

}  // namespace mp
