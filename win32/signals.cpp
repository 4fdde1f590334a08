// win32/signals.cpp - the Windows counterpart of signals: one named event per caught signal.
//
// Windows has no kill(2) and no SIGUSR1: the C runtime's signal() knows SIGINT, SIGTERM,
// SIGABRT, SIGFPE, SIGILL and SIGSEGV, and nothing can deliver them from another process. The
// nearest OS mechanism, console control events (GenerateConsoleCtrlEvent: CTRL_C, CTRL_BREAK),
// reaches only processes attached to the sender's console, and under Wine CTRL_BREAK is not
// implemented and every control event fails without a console (WINE-NOTES). So mp builds the
// signal from a kernel object that works between any two processes of a user: catching sig
// creates a manual-reset named event Local\mp-signal-<pid>-<sig> with an owner-only DACL;
// mp::kill(pid, sig) opens that name and sets it; dispatch waits on all of them
// (WaitForMultipleObjects) and resets each one it reports. A process that has not caught sig
// has no such event; kill then does what POSIX's default action would: for a signal that
// terminates (all of mp::sig but CHLD) it calls TerminateProcess(0x10000 | sig), as Python's
// os.kill calls TerminateProcess, so that exitcode reads -sig; SIGCHLD is dropped. Nothing
// interrupts a running thread, so there is no handler context and no EINTR.
// POSIX differs: the kernel delivers a real signal, which interrupts a thread of the receiver
// (in the middle of anything: hence the async-signal-safe recorder and the self-pipe), and
// blocking calls fail with EINTR.
#include "../common/sys/signals.hpp"
#include "../common/sys/handle.hpp"

#include <windows.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <vector>

#include "../common/sys/handle.hpp"
#include "../common/sys/error.hpp"

namespace mp::sys {

namespace {

constexpr DWORD kSignalExitBase = 0x10000;  // as win32/process.cpp: exitcode reads -signum


struct Slot {
    std::shared_ptr<Handle> event;
    bool ignored = false;
};
std::mutex g_mu;
std::array<Slot, 65> g_slots;

void event_name(wchar_t* out, std::size_t n, DWORD pid, int sig) {
    std::swprintf(out, n, L"Local\\mp-signal-%lu-%d", static_cast<unsigned long>(pid), sig);
}

bool terminates_by_default(int sig) noexcept { return sig != signum::CHLD; }

std::error_code make_event(int sig, bool ignored) noexcept try {
    std::lock_guard<std::mutex> lock(g_mu);
    Slot& s = g_slots[static_cast<std::size_t>(sig)];
    s.ignored = ignored;
    if (s.event) return {};
    std::error_code sec_ec;
    SECURITY_ATTRIBUTES sa{sizeof sa, owner_only_security_descriptor(sec_ec), FALSE};
    if (sec_ec) return sec_ec;
    wchar_t name[64];
    event_name(name, 64, GetCurrentProcessId(), sig);
    HANDLE h = CreateEventW(&sa, TRUE, FALSE, name);
    if (!h) return last_error();
    s.event = std::make_shared<Handle>(h);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

}  // namespace

std::error_code signal_catch(int sig) noexcept { return make_event(sig, false); }

std::error_code signal_ignore(int sig) noexcept { return make_event(sig, true); }

std::error_code signal_default(int sig) noexcept {
    std::lock_guard<std::mutex> lock(g_mu);
    g_slots[static_cast<std::size_t>(sig)] = Slot{};  // the name goes with the last handle
    return {};
}

std::error_code signal_wait(const Deadline& deadline, std::uint64_t& fired) noexcept try {
    fired = 0;
    for (;;) {
        // A snapshot: another thread may catch or restore a signal while this one waits.
        std::vector<std::pair<int, std::shared_ptr<Handle>>> events;
        {
            std::lock_guard<std::mutex> lock(g_mu);
            for (int sig = 1; sig <= 64; ++sig)
                if (g_slots[static_cast<std::size_t>(sig)].event)
                    events.emplace_back(sig, g_slots[static_cast<std::size_t>(sig)].event);
        }
        // Waits are cut into slices of at most 100 ms, after which the snapshot is taken again:
        // another thread may have caught a signal (a new event to wait on) or restored one.
        const Deadline slice = deadline.or_within(std::chrono::milliseconds(100));
        if (events.empty()) {
            if (deadline.passed()) return {};
            Sleep(static_cast<DWORD>(slice.wait_ms()));
        } else {
            HANDLE hs[MAXIMUM_WAIT_OBJECTS];
            const std::size_t n = events.size() < MAXIMUM_WAIT_OBJECTS ? events.size() : MAXIMUM_WAIT_OBJECTS;
            for (std::size_t i = 0; i < n; ++i) hs[i] = events[i].second->get();
            std::size_t signalled = n;
            if (auto ec = wait_objects(hs, n, slice, signalled)) return ec;
            if (signalled < n) {
                // Take every event that is set, not only the first one reported.
                for (std::size_t i = 0; i < n; ++i) {
                    if (WaitForSingleObject(hs[i], 0) == WAIT_OBJECT_0) {
                        ResetEvent(hs[i]);
                        std::lock_guard<std::mutex> lock(g_mu);
                        if (!g_slots[static_cast<std::size_t>(events[i].first)].ignored) fired |= signal_bit(events[i].first);
                    }
                }
                if (fired) return {};
            }
        }
        if (deadline.passed()) return {};
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::uint64_t signal_pending() noexcept {
    std::uint64_t out = 0;
    std::lock_guard<std::mutex> lock(g_mu);
    for (int sig = 1; sig <= 64; ++sig) {
        const Slot& s = g_slots[static_cast<std::size_t>(sig)];
        if (s.event && !s.ignored && WaitForSingleObject(s.event->get(), 0) == WAIT_OBJECT_0) out |= signal_bit(sig);
    }
    return out;
}

std::error_code signal_send(int pid, int sig) noexcept {
    // Whether the process exists at all comes first: ProcessLookupError, as on POSIX.
    Handle proc(OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE,
                            static_cast<DWORD>(pid)));
    if (!proc) {
        const DWORD e = GetLastError();
        if (e == ERROR_INVALID_PARAMETER) return std::make_error_code(std::errc::no_such_process);
        return os_error(e);
    }
    if (WaitForSingleObject(proc.get(), 0) == WAIT_OBJECT_0) return std::make_error_code(std::errc::no_such_process);
    if (sig != signum::KILL) {
        wchar_t name[64];
        event_name(name, 64, static_cast<DWORD>(pid), sig);
        Handle ev(OpenEventW(EVENT_MODIFY_STATE, FALSE, name));
        if (ev) {
            if (!SetEvent(ev.get())) return last_error();
            return {};
        }
        const DWORD e = GetLastError();
        if (e != ERROR_FILE_NOT_FOUND) return os_error(e);
    }
    if (!terminates_by_default(sig)) return {};
    if (!TerminateProcess(proc.get(), kSignalExitBase | static_cast<DWORD>(sig))) return last_error();
    return {};
}

}  // namespace mp::sys
