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
//     extension). No shell: there is no shell=True; run {"sh", "-c", ...} yourself.
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
// stdin, stdout and stderr.
//
// Threads: one thread at a time per Popen, except that its three pipes may each be used by a
// thread of their own (a writer on stdin while another thread reads stdout).
//
// Errors:
//   the program does not exist (or PATH has no such name)          FileNotFoundError
//   the program may not be run                                     PermissionError
//   cwd does not exist (the message names the cwd)                 FileNotFoundError
//   any other failure to start                                     OSError
//   empty args, bad values, conflicting options                    ValueError
//   run(check), check_call, check_output: non-zero returncode      CalledProcessError
//   run/call/wait/communicate/read*: out of time                   TimeoutExpired
//   writing to a child that closed its stdin                       BrokenPipeError
#pragma once

#include <cstddef>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "errors.hpp"

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

class Options {
public:
    Options& std_in(Redirect r) { stdin_ = r; return *this; }
    Options& std_out(Redirect r) { stdout_ = r; return *this; }
    Options& std_err(Redirect r) { stderr_ = r; return *this; }
    // run(): the bytes to write to the child's stdin (which becomes a pipe).
    Options& input(std::string data) { input_ = std::move(data); return *this; }
    // run(): stdout and stderr both PIPE, returned in CompletedProcess.
    Options& capture_output(bool on = true) { capture_ = on; return *this; }
    Options& text(bool on = true) { text_ = on; return *this; }
    Options& universal_newlines(bool on = true) { return text(on); }
    // run(): a non-zero returncode raises CalledProcessError.
    Options& check(bool on = true) { check_ = on; return *this; }
    // run(), call(): seconds for the whole run; then the child is killed and TimeoutExpired
    // raised. Negative: no limit.
    Options& timeout(double seconds) { timeout_ = seconds; return *this; }
    Options& cwd(std::string dir) { cwd_ = std::move(dir); return *this; }
    // The child's whole environment (nothing of ours is passed).
    Options& env(std::map<std::string, std::string> vars) { env_ = std::move(vars); return *this; }
    // One variable more (or replaced) on top of what the child would get otherwise.
    Options& add_env(std::string name, std::string value) {
        extra_env_.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    // POSIX: the child calls setsid() (a new session and process group, no controlling
    // terminal). Windows: CREATE_NEW_PROCESS_GROUP.
    Options& start_new_session(bool on = true) { new_session_ = on; return *this; }
    // The program to run, where args[0] is then only the name the child sees as argv[0].
    Options& executable(std::string path) { executable_ = std::move(path); return *this; }

    struct Access;

private:
    friend struct Access;
    std::optional<Redirect> stdin_, stdout_, stderr_;
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
    std::size_t write(std::string_view data, double timeout_seconds = -1);
    // Writes go straight to the pipe, so there is nothing to flush; here for Python's sake.
    void flush() {}
    // The child reads end of file once every copy of its stdin's write end is closed.
    void close() noexcept;
    bool closed() const noexcept;

    struct State;
    explicit PipeWriter(State* s) noexcept : s_(s) {}

private:
    State* s_;
};

// Our end of the child's stdout or stderr. With text(), universal newlines apply here too.
class PipeReader {
public:
    // n < 0: everything until end of file; else up to n bytes, fewer only at end of file.
    // timeout_seconds >= 0 bounds the wait: TimeoutExpired, and what arrived stays buffered.
    std::string read(std::ptrdiff_t n = -1, double timeout_seconds = -1);
    // What has arrived, at most n bytes, waiting for at least one (Python's read1); "" at end
    // of file. A text stream may hold back a final "\r" until it knows what follows.
    std::string read_some(std::size_t n = 65536, double timeout_seconds = -1);
    // One line with its "\n"; at end of file the rest without one, then "".
    std::string readline(double timeout_seconds = -1);
    void close() noexcept;
    bool closed() const noexcept;

    // Lines until end of file: for (const std::string& line : p.stdout_pipe()) ...
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = std::string;
        using difference_type = std::ptrdiff_t;
        using pointer = const std::string*;
        using reference = const std::string&;
        iterator() = default;
        explicit iterator(PipeReader* r) : r_(r) { ++*this; }
        reference operator*() const { return line_; }
        pointer operator->() const { return &line_; }
        iterator& operator++() {
            line_ = r_->readline();
            if (line_.empty()) r_ = nullptr;
            return *this;
        }
        bool operator==(const iterator& o) const { return r_ == o.r_; }
        bool operator!=(const iterator& o) const { return r_ != o.r_; }

    private:
        PipeReader* r_ = nullptr;
        std::string line_;
    };
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }

    struct State;
    explicit PipeReader(State* s) noexcept : s_(s) {}

private:
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
    int wait(double timeout_seconds = -1);
    // Writes input to stdin (then closes it) while reading stdout and stderr, until the child
    // has ended and the pipes are drained (see "Beyond CPython" above); returns {stdout,
    // stderr} ("" for a stream that is not a pipe). On TimeoutExpired nothing is lost: call it
    // again (without input) to continue. input needs stdin PIPE (ValueError otherwise).
    std::pair<std::string, std::string> communicate(std::string input = {}, double timeout_seconds = -1);
    std::pair<std::string, std::string> communicate(double timeout_seconds) { return communicate({}, timeout_seconds); }

    // Sends a signal (POSIX kill(2)); nothing once the child has been reaped. Windows has no
    // signals: TERM and KILL end the child (TerminateProcess), anything else is a ValueError.
    void send_signal(int sig);
    void terminate();  // SIGTERM
    void kill();       // SIGKILL

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
// call(), raising CalledProcessError for a non-zero returncode.
void check_call(std::vector<std::string> args, const Options& options = Options());
// run() with stdout captured and check on; returns the child's stdout. stdout may not be set.
std::string check_output(std::vector<std::string> args, const Options& options = Options());

}  // namespace mp::subprocess
