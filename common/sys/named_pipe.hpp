// common/sys/named_pipe.hpp - the internal contract for named pipes: mp::NamedPipe (a POSIX FIFO
// made with mkfifo, or a Windows named pipe made with CreateNamedPipeW) and, on Windows, the
// Listener's default family (\\.\pipe\name).
//
// posix/named_pipe.cpp and win32/named_pipe.cpp implement these functions, in this order.
// Everything here is noexcept and reports std::error_code; common/named_pipe.cpp adds
// buffering, lines and the exceptions, common/listener.cpp the handshake. Once open, an end is
// a PipeEnd and is read and written with the functions of sys/connection.hpp (pipe_read,
// pipe_read_some, pipe_write, pipe_poll), which already know both a FIFO fd and an overlapped
// pipe HANDLE.
//
// The roles are the same on both systems: the *creator* makes the name (named_pipe_create),
// then waits for its peer (named_pipe_accept); the *peer* opens the existing name
// (named_pipe_open). Each side says whether it reads or writes; the two must choose opposite
// directions.
#pragma once

#include <string>
#include <system_error>

#include "connection.hpp"

namespace mp::sys {

// The OS name a user's name maps to. POSIX: an absolute path is taken as it is; a bare name
// (no '/') becomes <$TMPDIR or /tmp>/mp-fifo-<name>. Windows: \\.\pipe\<name>; a name that
// already starts with \\.\pipe\ is taken as it is. An empty name, a relative path with '/' on
// POSIX, or a name with a backslash on Windows (pipe names may not hold one) is
// std::errc::invalid_argument.
std::error_code named_pipe_path(const std::string& name, std::string& out) noexcept;

// The rule named_pipe_path enforces, in words, for the ValueError a bad name gets.
const char* named_pipe_name_rule() noexcept;

// Makes the name and, on Windows, the one server instance that owns it; nothing waits yet.
// POSIX: mkfifo(path, 0600); an existing path is std::errc::file_exists. Windows: the server
// end, overlapped, with FILE_FLAG_FIRST_PIPE_INSTANCE and an owner-only DACL; a name that some
// pipe already holds is std::errc::file_exists. `server` is filled only on Windows (POSIX
// opens the FIFO in named_pipe_accept).
std::error_code named_pipe_create(const std::string& path, bool reader, PipeEnd& server) noexcept;

// The creator waits until the deadline for the peer; end is the connected end on return.
// POSIX opens the FIFO it made (see posix/named_pipe.cpp for how a timed open works), Windows
// waits in ConnectNamedPipe on `end` (the server from named_pipe_create). No peer in time:
// std::errc::timed_out.
std::error_code named_pipe_accept(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept;

// The peer opens an existing name, waiting until the deadline for the creator to be ready.
// No such name: std::errc::no_such_file_or_directory; a path that exists but is no FIFO
// (POSIX): std::errc::invalid_argument; no room in time: std::errc::timed_out.
std::error_code named_pipe_open(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept;

// What a timed-out named_pipe_open means beyond "the peer was not there", for the
// TimeoutError: "" on POSIX; on Windows the one instance is taken by another peer.
const char* named_pipe_open_timeout_note() noexcept;

// Removes the name. POSIX: unlink (ends already open go on working; a missing path is
// no_such_file_or_directory). Windows: nothing to do, the name ends with its server handle.
std::error_code named_pipe_remove(const std::string& path) noexcept;

// ---- the Listener's named pipes (Windows only) ------------------------------------------------
// On Windows a Listener's default family is a named pipe: one duplex instance per client, the
// next made before the last is handed over, so that a client never finds the name gone. They
// are made, waited for and opened by the same code as mp::NamedPipe's (win32/named_pipe.cpp).
// POSIX Listeners use AF_UNIX sockets (sys/socket.hpp) instead: common/ calls these only where
// kListenerPipes is true (inside `if constexpr`, so POSIX needs no definitions), and
// posix/named_pipe.cpp holds a placeholder for each.
#if defined(_WIN32)
inline constexpr bool kListenerPipes = true;
#else
inline constexpr bool kListenerPipes = false;
#endif

// Makes one instance of a Listener's pipe: duplex, overlapped, any number of instances, the
// owner-only DACL. first: the Listener's first, made with FILE_FLAG_FIRST_PIPE_INSTANCE so
// that a squatter who made the name first is an error.
std::error_code listener_pipe_create(const std::string& path, bool first, PipeEnd& instance) noexcept;

// Waits until the deadline for a client to connect to the instance (named_pipe_accept's wait);
// none in time: std::errc::timed_out, and the instance is still usable.
std::error_code listener_pipe_accept(PipeEnd& instance, const Deadline& deadline) noexcept;

// A Client's duplex end, opened as named_pipe_open opens one, waiting until the deadline while
// every instance is busy.
std::error_code listener_pipe_connect(const std::string& path, const Deadline& deadline, PipeEnd& out) noexcept;

}  // namespace mp::sys
