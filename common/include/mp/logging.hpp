// mp/logging.hpp - where mp's own messages go: Python's multiprocessing.get_logger() and
// log_to_stderr(), as a level and one settable sink.
//
//     mp::log_to_stderr(mp::LogLevel::info);     // stderr, INFO and above
//     mp::set_log_sink([](mp::LogLevel level, std::string_view message) {
//         my_log(mp::log_level_name(level), message);  // or anywhere else
//     });
//     mp::set_log_sink({});                      // back to stderr
//
// mp prints a message where CPython's multiprocessing would warn or complain: a fork from a
// multithreaded process, a pool callback that threw, a child's uncaught exception
// ("Process <name>:"), a forkserver preload that failed, the resource tracker's leaks. Each goes
// through here with a level; nothing else in mp writes to stderr (but a crash reporter in a
// signal handler, which may not lock or allocate). By default, as in Python with no handler
// configured, messages at WARNING and above go to stderr, one line each, with the text they
// always had.
//
// Children: a fork child has the parent's level and sink (a copy of the process, as Python's
// handlers are). A spawned or forkserver child, the forkserver and the resource tracker get
// the level the parent had when they started, and write to their own stderr: a sink is a
// function of the parent's program and cannot cross to another process.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace mp {

// Python's levels, with Python's numbers (lower case: DEBUG and ERROR are macros in some
// headers). Any other number is a level too, as in Python.
enum class LogLevel : int {
    subdebug = 5,
    debug = 10,
    info = 20,
    sub_warning = 25,
    warning = 30,
    error = 40,
    critical = 50,
};

// "SUBDEBUG", "DEBUG", "INFO", "SUBWARNING", "WARNING", "ERROR", "CRITICAL"; "Level N" for
// another number (Python's logging.getLevelName).
std::string log_level_name(LogLevel level);

// Messages below `level` are dropped before they are formatted. The default is warning.
void set_log_level(LogLevel level) noexcept;
LogLevel get_log_level() noexcept;

// A sink receives each message that passes the level: its level and its text, without a
// trailing newline (a message may have several lines). An empty function restores the
// default sink, which writes the text and a newline to stderr.
//
// Threads: any thread may log or set the sink at any time. A sink runs on the thread that
// logs, possibly on several threads at once, and sometimes with a lock of mp held: it should
// write the message somewhere and return, and must not start processes or create shared
// memory (those take mp's locks). When set_log_sink returns, no call of the sink it replaced
// is still running or will start, and that sink has been destroyed: a sink may capture
// references to what outlives its installation. So set_log_sink waits for running calls of the
// old sink to end: do not call it while holding a lock your sink takes. (Called from inside a
// sink, it cannot wait for its own call: that call ends with the old sink, which is destroyed
// when it returns.) A message the sink itself causes (it calls into mp) goes to stderr, not
// back into the sink; an exception a sink throws is swallowed, and that message goes to
// stderr.
using LogSink = std::function<void(LogLevel level, std::string_view message)>;
void set_log_sink(LogSink sink);

// Python's log_to_stderr(level): the default stderr sink, and the level when one is given.
// Returns nothing (Python returns the logger; mp has no logger object): read get_log_level()
// first to restore it later. Unlike Python's, the lines carry no "[LEVEL/process]" prefix:
// they read as they do by default.
void log_to_stderr();
void log_to_stderr(LogLevel level);

}  // namespace mp
