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
// added, as CreateProcessW does for a bare command-line name), in the PATH of the child's
// environment when env() replaces it (mp's rule, CPython's on POSIX), else in SearchPathW's own
// order; cwd is an argument of the same call; a failure to start is CreateProcessW's own
// error, in the caller. The rest of subprocess, the Windows way:
//   - pass_fds: the handles join the PROC_THREAD_ATTRIBUTE_HANDLE_LIST at their own values,
//     made inheritable for the one call (under a lock, as two threads may pass one handle).
//   - shell(): %ComSpec% (else the system folder's cmd.exe) with `/d /s /c "<command>"`,
//     CPython's form plus /d (no AutoRun commands from the registry). args[0] goes in as it is;
//     args[1..] are quoted for a C runtime. What the command says, cmd.exe does: & | < > ^ %
//     and the rest are its to parse, so a shell command must not hold untrusted text.
//   - Batch files (.bat, .cmd, found after the search, also with the trailing dots and spaces
//     Windows drops): CreateProcessW would run them through cmd.exe with our command line as
//     it is, which cmd.exe parses by rules of its own (CVE-2024-24576, "BatBadBut": an argument
//     `"&calc.exe` would run calc). mp runs the system cmd.exe itself, with each argument quoted
//     by cmd.exe's rules (see append_batch_argument; the facts come from Rust's std, which
//     does the same), and refuses, with invalid_argument (a ValueError from common/), an
//     argument holding CR or LF: those end cmd.exe's line and no quoting protects them.
//   - process_group() and start_new_session(): CREATE_NEW_PROCESS_GROUP (a console group of
//     its own, for CTRL_BREAK) and a job object of the child's own (Child::tree), joined while
//     the child is still suspended, so everything it starts is in it too. The job has no
//     KILL_ON_JOB_CLOSE: dropping a Popen leaves the tree alone, as a POSIX group outlives
//     its Popen; signal_process_tree ends it (TerminateJobObject), also after the child itself
//     has been reaped. A daemonic child (kill_with_parent) joins the daemon job first and
//     then its tree, which nests in it (nested jobs: Windows 8 and later, Wine 8 too).
//   - interrupt_process: GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pid); CTRL_C cannot be
//     sent to one group alone. It needs a console shared with the child (Wine 8 has none to
//     offer and fails it, error 12).
//   - umask, uid/gid/groups, restore_signals(false), close_fds(false) have no Windows step:
//     spawn_process refuses them (function_not_supported); user_id/group_id are placeholders.
// POSIX differs: fork+exec are two steps, a child is found by pid and reaped with waitpid, and
// SIGTERM/SIGKILL are real signals; the PATH search, the chdir, setsid()/setpgid() and the
// credentials happen in the child, between its fork and its exec; a process group needs no
// object (its leader's pid names it, killpg signals it); /bin/sh -c takes the shell command
// with args[1..] as $0, $1 ...; no program is ever re-parsed by a shell unless shell() asks.
// The rest of the spawn lesson is portable and lives in common/: process.cpp's start_spawn
// (the payload a new run of the program receives through an inherited pipe) and bootstrap.cpp
// (that run's side: mp::bootstrap reads the payload and becomes the child).
#include "../common/sys/process.hpp"

#include <windows.h>

#include <algorithm>
#include <cwctype>
#include <mutex>
#include <string_view>

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
// name without an extension), in `dirs` (a PATH value) if given, else in SearchPathW's own
// order (this program's folder, the current folder, the system folders, then our PATH). A
// name with a directory is taken as it is, or with ".exe" added when only that exists, as
// CreateProcessW would for a command-line name.
std::wstring searched_program(const std::wstring& name, const std::wstring* dirs) {
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
        const DWORD n = SearchPathW(dirs ? dirs->c_str() : nullptr, name.c_str(), L".exe", static_cast<DWORD>(found.size()),
                                    found.data(), nullptr);
        if (n == 0) return {};
        if (n < found.size()) {
            found.resize(n);
            return found;
        }
        found.resize(n);
    }
}

// The PATH of a replaced environment (the child's, where a bare name is looked up, as CPython
// does on POSIX), or null when the environment is ours or holds no PATH.
const std::wstring* child_path(const SpawnRequest& req, std::wstring& storage) {
    if (!req.replace_env) return nullptr;
    const std::wstring* found = nullptr;
    for (const auto& kv : req.env) {
        const std::wstring name = widen(kv.first);
        if (name.size() == 4 && same_name(name + L"=", L"PATH")) {  // the last one wins, as in the block
            storage = widen(kv.second);
            found = &storage;
        }
    }
    return found;
}

// cmd.exe in the system folder ("" if Windows cannot say where that is).
std::wstring system_cmd() {
    wchar_t dir[MAX_PATH];
    const UINT n = GetSystemDirectoryW(dir, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) return {};
    return std::wstring(dir, n) + L"\\cmd.exe";
}

// The shell for shell(): %ComSpec% as this process sees it (CPython's choice), else cmd.exe
// in the system folder.
std::wstring comspec() {
    std::wstring value(MAX_PATH, L'\0');
    for (;;) {
        const DWORD n = GetEnvironmentVariableW(L"ComSpec", value.data(), static_cast<DWORD>(value.size()));
        if (n == 0) return system_cmd();
        if (n < value.size()) {
            value.resize(n);
            return value;
        }
        value.resize(n);
    }
}

// Whether CreateProcessW would hand this file to cmd.exe: a name ending in .bat or .cmd, in
// any case, once the trailing dots and spaces that Windows drops from a file name are gone
// ("x.bat. ." is x.bat).
bool is_batch_file(const std::wstring& program) {
    std::size_t end = program.find_last_not_of(L". ");
    if (end == std::wstring::npos || end < 3) return false;
    std::wstring ext = program.substr(end - 3, 4);
    for (auto& ch : ext) ch = static_cast<wchar_t>(std::towlower(ch));
    return ext == L".bat" || ext == L".cmd";
}

// One argument of a batch file, written for cmd.exe's parser, which re-reads the command line
// of a batch file by rules of its own and expands %variables% in it, quotes or not.
//   - An argument is quoted unless it is all letters, digits and #$*+-./:?@\_ (or other
//     non-ASCII text): inside quotes, & | < > ^ ( ) , ; = and spaces are plain text to cmd.exe
//     and do not split arguments. An empty argument, and one ending in a backslash, are quoted
//     too (so that it is not lost, and so that a batch file's "%~1" cannot end in \").
//   - A quote inside is doubled: cmd.exe sees the quoting end and start again, so the rest
//     stays quoted, and a C runtime (a program the batch file passes %* on to) reads "" inside
//     quotes as one quote. Backslashes before a quote, and at the end, are doubled for the C
//     runtime, as in append_quoted.
//   - Each % becomes %%cd:~,% : cmd.exe leaves a lone % that is followed by % alone, and
//     %cd:~,% is an empty substring of the current directory, so no %NAME% is ever formed
//     (this needs command extensions, hence /e:ON). Delayed expansion (!NAME!) is off (/v:OFF).
//   - A CR or LF ends cmd.exe's command line wherever it stands, and nothing can quote it: such
//     an argument is refused (invalid_argument), as Rust's std refuses it. NUL cannot be in a
//     command line at all (common/ refuses it before we get here).
bool append_batch_argument(std::wstring& cmd, const std::wstring& arg) {
    bool quote = arg.empty() || arg.back() == L'\\';
    for (wchar_t ch : arg) {
        if (ch == L'\r' || ch == L'\n' || ch == L'\0') return false;
        const bool plain = (ch >= L'a' && ch <= L'z') || (ch >= L'A' && ch <= L'Z') || (ch >= L'0' && ch <= L'9') ||
                           std::wstring_view(L"#$*+-./:?@\\_").find(ch) != std::wstring_view::npos;
        const bool control = ch < 0x20 || (ch >= 0x7f && ch <= 0x9f);
        if ((ch < 0x80 && !plain) || control) quote = true;
    }
    if (quote) cmd += L'"';
    std::size_t backslashes = 0;
    for (wchar_t ch : arg) {
        if (ch == L'\\') {
            ++backslashes;
            cmd += ch;
            continue;
        }
        if (ch == L'"') {
            cmd.append(backslashes, L'\\');  // n backslashes become 2n before the quote
            cmd += L'"';                       // and the quote is doubled
        } else if (ch == L'%') {
            cmd += L"%%cd:~,";
        }
        backslashes = 0;
        cmd += ch;
    }
    if (quote) {
        cmd.append(backslashes, L'\\');
        cmd += L'"';
    }
    return true;
}

// The command line that runs a batch file through cmd.exe with no argument able to become a
// command: "<cmd.exe>" /e:ON /v:OFF /d /s /c ""<script>" <arguments>". /d skips the AutoRun
// commands of the registry, /s has cmd.exe drop exactly the first and the last quote of what
// follows /c. The script's own name gets the % treatment too (a file name may hold %, never a
// quote). args[0] is not passed: a batch file's %0 is its path.
std::error_code batch_command_line(const std::wstring& cmd_exe, const std::wstring& script,
                                   const std::vector<std::string>& args, std::wstring& cmd) {
    const auto refused = std::make_error_code(std::errc::invalid_argument);
    if (script.find_first_of(L"\"\r\n") != std::wstring::npos) return refused;
    cmd = L"\"" + cmd_exe + L"\" /e:ON /v:OFF /d /s /c \"\"";
    for (wchar_t ch : script) {
        if (ch == L'%') cmd += L"%%cd:~,";
        cmd += ch;
    }
    cmd += L'"';
    for (std::size_t i = 1; i < args.size(); ++i) {
        cmd += L' ';
        if (!append_batch_argument(cmd, widen(args[i]))) return refused;
    }
    cmd += L'"';
    return {};
}

// shell(): "<comspec>" /d /s /c "<args[0]> <args[1..]>", CPython's form with /d added (no
// AutoRun commands). args[0] is a command line and goes in as it is (CPython passes a string
// command unchanged); the rest are quoted for a C runtime, as list2cmdline does.
std::wstring shell_command_line(const std::wstring& shell, const std::vector<std::string>& args) {
    std::wstring cmd = L"\"" + shell + L"\" /d /s /c \"";
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (i == 0) {
            cmd += widen(args[0]);
        } else {
            cmd += L' ';
            append_quoted(cmd, widen(args[i]));
        }
    }
    cmd += L'"';
    return cmd;
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

// Flips the inherit flag on for the duration of one CreateProcessW and back afterwards, so
// that the listed handles reach the child at their own values. A handle that was inheritable
// already is left as it was.
class InheritableForNow {
public:
    ~InheritableForNow() {
        for (HANDLE h : handles_) SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
    }
    bool add(HANDLE h) {
        DWORD flags = 0;
        if (!GetHandleInformation(h, &flags)) return false;
        if (flags & HANDLE_FLAG_INHERIT) return true;
        if (!SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) return false;
        handles_.push_back(h);
        return true;
    }

private:
    std::vector<HANDLE> handles_;
};

// pass_fds names handles the caller owns, which two threads may pass to two children at once:
// each spawn that flips their flag holds this lock from the flip to the flip back, so that
// neither turns the flag off under the other's CreateProcessW. (`inherit` handles are the
// spawn's own, and the standard handles are fresh duplicates: they need no lock.)
std::mutex& pass_fds_lock() {
    static std::mutex mu;
    return mu;
}

}  // namespace

std::error_code spawn_process(const SpawnRequest& req, Child& out) noexcept try {
    // The POSIX steps between fork and exec have no Windows form: refused, never ignored
    // (common/ refuses them first, see kChildCredentials).
    if (req.umask != -1 || req.uid != -1 || req.gid != -1 || req.set_groups || !req.restore_signals || !req.close_fds)
        return std::make_error_code(std::errc::function_not_supported);
    if (req.args.empty()) return std::make_error_code(std::errc::invalid_argument);
    std::wstring program, cmd;
    if (req.shell) {
        std::wstring path_storage;
        if (req.program.empty())
            program = comspec();
        else  // Options::executable: the shell to run instead
            program = req.search_path ? searched_program(widen(req.program), child_path(req, path_storage))
                                      : widen(req.program);
        if (program.empty()) return os_error(ERROR_FILE_NOT_FOUND);
        cmd = shell_command_line(program, req.args);
    } else {
        std::wstring path_storage;
        program = req.search_path ? searched_program(widen(req.program), child_path(req, path_storage))
                                  : widen(req.program);
        if (program.empty()) return os_error(ERROR_FILE_NOT_FOUND);
        if (is_batch_file(program)) {
            // CreateProcessW would run cmd.exe /c with our command line as it is (BatBadBut):
            // we run cmd.exe ourselves, with a command line written for it.
            const std::wstring cmd_exe = system_cmd();
            if (cmd_exe.empty()) return os_error(ERROR_FILE_NOT_FOUND);
            if (auto ec = batch_command_line(cmd_exe, program, req.args, cmd)) return ec;
            program = cmd_exe;
        } else {
            for (std::size_t i = 0; i < req.args.size(); ++i) {
                if (i) cmd += L' ';
                append_quoted(cmd, widen(req.args[i]));
            }
        }
    }
    std::wstring env = req.env.empty() && !req.replace_env ? std::wstring() : environment_block(req.env, req.replace_env);
    const std::wstring cwd = widen(req.cwd);

    std::unique_lock<std::mutex> pass_lock;
    if (!req.pass_fds.empty()) pass_lock = std::unique_lock<std::mutex>(pass_fds_lock());
    std::vector<HANDLE> list;
    InheritableForNow inheritable;
    for (const auto* handles : {&req.inherit, &req.pass_fds}) {
        for (HANDLE h : *handles) {
            if (std::find(list.begin(), list.end(), h) != list.end()) continue;  // named once only
            if (!inheritable.add(h)) return last_error();
            list.push_back(h);
        }
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
    // A tree of its own: a job that holds the child and, by default, everything it starts.
    // Without KILL_ON_JOB_CLOSE: closing the Popen (and this handle) leaves the tree running,
    // as a POSIX process group outlives whoever knew its id; only signal_process_tree ends it.
    Handle tree;
    if (req.process_group || req.new_session) {
        HANDLE t = CreateJobObjectW(nullptr, nullptr);  // no SECURITY_ATTRIBUTES: not inheritable
        if (!t) return last_error();
        tree.reset(t);
    }

    DWORD flags = EXTENDED_STARTUPINFO_PRESENT | CREATE_UNICODE_ENVIRONMENT;
    if (job || tree) flags |= CREATE_SUSPENDED;  // into the job before it runs a single instruction
    if (req.new_session || req.process_group) flags |= CREATE_NEW_PROCESS_GROUP;
    PROCESS_INFORMATION pi{};
    if (!CreateProcessW(program.c_str(), cmd.data(), nullptr, nullptr, list.empty() ? FALSE : TRUE, flags,
                        env.empty() ? nullptr : env.data(), cwd.empty() ? nullptr : cwd.c_str(), &si.StartupInfo,
                        &pi))
        return last_error();
    Handle thread(pi.hThread);
    out.pid = static_cast<int>(pi.dwProcessId);
    out.process.reset(pi.hProcess);
    // The daemon job first, then the tree: a job that a process joins while it is in another
    // becomes nested in that one (Windows 8 and later; Wine 8 too), so both hold the child.
    for (HANDLE j : {job, tree.get()}) {
        if (j && !AssignProcessToJobObject(j, pi.hProcess)) {
            ec = last_error();
            TerminateProcess(pi.hProcess, 1);
            WaitForSingleObject(pi.hProcess, INFINITE);
            out.process.reset();
            return ec;
        }
    }
    if (flags & CREATE_SUSPENDED) ResumeThread(pi.hThread);
    out.tree = std::move(tree);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code user_id(const std::string&, long long&) noexcept {
    // user_id() is POSIX-only: Windows has no numeric users to switch a child to.
    return std::make_error_code(std::errc::function_not_supported);
}

std::error_code group_id(const std::string&, long long&) noexcept {
    // group_id() is POSIX-only: Windows has no numeric groups to switch a child to.
    return std::make_error_code(std::errc::function_not_supported);
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

std::error_code signal_process_tree(Child& c, int signum) noexcept {
    if (!c.tree || (signum != 15 && signum != 9)) return std::make_error_code(std::errc::invalid_argument);
    // Every process in the job ends at once, with the code that stands for the signal; an empty
    // job (the tree has ended) is no error.
    if (!TerminateJobObject(c.tree.get(), kSignalExitBase | static_cast<DWORD>(signum))) return last_error();
    return {};
}

std::error_code interrupt_process(Child& c) noexcept {
    // Only the leader of a console process group of its own may get CTRL_BREAK alone (pid 0
    // would mean every process on our console, us included); a child with a tree is one.
    if (!c.tree) return std::make_error_code(std::errc::invalid_argument);
    if (!c.process) return {};
    if (!GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, static_cast<DWORD>(c.pid))) {
        DWORD code = 0;
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
