// win32/handle.cpp - HANDLEs and anonymous pipes on Windows.
//
// A HANDLE is an opaque reference into the process's handle table; unlike a POSIX fd, its
// value is not a small dense integer that a child can expect at a fixed position. Whether a
// child may receive a handle is a flag chosen at creation (bInheritHandle), and CreateProcessW
// passes either every inheritable handle or, with PROC_THREAD_ATTRIBUTE_HANDLE_LIST, exactly
// a listed few, at the same values. mp creates every handle non-inheritable and names the
// ones to pass in that list. Anonymous pipes are named pipes underneath; a closed peer shows
// up as ERROR_BROKEN_PIPE instead of a signal, so there is nothing like SIGPIPE to guard.
// Files for a child's streams are opened shared for reading, writing and deleting, as a POSIX
// file is; append opens for FILE_APPEND_DATA alone, Windows' O_APPEND.
// POSIX differs: fds are inherited unless marked close-on-exec, and a child finds passed fds
// by number (mp puts them at 3, 4, ...).
#include "../common/sys/handle.hpp"

#include <windows.h>

#include <chrono>

#include "../common/sys/error.hpp"
#include "../common/sys/os.hpp"

namespace mp::sys {

std::error_code close_handle(native_handle h) noexcept {
    if (!CloseHandle(h)) return last_error();
    return {};
}

std::error_code make_pipe(PipeEnds& out) noexcept {
    HANDLE r = nullptr, w = nullptr;
    if (!CreatePipe(&r, &w, nullptr, 0)) return last_error();  // no SECURITY_ATTRIBUTES: not inheritable
    out.read.reset(r);
    out.write.reset(w);
    return {};
}

std::error_code open_null_device(Handle& out) noexcept {
    // No SECURITY_ATTRIBUTES: not inheritable. Shared both ways, so that one NUL handle can
    // serve a child's stdin and stdout at once.
    HANDLE h = CreateFileW(L"NUL", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                           OPEN_EXISTING, 0, nullptr);
    if (h == INVALID_HANDLE_VALUE) return last_error();
    out.reset(h);
    return {};
}

std::error_code open_file(const std::string& path, FileMode mode, Handle& out) noexcept try {
    // No SECURITY_ATTRIBUTES: not inheritable. FILE_APPEND_DATA without FILE_WRITE_DATA makes
    // every write land at the end of the file, whoever else writes to it (O_APPEND).
    DWORD access = GENERIC_READ, disposition = OPEN_EXISTING;
    if (mode == FileMode::write) {
        access = GENERIC_WRITE;
        disposition = CREATE_ALWAYS;
    } else if (mode == FileMode::append) {
        access = FILE_APPEND_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE;
        disposition = OPEN_ALWAYS;
    }
    HANDLE h = CreateFileW(widen(path).c_str(), access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                           disposition, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (h == INVALID_HANDLE_VALUE) return last_error();
    out.reset(h);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// writev_without_sigpipe() is POSIX-only: Windows has no SIGPIPE (a closed reader is ERROR_NO_DATA).

std::error_code write_all(native_handle h, const void* data, std::size_t n) noexcept {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const DWORD chunk = n > 0x40000000 ? 0x40000000 : static_cast<DWORD>(n);
        DWORD put = 0;
        if (!WriteFile(h, p, chunk, &put, nullptr)) return last_error();
        p += put;
        n -= put;
    }
    return {};
}

// The DACL holds one ACE: GENERIC_ALL for the SID of the user this process runs as. The
// descriptor is absolute (it points at the ACL), so both live in one static block.
void* owner_only_security_descriptor(std::error_code& ec) noexcept {
    struct Block {
        SECURITY_DESCRIPTOR sd;
        alignas(DWORD) unsigned char acl[256];
        alignas(DWORD) unsigned char user[256];  // TOKEN_USER and its SID
        DWORD error = 0;
    };
    static Block* const block = [] {
        static Block b{};
        HANDLE token = nullptr;
        DWORD n = 0;
        auto* tu = reinterpret_cast<TOKEN_USER*>(b.user);
        if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
            b.error = GetLastError();
            return &b;
        }
        const BOOL got = GetTokenInformation(token, TokenUser, tu, sizeof b.user, &n);
        if (!got) b.error = GetLastError();
        CloseHandle(token);
        if (!got) return &b;
        auto* acl = reinterpret_cast<ACL*>(b.acl);
        if (!InitializeAcl(acl, sizeof b.acl, ACL_REVISION) ||
            !AddAccessAllowedAce(acl, ACL_REVISION, GENERIC_ALL, tu->User.Sid) ||
            !InitializeSecurityDescriptor(&b.sd, SECURITY_DESCRIPTOR_REVISION) ||
            !SetSecurityDescriptorDacl(&b.sd, TRUE, acl, FALSE)) {
            b.error = GetLastError();
        }
        return &b;
    }();
    if (block->error) {
        ec = os_error(block->error);
        return nullptr;
    }
    ec.clear();
    return &block->sd;
}

std::error_code read_full(native_handle h, void* data, std::size_t n, std::size_t& got) noexcept {
    char* p = static_cast<char*>(data);
    got = 0;
    while (got < n) {
        const std::size_t left = n - got;
        const DWORD chunk = left > 0x40000000 ? 0x40000000 : static_cast<DWORD>(left);
        DWORD r = 0;
        if (!ReadFile(h, p + got, chunk, &r, nullptr)) {
            if (GetLastError() == ERROR_BROKEN_PIPE) break;  // the writer closed: end of file
            return last_error();
        }
        if (r == 0) break;
        got += r;
    }
    return {};
}

std::error_code duplicate_handle(native_handle h, Handle& out) noexcept {
    HANDLE d = nullptr;
    if (!DuplicateHandle(GetCurrentProcess(), h, GetCurrentProcess(), &d, 0, FALSE, DUPLICATE_SAME_ACCESS))
        return last_error();
    out.reset(d);
    return {};
}

std::error_code make_private(native_handle h) noexcept {
    // A handle inherited through the handle list arrives inheritable, as it was sent.
    if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0)) return last_error();
    return {};
}

std::error_code count_open_handles(std::size_t& out) noexcept {
    DWORD n = 0;
    if (!GetProcessHandleCount(GetCurrentProcess(), &n)) return last_error();
    out = n;
    return {};
}

std::error_code wait_handles(const native_handle* hs, std::size_t n, const Deadline& deadline,
                             unsigned char* ready) noexcept {
    for (;;) {
        // Every handle is looked at without waiting first: WaitForMultipleObjects reports only
        // the first signalled one, and the caller wants them all.
        bool any = false;
        for (std::size_t i = 0; i < n; ++i) {
            const DWORD r = WaitForSingleObject(hs[i], 0);
            if (r == WAIT_FAILED) return last_error();
            ready[i] = (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) ? 1 : 0;
            any = any || ready[i];
        }
        if (any || deadline.passed()) return {};
        if (n == 0) {
            Sleep(static_cast<DWORD>(deadline.is_never() ? INFINITE : deadline.wait_ms()));
            continue;
        }
        // Any of the first 64 ends the wait at once; past MAXIMUM_WAIT_OBJECTS the rest are
        // looked at again after a short slice.
        const std::size_t count = n < MAXIMUM_WAIT_OBJECTS ? n : MAXIMUM_WAIT_OBJECTS;
        std::size_t signalled = count;
        if (auto ec = wait_objects(hs, count, n > count ? deadline.or_within(std::chrono::milliseconds(10)) : deadline,
                                   signalled))
            return ec;
    }
}

// poll_until() is POSIX-only: Windows waits on objects and overlapped I/O, not descriptors.

std::error_code wait_objects(const native_handle* hs, std::size_t n, const Deadline& deadline,
                             std::size_t& signalled) noexcept {
    signalled = n;
    for (;;) {
        const DWORD r = WaitForMultipleObjects(static_cast<DWORD>(n), hs, FALSE,
                                               deadline.is_never() ? INFINITE : static_cast<DWORD>(deadline.wait_ms()));
        if (r == WAIT_FAILED) return last_error();
        if (r < WAIT_OBJECT_0 + n) {
            signalled = r - WAIT_OBJECT_0;
            return {};
        }
        if (r >= WAIT_ABANDONED_0 && r < WAIT_ABANDONED_0 + n) {
            signalled = r - WAIT_ABANDONED_0;
            return {};
        }
        // WAIT_TIMEOUT: a wait may end a little before the time asked (the timer's tick).
        if (deadline.passed()) return {};
    }
}

std::error_code finish_overlapped(native_handle h, OVERLAPPED& ov, const Deadline& deadline, bool& ok,
                                  unsigned long& error, unsigned long& moved) noexcept {
    std::size_t signalled = 1;
    native_handle ev = ov.hEvent;
    const std::error_code wait_ec = wait_objects(&ev, 1, deadline, signalled);
    // Out of time, or the wait itself failed: take the operation back. It may complete as it
    // is cancelled; GetOverlappedResult then reports what it really did.
    if (wait_ec || signalled != 0) CancelIoEx(h, &ov);
    DWORD done = 0;
    ok = GetOverlappedResult(h, &ov, &done, TRUE) != FALSE;
    error = ok ? 0 : GetLastError();
    moved = done;
    return wait_ec;
}

std::uintptr_t inherited_value(native_handle h, std::size_t) noexcept { return reinterpret_cast<std::uintptr_t>(h); }

native_handle handle_from_value(std::uintptr_t v) noexcept { return reinterpret_cast<native_handle>(v); }

std::uintptr_t handle_to_value(native_handle h) noexcept { return reinterpret_cast<std::uintptr_t>(h); }

}  // namespace mp::sys
