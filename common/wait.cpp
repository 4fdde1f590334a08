// common/wait.cpp - mp::wait over connections and process sentinels (see mp/wait.hpp): the
// read-ahead that no OS wait can see, then one sys::wait_ready, whose way of waiting is each
// OS's own (posix|win32/connection.cpp).
#include "mp/wait.hpp"

#include <algorithm>

#include "connection_internal.hpp"
#include "mp/process.hpp"
#include "sys/connection.hpp"
#include "timeout.hpp"

namespace mp {

WaitObject::WaitObject(Process& p) : sentinel_(p.sentinel()) {}

std::vector<std::size_t> detail::wait_ms(const std::vector<WaitObject>& objects, double timeout_ms) {
    const sys::Deadline deadline = detail::deadline_in_ms(timeout_ms, "mp::wait");
    std::vector<sys::PipeEnd*> ends;             // the connections' ends, then
    std::vector<sys::native_handle> sentinels;   // the other objects' handles:
    std::vector<std::size_t> index;              // ready[k] belongs to objects[index[k]]
    std::vector<std::size_t> result;
    for (std::size_t i = 0; i < objects.size(); ++i) {
        if (!objects[i].is_connection_) continue;
        ends.push_back(&ConnectionAccess::readable_end(objects[i].conn_));
        index.push_back(i);
        if (ConnectionAccess::has_buffered(objects[i].conn_)) result.push_back(i);
    }
    for (std::size_t i = 0; i < objects.size(); ++i) {
        if (objects[i].is_connection_) continue;
        sentinels.push_back(sys::handle_from_value(objects[i].sentinel_));
        index.push_back(i);
    }
    // Something is ready already: look at the rest without waiting.
    std::vector<unsigned char> ready(index.size());
    if (auto ec = sys::wait_ready(ends.data(), ends.size(), sentinels.data(), sentinels.size(),
                                  result.empty() ? deadline : sys::Deadline::now(), ready.data()))
        raise_os_error(ec, "mp::wait");
    for (std::size_t k = 0; k < index.size(); ++k)
        if (ready[k]) result.push_back(index[k]);
    std::sort(result.begin(), result.end());
    result.erase(std::unique(result.begin(), result.end()), result.end());
    return result;
}

}  // namespace mp
