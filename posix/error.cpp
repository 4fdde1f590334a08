// posix/error.cpp - errors on POSIX: errno, in std::generic_category().
//
// Every POSIX call reports its failure in errno (the pthread functions return the same
// numbers), and the C++ library already has the category for them, whose values are
// std::errc's own. Sockets are descriptors and report through errno like the rest.
// Windows differs: GetLastError() and WSAGetLastError() numbers are not errno values, so
// win32/error.cpp defines a category that maps them to std::errc.
#include "../common/sys/error.hpp"

#include <cerrno>

namespace mp::sys {

std::error_code last_error() noexcept { return {errno, std::generic_category()}; }

std::error_code os_error(int code) noexcept { return {code, std::generic_category()}; }

std::error_code last_socket_error() noexcept {
    // EWOULDBLOCK may be a number of its own (it is EAGAIN on Linux): give one answer.
    if (errno == EWOULDBLOCK) return std::make_error_code(std::errc::operation_would_block);
    return last_error();
}

}  // namespace mp::sys
