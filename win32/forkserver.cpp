// win32/forkserver.cpp - the forkserver start method does not exist on Windows.
//
// A forkserver (posix/forkserver.cpp) forks each child from a clean, single-threaded copy of
// the program, so that a multithreaded parent never forks itself; the child is the server's,
// and its wait status travels back to the parent over the child's authenticated Unix-socket
// connection, which is also its sentinel. Windows has no fork: every process is a new program
// image started by CreateProcessW, which is what spawn already does, and spawn is safe in a
// multithreaded parent. So mp offers "spawn" alone here, as CPython does: get_all_start_methods()
// does not list "forkserver", get_context("forkserver") is a ValueError before anything below is
// reached, and these functions only refuse. A Windows child's status needs no travelling: the
// parent holds its process HANDLE (win32/process.cpp), and Child::status stays empty.
#include "../common/sys/forkserver.hpp"

#include <cstdlib>

namespace mp::sys {

std::error_code forkserver_ensure_running(const ForkserverLaunch&) noexcept {
    return std::make_error_code(std::errc::not_supported);  // no fork
}

std::error_code forkserver_start_child(const ForkserverLaunch&, const std::string&, const std::vector<native_handle>&,
                                       bool, Child&, ForkserverFate&) noexcept {
    return std::make_error_code(std::errc::not_supported);  // no fork
}

std::error_code forkserver_request(const std::string&, const std::string&, const std::string&,
                                   const std::vector<native_handle>&, bool, Child&) noexcept {
    return std::make_error_code(std::errc::not_supported);  // no fork
}

int forkserver_pid() noexcept { return 0; }  // none ever runs

std::string forkserver_address() { return {}; }

void forkserver_stop() noexcept {}  // nothing to stop

void forkserver_serve(int, char**, ForkserverSettingsHook, ForkserverChildMain) noexcept {
    std::_Exit(1);  // never started on Windows: bootstrap only calls it for the POSIX marker
}

}  // namespace mp::sys
