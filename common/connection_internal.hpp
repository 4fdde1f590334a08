// common/connection_internal.hpp - what common/ (not the public API) may do with a Connection:
// wrap an end made elsewhere, such as a socket or named pipe accepted by a Listener.
#pragma once

#include "mp/connection.hpp"
#include "sys/connection.hpp"

namespace mp {

struct ConnectionAccess {
    // A duplex Connection that owns end (the same framing as a Pipe end).
    static Connection from_end(sys::PipeEnd&& end);
};

}  // namespace mp
