// common/sys/process.hpp - the internal contract for creating, waiting for and signalling
// child processes. posix/process.cpp and win32/process.cpp implement it in this order.
//
// Two ways to make a child exist:
//   fork_process   POSIX only: the calling process is duplicated and both copies return.
//   spawn_process  both: a new program image starts from main() (posix_spawn / CreateProcessW).
// Exit codes are reported the way Python's multiprocessing reports them: the code the child
// exited with, or -signum for a signal death (POSIX) or a terminate()/kill() (Windows, where
// TerminateProcess(0x10000 | signum) stands for the signal).
#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "handle.hpp"

namespace mp::sys {

// What common/ asks about processes on this OS, as constants (so that it can leave out, with
// if constexpr, what the OS lacks):
//   kHasFork           fork_process exists, and with it the fork start method (POSIX).
//   kAnySignal         signal_process delivers any signal; Windows has only SIGTERM and SIGKILL
//                      to send to another program (both TerminateProcess).
//   kArg0MayHoldQuote  a program's argv[0] may hold '"'; a Windows C runtime reads a command
//                      line's first word up to the next quote, with no escapes.
//   kChildCredentials  SpawnRequest's umask, uid, gid, groups, restore_signals and close_fds
//                      exist (POSIX); Windows has no such steps between creation and start.
#if defined(_WIN32)
inline constexpr bool kHasFork = false;
inline constexpr bool kAnySignal = false;
inline constexpr bool kArg0MayHoldQuote = false;
inline constexpr bool kChildCredentials = false;
#else
inline constexpr bool kHasFork = true;
inline constexpr bool kAnySignal = true;
inline constexpr bool kArg0MayHoldQuote = true;
inline constexpr bool kChildCredentials = true;
#endif

// The parent's view of one child. On POSIX, `process` is a pidfd opened on first need (for a
// timed wait); on Windows it is the process HANDLE, opened by CreateProcessW.
// Only a forkserver's child has `status` (POSIX; sys/forkserver.hpp): it is not our child but
// the server's, `status` is its connection to the server, which carries the child's raw wait
// status once the server has reaped it, and `process` is the pidfd the server sent. The
// functions below handle such a child transparently: wait_process reads the status,
// signal_process signals through the pidfd, open_sentinel duplicates the connection.
// `tree` is the job object of a child started with process_group (Windows: the child and
// everything it starts are in it, see signal_process_tree); POSIX needs none, as the child's
// pid names its process group.
struct Child {
    int pid = 0;
    Handle process;
    Handle status;
    Handle tree;
};

// Duplicates the calling process (POSIX only). Returns 0 in the child, the child's pid in the
// parent, and -1 with ec set on failure.
int fork_process(std::error_code& ec) noexcept;

// What spawn_process starts: a program, its arguments (argv[0] included), extra environment
// entries, and the exact set of handles the child receives. On POSIX those handles arrive as
// fds 3, 4, 5 ... in list order and every other fd above 2 is closed; on Windows they arrive
// at their own values through PROC_THREAD_ATTRIBUTE_HANDLE_LIST and nothing else is inherited.
struct SpawnRequest {
    std::string program;                      // UTF-8 path
    std::vector<std::string> args;            // UTF-8, args[0] included
    std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) ours
    std::vector<native_handle> inherit;       // handles to pass
    native_handle stdin_handle = invalid_handle();   // invalid: share ours
    native_handle stdout_handle = invalid_handle();
    native_handle stderr_handle = invalid_handle();
    bool stderr_to_stdout = false;            // stderr is whatever stdout is (stderr_handle unused)
    bool kill_with_parent = false;            // Windows: put the child in a kill-on-close job
    // What mp::subprocess adds for programs that are not this one:
    std::string cwd;                          // UTF-8; empty: ours
    bool replace_env = false;                 // env is the whole environment, not additions to ours
    bool search_path = false;                 // a program named without a directory is looked up
    bool new_session = false;                 // POSIX setsid(); Windows CREATE_NEW_PROCESS_GROUP
    // The rest of mp::subprocess's options (Options in mp/subprocess.hpp says what each means):
    // Handles the child receives at their own numbers: POSIX fds that keep their value (stdio
    // 0-2 excepted: those are std*_handle); Windows handles added to the handle list, as
    // `inherit` is. Not used together with `inherit`.
    std::vector<native_handle> pass_fds;
    // args[0] is a command for the system shell, args[1..] the shell's own arguments ($0, $1 ...
    // on POSIX): POSIX runs /bin/sh -c args[0] args[1..]; Windows runs %ComSpec% (cmd.exe) with
    // the command line `/d /s /c "<the args, quoted for a C runtime and joined>"`. `program` is
    // then the shell to run instead (Options::executable), or empty for that default.
    bool shell = false;
    // The child leads a new process group (POSIX setpgid(0, 0); Windows: CREATE_NEW_PROCESS_GROUP
    // and a job object of its own in Child::tree), so that signal_process_tree reaches it and
    // everything it starts.
    bool process_group = false;
    // POSIX only (Windows refuses a request that sets them: function_not_supported). What the
    // child does between its fork and its exec: umask (-1: keep ours); setgroups, setgid and
    // setuid (in that order, before the exec; -1 / set_groups false: unchanged); restore_signals:
    // SIGPIPE and SIGXFSZ back at their default action; close_fds false: fds that are not
    // close-on-exec stay open in the child (mp's own are all close-on-exec).
    int umask = -1;
    long long uid = -1, gid = -1;
    bool set_groups = false;
    std::vector<long long> groups;
    bool restore_signals = true;
    bool close_fds = true;
};
// Errors are the exec's own, reported in the parent: a program that is missing is
// no_such_file_or_directory, one that may not be run is permission_denied (POSIX: posix_spawn
// runs the child's side of the launch under vfork and hands back its errno; Windows:
// CreateProcessW fails in the caller). A bad cwd fails the same way (POSIX chdir()s in the child
// just before the exec), so a caller that must say which was wrong asks check_directory.
// search_path: POSIX posix_spawnp (this process's PATH); Windows SearchPathW with ".exe" added
// to a name that has no extension (the program's folder, the system folders, the current
// folder, then PATH), much as CreateProcessW looks up a bare command-line name.
std::error_code spawn_process(const SpawnRequest& req, Child& out) noexcept;

// POSIX: the id of a user / group name (getpwnam_r, getgrnam_r); no_such_file_or_directory
// when there is no such name. Windows: function_not_supported (placeholders).
std::error_code user_id(const std::string& name, long long& id) noexcept;
std::error_code group_id(const std::string& name, long long& id) noexcept;

// Whether path names an existing directory: {} if so, else no_such_file_or_directory,
// not_a_directory or the error that looking it up gave.
std::error_code check_directory(const std::string& path) noexcept;

// Waits for the child to end, until the deadline (Deadline::now(): only looks). On return,
// exited says whether it ended and, if so, exitcode holds its code and the child is reaped
// (its pid may be reused from now on, so nothing may signal it afterwards).
std::error_code wait_process(Child& c, const Deadline& deadline, bool& exited, int& exitcode) noexcept;

// Sends signum: POSIX kill(2) (pidfd_send_signal for a forkserver's child). Windows:
// TerminateProcess with code 0x10000|signum for TERM and KILL; any other signal (INT, from
// Process::interrupt) goes through mp's own signal channel as mp::kill sends it
// (sys/signals.hpp: the child's event if it caught the signal, else TerminateProcess).
// A child that has already ended is not an error.
std::error_code signal_process(Child& c, int signum) noexcept;

// Sends signum to the child and everything it started: the group of a child started with
// process_group or new_session. POSIX killpg(pid, signum): the group outlives its leader, so
// this reaches the grandchildren also after the child was reaped. Windows: TerminateJobObject
// with 0x10000|signum on Child::tree for TERM and KILL (invalid_argument for any other, and
// for a child without a tree). A group that has no process left is not an error.
std::error_code signal_process_tree(Child& c, int signum) noexcept;

// Python's CTRL_C / SIGINT for a program (Popen::interrupt): POSIX kill(pid, SIGINT); Windows
// GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT) to the child's process group, which only a child
// started with new_session or process_group has (CTRL_C cannot be sent to another group).
std::error_code interrupt_process(Child& c) noexcept;

// The file the running program was loaded from (/proc/self/exe, GetModuleFileNameW), UTF-8.
std::error_code current_executable(std::string& out) noexcept;

// In a child that must not outlive its parent: PR_SET_PDEATHSIG(SIGKILL) plus a re-check that
// the parent (expected_parent_pid) is still ours, closing the race with a parent that died
// first. Linux sends that signal when the *thread* that started the child ends, so a child
// started by any other thread (which may end long before its process) watches the parent
// process instead: a thread of its own waits on the parent's pidfd and kills the child with
// SIGKILL when it fires. Windows arranges all this from the parent side (kill_with_parent), so
// there it does nothing.
std::error_code die_with_parent(int expected_parent_pid, bool started_by_main_thread) noexcept;

// Whether the calling thread is the process's main thread (always true on Windows, where
// nothing depends on it).
bool is_main_thread() noexcept;

// A handle through which another process can watch this one end: a pidfd of ourselves (POSIX)
// or a duplicate of our process HANDLE (Windows). A spawned child receives one to implement
// parent_process().is_alive() and join() without polling pids, which get reused.
std::error_code open_self_watch(Handle& out) noexcept;
// Opens a watch handle on another process by pid (used by a fork child for its parent).
std::error_code open_watch(int pid, Handle& out) noexcept;
// Waits until the deadline for the watched process to end.
std::error_code wait_watch(native_handle h, const Deadline& deadline, bool& ended) noexcept;

// Python's Process.sentinel: a handle that becomes ready when the child ends and stays ready,
// valid while the caller keeps it (also after the child was reaped). POSIX: a pidfd, readable
// once the process has exited; a child already reaped gets a pipe whose writer is closed
// (readable at once: end of file). Windows: a duplicate of the process HANDLE, signalled when it
// ends; a child whose HANDLE was already closed gets an event created signalled.
std::error_code open_sentinel(Child& c, bool reaped, Handle& out) noexcept;

// Whether `pid` still names a live process (a best effort answer: pids get reused).
bool pid_exists(int pid) noexcept;

// The start methods this OS offers, the default first, as a null-terminated list: "fork",
// "spawn", "forkserver" on POSIX; "spawn" on Windows.
const char* const* start_methods() noexcept;

}  // namespace mp::sys
