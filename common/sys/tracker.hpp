// common/sys/tracker.hpp - the internal contract for the resource tracker: what a process makes
// that would outlive it (a shared-memory name, a socket file, a FIFO, a directory) is removed
// when the process ends, whatever way it ends, at whatever instant.
//
// posix/tracker.cpp and win32/tracker.cpp implement these functions, in this order. POSIX
// names live in file systems until someone removes them, so a tracker process watches each
// creator and removes what it left; Windows' named objects end with their last handle, so
// there is nothing to track there. Everything is noexcept and reports std::error_code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

namespace mp::sys {

enum class Resource : std::uint8_t {
    shared_memory = 1,  // a shm_open name, without its leading '/'
    file = 2,           // a path to unlink: a socket file, a FIFO
    directory = 3,      // a directory, removed with the files in it
};

// A name being made under the tracker's protection, registered before it exists.
struct Creation {
    Resource kind = Resource::file;
    std::string name;       // where the object must end up
    std::string temporary;  // where the caller makes it first (a private name nobody else uses)
    std::size_t slot = 0;
    bool active = false;
};

// The three steps that leave nothing behind at any instant, and never remove what somebody
// else made: begin_creation registers `name` and gives the private name to make the object at
// (a shared-memory name, or a path in name's directory); the caller makes it there; then
// finish_creation(made = true) puts it at `name` without replacing anything (a hard link:
// std::errc::file_exists when the name is taken) and drops the private name, or
// finish_creation(made = false) forgets it all. The tracker, finding a creator dead half way,
// removes the private name and also `name` if it is the same object. A name that does not fit
// the registry is filename_too_long: the caller makes it untracked. Directories cannot be
// linked; they use track() with a name nobody else can pick.
std::error_code begin_creation(Resource kind, const std::string& name, Creation& c) noexcept;
std::error_code finish_creation(Creation& c, bool made) noexcept;

// Registers a name the caller is about to make (or has made) under a name of its own choice
// (a random directory name): removed when the caller dies.
std::error_code track(Resource kind, const std::string& name) noexcept;

// Forgets a name its creator removed itself (or hands on: nothing is removed).
void untrack(Resource kind, const std::string& name) noexcept;

// The tracker's pid, 0 when none runs (a tracker found dead is not reported; the next
// registration starts a new one, with a warning, as CPython's resource_tracker does).
int tracker_pid() noexcept;

// Ends the tracker, which removes whatever is still registered, with a warning. A later
// registration starts a new one.
void stop_tracker() noexcept;

}  // namespace mp::sys
