// common/subprocess.cpp - mp::subprocess: options and their checks, the pipes' buffering and
// universal newlines, Popen's bookkeeping, communicate's rules (the drain after the child's
// exit), run and friends, and Python's messages. The OS work is in the platform layer:
// spawn_process (sys/process.hpp), the child's pipes and communicate's exchange
// (sys/child_stdio.hpp), the reads and writes of our ends (sys/connection.hpp).
#include "mp/subprocess.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <mutex>
#include <thread>

#include "sys/child_stdio.hpp"
#include "sys/connection.hpp"
#include "sys/handle.hpp"
#include "sys/os.hpp"
#include "sys/process.hpp"
#include "timeout.hpp"

namespace mp::subprocess {

namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t kChunk = 64 * 1024;
// How long communicate goes on reading after the child has exited, at most, while its pipes
// still deliver (a grandchild that holds them and keeps writing cannot keep us longer).
constexpr std::chrono::milliseconds kDrainGrace(100);

// ---- Python's text for messages -------------------------------------------------------------

// repr() of a str: single quotes unless the text holds one and no double quote; backslash,
// the quote and control characters escaped. Bytes >= 0x80 (UTF-8) pass through, as Python
// shows printable non-ASCII characters.
std::string py_repr(const std::string& s) {
    const char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, q);
    for (unsigned char c : s) {
        if (c == '\\' || c == static_cast<unsigned char>(q)) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    out += q;
    return out;
}

std::string py_repr(const std::vector<std::string>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        out += py_repr(v[i]);
    }
    return out + "]";
}

// repr() of a float: the shortest text that reads back as the same double, positional for
// exponents -4..15 with ".0" on whole numbers, scientific otherwise (1e+16, 1.5e-07).
std::string py_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    const std::string sci(buf, r.ptr);
    const int exp = std::atoi(sci.c_str() + sci.find('e') + 1);
    if (exp < -4 || exp >= 16) return sci;
    r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed);
    std::string fixed(buf, r.ptr);
    if (fixed.find('.') == std::string::npos) fixed += ".0";
    return fixed;
}

// signal.Signals names in Linux numbering (mp's numbering on both systems, see mp/signals.hpp).
const char* signal_name(int sig) {
    static const char* const names[] = {
        nullptr,    "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",  "SIGTRAP", "SIGABRT", "SIGBUS",
        "SIGFPE",   "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM",
        "SIGSTKFLT", "SIGCHLD", "SIGCONT",  "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG",
        "SIGXCPU",  "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",  "SIGPWR",  "SIGSYS"};
    if (sig > 0 && sig < 32) return names[sig];
    if (sig == 34) return "SIGRTMIN";
    if (sig == 64) return "SIGRTMAX";
    return nullptr;
}

std::string called_process_text(int returncode, const std::vector<std::string>& cmd) {
    const std::string head = "Command '" + py_repr(cmd) + "' ";
    if (returncode < 0) {
        if (const char* name = signal_name(-returncode))
            return head + "died with <Signals." + name + ": " + std::to_string(-returncode) + ">.";
        return head + "died with unknown signal " + std::to_string(-returncode) + ".";
    }
    return head + "returned non-zero exit status " + std::to_string(returncode) + ".";
}

// ---- checks ---------------------------------------------------------------------------------

using sys::Deadline;

void no_nul(const std::string& s, const char* what) {
    if (s.find('\0') != std::string::npos)
        throw ValueError("mp::subprocess: embedded null byte in " + std::string(what) + " " + py_repr(s));
}

void check_env_name(const std::string& name) {
    no_nul(name, "an environment variable name");
    const std::size_t from = sys::kEnvNameLeadingEquals ? 1 : 0;  // Windows' "=C:" names
    if (name.empty() || name.find('=', from) != std::string::npos)
        throw ValueError("mp::subprocess: illegal environment variable name " + py_repr(name));
}

}  // namespace

// ---- exceptions ----------------------------------------------------------------------------

CalledProcessError::CalledProcessError(int returncode, std::vector<std::string> cmd, std::string output,
                                       std::string std_err)
    : SubprocessError(called_process_text(returncode, cmd)),
      returncode_(returncode),
      cmd_(std::move(cmd)),
      output_(std::move(output)),
      std_err_(std::move(std_err)) {}

TimeoutExpired::TimeoutExpired(std::vector<std::string> cmd, double timeout, std::string output, std::string std_err)
    : SubprocessError("Command '" + py_repr(cmd) + "' timed out after " + py_repr(timeout) + " seconds"),
      cmd_(std::move(cmd)),
      timeout_(timeout),
      output_(std::move(output)),
      std_err_(std::move(std_err)) {}

Options& Options::timeout(std::optional<double> seconds) {
    if (seconds) detail::check_timeout(*seconds, "mp::subprocess::Options::timeout");
    timeout_ = seconds;
    return *this;
}

void CompletedProcess::check_returncode() const {
    if (returncode != 0) throw CalledProcessError(returncode, args, std_out, std_err);
}

// Options keeps its fields private, so that only its methods set them; this is the way in.
// Each accessor gives a const reference for a const Options and a mutable one otherwise.
struct Options::Access {
    using Stream = Options::Stream;
    template <class O> static auto& streams(O& o) { return o.streams_; }
    static bool given(const Options& o, int i) { return o.streams_[i].given(); }
    static void set(Options& o, int i, Redirect r) { o.stream(i, r); }
    template <class O> static auto& input(O& o) { return o.input_; }
    template <class O> static auto& capture(O& o) { return o.capture_; }
    template <class O> static auto& text(O& o) { return o.text_; }
    template <class O> static auto& check(O& o) { return o.check_; }
    template <class O> static auto& timeout(O& o) { return o.timeout_; }
    template <class O> static auto& cwd(O& o) { return o.cwd_; }
    template <class O> static auto& env(O& o) { return o.env_; }
    template <class O> static auto& extra_env(O& o) { return o.extra_env_; }
    template <class O> static auto& new_session(O& o) { return o.new_session_; }
    template <class O> static auto& executable(O& o) { return o.executable_; }
    template <class O> static auto& shell(O& o) { return o.shell_; }
    template <class O> static auto& process_group(O& o) { return o.process_group_; }
    template <class O> static auto& timeout_kills_tree(O& o) { return o.timeout_kills_tree_; }
    template <class O> static auto& pass_fds(O& o) { return o.pass_fds_; }
    template <class O> static auto& umask(O& o) { return o.umask_; }
    template <class O> static auto& user(O& o) { return o.user_; }
    template <class O> static auto& group(O& o) { return o.group_; }
    template <class O> static auto& extra_groups(O& o) { return o.extra_groups_; }
    template <class O> static auto& restore_signals(O& o) { return o.restore_signals_; }
    template <class O> static auto& close_fds(O& o) { return o.close_fds_; }
    template <class O> static auto& caller(O& o) { return o.caller_; }
    // The state behind another Popen's pipe, for a pipeline.
    static PipeReader::State* state(PipeReader* r) { return r->s_; }
    static PipeWriter::State* state(PipeWriter* w) { return w->s_; }
    // The name of the call the user made, for the messages of the Popen it made.
    static std::string what(const Options& o) { return o.caller_ ? o.caller_ : "mp::subprocess::Popen"; }
};
using A = Options::Access;

// ---- pipes ---------------------------------------------------------------------------------

struct PipeWriter::State {
    sys::PipeEnd end;
    bool closed = true;
    const std::vector<std::string>* args = nullptr;
};

std::size_t PipeWriter::write(std::string_view data, std::optional<double> timeout_seconds) {
    if (s_->closed) throw ValueError("mp::subprocess: write to a closed stdin pipe");
    const Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::subprocess::PipeWriter::write");
    std::size_t written = 0;
    if (data.empty()) return 0;
    if (auto ec = sys::pipe_write(s_->end, data.data(), data.size(), nullptr, 0, deadline, &written)) {
        if (ec == std::errc::timed_out) return written;
        raise_os_error(ec, "mp::subprocess: writing to the stdin of " + py_repr(*s_->args));
    }
    return data.size();
}

void PipeWriter::close() noexcept {
    sys::close_end(s_->end);
    s_->closed = true;
}

bool PipeWriter::closed() const noexcept { return s_->closed; }

struct PipeReader::State {
    sys::PipeEnd end;
    bool closed = true;     // not a pipe, closed by the user, or taken by communicate
    bool eof = false;       // end of file was read (end is closed then)
    bool text = false;
    bool pending_cr = false;  // text: a "\r" whose next byte has not arrived yet
    std::string buf;        // bytes for the caller (translated in text mode), from pos on
    std::size_t pos = 0;
    std::unique_ptr<char[]> scratch;
    const std::vector<std::string>* args = nullptr;
    const char* name = "stdout";
    // The line the iterators look at: a copy of the next line_size bytes of buf, which stay
    // there until the iteration steps past them; anything that takes from buf drops the copy.
    std::string line;
    std::size_t line_size = 0;
    bool line_ready = false;

    std::size_t available() const { return buf.size() - pos; }

    void compact() {
        if (pos == buf.size()) {
            buf.clear();
            pos = 0;
        } else if (pos > kChunk && pos * 2 > buf.size()) {
            buf.erase(0, pos);
            pos = 0;
        }
    }

    std::string take(std::size_t n) {
        line_ready = false;
        if (n >= available()) {  // all of it: handed over, not copied, when it starts the buffer
            std::string out = pos ? buf.substr(pos) : std::move(buf);
            buf.clear();
            pos = 0;
            return out;
        }
        std::string out = buf.substr(pos, n);
        pos += n;
        compact();
        return out;
    }

    void skip(std::size_t n) {
        line_ready = false;
        pos += n;
        compact();
    }

    // The length of the next line (its "\n" included; at end of file the rest), reading until
    // it is all here: 0 at end of file.
    std::size_t next_line(const Deadline& deadline, const std::optional<double>& timeout_seconds) {
        std::size_t searched = pos;
        for (;;) {
            const std::size_t nl = buf.find('\n', searched);
            if (nl != std::string::npos) return nl + 1 - pos;
            if (eof) return available();
            searched = buf.size();  // fill only appends
            if (!fill(deadline)) timed_out(timeout_seconds);
        }
    }

    // Appends what arrived: as it is, or with universal newlines ("\r\n" and "\r" -> "\n").
    void feed(const char* p, std::size_t n) {
        if (!text) {
            sys::append_captured(buf, p, n);
            return;
        }
        const char* stop = p + n;
        if (pending_cr && p < stop) {
            pending_cr = false;
            buf += '\n';
            if (*p == '\n') ++p;
        }
        while (p < stop) {
            const char* cr = static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(stop - p)));
            if (!cr) {
                buf.append(p, stop);
                break;
            }
            buf.append(p, cr);
            if (cr + 1 == stop) {
                pending_cr = true;  // "\r\n" split across two reads must still be one "\n"
                break;
            }
            buf += '\n';
            p = cr + (cr[1] == '\n' ? 2 : 1);
        }
    }

    void at_eof() {
        if (pending_cr) buf += '\n';
        pending_cr = false;
        eof = true;
        sys::close_end(end);
    }

    void check_open(const char* what) const {
        if (closed) throw ValueError(std::string("mp::subprocess: ") + what + " on a closed " + name + " pipe");
    }

    // One read, waiting until the deadline. False if it passed first.
    bool fill(const Deadline& deadline) {
        if (eof) return true;
        if (!deadline.is_never()) {
            bool ready = false;
            if (auto ec = sys::pipe_poll(end, deadline, ready))
                raise_os_error(ec, std::string("mp::subprocess: waiting on ") + name);
            if (!ready) return false;
        }
        if (!scratch) scratch.reset(new char[kChunk]);
        std::size_t got = 0;
        if (auto ec = sys::pipe_read_some(end, scratch.get(), kChunk, got))
            raise_os_error(ec, std::string("mp::subprocess: reading ") + name);
        if (got == 0)
            at_eof();
        else
            feed(scratch.get(), got);
        return true;
    }

    [[noreturn]] void timed_out(const std::optional<double>& timeout_seconds) const {
        throw TimeoutExpired(*args, timeout_seconds.value_or(0.0));
    }
};

std::string PipeReader::read(std::ptrdiff_t n, std::optional<double> timeout_seconds) {
    s_->check_open("read");
    const Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::subprocess::PipeReader::read");
    const std::size_t want = n < 0 ? std::string::npos : static_cast<std::size_t>(n);
    while (!s_->eof && s_->available() < want)
        if (!s_->fill(deadline)) s_->timed_out(timeout_seconds);
    return s_->take(want);
}

std::string PipeReader::read_some(std::size_t n, std::optional<double> timeout_seconds) {
    s_->check_open("read_some");
    const Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::subprocess::PipeReader::read_some");
    if (n == 0) return {};
    while (!s_->eof && s_->available() == 0)
        if (!s_->fill(deadline)) s_->timed_out(timeout_seconds);
    return s_->take(n);
}

std::string PipeReader::readline(std::optional<double> timeout_seconds) {
    s_->check_open("readline");
    const Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::subprocess::PipeReader::readline");
    return s_->take(s_->next_line(deadline, timeout_seconds));
}

std::string* PipeReader::source_peek() {
    s_->check_open("iteration");
    if (!s_->line_ready) {
        const std::size_t n = s_->next_line(Deadline::never(), std::nullopt);
        s_->line.assign(s_->buf, s_->pos, n);
        s_->line_size = n;
        s_->line_ready = true;
    }
    return s_->line_size ? &s_->line : nullptr;
}

void PipeReader::source_drop() {
    if (source_peek()) s_->skip(s_->line_size);
}

void PipeReader::close() noexcept {
    sys::close_end(s_->end);
    s_->closed = true;
    s_->buf.clear();
    s_->pos = 0;
    s_->line_ready = false;
}

bool PipeReader::closed() const noexcept { return s_->closed; }

// ---- Popen ---------------------------------------------------------------------------------

struct Popen::Impl {
    std::vector<std::string> args;
    // Threads may share a Popen for waiting (CPython's test_threadsafe_wait): `mu` guards the
    // child, its return code and its sentinel, and is held only for a reap that does not wait
    // or a signal, never across a wait; waits happen on the sentinel without it, so every
    // waiter gets the return code and the child is reaped once. communicate() and the pipe
    // streams belong to one thread at a time.
    mutable std::mutex mu;
    sys::Child child;
    std::optional<int> returncode;
    // The child's sentinel, for waits and communicate, opened on first need; shared so that a
    // waiting thread keeps it open while another lets go of it.
    std::shared_ptr<sys::Handle> watch;
    PipeWriter::State in;
    PipeReader::State out, err;
    PipeWriter in_writer{&in};
    PipeReader out_reader{&out};
    PipeReader err_reader{&err};
    bool in_is_pipe = false, out_is_pipe = false, err_is_pipe = false;
    bool tree = false;                // process_group or start_new_session: kill_tree works
    bool timeout_kills_tree = false;
    // communicate's state, kept across a TimeoutExpired
    bool communicating = false;
    std::string input;
    sys::PipeExchange x;
    std::string raw[2];  // text mode: what arrived, before universal newlines

    // With mu held: reaps the child if it has ended, without waiting.
    bool reap_now() {
        if (returncode) return true;
        bool exited = false;
        int code = 0;
        if (auto ec = sys::wait_process(child, Deadline::now(), exited, code))
            raise_os_error(ec, "mp::subprocess: waiting for process " + std::to_string(child.pid));
        if (exited) returncode = code;
        return exited;
    }

    // With mu held: the sentinel (nullptr when this system cannot give one).
    std::shared_ptr<sys::Handle> sentinel() {
        if (!watch && !returncode) {
            auto h = std::make_shared<sys::Handle>();
            if (!sys::open_sentinel(child, false, *h)) watch = std::move(h);
        }
        return watch;
    }

    // Reaps the child if it ends before the deadline (Deadline::now(): just looks).
    bool reap(const Deadline& deadline) {
        for (;;) {
            std::shared_ptr<sys::Handle> w;
            {
                std::lock_guard<std::mutex> lk(mu);
                if (reap_now()) return true;
                if (deadline.passed()) return false;
                w = sentinel();
            }
            bool ended = false;
            if (w) {
                if (auto ec = sys::wait_watch(w->get(), deadline, ended))
                    raise_os_error(ec, "mp::subprocess: waiting for process " + std::to_string(child.pid));
            } else {
                std::this_thread::sleep_until(deadline.or_within(std::chrono::milliseconds(5)).time_point());
            }
        }
    }

    // As leaving Python's `with Popen(...)` block: pipes closed, the child waited for.
    void finish() noexcept {
        in_writer.close();
        out_reader.close();
        err_reader.close();
        if (child.pid > 0) {
            try {
                reap(Deadline::never());
            } catch (...) {
                // A destructor cannot report it: the child is the OS's to reap.
            }
        }
        std::lock_guard<std::mutex> lk(mu);
        watch.reset();
    }

    // Both forms of communicate: timed_out set when the time ran out first, and then the pair
    // holds the output so far (what TimeoutExpired carries).
    std::pair<std::string, std::string> communicate(std::string data, std::optional<double> timeout_seconds,
                                                    bool& timed_out);
    void exchange_round(const Deadline& deadline, bool use_watch, bool& ended, std::size_t& moved);
};

static Popen::Impl& usable(const std::unique_ptr<Popen::Impl>& impl) {
    if (!impl) throw ValueError("mp::subprocess::Popen: this object was moved from");
    return *impl;
}

namespace {

// A user, group or supplementary group given by name or number, as its id.
long long credential_id(const std::string& name_or_id, bool is_user, const std::string& what) {
    no_nul(name_or_id, is_user ? "the user" : "a group");
    if (name_or_id.empty()) throw ValueError(what + ": an empty " + (is_user ? "user" : "group") + " name");
    long long id = 0;
    const char* end = name_or_id.data() + name_or_id.size();
    auto r = std::from_chars(name_or_id.data(), end, id);
    if (r.ec == std::errc() && r.ptr == end) {
        if (id < 0) throw ValueError(what + ": a negative " + (is_user ? "uid" : "gid") + " " + name_or_id);
        return id;
    }
    const std::error_code ec = is_user ? sys::user_id(name_or_id, id) : sys::group_id(name_or_id, id);
    if (ec == std::errc::no_such_file_or_directory)
        throw KeyError(what + ": no " + (is_user ? "user" : "group") + " named " + py_repr(name_or_id));
    if (ec) raise_os_error(ec, what + ": looking up " + py_repr(name_or_id));
    return id;
}

}  // namespace

Popen::Popen(std::vector<std::string> args, const Options& options) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    const std::string what = A::what(options);
    const bool shell = A::shell(options);
    if (args.empty())
        throw ValueError(what + (shell ? ": args is empty (args[0] is the shell command)"
                                       : ": args is empty (args[0] is the program to run)"));
    for (const auto& a : args) no_nul(a, "an argument");
    if (A::input(options) || A::check(options) || A::timeout(options))
        throw ValueError(what + ": input, check and timeout are options of run(); give a Popen's input "
                         "to communicate() and its timeout to wait() or communicate()");
    // With shell(), args[0] is the command and the program is the shell (executable: another).
    const std::string program = shell ? A::executable(options).value_or("") : A::executable(options).value_or(args[0]);
    no_nul(program, "the executable");
    if (!shell && program.empty()) throw ValueError(what + ": the program name is empty");
    if (!shell && !sys::kArg0MayHoldQuote && args[0].find('"') != std::string::npos)
        throw ValueError(what + ": on Windows args[0] cannot hold a '\"' (the C runtime reads the "
                         "program name up to the next quote)");
    no_nul(A::cwd(options), "cwd");

    using Stream = A::Stream;
    Stream st[3] = {A::streams(options)[0], A::streams(options)[1], A::streams(options)[2]};
    if (A::capture(options)) {
        if (st[1].given() || st[2].given())
            throw ValueError("mp::subprocess: stdout and stderr arguments may not be used with capture_output.");
        st[1] = st[2] = Stream();
        st[1].redirect = st[2].redirect = PIPE;
    }
    auto is = [&](int i, Redirect r) { return st[i].redirect == r || (r == INHERIT && !st[i].given()); };
    if (is(0, STDOUT) || is(1, STDOUT))
        throw ValueError("mp::subprocess: STDOUT is only for stderr (it sends stderr wherever stdout goes)");
    m.tree = A::process_group(options) || A::new_session(options);
    m.timeout_kills_tree = A::timeout_kills_tree(options);
    if (m.timeout_kills_tree && !m.tree)
        throw ValueError(what + ": timeout_kills_tree needs a process tree: process_group() or start_new_session()");

    sys::SpawnRequest req;
    req.program = program;
    req.search_path = true;
    req.shell = shell;
    req.cwd = A::cwd(options);
    req.new_session = A::new_session(options);
    req.process_group = A::process_group(options);
    if (const auto& env = A::env(options)) {
        std::map<std::string, std::string> all = *env;
        for (const auto& kv : A::extra_env(options)) all[kv.first] = kv.second;
        req.replace_env = true;
        req.env.assign(all.begin(), all.end());
    } else {
        req.env = A::extra_env(options);
    }
    for (const auto& kv : req.env) {
        check_env_name(kv.first);
        no_nul(kv.second, "an environment variable value");
    }
    for (std::intptr_t fd : A::pass_fds(options)) {
        if (fd < 0) throw ValueError(what + ": pass_fds holds a negative value " + std::to_string(fd));
        req.pass_fds.push_back(sys::handle_from_value(static_cast<std::uintptr_t>(fd)));
    }

    // The POSIX steps between fork and exec.
    const bool credentials = A::umask(options) || A::user(options) || A::group(options) || A::extra_groups(options) ||
                             !A::restore_signals(options) || !A::close_fds(options);
    if (credentials && !sys::kChildCredentials)
        throw ValueError(what + ": umask, user, group, extra_groups, restore_signals and close_fds are POSIX "
                         "options; Windows has no such step between creating a process and starting it");
    if (const auto& mask = A::umask(options)) {
        if (*mask < 0 || *mask > 0777) throw ValueError(what + ": umask " + std::to_string(*mask) + " is not within 0..0777");
        req.umask = *mask;
    }
    if (const auto& u = A::user(options)) req.uid = credential_id(*u, true, what);
    if (const auto& g = A::group(options)) req.gid = credential_id(*g, false, what);
    if (const auto& gs = A::extra_groups(options)) {
        req.set_groups = true;
        for (const auto& g : *gs) req.groups.push_back(credential_id(g, false, what));
    }
    req.restore_signals = A::restore_signals(options);
    req.close_fds = A::close_fds(options);

    sys::Handle devnull, child_in, child_out, child_err, files[3];
    auto null_device = [&]() {
        if (!devnull)
            if (auto ec = sys::open_null_device(devnull)) raise_os_error(ec, "mp::subprocess: opening the null device");
        return devnull.get();
    };
    auto make = [&](bool parent_reads, sys::PipeEnd& parent, sys::Handle& child, const char* which) {
        if (auto ec = sys::make_child_pipe(parent_reads, parent, child))
            raise_os_error(ec, std::string("mp::subprocess: creating the ") + which + " pipe");
        return child.get();
    };
    static const char* const names[3] = {"stdin", "stdout", "stderr"};
    // stdout and stderr to the same path share one open file, so that neither overwrites the
    // other and their order is kept, as a shell's `>f 2>&1` does.
    auto open_target = [&](int i) -> sys::native_handle {
        const File& f = *st[i].file;
        no_nul(f.path(), "a file path");
        if (f.path().empty()) throw ValueError(what + ": an empty file path for " + names[i]);
        const FileMode mode = f.mode().value_or(i == 0 ? FileMode::read : FileMode::write);
        if ((i == 0) != (mode == FileMode::read))
            throw ValueError(what + ": " + names[i] + (i == 0 ? " is read from: its File needs FileMode::read"
                                                              : " is written: its File cannot be FileMode::read"));
        if (i == 2 && st[1].file && st[1].file->path() == f.path() &&
            st[1].file->mode().value_or(FileMode::write) == mode)
            return files[1].get();
        const sys::FileMode sm = mode == FileMode::read ? sys::FileMode::read
                                 : mode == FileMode::write ? sys::FileMode::write : sys::FileMode::append;
        if (auto ec = sys::open_file(f.path(), sm, files[i])) raise_os_error(ec, what + ": opening " + py_repr(f.path()) + " for " + names[i]);
        return files[i].get();
    };
    // A pipeline: another Popen's end of a pipe becomes this child's stream.
    sys::PipeEnd* handed[3] = {nullptr, nullptr, nullptr};
    auto hand_over = [&](int i, sys::PipeEnd& end, bool untouched) -> sys::native_handle {
        if (!end.h) throw ValueError(what + ": the pipe given as " + names[i] + " is closed");
        if (!untouched)
            throw ValueError(what + ": the pipe given as " + names[i] + " holds bytes already read into this process, "
                             "which the next child would never get");
        if (auto ec = sys::ready_end_for_child(end)) raise_os_error(ec, what + ": handing a pipe to " + names[i]);
        handed[i] = &end;
        return end.h.get();
    };
    sys::native_handle* slot[3] = {&req.stdin_handle, &req.stdout_handle, &req.stderr_handle};
    sys::PipeEnd* ours[3] = {nullptr, &m.out.end, &m.err.end};
    sys::Handle* child_end[3] = {&child_in, &child_out, &child_err};
    for (int i = 0; i < 3; ++i) {
        const Stream& s = st[i];
        if (s.redirect == PIPE) *slot[i] = i == 0 ? make(false, m.in.end, child_in, "stdin") : make(true, *ours[i], *child_end[i], names[i]);
        if (s.redirect == DEVNULL) *slot[i] = null_device();
        if (s.file) *slot[i] = open_target(i);
        if (s.descriptor) {
            if (s.descriptor->value < 0)
                throw ValueError(what + ": a negative descriptor " + std::to_string(s.descriptor->value) + " for " + names[i]);
            *slot[i] = sys::handle_from_value(static_cast<std::uintptr_t>(s.descriptor->value));
        }
        if (s.from) {
            PipeReader::State* r = A::state(s.from);
            *slot[i] = hand_over(i, r->end, !r->closed && !r->eof && r->available() == 0 && !r->pending_cr);
        }
        if (s.to) {
            PipeWriter::State* w = A::state(s.to);
            *slot[i] = hand_over(i, w->end, !w->closed);
        }
    }
    req.stderr_to_stdout = is(2, STDOUT);

    req.args = std::move(args);
    const bool text = A::text(options);
    m.in_is_pipe = is(0, PIPE);
    m.out_is_pipe = is(1, PIPE);
    m.err_is_pipe = is(2, PIPE);
    m.in.closed = !m.in_is_pipe;
    m.out.closed = !m.out_is_pipe;
    m.err.closed = !m.err_is_pipe;
    m.in.args = m.out.args = m.err.args = &m.args;
    m.out.text = m.err.text = text;
    m.err.name = "stderr";

    // What we printed before should come out before what the child prints to the same place.
    if (is(1, INHERIT) || is(2, INHERIT) || is(2, STDOUT)) sys::flush_std_streams();
    if (auto ec = sys::spawn_process(req, m.child)) {
        if (!req.cwd.empty()) {
            if (auto bad = sys::check_directory(req.cwd)) {
                if (bad == std::errc::no_such_file_or_directory)
                    throw FileNotFoundError(bad, what + ": the working directory " + py_repr(req.cwd) +
                                                     " does not exist");
                raise_os_error(bad, what + ": the working directory " + py_repr(req.cwd));
            }
        }
        // Windows refuses an argument that cmd.exe would parse as a command (a batch file's).
        if (!sys::kArg0MayHoldQuote && ec == std::errc::invalid_argument)
            throw ValueError(what + ": an argument of " + py_repr(req.args) + " cannot be passed safely to the batch "
                             "file " + py_repr(program) + " (cmd.exe would read it as part of a command; see "
                             "mp/subprocess.hpp, \"Windows batch files\")");
        if (ec == std::errc::bad_file_descriptor)
            raise_os_error(ec, what + ": a descriptor in pass_fds is not open");
        raise_os_error(ec, what + ": cannot run " + py_repr(shell ? std::string("the shell") : program));
    }
    m.args = std::move(req.args);
    // Our copies of the pipes handed to this child close now: the previous child of the
    // pipeline must see end of file (or SIGPIPE) when this one ends.
    for (int i = 0; i < 3; ++i) {
        if (!handed[i]) continue;
        if (st[i].from) st[i].from->close();
        if (st[i].to) st[i].to->close();
    }
    // The child's ends close here, in the parent: from now on only the child holds them, so
    // that its exit is our end of file.
}

Popen::Popen(Popen&&) noexcept = default;

Popen& Popen::operator=(Popen&& other) noexcept {
    if (this != &other) {
        if (impl_) impl_->finish();
        impl_ = std::move(other.impl_);
    }
    return *this;
}

Popen::~Popen() {
    if (impl_) impl_->finish();
}

const std::vector<std::string>& Popen::args() const { return usable(impl_).args; }

int Popen::pid() const { return usable(impl_).child.pid; }

std::optional<int> Popen::returncode() const {
    const Impl& m = usable(impl_);
    std::lock_guard<std::mutex> lk(m.mu);
    return m.returncode;
}

std::optional<int> Popen::poll() {
    Impl& m = usable(impl_);
    std::lock_guard<std::mutex> lk(m.mu);
    m.reap_now();
    return m.returncode;
}

// Both forms of wait: std::nullopt when the timeout ran out first.
static std::optional<int> wait_for(Popen::Impl& m, std::optional<double> timeout_seconds) {
    if (!m.reap(detail::deadline_in_seconds(timeout_seconds, "mp::subprocess::Popen::wait"))) return std::nullopt;
    std::lock_guard<std::mutex> lk(m.mu);
    return m.returncode;
}

int Popen::wait(std::optional<double> timeout_seconds) {
    Impl& m = usable(impl_);
    const std::optional<int> code = wait_for(m, timeout_seconds);
    if (!code) throw TimeoutExpired(m.args, timeout_seconds.value_or(0.0));
    return *code;
}

std::optional<int> Popen::wait(std::optional<double> timeout_seconds, std::error_code& ec) {
    Impl& m = usable(impl_);
    ec.clear();
    std::optional<int> code;
    try {
        code = wait_for(m, timeout_seconds);
    } catch (const OSError& e) {  // waiting itself failed: not routine, and not worth a path of its own
        ec = e.code();
        return std::nullopt;
    }
    if (!code) ec = std::make_error_code(std::errc::timed_out);
    return code;
}

// One call of pipe_exchange on the streams still open, then the bookkeeping: ends that are
// finished are closed, text is translated. moved: bytes read.
void Popen::Impl::exchange_round(const Deadline& deadline, bool use_watch, bool& ended, std::size_t& moved) {
    PipeReader::State* outs[2] = {&out, &err};
    x.input = !in.closed && in.end.h && x.sent < x.size ? &in.end : nullptr;
    std::size_t before = 0;
    for (int i = 0; i < 2; ++i) {
        PipeReader::State& r = *outs[i];
        const bool open = !r.closed && !r.eof;
        x.output[i] = open ? &r.end : nullptr;
        if (r.text) {
            x.sink[i] = &raw[i];
        } else {
            if (r.pos) {  // the sink is the stream's buffer itself: no second copy
                r.buf.erase(0, r.pos);
                r.pos = 0;
            }
            x.sink[i] = &r.buf;
        }
        before += x.sink[i]->size();
    }
    std::shared_ptr<sys::Handle> w;
    if (use_watch) {
        std::lock_guard<std::mutex> lk(mu);
        w = watch;
    }
    const auto ec = sys::pipe_exchange(x, w ? w->get() : sys::invalid_handle(), deadline, ended);
    moved = 0;
    for (int i = 0; i < 2; ++i) {
        PipeReader::State& r = *outs[i];
        moved += x.sink[i]->size();
        if (r.text) {
            r.feed(raw[i].data(), raw[i].size());
            raw[i].clear();
        }
        if (!r.closed && !r.eof && !x.output[i]) r.at_eof();
    }
    moved -= before;
    if (!in.end.h) in.closed = true;  // pipe_exchange closed it: all written, or the child closed its end
    if (ec) raise_os_error(ec, "mp::subprocess::Popen::communicate with " + py_repr(args));
}

std::pair<std::string, std::string> Popen::Impl::communicate(std::string data, std::optional<double> timeout_seconds,
                                                            bool& timed_out) {
    timed_out = false;
    const Deadline deadline = detail::deadline_in_seconds(timeout_seconds, "mp::subprocess::Popen::communicate");
    if (!communicating) {
        if (!data.empty() && !in_is_pipe)
            throw ValueError("mp::subprocess::Popen::communicate: input needs a stdin pipe (Options().std_in(PIPE))");
        if (!data.empty() && in.closed)
            throw ValueError("mp::subprocess::Popen::communicate: input given, but stdin is closed");
        communicating = true;
        input = std::move(data);
        x.data = input.data();
        x.size = input.size();
        x.sent = 0;
        if (input.empty()) in_writer.close();  // the child reads end of file at once
    } else if (!data.empty()) {
        throw ValueError("mp::subprocess::Popen::communicate: Cannot send input after starting communication");
    }
    auto pending = [&] { return (!in.closed && x.sent < x.size) || (!out.closed && !out.eof) || (!err.closed && !err.eof); };
    auto so_far = [&](PipeReader::State& r) { return r.closed ? std::string() : r.buf.substr(r.pos); };

    bool ended = false;
    bool have_watch = false;
    {
        std::lock_guard<std::mutex> lk(mu);
        ended = returncode.has_value();
        if (!ended && pending()) have_watch = sentinel() != nullptr;  // none: look now and then
    }
    while (!ended && pending()) {
        // Without a sentinel, the child's end is looked for every 10 ms.
        const Deadline slice = have_watch ? deadline : deadline.or_within(std::chrono::milliseconds(10));
        std::size_t moved = 0;
        exchange_round(slice, true, ended, moved);
        if (!have_watch) ended = reap(Deadline::now());
        if (!ended && pending() && deadline.passed()) {
            timed_out = true;
            return {so_far(out), so_far(err)};
        }
    }
    if (ended && pending()) {
        // The child has exited, and everything it wrote is in the pipes by now. Someone else
        // may still hold them (a grandchild that inherited them): read what is there until a
        // look finds nothing new, for kDrainGrace at most, and do not wait for end of file.
        in_writer.close();
        const auto until = clock::now() + kDrainGrace;
        for (;;) {
            std::size_t moved = 0;
            bool ignored = false;
            exchange_round(Deadline::now(), false, ignored, moved);
            if (moved == 0 || !pending() || clock::now() >= until) break;
        }
        for (PipeReader::State* r : {&out, &err})
            if (!r->closed && !r->eof) r->at_eof();
    }
    if (!reap(deadline)) {
        timed_out = true;
        return {so_far(out), so_far(err)};
    }
    std::pair<std::string, std::string> result;
    if (!out.closed) result.first = out.take(std::string::npos);
    if (!err.closed) result.second = err.take(std::string::npos);
    out_reader.close();
    err_reader.close();
    return result;
}

// Both forms of communicate, with the tree killed when the time ran out and the options ask
// for it (what the tree wrote is in the pair, and in the next communicate()).
static std::pair<std::string, std::string> communicate_once(Popen& p, Popen::Impl& m, std::string input,
                                                            std::optional<double> timeout_seconds, bool& timed_out) {
    auto result = m.communicate(std::move(input), timeout_seconds, timed_out);
    if (timed_out && m.timeout_kills_tree) p.kill_tree();
    return result;
}

std::pair<std::string, std::string> Popen::communicate(std::string input, std::optional<double> timeout_seconds) {
    Impl& m = usable(impl_);
    bool timed_out = false;
    auto result = communicate_once(*this, m, std::move(input), timeout_seconds, timed_out);
    if (timed_out)
        throw TimeoutExpired(m.args, timeout_seconds.value_or(0.0), std::move(result.first), std::move(result.second));
    return result;
}

std::pair<std::string, std::string> Popen::communicate(std::string input, std::optional<double> timeout_seconds,
                                                       std::error_code& ec) {
    Impl& m = usable(impl_);
    ec.clear();
    bool timed_out = false;
    try {
        auto result = communicate_once(*this, m, std::move(input), timeout_seconds, timed_out);
        if (timed_out) ec = std::make_error_code(std::errc::timed_out);
        return result;
    } catch (const OSError& e) {  // a pipe or the wait failed: not routine
        ec = e.code();
        return {};
    }
}

void Popen::send_signal(int sig) {
    Impl& m = usable(impl_);
    // Under the lock nobody reaps the child between the look and the signal: a pid is never
    // signalled after its reap, when it may be someone else's.
    std::lock_guard<std::mutex> lk(m.mu);
    if (m.reap_now()) return;
    if (!sys::kAnySignal && sig != 15 && sig != 9)
        throw ValueError("mp::subprocess::Popen::send_signal: Windows has no signal " + std::to_string(sig) +
                         " to send to another program; terminate() and kill() (TerminateProcess) are what exists");
    if (auto ec = sys::signal_process(m.child, sig))
        raise_os_error(ec, "mp::subprocess: signalling process " + std::to_string(m.child.pid));
}

void Popen::terminate() { send_signal(15); }

void Popen::kill() { send_signal(9); }

void Popen::interrupt() {
    Impl& m = usable(impl_);
    if (!sys::kAnySignal && !m.tree)
        throw ValueError("mp::subprocess::Popen::interrupt: on Windows CTRL_BREAK reaches a console process group, "
                         "so the child needs one of its own: start_new_session() or process_group()");
    std::lock_guard<std::mutex> lk(m.mu);
    if (m.reap_now()) return;
    if (auto ec = sys::interrupt_process(m.child))
        raise_os_error(ec, "mp::subprocess: interrupting process " + std::to_string(m.child.pid));
}

// Signals the tree, also when the child itself has been reaped (grandchildren may live on),
// then waits for the child.
static void end_tree(Popen::Impl& m, int sig, std::optional<double> timeout_seconds, const char* name) {
    const Deadline deadline = detail::deadline_in_seconds(timeout_seconds, name);
    if (!m.tree)
        throw ValueError(std::string(name) + ": the child has no process tree of its own: start it with "
                         "process_group() or start_new_session()");
    {
        std::lock_guard<std::mutex> lk(m.mu);
        if (auto ec = sys::signal_process_tree(m.child, sig))
            raise_os_error(ec, std::string(name) + ": signalling the process tree of " + std::to_string(m.child.pid));
    }
    if (!m.reap(deadline)) throw TimeoutExpired(m.args, timeout_seconds.value_or(0.0));
}

void Popen::kill_tree(std::optional<double> timeout_seconds) { end_tree(usable(impl_), 9, timeout_seconds, "mp::subprocess::Popen::kill_tree"); }

void Popen::terminate_tree(std::optional<double> timeout_seconds) {
    end_tree(usable(impl_), 15, timeout_seconds, "mp::subprocess::Popen::terminate_tree");
}

PipeWriter& Popen::stdin_pipe() {
    Impl& m = usable(impl_);
    if (!m.in_is_pipe) throw ValueError("mp::subprocess::Popen: stdin is not a pipe (Options().std_in(PIPE))");
    return m.in_writer;
}

PipeReader& Popen::stdout_pipe() {
    Impl& m = usable(impl_);
    if (!m.out_is_pipe)
        throw ValueError("mp::subprocess::Popen: stdout is not a pipe (Options().std_out(PIPE) or capture_output())");
    return m.out_reader;
}

PipeReader& Popen::stderr_pipe() {
    Impl& m = usable(impl_);
    if (!m.err_is_pipe)
        throw ValueError("mp::subprocess::Popen: stderr is not a pipe (Options().std_err(PIPE) or capture_output())");
    return m.err_reader;
}

// ---- run and friends -----------------------------------------------------------------------

CompletedProcess run(std::vector<std::string> args, const Options& options) {
    Options o = options;
    if (!A::caller(o)) A::caller(o) = "mp::subprocess::run";
    if (A::capture(o) && (A::given(o, 1) || A::given(o, 2)))
        throw ValueError("mp::subprocess::run: stdout and stderr arguments may not be used with capture_output.");
    std::string input;
    if (A::input(o)) {
        if (A::given(o, 0)) throw ValueError("mp::subprocess::run: stdin and input arguments may not both be used.");
        input = std::move(*A::input(o));
        A::input(o).reset();
        A::set(o, 0, PIPE);
    }
    const bool check = A::check(o);
    const std::optional<double> timeout = A::timeout(o);  // checked when it was set
    A::check(o) = false;
    A::timeout(o).reset();

    Popen p(std::move(args), o);
    std::pair<std::string, std::string> outputs;
    try {
        outputs = p.communicate(std::move(input), timeout);
    } catch (const TimeoutExpired&) {
        if (A::timeout_kills_tree(o))
            p.kill_tree();
        else
            p.kill();
        auto rest = p.communicate();  // returns once the child is reaped (the drain rule)
        throw TimeoutExpired(p.args(), timeout.value_or(0.0), std::move(rest.first), std::move(rest.second));
    } catch (...) {
        try {
            p.kill();
        } catch (...) {
        }
        throw;  // ~Popen waits for it
    }
    CompletedProcess r{p.args(), *p.returncode(), std::move(outputs.first), std::move(outputs.second)};
    if (check) r.check_returncode();
    return r;
}

int call(std::vector<std::string> args, const Options& options) {
    Options o = options;
    A::caller(o) = "mp::subprocess::call";
    A::check(o) = false;
    return run(std::move(args), o).returncode;
}

void check_call(std::vector<std::string> args, const Options& options) {
    Options o = options;
    A::caller(o) = "mp::subprocess::check_call";
    A::check(o) = true;
    run(std::move(args), o);
}

std::pair<int, std::string> getstatusoutput(const std::string& cmd) {
    Options o;
    o.shell().text().std_out(PIPE).std_err(STDOUT);
    A::caller(o) = "mp::subprocess::getstatusoutput";
    CompletedProcess r = run({cmd}, o);
    if (!r.std_out.empty() && r.std_out.back() == '\n') r.std_out.pop_back();
    return {r.returncode, std::move(r.std_out)};
}

std::string getoutput(const std::string& cmd) { return getstatusoutput(cmd).second; }

std::string check_output(std::vector<std::string> args, const Options& options) {
    Options o = options;
    if (A::given(o, 1)) throw ValueError("mp::subprocess::check_output: stdout argument not allowed, it will be overridden.");
    if (A::capture(o))
        throw ValueError("mp::subprocess::check_output: stdout and stderr arguments may not be used with capture_output.");
    A::set(o, 1, PIPE);
    A::check(o) = true;
    A::caller(o) = "mp::subprocess::check_output";
    return run(std::move(args), o).std_out;
}

}  // namespace mp::subprocess
