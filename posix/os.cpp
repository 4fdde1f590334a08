// posix/os.cpp - facts about this process and machine on POSIX.
//
// POSIX keeps the process tree in the kernel: getppid() always answers, and an orphan is
// re-parented to init (or the nearest subreaper). Thread counts and states are read from
// /proc, which is Linux's window onto the kernel's process table.
// Windows records a parent pid only at creation, never re-parents, and keeps the environment
// as UTF-16.
#include "../common/sys/os.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <unistd.h>

namespace mp::sys {

int current_pid() noexcept { return static_cast<int>(::getpid()); }

int parent_pid() noexcept { return static_cast<int>(::getppid()); }

int cpu_count() noexcept {
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
}

int thread_count() noexcept {
    // Field 20 of /proc/self/stat is num_threads. Field 2 (the command name) may contain
    // spaces and parentheses, so counting starts after its last ')'.
    int fd = ::open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[1024];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char* p = std::strrchr(buf, ')');
    if (!p) return 0;
    int field = 2;
    for (++p; *p && field < 20; ++p)
        if (*p == ' ') ++field;
    return std::atoi(p);
}

bool get_env(const char* name, std::string& out) {
    const char* v = std::getenv(name);
    if (!v) return false;
    out = v;
    return true;
}

void unset_env(const char* name) noexcept { ::unsetenv(name); }

void flush_std_streams() noexcept {
    try {
        std::cout.flush();
        std::cerr.flush();
        std::clog.flush();
    } catch (...) {
    }
    std::fflush(stdout);
    std::fflush(stderr);
}

void exit_now(int code) noexcept { ::_exit(code); }

std::string win32_error_text(int code) { return "Win32 error " + std::to_string(code); }

}  // namespace mp::sys

// widen() and narrow() are Windows-only: POSIX file names and environments are byte strings.
