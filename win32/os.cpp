// win32/os.cpp - facts about this process and machine on Windows.
//
// Windows records a process's parent pid once, at creation, and never updates it: when the
// parent ends, the child keeps a stale number (which may even be reused by an unrelated
// process), and nothing like re-parenting to init happens. So the parent pid is read from a
// Toolhelp snapshot of the process table. The environment is UTF-16 and kept twice: by the
// OS (GetEnvironmentVariableW, what CreateProcessW copies) and by the C runtime (getenv); mp
// reads and writes the OS copy and keeps the runtime's in step.
// POSIX differs: getppid() is a system call that follows re-parenting, and the environment is
// one array of byte strings.
#include "../common/sys/os.hpp"

#include <windows.h>
#include <tlhelp32.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace mp::sys {

int current_pid() noexcept { return static_cast<int>(GetCurrentProcessId()); }

int parent_pid() noexcept {
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return 0;
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    int ppid = 0;
    const DWORD self = GetCurrentProcessId();
    for (BOOL ok = Process32FirstW(snap, &e); ok; ok = Process32NextW(snap, &e)) {
        if (e.th32ProcessID == self) {
            ppid = static_cast<int>(e.th32ParentProcessID);
            break;
        }
    }
    CloseHandle(snap);
    return ppid;
}

int cpu_count() noexcept {
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 ? static_cast<int>(n) : 1;
}

int thread_count() noexcept {
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
    if (snap == INVALID_HANDLE_VALUE) return 0;
    THREADENTRY32 e{};
    e.dwSize = sizeof e;
    int n = 0;
    const DWORD self = GetCurrentProcessId();
    for (BOOL ok = Thread32First(snap, &e); ok; ok = Thread32Next(snap, &e))
        if (e.th32OwnerProcessID == self) ++n;
    CloseHandle(snap);
    return n;
}

bool get_env(const char* name, std::string& out) {
    const std::wstring wname = widen(name);
    DWORD n = GetEnvironmentVariableW(wname.c_str(), nullptr, 0);
    if (n == 0) return false;
    std::wstring value(n, L'\0');
    n = GetEnvironmentVariableW(wname.c_str(), value.data(), n);
    value.resize(n);
    out = narrow(value);
    return true;
}

void unset_env(const char* name) noexcept {
    try {
        const std::wstring wname = widen(name);
        SetEnvironmentVariableW(wname.c_str(), nullptr);
        _wputenv_s(wname.c_str(), L"");
    } catch (...) {
    }
}

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

void exit_now(int code) noexcept { std::_Exit(code); }

// at_fork_in_child: nothing to register, as there is no fork.
std::error_code at_fork_in_child(void (*)()) noexcept { return {}; }

std::wstring widen(const std::string& s) {
    if (s.empty()) return {};
    const int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
    std::wstring w(static_cast<std::size_t>(n), L'\0');
    MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), w.data(), n);
    return w;
}

std::string narrow(const std::wstring& w) {
    if (w.empty()) return {};
    const int n = WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), nullptr, 0, nullptr, nullptr);
    std::string s(static_cast<std::size_t>(n), '\0');
    WideCharToMultiByte(CP_UTF8, 0, w.data(), static_cast<int>(w.size()), s.data(), n, nullptr, nullptr);
    return s;
}

}  // namespace mp::sys
