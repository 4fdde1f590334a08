// common/sys/handle.hpp - the internal contract for owned OS handles and anonymous pipes.
//
// posix/handle.cpp and win32/handle.cpp implement these functions, in this order. Everything
// here is noexcept and reports std::error_code (errno, or GetLastError in mp::win32_category);
// common/ turns failures into exceptions. These headers are internal: they may name native
// types, public headers may not.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

#if !defined(_WIN32)
struct iovec;  // <sys/uio.h>
#endif

namespace mp::sys {
// The length of one OS wait call (poll's int, a Win32 DWORD) for left_ms > 0 of time left:
// rounded up, so that it never ends before the deadline, and at most 2e9 ms (23 days, below
// INFINITE); callers wait again while time is left.
inline unsigned long wait_call_ms(double left_ms) noexcept {
    if (!(left_ms > 0)) return 0;
    return left_ms >= 2e9 ? 2000000000ul : static_cast<unsigned long>(std::ceil(left_ms));
}
}  // namespace mp::sys

namespace mp::sys {

#if defined(_WIN32)
using native_handle = void*;  // HANDLE
inline native_handle invalid_handle() noexcept { return nullptr; }
#else
using native_handle = int;  // file descriptor
constexpr native_handle invalid_handle() noexcept { return -1; }
#endif

std::error_code close_handle(native_handle h) noexcept;

// Owns one fd or HANDLE and closes it on destruction.
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(native_handle h) noexcept : h_(h) {}
    Handle(Handle&& o) noexcept : h_(o.release()) {}
    Handle& operator=(Handle&& o) noexcept {
        if (this != &o) reset(o.release());
        return *this;
    }
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    ~Handle() { reset(); }

    native_handle get() const noexcept { return h_; }
    bool valid() const noexcept { return h_ != invalid_handle(); }
    explicit operator bool() const noexcept { return valid(); }
    native_handle release() noexcept { return std::exchange(h_, invalid_handle()); }
    void reset(native_handle h = invalid_handle()) noexcept {
        if (valid()) close_handle(h_);
        h_ = h;
    }

private:
    native_handle h_ = invalid_handle();
};

// A one-way anonymous pipe. Both ends are close-on-exec / non-inheritable; a child receives an
// end only when it is named in a spawn request.
struct PipeEnds {
    Handle read;
    Handle write;
};
std::error_code make_pipe(PipeEnds& out) noexcept;

// The null device (/dev/null, NUL), open for reading and writing, close-on-exec /
// non-inheritable: what a child's stream is given for "discard" (subprocess.DEVNULL).
std::error_code open_null_device(Handle& out) noexcept;

// Writes all n bytes, retrying on EINTR and short writes. A closed reader is
// std::errc::broken_pipe (never SIGPIPE).
std::error_code write_all(native_handle h, const void* data, std::size_t n) noexcept;

#if !defined(_WIN32)
// writev() with SIGPIPE held off for the calling thread: a reader that has gone away gives
// EPIPE (in errno, with -1 returned), never a signal. POSIX-only: Windows has no SIGPIPE.
long writev_without_sigpipe(int fd, const ::iovec* iov, int count) noexcept;
#endif

#if defined(_WIN32)
// A security descriptor whose DACL grants access to the current user alone (and nobody else,
// not even administrators' groups), for named objects that another user must not open: named
// pipes, named events. Built once per process and never freed; nullptr with ec set on failure.
// Windows-only: POSIX gives such objects file modes (0600) instead.
void* owner_only_security_descriptor(std::error_code& ec) noexcept;
#endif

// Reads up to n bytes, retrying on EINTR, until n bytes arrived or end of file; got says how
// many arrived (got < n means end of file).
std::error_code read_full(native_handle h, void* data, std::size_t n, std::size_t& got) noexcept;

// A duplicate of a descriptor the process already holds (close-on-exec / non-inheritable).
std::error_code duplicate_handle(native_handle h, Handle& out) noexcept;

// Makes a handle this process received from its parent private again: close-on-exec (POSIX)
// or non-inheritable (Windows), so that it goes no further than this process unless passed on.
std::error_code make_private(native_handle h) noexcept;

// How many fds (POSIX: entries of /proc/self/fd) or handles (Windows: GetProcessHandleCount)
// this process holds. Tests use it to prove that nothing leaks.
std::error_code count_open_handles(std::size_t& out) noexcept;

// Waits up to timeout_ms (< 0: without limit, 0: just looks) until at least one of hs[0..n) is
// ready, and sets ready[i] to 1 for each that is (0 for the others). What "ready" means is the
// OS's own notion, and the two differ:
//   POSIX    poll(2) readability: a pipe or socket with bytes or end of file, a pidfd whose
//            process has ended. EINTR restarts the wait with the time that is left.
//   Windows  WaitForMultipleObjects: a signalled waitable object (a process that has ended, an
//            event). Pipes and sockets are not waitable objects, so mp::wait looks at
//            connections itself and gives only process sentinels here. More than 64 handles
//            (MAXIMUM_WAIT_OBJECTS) are looked at in groups, with short sleeps between rounds.
// Returning with no handle ready means the time ran out.
std::error_code wait_handles(const native_handle* hs, std::size_t n, double timeout_ms,
                             unsigned char* ready) noexcept;

}  // namespace mp::sys

namespace mp::sys {
// How the handle passed as SpawnRequest::inherit[index] is named inside the child: fd 3+index
// on POSIX, the HANDLE's own value on Windows. The child turns the number back with
// handle_from_value.
std::uintptr_t inherited_value(native_handle h, std::size_t index) noexcept;
native_handle handle_from_value(std::uintptr_t v) noexcept;
// The number a handle is (its fd, or its HANDLE's value), as the codec's HandleList holds it.
std::uintptr_t handle_to_value(native_handle h) noexcept;
}  // namespace mp::sys
