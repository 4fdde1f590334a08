// mp/process.hpp - Process, the C++ counterpart of multiprocessing.Process.
//
//     void work(int n, std::string label);      // a plain function...
//     MP_TARGET(work);                           // ...registered, so that spawn can find it
//
//     int main(int argc, char** argv) {
//         mp::bootstrap(argc, argv);             // a spawned child runs its target here
//         mp::Process p(work, 42, "answer");
//         p.start();
//         p.join();                              // p.exitcode() == 0
//     }
//
// A target is any callable with its arguments. Under the fork start method it runs in a copy
// of the parent, so anything works, capturing lambdas included. Under spawn the child is a new
// run of the same program: the target must be a function registered with MP_TARGET, and its
// parameters must be types the codec can encode (mp/codec.hpp); a capturing lambda or an
// unregistered function is a clear error at start(), naming the fix.
//
// The exit code follows Python: 0 when the target returns (a target returning int exits with
// that value, as main() does), 1 for an uncaught exception (its type and message go to
// stderr), the code of mp::SystemExit(code) when thrown, and -signum for a death by signal.
//
// Subclasses override run(). Under spawn the child re-creates the object: give the class
// MP_FIELDS(...) naming the members the child needs and register it with
// MP_REGISTER_PROCESS(Class) at namespace scope; the class must be default-constructible.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "errors.hpp"
#include "portability.hpp"

namespace mp {

class Context;
class Process;

// Thrown in a child to end it with `code`, like Python's sys.exit(code). It deliberately does
// not derive from std::exception, so that `catch (const std::exception&)` in user code lets it
// through, as `except Exception` lets SystemExit through in Python.
class SystemExit {
public:
    explicit SystemExit(int code = 0) noexcept : code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

// Must be the first statement of main() in every program that starts processes with the spawn
// method (it is harmless otherwise). In a process started by spawn it runs the target and never
// returns; everywhere else it returns at once. Code above it runs again in every spawned child,
// as code above `if __name__ == '__main__':` does in Python.
void bootstrap(int argc, char** argv);

namespace detail {

// What a spawned child needs in order to re-create a target: which registry, which entry, and
// the encoded arguments or fields.
struct SpawnTarget {
    std::string kind;  // "none", "function" or "process"
    std::string name;
    std::string payload;
    HandleList handles;  // OS handles the arguments carry (pipe ends, locks ...)
};

class TargetBase {
public:
    virtual ~TargetBase() = default;
    virtual int call() = 0;
    // Fills `out`, or throws the error that explains why this target cannot cross to a
    // spawned child.
    virtual void describe_for_spawn(SpawnTarget& out) const = 0;
};

// ---- registry of spawn targets -------------------------------------------------------------
using SpawnInvoker = int (*)(Decoder& encoded_args);
// Registers under base_name (or base_name#2, #3 ... if taken) and returns the name given.
std::string register_function_target(const char* base_name, SpawnInvoker invoke);

// The same functions as pool tasks (mp/pool.hpp): read one call's arguments from a stream of
// calls, call, and append the result (nothing for void). Registered under the name
// register_function_target gave, for functions whose result the codec can encode.
using TaskInvoker = void (*)(Decoder& calls, Encoder& results);
void register_task_function(const std::string& name, TaskInvoker invoke);
TaskInvoker find_task_function(const std::string& name);

using ProcessFactory = std::unique_ptr<Process> (*)(Decoder& encoded_fields);
using ProcessEncoder = void (*)(const Process& self, Encoder& out);
void register_process_type(const std::type_info& type, const char* name, ProcessFactory make,
                           ProcessEncoder encode);

// Per function type, which function pointers are registered and under which names. Keyed by
// the exact type, so no function pointer is ever cast to void*.
template <class Sig>
std::vector<std::pair<Sig*, std::string>>& registered_functions() {
    static std::vector<std::pair<Sig*, std::string>> list;
    return list;
}

template <class T>
struct fn_traits {
    static constexpr bool is_function_pointer = false;
};
template <class R, class... P>
struct fn_traits<R (*)(P...)> {
    static constexpr bool is_function_pointer = true;
    using signature = R(P...);
    using params = std::tuple<std::decay_t<P>...>;
    using forward = std::tuple<P&&...>;
};
template <class R, class... P>
struct fn_traits<R (*)(P...) noexcept> : fn_traits<R (*)(P...)> {
    using signature = R(P...) noexcept;
};

template <class Sig>
struct return_of;
template <class R, class... P>
struct return_of<R(P...)> {
    using type = R;
};
template <class R, class... P>
struct return_of<R(P...) noexcept> {
    using type = R;
};

// Runs f() and turns its result into an exit code: an int result is the code, anything else
// means 0.
template <class F>
int exit_code_of(F&& f) {
    if constexpr (std::is_same_v<std::invoke_result_t<F>, int>) {
        return std::forward<F>(f)();
    } else {
        std::forward<F>(f)();
        return 0;
    }
}

// Calls fn with each stored argument cast to the parameter's own declared type, so that
// by-value, const&, & and && parameters all accept the decoded values.
template <class Fn, class Params, std::size_t... I>
decltype(auto) call_forwarding(Fn fn, Params& args, std::index_sequence<I...>) {
    using Fwd = typename fn_traits<Fn>::forward;
    return fn(static_cast<std::tuple_element_t<I, Fwd>>(std::get<I>(args))...);
}

template <class Fn, class Params, class Seq>
int call_with_decoded(Fn fn, Params& args, Seq seq) {
    return exit_code_of([&]() -> decltype(auto) { return call_forwarding(fn, args, seq); });
}

template <auto Fn>
int invoke_registered(Decoder& encoded_args) {
    using Params = typename fn_traits<decltype(Fn)>::params;
    Params args{};
    encoded_args.read_typed(args);
    encoded_args.expect_end();
    return call_with_decoded(Fn, args, std::make_index_sequence<std::tuple_size_v<Params>>{});
}

template <auto Fn>
void invoke_task(Decoder& calls, Encoder& results) {
    using Params = typename fn_traits<decltype(Fn)>::params;
    Params args{};
    calls.read_typed(args);
    constexpr auto seq = std::make_index_sequence<std::tuple_size_v<Params>>{};
    using R = decltype(call_forwarding(Fn, args, seq));
    if constexpr (std::is_void_v<R>) {
        call_forwarding(Fn, args, seq);
    } else {
        results.write_typed(call_forwarding(Fn, args, seq));
    }
}

template <auto Fn>
struct TargetRegistrar {
    using Traits = fn_traits<decltype(Fn)>;
    static_assert(Traits::is_function_pointer, "MP_TARGET takes the name of a function");
    static_assert(is_encodable_v<typename Traits::params>,
                  "MP_TARGET: every parameter of the function must be a type the codec can "
                  "encode (see mp/codec.hpp), because spawn sends the arguments to a new program");
    explicit TargetRegistrar(const char* name) {
        std::string given = register_function_target(name, &invoke_registered<Fn>);
        if constexpr (task_result_encodable()) register_task_function(given, &invoke_task<Fn>);
        registered_functions<typename Traits::signature>().emplace_back(Fn, std::move(given));
    }

private:
    // Whether the function can also be a pool task: its result is void or encodable.
    static constexpr bool task_result_encodable() {
        using R = typename return_of<typename Traits::signature>::type;
        return std::is_void_v<R> || is_encodable_v<std::decay_t<R>>;
    }
};

[[noreturn]] void throw_unregistered_function(const std::string& signature_hint);
[[noreturn]] void throw_not_spawnable_callable(const char* type_name);
[[noreturn]] void throw_not_encodable_arguments();

template <class F, class... A>
class BoundTarget final : public TargetBase {
public:
    template <class G, class... B>
    explicit BoundTarget(G&& fn, B&&... args) : fn_(std::forward<G>(fn)), args_(std::forward<B>(args)...) {}

    int call() override {
        return exit_code_of([this]() -> decltype(auto) { return std::apply(fn_, args_); });
    }

    void describe_for_spawn(SpawnTarget& out) const override {
        using Traits = fn_traits<F>;
        if constexpr (Traits::is_function_pointer) {
            using Params = typename Traits::params;
            if constexpr (is_encodable_v<Params> && std::is_constructible_v<Params, const A&...>) {
                for (const auto& entry : registered_functions<typename Traits::signature>()) {
                    if (entry.first == fn_) {
                        out.kind = "function";
                        out.name = entry.second;
                        Encoder(out.payload, &out.handles).write_typed(std::make_from_tuple<Params>(args_));
                        return;
                    }
                }
                throw_unregistered_function(typeid(F).name());
            } else {
                throw_not_encodable_arguments();
            }
        } else {
            throw_not_spawnable_callable(typeid(F).name());
        }
    }

private:
    F fn_;
    std::tuple<A...> args_;
};

template <class T, class = void>
struct has_mp_fields : std::false_type {};
template <class T>
struct has_mp_fields<T, std::void_t<decltype(std::declval<const T&>().mp_fields())>> : std::true_type {};

template <class T>
struct ProcessRegistrar {
    static_assert(std::is_base_of_v<Process, T>, "MP_REGISTER_PROCESS takes a class derived from mp::Process");
    static_assert(std::is_default_constructible_v<T>,
                  "MP_REGISTER_PROCESS: the class needs a default constructor; a spawned child "
                  "default-constructs it, then decodes the members named in MP_FIELDS into it");
    static_assert(has_mp_fields<T>::value,
                  "MP_REGISTER_PROCESS: give the class MP_FIELDS(...) naming the members a spawned "
                  "child needs (MP_FIELDS() if none), so that no state is silently lost");
    static std::unique_ptr<Process> make(Decoder& fields) {
        auto p = std::make_unique<T>();
        auto tied = p->mp_fields();
        fields.read_typed(tied);
        fields.expect_end();
        return p;
    }
    static void encode_fields(const Process& self, Encoder& out) { out.write_typed(static_cast<const T&>(self).mp_fields()); }
    explicit ProcessRegistrar(const char* name) { register_process_type(typeid(T), name, &make, &encode_fields); }
};

struct ProcessImpl;
struct ProcessAccess;

}  // namespace detail

#define MP_DETAIL_CONCAT2(a, b) a##b
#define MP_DETAIL_CONCAT(a, b) MP_DETAIL_CONCAT2(a, b)

// Registers a function as a spawn target, at namespace scope: MP_TARGET(work);
#define MP_TARGET(fn)                                                                          \
    static const ::mp::detail::TargetRegistrar<&fn> MP_DETAIL_CONCAT(mp_target_registrar_, \
                                                                     MP_UNIQUE_LINE_ID) {   \
        #fn                                                                                \
    }

// Registers a Process subclass for spawn, at namespace scope: MP_REGISTER_PROCESS(Worker);
#define MP_REGISTER_PROCESS(T)                                                                 \
    static const ::mp::detail::ProcessRegistrar<T> MP_DETAIL_CONCAT(mp_process_registrar_, \
                                                                    MP_UNIQUE_LINE_ID) {   \
        #T                                                                                 \
    }

// The keyword arguments of Python's Process that are not the target's own:
//     mp::Process p(mp::ProcessOptions().name("worker-1").daemon(), work, 7);
// (the same as constructing, then set_name() and set_daemon()).
class ProcessOptions {
public:
    ProcessOptions& name(std::string n) {
        name_ = std::move(n);
        return *this;
    }
    ProcessOptions& daemon(bool on = true) {
        daemon_ = on;
        return *this;
    }

private:
    std::optional<std::string> name_;
    std::optional<bool> daemon_;
    friend class Process;
};

class Process {
public:
    // A process with no target: run() does nothing unless a subclass overrides it.
    Process();
    // A process for a subclass that should use ctx's start method.
    explicit Process(const Context& ctx);

    template <class F, class... Args,
              class = std::enable_if_t<!std::is_base_of_v<Process, std::decay_t<F>> &&
                                       !std::is_same_v<std::decay_t<F>, Context> &&
                                       !std::is_same_v<std::decay_t<F>, ProcessOptions>>>
    explicit Process(F&& target, Args&&... args) : Process() {
        static_assert(std::is_invocable_v<std::decay_t<F>&, std::decay_t<Args>&...>,
                      "mp::Process: the target cannot be called with these arguments (check "
                      "their number and types against the target's parameters)");
        set_target(std::make_unique<detail::BoundTarget<std::decay_t<F>, std::decay_t<Args>...>>(
            std::forward<F>(target), std::forward<Args>(args)...));
    }
    // With Python's name= and daemon= (see ProcessOptions).
    template <class F, class... Args>
    Process(const ProcessOptions& options, F&& target, Args&&... args)
        : Process(std::forward<F>(target), std::forward<Args>(args)...) {
        if (options.name_) set_name(*options.name_);
        if (options.daemon_) set_daemon(*options.daemon_);
    }

    Process(Process&& other) noexcept;
    Process& operator=(Process&& other) noexcept;
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;
    // A destroyed Process still owns its child: a daemonic child is terminated, and any other
    // running child is joined (as Python joins non-daemonic children at exit), so no zombie
    // and no handle outlives the object.
    virtual ~Process();

    // The code the child runs. The default calls the target given to the constructor.
    virtual void run();

    void start();
    void join();
    // Waits at most `timeout` (std::nullopt: without limit, as join(); see mp/duration.hpp);
    // afterwards is_alive() tells whether the child ended.
    void join(std::optional<double> timeout_seconds);
    template <class Rep, class Period>
    void join(std::chrono::duration<Rep, Period> timeout) {
        join_for(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout));
    }
    bool is_alive();
    void terminate();  // SIGTERM; TerminateProcess on Windows (exitcode -SIGTERM)
    void kill();       // SIGKILL; TerminateProcess on Windows (exitcode -SIGKILL)
    // SIGINT (CPython 3.14). Windows has no SIGINT between processes: there it goes through
    // mp's signal channel (mp/signals.hpp), so a child that handles mp::sig::INT receives it
    // and any other child ends with exitcode -SIGINT, as SIGINT's default action ends it on POSIX.
    void interrupt();
    // Python's sentinel: a native handle (POSIX: a pidfd, or for a forkserver's child its
    // connection to the server; Windows: a process HANDLE) that becomes
    // ready when the child ends, and stays ready. For mp::wait (mp/wait.hpp) or the OS's own
    // waits. The Process owns it: close() closes it. ProcessError before start().
    std::uintptr_t sentinel();
    // Releases the handles of a finished process; any later use but name() is a ValueError.
    void close();

    std::optional<int> pid() const;       // empty before start
    std::optional<int> exitcode();        // empty until the child has ended
    const std::string& name() const;
    void set_name(std::string name);
    bool daemon() const;
    void set_daemon(bool daemonic);       // before start() only
    // Use ctx's start method (before start() only). Without it, start() uses the default.
    void set_context(const Context& ctx);
    std::string start_method() const;     // the method used, or to be used by start()

private:
    void set_target(std::unique_ptr<detail::TargetBase> target);
    void join_for(std::chrono::nanoseconds timeout);

    std::shared_ptr<detail::ProcessImpl> impl_;  // shared with the registry of children
    friend struct detail::ProcessAccess;
    friend Process& current_process();
};

// The process running this code: "MainProcess" in the program's first process, the Process
// object being run in a child.
Process& current_process();

// The parent of a child process, as Python's parent_process() gives it.
class ParentProcess {
public:
    int pid() const noexcept { return pid_; }
    const std::string& name() const noexcept { return name_; }
    bool is_alive() const;
    void join() const;
    void join(std::optional<double> timeout_seconds) const;

private:
    ParentProcess(int pid, std::string name) : pid_(pid), name_(std::move(name)) {}
    int pid_;
    std::string name_;
    friend std::optional<ParentProcess> parent_process();
};

// Empty in the main process.
std::optional<ParentProcess> parent_process();

// The children of this process that are still running; finished ones are reaped on the way.
// The pointers stay valid while their owners keep the Process objects.
std::vector<Process*> active_children();

int cpu_count();   // online logical CPUs
int getpid();
int getppid();

}  // namespace mp
