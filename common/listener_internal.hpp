// common/listener_internal.hpp - what common/ (not the public API) may do with a Listener:
// accept a client and run its handshake apart, so that a server (the manager's) can
// authenticate each client on a thread of its own. Listener::accept does both in the caller,
// where a client that connects and then says nothing holds up every other client for the
// whole handshake limit.
#pragma once

#include <string>

#include "mp/listener.hpp"
#include "sys/connection.hpp"

namespace mp {

struct ListenerAccess {
    // Waits up to timeout_ms (< 0: without limit) for the next client and returns its end, not
    // yet authenticated (TimeoutError, OSError as Listener::accept). The Listener's own authkey
    // is not used.
    static sys::PipeEnd accept_end(Listener& l, double timeout_ms);
    // The accepting side's half of the handshake (deliver_challenge, then answer_challenge)
    // within timeout_ms, AuthenticationError otherwise; then the end as a Connection. An empty
    // authkey skips the handshake.
    static Connection authenticate(sys::PipeEnd&& end, const std::string& authkey, double timeout_ms);
};

}  // namespace mp
