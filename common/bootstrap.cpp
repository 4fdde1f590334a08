// common/bootstrap.cpp - the entry of a spawned child and of the forkserver:
// mp::bootstrap(argc, argv).
//
// The parent starts this same program with `--mp-spawn <payload> <parent-watch>` and the
// environment variable MP_SPAWNED_CHILD=1. The payload is a length-prefixed, codec-encoded
// SpawnPayload read from the pipe handle named on the command line: which registered target
// to run, its encoded arguments, the process's name, daemon flag and identity, and the
// parent's pid and name.
//
// The forkserver (sys/forkserver.hpp) is started the same way with `--mp-forkserver`:
// bootstrap hands it to sys::forkserver_serve, which runs the preloads through
// apply_forkserver_settings and then forks one child per request; each child runs its payload
// through run_payload, as a spawned child does, without a second start of the program.
//
// The environment variable exists to catch a main() that never reaches bootstrap(): it is
// read (and removed, so that it reaches no grandchild) while the program's statics are being
// initialised, before main() runs. From then on, a call into mp before bootstrap() - or the
// end of main() - is known to be a spawned child gone astray, and ends the process with a
// message, instead of running the parent's logic again and spawning children of its own.
#include <cstdlib>
#include <cstring>
#include <tuple>

#include "logging_internal.hpp"
#include "mp/context.hpp"
#include "process_internal.hpp"
#include "sys/forkserver.hpp"
#include "sys/os.hpp"

namespace mp {
namespace detail {

namespace {

bool g_bootstrap_called = false;

[[noreturn]] void missing_bootstrap(const char* where) {
    log(kLogError,
        "mp: this process was started by the spawn start method, but %s before calling "
        "mp::bootstrap(argc, argv). A spawned child runs the program again from main(); "
        "make mp::bootstrap(argc, argv) the first statement of main() so that the child "
        "runs its target there (the C++ form of Python's `if __name__ == '__main__':`). "
        "This child stops here, without running the parent's logic.",
        where);
    sys::flush_std_streams();
    sys::exit_now(1);
}

const bool g_spawn_marker = [] {
    std::string v;
    if (!sys::get_env(kSpawnEnv, v)) return false;
    sys::unset_env(kSpawnEnv);
    std::atexit([] {
        if (!g_bootstrap_called) missing_bootstrap("main() returned");
    });
    return true;
}();

[[noreturn]] void bootstrap_failure(const std::string& why) {
    log(kLogError, "mp: child %d cannot start: %s", sys::current_pid(), why.c_str());
    sys::flush_std_streams();
    sys::exit_now(1);
}

// A registered function and its still-encoded arguments: they are decoded when the target
// runs, so that a DecodeError is reported like any exception of the target.
class RegisteredTarget final : public TargetBase {
public:
    RegisteredTarget(SpawnInvoker invoke, std::string args, std::shared_ptr<HandleList> handles)
        : invoke_(invoke), args_(std::move(args)), handles_(std::move(handles)) {}
    int call() override {
        Decoder d(args_, handles_.get());
        return invoke_(d);
    }
    void describe_for_spawn(SpawnTarget&) const override {
        throw ProcessError("a spawned child's own target cannot be re-sent");
    }

private:
    SpawnInvoker invoke_;
    std::string args_;
    std::shared_ptr<HandleList> handles_;
};

// For an object sent twice: each decoded copy owns its own duplicate.
std::uintptr_t duplicate_inherited(std::uintptr_t h) {
    sys::Handle d;
    if (auto ec = sys::duplicate_handle(sys::handle_from_value(h), d)) raise_os_error(ec, "duplicating an inherited handle");
    return sys::handle_to_value(d.release());
}

bool parse_handle(const char* s, sys::native_handle& out) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (!*s || *end) return false;
    out = sys::handle_from_value(static_cast<std::uintptr_t>(v));
    return true;
}

}  // namespace

bool bootstrap_was_called() noexcept { return g_bootstrap_called; }

void check_bootstrap_state() {
    if (g_spawn_marker && !g_bootstrap_called) missing_bootstrap("main() used mp");
}

// Runs the child a bootstrap payload describes, and never returns: a spawned child (which read
// the payload from its pipe) or a forkserver's child (which got it over the server's socket;
// posix/forkserver.cpp has placed its handles where a spawned child has them).
[[noreturn]] void run_payload(const std::string& wire, sys::Handle watch, bool via_forkserver) {
    SpawnPayload p;
    try {
        decode_into(wire, p);
    } catch (const DecodeError& e) {
        bootstrap_failure(std::string("bad bootstrap payload: ") + e.what());
    }
    if (p.magic != kSpawnMagic || p.version != kSpawnVersion)
        bootstrap_failure("the bootstrap payload comes from another version of mp");
    set_log_level_number(p.log_level);  // the parent's, when it started us (a sink cannot cross)

    auto& g = globals();
    g.is_child = true;
    g.parent_pid = static_cast<int>(p.parent_pid);
    g.parent_name = p.parent_name;
    g.parent_watch = std::move(watch);
    if (auto ec = sys::make_private(g.parent_watch.get())) bootstrap_failure("the parent watch is not usable: " + ec.message());
    g.daemon = p.daemon;
    if (!p.start_method.empty()) g.default_method = p.start_method;
    // A forkserver's child is its server's child: the server ends the daemonic ones when the
    // parent goes (and they die with the server), so there is nothing to arrange here.
    if (p.daemon && !via_forkserver && sys::die_with_parent(g.parent_pid, p.started_by_main_thread))
        sys::exit_now(1);  // the parent is already gone

    // The handles the arguments carry arrived inheritable (that is how they got here); make
    // them private before anything can start a grandchild.
    std::vector<std::uintptr_t> received;
    for (std::uint64_t v : p.handles) {
        const auto h = sys::handle_from_value(static_cast<std::uintptr_t>(v));
        if (auto ec = sys::make_private(h)) bootstrap_failure("an inherited handle is not usable: " + ec.message());
        received.push_back(static_cast<std::uintptr_t>(v));
    }
    auto handles = std::make_shared<HandleList>(std::move(received), &duplicate_inherited);

    std::unique_ptr<Process> self;
    try {
        if (p.kind == "process") {
            ProcessFactory make = find_process_factory(p.target);
            if (!make) bootstrap_failure("no Process class is registered as '" + p.target + "'");
            Decoder fields(p.target_payload, handles.get());
            self = make(fields);
        } else if (p.kind == "function") {
            SpawnInvoker invoke = find_function_target(p.target);
            if (!invoke) bootstrap_failure("no function is registered as '" + p.target + "'");
            self = std::make_unique<Process>();
            ProcessAccess::set_target(*self, std::make_unique<RegisteredTarget>(invoke, std::move(p.target_payload), handles));
        } else if (p.kind == "none") {
            self = std::make_unique<Process>();
        } else {
            bootstrap_failure("unknown target kind '" + p.kind + "'");
        }
    } catch (const std::exception& e) {
        bootstrap_failure(std::string("re-creating the process object failed: ") + e.what());
    }
    ProcessImpl& impl = ProcessAccess::impl(*self);
    impl.name = p.name;
    impl.daemon = p.daemon;
    impl.identity = p.identity;
    impl.is_current = true;
    impl.state = ProcessImpl::State::started;
    g.current = self.release();  // lives until the process ends
    g.counter = 0;               // this process's own children count from 1
    // A forkserver's child is a fork of the server: the server's exit handlers and statics are
    // not its own, so it ends as a fork child does.
    run_child_and_exit(*g.current, via_forkserver);
}

[[noreturn]] void run_forkserver_child(std::string payload, sys::native_handle watch) {
    run_payload(payload, sys::Handle(watch), true);
}

// In the forkserver, before it serves: runs the preloads set_forkserver_preload named, each
// once, with the on_error choice. false: a preload failed under on_error=fail.
bool apply_forkserver_settings(const std::string& wire) {
    ForkserverSettings s;
    try {
        decode_into(wire, s);
    } catch (const std::exception& e) {
        log(kLogError, "mp: forkserver %d: bad settings from the parent: %s", sys::current_pid(), e.what());
        return false;
    }
    set_log_level_number(s.log_level);  // the parent's, when it started the server; each child gets its own
    const auto on_error = static_cast<OnPreloadError>(s.on_error);
    for (const std::string& name : s.preload) {
        std::string failure;
        try {
            SpawnInvoker invoke = find_function_target(name);
            if (!invoke) {
                failure = "no function is registered as '" + name + "' (MP_TARGET)";
            } else {
                const std::string no_arguments = encode_message(std::tuple<>());
                Decoder d(no_arguments);
                invoke(d);
            }
        } catch (const DecodeError&) {
            failure = "'" + name + "' takes arguments; a preload takes none";
        } catch (const TypeError&) {  // its parameters' type fingerprint is not std::tuple<>'s
            failure = "'" + name + "' takes arguments; a preload takes none";
        } catch (const std::exception& e) {
            failure = "'" + name + "' threw " + type_name(typeid(e).name()) + ": " + e.what();
        } catch (const SystemExit& e) {
            failure = "'" + name + "' threw SystemExit(" + std::to_string(e.code()) + ")";
        } catch (...) {
            failure = "'" + name + "' threw an exception that is not a std::exception";
        }
        if (failure.empty() || on_error == OnPreloadError::ignore) continue;
        if (on_error == OnPreloadError::warn) {
            log(kLogWarning, "mp: forkserver %d: warning: preload %s", sys::current_pid(), failure.c_str());
            continue;
        }
        log(kLogError, "mp: forkserver %d: preload %s; the server stops (on_error=fail)", sys::current_pid(),
            failure.c_str());
        return false;
    }
    sys::flush_std_streams();
    return true;
}

}  // namespace detail

void bootstrap(int argc, char** argv) {
    using namespace detail;
    g_bootstrap_called = true;
    if (argc >= 2 && argv && std::strcmp(argv[1], kForkserverArg) == 0)
        sys::forkserver_serve(argc, argv, &apply_forkserver_settings, &run_forkserver_child);  // never returns
    if (argc < 4 || !argv || std::strcmp(argv[1], kSpawnArg) != 0) return;

    sys::native_handle payload_h{}, watch_h{};
    if (!parse_handle(argv[2], payload_h) || !parse_handle(argv[3], watch_h))
        bootstrap_failure("malformed --mp-spawn arguments");
    sys::Handle payload_pipe(payload_h);
    sys::Handle watch(watch_h);

    unsigned char len_bytes[8];
    std::size_t got = 0;
    if (auto ec = sys::read_full(payload_pipe.get(), len_bytes, 8, got); ec || got != 8)
        bootstrap_failure("the parent sent no bootstrap payload (" + (ec ? ec.message() : std::string("end of file")) + ")");
    std::uint64_t len = 0;
    for (int i = 0; i < 8; ++i) len |= std::uint64_t(len_bytes[i]) << (8 * i);
    if (len > (std::uint64_t(1) << 32)) bootstrap_failure("bootstrap payload length " + std::to_string(len) + " is not plausible");
    std::string wire(static_cast<std::size_t>(len), '\0');
    if (auto ec = sys::read_full(payload_pipe.get(), wire.data(), wire.size(), got); ec || got != wire.size())
        bootstrap_failure("the bootstrap payload was cut short");
    payload_pipe.reset();
    run_payload(wire, std::move(watch), false);
}

}  // namespace mp
