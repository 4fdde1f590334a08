// common/context.cpp - start-method contexts.
#include "mp/context.hpp"

#include "process_internal.hpp"
#include "sys/os.hpp"

namespace mp {
namespace detail {

const char* platform_default_method() noexcept {
#if defined(_WIN32)
    return "spawn";
#else
    return "fork";
#endif
}

void check_start_method(const std::string& method) {
    for (const auto& m : get_all_start_methods())
        if (m == method) return;
    throw ValueError("cannot find context for '" + method + "'");
}

}  // namespace detail

int Context::cpu_count() const { return sys::cpu_count(); }

const Context& get_context(const std::string& method) {
#if !defined(_WIN32)
    static const Context fork_ctx("fork");
#endif
    static const Context spawn_ctx("spawn");
    const std::string m = method.empty() ? get_start_method() : method;
    detail::check_start_method(m);
#if !defined(_WIN32)
    if (m == "fork") return fork_ctx;
#endif
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
#if defined(_WIN32)
    return {"spawn"};
#else
    return {"fork", "spawn"};
#endif
}

}  // namespace mp
