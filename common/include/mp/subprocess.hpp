// mp/subprocess.hpp - running other programs: Python's subprocess module in C++17 types.
//
//     namespace sp = mp::subprocess;
//     sp::CompletedProcess r = sp::run({"git", "status"}, sp::Options().capture_output().text());
//     std::printf("%d: %s", r.returncode, r.std_out.c_str());
//
//     try {
//         sp::run({"make", "test"}, sp::Options().capture_output().check().timeout(60));
//     } catch (const sp::CalledProcessError& e) {    // a non-zero exit status
//         std::fprintf(stderr, "%s\n%s", e.what(), e.std_err().c_str());
//     } catch (const sp::TimeoutExpired& e) {        // the child was killed after 60 s
//     }
//
//     sp::Popen p({"ping", "-c", "3", "localhost"}, sp::Options().std_out(sp::PIPE).text());
//     for (const std::string& line : p.stdout_pipe()) std::printf("got %s", line.c_str());
//     p.wait();
//
// Python keyword arguments become the methods of Options, which return the Options, so that
// they chain: Options().std_in(PIPE).std_out(PIPE).std_err(STDOUT).cwd("/tmp").env({...}).
// `stdin`, `stdout` and `stderr` are macros in some C libraries (mingw's among them), so the
// C++ names are std_in / std_out / std_err, and the pipes of a Popen are stdin_pipe() ...
//
// Where it follows Python:
//   - args[0] is the program (or Options::executable, with args[0] then only the name the
//     child sees). A name without a directory is looked up in PATH (POSIX: posix_spawnp, the
//     PATH of this process, as execvp; Windows: SearchPathW, ".exe" added when the name has no
//     extension). With env(map), the name is looked up in that map's PATH, not ours.
//   - shell(): args[0] is a command line for the system shell, /bin/sh -c on POSIX, cmd.exe
//     /d /s /c on Windows. The shell parses it: what it expands, redirects and runs is up to
//     the text, so a shell command must never hold text from someone untrusted (pass such text
//     as an argument of a program run without shell(), which no shell ever parses). POSIX:
//     args[1..] become the shell's $0, $1 ..., which is the one safe way to give it data.
//   - Windows batch files (.bat, .cmd) always run through cmd.exe, which parses the command
//     line again by its own rules (CVE-2024-24576, "BatBadBut"). mp quotes each argument for
//     cmd.exe and refuses, with a ValueError, an argument that no quoting makes safe (see
//     win32/process.cpp), so that an argument can never become a command.
//   - returncode is the exit status, or -signum for a death by signal (POSIX). On Windows,
//     terminate() and kill() end the child with TerminateProcess and report -SIGTERM / -SIGKILL
//     (-15, -9), as mp::Process does; any other exit code is reported as it is.
//   - text(): the outputs get universal newlines ("\r\n" and a lone "\r" become "\n"), as
//     Python's text mode; bytes are passed through unchanged, as UTF-8 is. Without text() the
//     outputs are the exact bytes. Input is always written as given (no newline translation).
//   - The environment: inherited; env(map) replaces it whole; add_env(name, value) adds to
//     what the child would get otherwise (ours or the map).
//   - Timeouts are seconds; negative means no limit (Python's None), NaN is a ValueError.
//
// Beyond CPython:
//   - communicate() never waits on pipes that a grandchild holds. CPython reads until end of
//     file, so `run(["sh", "-c", "sleep 100 & echo hi"], capture_output=True)` waits for the
//     sleep, which inherited stdout. Here, once the child itself has exited, communicate reads
//     what the pipes already hold (everything the child wrote is in them by then) until they
//     are empty, at most 0.1 s more, then closes them and returns. The price: output that a
//     grandchild writes after its parent exits is not collected (a program that daemonises
//     and then prints is the case to know).
//   - communicate(), run() and the timed waits never deadlock on full pipes: the three pipes
//     are served at once (poll() on POSIX, overlapped I/O on Windows), into reused 64 KiB
//     buffers, and a timeout bounds the whole call. EINTR never surfaces.
//   - Every read and write on a pipe has a form with a timeout, and a read that runs out of
//     time loses nothing: what arrived stays in the stream for the next read.
//   - Bad input is a clear exception before anything starts: empty args, a NUL byte in an
//     argument, a variable or a path, an '=' in a variable name, option combinations Python
//     refuses (ValueError).
//
// Lifetime (RAII): a Popen that is destroyed closes its pipes (stdin first, so that a child
// reading it sees end of file) and then waits for the child, without a limit, as leaving
// Python's `with Popen(...) as p:` block does; so nothing is leaked and no zombie is left.
// A child that ignores both would keep the destructor waiting: kill() it, or wait(timeout)
// first, if that can happen. A moved-from Popen owns nothing and its methods throw ValueError.
// Every fd is close-on-exec and every handle non-inheritable: the child receives exactly its
// stdin, stdout and stderr, and its pass_fds.
//
// Threads: poll, wait, returncode and the signals (send_signal ... kill_tree) may be called
// from any number of threads at once: every waiter gets the return code, the child is reaped
// once, and no signal ever reaches a pid after the child was reaped. communicate() belongs to
// one thread at a time, as each of the three pipes does (a writer on stdin while another thread
// reads stdout is fine).
//
// Errors:
//   the program does not exist (or PATH has no such name)          FileNotFoundError
//   the program may not be run                                     PermissionError
//   cwd does not exist (the message names the cwd)                 FileNotFoundError
//   any other failure to start                                     OSError
//   empty args, bad values, conflicting options                    ValueError
//   run(check), check_call, check_output: non-zero returncode      CalledProcessError
//   run/call/wait/communicate/read*: out of time                   TimeoutExpired (wait(t, ec),
//                                                                  communicate(..., ec): ec)
//   writing to a child that closed its stdin                       BrokenPipeError
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "duration.hpp"
#include "errors.hpp"
#include "source_iterator.hpp"
#include "utf8_path.hpp"

namespace mp::subprocess {

// ---- exceptions ----------------------------------------------------------------------------

class SubprocessError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// A child ended with a non-zero returncode where that was asked to be an error (check).
// what(): Python's text, "Command '['ls', '-l']' returned non-zero exit status 2." or
// "Command '['sleep', '9']' died with <Signals.SIGKILL: 9>." (signal names: Linux numbering,
// which mp uses on both systems).
class CalledProcessError : public SubprocessError {
public:
    CalledProcessError(int returncode, std::vector<std::string> cmd, std::string output = {},
                       std::string std_err = {});
    int returncode() const noexcept { return returncode_; }
    const std::vector<std::string>& cmd() const noexcept { return cmd_; }
    const std::string& output() const noexcept { return output_; }  // the child's stdout
    const std::string& std_out() const noexcept { return output_; }
    const std::string& std_err() const noexcept { return std_err_; }

private:
    int returncode_;
    std::vector<std::string> cmd_;
    std::string output_, std_err_;
};

// The time given to run, call, wait, communicate or a pipe read ran out. output() and
// std_err() hold what had been captured by then (run: all the killed child wrote;
// communicate: the output so far, which a later communicate() returns again, in full).
// what(): "Command '['sleep', '9']' timed out after 2.0 seconds".
class TimeoutExpired : public SubprocessError {
public:
    TimeoutExpired(std::vector<std::string> cmd, double timeout, std::string output = {}, std::string std_err = {});
    const std::vector<std::string>& cmd() const noexcept { return cmd_; }
    double timeout() const noexcept { return timeout_; }
    const std::string& output() const noexcept { return output_; }
    const std::string& std_out() const noexcept { return output_; }
    const std::string& std_err() const noexcept { return std_err_; }

private:
    std::vector<std::string> cmd_;
    double timeout_;
    std::string output_, std_err_;
};

// ---- options -------------------------------------------------------------------------------

// Where a standard stream of the child goes. inherit (the default): this process's own stream.
enum class Redirect { inherit, pipe, devnull, to_stdout };
inline constexpr Redirect PIPE = Redirect::pipe;        // a pipe to this process (Popen::*_pipe())
inline constexpr Redirect DEVNULL = Redirect::devnull;  // the null device
inline constexpr Redirect STDOUT = Redirect::to_stdout; // stderr only: wherever stdout goes
inline constexpr Redirect INHERIT = Redirect::inherit;

// A file by path for a child's stream (Python passes an open file object). read: it must
// exist; write: created or truncated; append: created, and every write lands at its end.
// Without a mode: read for stdin, write for stdout and stderr. stdout and stderr given the
// same path share one open file, so their order is kept (and neither overwrites the other).
enum class FileMode { read, write, append };
class File {
public:
    explicit File(std::string path) : path_(std::move(path)) {}
    File(std::string path, FileMode mode) : path_(std::move(path)), mode_(mode) {}
    explicit File(const char* path) : path_(path) {}
    File(const char* path, FileMode mode) : path_(path), mode_(mode) {}
    explicit File(const std::filesystem::path& path) : path_(mp::detail::utf8_path(path)) {}
    File(const std::filesystem::path& path, FileMode mode) : path_(mp::detail::utf8_path(path)), mode_(mode) {}
    const std::string& path() const noexcept { return path_; }
    const std::optional<FileMode>& mode() const noexcept { return mode_; }

private:
    std::string path_;
    std::optional<FileMode> mode_;
};

// A descriptor (POSIX fd) or HANDLE (Windows, its value as an integer) that the caller owns
// and keeps: the child gets a copy of it as its stream; ours stays open (Python's stdin=fd).
struct Descriptor {
    explicit constexpr Descriptor(std::intptr_t v) noexcept : value(v) {}
    std::intptr_t value;
};

class PipeReader;
class PipeWriter;

// Python keyword arguments, chained: Options().std_out(PIPE).cwd("/tmp").
class Options {
public:
    Options& std_in(Redirect r) { return stream(0, r); }
    Options& std_out(Redirect r) { return stream(1, r); }
    Options& std_err(Redirect r) { return stream(2, r); }
    Options& std_in(File f) { return stream(0, std::move(f)); }
    Options& std_out(File f) { return stream(1, std::move(f)); }
    Options& std_err(File f) { return stream(2, std::move(f)); }
    Options& std_in(Descriptor d) { return stream(0, d); }
    Options& std_out(Descriptor d) { return stream(1, d); }
    Options& std_err(Descriptor d) { return stream(2, d); }
    // A pipeline: another Popen's stdout (or stderr) pipe becomes this child's stdin, and that
    // Popen's stdin pipe may become this child's stdout or stderr. The bytes flow from child to
    // child, not through this process, and our copy of that end is closed once this child has
    // started (the PipeReader or PipeWriter is closed() then), so that the first child gets end
    // of file or SIGPIPE when this one ends, as Python's `p1.stdout.close()` after starting p2.
    // The pipe must not have been read or written through the PipeReader/PipeWriter yet.
    Options& std_in(PipeReader& from) { return stream(0, &from); }
    Options& std_out(PipeWriter& to) { return stream(1, &to); }
    Options& std_err(PipeWriter& to) { return stream(2, &to); }
    // run(): the bytes to write to the child's stdin (which becomes a pipe).
    Options& input(std::string data) { input_ = std::move(data); return *this; }
    // run(): stdout and stderr both PIPE, returned in CompletedProcess.
    Options& capture_output(bool on = true) { capture_ = on; return *this; }
    Options& text(bool on = true) { text_ = on; return *this; }
    Options& universal_newlines(bool on = true) { return text(on); }
    // run(): a non-zero returncode raises CalledProcessError.
    Options& check(bool on = true) { check_ = on; return *this; }
    // run(), call(): seconds for the whole run; then the child is killed and TimeoutExpired
    // raised. std::nullopt (the default): no limit; negative: ValueError (mp/duration.hpp).
    Options& timeout(std::optional<double> seconds);
    template <class Rep, class Period>
    Options& timeout(std::chrono::duration<Rep, Period> d) { return timeout(mp::detail::nonnegative_seconds(d)); }
    Options& cwd(std::string dir) { cwd_ = std::move(dir); return *this; }
    Options& cwd(const std::filesystem::path& dir) { return cwd(mp::detail::utf8_path(dir)); }
    Options& cwd(const char* dir) { return cwd(std::string(dir)); }
    // The child's whole environment (nothing of ours is passed). A program named without a
    // directory is then looked up in this map's PATH (POSIX: "/bin:/usr/bin" if it has none),
    // as CPython does, not in ours.
    Options& env(std::map<std::string, std::string> vars) { env_ = std::move(vars); return *this; }
    // One variable more (or replaced) on top of what the child would get otherwise. (PATH
    // given here changes what the child sees, not where the program is looked up: only a whole
    // env() is searched instead of ours.)
    Options& add_env(std::string name, std::string value) {
        extra_env_.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    // POSIX: the child calls setsid() (a new session and process group, no controlling
    // terminal). Windows: CREATE_NEW_PROCESS_GROUP, and a job object as process_group() gives.
    Options& start_new_session(bool on = true) { new_session_ = on; return *this; }
    // The program to run, where args[0] is then only the name the child sees as argv[0].
    Options& executable(std::string path) { executable_ = std::move(path); return *this; }
    Options& executable(const std::filesystem::path& path) { return executable(mp::detail::utf8_path(path)); }
    Options& executable(const char* path) { return executable(std::string(path)); }
    // args[0] is a shell command: POSIX /bin/sh -c args[0], with args[1..] as the shell's $0,
    // $1 ...; Windows %ComSpec% (cmd.exe) /d /s /c "the args joined" (see "shell" at the top).
    Options& shell(bool on = true) { shell_ = on; return *this; }
    // A process tree: the child leads a new process group (POSIX setpgid(0, 0); Windows: a job
    // object holds it and everything it starts), for Popen::kill_tree / terminate_tree.
    Options& process_group(bool on = true) { process_group_ = on; return *this; }
    // run(), call() and Popen::communicate(): when the time runs out, the whole tree is killed
    // (kill_tree), not only the child; needs process_group() or start_new_session().
    Options& timeout_kills_tree(bool on = true) { timeout_kills_tree_ = on; return *this; }
    // Descriptors (POSIX fds) or HANDLE values (Windows) that the child receives at the same
    // numbers, besides its stdin, stdout and stderr. Nothing else reaches it.
    Options& pass_fds(std::vector<std::intptr_t> fds) { pass_fds_ = std::move(fds); return *this; }
    // POSIX only (Windows: ValueError). The child's umask; its user, group and supplementary
    // groups by name or number (changing them takes privilege: PermissionError otherwise);
    // restore_signals(false) leaves SIGPIPE and SIGXFSZ as this process has them (by default
    // they are reset to their default action, as CPython does); close_fds(false) lets the fds
    // that are not close-on-exec reach the child (every fd mp opens is close-on-exec).
    Options& umask(int mask) { umask_ = mask; return *this; }
    Options& user(std::string name_or_id) { user_ = std::move(name_or_id); return *this; }
    Options& user(long long uid) { return user(std::to_string(uid)); }
    Options& group(std::string name_or_id) { group_ = std::move(name_or_id); return *this; }
    Options& group(long long gid) { return group(std::to_string(gid)); }
    Options& extra_groups(std::vector<std::string> names_or_ids) { extra_groups_ = std::move(names_or_ids); return *this; }
    Options& restore_signals(bool on) { restore_signals_ = on; return *this; }
    Options& close_fds(bool on) { close_fds_ = on; return *this; }

    struct Access;

private:
    friend struct Access;
    // One standard stream's target: which of these is set says what it is.
    struct Stream {
        std::optional<Redirect> redirect;
        std::optional<File> file;
        std::optional<Descriptor> descriptor;
        PipeReader* from = nullptr;
        PipeWriter* to = nullptr;
        bool given() const { return redirect || file || descriptor || from || to; }
    };
    Options& stream(int i, Redirect r) { streams_[i] = Stream(); streams_[i].redirect = r; return *this; }
    Options& stream(int i, File f) { streams_[i] = Stream(); streams_[i].file = std::move(f); return *this; }
    Options& stream(int i, Descriptor d) { streams_[i] = Stream(); streams_[i].descriptor = d; return *this; }
    Options& stream(int i, PipeReader* r) { streams_[i] = Stream(); streams_[i].from = r; return *this; }
    Options& stream(int i, PipeWriter* w) { streams_[i] = Stream(); streams_[i].to = w; return *this; }

    Stream streams_[3];
    std::optional<std::string> input_;
    bool capture_ = false;
    bool text_ = false;
    bool check_ = false;
    std::optional<double> timeout_;
    std::string cwd_;
    std::optional<std::map<std::string, std::string>> env_;
    std::vector<std::pair<std::string, std::string>> extra_env_;
    bool new_session_ = false;
    std::optional<std::string> executable_;
    bool shell_ = false;
    bool process_group_ = false;
    bool timeout_kills_tree_ = false;
    std::vector<std::intptr_t> pass_fds_;
    std::optional<int> umask_;
    std::optional<std::string> user_, group_;
    std::optional<std::vector<std::string>> extra_groups_;
    bool restore_signals_ = true;
    bool close_fds_ = true;
    const char* caller_ = nullptr;  // the API the user called (run, call, ...), for messages
};

// ---- pipes ---------------------------------------------------------------------------------

// Our end of the child's stdin.
class PipeWriter {
public:
    // Writes data, waiting until the child has taken all of it; with timeout_seconds >= 0, at
    // most that long. Returns how many bytes went out: data.size(), or fewer when the time ran
    // out (exactly those reached the child; write the rest later). BrokenPipeError if the child
    // has closed its stdin.
    std::size_t write(std::string_view data, std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    std::size_t write(std::string_view data, std::chrono::duration<Rep, Period> timeout) {
        return write(data, mp::detail::nonnegative_seconds(timeout));
    }
    // Writes go straight to the pipe, so there is nothing to flush; here for Python's sake.
    void flush() {}
    // The child reads end of file once every copy of its stdin's write end is closed.
    void close() noexcept;
    bool closed() const noexcept;

    struct State;
    explicit PipeWriter(State* s) noexcept : s_(s) {}

private:
    friend struct Options::Access;
    State* s_;
};

// Our end of the child's stdout or stderr. With text(), universal newlines apply here too.
class PipeReader {
public:
    // n < 0: everything until end of file; else up to n bytes, fewer only at end of file.
    // timeout_seconds >= 0 bounds the wait: TimeoutExpired, and what arrived stays buffered.
    std::string read(std::ptrdiff_t n = -1, std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    std::string read(std::ptrdiff_t n, std::chrono::duration<Rep, Period> timeout) { return read(n, mp::detail::nonnegative_seconds(timeout)); }
    // What has arrived, at most n bytes, waiting for at least one (Python's read1); "" at end
    // of file. A text stream may hold back a final "\r" until it knows what follows.
    std::string read_some(std::size_t n = 65536, std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    std::string read_some(std::size_t n, std::chrono::duration<Rep, Period> timeout) {
        return read_some(n, mp::detail::nonnegative_seconds(timeout));
    }
    // One line with its "\n"; at end of file the rest without one, then "".
    std::string readline(std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    std::string readline(std::chrono::duration<Rep, Period> timeout) { return readline(mp::detail::nonnegative_seconds(timeout)); }
    void close() noexcept;
    bool closed() const noexcept;

    // Lines until end of file: for (const std::string& line : p.stdout_pipe()) ..., or a
    // C++20 view over the pipe (see mp/source_iterator.hpp: a line looked at and not stepped
    // past stays in the pipe for readline or read).
    using iterator = mp::detail::SourceIterator<PipeReader, std::string>;
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }

    struct State;
    explicit PipeReader(State* s) noexcept : s_(s) {}

private:
    friend struct Options::Access;
    template <class, class>
    friend class mp::detail::SourceIterator;
    std::string* source_peek();
    void source_drop();
    State* s_;
};

// ---- Popen ---------------------------------------------------------------------------------

class Popen {
public:
    // Starts the child. Options::input, check and timeout belong to run() and are refused
    // here (pass input to communicate(), the timeout to wait() or communicate()).
    explicit Popen(std::vector<std::string> args, const Options& options = Options());
    Popen(Popen&&) noexcept;
    Popen& operator=(Popen&&) noexcept;  // finishes our own child first, as the destructor does
    Popen(const Popen&) = delete;
    Popen& operator=(const Popen&) = delete;
    ~Popen();  // closes the pipes, then waits for the child (see the top of this file)

    const std::vector<std::string>& args() const;
    int pid() const;
    // The returncode once the child has been waited for (by poll, wait or communicate).
    std::optional<int> returncode() const;

    // Has the child ended? Its returncode if so (it is then reaped), nullopt if not.
    std::optional<int> poll();
    // Waits for the child to end; TimeoutExpired after timeout_seconds (>= 0). Reads nothing:
    // with PIPE outputs, a child that fills a pipe waits for us; use communicate() then.
    int wait(std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    int wait(std::chrono::duration<Rep, Period> timeout) { return wait(mp::detail::nonnegative_seconds(timeout)); }
    // Writes input to stdin (then closes it) while reading stdout and stderr, until the child
    // has ended and the pipes are drained (see "Beyond CPython" above); returns {stdout,
    // stderr} ("" for a stream that is not a pipe). On TimeoutExpired nothing is lost: call it
    // again (without input) to continue. input needs stdin PIPE (ValueError otherwise).
    std::pair<std::string, std::string> communicate(std::string input = {}, std::optional<double> timeout_seconds = std::nullopt);
    std::pair<std::string, std::string> communicate(std::optional<double> timeout_seconds) { return communicate(std::string(), timeout_seconds); }
    template <class Rep, class Period>
    std::pair<std::string, std::string> communicate(std::string input, std::chrono::duration<Rep, Period> timeout) {
        return communicate(std::move(input), mp::detail::nonnegative_seconds(timeout));
    }
    template <class Rep, class Period>
    std::pair<std::string, std::string> communicate(std::chrono::duration<Rep, Period> timeout) {
        return communicate(std::string(), mp::detail::nonnegative_seconds(timeout));
    }
    // The std::error_code forms (mp/errors.hpp): where the forms above throw TimeoutExpired,
    // ec == std::errc::timed_out, wait returns std::nullopt, and communicate returns the output
    // so far (what TimeoutExpired's output() and std_err() hold; a later communicate() returns
    // it again, in full, and Options::timeout_kills_tree still kills the tree first). The code
    // of an OSError goes into ec too. ValueError (a negative or NaN timeout, input without a
    // stdin pipe) still throws. ec is cleared on success.
    std::optional<int> wait(std::optional<double> timeout_seconds, std::error_code& ec);
    template <class Rep, class Period>
    std::optional<int> wait(std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        return wait(mp::detail::nonnegative_seconds(timeout), ec);
    }
    std::pair<std::string, std::string> communicate(std::string input, std::optional<double> timeout_seconds,
                                                    std::error_code& ec);
    std::pair<std::string, std::string> communicate(std::optional<double> timeout_seconds, std::error_code& ec) {
        return communicate(std::string(), timeout_seconds, ec);
    }
    template <class Rep, class Period>
    std::pair<std::string, std::string> communicate(std::string input, std::chrono::duration<Rep, Period> timeout,
                                                    std::error_code& ec) {
        return communicate(std::move(input), mp::detail::nonnegative_seconds(timeout), ec);
    }
    template <class Rep, class Period>
    std::pair<std::string, std::string> communicate(std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        return communicate(std::string(), mp::detail::nonnegative_seconds(timeout), ec);
    }

    // Sends a signal (POSIX kill(2)); nothing once the child has been reaped. Windows has no
    // signals: TERM and KILL end the child (TerminateProcess), anything else is a ValueError.
    void send_signal(int sig);
    void terminate();  // SIGTERM
    void kill();       // SIGKILL
    // SIGINT (Python's send_signal(CTRL_C_EVENT)). Windows: CTRL_BREAK to the child's console
    // process group, which needs start_new_session() or process_group() (ValueError otherwise);
    // the child's default handler ends it, as Ctrl+Break does.
    void interrupt();
    // The child and everything it started (its process group; Windows: its job) get SIGKILL /
    // SIGTERM, also after the child itself has ended (grandchildren that outlived it), then
    // the child is waited for, at most timeout_seconds (TimeoutExpired). Needs process_group()
    // or start_new_session() (ValueError otherwise). Windows: both end the job's processes at
    // once (TerminateJobObject), as terminate() and kill() do for one.
    void kill_tree(std::optional<double> timeout_seconds = std::nullopt);
    void terminate_tree(std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    void kill_tree(std::chrono::duration<Rep, Period> timeout) { kill_tree(mp::detail::nonnegative_seconds(timeout)); }
    template <class Rep, class Period>
    void terminate_tree(std::chrono::duration<Rep, Period> timeout) { terminate_tree(mp::detail::nonnegative_seconds(timeout)); }

    // The pipes, for a stream that is PIPE (ValueError otherwise).
    PipeWriter& stdin_pipe();
    PipeReader& stdout_pipe();
    PipeReader& stderr_pipe();

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

// ---- the convenience functions -------------------------------------------------------------

struct CompletedProcess {
    std::vector<std::string> args;
    int returncode = 0;
    std::string std_out;  // "" unless captured (stdout PIPE or capture_output)
    std::string std_err;
    // Raises CalledProcessError if returncode is not 0.
    void check_returncode() const;
};

// Runs the child to its end, feeding input and collecting the PIPE outputs, within the timeout
// (then kills it, collects what it wrote, and raises TimeoutExpired with that).
CompletedProcess run(std::vector<std::string> args, const Options& options = Options());
// run() and its returncode (Python's call). Pipes are served, so PIPE cannot fill up.
int call(std::vector<std::string> args, const Options& options = Options());
// The output of a shell command with stderr joined to it, as text, one trailing newline
// removed, and its returncode (Python's getstatusoutput; getoutput is the output alone).
[[nodiscard]] std::pair<int, std::string> getstatusoutput(const std::string& cmd);
[[nodiscard]] std::string getoutput(const std::string& cmd);
// call(), raising CalledProcessError for a non-zero returncode.
void check_call(std::vector<std::string> args, const Options& options = Options());
// run() with stdout captured and check on; returns the child's stdout. stdout may not be set.
[[nodiscard]] std::string check_output(std::vector<std::string> args, const Options& options = Options());

}  // namespace mp::subprocess
