// common/timeout.hpp - where a timeout that a user gives becomes the Deadline that common/ and
// the platform layer wait until (sys/deadline.hpp).
//
// A public timeout is std::optional<double> seconds (mp/duration.hpp): std::nullopt, and only
// std::nullopt, means no limit; 0 means "only look"; a negative number or NaN is a ValueError
// naming the call (a negative number is most likely an old "-1 for ever" that would otherwise
// be read as "no time left"). Infinity and anything beyond about 31 years also mean no limit
// (Deadline's own rule). Internal calls that speak milliseconds as a double use -1 for no
// limit; users never see them. Each public call converts once, at its top, and passes the
// Deadline down.
#pragma once

#include <cmath>
#include <optional>
#include <string>

#include "mp/errors.hpp"
#include "sys/deadline.hpp"

namespace mp::detail {

inline void check_not_nan(double t, const char* what) {
    if (std::isnan(t)) throw ValueError(std::string(what) + ": the timeout is NaN");
}

inline void check_timeout(double seconds, const char* what) {
    check_not_nan(seconds, what);
    if (seconds < 0)
        throw ValueError(std::string(what) + ": the timeout must be >= 0 seconds (std::nullopt: no limit), not " +
                         std::to_string(seconds));
}

inline sys::Deadline deadline_in_seconds(const std::optional<double>& seconds, const char* what) {
    if (!seconds) return sys::Deadline::never();
    check_timeout(*seconds, what);
    return sys::Deadline::after_seconds(*seconds);
}

inline sys::Deadline deadline_in_ms(double ms, const char* what) {
    check_not_nan(ms, what);
    return sys::Deadline::after_ms(ms);
}

// Python's acquire(block, timeout): not blocking is a try, whatever the timeout says.
inline sys::Deadline deadline_for_block(bool block, const std::optional<double>& seconds, const char* what) {
    return block ? deadline_in_seconds(seconds, what) : sys::Deadline::now();
}

// The same rules for the internal APIs that still pass milliseconds as a double (the pool's,
// whose templates live in public headers): -1 for no limit, else the milliseconds.
inline double checked_timeout_ms(double ms, const char* what) {
    check_not_nan(ms, what);
    return ms > sys::Deadline::kMaxMs ? -1.0 : ms;
}

}  // namespace mp::detail
