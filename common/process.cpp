// common/process.cpp - the portable half of mp::Process: its state machine (the same checks,
// in the same words, as CPython's BaseProcess), the registry of children, and the two start
// paths. Everything OS-specific goes through common/sys/process.hpp: posix/process.cpp and
// win32/process.cpp tell how each OS makes, waits for and signals a child. The fork/spawn
// lesson reads in this order: start_fork and become_forked_child (fork: the copy carries on
// from here), start_spawn (spawn: a new run of the program gets a payload), then
// common/bootstrap.cpp (that new run becoming the child). start_forkserver sends the same
// payload to the forkserver (sys/forkserver.hpp, posix/forkserver.cpp), whose forked child
// runs it as a spawned child does.
#include "process_internal.hpp"
#include "timeout.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <typeindex>
#include <unordered_map>

#if defined(__GNUC__) || defined(__clang__)
#include <cxxabi.h>
#endif

#include "mp/context.hpp"
#include "sys/forkserver.hpp"
#include "sys/os.hpp"
#include "sys/tracker.hpp"

namespace mp {
namespace detail {

Globals& globals() {
    // Never destroyed: children may still be finished from atexit handlers that run after
    // static destructors would have.
    static Globals* g = new Globals;
    return *g;
}

std::string type_name(const char* mangled) {
#if defined(__GNUC__) || defined(__clang__)
    int status = 0;
    char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    if (status == 0 && d) {
        std::string s(d);
        std::free(d);
        return s;
    }
#endif
    return mangled;
}

// ---- registries of spawn targets -----------------------------------------------------------

namespace {

std::map<std::string, SpawnInvoker>& function_registry() {
    static std::map<std::string, SpawnInvoker> m;
    return m;
}

struct ProcessType {
    std::string name;
    ProcessFactory make;
    ProcessEncoder encode;
};
std::unordered_map<std::type_index, ProcessType>& process_types() {
    static std::unordered_map<std::type_index, ProcessType> m;
    return m;
}
std::map<std::string, ProcessFactory>& process_factories() {
    static std::map<std::string, ProcessFactory> m;
    return m;
}

// The same file name may be registered from two translation units (two static functions
// called `work`). Registration runs in one fixed order within a given program, and a spawned
// child is the same program, so numbering the repeats keeps the names stable between parent
// and child.
std::string unique_name(const char* base, bool (*taken)(const std::string&)) {
    std::string name = base;
    for (int n = 2; taken(name); ++n) name = std::string(base) + "#" + std::to_string(n);
    return name;
}

}  // namespace

std::string register_function_target(const char* base_name, SpawnInvoker invoke) {
    std::string name = unique_name(base_name, [](const std::string& n) {
        return function_registry().count(n) != 0;
    });
    function_registry().emplace(name, invoke);
    return name;
}

void register_process_type(const std::type_info& type, const char* name, ProcessFactory make,
                           ProcessEncoder encode) {
    std::string given = unique_name(name, [](const std::string& n) {
        return process_factories().count(n) != 0;
    });
    process_factories().emplace(given, make);
    process_types()[std::type_index(type)] = ProcessType{given, make, encode};
}

namespace {
std::map<std::string, TaskInvoker>& task_registry() {
    static std::map<std::string, TaskInvoker> m;
    return m;
}
}  // namespace

void register_task_function(const std::string& name, TaskInvoker invoke) { task_registry().emplace(name, invoke); }

TaskInvoker find_task_function(const std::string& name) {
    auto it = task_registry().find(name);
    return it == task_registry().end() ? nullptr : it->second;
}

SpawnInvoker find_function_target(const std::string& name) {
    auto it = function_registry().find(name);
    return it == function_registry().end() ? nullptr : it->second;
}

ProcessFactory find_process_factory(const std::string& name) {
    auto it = process_factories().find(name);
    return it == process_factories().end() ? nullptr : it->second;
}

namespace {
// The method a payload is being built for, named in the messages below (the target's own
// describe_for_spawn throws them, deep in mp/process.hpp, without knowing the method).
thread_local const char* t_payload_method = "spawn";
}  // namespace

void throw_unregistered_function(const std::string& signature_hint) {
    throw ValueError(
        std::string("the ") + t_payload_method + " start method cannot find this target function (type " +
        type_name(signature_hint.c_str()) +
        "): a spawned child (and a forkserver's) is a new run of the program and finds its target by name. Register "
        "the function with MP_TARGET(function_name) at namespace scope, or use the fork context");
}

void throw_not_spawnable_callable(const char* type) {
    throw ValueError(
        std::string("the ") + t_payload_method + " start method cannot send a lambda or function object (" +
        type_name(type) + ") to a child: the child is a new run of the program, where captured state does not "
        "exist. Use a plain function registered with MP_TARGET(function_name) and pass the state as "
        "arguments, or use the fork context (mp::get_context(\"fork\"))");
}

void throw_not_encodable_arguments() {
    throw TypeError(
        std::string("the ") + t_payload_method + " start method cannot encode these arguments: each argument must convert to the "
        "target's parameter type, and every parameter type must be one the codec supports "
        "(see mp/codec.hpp). Use the fork context to pass anything else");
}

// ---- the registry of children --------------------------------------------------------------
//
// Locks: globals().mu guards the registry; a child's own ProcessImpl::mu guards its reaping.
// One may take a child's mu and then globals().mu, never the other way round.

namespace {

void forget_child(const ProcessImpl* impl) {
    auto& g = globals();
    std::lock_guard<std::mutex> lock(g.mu);
    g.children.erase(std::remove_if(g.children.begin(), g.children.end(),
                                    [&](const std::shared_ptr<ProcessImpl>& c) { return c.get() == impl; }),
                     g.children.end());
}

void remember_child(const std::shared_ptr<ProcessImpl>& impl) {
    auto& g = globals();
    std::lock_guard<std::mutex> lock(g.mu);
    g.children.push_back(impl);
}

// With impl.mu held: reaps the child if it has ended, without waiting; true when it has.
bool reap_now(ProcessImpl& impl) {
    if (impl.exitcode) return true;
    bool exited = false;
    int code = 0;
    if (auto ec = sys::wait_process(impl.child, sys::Deadline::now(), exited, code))
        raise_os_error(ec, "waiting for process " + std::to_string(impl.child.pid));
    if (!exited) return false;
    impl.exitcode = code;
    forget_child(&impl);
    return true;
}

// With impl.mu held: the handle that becomes ready when the child ends (see Process::sentinel).
const std::shared_ptr<sys::Handle>& sentinel_of(ProcessImpl& impl) {
    if (!impl.sentinel) {
        auto h = std::make_shared<sys::Handle>();
        if (auto ec = sys::open_sentinel(impl.child, impl.exitcode.has_value(), *h))
            raise_os_error(ec, "opening the sentinel of process " + std::to_string(impl.child.pid));
        impl.sentinel = std::move(h);
    }
    return impl.sentinel;
}

// Waits until the child ends or the deadline passes, and reaps it; true when it has ended.
// The wait itself is on the sentinel, without impl.mu: other threads may signal, look at or
// wait for the same child meanwhile, and whichever thread comes first reaps it.
bool wait_for_exit(ProcessImpl& impl, const sys::Deadline& deadline) {
    for (;;) {
        std::shared_ptr<sys::Handle> watch;
        {
            std::lock_guard<std::mutex> lk(impl.mu);
            if (reap_now(impl)) return true;
            if (deadline.passed()) return false;
            watch = sentinel_of(impl);
        }
        bool ended = false;
        if (auto ec = sys::wait_watch(watch->get(), deadline, ended))
            raise_os_error(ec, "waiting for process " + std::to_string(impl.child.pid));
    }
}

}  // namespace

void finish_children() noexcept {
    auto& g = globals();
    std::vector<std::shared_ptr<ProcessImpl>> snapshot;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        if (g.children.empty()) return;  // the common case in a child: no allocation at all
        snapshot = g.children;
    }
    try {
        for (const auto& impl : snapshot) {
            std::lock_guard<std::mutex> lk(impl->mu);
            if (impl->daemon && !reap_now(*impl)) sys::signal_process(impl->child, 15);
        }
        for (const auto& impl : snapshot) wait_for_exit(*impl, sys::Deadline::never());
    } catch (...) {
        // At exit there is nobody left to tell: the children that could not be waited for
        // are the OS's to reap.
    }
    std::lock_guard<std::mutex> lock(g.mu);
    g.children.clear();
}

// ---- running in the child ------------------------------------------------------------------

void run_child_and_exit(Process& self, bool forked) {
    int code = 0;
    try {
        self.run();
        code = ProcessAccess::impl(self).run_exit_code;
    } catch (const SystemExit& e) {
        code = e.code();
    } catch (const std::exception& e) {
        sys::flush_std_streams();
        log(kLogError, "Process %s:\n%s: %s", self.name().c_str(), type_name(typeid(e).name()).c_str(), e.what());
        code = 1;
    } catch (...) {
        sys::flush_std_streams();
        log(kLogError, "Process %s:\nan exception that is not a std::exception", self.name().c_str());
        code = 1;
    }
    finish_children();
    sys::forkserver_stop();  // one this child started (after its children: it reports on them)
    // A resource tracker this child started ends before the child does, after its forkserver (it removes what is
    // still registered): a fork child skips the exit handlers, and no tracker is left orphaned.
    sys::stop_tracker();
    sys::flush_std_streams();
    if (forked) sys::exit_now(code);  // the parent's atexit handlers and statics are not ours
    std::exit(code);                  // a spawned child is its own program: a normal exit
}

}  // namespace detail

using detail::globals;
using detail::ProcessImpl;
using State = detail::ProcessImpl::State;

// ---- construction --------------------------------------------------------------------------

namespace {

std::string name_for(const std::vector<int>& identity) {
    std::string name = "Process-";
    for (std::size_t i = 0; i < identity.size(); ++i) name += (i ? ":" : "") + std::to_string(identity[i]);
    return name;
}

std::shared_ptr<ProcessImpl> new_impl(Process* owner) {
    auto impl = std::make_shared<ProcessImpl>();
    auto& g = globals();
    impl->owner = owner;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        if (g.current) impl->identity = detail::ProcessAccess::impl(*g.current).identity;
        impl->identity.push_back(++g.counter);
    }
    impl->name = name_for(impl->identity);
    impl->creator_pid = sys::current_pid();
    return impl;
}

void check_usable(const std::shared_ptr<ProcessImpl>& impl) {
    if (!impl) throw ValueError("process object was moved from");
    if (impl->state == State::closed) throw ValueError("process object is closed");
}

void check_own_child(const ProcessImpl& impl, const char* verb) {
    if (impl.is_current || impl.creator_pid != sys::current_pid())
        throw ProcessError(std::string("can only ") + verb + " a child process");
}

}  // namespace

Process::Process() : impl_(new_impl(this)) {}

Process::Process(const Context& ctx) : Process() { impl_->method = ctx.get_start_method(); }

// The impl's back pointer changes under the registry lock: active_children reads it there.
static void set_owner(ProcessImpl* impl, Process* owner) noexcept {
    if (!impl) return;
    std::lock_guard<std::mutex> lock(globals().mu);
    impl->owner = owner;
}

Process::Process(Process&& other) noexcept : impl_(std::move(other.impl_)) { set_owner(impl_.get(), this); }

Process& Process::operator=(Process&& other) noexcept {
    if (this != &other) {
        Process doomed(std::move(*this));  // finishes our old child, if any, as ~Process does
        impl_ = std::move(other.impl_);
        set_owner(impl_.get(), this);
    }
    return *this;
}

Process::~Process() {
    if (!impl_) return;
    set_owner(impl_.get(), nullptr);
    if (impl_->is_current || impl_->state != State::started) return;
    if (impl_->creator_pid != sys::current_pid()) return;  // a fork child's copy of a parent's object
    try {
        if (impl_->daemon) {
            std::lock_guard<std::mutex> lk(impl_->mu);
            if (!detail::reap_now(*impl_)) sys::signal_process(impl_->child, 15);
        }
        detail::wait_for_exit(*impl_, sys::Deadline::never());
    } catch (...) {
        // A destructor cannot report it; the child is the OS's to reap.
    }
    detail::forget_child(impl_.get());
}

void Process::set_target(std::unique_ptr<detail::TargetBase> target) { impl_->target = std::move(target); }

void Process::run() {
    if (impl_->target) impl_->run_exit_code = impl_->target->call();
}

// ---- start ---------------------------------------------------------------------------------

namespace {

void register_exit_handler() {
    auto& g = globals();
    if (g.exit_handler_registered.exchange(true)) return;
    std::atexit([] {
        detail::finish_children();
        sys::forkserver_stop();  // after the children: it reports how they ended
    });
}

void warn_if_threaded() {
    auto& g = globals();
    if (g.fork_thread_warning_given.load(std::memory_order_relaxed)) return;
    const int threads = sys::thread_count();
    if (threads <= 1 || g.fork_thread_warning_given.exchange(true)) return;
    detail::log(detail::kLogWarning,
                "mp: warning: this process (pid %d) has %d threads, and the fork start method copies "
                "only the calling one: a lock held by another thread stays locked forever in the "
                "child. Use the spawn context (mp::get_context(\"spawn\")) in multithreaded programs.",
                sys::current_pid(), threads);
}

const std::string& executable_path() {
    static const std::string path = [] {
        std::string p;
        if (auto ec = sys::current_executable(p)) raise_os_error(ec, "finding this program's executable");
        return p;
    }();
    return path;
}

}  // namespace

namespace detail {

// The child side of a fork: become the process described by `self`. Every page this writes
// is a copy-on-write fault (a malloc alone costs about seven), so it allocates nothing and
// touches little: the registry lock, a few fields, and the standard streams on the way out.
[[noreturn]] static void become_forked_child(Process& self, int parent_pid, const std::string& parent_name,
                                             bool started_by_main_thread) {
    auto& g = globals();
    ProcessImpl& impl = ProcessAccess::impl(self);
    // The parent's children are not ours. Their entries are left behind, not destroyed: that
    // would write to every one of their reference counts (copy-on-write faults), and this
    // process ends with _exit, which frees everything anyway.
    new (&g.children) std::vector<std::shared_ptr<ProcessImpl>>();
    g.counter = 0;
    g.current = &self;
    g.is_child = true;
    g.parent_pid = parent_pid;
    g.parent_name = parent_name;  // short names stay in the string's own buffer: no allocation
    g.daemon = impl.daemon;
    g.exit_handler_registered.store(false, std::memory_order_relaxed);
    // The parent's watch handle (if it is itself a spawned child) is the parent's business;
    // a fork child tells whether its parent lives from getppid(), which changes when the
    // parent dies.
    g.parent_watch.release();
    impl.is_current = true;
    if (impl.daemon && sys::die_with_parent(parent_pid, started_by_main_thread)) sys::exit_now(1);
    run_child_and_exit(self, true);
}

static void start_fork(Process& self) {
    ProcessImpl& impl = ProcessAccess::impl(self);
    const std::shared_ptr<ProcessImpl>& shared = ProcessAccess::slot(self);
    warn_if_threaded();
    sys::flush_std_streams();  // or buffered output would be written by both processes
    const int parent_pid = sys::current_pid();
    const bool from_main_thread = sys::is_main_thread();
    const std::string parent_name = current_process().name();
    auto& g = globals();
    std::error_code ec;
    int pid;
    {
        // Holding the registry lock across fork() means no other thread holds it at that
        // moment, so the child's copy is unlocked once the child releases its own hold. The
        // entry goes in first, so that the parent writes as little as possible while its
        // pages are still shared with the child.
        std::unique_lock<std::mutex> lock(g.mu);
        g.children.push_back(shared);
        impl.state = State::started;
        pid = sys::fork_process(ec);
        if (pid == 0) {
            lock.unlock();
            become_forked_child(self, parent_pid, parent_name, from_main_thread);
        }
        if (pid < 0) {
            g.children.pop_back();
            impl.state = State::created;
        } else {
            // Before the registry lock goes: another thread's active_children() may reap
            // this child as soon as it can see it, and must see its pid.
            impl.child.pid = pid;
        }
    }
    if (pid < 0) raise_os_error(ec, "fork");
}

// The bootstrap payload a spawned or forkserver child runs (encoded SpawnPayload), and the
// handles to pass after the parent watch: the payload numbers each one as the child will have it
// (inherited_value at kFirstArgumentHandle + its index).
static void build_payload(Process& self, const char* method, std::string& wire, std::vector<sys::native_handle>& args) {
    ProcessImpl& impl = ProcessAccess::impl(self);
    if (!bootstrap_was_called())
        throw RuntimeError(std::string("the ") + method +
                           " start method runs this program again from main() in the child, so main() must "
                           "call mp::bootstrap(argc, argv) before anything else (the C++ form of Python's "
                           "`if __name__ == '__main__':` guard)");
    struct Method {
        explicit Method(const char* m) { t_payload_method = m; }
        ~Method() { t_payload_method = "spawn"; }
    } naming(method);

    SpawnPayload p;
    p.magic = kSpawnMagic;
    p.version = kSpawnVersion;
    p.log_level = log_level_number();
    HandleList handles;
    if (typeid(self) != typeid(Process)) {
        auto it = process_types().find(std::type_index(typeid(self)));
        if (it == process_types().end())
            throw ValueError(std::string("the ") + method + " start method must re-create " +
                             type_name(typeid(self).name()) +
                             " in a new run of the program: give the class MP_FIELDS(...) naming the "
                             "members its run() needs, register it with MP_REGISTER_PROCESS(" +
                             type_name(typeid(self).name()) + ") at namespace scope, or use the fork context");
        p.kind = "process";
        p.target = it->second.name;
        Encoder enc(p.target_payload, &handles);
        it->second.encode(self, enc);
    } else if (impl.target) {
        SpawnTarget t;
        impl.target->describe_for_spawn(t);
        p.kind = t.kind;
        p.target = std::move(t.name);
        p.target_payload = std::move(t.payload);
        handles = std::move(t.handles);
    } else {
        p.kind = "none";
    }
    p.name = impl.name;
    p.daemon = impl.daemon;
    p.identity = impl.identity;
    p.parent_pid = sys::current_pid();
    p.parent_name = current_process().name();
    p.start_method = get_start_method();
    p.started_by_main_thread = sys::is_main_thread();
    for (std::uintptr_t h : handles.values()) {
        args.push_back(sys::handle_from_value(h));
        p.handles.push_back(sys::inherited_value(args.back(), kFirstArgumentHandle + args.size() - 1));
    }
    encode_to(wire, p);
}

static void start_spawn(Process& self) {
    ProcessImpl& impl = ProcessAccess::impl(self);
    std::string payload;
    std::vector<sys::native_handle> args;
    build_payload(self, "spawn", payload, args);

    sys::PipeEnds pipe;
    if (auto ec = sys::make_pipe(pipe)) raise_os_error(ec, "creating the bootstrap pipe");
    sys::Handle watch;
    if (auto ec = sys::open_self_watch(watch)) raise_os_error(ec, "opening a handle on this process");
    std::vector<sys::native_handle> inherit = {pipe.read.get(), watch.get()};
    inherit.insert(inherit.end(), args.begin(), args.end());

    std::string wire(8, '\0');
    for (int i = 0; i < 8; ++i) wire[static_cast<std::size_t>(i)] = static_cast<char>((std::uint64_t{payload.size()} >> (8 * i)) & 0xff);
    wire += payload;

    // Not needed for correctness as it is before a fork, but it keeps the parent's earlier
    // output ahead of the child's when both go to the same pipe or file.
    sys::flush_std_streams();

    sys::SpawnRequest req;
    req.program = executable_path();
    req.args = {req.program, kSpawnArg, std::to_string(sys::inherited_value(pipe.read.get(), 0)),
                std::to_string(sys::inherited_value(watch.get(), 1))};
    req.env = {{kSpawnEnv, "1"}};
    req.inherit = std::move(inherit);
    req.kill_with_parent = impl.daemon;
    if (auto ec = sys::spawn_process(req, impl.child)) raise_os_error(ec, "spawning " + req.program);
    pipe.read.reset();
    // A child that dies before reading leaves the write with a broken pipe; its exit code will
    // say what happened, so the write's own error adds nothing.
    sys::write_all(pipe.write.get(), wire.data(), wire.size());
}

// How this process's forkserver is started (posix/forkserver.cpp keeps the server itself).
static sys::ForkserverLaunch forkserver_launch() {
    sys::ForkserverLaunch how;
    how.program = executable_path();
    how.marker = kForkserverArg;
    how.env = {{kSpawnEnv, "1"}};  // a main() that uses mp before mp::bootstrap stops, as in spawn
    ForkserverSettings settings;
    {
        auto& g = globals();
        std::lock_guard<std::mutex> lock(g.mu);
        settings.preload = g.forkserver_preload;
        settings.on_error = g.forkserver_on_error;
    }
    settings.log_level = log_level_number();
    encode_to(how.settings, settings);
    return how;
}

static void start_forkserver(Process& self) {
    ProcessImpl& impl = ProcessAccess::impl(self);
    std::string payload;
    std::vector<sys::native_handle> handles;
    build_payload(self, "forkserver", payload, handles);
    sys::Handle watch;
    if (auto ec = sys::open_self_watch(watch)) raise_os_error(ec, "opening a handle on this process");
    handles.insert(handles.begin(), watch.get());
    sys::flush_std_streams();  // the child writes to our stdout and stderr: ours goes first
    sys::ForkserverFate fate;
    if (auto ec = sys::forkserver_start_child(forkserver_launch(), payload, handles, impl.daemon, impl.child, fate)) {
        std::string what = "asking the forkserver for a child";
        if (ec == std::errc::permission_denied) what += " (the server refused our key)";
        if (ec == std::errc::operation_not_permitted) what += " (the server did not prove it holds our key)";
        if (fate.pid > 0 && fate.ended)
            what += " (the forkserver, pid " + std::to_string(fate.pid) + ", ended with exit code " +
                    std::to_string(fate.exitcode) +
                    " before it answered: its message is on stderr; a preload that failed under "
                    "OnPreloadError::fail stops it)";
        raise_os_error(ec, what);
    }
}

}  // namespace detail

void Process::start() {
    check_usable(impl_);
    if (impl_->creator_pid != sys::current_pid())
        throw ProcessError("can only start a process object created by current process");
    if (globals().daemon) throw ProcessError("daemonic processes are not allowed to have children");
    {
        // One start per object, also when two threads call it at once.
        std::lock_guard<std::mutex> lk(impl_->mu);
        if (impl_->state != State::created || impl_->is_current || impl_->starting)
            throw ProcessError("cannot start a process twice");
        impl_->starting = true;
    }
    struct Unmark {
        detail::ProcessImpl& impl;
        ~Unmark() {
            std::lock_guard<std::mutex> lk(impl.mu);
            impl.starting = false;
        }
    } unmark{*impl_};
    detail::check_bootstrap_state();
    if (impl_->method.empty()) impl_->method = get_start_method();
    detail::check_start_method(impl_->method);
    active_children();  // reaps finished children, as Python's start() does
    register_exit_handler();
    if (impl_->method == "fork") {
        detail::start_fork(*this);  // registers the child itself, before the fork
    } else {
        if (impl_->method == "forkserver")
            detail::start_forkserver(*this);
        else
            detail::start_spawn(*this);
        impl_->state = State::started;
        detail::remember_child(impl_);
    }
}

// ---- waiting and signalling ----------------------------------------------------------------

static void join_until(const std::shared_ptr<ProcessImpl>& impl_, const sys::Deadline& deadline) {
    check_usable(impl_);
    check_own_child(*impl_, "join");
    if (impl_->state != State::started) throw ProcessError("can only join a started process");
    detail::wait_for_exit(*impl_, deadline);
}

void Process::join() { join_until(impl_, sys::Deadline::never()); }

void Process::join(std::optional<double> timeout_seconds) {
    join_until(impl_, detail::deadline_in_seconds(timeout_seconds, "mp::Process::join"));
}

// A negative duration only looks (mp/duration.hpp).
void Process::join_for(std::chrono::nanoseconds timeout) {
    join_until(impl_, sys::Deadline::after(timeout < timeout.zero() ? timeout.zero() : timeout));
}

bool Process::is_alive() {
    check_usable(impl_);
    if (impl_->is_current) return true;
    check_own_child(*impl_, "test");
    if (impl_->state != State::started) return false;
    std::lock_guard<std::mutex> lk(impl_->mu);
    return !detail::reap_now(*impl_);
}

static void send_signal(const std::shared_ptr<ProcessImpl>& impl, int signum) {
    check_usable(impl);
    check_own_child(*impl, "signal");
    if (impl->state != State::started) throw ProcessError("cannot signal a process that was never started");
    // Under the lock, nobody can reap the child between the look and the signal: a pid is
    // never signalled after its reap, when it may belong to someone else.
    std::lock_guard<std::mutex> lk(impl->mu);
    if (impl->exitcode) return;
    if (auto ec = sys::signal_process(impl->child, signum))
        raise_os_error(ec, "signalling process " + std::to_string(impl->child.pid));
}

void Process::terminate() { send_signal(impl_, 15); }

void Process::kill() { send_signal(impl_, 9); }

// SIGINT (CPython 3.14). Windows has no SIGINT between processes: it goes through mp's signal
// channel (mp/signals.hpp), so a child that handles mp::sig::INT gets it, and any other ends
// with exitcode -2, as SIGINT's default action ends a POSIX child.
void Process::interrupt() { send_signal(impl_, 2); }

std::uintptr_t Process::sentinel() {
    check_usable(impl_);
    if (impl_->is_current) throw ProcessError("the current process has no sentinel");
    check_own_child(*impl_, "watch");
    if (impl_->state != State::started) throw ProcessError("process not started");
    std::lock_guard<std::mutex> lk(impl_->mu);
    return sys::handle_to_value(detail::sentinel_of(*impl_)->get());
}

void Process::close() {
    if (!impl_) throw ValueError("process object was moved from");
    if (impl_->state == State::closed) return;
    {
        std::lock_guard<std::mutex> lk(impl_->mu);
        if (impl_->state == State::started && !impl_->is_current && !detail::reap_now(*impl_))
            throw ValueError(
                "Cannot close a process while it is still running. You should first call join() or terminate().");
        impl_->child.process.reset();
        impl_->sentinel.reset();
    }
    impl_->target.reset();
    detail::forget_child(impl_.get());
    impl_->state = State::closed;
}

// ---- attributes ----------------------------------------------------------------------------

std::optional<int> Process::pid() const {
    check_usable(impl_);
    if (impl_->is_current) return sys::current_pid();
    if (impl_->state != State::started) return std::nullopt;
    return impl_->child.pid;
}

std::optional<int> Process::exitcode() {
    check_usable(impl_);
    if (impl_->is_current || impl_->state != State::started) return std::nullopt;
    std::lock_guard<std::mutex> lk(impl_->mu);
    if (impl_->creator_pid == sys::current_pid()) detail::reap_now(*impl_);
    return impl_->exitcode;
}

const std::string& Process::name() const {
    if (!impl_) throw ValueError("process object was moved from");
    return impl_->name;
}

void Process::set_name(std::string name) {
    if (!impl_) throw ValueError("process object was moved from");
    impl_->name = std::move(name);
}

bool Process::daemon() const {
    if (!impl_) throw ValueError("process object was moved from");
    return impl_->daemon;
}

void Process::set_daemon(bool daemonic) {
    check_usable(impl_);
    if (impl_->state != State::created || impl_->is_current) throw ProcessError("process has already started");
    impl_->daemon = daemonic;
}

void Process::set_context(const Context& ctx) {
    check_usable(impl_);
    if (impl_->state != State::created || impl_->is_current) throw ProcessError("process has already started");
    impl_->method = ctx.get_start_method();
}

std::string Process::start_method() const {
    check_usable(impl_);
    return impl_->method.empty() ? get_start_method() : impl_->method;
}

// ---- module functions ----------------------------------------------------------------------

Process& current_process() {
    auto& g = globals();
    if (g.current) return *g.current;
    static Process* main_process = [] {
        auto* p = new Process();
        std::lock_guard<std::mutex> lock(globals().mu);
        --globals().counter;  // the main process does not use up a child's number
        p->impl_->name = "MainProcess";
        p->impl_->identity.clear();
        p->impl_->is_current = true;
        return p;
    }();
    return *main_process;
}

bool ParentProcess::is_alive() const {
    auto& g = globals();
    // A fork child has no watch handle; POSIX re-parents an orphan, so getppid() tells.
    if (!g.parent_watch) return sys::parent_pid() == pid_;
    bool ended = false;
    if (auto ec = sys::wait_watch(g.parent_watch.get(), sys::Deadline::now(), ended))
        raise_os_error(ec, "checking the parent process");
    return !ended;
}

void ParentProcess::join() const { join(std::nullopt); }

void ParentProcess::join(std::optional<double> timeout_seconds) const {
    auto& g = globals();
    const sys::Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::ParentProcess::join");
    if (g.parent_watch) {
        bool ended = false;
        if (auto ec = sys::wait_watch(g.parent_watch.get(), deadline, ended))
            raise_os_error(ec, "waiting for the parent process");
        return;
    }
    // A fork child has no watch handle: it looks at its parent pid (POSIX re-parents an orphan).
    while (sys::parent_pid() == pid_ && !deadline.passed())
        std::this_thread::sleep_until(deadline.or_within(std::chrono::milliseconds(5)).time_point());
}

std::optional<ParentProcess> parent_process() {
    auto& g = globals();
    if (!g.is_child) return std::nullopt;
    return ParentProcess(g.parent_pid, g.parent_name);
}

std::vector<Process*> active_children() {
    auto& g = globals();
    std::vector<std::shared_ptr<ProcessImpl>> snapshot;
    {
        std::lock_guard<std::mutex> lock(g.mu);
        snapshot = g.children;
    }
    // The snapshot keeps each impl alive while it is looked at, whatever other threads do
    // with their Process objects meanwhile.
    std::vector<ProcessImpl*> running;
    for (const auto& impl : snapshot) {
        std::lock_guard<std::mutex> lk(impl->mu);
        if (!detail::reap_now(*impl)) running.push_back(impl.get());
    }
    std::vector<Process*> alive;
    std::lock_guard<std::mutex> lock(g.mu);
    for (ProcessImpl* impl : running)
        if (impl->owner) alive.push_back(impl->owner);
    return alive;
}

int cpu_count() { return sys::cpu_count(); }

int getpid() { return sys::current_pid(); }

int getppid() { return sys::parent_pid(); }

}  // namespace mp
