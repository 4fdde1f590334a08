// mp/errors.hpp - the exception types of mp, named after Python's.
//
// Python code catches ValueError, OSError, EOFError, queue.Empty ...; mp code catches the
// same names. Each derives from the closest standard exception so that generic C++ handlers
// (std::invalid_argument, std::system_error, std::runtime_error) still see them.
// OSError carries the errno (POSIX) or GetLastError (Windows) value as a std::error_code, so
// e.code().message() is the operating system's own text.
//
// std::error_code forms. Where failing is a routine outcome and not a bug (an empty or full
// queue, a peer that closed, a lock whose owner died, a wait that ran out of time), the call has
// an overload whose last parameter is `std::error_code& ec`, in the style of std::filesystem:
// it reports that failure in ec instead of throwing, and clears ec when it succeeds. The rule:
//   - what the throwing form raises as an OSError (or a subclass: BrokenPipeError,
//     ConnectionResetError, OwnerDeadError ...) is ec = that OSError's code(): errno /
//     GetLastError in their categories, so compare with std::errc (ec == std::errc::broken_pipe
//     on both systems);
//   - EOFError is ec = mp::errc::end_of_file; queue::Empty and queue::Full are mp::errc::
//     queue_empty and queue_full; TimeoutError and subprocess::TimeoutExpired are
//     std::errc::timed_out; a peer that closed in the middle of a message (DecodeError from
//     the throwing form) is mp::errc::truncated_message;
//   - everything else still throws, as it is a bug in the caller or a broken peer: ValueError
//     (a negative timeout, a closed Queue, a bad offset), TypeError (receiving another type
//     than was sent), RuntimeError (a lock used by a thread that does not hold it),
//     DecodeError of a message that arrived whole but does not decode, std::bad_alloc.
// The calls that have such forms: Queue/JoinableQueue get/get_nowait/put/put_nowait (and the
// *_encoded forms), Connection send/send_bytes/recv/recv_bytes, Lock and RLock acquire,
// subprocess::Popen wait(timeout) and communicate. (SimpleQueue has none: it has no failure
// but a bug, as its put and get wait without limit.)
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <system_error>

namespace mp {

// Bad argument value (Python ValueError).
class ValueError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Wrong kind of object (Python TypeError), e.g. an argument that cannot be encoded for spawn.
class TypeError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// A call made in the wrong state (Python RuntimeError), e.g. set_start_method twice.
class RuntimeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// An operation this platform does not have (Python NotImplementedError), e.g. a POSIX
// scheduling policy on Windows.
class NotImplementedError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// A key or index that names nothing (Python LookupError, KeyError, IndexError), e.g. in a
// Manager's dict or list.
class LookupError : public std::out_of_range {
public:
    using std::out_of_range::out_of_range;
};
class KeyError : public LookupError {
public:
    using LookupError::LookupError;
};
class IndexError : public LookupError {
public:
    using LookupError::LookupError;
};

// multiprocessing.ProcessError and its subclasses.
class ProcessError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
class AuthenticationError : public ProcessError {
public:
    using ProcessError::ProcessError;
};
class TimeoutError : public ProcessError {
public:
    using ProcessError::ProcessError;
};

// The other end has gone away with nothing left to read (Python EOFError).
class EOFError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Input that the codec cannot decode: truncated, oversized, or hostile. offset() is the byte
// position in the input at which decoding failed.
class DecodeError : public std::runtime_error {
public:
    DecodeError(const std::string& what, std::size_t offset)
        : std::runtime_error(what + " (at byte " + std::to_string(offset) + ")"), offset_(offset) {}
    std::size_t offset() const noexcept { return offset_; }

private:
    std::size_t offset_;
};

// An operating-system call failed (Python OSError). code() holds errno or GetLastError.
class OSError : public std::system_error {
public:
    using std::system_error::system_error;
};
class PermissionError : public OSError {
public:
    using OSError::OSError;
};
class ProcessLookupError : public OSError {
public:
    using OSError::OSError;
};
class FileNotFoundError : public OSError {
public:
    using OSError::OSError;
};
class FileExistsError : public OSError {
public:
    using OSError::OSError;
};
// Python's ConnectionError family: a peer that went away, refused or reset a connection.
class ConnectionError : public OSError {
public:
    using OSError::OSError;
};
class BrokenPipeError : public ConnectionError {
public:
    using ConnectionError::ConnectionError;
};
class ConnectionRefusedError : public ConnectionError {
public:
    using ConnectionError::ConnectionError;
};
class ConnectionResetError : public ConnectionError {
public:
    using ConnectionError::ConnectionError;
};
class ConnectionAbortedError : public ConnectionError {
public:
    using ConnectionError::ConnectionError;
};
// A non-blocking operation (a socket with timeout 0) that would have had to wait.
class BlockingIOError : public OSError {
public:
    using OSError::OSError;
};
class InterruptedError : public OSError {
public:
    using OSError::OSError;
};

// Throws the OSError subclass that matches ec (PermissionError for EACCES/EPERM or
// ERROR_ACCESS_DENIED, ...), with `what` naming the operation and its object.
[[noreturn]] void raise_os_error(std::error_code ec, const std::string& what);

// The codes of mp's own category (see the top of this file): the failures that are not an
// operating-system error. 0 is success, as in every category.
enum class errc {
    end_of_file = 1,    // the peer closed the connection and nothing is left to read (EOFError)
    truncated_message,  // the peer closed in the middle of a message (the connection is closed)
    queue_empty,        // no item came before the timeout, or none was there (queue::Empty)
    queue_full,         // no room came before the timeout, or none was there (queue::Full)
};

// The category of mp::errc: name() is "mp".
const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace mp

// ec == mp::errc::queue_empty, and std::error_code ec = mp::errc::end_of_file, compile.
namespace std {
template <>
struct is_error_code_enum<mp::errc> : true_type {};
}  // namespace std
