// common/socket_internal.hpp - shared by common/socket.cpp and common/listener.cpp: the
// portable Address checked and turned into the sys layer's form, and a timed wait helper.
#pragma once

#include <chrono>
#include <string>

#include "mp/socket.hpp"
#include "sys/deadline.hpp"
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

}  // namespace mp::detail
