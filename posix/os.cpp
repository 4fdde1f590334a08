// posix/os.cpp - facts about this process and machine on POSIX.
//
// POSIX keeps the process tree in the kernel: getppid() always answers, and an orphan is
// re-parented to init (or the nearest subreaper). Thread counts and states are read from
// /proc, which is Linux's window onto the kernel's process table; the portable profile
// (MP_POSIX_PORTABLE) has no /proc and POSIX no call that counts a process's threads, so there
// thread_count() is 0 ("cannot be told") and the fork start method cannot warn a threaded
// program.
// Windows records a parent pid only at creation, never re-parents, and keeps the environment
// as UTF-16.
#include "../common/sys/os.hpp"
#include "../common/sys/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <pthread.h>
#include <unistd.h>
#if __has_include(<stdio_ext.h>)
#include <stdio_ext.h>
#define MP_HAVE_FPENDING 1
#else
#define MP_HAVE_FPENDING 0
#endif
#if defined(__GLIBCXX__)
#include <ext/stdio_sync_filebuf.h>
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#include <sys/single_threaded.h>
#define MP_HAVE_SINGLE_THREADED 1
#else
#define MP_HAVE_SINGLE_THREADED 0
#endif

namespace mp::sys {

int current_pid() noexcept { return static_cast<int>(::getpid()); }

int parent_pid() noexcept { return static_cast<int>(::getppid()); }

int cpu_count() noexcept {
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
}

#if defined(MP_POSIX_PORTABLE)
int thread_count() noexcept { return 0; }
#else
int thread_count() noexcept {
#if MP_HAVE_SINGLE_THREADED
    // glibc's own flag: true until the process first starts a thread. It saves the /proc
    // read below (about a tenth of a fork start+join) for every fork of a program that never
    // had threads.
    if (__libc_single_threaded) return 1;
#endif
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
#endif

bool get_env(const char* name, std::string& out) {
    const char* v = std::getenv(name);
    if (!v) return false;
    out = v;
    return true;
}

void unset_env(const char* name) noexcept { ::unsetenv(name); }

namespace {
// Flushing takes the stream's lock, a write to a page that a fork child shares with its
// parent (a copy-on-write fault, a few percent of process.start_join.fork each), so the
// streams are flushed only when they hold something.
void flush_if_buffered(std::ostream& os) {
#if defined(__GLIBCXX__)
    // In the default sync_with_stdio(true) mode the standard C++ streams write straight into
    // the FILE buffers of stdout and stderr: the C++ object holds nothing to flush.
    if (dynamic_cast<__gnu_cxx::stdio_sync_filebuf<char>*>(os.rdbuf())) return;
#endif
    os.flush();
}
void flush_if_buffered(std::FILE* f) {
#if MP_HAVE_FPENDING
    if (__fpending(f) == 0) return;
#endif
    std::fflush(f);
}
}  // namespace

void flush_std_streams() noexcept {
    try {
        flush_if_buffered(std::cout);
        flush_if_buffered(std::cerr);
        flush_if_buffered(std::clog);
    } catch (...) {
    }
    flush_if_buffered(stdout);
    flush_if_buffered(stderr);
}

void exit_now(int code) noexcept { ::_exit(code); }

std::error_code at_fork_in_child(void (*fn)()) noexcept {
    if (const int e = ::pthread_atfork(nullptr, nullptr, fn)) return os_error(e);
    return {};
}

}  // namespace mp::sys

// widen() and narrow() are Windows-only: POSIX file names and environments are byte strings.
