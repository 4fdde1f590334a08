// mp/context.hpp - start methods and contexts, as in multiprocessing.get_context().
//
// A start method says how a child comes to exist:
//   "fork"   (POSIX only) the child is a copy of the parent at the moment of start(): it sees
//            the parent's memory, and any callable works as a target. Fast (one fork()).
//   "spawn"  (POSIX and Windows) the child is a new run of the same program, entered through
//            mp::bootstrap() at the top of main(); targets are registered functions and their
//            arguments travel through the codec.
// A Context fixes the method for the objects it makes; set_start_method() sets the default
// used by objects made without one. The default is "fork" on POSIX and "spawn" on Windows
// (see README.md, "Choosing a start method", for why).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "process.hpp"

namespace mp {

class Context {
public:
    // "fork" or "spawn".
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

private:
    explicit Context(std::string method) : method_(std::move(method)) {}
    std::string method_;
    friend const Context& get_context(const std::string& method);
};

// The context for `method`, or for the default method when it is empty. An unknown name, or
// "fork" on Windows, is a ValueError.
const Context& get_context(const std::string& method = "");

// Sets the default start method. Setting it a second time is a RuntimeError unless force is
// true, as in Python.
void set_start_method(const std::string& method, bool force = false);

// The default start method. If none was set: with allow_none, "" (Python's None); otherwise
// the platform default, which from then on counts as set.
std::string get_start_method(bool allow_none = false);

// The methods this platform offers, the default first.
std::vector<std::string> get_all_start_methods();

}  // namespace mp
