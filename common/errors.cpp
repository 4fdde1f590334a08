// common/errors.cpp - OSError subclass selection, and mp's error category (the Win32 error
// category is win32/error.cpp).
#include "mp/errors.hpp"

#include <string>

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

class MpCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "mp"; }
    std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
            case errc::end_of_file: return "end of file: the peer has closed the connection";
            case errc::truncated_message: return "truncated message: the peer closed in the middle of a message";
            case errc::queue_empty: return "the queue is empty";
            case errc::queue_full: return "the queue is full";
        }
        return "unknown mp error " + std::to_string(code);
    }
};

}  // namespace

const std::error_category& error_category() noexcept {
    static const MpCategory category;
    return category;
}

}  // namespace mp
