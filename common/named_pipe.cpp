// common/named_pipe.cpp - mp::NamedPipe: names, roles, buffering for readline, and Python's
// exceptions, over the sys/named_pipe.hpp and sys/connection.hpp contracts.
#include "mp/named_pipe.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "sys/connection.hpp"
#include "sys/named_pipe.hpp"
#include "timeout.hpp"

namespace mp {

struct NamedPipe::State {
    std::string name;
    std::string path;
    bool reader = true;
    bool creator = false;
    bool connected = false;
    bool owns_name = false;  // the creator removes the name once
    sys::PipeEnd end;        // Windows creator: the server instance from creation on
    std::string ahead;       // bytes read past a line's end, handed out first
    std::size_t ahead_pos = 0;
    // The line the iterators look at: a copy of the next line_size bytes of ahead, which stay
    // there until the iteration steps past them; every other read drops the copy.
    std::string line;
    std::size_t line_size = 0;
    bool line_ready = false;
};

namespace {

constexpr std::size_t kChunk = 64 * 1024;

sys::Deadline deadline_of(const std::optional<double>& seconds) { return detail::deadline_in_seconds(seconds, "mp::NamedPipe"); }

bool parse_mode(const std::string& mode) {
    if (mode == "r") return true;
    if (mode == "w") return false;
    throw ValueError("mp::NamedPipe: mode must be \"r\" or \"w\", not \"" + mode + "\"");
}

std::string os_path(const std::string& name) {
    std::string path;
    if (auto ec = sys::named_pipe_path(name, path)) {
        if (ec == std::errc::invalid_argument)
            throw ValueError("mp::NamedPipe: bad name \"" + name + "\": " + sys::named_pipe_name_rule());
        raise_os_error(ec, "mp::NamedPipe(" + name + ")");
    }
    return path;
}

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s);
    return buf;
}

[[noreturn]] void throw_open_error(std::error_code ec, const std::string& what, const std::string& path, bool reader,
                                   const std::optional<double>& timeout_s) {
    if (ec == std::errc::timed_out)
        throw TimeoutError(what + "(" + path + "): no " + (reader ? "writer" : "reader") + " within " +
                           seconds_text(timeout_s ? *timeout_s : 0.0) + " s" +
                           (what == "mp::NamedPipe::open" ? sys::named_pipe_open_timeout_note() : ""));
    if (ec == std::errc::invalid_argument) throw ValueError(what + ": " + path + " exists but is not a FIFO");
    raise_os_error(ec, what + "(" + path + ")");
}

[[noreturn]] void throw_closed(const char* what) {
    throw OSError(std::make_error_code(std::errc::bad_file_descriptor), std::string(what) + ": the named pipe is closed");
}

}  // namespace

NamedPipe::NamedPipe() noexcept = default;
NamedPipe::NamedPipe(std::unique_ptr<State> s) noexcept : s_(std::move(s)) {}
NamedPipe::NamedPipe(NamedPipe&&) noexcept = default;
NamedPipe& NamedPipe::operator=(NamedPipe&& o) noexcept {
    if (this != &o) {
        if (s_ && s_->owns_name) sys::named_pipe_remove(s_->path);
        s_ = std::move(o.s_);
    }
    return *this;
}

NamedPipe::~NamedPipe() {
    if (s_ && s_->owns_name) {
        sys::close_end(s_->end);
        sys::named_pipe_remove(s_->path);  // a failure here (someone removed it already) is no one's business
    }
}

NamedPipe NamedPipe::create(const std::string& name, const std::string& mode) {
    auto s = std::make_unique<State>();
    s->reader = parse_mode(mode);
    s->name = name;
    s->path = os_path(name);
    s->creator = true;
    if (auto ec = sys::named_pipe_create(s->path, s->reader, s->end)) {
        if (ec == std::errc::file_exists)
            throw FileExistsError(ec, "mp::NamedPipe::create: " + s->path + " already exists");
        raise_os_error(ec, "mp::NamedPipe::create(" + s->path + ")");
    }
    s->owns_name = true;
    return NamedPipe(std::move(s));
}

NamedPipe NamedPipe::open(const std::string& name, const std::string& mode, std::optional<double> timeout_seconds) {
    auto s = std::make_unique<State>();
    s->reader = parse_mode(mode);
    s->name = name;
    s->path = os_path(name);
    if (auto ec = sys::named_pipe_open(s->path, s->reader, s->end, deadline_of(timeout_seconds))) {
        if (ec == std::errc::no_such_file_or_directory)
            throw FileNotFoundError(ec, "mp::NamedPipe::open: no named pipe " + s->path + " (its creator makes it)");
        throw_open_error(ec, "mp::NamedPipe::open", s->path, s->reader, timeout_seconds);
    }
    s->connected = true;
    return NamedPipe(std::move(s));
}

// accept(), until a deadline that poll() may already have started.
static void accept_until(NamedPipe::State* s, const sys::Deadline& deadline, const std::optional<double>& timeout_seconds) {
    if (!s) throw_closed("mp::NamedPipe::accept");
    if (s->connected) return;
    if (!s->creator) throw ValueError("mp::NamedPipe::accept: only the creator accepts; this end was opened");
    if (auto ec = sys::named_pipe_accept(s->path, s->reader, s->end, deadline))
        throw_open_error(ec, "mp::NamedPipe::accept", s->path, s->reader, timeout_seconds);
    s->connected = true;
}

void NamedPipe::accept(std::optional<double> timeout_seconds) { accept_until(s_.get(), deadline_of(timeout_seconds), timeout_seconds); }

static NamedPipe::State& ready(const std::unique_ptr<NamedPipe::State>& s, NamedPipe& self, bool want_read,
                               const char* what) {
    if (!s || (s->connected && !s->end.h)) throw_closed(what);
    if (want_read != s->reader)
        throw OSError(std::make_error_code(std::errc::bad_file_descriptor),
                      std::string(what) + ": this end is " + (s->reader ? "read-only" : "write-only"));
    if (!s->connected) self.accept(std::nullopt);
    if (want_read) s->line_ready = false;
    return *s;
}

// The length of the next line in ahead from ahead_pos (its '\n' included; at end of file the
// rest), reading until it is all there: 0 at end of file.
static std::size_t next_line(NamedPipe::State& s, const char* what) {
    std::size_t searched = s.ahead_pos;
    for (;;) {
        const std::size_t nl = s.ahead.find('\n', searched);
        if (nl != std::string::npos) return nl + 1 - s.ahead_pos;
        s.ahead.erase(0, s.ahead_pos);  // what is left is the start of one line
        s.ahead_pos = 0;
        const std::size_t have = s.ahead.size();
        searched = have;
        s.ahead.resize(have + kChunk);
        std::size_t got = 0;
        const std::error_code ec = sys::pipe_read_some(s.end, &s.ahead[have], kChunk, got);
        s.ahead.resize(have + (ec ? 0 : got));
        if (ec) raise_os_error(ec, what);
        if (got == 0) return have;  // end of file: the rest, or nothing
    }
}

std::string NamedPipe::read(std::size_t n) {
    State& s = ready(s_, *this, true, "mp::NamedPipe::read");
    if (n == 0) return {};
    if (s.ahead_pos < s.ahead.size()) {
        const std::size_t take = std::min(n, s.ahead.size() - s.ahead_pos);
        std::string out = s.ahead.substr(s.ahead_pos, take);
        s.ahead_pos += take;
        return out;
    }
    std::string out(std::min(n, kChunk), '\0');
    std::size_t got = 0;
    if (auto ec = sys::pipe_read_some(s.end, out.data(), out.size(), got)) raise_os_error(ec, "mp::NamedPipe::read");
    out.resize(got);
    return out;
}

std::string NamedPipe::read_exact(std::size_t n) {
    State& s = ready(s_, *this, true, "mp::NamedPipe::read_exact");
    std::string out;
    const std::size_t from_ahead = std::min(n, s.ahead.size() - s.ahead_pos);
    out.append(s.ahead, s.ahead_pos, from_ahead);
    s.ahead_pos += from_ahead;
    // Grows with what arrives, so that a huge n does not reserve memory up front.
    while (out.size() < n) {
        const std::size_t have = out.size();
        const std::size_t step = std::min(n - have, std::size_t{16} << 20);
        out.resize(have + step);
        std::size_t got = 0;
        if (auto ec = sys::pipe_read(s.end, &out[have], step, got)) raise_os_error(ec, "mp::NamedPipe::read_exact");
        if (got < step)
            throw EOFError("mp::NamedPipe::read_exact: the writer closed after " + std::to_string(have + got) + " of " +
                           std::to_string(n) + " bytes");
    }
    return out;
}

std::string NamedPipe::readline() {
    State& s = ready(s_, *this, true, "mp::NamedPipe::readline");
    const std::size_t n = next_line(s, "mp::NamedPipe::readline");
    std::string line = s.ahead.substr(s.ahead_pos, n);
    s.ahead_pos += n;
    return line;
}

std::string* NamedPipe::source_peek() {
    if (!s_ || !s_->line_ready) {
        State& s = ready(s_, *this, true, "mp::NamedPipe iteration");
        const std::size_t n = next_line(s, "mp::NamedPipe iteration");
        s.line.assign(s.ahead, s.ahead_pos, n);
        s.line_size = n;
        s.line_ready = true;
    }
    return s_->line_size ? &s_->line : nullptr;
}

void NamedPipe::source_drop() {
    if (!source_peek()) return;
    s_->ahead_pos += s_->line_size;
    s_->line_ready = false;
}

bool NamedPipe::poll(std::optional<double> timeout_seconds) {
    const sys::Deadline deadline = deadline_of(timeout_seconds);
    if (s_ && s_->reader && s_->creator && !s_->connected) {
        // No writer has come yet: waiting for one is part of waiting for data, until the same
        // deadline.
        try {
            accept_until(s_.get(), deadline, timeout_seconds);
        } catch (const TimeoutError&) {
            return false;
        }
    }
    State& s = ready(s_, *this, true, "mp::NamedPipe::poll");
    if (s.ahead_pos < s.ahead.size()) return true;
    bool ok = false;
    if (auto ec = sys::pipe_poll(s.end, deadline, ok)) raise_os_error(ec, "mp::NamedPipe::poll");
    return ok;
}

void NamedPipe::write(const void* data, std::size_t n) {
    State& s = ready(s_, *this, false, "mp::NamedPipe::write");
    if (n == 0) return;
    if (auto ec = sys::pipe_write(s.end, data, n, nullptr, 0)) raise_os_error(ec, "mp::NamedPipe::write(" + s.path + ")");
}

void NamedPipe::close() {
    if (!s_) return;
    sys::close_end(s_->end);
    s_->connected = true;  // so that later calls report "closed" instead of accepting again
    s_->ahead.clear();
    s_->ahead_pos = 0;
    s_->line_ready = false;
}

bool NamedPipe::closed() const noexcept { return !s_ || (s_->connected && !s_->end.h); }

void NamedPipe::remove() {
    if (!s_) throw_closed("mp::NamedPipe::remove");
    if (auto ec = sys::named_pipe_remove(s_->path)) raise_os_error(ec, "mp::NamedPipe::remove(" + s_->path + ")");
    s_->owns_name = false;
}

const std::string& NamedPipe::path() const {
    if (!s_) throw_closed("mp::NamedPipe::path");
    return s_->path;
}
bool NamedPipe::readable() const noexcept { return s_ && s_->reader; }
bool NamedPipe::is_creator() const noexcept { return s_ && s_->creator; }

}  // namespace mp
