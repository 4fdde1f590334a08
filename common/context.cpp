// common/context.cpp - start-method contexts.
#include "mp/context.hpp"

#include "process_internal.hpp"
#include "sys/os.hpp"
#include "sys/process.hpp"

namespace mp {
namespace detail {

const char* platform_default_method() noexcept { return sys::start_methods()[0]; }

void check_start_method(const std::string& method) {
    for (const char* const* m = sys::start_methods(); *m; ++m)
        if (method == *m) return;
    throw ValueError("cannot find context for '" + method + "'");
}

}  // namespace detail

int Context::cpu_count() const { return sys::cpu_count(); }

const Context& get_context(const std::string& method) {
    static const Context spawn_ctx("spawn");
    static const Context forkserver_ctx("forkserver");
    const std::string m = method.empty() ? get_start_method() : method;
    detail::check_start_method(m);  // only the methods this platform has get past here
    if (m == "forkserver") return forkserver_ctx;
    if constexpr (sys::kHasFork) {
        static const Context fork_ctx("fork");
        if (m == "fork") return fork_ctx;
    }
    return spawn_ctx;
}

// The default method is set once (set_start_method, or the first get_start_method that needs
// it) and read by every start(): under the registry lock, as threads may do both at once.
void set_start_method(const std::string& method, bool force) {
    detail::check_start_method(method);
    auto& g = detail::globals();
    std::lock_guard<std::mutex> lock(g.mu);
    if (!g.default_method.empty() && !force) throw RuntimeError("context has already been set");
    g.default_method = method;
}

std::string get_start_method(bool allow_none) {
    auto& g = detail::globals();
    std::lock_guard<std::mutex> lock(g.mu);
    if (g.default_method.empty()) {
        if (allow_none) return "";
        g.default_method = detail::platform_default_method();
    }
    return g.default_method;
}

std::vector<std::string> get_all_start_methods() {
    std::vector<std::string> out;
    for (const char* const* m = sys::start_methods(); *m; ++m) out.emplace_back(*m);
    return out;
}

void set_forkserver_preload(std::vector<std::string> names, OnPreloadError on_error) {
    for (const auto& n : names)
        if (n.empty()) throw ValueError("set_forkserver_preload: an empty name");
    if (on_error != OnPreloadError::ignore && on_error != OnPreloadError::warn && on_error != OnPreloadError::fail)
        throw ValueError("set_forkserver_preload: on_error must be ignore, warn or fail");
    auto& g = detail::globals();
    std::lock_guard<std::mutex> lock(g.mu);
    g.forkserver_preload = std::move(names);
    g.forkserver_on_error = static_cast<int>(on_error);
}

}  // namespace mp
