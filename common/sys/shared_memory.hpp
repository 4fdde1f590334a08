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
// The name is protected by the resource tracker (sys/tracker.hpp) from before it exists, so
// that no instant of a create leaves a segment behind if the creator dies; tracked says
// whether it is (false: the tracker could not be started, the segment is made untracked).
// POSIX makes and sizes it at a private name and links it to its own name after, so that an
// attacher never sees it before it has its size.
std::error_code shm_create(const std::string& name, std::size_t size, Handle& out, bool& tracked) noexcept;

std::error_code shm_attach(const std::string& name, Handle& out) noexcept;

// Maps a view of the whole segment read-write. size == 0 on entry: the segment's own size
// (POSIX: fstat; Windows: the view's size, rounded up to a page), reported back in size.
std::error_code shm_map(native_handle h, std::size_t& size, void*& addr) noexcept;

std::error_code shm_unmap(void* addr, std::size_t size) noexcept;

// Removes the name (POSIX shm_unlink) and forgets it in the tracker. Windows has nothing to
// remove: the kernel deletes a mapping with its last handle, so this does nothing there.
std::error_code shm_remove(const std::string& name) noexcept;

// Whether a name may be given with shm_open's leading '/', which common/ strips: POSIX. On
// Windows a '/' is an ordinary character of a mapping's name.
#if defined(_WIN32)
inline constexpr bool kShmSlashPrefix = false;
#else
inline constexpr bool kShmSlashPrefix = true;
#endif

}  // namespace mp::sys
