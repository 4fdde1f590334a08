// common/sys/fifo.hpp - the internal contract for named pipes (mp::NamedPipe): a POSIX FIFO
// (mkfifo) or a Windows named pipe (CreateNamedPipeW) behind one interface.
//
// posix/fifo.cpp and win32/fifo.cpp implement these functions, in this order. Everything here
// is noexcept and reports std::error_code; common/fifo.cpp adds buffering, lines and the
// exceptions. Once open, an end is a PipeEnd and is read and written with the functions of
// sys/pipe.hpp (pipe_read, pipe_read_some, pipe_write, pipe_poll), which already know both a
// FIFO fd and an overlapped pipe HANDLE.
//
// The roles are the same on both systems: the *creator* makes the name (fifo_create), then
// waits for its peer (fifo_accept); the *peer* opens the existing name (fifo_open). Each side
// says whether it reads or writes; the two must choose opposite directions.
#pragma once

#include <string>
#include <system_error>

#include "pipe.hpp"

namespace mp::sys {

// The OS name a user's name maps to. POSIX: an absolute path is taken as it is; a bare name
// (no '/') becomes <$TMPDIR or /tmp>/mp-fifo-<name>. Windows: \\.\pipe\<name>; a name that
// already starts with \\.\pipe\ is taken as it is. An empty name, a relative path with '/' on
// POSIX, or a name with a backslash on Windows (pipe names may not hold one) is
// std::errc::invalid_argument.
std::error_code fifo_path(const std::string& name, std::string& out) noexcept;

// Makes the name and, on Windows, the one server instance that owns it; nothing waits yet.
// POSIX: mkfifo(path, 0600); an existing path is std::errc::file_exists. Windows: the server
// end, overlapped, with FILE_FLAG_FIRST_PIPE_INSTANCE and an owner-only DACL; a name that some
// pipe already holds is std::errc::file_exists. `server` is filled only on Windows (POSIX
// opens the FIFO in fifo_accept).
std::error_code fifo_create(const std::string& path, bool reader, PipeEnd& server) noexcept;

// The creator waits until the deadline for the peer; end is the connected end on return.
// POSIX opens the FIFO it made (see posix/fifo.cpp for how a timed open works), Windows waits
// in ConnectNamedPipe on `end` (the server from fifo_create). No peer in time:
// std::errc::timed_out.
std::error_code fifo_accept(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept;

// The peer opens an existing name, waiting until the deadline for the creator to be ready.
// No such name: std::errc::no_such_file_or_directory; a path that exists but is no FIFO
// (POSIX): std::errc::invalid_argument; no room in time: std::errc::timed_out.
std::error_code fifo_open(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept;

// Removes the name. POSIX: unlink (ends already open go on working; a missing path is
// no_such_file_or_directory). Windows: nothing to do, the name ends with its server handle.
std::error_code fifo_remove(const std::string& path) noexcept;


}  // namespace mp::sys
