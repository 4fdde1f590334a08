// posix/named_pipe.cpp - named pipes on POSIX: FIFOs made with mkfifo(3).
//
// A FIFO is a node in the file system: mkfifo(path, 0600) makes it, it stays there after
// every process has gone, until someone unlinks it, and anyone the file mode allows may open
// it by path (0600: only our user). The kernel joins one reader and one writer: open(2) for
// reading blocks until a writer opens, and open for writing blocks until a reader opens. The
// bytes then flow as in an anonymous pipe: a reader sees end of file once every writer has
// closed, a writer gets SIGPIPE/EPIPE once every reader has closed (mp writes with SIGPIPE
// held off, see posix/handle.cpp). Neither side is special: the creator is only whoever called
// mkfifo, and any number of processes may open each end.
// There is no open() with a timeout, so a timed open goes through O_NONBLOCK: a writer's
// non-blocking open fails with ENXIO while no reader exists, so it retries in short sleeps
// until the deadline; a reader's non-blocking open succeeds at once, so it then poll()s until
// a writer has written something or has come and gone (Linux reports POLLHUP only after a
// writer that was there has closed). Both clear O_NONBLOCK afterwards. Without a timeout the
// open simply blocks. Every call is retried on EINTR, with the time that is left.
// Windows differs: a named pipe is not a file but a name in the kernel's \\.\pipe\ namespace
// that exists only while its creating (server) handle is open; the creator is special (it
// must wait for a client in ConnectNamedPipe), exactly one client joins each instance, access
// is decided by a DACL instead of a file mode, and a Listener's default family is such a pipe
// (a POSIX Listener uses AF_UNIX sockets, posix/socket.cpp).
#include "../common/sys/named_pipe.hpp"
#include "../common/sys/error.hpp"
#include "../common/sys/tracker.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace mp::sys {

namespace {

// A path that exists but is not a FIFO is refused before it is opened (opening a device or a
// regular file for writing is not harmless), and again after (it may have been swapped).
std::error_code check_is_fifo(int fd, const std::string& path) noexcept {
    struct stat st{};
    const int r = fd >= 0 ? ::fstat(fd, &st) : ::stat(path.c_str(), &st);
    if (r != 0) return last_error();
    if (!S_ISFIFO(st.st_mode)) return std::make_error_code(std::errc::invalid_argument);
    return {};
}

std::error_code clear_nonblock(int fd) noexcept {
    const int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) return last_error();
    return {};
}

std::error_code open_fifo(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept {
    if (auto ec = check_is_fifo(-1, path)) return ec;
    const int access = (reader ? O_RDONLY : O_WRONLY) | O_CLOEXEC;
    const bool forever = deadline.is_never();
    Handle h;
    if (forever) {
        for (;;) {
            const int fd = ::open(path.c_str(), access);
            if (fd >= 0) {
                h.reset(fd);
                break;
            }
            if (errno != EINTR) return last_error();
        }
    } else if (!reader) {
        int nap_ms = 1;
        for (;;) {
            const int fd = ::open(path.c_str(), access | O_NONBLOCK);
            if (fd >= 0) {
                h.reset(fd);
                break;
            }
            if (errno == EINTR) continue;
            if (errno != ENXIO) return last_error();  // ENXIO: no reader yet
            // A FIFO has no way to wait for a reader without blocking in open(): look again
            // after a nap that grows to 10 ms, never past the deadline.
            if (deadline.passed()) return std::make_error_code(std::errc::timed_out);
            const Deadline nap = deadline.or_within(std::chrono::milliseconds(nap_ms));
            std::this_thread::sleep_until(nap.time_point());
            nap_ms = std::min(nap_ms * 2, 10);
        }
    } else {
        for (;;) {
            const int fd = ::open(path.c_str(), access | O_NONBLOCK);
            if (fd >= 0) {
                h.reset(fd);
                break;
            }
            if (errno != EINTR) return last_error();
        }
        if (auto ec = check_is_fifo(h.get(), path)) return ec;
        pollfd p{h.get(), POLLIN, 0};
        int ready = 0;
        if (auto ec = poll_until(&p, 1, deadline, ready)) return ec;
        // Ready: data, or a writer that came and closed (a read will not block).
        if (ready == 0) return std::make_error_code(std::errc::timed_out);
    }
    if (auto ec = check_is_fifo(h.get(), path)) return ec;
    if (!forever) {
        if (auto ec = clear_nonblock(h.get())) return ec;
    }
    end.h = std::move(h);
    return {};
}

}  // namespace

std::error_code named_pipe_path(const std::string& name, std::string& out) noexcept try {
    if (name.empty()) return std::make_error_code(std::errc::invalid_argument);
    if (name[0] == '/') {
        out = name;
        return {};
    }
    if (name.find('/') != std::string::npos) return std::make_error_code(std::errc::invalid_argument);
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = tmp && *tmp == '/' ? tmp : "/tmp";
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    out = dir + "/mp-fifo-" + name;
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

const char* named_pipe_name_rule() noexcept { return "give a bare name (no '/') or an absolute path"; }

std::error_code named_pipe_create(const std::string& path, bool /*reader*/, PipeEnd& /*server*/) noexcept {
    // The FIFO is made at a private name under the resource tracker's protection, then linked
    // to its path, so that it goes when its creator dies at any instant (sys/tracker.hpp); a
    // path too long for the tracker's registry is made untracked. 0600: the umask can only take
    // bits away, and the owner's two are what we need.
    Creation c;
    const bool tracked = !begin_creation(Resource::file, path, c);
    if (::mkfifo(tracked ? c.temporary.c_str() : path.c_str(), 0600) != 0) {
        const std::error_code ec = last_error();
        finish_creation(c, false);
        return ec;
    }
    if (tracked) return finish_creation(c, true);  // file_exists: the path was taken meanwhile
    return {};
}

std::error_code named_pipe_accept(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept {
    // The creator of a FIFO is no different from any other opener.
    return open_fifo(path, reader, end, deadline);
}

std::error_code named_pipe_open(const std::string& path, bool reader, PipeEnd& end, const Deadline& deadline) noexcept {
    return open_fifo(path, reader, end, deadline);
}

// A FIFO's open times out only when no peer comes: nothing more to say.
const char* named_pipe_open_timeout_note() noexcept { return ""; }

std::error_code named_pipe_remove(const std::string& path) noexcept {
    if (::unlink(path.c_str()) != 0) return last_error();
    untrack(Resource::file, path);  // nothing when this process did not make it
    return {};
}

// listener_pipe_create() is Windows-only: a POSIX Listener listens on an AF_UNIX socket.
// listener_pipe_accept() is Windows-only: a POSIX Listener accepts on its socket.
// listener_pipe_connect() is Windows-only: a POSIX Client connects an AF_UNIX socket.

}  // namespace mp::sys
