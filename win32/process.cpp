// win32/process.cpp - child processes on Windows: CreateProcessW, job objects, waits.
//
// Windows has one way to make a process: CreateProcessW starts a new program from its entry
// point, given one command-line string (which the child's C runtime splits back into argv by
// the CommandLineToArgvW rules, so mp quotes by those rules), an environment block, and the
// handles to inherit. There is no fork, so there is no copy of the parent's memory: every
// child is a "spawn". The parent gets a process HANDLE; the exit code stays readable through
// it after the child ends (the counterpart of a POSIX zombie) until the last HANDLE closes.
// There are no signals: TerminateProcess ends a process with an exit code of the caller's
// choosing, and mp chooses 0x10000|signum so that exitcode can report -SIGTERM/-SIGKILL as
// CPython does. Children do not die with their parent by default; mp puts daemonic children in
// a job object whose only handle the parent holds, with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
// so the kernel ends them when the parent ends, however it ends.
// For mp::subprocess, a program named without a directory is found with SearchPathW (".exe"
// added, as CreateProcessW does for a bare command-line name), and cwd and a new process group
// (CREATE_NEW_PROCESS_GROUP, the nearest thing to a POSIX session) are arguments of the same
// call; a failure to start is CreateProcessW's own error, in the caller.
// POSIX differs: fork+exec are two steps, a child is found by pid and reaped with waitpid, and
// SIGTERM/SIGKILL are real signals; the PATH search, the chdir and setsid() happen in the
// child, between its fork and its exec.
// The rest of the spawn lesson is portable and lives in common/: process.cpp's start_spawn
// (the payload a new run of the program receives through an inherited pipe) and bootstrap.cpp
// (that run's side: mp::bootstrap reads the payload and becomes the child).
#include "../common/sys/process.hpp"

#include <windows.h>

#include <algorithm>
#include <cwctype>
#include <mutex>

#include "../common/sys/os.hpp"
#include "../common/sys/signals.hpp"
#include "../common/sys/error.hpp"

namespace mp::sys {


constexpr DWORD kSignalExitBase = 0x10000;  // TerminateProcess(h, 0x10000 | signum)

int fork_process(std::error_code& ec) noexcept {
    // fork_process() is POSIX-only: Windows has no fork. mp refuses the fork start method on
    // Windows before it would get here.
    ec = std::make_error_code(std::errc::function_not_supported);
    return -1;
}

namespace {

// Appends one argument quoted so that CommandLineToArgvW (and the C runtime) give it back
// unchanged: backslashes are literal except before a quote, where they must be doubled.
void append_quoted(std::wstring& cmd, const std::wstring& arg) {
    if (!arg.empty() && arg.find_first_of(L" \t\n\v\"") == std::wstring::npos) {
        cmd += arg;
        return;
    }
    cmd += L'"';
    for (auto it = arg.begin();; ++it) {
        std::size_t backslashes = 0;
        while (it != arg.end() && *it == L'\\') {
            ++it;
            ++backslashes;
        }
        if (it == arg.end()) {
            cmd.append(backslashes * 2, L'\\');
            break;
        }
        if (*it == L'"') {
            cmd.append(backslashes * 2 + 1, L'\\');
        } else {
            cmd.append(backslashes, L'\\');
        }
        cmd += *it;
    }
    cmd += L'"';
}

bool same_name(const std::wstring& entry, const std::wstring& name) {
    if (entry.size() <= name.size() || entry[name.size()] != L'=') return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (std::towupper(entry[i]) != std::towupper(name[i])) return false;
    return true;
}

// Our environment (or none, for replace) with req.env applied, as the double-NUL-terminated
// UTF-16 block CreateProcessW wants.
std::wstring environment_block(const std::vector<std::pair<std::string, std::string>>& extra, bool replace) {
    std::vector<std::wstring> entries;
    if (wchar_t* env = replace ? nullptr : GetEnvironmentStringsW()) {
        for (const wchar_t* p = env; *p; p += wcslen(p) + 1) entries.emplace_back(p);
        FreeEnvironmentStringsW(env);
    }
    for (const auto& kv : extra) {
        const std::wstring name = widen(kv.first);
        entries.erase(std::remove_if(entries.begin(), entries.end(),
                                     [&](const std::wstring& e) { return same_name(e, name); }),
                      entries.end());
        entries.push_back(name + L"=" + widen(kv.second));
    }
    std::wstring block;
    for (const auto& e : entries) {
        block += e;
        block += L'\0';
    }
    if (entries.empty()) block += L'\0';  // an empty block is two NULs too
    block += L'\0';
    return block;
}

// The file SearchPathW finds for a name without a directory ("" if none; ".exe" is added to a
// name without an extension). A name with a directory is taken as it is, or with ".exe" added
// when only that exists, as CreateProcessW would for a command-line name.
std::wstring searched_program(const std::wstring& name) {
    const std::size_t dir_end = name.find_last_of(L"\\/:");
    if (dir_end != std::wstring::npos) {
        const bool has_extension = name.find(L'.', dir_end) != std::wstring::npos;
        if (!has_extension && GetFileAttributesW(name.c_str()) == INVALID_FILE_ATTRIBUTES &&
            GetFileAttributesW((name + L".exe").c_str()) != INVALID_FILE_ATTRIBUTES)
            return name + L".exe";
        return name;
    }
    std::wstring found(MAX_PATH, L'\0');
    for (;;) {
        const DWORD n = SearchPathW(nullptr, name.c_str(), L".exe", static_cast<DWORD>(found.size()), found.data(), nullptr);
        if (n == 0) return {};
        if (n < found.size()) {
            found.resize(n);
            return found;
        }
        found.resize(n);
    }
}

// The job that holds daemonic children. Its only handle is ours and non-inheritable, so it
// closes when this process ends, and the kernel then ends everything in it.
HANDLE daemon_job(std::error_code& ec) {
    static std::mutex mu;
    static HANDLE job = nullptr;
    std::lock_guard<std::mutex> lock(mu);
    if (job) return job;
    HANDLE j = CreateJobObjectW(nullptr, nullptr);
    if (!j) {
        ec = last_error();
        return nullptr;
    }
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    if (!SetInformationJobObject(j, JobObjectExtendedLimitInformation, &info, sizeof info)) {
        ec = last_error();
        CloseHandle(j);
        return nullptr;
    }
    job = j;
    return job;
}

// Flips the inherit flag on for the duration of one CreateProcessW and back off afterwards, so
// that the listed handles reach the child at their own values.
class InheritableForNow {
public:
    ~InheritableForNow() {
        for (HANDLE h : handles_) SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
    }
    bool add(HANDLE h) {
        if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) return false;
        handles_.push_back(h);
        return true;
    }

private:
    std::vector<HANDLE> handles_;
};

}  // namespace

std::error_code spawn_process(const SpawnRequest& req, Child& out) noexcept try {
    std::wstring cmd;
    for (std::size_t i = 0; i < req.args.size(); ++i) {
        if (i) cmd += L' ';
        append_quoted(cmd, widen(req.args[i]));
    }
    const std::wstring program = req.search_path ? searched_program(widen(req.program)) : widen(req.program);
    if (program.empty()) return os_error(ERROR_FILE_NOT_FOUND);
    std::wstring env = req.env.empty() && !req.replace_env ? std::wstring() : environment_block(req.env, req.replace_env);
    const std::wstring cwd = widen(req.cwd);

    std::vector<HANDLE> list;
    InheritableForNow inheritable;
    for (HANDLE h : req.inherit) {
        if (!inheritable.add(h)) return last_error();
        list.push_back(h);
    }
    // The standard handles travel as inheritable duplicates: each is a fresh value, so the
    // list never names one handle twice even when stdout and stderr are the same.
    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    const native_handle given[3] = {req.stdin_handle, req.stdout_handle, req.stderr_handle};
    HANDLE* slots[3] = {&si.StartupInfo.hStdInput, &si.StartupInfo.hStdOutput, &si.StartupInfo.hStdError};
    Handle std_dups[3];
    for (int i = 0; i < 3; ++i) {
        HANDLE src = given[i] ? given[i] : GetStdHandle(std_ids[i]);
        if (i == 2 && req.stderr_to_stdout) src = si.StartupInfo.hStdOutput;
        HANDLE dup = nullptr;
        if (src && src != INVALID_HANDLE_VALUE &&
            DuplicateHandle(GetCurrentProcess(), src, GetCurrentProcess(), &dup, 0, TRUE, DUPLICATE_SAME_ACCESS)) {
            std_dups[i].reset(dup);
            list.push_back(dup);
        }
        *slots[i] = dup;
    }

    SIZE_T size = 0;
    InitializeProcThreadAttributeList(nullptr, 1, 0, &size);
    std::vector<char> attr_buf(size);
    auto* attrs = reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(attr_buf.data());
    if (!InitializeProcThreadAttributeList(attrs, 1, 0, &size)) return last_error();
    struct AttrGuard {
        LPPROC_THREAD_ATTRIBUTE_LIST a;
        ~AttrGuard() { DeleteProcThreadAttributeList(a); }
    } attr_guard{attrs};
    if (!list.empty() &&
        !UpdateProcThreadAttribute(attrs, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, list.data(), list.size() * sizeof(HANDLE),
                                   nullptr, nullptr))
        return last_error();
    si.lpAttributeList = attrs;

    std::error_code ec;
    HANDLE job = req.kill_with_parent ? daemon_job(ec) : nullptr;
    if (ec) return ec;

    DWORD flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT;
    if (job) flags |= CREATE_SUSPENDED;  // into the job before it runs a single instruction
    if (req.new_session) flags |= CREATE_NEW_PROCESS_GROUP;
    PROCESS_INFORMATION pi{};
    if (!CreateProcessW(program.c_str(), cmd.data(), nullptr, nullptr, list.empty() ? FALSE : TRUE, flags,
                        env.empty() ? nullptr : env.data(), cwd.empty() ? nullptr : cwd.c_str(), &si.StartupInfo,
                        &pi))
        return last_error();
    Handle thread(pi.hThread);
    out.pid = static_cast<int>(pi.dwProcessId);
    out.process.reset(pi.hProcess);
    if (job) {
        if (!AssignProcessToJobObject(job, pi.hProcess)) {
            ec = last_error();
            TerminateProcess(pi.hProcess, 1);
            WaitForSingleObject(pi.hProcess, INFINITE);
            out.process.reset();
            return ec;
        }
        ResumeThread(pi.hThread);
    }
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code check_directory(const std::string& path) noexcept try {
    const DWORD attributes = GetFileAttributesW(widen(path).c_str());
    if (attributes == INVALID_FILE_ATTRIBUTES) return last_error();
    if (!(attributes & FILE_ATTRIBUTE_DIRECTORY)) return std::make_error_code(std::errc::not_a_directory);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

static int exit_code_of(DWORD code) noexcept {
    if ((code & 0xFFFF0000u) == kSignalExitBase && (code & 0xFFFFu) > 0 && (code & 0xFFFFu) < 65)
        return -static_cast<int>(code & 0xFFFFu);
    return static_cast<int>(code);
}

std::error_code wait_process(Child& c, const Deadline& deadline, bool& exited, int& exitcode) noexcept {
    std::size_t signalled = 1;
    native_handle h = c.process.get();
    if (auto ec = wait_objects(&h, 1, deadline, signalled)) return ec;
    if (signalled != 0) {
        exited = false;
        return {};
    }
    DWORD code = 0;
    if (!GetExitCodeProcess(c.process.get(), &code)) return last_error();
    exited = true;
    exitcode = exit_code_of(code);
    c.process.reset();
    return {};
}

std::error_code signal_process(Child& c, int signum) noexcept {
    if (!c.process) return {};
    if (signum != 15 && signum != 9) {
        // Any other signal (SIGINT, from Process::interrupt) goes through mp's own signal
        // channel, as mp::kill sends it: the child's event if it caught the signal, otherwise
        // TerminateProcess(0x10000 | signum). We hold the child's HANDLE, so its pid is still its.
        const std::error_code ec = signal_send(c.pid, signum);
        return ec == std::errc::no_such_process ? std::error_code{} : ec;
    }
    if (!TerminateProcess(c.process.get(), kSignalExitBase | static_cast<DWORD>(signum))) {
        DWORD code = 0;
        // Terminating a process that has already ended fails with ERROR_ACCESS_DENIED.
        if (GetExitCodeProcess(c.process.get(), &code) && code != STILL_ACTIVE) return {};
        return last_error();
    }
    return {};
}

std::error_code current_executable(std::string& out) noexcept try {
    std::wstring buf(MAX_PATH, L'\0');
    for (;;) {
        DWORD n = GetModuleFileNameW(nullptr, buf.data(), static_cast<DWORD>(buf.size()));
        if (n == 0) return last_error();
        if (n < buf.size()) {
            buf.resize(n);
            break;
        }
        buf.resize(buf.size() * 2);
    }
    out = narrow(buf);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code die_with_parent(int, bool) noexcept {
    // Nothing to do in the child: the parent placed it in a kill-on-close job (spawn_process),
    // which belongs to the process, whichever thread started the child.
    return {};
}

bool is_main_thread() noexcept { return true; }

std::error_code open_self_watch(Handle& out) noexcept {
    HANDLE h = nullptr;
    if (!DuplicateHandle(GetCurrentProcess(), GetCurrentProcess(), GetCurrentProcess(), &h,
                         SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, 0))
        return last_error();
    out.reset(h);
    return {};
}

std::error_code open_watch(int pid, Handle& out) noexcept {
    HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
    if (!h) return last_error();
    out.reset(h);
    return {};
}

std::error_code wait_watch(native_handle h, const Deadline& deadline, bool& ended) noexcept {
    std::size_t signalled = 1;
    if (auto ec = wait_objects(&h, 1, deadline, signalled)) return ec;
    ended = signalled == 0;
    return {};
}

std::error_code open_sentinel(Child& c, bool, Handle& out) noexcept {
    HANDLE h = nullptr;
    if (!c.process) {
        h = CreateEventW(nullptr, TRUE, TRUE, nullptr);  // ended and closed: ready for good
        if (!h) return last_error();
    } else if (!DuplicateHandle(GetCurrentProcess(), c.process.get(), GetCurrentProcess(), &h, SYNCHRONIZE,
                                FALSE, 0)) {
        return last_error();
    }
    out.reset(h);
    return {};
}

bool pid_exists(int pid) noexcept {
    if (pid <= 0) return false;
    HANDLE h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, static_cast<DWORD>(pid));
    if (!h) return GetLastError() == ERROR_ACCESS_DENIED;
    DWORD code = 0;
    const bool alive = GetExitCodeProcess(h, &code) && code == STILL_ACTIVE;
    CloseHandle(h);
    return alive;
}

const char* const* start_methods() noexcept {
    static const char* const methods[] = {"spawn", nullptr};  // no fork, so no forkserver either
    return methods;
}

}  // namespace mp::sys
