// win32/named_pipe.cpp - named pipes on Windows: \\.\pipe\<name>, CreateNamedPipeW and
// CreateFileW, for mp::NamedPipe and for the Listener's default family.
//
// A Windows named pipe is not a file: its name lives in the kernel's \\.\pipe\ namespace (the
// Named Pipe File System) and exists only while a server instance of it is open. The creator
// is the server: CreateNamedPipeW makes an instance (overlapped, byte mode, local clients
// only), then ConnectNamedPipe waits for a client, overlapped so that the wait can time out
// (CancelIoEx ends it). The peer is the client: CreateFileW opens the name, and while every
// instance is taken it gets ERROR_PIPE_BUSY and waits in WaitNamedPipeW. When the server handle
// closes, the name is gone: there is nothing to unlink and nothing left behind after a crash.
// A NamedPipe is one one-way instance; a Listener makes one duplex instance per client, the
// next before the last is handed over. Both go through the same three steps below
// (make_instance, wait_for_client, open_client). Squatting (someone else creating the name
// first, to read what we write) is prevented by FILE_FLAG_FIRST_PIPE_INSTANCE (our create
// fails if the name exists) and eavesdropping by a DACL that grants access to our own user
// only. Wine 8 enforces neither (see WINE-NOTES); the code is written for Windows and the tests
// skip those two checks under Wine. A closed peer is an error code, never a signal:
// ERROR_BROKEN_PIPE on read (end of file), ERROR_NO_DATA on write (broken pipe). No EINTR.
// POSIX differs: a FIFO is a file-system node made by mkfifo that outlives every process until
// unlinked, protected by its file mode; creator and peer are equal, both just open(2) the path,
// which blocks until the other direction has an opener too; and a Listener uses AF_UNIX
// sockets. The uniquely named pair behind mp::Pipe is in win32/connection.cpp.
#include "../common/sys/named_pipe.hpp"

#include <windows.h>

#include "../common/sys/error.hpp"
#include "../common/sys/os.hpp"

namespace mp::sys {

namespace {

const std::string kPrefix = "\\\\.\\pipe\\";

// A server instance of `path`: overlapped, byte mode, local clients only, owner-only DACL.
// The error is GetLastError()'s own, for the caller to read.
std::error_code make_instance(const std::string& path, DWORD open_mode, DWORD max_instances, PipeEnd& out) noexcept try {
    std::error_code sec_ec;
    SECURITY_ATTRIBUTES sa{sizeof sa, owner_only_security_descriptor(sec_ec), FALSE};  // not inheritable
    if (sec_ec) return sec_ec;
    const DWORD buffer = 64 * 1024;
    HANDLE h = CreateNamedPipeW(widen(path).c_str(), open_mode | FILE_FLAG_OVERLAPPED,
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                max_instances, buffer, buffer, 0, &sa);
    if (h == INVALID_HANDLE_VALUE) return last_error();
    out.h.reset(h);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// Waits in an overlapped ConnectNamedPipe until a client comes or the deadline passes
// (timed_out; the instance stays usable).
std::error_code wait_for_client(PipeEnd& instance, const Deadline& deadline) noexcept {
    Handle ev(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    if (!ev) return last_error();
    OVERLAPPED ov{};
    ov.hEvent = ev.get();
    if (ConnectNamedPipe(instance.h.get(), &ov)) return {};
    const DWORD e = GetLastError();
    // PIPE_CONNECTED: a client came between CreateNamedPipeW and now. NO_DATA: it came and
    // already went; reads then see end of file, as for any closed peer.
    if (e == ERROR_PIPE_CONNECTED || e == ERROR_NO_DATA) return {};
    if (e != ERROR_IO_PENDING) return os_error(e);
    bool ok = false;
    unsigned long err = 0, ignored = 0;
    if (auto ec = finish_overlapped(instance.h.get(), ov, deadline, ok, err, ignored)) return ec;
    // A client that won the race with the cancel is kept.
    if (ok || err == ERROR_PIPE_CONNECTED || err == ERROR_NO_DATA) return {};
    if (err == ERROR_OPERATION_ABORTED) return std::make_error_code(std::errc::timed_out);
    return os_error(static_cast<int>(err));
}

// Opens the client end of `path`, waiting in WaitNamedPipeW until the deadline while every
// instance is taken (timed_out). No instance at all: FILE_NOT_FOUND, no creator holds the name.
std::error_code open_client(const std::string& path, DWORD access, const Deadline& deadline, PipeEnd& end) noexcept try {
    const std::wstring wpath = widen(path);
    for (;;) {
        // SECURITY_IDENTIFICATION: the server may learn who connected, never act as the client
        // (a squatter that made the pipe first could otherwise take our token with
        // ImpersonateNamedPipeClient before any authentication).
        HANDLE h = CreateFileW(wpath.c_str(), access, 0, nullptr, OPEN_EXISTING,
                               FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
        if (h != INVALID_HANDLE_VALUE) {
            end.h.reset(h);
            return {};
        }
        const DWORD e = GetLastError();
        if (e != ERROR_PIPE_BUSY) return os_error(e);
        if (deadline.passed()) return std::make_error_code(std::errc::timed_out);
        const long left = deadline.wait_ms();
        const DWORD wait = left < 0 ? NMPWAIT_WAIT_FOREVER : static_cast<DWORD>(left == 0 ? 1 : left);
        if (!WaitNamedPipeW(wpath.c_str(), wait)) {
            const DWORD w = GetLastError();
            if (w != ERROR_SEM_TIMEOUT && w != WAIT_TIMEOUT) return os_error(w);  // the loop checks the deadline
        }
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

}  // namespace

std::error_code named_pipe_path(const std::string& name, std::string& out) noexcept try {
    std::string rest = name;
    if (name.size() >= kPrefix.size() && _strnicmp(name.c_str(), kPrefix.c_str(), kPrefix.size()) == 0)
        rest = name.substr(kPrefix.size());
    // A pipe name may hold any character but a backslash.
    if (rest.empty() || rest.find('\\') != std::string::npos) return std::make_error_code(std::errc::invalid_argument);
    out = kPrefix + rest;
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

const char* named_pipe_name_rule() noexcept {
    return "it must be non-empty and hold no backslash after \\\\.\\pipe\\";
}

std::error_code named_pipe_create(const std::string& path, bool reader, PipeEnd& server) noexcept {
    const DWORD mode = (reader ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND) | FILE_FLAG_FIRST_PIPE_INSTANCE;
    const std::error_code ec = make_instance(path, mode, 1, server);
    // FIRST_PIPE_INSTANCE refuses an existing name with ACCESS_DENIED, and the instance limit
    // of 1 with PIPE_BUSY: both mean that the name is taken.
    if (ec == os_error(ERROR_ACCESS_DENIED) || ec == os_error(ERROR_PIPE_BUSY)) return std::make_error_code(std::errc::file_exists);
    return ec;
}

std::error_code named_pipe_accept(const std::string& /*path*/, bool /*reader*/, PipeEnd& end, const Deadline& deadline) noexcept {
    return wait_for_client(end, deadline);  // `end` is the server instance from named_pipe_create
}

std::error_code named_pipe_open(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept {
    // FILE_READ_ATTRIBUTES lets a write-only end ask PeekNamedPipe whether the reader is there.
    return open_client(path, reader ? GENERIC_READ : GENERIC_WRITE | FILE_READ_ATTRIBUTES, deadline, end);
}

const char* named_pipe_open_timeout_note() noexcept { return " (the creator serves another peer)"; }

// Nothing to unlink: the name ends when the creator's server handle is closed.
std::error_code named_pipe_remove(const std::string& /*path*/) noexcept { return {}; }

std::error_code listener_pipe_create(const std::string& path, bool first, PipeEnd& instance) noexcept {
    return make_instance(path, PIPE_ACCESS_DUPLEX | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                         PIPE_UNLIMITED_INSTANCES, instance);
}

std::error_code listener_pipe_accept(PipeEnd& instance, const Deadline& deadline) noexcept {
    return wait_for_client(instance, deadline);
}

std::error_code listener_pipe_connect(const std::string& path, const Deadline& deadline, PipeEnd& out) noexcept {
    return open_client(path, GENERIC_READ | GENERIC_WRITE, deadline, out);
}

}  // namespace mp::sys
