// win32/tracker.cpp - the resource tracker on Windows: nothing to track.
//
// A named kernel object (a file mapping, a named pipe, an event) lives exactly as long as some
// handle to it is open, and the kernel closes a process's handles however it ends, a crash or
// TerminateProcess included. So nothing mp makes on Windows can outlive its makers, and there
// is no tracker process: each function below says in one line what it has to do here.
// POSIX differs: /dev/shm names, socket files and FIFOs stay until someone removes them, so
// posix/tracker.cpp runs a tracker process that removes what a dead creator left.
#include "../common/sys/tracker.hpp"

namespace mp::sys {

// begin_creation: the object is made at its own name at once (no private name is needed).
std::error_code begin_creation(Resource kind, const std::string& name, Creation& c) noexcept try {
    c = Creation{};
    c.kind = kind;
    c.name = name;
    c.temporary = name;
    c.active = true;
    return {};
} catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// finish_creation: the object is already at its name, and the kernel ends it with its handles.
std::error_code finish_creation(Creation& c, bool) noexcept {
    c.active = false;
    return {};
}

// track: the kernel ends what the name names with its last handle.
std::error_code track(Resource, const std::string&) noexcept { return {}; }

// untrack: nothing was registered.
void untrack(Resource, const std::string&) noexcept {}

// tracker_pid: no tracker process exists on Windows.
int tracker_pid() noexcept { return 0; }

// stop_tracker: no tracker process exists on Windows.
void stop_tracker() noexcept {}

}  // namespace mp::sys
