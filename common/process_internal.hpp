// common/process_internal.hpp - state shared by process.cpp, context.cpp and bootstrap.cpp.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "logging_internal.hpp"
#include "mp/process.hpp"
#include "sys/process.hpp"

namespace mp::detail {

// The state behind a Process. Threads may share a Process: `mu` guards the fields below it that
// change after start (the child, its sentinel, exitcode) and is held only for short steps (a
// reap that does not wait, a signal, opening the sentinel), never across a wait: a join waits
// on the sentinel without it, so that terminate(), is_alive() and other joins go on meanwhile,
// and a child is reaped by exactly one thread (no ECHILD for the others, no signal sent to a
// pid after its reap). The fields above `mu` are set before start and read-only after.
struct ProcessImpl {
    enum class State { created, started, closed };

    Process* owner = nullptr;      // changes only under globals().mu
    std::unique_ptr<TargetBase> target;
    std::string name;
    bool daemon = false;
    std::atomic<State> state{State::created};  // read by any thread, written by start()/close()
    bool is_current = false;       // the object describing the running process itself
    std::string method;            // empty: the default at start()
    std::vector<int> identity;     // Python's _identity: (1,), (1, 2) for a child's child ...
    int creator_pid = 0;           // only the creating process may start/join
    int run_exit_code = 0;         // what the default run() got from the target

    std::mutex mu;
    bool starting = false;         // start() is under way in some thread
    sys::Child child;
    // Opened by the first sentinel() call or the first wait. Shared, so that a thread waiting
    // on it keeps it open while close() lets go of the Process's copy.
    std::shared_ptr<sys::Handle> sentinel;
    std::optional<int> exitcode;
};

// The one door into Process's private state for the code in common/.
struct ProcessAccess {
    static ProcessImpl& impl(Process& p) { return *p.impl_; }
    static std::shared_ptr<ProcessImpl>& slot(Process& p) { return p.impl_; }
    static void set_target(Process& p, std::unique_ptr<TargetBase> t) { p.set_target(std::move(t)); }
};

// Per-process bookkeeping (Python keeps the same in multiprocessing.process).
struct Globals {
    std::mutex mu;                            // guards children, counter, default_method, owners
    std::vector<std::shared_ptr<ProcessImpl>> children;  // started, not yet known to have ended
    int counter = 0;                          // children named so far
    Process* current = nullptr;               // nullptr: the main process
    bool is_child = false;
    int parent_pid = 0;
    std::string parent_name;
    sys::Handle parent_watch;                 // spawn: pidfd / HANDLE of the parent
    bool daemon = false;                      // this process is daemonic
    std::string default_method;               // empty until set or first asked for
    std::atomic<bool> exit_handler_registered{false};
    std::atomic<bool> fork_thread_warning_given{false};
    std::vector<std::string> forkserver_preload;  // for the next forkserver to start
    int forkserver_on_error = 0;                  // an OnPreloadError
};

Globals& globals();

// The registries of spawn targets (process.cpp), by the names MP_TARGET and
// MP_REGISTER_PROCESS gave; nullptr when nothing has that name.
SpawnInvoker find_function_target(const std::string& name);
ProcessFactory find_process_factory(const std::string& name);

// The platform's default start method.
const char* platform_default_method() noexcept;

// Validates a start method name for this platform (ValueError if unknown).
void check_start_method(const std::string& method);

// Terminates running daemonic children and joins the others: Python's exit-time cleanup.
void finish_children() noexcept;

// In a process started by spawn whose main() did not call bootstrap() before using mp: prints
// why and ends the process.
void check_bootstrap_state();
bool bootstrap_was_called() noexcept;

// Runs a child's run(), reports an uncaught exception, cleans up and ends the process.
[[noreturn]] void run_child_and_exit(Process& self, bool forked);

// The demangled name of a type, for messages.
std::string type_name(const char* mangled);

// The spawn payload pipe and the parent watch come first in a child's inherited handles; the
// handles that arguments carry follow. A forkserver's child has them at the same numbers
// (without the payload pipe: its payload came over the server's socket).
constexpr std::size_t kFirstArgumentHandle = 2;

// Wire format of the bootstrap payload that a spawned child reads.
struct SpawnPayload {
    std::uint32_t magic = 0;
    std::uint32_t version = 0;
    std::string kind;
    std::string target;
    std::string target_payload;
    std::string name;
    bool daemon = false;
    std::vector<int> identity;
    std::int64_t parent_pid = 0;
    std::string parent_name;
    std::string start_method;
    std::vector<std::uint64_t> handles;  // how the passed handles are numbered in the child
    bool started_by_main_thread = true;  // see sys::die_with_parent
    std::int32_t log_level = kLogWarning;  // the parent's mp/logging.hpp level
    MP_FIELDS(magic, version, kind, target, target_payload, name, daemon, identity, parent_pid,
              parent_name, start_method, handles, started_by_main_thread, log_level)
};
constexpr std::uint32_t kSpawnMagic = 0x6d707370;  // "mpsp"
constexpr std::uint32_t kSpawnVersion = 4;
constexpr const char* kSpawnArg = "--mp-spawn";
constexpr const char* kForkserverArg = "--mp-forkserver";
constexpr const char* kSpawnEnv = "MP_SPAWNED_CHILD";

// What a forkserver is started with (the preloads set by set_forkserver_preload), sent to it
// once through its key pipe (sys/forkserver.hpp).
struct ForkserverSettings {
    std::vector<std::string> preload;
    int on_error = 0;  // an OnPreloadError
    int log_level = kLogWarning;  // the parent's mp/logging.hpp level
    MP_FIELDS(preload, on_error, log_level)
};

}  // namespace mp::detail
