// win32/fifo.cpp - named pipes on Windows: \\.\pipe\<name>, CreateNamedPipeW and CreateFileW.
//
// A Windows named pipe is not a file: its name lives in the kernel's \\.\pipe\ namespace (the
// Named Pipe File System) and exists only while a server instance of it is open. The creator
// is the server: CreateNamedPipeW makes an instance (here exactly one, overlapped, byte mode,
// local clients only), then ConnectNamedPipe waits for a client, overlapped so that the wait
// can time out (CancelIoEx ends it). The peer is the client: CreateFileW opens the name, and
// while the one instance is taken it gets ERROR_PIPE_BUSY and waits in WaitNamedPipeW. When the
// server handle closes, the name is gone: there is nothing to unlink and nothing left behind
// after a crash. Squatting (someone else creating the name first, to read what we write) is
// prevented by FILE_FLAG_FIRST_PIPE_INSTANCE (our create fails if the name exists) and eavesdropping
// by a DACL that grants access to our own user only. Wine 8 enforces neither (see
// WINE-NOTES); the code is written for Windows and the tests skip those two checks under Wine.
// A closed peer is an error code, never a signal: ERROR_BROKEN_PIPE on read (end of file),
// ERROR_NO_DATA on write (broken pipe). There is no EINTR.
// POSIX differs: a FIFO is a file-system node made by mkfifo that outlives every process until
// unlinked, protected by its file mode; creator and peer are equal, both just open(2) the path,
// which blocks until the other direction has an opener too.
#include "../common/sys/fifo.hpp"

#include <windows.h>

#include "../common/sys/os.hpp"
#include "../common/sys/error.hpp"

namespace mp::sys {

namespace {

const std::string kPrefix = "\\\\.\\pipe\\";

}  // namespace

std::error_code fifo_path(const std::string& name, std::string& out) noexcept try {
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

std::error_code fifo_create(const std::string& path, bool reader, PipeEnd& server) noexcept try {
    std::error_code sec_ec;
    SECURITY_ATTRIBUTES sa{sizeof sa, owner_only_security_descriptor(sec_ec), FALSE};
    if (sec_ec) return sec_ec;
    const DWORD buffer = 64 * 1024;
    const DWORD open_mode =
        (reader ? PIPE_ACCESS_INBOUND : PIPE_ACCESS_OUTBOUND) | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE;
    HANDLE h = CreateNamedPipeW(widen(path).c_str(), open_mode,
                                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1, buffer,
                                buffer, 0, &sa);
    if (h == INVALID_HANDLE_VALUE) {
        const DWORD e = GetLastError();
        // FIRST_PIPE_INSTANCE refuses an existing name with ACCESS_DENIED, and the instance
        // limit of 1 with PIPE_BUSY: both mean that the name is taken.
        if (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY) return std::make_error_code(std::errc::file_exists);
        return os_error(e);
    }
    server.h.reset(h);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code fifo_accept(const std::string& /*path*/, bool /*reader*/, PipeEnd& end, const Deadline& deadline) noexcept {
    Handle ev(CreateEventW(nullptr, TRUE, FALSE, nullptr));
    if (!ev) return last_error();
    OVERLAPPED ov{};
    ov.hEvent = ev.get();
    if (ConnectNamedPipe(end.h.get(), &ov)) return {};
    const DWORD e = GetLastError();
    // The client came before we asked (and may already have gone: then reads see end of file).
    if (e == ERROR_PIPE_CONNECTED || e == ERROR_NO_DATA) return {};
    if (e != ERROR_IO_PENDING) return os_error(e);
    bool ok = false;
    unsigned long err = 0, ignored = 0;
    if (auto ec = finish_overlapped(end.h.get(), ov, deadline, ok, err, ignored)) return ec;
    // A cancel that lost the race with a client that just connected: keep the client.
    if (ok || err == ERROR_NO_DATA) return {};
    if (err == ERROR_OPERATION_ABORTED) return std::make_error_code(std::errc::timed_out);
    return os_error(static_cast<int>(err));
}

std::error_code fifo_open(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept try {
    const std::wstring wpath = widen(path);
    // FILE_READ_ATTRIBUTES lets a write-only end ask PeekNamedPipe whether the reader is there.
    const DWORD access = reader ? GENERIC_READ : GENERIC_WRITE | FILE_READ_ATTRIBUTES;
    for (;;) {
        // SECURITY_IDENTIFICATION: whoever created the pipe may not act as this process.
        HANDLE h = CreateFileW(wpath.c_str(), access, 0, nullptr, OPEN_EXISTING,
                               FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, nullptr);
        if (h != INVALID_HANDLE_VALUE) {
            end.h.reset(h);
            return {};
        }
        const DWORD e = GetLastError();
        if (e != ERROR_PIPE_BUSY) return os_error(e);  // FILE_NOT_FOUND: no creator holds the name
        // The instance is taken by another client: wait until it is free again.
        if (deadline.passed()) return std::make_error_code(std::errc::timed_out);
        const long left = deadline.wait_ms();
        const DWORD wait = left < 0 ? NMPWAIT_WAIT_FOREVER : static_cast<DWORD>(left == 0 ? 1 : left);
        if (!WaitNamedPipeW(wpath.c_str(), wait)) {
            const DWORD w = GetLastError();
            if (w != ERROR_SEM_TIMEOUT && w != WAIT_TIMEOUT) return os_error(w);
        }
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code fifo_remove(const std::string& /*path*/) noexcept {
    // Nothing to unlink: the name ends when the creator's server handle is closed.
    return {};
}

}  // namespace mp::sys
