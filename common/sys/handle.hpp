// common/sys/handle.hpp - the internal contract for owned OS handles, anonymous pipes, and
// each OS's one way of waiting for I/O until a deadline.
//
// posix/handle.cpp and win32/handle.cpp implement these functions, in this order. Everything
// here is noexcept and reports std::error_code (sys/error.hpp); common/ turns failures into
// exceptions. These headers are internal: they may name native types, public headers may not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>
#include <utility>

#include "deadline.hpp"

#if defined(_WIN32)
struct _OVERLAPPED;  // <windows.h>
#else
struct iovec;   // <sys/uio.h>
struct pollfd;  // <poll.h>
#endif

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
// non-inheritable: what a child's stream is given for "discard" (subprocess.DEVNULL, and the
// resource tracker's standard streams).
std::error_code open_null_device(Handle& out) noexcept;

// A file opened for a child's standard stream (subprocess redirects), close-on-exec /
// non-inheritable. read: it must exist; write: created or truncated; append: created, every
// write lands at its end (O_APPEND; FILE_APPEND_DATA). Created files get mode 0666 less the
// umask (POSIX). Shared for reading, writing and deleting (Windows), as a POSIX file is.
enum class FileMode { read, write, append };
std::error_code open_file(const std::string& path, FileMode mode, Handle& out) noexcept;

#if !defined(_WIN32)
// writev() with SIGPIPE held off for the calling thread: a reader that has gone away gives
// EPIPE (in errno, with -1 returned), never a signal. POSIX-only: Windows has no SIGPIPE.
long writev_without_sigpipe(int fd, const ::iovec* iov, int count) noexcept;
#endif
#if defined(_WIN32)
// writev_without_sigpipe() is POSIX-only: Windows has no SIGPIPE.
#endif

// Writes all n bytes, retrying on EINTR and short writes. A closed reader is
// std::errc::broken_pipe (never SIGPIPE).
std::error_code write_all(native_handle h, const void* data, std::size_t n) noexcept;


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

// Waits until at least one of hs[0..n) is ready or the deadline passes, and sets ready[i] to
// 1 for each that is (0 for the others). What "ready" means is the OS's own notion, and the
// two differ:
//   POSIX    poll(2) readability: a pipe or socket with bytes or end of file, a pidfd whose
//            process has ended. Any number of handles.
//   Windows  a signalled waitable object (a process that has ended, an event). Pipes and
//            sockets are not waitable objects: mp::wait gives them to wait_ready
//            (sys/connection.hpp) instead. Any number of handles (more than
//            MAXIMUM_WAIT_OBJECTS are waited for in groups).
// Returning with no handle ready means the deadline passed.
std::error_code wait_handles(const native_handle* hs, std::size_t n, const Deadline& deadline,
                             unsigned char* ready) noexcept;

// ---- each OS's deadline-and-poll helper: every blocking path waits through these ---------

#if !defined(_WIN32)
// POSIX: poll(2) over fds[0..n) until at least one has revents or the deadline passes; EINTR
// restarts the wait with the time left, and a poll that returns a little early (it never
// does on Linux, but the rounding is the caller's otherwise) is resumed. ready: how many have
// revents, 0 when the deadline passed. Deadline::now() polls once.
std::error_code poll_until(::pollfd* fds, std::size_t n, const Deadline& deadline, int& ready) noexcept;
#else
// poll_until() is POSIX-only: Windows waits on objects (wait_objects) and on overlapped I/O
// (finish_overlapped), not on descriptors.
#endif

#if defined(_WIN32)
// Windows: WaitForMultipleObjects(hs[0..n), any) until one is signalled or the deadline
// passes, in calls of at most Deadline::wait_ms() (a wait that ends early by the timer's tick
// is resumed). signalled: the index of the first signalled (or abandoned) handle, n when the
// deadline passed. At most MAXIMUM_WAIT_OBJECTS (64) handles.
std::error_code wait_objects(const native_handle* hs, std::size_t n, const Deadline& deadline,
                             std::size_t& signalled) noexcept;

// Windows: finishes an overlapped ReadFile, WriteFile or ConnectNamedPipe started on h with
// ov (ov.hEvent set): waits for it until the deadline, and when the deadline passes first
// cancels it (CancelIoEx) and waits for the cancellation to land, so that ov and the buffer
// are free again either way. ok and error are what GetOverlappedResult said (error is 0 when
// ok; ERROR_OPERATION_ABORTED when it was cancelled with nothing moved), moved the bytes it
// moved, completed and cancelled alike. The returned error_code is only for a failed wait.
std::error_code finish_overlapped(native_handle h, ::_OVERLAPPED& ov, const Deadline& deadline, bool& ok,
                                  unsigned long& error, unsigned long& moved) noexcept;
#else
// wait_objects() and finish_overlapped() are Windows-only: POSIX waits on descriptors with
// poll_until.
#endif

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
