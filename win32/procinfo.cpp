// win32/procinfo.cpp - facts about any process by pid on Windows: Toolhelp, OpenProcess,
// QueryFullProcessImageNameW, Get/SetPriorityClass.
//
// Windows reaches another process through a HANDLE from OpenProcess(pid); a process object
// (and its pid) lives on after the process ends for as long as anyone holds a handle to it,
// which is the counterpart of a POSIX zombie. Scheduling state is kept per thread, so a
// process is only "alive" (its handle not yet signalled) or "ended". The parent pid is written
// once at creation (Toolhelp's th32ParentProcessID) and never updated: there is no re-parenting,
// so an orphan keeps its dead parent's number. Priority is a class (IDLE, BELOW_NORMAL,
// NORMAL, ABOVE_NORMAL, HIGH, REALTIME) combined with per-thread levels; there are no policies
// like SCHED_FIFO, so mp maps POSIX niceness onto the classes (table in mp/os.hpp) and reports
// the policy of every process as "other".
// POSIX differs: /proc shows every process's state letter and current (re-parented) parent,
// niceness is a number per thread, and real-time policies exist beside it.
#include "../common/sys/procinfo.hpp"

#include <windows.h>
#include <tlhelp32.h>

#include "../common/sys/os.hpp"
#include "../common/sys/error.hpp"

namespace mp::sys {

namespace {


// OpenProcess on a pid that names no process fails with ERROR_INVALID_PARAMETER; say so in the
// portable terms the contract promises.
HANDLE open_process(int pid, DWORD access, std::error_code& ec) noexcept {
    HANDLE h = OpenProcess(access, FALSE, static_cast<DWORD>(pid));
    if (!h) {
        const DWORD err = GetLastError();
        ec = err == ERROR_INVALID_PARAMETER ? std::make_error_code(std::errc::no_such_process)
                                            : os_error(static_cast<int>(err));
    }
    return h;
}

struct Closer {
    HANDLE h;
    ~Closer() { CloseHandle(h); }
};

}  // namespace

std::error_code parent_pid_of(int pid, int& out) noexcept {
    HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
    if (snap == INVALID_HANDLE_VALUE) return last_error();
    Closer c{snap};
    PROCESSENTRY32W e{};
    e.dwSize = sizeof e;
    for (BOOL ok = Process32FirstW(snap, &e); ok; ok = Process32NextW(snap, &e)) {
        if (e.th32ProcessID == static_cast<DWORD>(pid)) {
            out = static_cast<int>(e.th32ParentProcessID);
            return {};
        }
    }
    return std::make_error_code(std::errc::no_such_process);
}

std::error_code executable_of(int pid, std::string& out) noexcept {
    std::error_code ec;
    HANDLE h = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION, ec);
    if (!h) return ec;
    Closer c{h};
    wchar_t path[32768];
    DWORD n = 32768;
    if (!QueryFullProcessImageNameW(h, 0, path, &n)) return last_error();
    try {
        out = narrow(std::wstring(path, n));
    } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
    return {};
}

std::error_code process_state(int pid, ProcState& out) noexcept {
    // Alive or ended is all a process handle tells (the mapping table is in mp/os.hpp). An
    // ended process that can still be opened is held by someone's handle: "dead", the
    // counterpart of a zombie.
    std::error_code ec;
    HANDLE h = open_process(pid, SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, ec);
    if (!h) return ec;
    Closer c{h};
    const DWORD r = WaitForSingleObject(h, 0);
    if (r == WAIT_FAILED) return last_error();
    out = r == WAIT_OBJECT_0 ? ProcState::dead : ProcState::running;
    return {};
}

std::error_code get_priority(int pid, int& niceness) noexcept {
    std::error_code ec;
    HANDLE h = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION, ec);
    if (!h) return ec;
    Closer c{h};
    const DWORD cls = GetPriorityClass(h);
    switch (cls) {
        case REALTIME_PRIORITY_CLASS: niceness = -20; break;
        case HIGH_PRIORITY_CLASS: niceness = -10; break;
        case ABOVE_NORMAL_PRIORITY_CLASS: niceness = -5; break;
        case NORMAL_PRIORITY_CLASS: niceness = 0; break;
        case BELOW_NORMAL_PRIORITY_CLASS: niceness = 10; break;
        case IDLE_PRIORITY_CLASS: niceness = 19; break;
        case 0: return last_error();
        default: niceness = 0; break;
    }
    return {};
}

std::error_code set_priority(int pid, int niceness) noexcept {
    DWORD cls = NORMAL_PRIORITY_CLASS;
    if (niceness <= -16) cls = REALTIME_PRIORITY_CLASS;
    else if (niceness <= -6) cls = HIGH_PRIORITY_CLASS;
    else if (niceness <= -1) cls = ABOVE_NORMAL_PRIORITY_CLASS;
    else if (niceness <= 4) cls = NORMAL_PRIORITY_CLASS;
    else if (niceness <= 14) cls = BELOW_NORMAL_PRIORITY_CLASS;
    else cls = IDLE_PRIORITY_CLASS;
    std::error_code ec;
    HANDLE h = open_process(pid, PROCESS_SET_INFORMATION, ec);
    if (!h) return ec;
    Closer c{h};
    if (!SetPriorityClass(h, cls)) return last_error();
    return {};
}

std::error_code scheduling_priority_range(SchedPolicy policy, PriorityRange& out) noexcept {
    // Only "other" exists here, and it has no static priority.
    if (policy != SchedPolicy::other) return std::make_error_code(std::errc::not_supported);
    out = {0, 0};
    return {};
}

std::error_code get_scheduling(int pid, Scheduling& out) noexcept {
    // Windows has no scheduling policies: every live process is reported as {other, 0}. The
    // process is still opened, so that a pid naming nothing is an error as on POSIX.
    std::error_code ec;
    HANDLE h = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION, ec);
    if (!h) return ec;
    CloseHandle(h);
    out = {SchedPolicy::other, 0};
    return {};
}

std::error_code set_scheduling(int pid, const Scheduling& s) noexcept {
    // {other, 0} is what every Windows process already has: a no-op. Anything else cannot be
    // expressed (common/os.cpp turns not_supported into NotImplementedError).
    if (s.policy != SchedPolicy::other || s.priority != 0)
        return std::make_error_code(std::errc::not_supported);
    std::error_code ec;
    HANDLE h = open_process(pid, PROCESS_QUERY_LIMITED_INFORMATION, ec);
    if (!h) return ec;
    CloseHandle(h);
    return {};
}

}  // namespace mp::sys
