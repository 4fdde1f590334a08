// common/logging_internal.hpp - how mp itself logs (mp/logging.hpp is the user's side).
//
// Every message mp prints goes through detail::log, printf-style: the level is one relaxed
// atomic load, and a message below it is not formatted at all. This header includes no public
// header, so that the platform layer (posix/tracker.cpp, posix/forkserver.cpp) may log too:
// the levels are plain ints here, the numbers of mp::LogLevel (common/logging.cpp checks that
// they agree).
//
// Not for code between fork and exec or in a signal handler: formatting, the sink and its lock
// may allocate and block. Those few places write(2) to stderr themselves and say so.
#pragma once

#include "mp/portability.hpp"

namespace mp::detail {

inline constexpr int kLogSubdebug = 5;
inline constexpr int kLogDebug = 10;
inline constexpr int kLogInfo = 20;
inline constexpr int kLogSubWarning = 25;
inline constexpr int kLogWarning = 30;
inline constexpr int kLogError = 40;
inline constexpr int kLogCritical = 50;

// Whether a message at `level` would be delivered now.
bool log_enabled(int level) noexcept;

// Formats the message (a trailing newline, if any, is dropped) and hands it to the sink, when
// `level` passes; never throws (out of memory: the message is cut to what fits on the stack).
void log(int level, const char* format, ...) noexcept MP_PRINTF_LIKE(2, 3);

// The level as a number, to hand to a child process (spawn payload, forkserver settings,
// resource tracker), and the child's side: its own level, from the parent's number.
int log_level_number() noexcept;
void set_log_level_number(int level) noexcept;

}  // namespace mp::detail
