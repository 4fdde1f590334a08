// common/errors.cpp - OSError subclass selection (the Win32 error category is win32/error.cpp).
#include "mp/errors.hpp"


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

}  // namespace mp
