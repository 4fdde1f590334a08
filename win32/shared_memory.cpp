// win32/shared_memory.cpp - named shared memory on Windows: CreateFileMappingW + MapViewOfFile.
//
// A Windows segment is a pagefile-backed file mapping object with a name in the session's
// object namespace (a plain name is what "Local\name" means; mp uses the name as given, as
// CPython does, and refuses '\' so that no other namespace can be named). The kernel counts
// the handles (and views) of a mapping and deletes it, name and memory, when the last one
// closes - whether its holders exit, crash or are killed. So a segment never outlives all of
// its users, there is nothing to unlink, and there is no tracker: ownership is the kernel's.
// The creator gets the default security descriptor of its token, so processes of the same
// user can attach (Wine enforces DACLs on mappings too). A view is sized in pages: an
// attacher sees the size rounded up to the page size, as in CPython.
// POSIX differs: a /dev/shm name outlives every process until shm_unlink, so mp builds a
// tracker process there that unlinks a crashed creator's names.
#include "../common/sys/shared_memory.hpp"

#include <windows.h>

#include "../common/sys/os.hpp"
#include "../common/sys/error.hpp"

namespace mp::sys {

namespace {
constexpr std::size_t kMaxName = MAX_PATH;
}  // namespace

const char* shm_generated_prefix() noexcept { return "wnsm_"; }

const char* shm_name_problem(const std::string& name) noexcept {
    if (name.empty()) return "the name is empty";
    if (name.find('\\') != std::string::npos) return "a Windows shared memory name may not hold '\\'";
    if (name.find('\0') != std::string::npos) return "the name holds a NUL character";
    if (name.size() > kMaxName) return "the name is longer than MAX_PATH (260) characters";
    return nullptr;
}

std::error_code shm_create(const std::string& name, std::size_t size, Handle& out) noexcept {
    try {
        const std::wstring w = widen(name);
        const auto big = static_cast<unsigned long long>(size);
        HANDLE h = CreateFileMappingW(INVALID_HANDLE_VALUE, nullptr, PAGE_READWRITE, static_cast<DWORD>(big >> 32),
                                      static_cast<DWORD>(big & 0xffffffffu), w.c_str());
        if (!h) return last_error();
        if (GetLastError() == ERROR_ALREADY_EXISTS) {  // an existing mapping was opened instead
            CloseHandle(h);
            return os_error(ERROR_ALREADY_EXISTS);
        }
        out.reset(h);
        return {};
    } catch (...) {
        return os_error(ERROR_NOT_ENOUGH_MEMORY);
    }
}

std::error_code shm_attach(const std::string& name, Handle& out) noexcept {
    try {
        const std::wstring w = widen(name);
        HANDLE h = OpenFileMappingW(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, w.c_str());
        if (!h) return last_error();
        out.reset(h);
        return {};
    } catch (...) {
        return os_error(ERROR_NOT_ENOUGH_MEMORY);
    }
}

std::error_code shm_map(native_handle h, std::size_t& size, void*& addr) noexcept {
    void* p = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
    if (!p) return last_error();
    if (size == 0) {
        MEMORY_BASIC_INFORMATION info{};
        if (VirtualQuery(p, &info, sizeof info) == 0) {
            const std::error_code ec = last_error();
            UnmapViewOfFile(p);
            return ec;
        }
        size = info.RegionSize;
    }
    addr = p;
    return {};
}

std::error_code shm_unmap(void* addr, std::size_t) noexcept {
    if (!UnmapViewOfFile(addr)) return last_error();
    return {};
}

std::error_code shm_remove(const std::string&) noexcept { return {}; }

// run_tracker() is POSIX-only: the Windows kernel deletes a mapping with its last handle.

std::error_code shm_track(const std::string&, bool) noexcept { return {}; }

int shm_tracker_pid() noexcept { return 0; }

void shm_stop_tracker() noexcept {}

}  // namespace mp::sys
