// mp/named_pipe.hpp - mp::NamedPipe: a pipe that unrelated processes find by name (Python's
// os.mkfifo + open on POSIX; a Windows named pipe behind the same interface).
//
//     // one process: makes the name, then waits for the other side
//     mp::NamedPipe r = mp::NamedPipe::create("jobs", "r");
//     r.accept(5.0);                                   // TimeoutError if no writer in 5 s
//     std::string line = r.readline();                 // "" once the writer has closed
//     for (const std::string& l : r) ...               // the lines until then
//     // another process: opens the existing name
//     mp::NamedPipe w = mp::NamedPipe::open("jobs", "w", 5.0);
//     w.write("hello\n");
//
// Names. The same name works on both systems:
//   name                      POSIX (a FIFO in the file system)     Windows (a named pipe)
//   "jobs"                    $TMPDIR/mp-fifo-jobs (or /tmp/...)     \\.\pipe\jobs
//   "/var/run/app/jobs"       taken as it is                         \\.\pipe\/var/run/app/jobs
//   "\\.\pipe\jobs"           a bare name (\ is an ordinary char)  taken as it is
// (an empty name, a relative path with '/' on POSIX, a backslash inside a Windows pipe name:
// ValueError). path() says what the name became.
//
// Roles. The creator makes the name and waits for its peer (accept); the peer opens the name
// (open), which must exist already. Each side says "r" or "w"; they must be opposite. One
// creator joins one peer. The reason for the asymmetry is Windows: there the name exists only
// while its creator's server handle is open, and the creator must accept the client. On POSIX
// the FIFO is a file-system node: both sides merely open it, and the node stays until removed.
// So that both behave alike, the creator object removes the node when it is destroyed (or
// earlier, with remove()); a crashed creator leaves the node behind on POSIX, not on Windows.
// Under fork a child's copy of a creator does not remove anything (children end with _exit);
// pass the *name* to a spawned child and let it open().
//
// Timeouts (seconds; negative: no limit; or a std::chrono duration, see mp/duration.hpp). accept(t) and open(name, mode, t) wait at most t and
// throw mp::TimeoutError, never earlier. On POSIX, a reader's timed wait ends when the writer
// has written something or has come and gone (poll(2) on the FIFO cannot see an idle writer);
// without a timeout it ends as soon as a writer opens. read/write on a creator that has not
// accepted yet accept first, without a limit.
//
// Errors:
//   create: the path exists (a FIFO, a file, or a pipe name held by anyone)  FileExistsError
//   open: no such name (nothing created it, or its creator has gone)         FileNotFoundError
//   open: the path exists but is not a FIFO (POSIX)                          ValueError
//   not allowed by the file mode (POSIX) or the DACL (Windows)               PermissionError
//   no peer within the timeout                                               TimeoutError
//   read after the writer has closed                                         "" (end of file)
//   read_exact when the writer closes first                                  EOFError
//   write after the reader has closed                                        BrokenPipeError
//                                                                            (never SIGPIPE)
//   read on a "w" end, write on an "r" end, anything after close()           OSError EBADF
// EINTR never surfaces: every call retries it, and a timed wait restarts with the time left.
// Security: POSIX creates the FIFO with mode 0600; Windows gives the pipe a DACL that admits
// only the current user, and FILE_FLAG_FIRST_PIPE_INSTANCE so that no one can have created
// the name first and be listening. Every fd is close-on-exec, every handle non-inheritable.
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "duration.hpp"
#include "errors.hpp"
#include "source_iterator.hpp"
#include "utf8_path.hpp"

namespace mp {

class NamedPipe {
public:
    NamedPipe() noexcept;  // nothing: closed() is true
    NamedPipe(NamedPipe&&) noexcept;
    NamedPipe& operator=(NamedPipe&&) noexcept;
    ~NamedPipe();

    // Makes the name (mode "r": this side reads, "w": it writes). Does not wait.
    static NamedPipe create(const std::string& name, const std::string& mode);
    // Opens a name that a creator made, waiting up to timeout_seconds for it to be ready.
    static NamedPipe open(const std::string& name, const std::string& mode, std::optional<double> timeout_seconds = std::nullopt);
    // The same with a std::filesystem::path as the name (taken as its UTF-8 text), and with a
    // string literal (which would otherwise fit both).
    static NamedPipe create(const std::filesystem::path& name, const std::string& mode) { return create(mp::detail::utf8_path(name), mode); }
    static NamedPipe create(const char* name, const std::string& mode) { return create(std::string(name), mode); }
    static NamedPipe open(const std::filesystem::path& name, const std::string& mode, std::optional<double> timeout_seconds = std::nullopt) {
        return open(mp::detail::utf8_path(name), mode, timeout_seconds);
    }
    static NamedPipe open(const char* name, const std::string& mode, std::optional<double> timeout_seconds = std::nullopt) {
        return open(std::string(name), mode, timeout_seconds);
    }
    // open with a duration (a negative one: no time left, see mp/duration.hpp).
    template <class Rep, class Period>
    static NamedPipe open(const std::string& name, const std::string& mode, std::chrono::duration<Rep, Period> timeout) {
        return open(name, mode, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    template <class Rep, class Period>
    static NamedPipe open(const std::filesystem::path& name, const std::string& mode, std::chrono::duration<Rep, Period> timeout) {
        return open(mp::detail::utf8_path(name), mode, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    template <class Rep, class Period>
    static NamedPipe open(const char* name, const std::string& mode, std::chrono::duration<Rep, Period> timeout) {
        return open(std::string(name), mode, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    // The creator waits for the peer. Does nothing once connected.
    void accept(std::optional<double> timeout_seconds = std::nullopt);
    template <class Rep, class Period>
    void accept(std::chrono::duration<Rep, Period> timeout) {
        accept(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }

    // Up to n bytes: waits for at least one, returns what has arrived; "" at end of file.
    std::string read(std::size_t n);
    // Exactly n bytes; EOFError if the writer closes first (what came is lost with it).
    std::string read_exact(std::size_t n);
    // One line, its '\n' included; at end of file the rest without one, then "".
    std::string readline();
    // The lines until end of file, as readline gives them: for (const std::string& line : r),
    // or a C++20 view over r (see mp/source_iterator.hpp: a line looked at and not stepped
    // past stays for readline or read). Moving r ends its iterators.
    using iterator = detail::SourceIterator<NamedPipe, std::string>;
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }
    // Whether a read would not block (data, or end of file), waiting up to timeout_seconds.
    [[nodiscard]] bool poll(std::optional<double> timeout_seconds = 0.0);
    template <class Rep, class Period>
    [[nodiscard]] bool poll(std::chrono::duration<Rep, Period> timeout) {
        return poll(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }

    void write(const void* data, std::size_t n);
    void write(std::string_view s) { write(s.data(), s.size()); }

    // Closes this end. A creator's name stays until remove() or destruction on POSIX; on
    // Windows the name is the creator's handle, so a creator's close() ends the name too.
    void close();
    bool closed() const noexcept;
    // Removes the name (POSIX: unlink; open ends go on working). Windows: the name ends when
    // the creator closes, so this only stops the destructor from trying again.
    void remove();

    const std::string& path() const;  // the OS name (see the table above)
    bool readable() const noexcept;   // mode "r"
    bool is_creator() const noexcept;

    struct State;

private:
    template <class, class>
    friend class detail::SourceIterator;
    std::string* source_peek();
    void source_drop();
    explicit NamedPipe(std::unique_ptr<State> s) noexcept;
    std::unique_ptr<State> s_;
};

}  // namespace mp
