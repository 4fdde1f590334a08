// common/sys/os.hpp - the internal contract for facts about the running process and machine.
// posix/os.cpp and win32/os.cpp implement it in this order.
#pragma once

#include <string>
#include <system_error>

namespace mp::sys {

int current_pid() noexcept;
int parent_pid() noexcept;   // 0 if unknown
int cpu_count() noexcept;    // online logical CPUs, at least 1

// Threads in this process, or 0 if it cannot be told. fork() copies only the calling thread,
// so the fork start method warns when this is above 1.
int thread_count() noexcept;

// Environment access in UTF-8 (Windows stores UTF-16).
bool get_env(const char* name, std::string& out);
void unset_env(const char* name) noexcept;

// Whether an environment variable's name may start with '=' (its only '=' allowed): Windows
// keeps per-drive current directories in names like "=C:"; POSIX names hold no '=' at all.
#if defined(_WIN32)
inline constexpr bool kEnvNameLeadingEquals = true;
#else
inline constexpr bool kEnvNameLeadingEquals = false;
#endif

// Flushes stdout and stderr, through both C stdio and the C++ standard streams, so that
// buffered output is written once: before a fork (or it would be written twice) and before
// _exit (or it would be lost). Like Python, mp flushes only these two; other open files are
// the program's own business.
void flush_std_streams() noexcept;

// Ends the process at once, with no atexit handlers or static destructors.
[[noreturn]] void exit_now(int code) noexcept;

// Registers fn to run in the child of every fork, in the forking thread, before fork()
// returns there (pthread_atfork). Portable code uses it to give up locks that another thread
// of the parent may have held at that moment. Windows has no fork: it does nothing.
std::error_code at_fork_in_child(void (*fn)()) noexcept;

}  // namespace mp::sys

#if defined(_WIN32)
namespace mp::sys {
// UTF-8 <-> UTF-16: mp speaks UTF-8, Win32's W functions speak UTF-16. Windows-only; POSIX
// passes bytes through unchanged, so posix/os.cpp has no counterpart.
std::wstring widen(const std::string& s);
std::string narrow(const std::wstring& s);
}  // namespace mp::sys
#endif
