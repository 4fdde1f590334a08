// common/timeout.hpp - how a timeout that a user gives (a double, in seconds or milliseconds)
// becomes the milliseconds that common/ and the platform layer wait for.
//
// < 0 means no limit, as everywhere in mp. NaN is a ValueError (it would compare false with
// everything and turn into garbage clock ticks). More than about 31 years (1e12 ms), infinity
// included, also means no limit: a steady_clock deadline that far away overflows its int64
// nanoseconds, and no OS wait call takes such a number. Process::join and Queue use the same
// limit in seconds.
#pragma once

#include <cmath>
#include <string>

#include "mp/errors.hpp"

namespace mp::detail {

constexpr double kMaxTimeoutMs = 1e12;

inline double checked_timeout_ms(double ms, const char* what) {
    if (std::isnan(ms)) throw ValueError(std::string(what) + ": the timeout is NaN");
    return ms > kMaxTimeoutMs ? -1.0 : ms;
}

}  // namespace mp::detail
