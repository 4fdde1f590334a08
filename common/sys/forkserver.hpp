// common/sys/forkserver.hpp - the internal contract for the forkserver start method: a small
// single-threaded server process, started on first use as a fresh run of the program, that
// forks each new child on request. posix/forkserver.cpp and win32/forkserver.cpp implement
// these functions, in this order (Windows has no fork: there every call refuses, and
// get_context("forkserver") is a ValueError before any of them is reached).
//
// The server (POSIX): the parent makes a directory only its user can enter (mode 0700, a random
// name, tracked by sys/tracker.hpp so that it goes however the parent dies), binds and listens on
// a Unix socket inside it, and spawns the program with `--mp-forkserver`, the listening socket,
// one end of an "alive" socketpair whose other end only the parent holds, and the read end of a
// pipe that carries a random 32-byte key and the settings (the preload list) once. mp::bootstrap
// sees the marker and calls forkserver_serve, which never returns.
//
// One connection per child, authenticated both ways with HMAC-SHA256 and that key:
//   server -> client   a random nonce
//   client -> server   HMAC(key, nonce + its own nonce + the request header), its own nonce,
//                      the header (payload size, descriptor count, daemon flag), the bootstrap
//                      payload, and the descriptors (SCM_RIGHTS): the parent's stdin, stdout and
//                      stderr, the parent's watch handle, the handles the arguments carry
//   server             checks the digest in constant time (a wrong one: the request is refused
//                      and nothing is forked), forks the child
//   server -> client   HMAC(key, the client's nonce + the pid), the pid, and a pidfd of the child
//                      (SCM_RIGHTS), so that the parent signals it race-free
//   server -> client   later, the child's raw wait status (4 bytes), once the server has reaped
//                      it; then the server closes the connection.
// The parent keeps the connection as Child::status: it becomes readable exactly when the child
// has ended (the status arrived, or the server and the child are both gone), so it is the
// child's sentinel and what its join reads (posix/process.cpp). The child keeps a copy of the
// server's end of its own connection (close-on-exec, dropped in its own fork children), so that
// a server that dies first leaves the connection quiet until the child ends too.
// When the alive channel reaches end of file (the parent ended, by exit, crash or SIGKILL), the
// server kills its daemonic children and exits; non-daemonic ones live on, as they would after
// fork or spawn. Daemonic children also die with the server (PR_SET_PDEATHSIG). A message on the
// channel carries a new listening socket, when the directory was removed under the server.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "handle.hpp"
#include "process.hpp"

namespace mp::sys {

// How the server is started: the program (this one), the marker argument bootstrap looks for,
// environment entries to add, and the settings bytes the server's settings hook receives.
struct ForkserverLaunch {
    std::string program;
    std::string marker;
    std::vector<std::pair<std::string, std::string>> env;
    std::string settings;
};

// What became of a server that ended while a request was under way (pid 0: nothing known).
struct ForkserverFate {
    int pid = 0;
    bool ended = false;
    int exitcode = 0;
};

// ---- the parent's side --------------------------------------------------------------------

// Starts this process's server unless one runs and can be reached: a server found dead is
// reaped and replaced; one whose directory was removed is given a new one.
std::error_code forkserver_ensure_running(const ForkserverLaunch& launch) noexcept;

// Asks this process's server (started or replaced first, as above) for a child running
// `payload`, with `handles` passed (the parent watch handle first, then the arguments'). The
// child finds handles[j] at the number a spawned child would (inherited_value(h, j + 1)).
// out: pid, process (a pidfd; invalid on a kernel without pidfds) and status (the connection).
// A server that ends before it answers is retried once if it had served before; otherwise the
// error is returned and `fate` tells how the server ended (a preload with on_error=fail).
std::error_code forkserver_start_child(const ForkserverLaunch& launch, const std::string& payload,
                                       const std::vector<native_handle>& handles, bool daemon, Child& out,
                                       ForkserverFate& fate) noexcept;

// One request to the server at `address` with `key`: what forkserver_start_child does once the
// server runs. A key the server does not hold is refused: std::errc::permission_denied, and
// nothing is forked. A server whose answer does not prove it holds the key is not believed:
// std::errc::operation_not_permitted (a child it may have forked is killed through its pidfd).
std::error_code forkserver_request(const std::string& address, const std::string& key, const std::string& payload,
                                   const std::vector<native_handle>& handles, bool daemon, Child& out) noexcept;

// The running server's pid and socket path (0 and "" when none runs in this process).
int forkserver_pid() noexcept;
std::string forkserver_address();

// Ends the server: closes the alive channel (the server kills its daemonic children and exits),
// reaps it, removes its directory and forgets it in the tracker. A later start starts a new one.
void forkserver_stop() noexcept;

// ---- the server's side --------------------------------------------------------------------

// Receives the settings bytes (after the key) before the server serves: common/bootstrap.cpp
// runs the preloads there. false: the server ends (exit code 1) without serving.
using ForkserverSettingsHook = bool (*)(const std::string& settings);
// Runs in each forked child with the payload and the parent watch handle, the other handles
// already where the payload says; it must not return.
using ForkserverChildMain = void (*)(std::string payload, native_handle parent_watch);

// The server's life, in the process forkserver_ensure_running started (argv as it was given to
// mp::bootstrap, argv[1] being the marker). It never returns.
[[noreturn]] void forkserver_serve(int argc, char** argv, ForkserverSettingsHook settings,
                                   ForkserverChildMain child_main) noexcept;

}  // namespace mp::sys
