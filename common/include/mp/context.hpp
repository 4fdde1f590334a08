// mp/context.hpp - start methods and contexts, as in multiprocessing.get_context().
//
// A start method says how a child comes to exist:
//   "fork"        (POSIX only) the child is a copy of the parent at the moment of start(): it
//                 sees the parent's memory, and any callable works as a target. Fast (one
//                 fork()), but hazardous in a multithreaded parent (mp warns).
//   "spawn"       (POSIX and Windows) the child is a new run of the same program, entered
//                 through mp::bootstrap() at the top of main(); targets are registered functions
//                 and their arguments travel through the codec.
//   "forkserver"  (POSIX only) a server process, a run of the program started on first use
//                 (code above mp::bootstrap runs there once), forks each child on request over
//                 an authenticated Unix socket: spawn's rules for targets and arguments, safe in
//                 a multithreaded parent, nearly as cheap as fork.
// A Context fixes the method for the objects it makes; set_start_method() sets the default
// used by objects made without one. The default is "fork" on POSIX and "spawn" on Windows
// (see README.md, "Choosing a start method", for why and the figures).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "process.hpp"

namespace mp {

// What set_forkserver_preload does when a preload is not a registered function or throws:
// nothing, a warning on the server's stderr, or the server stops (the next start() raises).
enum class OnPreloadError { ignore, warn, fail };

// Names registered functions (MP_TARGET, no parameters) that the forkserver runs once, before
// it forks any child: the C++ form of preloading modules (warm caches, load data, open
// libraries), with CPython 3.15's on_error. It applies to the next forkserver to start (the
// first forkserver start, or the restart after one died), as in CPython.
void set_forkserver_preload(std::vector<std::string> names, OnPreloadError on_error = OnPreloadError::ignore);

class Context {
public:
    // "fork", "spawn" or "forkserver".
    const std::string& get_start_method() const noexcept { return method_; }

    // ctx.Process(target, args...) is a Process that will start with this context's method.
    // ctx.Process(mp::ProcessOptions().name("w"), target, args...) with Python's name= and
    // daemon= as well.
    template <class F, class... Args>
    mp::Process Process(F&& target, Args&&... args) const {
        mp::Process p(std::forward<F>(target), std::forward<Args>(args)...);
        p.set_context(*this);
        return p;
    }

    int cpu_count() const;

    // The same as mp::set_forkserver_preload (one forkserver per process, as in CPython).
    void set_forkserver_preload(std::vector<std::string> names, OnPreloadError on_error = OnPreloadError::ignore) const {
        mp::set_forkserver_preload(std::move(names), on_error);
    }

private:
    explicit Context(std::string method) : method_(std::move(method)) {}
    std::string method_;
    friend const Context& get_context(const std::string& method);
};

// The context for `method`, or for the default method when it is empty. An unknown name, or
// "fork" or "forkserver" on Windows, is a ValueError.
const Context& get_context(const std::string& method = "");

// Sets the default start method. Setting it a second time is a RuntimeError unless force is
// true, as in Python.
void set_start_method(const std::string& method, bool force = false);

// The default start method. If none was set: with allow_none, "" (Python's None); otherwise
// the platform default, which from then on counts as set.
std::string get_start_method(bool allow_none = false);

// The methods this platform offers, the platform's default first (CPython 3.14): "fork",
// "spawn", "forkserver" on POSIX; "spawn" on Windows.
std::vector<std::string> get_all_start_methods();

}  // namespace mp
