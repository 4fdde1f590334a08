// common/wait.cpp - mp::wait over connections and process sentinels (see mp/wait.hpp), written
// against sys::wait_handles, whose meaning of "ready" is each OS's own.
#include "mp/wait.hpp"

#include <algorithm>

#include "mp/process.hpp"
#include "sys/handle.hpp"
#include "timeout.hpp"

namespace mp {

WaitObject::WaitObject(Process& p) : sentinel_(p.sentinel()) {}

std::vector<std::size_t> wait_ms(const std::vector<WaitObject>& objects, double timeout_ms) {
    const sys::Deadline deadline = detail::deadline_in_ms(timeout_ms, "mp::wait");
    // Connections are copies sharing the caller's state; poll() needs a non-const one.
    std::vector<Connection> conns;
    for (const auto& o : objects) conns.push_back(o.is_connection_ ? o.conn_ : Connection());

    std::vector<std::size_t> result;
    // A message may already sit in a connection's read-ahead, where no OS wait can see it.
    const auto look_at_connections = [&] {
        for (std::size_t i = 0; i < objects.size(); ++i)
            if (objects[i].is_connection_ && conns[i].poll()) result.push_back(i);
    };
    std::vector<sys::native_handle> handles;
    std::vector<std::size_t> index;  // handles[k] belongs to objects[index[k]]
#if defined(_WIN32)
    for (std::size_t i = 0; i < objects.size(); ++i) {
        if (objects[i].is_connection_) {
            conns[i].native_handle();  // a closed connection is an OSError here, as in poll()
            continue;
        }
        handles.push_back(sys::handle_from_value(objects[i].sentinel_));
        index.push_back(i);
    }
    std::vector<unsigned char> ready(handles.size());
    int step_ms = 1;
    for (;;) {
        look_at_connections();
        const sys::Deadline this_wait =
            result.empty() ? deadline.or_within(std::chrono::milliseconds(step_ms)) : sys::Deadline::now();
        if (auto ec = sys::wait_handles(handles.data(), handles.size(), this_wait, ready.data()))
            raise_os_error(ec, "mp::wait");
        for (std::size_t k = 0; k < handles.size(); ++k)
            if (ready[k]) result.push_back(index[k]);
        if (!result.empty() || deadline.passed()) break;
        step_ms = std::min(step_ms + 1, 10);
    }
#else
    for (std::size_t i = 0; i < objects.size(); ++i) {
        handles.push_back(objects[i].is_connection_ ? static_cast<sys::native_handle>(conns[i].native_handle())
                                                    : sys::handle_from_value(objects[i].sentinel_));
        index.push_back(i);
    }
    look_at_connections();
    std::vector<unsigned char> ready(handles.size());
    if (auto ec = sys::wait_handles(handles.data(), handles.size(), result.empty() ? deadline : sys::Deadline::now(),
                                    ready.data()))
        raise_os_error(ec, "mp::wait");
    for (std::size_t k = 0; k < handles.size(); ++k)
        if (ready[k]) result.push_back(index[k]);
#endif
    std::sort(result.begin(), result.end());
    result.erase(std::unique(result.begin(), result.end()), result.end());
    return result;
}

}  // namespace mp
