// common/sys/shared_memory.hpp - the internal contract for named shared memory segments.
//
// posix/shared_memory.cpp and win32/shared_memory.cpp implement these functions, in this order.
// A segment is an OS object reached by name (a /dev/shm entry on POSIX, a pagefile-backed
// file mapping on Windows), held open by a Handle (fd / mapping HANDLE), and seen through a
// view mapped into the address space. Names given here are the platform names without any
// decoration: common/ strips the POSIX leading '/' and the functions below add it back.
// Everything is noexcept and reports std::error_code; common/shared_memory.cpp turns those into
// the exceptions Python raises.
#pragma once

#include <cstddef>
#include <string>
#include <system_error>

#include "handle.hpp"

namespace mp::sys {

// The prefix of generated names, as CPython spells it ("psm_" on POSIX, "wnsm_" on Windows).
const char* shm_generated_prefix() noexcept;

// Why `name` (already stripped of the POSIX leading '/') cannot name a segment on this OS, or
// nullptr when it can: a separator character, or longer than the OS allows.
const char* shm_name_problem(const std::string& name) noexcept;

// Creates a new segment of `size` bytes, failing with file_exists when the name is taken.
std::error_code shm_create(const std::string& name, std::size_t size, Handle& out) noexcept;

// Opens an existing segment by name (no_such_file_or_directory when there is none).
std::error_code shm_attach(const std::string& name, Handle& out) noexcept;

// Maps a view of the whole segment read-write. size == 0 on entry: the segment's own size
// (POSIX: fstat; Windows: the view's size, rounded up to a page), reported back in size.
std::error_code shm_map(native_handle h, std::size_t& size, void*& addr) noexcept;

std::error_code shm_unmap(void* addr, std::size_t size) noexcept;

// Removes the name (POSIX shm_unlink). Windows has nothing to remove: the kernel deletes a
// mapping with its last handle, so this does nothing there.
std::error_code shm_remove(const std::string& name) noexcept;

// ---- the tracker (POSIX only) ---------------------------------------------------------------
// A POSIX segment outlives a creator that crashed, so a tracker process removes what such a
// creator left. Windows needs none (the kernel deletes a mapping with its last handle):
// common/ calls these only where kShmTracker is true (inside `if constexpr`, so Windows needs
// no definitions), and win32/shared_memory.cpp holds a placeholder for each.

// Crash cleanup for names this process created: tells the tracker process to forget or
// remember the name, starting the tracker on first need.
std::error_code shm_track(const std::string& name, bool track) noexcept;

// The tracker's pid, 0 when none runs.
int shm_tracker_pid() noexcept;

// Closes the pipe to the tracker and waits for it to end (it removes whatever is still
// registered, with a warning). A later shm_track starts a new one.
void shm_stop_tracker() noexcept;

// What common/shared_memory.cpp asks about this OS. kShmTracker: the functions above exist.
// kShmSlashPrefix: a name may be given with shm_open's leading '/', which common/ strips (on
// Windows a '/' is an ordinary character of a mapping's name).
#if defined(_WIN32)
inline constexpr bool kShmTracker = false;
inline constexpr bool kShmSlashPrefix = false;
#else
inline constexpr bool kShmTracker = true;
inline constexpr bool kShmSlashPrefix = true;
#endif

}  // namespace mp::sys
