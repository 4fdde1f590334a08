// common/errors.cpp - OSError subclass selection and the Win32 error category.
#include "mp/errors.hpp"

#include "sys/os.hpp"

namespace mp {

void raise_os_error(std::error_code ec, const std::string& what) {
    if (ec == std::errc::permission_denied || ec == std::errc::operation_not_permitted)
        throw PermissionError(ec, what);
    if (ec == std::errc::no_such_process) throw ProcessLookupError(ec, what);
    if (ec == std::errc::no_such_file_or_directory) throw FileNotFoundError(ec, what);
    if (ec == std::errc::file_exists) throw FileExistsError(ec, what);
    if (ec == std::errc::broken_pipe) throw BrokenPipeError(ec, what);
    if (ec == std::errc::connection_refused) throw ConnectionRefusedError(ec, what);
    if (ec == std::errc::connection_reset) throw ConnectionResetError(ec, what);
    if (ec == std::errc::connection_aborted) throw ConnectionAbortedError(ec, what);
    if (ec == std::errc::operation_would_block || ec == std::errc::resource_unavailable_try_again)
        throw BlockingIOError(ec, what);
    if (ec == std::errc::interrupted) throw InterruptedError(ec, what);
    throw OSError(ec, what);
}

namespace {

class Win32Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "win32"; }
    std::string message(int code) const override { return sys::win32_error_text(code); }
    // Lets portable code compare a GetLastError value with std::errc, e.g.
    // ec == std::errc::permission_denied for ERROR_ACCESS_DENIED.
    std::error_condition default_error_condition(int code) const noexcept override {
        switch (code) {
            case 2: case 3: case 161: return std::errc::no_such_file_or_directory;  // FILE/PATH_NOT_FOUND, BAD_PATHNAME
            case 5: return std::errc::permission_denied;                            // ACCESS_DENIED
            case 6: return std::errc::bad_file_descriptor;                          // INVALID_HANDLE
            case 8: case 14: return std::errc::not_enough_memory;                   // NOT_ENOUGH_MEMORY, OUTOFMEMORY
            case 50: return std::errc::not_supported;                               // NOT_SUPPORTED
            case 80: case 183: return std::errc::file_exists;                       // FILE_EXISTS, ALREADY_EXISTS
            case 87: return std::errc::invalid_argument;                            // INVALID_PARAMETER
            case 109: case 232: return std::errc::broken_pipe;                      // BROKEN_PIPE, NO_DATA
            case 258: case 1460: return std::errc::timed_out;                       // WAIT_TIMEOUT, TIMEOUT
            case 995: return std::errc::operation_canceled;                         // OPERATION_ABORTED
            case 231: return std::errc::device_or_resource_busy;                    // PIPE_BUSY
            case 267: return std::errc::not_a_directory;                            // DIRECTORY
            // Winsock's WSAE* codes share GetLastError's number space.
            case 10004: return std::errc::interrupted;                              // WSAEINTR
            case 10009: case 10038: return std::errc::not_a_socket;                 // WSAEBADF, WSAENOTSOCK
            case 10013: return std::errc::permission_denied;                        // WSAEACCES
            case 10022: return std::errc::invalid_argument;                         // WSAEINVAL
            case 10035: return std::errc::operation_would_block;                    // WSAEWOULDBLOCK
            case 10036: return std::errc::operation_in_progress;                    // WSAEINPROGRESS
            case 10047: return std::errc::address_family_not_supported;             // WSAEAFNOSUPPORT
            case 10048: return std::errc::address_in_use;                           // WSAEADDRINUSE
            case 10049: return std::errc::address_not_available;                    // WSAEADDRNOTAVAIL
            case 10050: return std::errc::network_down;                             // WSAENETDOWN
            case 10051: return std::errc::network_unreachable;                      // WSAENETUNREACH
            case 10053: return std::errc::connection_aborted;                       // WSAECONNABORTED
            case 10054: return std::errc::connection_reset;                         // WSAECONNRESET
            case 10056: return std::errc::already_connected;                        // WSAEISCONN
            case 10057: return std::errc::not_connected;                            // WSAENOTCONN
            case 10058: return std::errc::broken_pipe;                              // WSAESHUTDOWN
            case 10060: return std::errc::timed_out;                                // WSAETIMEDOUT
            case 10061: return std::errc::connection_refused;                       // WSAECONNREFUSED
            case 10065: return std::errc::host_unreachable;                         // WSAEHOSTUNREACH
            default: return {code, *this};
        }
    }
};

}  // namespace

const std::error_category& win32_category() noexcept {
    static const Win32Category category;
    return category;
}

}  // namespace mp
