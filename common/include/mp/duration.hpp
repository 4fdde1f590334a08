// mp/duration.hpp - how mp spells a timeout.
//
// Every call that can wait takes its timeout as std::optional<double> seconds, as Python takes
// a float or None:
//   std::nullopt   no limit (the default wherever a call has one); the only spelling of it
//   0              only look: succeed if it can be done now, else report the timeout
//   t > 0          wait up to t seconds
//   t < 0, NaN     ValueError naming the call: a negative number is most often an old "-1 for
//                  ever", which mp would otherwise have to read as "no time left"
// The same calls also take a std::chrono duration. A duration is always a limit, and a
// negative one (a deadline that has passed, say) means "no time left", as 0 does.
#pragma once

#include <chrono>
#include <optional>

namespace mp::detail {
// A std::chrono duration as the seconds the double forms take, never negative.
template <class Rep, class Period>
double nonnegative_seconds(std::chrono::duration<Rep, Period> d) {
    const double t = std::chrono::duration<double>(d).count();
    return t < 0 ? 0.0 : t;
}

// Seconds as the milliseconds the internal calls take, -1 for no limit (std::nullopt or
// beyond about 31 years); ValueError naming `api` for a negative or NaN timeout. In
// common/pool.cpp.
double timeout_to_ms(const std::optional<double>& seconds, const char* api);
}  // namespace mp::detail
