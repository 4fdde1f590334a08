// common/sys/error.hpp - how the platform layer reports a failure: one name per job, the same
// on both sides. posix/error.cpp and win32/error.cpp implement these functions, in this order.
//
// POSIX reports errno values in std::generic_category(). Windows reports GetLastError() and
// WSAGetLastError() values (one number space) in a category of its own (win32/error.cpp) that
// knows their std::errc equivalents, so common/ compares either side's codes with std::errc
// alike (ec == std::errc::permission_denied for EACCES and ERROR_ACCESS_DENIED) and
// raise_os_error picks Python's OSError subclass the same way.
#pragma once

#include <system_error>

namespace mp::sys {

// The calling thread's last error: errno / GetLastError().
std::error_code last_error() noexcept;

// An error the OS handed back as a number: an errno value (POSIX; also what the pthread
// functions return) / a Win32 error code (Windows).
std::error_code os_error(int code) noexcept;

// The last error of a socket call: errno / WSAGetLastError(). A call that would block
// (EAGAIN, EWOULDBLOCK, WSAEWOULDBLOCK) compares equal to std::errc::operation_would_block.
std::error_code last_socket_error() noexcept;

}  // namespace mp::sys
