// win32/handle.cpp - HANDLEs and anonymous pipes on Windows.
//
// A HANDLE is an opaque reference into the process's handle table; unlike a POSIX fd, its
// value is not a small dense integer that a child can expect at a fixed position. Whether a
// child may receive a handle is a flag chosen at creation (bInheritHandle), and CreateProcessW
// passes either every inheritable handle or, with PROC_THREAD_ATTRIBUTE_HANDLE_LIST, exactly
// a listed few, at the same values. mp creates every handle non-inheritable and names the
// ones to pass in that list. Anonymous pipes are named pipes underneath; a closed peer shows
// up as ERROR_BROKEN_PIPE instead of a signal, so there is nothing like SIGPIPE to guard.
// POSIX differs: fds are inherited unless marked close-on-exec, and a child finds passed fds
// by number (mp puts them at 3, 4, ...).
#include "../common/sys/handle.hpp"

#include <windows.h>

#include <chrono>

#include "mp/errors.hpp"

namespace mp::sys {

static std::error_code last_error() noexcept { return {static_cast<int>(GetLastError()), win32_category()}; }

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

// writev_without_sigpipe() is POSIX-only: Windows has no SIGPIPE (a closed reader is ERROR_NO_DATA).

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
        ec = {static_cast<int>(block->error), win32_category()};
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

std::uintptr_t inherited_value(native_handle h, std::size_t) noexcept { return reinterpret_cast<std::uintptr_t>(h); }

native_handle handle_from_value(std::uintptr_t v) noexcept { return reinterpret_cast<native_handle>(v); }

std::uintptr_t handle_to_value(native_handle h) noexcept { return reinterpret_cast<std::uintptr_t>(h); }


std::error_code wait_handles(const native_handle* hs, std::size_t n, double timeout_ms,
                             unsigned char* ready) noexcept {
    using clock = std::chrono::steady_clock;
    const bool forever = timeout_ms < 0;
    const auto deadline = clock::now() + std::chrono::duration_cast<clock::duration>(
                                             std::chrono::duration<double, std::milli>(forever ? 0 : timeout_ms));
    for (;;) {
        // Look at every handle without waiting: WaitForMultipleObjects reports only the first
        // signalled one, and the caller wants them all.
        bool any = false;
        for (std::size_t i = 0; i < n; ++i) {
            const DWORD r = WaitForSingleObject(hs[i], 0);
            if (r == WAIT_FAILED) return last_error();
            ready[i] = (r == WAIT_OBJECT_0 || r == WAIT_ABANDONED) ? 1 : 0;
            any = any || ready[i];
        }
        if (any) return {};
        DWORD wait_ms = INFINITE;
        if (!forever) {
            const double left = std::chrono::duration<double, std::milli>(deadline - clock::now()).count();
            if (left <= 0) return {};
            wait_ms = wait_call_ms(left);  // rounded up: never ends before the deadline
        }
        if (n == 0) {
            Sleep(wait_ms);
            continue;
        }
        if (n <= MAXIMUM_WAIT_OBJECTS) {
            const DWORD r = WaitForMultipleObjects(static_cast<DWORD>(n), hs, FALSE, wait_ms);
            if (r == WAIT_FAILED) return last_error();
        } else {
            Sleep(wait_ms < 10 ? wait_ms : 10);  // too many to wait on at once: look again soon
        }
    }
}

}  // namespace mp::sys
