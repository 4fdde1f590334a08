// posix/shared_memory.cpp - named shared memory on POSIX: shm_open + ftruncate + mmap.
//
// A POSIX segment is a file in a memory-backed file system (/dev/shm on Linux) reached by a
// name "/name". The fd from shm_open holds it open, mmap(MAP_SHARED) shows it, and the name
// lives until shm_unlink - it survives every process that used it, a crash included. So
// ownership has to be built: the creator registers the name with the resource tracker
// (posix/tracker.cpp) before it exists, makes and sizes the segment at a private name, and
// links it to its name, and the tracker unlinks it if the creator dies, at any instant.
// Processes that only attach never register. Mappings stay valid after the name is gone;
// only new attaches fail.
// Windows differs: a named file mapping lives exactly as long as some handle to it, so the
// kernel already cleans up after a crash, unlink has nothing to do, and there is no tracker.
#include "../common/sys/shared_memory.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <pthread.h>
#include <unordered_map>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "../common/sys/tracker.hpp"

namespace mp::sys {

namespace {

// glibc refuses names whose length (after the '/') plus the terminating NUL reaches NAME_MAX.
constexpr std::size_t kMaxName = NAME_MAX - 2;

bool slash_name(const std::string& name, char* out, std::size_t cap) noexcept {
    if (name.size() + 2 > cap) return false;
    out[0] = '/';
    std::memcpy(out + 1, name.c_str(), name.size() + 1);
    return true;
}
}  // namespace

const char* shm_generated_prefix() noexcept { return "psm_"; }

const char* shm_name_problem(const std::string& name) noexcept {
    if (name.empty()) return "the name is empty";
    if (name.find('/') != std::string::npos) return "a POSIX shared memory name may hold '/' only as its first character";
    if (name.find('\0') != std::string::npos) return "the name holds a NUL character";
    if (name == "." || name == "..") return "'.' and '..' cannot name a segment";
    if (name.size() > kMaxName) return "the name is longer than NAME_MAX allows (253 characters after the '/')";
    return nullptr;
}

std::error_code shm_create(const std::string& name, std::size_t size, Handle& out, bool& tracked) noexcept {
    char path[NAME_MAX + 2];
    if (!slash_name(name, path, sizeof path)) return std::make_error_code(std::errc::filename_too_long);
    if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max())) return std::make_error_code(std::errc::file_too_large);
    Creation c;
    tracked = !begin_creation(Resource::shared_memory, name, c);
    char at[NAME_MAX + 2];
    if (!slash_name(tracked ? c.temporary : name, at, sizeof at)) {
        finish_creation(c, false);
        return std::make_error_code(std::errc::filename_too_long);
    }
    const int fd = ::shm_open(at, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        const std::error_code ec = last_error();
        finish_creation(c, false);
        return ec;
    }
    Handle h(fd);
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        const std::error_code ec = last_error();
        ::shm_unlink(at);
        finish_creation(c, false);
        return ec;
    }
    if (tracked) {
        if (auto ec = finish_creation(c, true)) return ec;  // file_exists: the name was taken
    }
    out = std::move(h);
    return {};
}

std::error_code shm_attach(const std::string& name, Handle& out) noexcept {
    char path[NAME_MAX + 2];
    if (!slash_name(name, path, sizeof path)) return std::make_error_code(std::errc::filename_too_long);
    const int fd = ::shm_open(path, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}

std::error_code shm_map(native_handle h, std::size_t& size, void*& addr) noexcept {
    if (size == 0) {
        struct stat st {};
        if (::fstat(h, &st) != 0) return last_error();
        size = static_cast<std::size_t>(st.st_size);
        if (size == 0) return std::make_error_code(std::errc::invalid_argument);
    }
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0);
    if (p == MAP_FAILED) return last_error();
    addr = p;
    return {};
}

std::error_code shm_unmap(void* addr, std::size_t size) noexcept {
    if (::munmap(addr, size) != 0) return last_error();
    return {};
}

std::error_code shm_remove(const std::string& name) noexcept {
    char path[NAME_MAX + 2];
    if (!slash_name(name, path, sizeof path)) return std::make_error_code(std::errc::filename_too_long);
    if (::shm_unlink(path) != 0) return last_error();
    untrack(Resource::shared_memory, name);
    return {};
}

}  // namespace mp::sys
