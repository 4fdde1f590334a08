// common/socket_internal.hpp - shared by common/socket.cpp and common/listener.cpp: the
// portable Address checked and turned into the sys layer's form, and a timed wait helper.
#pragma once

#include <chrono>
#include <string>

#include "mp/socket.hpp"
#include "sys/socket.hpp"

namespace mp::detail {

// ValueError naming `what` for a port outside 0..65535, an empty path, a family that is not a
// socket family (named_pipe).
sys::SockAddress to_sys_address(const Address& a, const std::string& what);
Address from_sys_address(const sys::SockAddress& a);
sys::SockFamily to_sys_family(AddressFamily f, const std::string& what);

// Throws the right exception for a failed socket call: ValueError for an address that does not
// fit, the OSError subclass otherwise (what names the call and its address).
[[noreturn]] void raise_socket_error(std::error_code ec, const std::string& what);

// Milliseconds left before a deadline (< 0 means no deadline: returns -1).
class Deadline {
public:
    explicit Deadline(double timeout_ms)
        : forever_(timeout_ms < 0),
          end_(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                      std::chrono::duration<double, std::milli>(forever_ ? 0 : timeout_ms))) {}
    bool forever() const noexcept { return forever_; }
    double left_ms() const {
        if (forever_) return -1;
        const double left = std::chrono::duration<double, std::milli>(end_ - std::chrono::steady_clock::now()).count();
        return left < 0 ? 0 : left;
    }
    bool passed() const { return !forever_ && std::chrono::steady_clock::now() >= end_; }

private:
    bool forever_;
    std::chrono::steady_clock::time_point end_;
};

}  // namespace mp::detail
