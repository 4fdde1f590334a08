// mp/errors.hpp - the exception types of mp, named after Python's.
//
// Python code catches ValueError, OSError, EOFError, queue.Empty ...; mp code catches the
// same names. Each derives from the closest standard exception so that generic C++ handlers
// (std::invalid_argument, std::system_error, std::runtime_error) still see them.
// OSError carries the errno (POSIX) or GetLastError (Windows) value as a std::error_code, so
// e.code().message() is the operating system's own text.
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

}  // namespace mp
