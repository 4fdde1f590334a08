// win32/error.cpp - errors on Windows: GetLastError() and WSAGetLastError() numbers, in a
// category of mp's own that knows their std::errc equivalents.
//
// Win32 calls leave their failure in the thread's last-error value, Winsock calls in
// WSAGetLastError(); both are one number space (WSAE* codes are above 10000). Neither is an
// errno value, so the category below maps the ones mp meets to std::errc: portable code can
// then write ec == std::errc::broken_pipe for ERROR_BROKEN_PIPE and EPIPE alike, and
// common/errors.cpp picks Python's OSError subclass from either. Its message() is the
// system's own text (FormatMessageW), with the number.
// POSIX differs: errno values are std::errc's own, and std::generic_category() is all it needs.
#include "../common/sys/error.hpp"

#include <winsock2.h>
#include <windows.h>

#include "../common/sys/os.hpp"

namespace mp::sys {

namespace {

// The system's text for a Win32 error code, with the number.
std::string win32_error_text(int code) {
    wchar_t* buf = nullptr;
    const DWORD n = FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                                   nullptr, static_cast<DWORD>(code), 0, reinterpret_cast<wchar_t*>(&buf), 0, nullptr);
    std::string text;
    if (n && buf) {
        std::wstring w(buf, n);
        while (!w.empty() && (w.back() == L'\n' || w.back() == L'\r' || w.back() == L' ' || w.back() == L'.')) w.pop_back();
        text = narrow(w);
    }
    if (buf) LocalFree(buf);
    return (text.empty() ? "Win32 error" : text) + " (" + std::to_string(code) + ")";
}

class Win32Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "win32"; }
    std::string message(int code) const override { return win32_error_text(code); }
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

const std::error_category& win32_category() noexcept {
    static const Win32Category category;
    return category;
}

}  // namespace

std::error_code last_error() noexcept { return {static_cast<int>(GetLastError()), win32_category()}; }

std::error_code os_error(int code) noexcept { return {code, win32_category()}; }

std::error_code last_socket_error() noexcept { return {WSAGetLastError(), win32_category()}; }


}  // namespace mp::sys
