// mp/duration.hpp - how mp takes a std::chrono duration where a call also takes seconds.
//
// Every call with a timeout in seconds (a double, negative or nullopt: no limit) also takes a
// std::chrono duration. A duration is always a limit: a negative one means "no time left" (the
// call only looks, as with 0), never "no limit"; only the seconds forms spell "no limit".
#pragma once

#include <chrono>

namespace mp::detail {
// A std::chrono duration as the seconds the double forms take, never negative.
template <class Rep, class Period>
double nonnegative_seconds(std::chrono::duration<Rep, Period> d) {
    const double t = std::chrono::duration<double>(d).count();
    return t < 0 ? 0.0 : t;
}
}  // namespace mp::detail
