// posix/forkserver.cpp - the forkserver start method on POSIX: a server process that forks
// children on request, and the parent's side of its socket.
//
// fork() copies the calling process as it is at that instant, with one thread: every other
// thread is gone in the copy, and a lock one of them held (in malloc, a logger, a pool) stays
// held for ever. A multithreaded parent cannot fork safely. The forkserver avoids it: on first
// use the parent spawns one fresh run of its program (posix_spawn, as spawn does), which enters
// mp::bootstrap, finds --mp-forkserver and stays single-threaded in forkserver_serve below;
// every child is forked from that clean process, which costs a fork of a small process, not a
// program start. Code above mp::bootstrap runs once, in the server.
// The parent talks to it through a Unix socket in a directory only its user can enter (0700,
// a random name; never an abstract socket name, which has no permissions: CVE-2022-42919), and
// every connection is authenticated both ways with HMAC-SHA256 and a 32-byte random key that
// reached the server through an inherited pipe, never argv or the environment (the protocol is
// written out in common/sys/forkserver.hpp). Descriptors cross with SCM_RIGHTS: the parent's
// stdio, its watch pidfd and the handles the arguments carry go to the server, and a pidfd of
// the new child comes back.
// How the status travels back: the child is the server's child, not the parent's, so the
// parent cannot waitpid it. The server reaps it (SIGCHLD wakes its loop through a self-pipe)
// and writes the raw wait status into the child's connection, then closes it; the parent keeps
// that connection as Child::status, its sentinel and what its join reads (posix/process.cpp),
// and signals through the pidfd (pidfd_send_signal), which can never reach a process that
// reused the pid. The child holds a copy of the server's end of its own connection, so a server
// that dies first leaves the connection quiet until the child has ended too; the parent then
// asks the pidfd, and reports 255 for an exit status nobody could collect, as CPython does.
// The server ends when its parent does: the parent holds the only copy of its end of an
// "alive" socketpair (close-on-exec, closed in fork children by an atfork handler); at end of
// file the server kills its daemonic children (which also have PR_SET_PDEATHSIG on it) and
// exits.
// The portable profile (MP_POSIX_PORTABLE) has no pidfd: no descriptor comes back with a child,
// so the parent signals it by pid while its status has not arrived (the server reaps it only
// after that, so the pid is still the child's), and a child whose server died before it could
// report ends with 255 even when we, as a subreaper, could have collected it. A daemonic child
// watches its server with getppid() every 100 ms (posix/process.cpp, die_with_parent) instead of
// PR_SET_PDEATHSIG, and the server keeps its program's name (no PR_SET_NAME). The same channel hands the server a new listening socket when its directory was
// removed under it (SharedMemory::stop_tracker removes every tracked name). A server that died
// or was killed is replaced at the next start, with a new directory, socket and key.
// Windows has no fork, so no forkserver: win32/forkserver.cpp refuses every call, and
// get_context("forkserver") is a ValueError there, as in CPython.
#include "../common/sys/forkserver.hpp"
#include "../common/sys/error.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#if defined(MP_POSIX_PORTABLE)
#include "../common/sys/process.hpp"
#else
#include <sys/prctl.h>
#include <sys/syscall.h>
#endif
#include <sys/wait.h>
#include <unistd.h>
#include <unordered_map>

#include "../common/hmac_sha256.hpp"
#include "../common/logging_internal.hpp"
#include "../common/sys/tracker.hpp"

namespace mp::sys {

namespace {

// ---- the wire ------------------------------------------------------------------------------

constexpr std::uint32_t kMagic = 0x6d706673;  // "mpfs"
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kKeyBytes = 32;
constexpr std::size_t kNonceBytes = 32;
constexpr std::size_t kMacBytes = 32;
constexpr std::size_t kFdsPerMessage = 250;  // SCM_RIGHTS carries at most SCM_MAX_FD (253) at once
constexpr std::size_t kMaxFds = 4096;
constexpr std::uint64_t kMaxPayload = std::uint64_t{1} << 32;
constexpr int kIoSeconds = 60;  // a peer that stalls one call longer than this is given up

struct Hello {  // server -> client, first
    std::uint32_t magic;
    std::uint32_t version;
    unsigned char nonce[kNonceBytes];
};
struct RequestHeader {  // client -> server, with the first descriptors
    unsigned char mac[kMacBytes];  // HMAC(key, "request" + server nonce + client nonce + fields below)
    unsigned char nonce[kNonceBytes];
    std::uint64_t payload_size;
    std::uint32_t fd_count;
    std::uint32_t flags;  // kDaemon, and which of stdin/stdout/stderr lead the descriptors
};
constexpr std::uint32_t kDaemon = 1;
constexpr std::uint32_t kStdinGiven = 2, kStdoutGiven = 4, kStderrGiven = 8;
struct Reply {  // server -> client, with the child's pidfd
    std::int32_t result;  // 0, or an errno: EACCES refused, EPROTO malformed, or fork's own
    std::int32_t pid;
    unsigned char mac[kMacBytes];  // HMAC(key, "reply" + client nonce + result + pid)
};
static_assert(sizeof(Hello) == 40 && sizeof(RequestHeader) == 80 && sizeof(Reply) == 40,
              "the forkserver's messages have no padding");

using Mac = detail::Sha256::Digest;

Mac request_mac(const std::string& key, const Hello& hello, const RequestHeader& h) noexcept {
    unsigned char msg[7 + kNonceBytes * 2 + 16];
    std::memcpy(msg, "request", 7);
    std::memcpy(msg + 7, hello.nonce, kNonceBytes);
    std::memcpy(msg + 7 + kNonceBytes, h.nonce, kNonceBytes);
    std::memcpy(msg + 7 + 2 * kNonceBytes, &h.payload_size, 8);
    std::memcpy(msg + 15 + 2 * kNonceBytes, &h.fd_count, 4);
    std::memcpy(msg + 19 + 2 * kNonceBytes, &h.flags, 4);
    return detail::hmac_sha256(key.data(), key.size(), msg, sizeof msg);
}

Mac reply_mac(const std::string& key, const RequestHeader& h, const Reply& r) noexcept {
    unsigned char msg[5 + kNonceBytes + 8];
    std::memcpy(msg, "reply", 5);
    std::memcpy(msg + 5, h.nonce, kNonceBytes);
    std::memcpy(msg + 5 + kNonceBytes, &r.result, 4);
    std::memcpy(msg + 9 + kNonceBytes, &r.pid, 4);
    return detail::hmac_sha256(key.data(), key.size(), msg, sizeof msg);
}

std::error_code random_fill(void* p, std::size_t n) noexcept {
    auto* out = static_cast<unsigned char*>(p);
    while (n > 0) {
        const ssize_t r = ::getrandom(out, n, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return last_error();
        out += r;
        n -= static_cast<std::size_t>(r);
    }
    return {};
}

std::error_code with_timeouts(int sock) noexcept {
    const timeval tv{kIoSeconds, 0};
    if (::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        ::setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        return last_error();
    return {};
}

// A socket call that timed out (SO_RCVTIMEO, SO_SNDTIMEO) says EAGAIN: the peer stalled.
std::error_code io_error() noexcept {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::make_error_code(std::errc::timed_out);
    return last_error();
}

void close_all(std::vector<int>& fds) noexcept {
    for (int fd : fds) ::close(fd);
    fds.clear();
}

// Sends n bytes, the descriptors attached in batches (the first with the first bytes, each
// further batch with one more byte), never raising SIGPIPE.
std::error_code send_with_fds(int sock, const char* data, std::size_t n, const std::vector<int>& fds) noexcept {
    const std::size_t batches = (fds.size() + kFdsPerMessage - 1) / kFdsPerMessage;
    if (batches > n) return std::make_error_code(std::errc::argument_list_too_long);
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * kFdsPerMessage)];
    std::size_t sent = 0, next_fd = 0;
    while (sent < n) {
        const std::size_t k = std::min(kFdsPerMessage, fds.size() - next_fd);
        // With more batches to go, this message carries one byte so that the next has its own.
        std::size_t len = n - sent;
        if (next_fd + k < fds.size()) len = sent == 0 ? std::min<std::size_t>(len, sizeof(RequestHeader)) : 1;
        iovec iov{const_cast<char*>(data + sent), len};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (k > 0) {
            std::memset(ctrl, 0, sizeof ctrl);
            msg.msg_control = ctrl;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * k);
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * k);
            std::memcpy(CMSG_DATA(c), fds.data() + next_fd, sizeof(int) * k);
        }
        const ssize_t w = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return io_error();
        next_fd += k;
        sent += static_cast<std::size_t>(w);
    }
    return {};
}

// Receives exactly n bytes and every descriptor that came with them (close-on-exec, appended
// to fds). eof: the peer closed before n bytes (not an error code: the caller says what it
// means). A message whose descriptors did not fit is a protocol error.
std::error_code recv_with_fds(int sock, void* data, std::size_t n, std::vector<int>& fds, bool& eof) noexcept try {
    eof = false;
    alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int) * 253)];
    char* p = static_cast<char*>(data);
    while (n > 0) {
        iovec iov{p, n};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = ctrl;
        msg.msg_controllen = sizeof ctrl;
        const ssize_t r = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return io_error();
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            const std::size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < k; ++i) {
                int fd;
                std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                fds.push_back(fd);
            }
        }
        if (msg.msg_flags & MSG_CTRUNC) return std::make_error_code(std::errc::protocol_error);
        if (r == 0) {
            eof = true;
            return {};
        }
        p += r;
        n -= static_cast<std::size_t>(r);
    }
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code send_all(int sock, const void* data, std::size_t n) noexcept {
    return send_with_fds(sock, static_cast<const char*>(data), n, {});
}

// ---- the parent's side ---------------------------------------------------------------------

// This process's server. A fork child of the parent drops it (the atfork handler below): the
// child must not keep the alive channel open, and starts its own server if it needs one.
struct Link {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    Child server;
    int control = -1;  // our end of the alive channel; -1: no server
    std::string dir;
    std::string address;
    std::string key;
    bool served = false;  // it has answered a request
    bool atfork_set = false;
};
Link& link() noexcept {
    static Link* l = new Link;  // never destroyed: used from exit handlers
    return *l;
}

struct Locked {
    Link& l;
    explicit Locked(Link& x) noexcept : l(x) { pthread_mutex_lock(&l.mu); }
    ~Locked() { pthread_mutex_unlock(&l.mu); }
};

void atfork_prepare() noexcept { pthread_mutex_lock(&link().mu); }
void atfork_parent() noexcept { pthread_mutex_unlock(&link().mu); }
void atfork_child() noexcept {
    Link& l = link();
    if (l.control >= 0) ::close(l.control);
    l.control = -1;
    if (l.server.process) ::close(l.server.process.release());
    l.server.pid = 0;
    std::fill(l.key.begin(), l.key.end(), '\0');
    l.key.clear();
    l.dir.clear();  // the directory is the parent's
    l.address.clear();
    l.served = false;
    pthread_mutex_unlock(&l.mu);
}

// Removes the directory a server used (its socket first) and forgets it in the tracker.
void remove_directory(Link& l) noexcept {
    if (l.dir.empty()) return;
    ::unlink(l.address.c_str());
    ::rmdir(l.dir.c_str());
    untrack(Resource::directory, l.dir);
    l.dir.clear();
    l.address.clear();
}

// With l.mu held: the server is ended (killed if it still runs), reaped and forgotten.
void retire(Link& l, bool kill_it, ForkserverFate* fate) noexcept {
    if (l.control >= 0) ::close(l.control);
    l.control = -1;
    if (l.server.pid > 0) {
        bool exited = false;
        int code = 0;
        if (kill_it) ::kill(l.server.pid, SIGKILL);  // our unreaped child: the pid is still its
        // Closing the alive channel ends a live server at once; a stopped one is killed.
        wait_process(l.server, Deadline::after_seconds(10), exited, code);
        if (!exited) {
            ::kill(l.server.pid, SIGKILL);
            wait_process(l.server, Deadline::never(), exited, code);
        }
        if (fate) *fate = ForkserverFate{l.server.pid, exited, code};
    }
    l.server = Child{};
    std::fill(l.key.begin(), l.key.end(), '\0');
    l.key.clear();
    l.served = false;
    remove_directory(l);
}

// A fresh directory of our own: $TMPDIR (if a socket path inside it fits) or /tmp, a random
// name, mode 0700, registered with the tracker before it exists.
std::error_code make_directory(Link& l) noexcept try {
    std::string base = "/tmp";
    if (const char* t = std::getenv("TMPDIR"); t && t[0] == '/' && std::strlen(t) < 64) base = t;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    for (int attempt = 0;; ++attempt) {
        unsigned char r[8];
        if (auto ec = random_fill(r, sizeof r)) return ec;
        const std::string dir = base + "/mp-forkserver-" + mp::detail::to_hex(r, sizeof r);
        if (auto ec = track(Resource::directory, dir)) return ec;
        if (::mkdir(dir.c_str(), 0700) == 0) {
            l.dir = dir;
            l.address = dir + "/socket";
            return {};
        }
        const int e = errno;
        untrack(Resource::directory, dir);
        if (e != EEXIST || attempt == 16) return os_error(e);
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code unix_address(const std::string& path, sockaddr_un& sa) noexcept {
    sa = sockaddr_un{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path) return std::make_error_code(std::errc::filename_too_long);
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    return {};
}

// With l.mu held and no server: starts one.
std::error_code launch(Link& l, const ForkserverLaunch& how) noexcept try {
    if (!l.atfork_set) {
        if (::pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0)
            return std::make_error_code(std::errc::not_enough_memory);
        l.atfork_set = true;
    }
    std::string key(kKeyBytes, '\0');
    if (auto ec = random_fill(key.data(), key.size())) return ec;
    if (auto ec = make_directory(l)) return ec;
    struct Undo {
        Link& l;
        bool done = false;
        ~Undo() {
            if (!done) remove_directory(l);
        }
    } undo{l};

    sockaddr_un sa;
    if (auto ec = unix_address(l.address, sa)) return ec;
    Handle listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener) return last_error();
    if (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) return last_error();
    if (::chmod(l.address.c_str(), 0600) != 0) return last_error();
    if (::listen(listener.get(), SOMAXCONN) != 0) return last_error();

    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return last_error();
    Handle control(pair[0]), theirs(pair[1]);
    PipeEnds keypipe;
    if (auto ec = make_pipe(keypipe)) return ec;
    Handle devnull;
    if (auto ec = open_null_device(devnull)) return ec;

    SpawnRequest req;
    req.program = how.program;
    req.args = {how.program, how.marker, std::to_string(inherited_value(listener.get(), 0)),
                std::to_string(inherited_value(theirs.get(), 1)),
                std::to_string(inherited_value(keypipe.read.get(), 2))};
    req.env = how.env;
    req.inherit = {listener.get(), theirs.get(), keypipe.read.get()};
    req.stdin_handle = devnull.get();  // children get the parent's stdio with each request
    Child server;
    if (auto ec = spawn_process(req, server)) return ec;
    l.server = std::move(server);
    l.control = control.release();
    l.key = std::move(key);
    l.served = false;
    undo.done = true;
    keypipe.read.reset();
    // A server that died at once makes these writes fail; the first request says so.
    const std::uint32_t n = static_cast<std::uint32_t>(how.settings.size());
    if (!write_all(keypipe.write.get(), l.key.data(), l.key.size()) && !write_all(keypipe.write.get(), &n, sizeof n))
        write_all(keypipe.write.get(), how.settings.data(), how.settings.size());
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// With l.mu held, the server running but its socket gone (SharedMemory::stop_tracker removes
// every registered name, our directory included): a new directory and listening socket, handed
// to the server over the alive channel, so that it and its children carry on undisturbed.
std::error_code rebind(Link& l) noexcept {
    l.dir.clear();  // already removed, and forgotten by the tracker that removed it
    l.address.clear();
    if (auto ec = make_directory(l)) return ec;
    sockaddr_un sa;
    Handle listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    std::error_code ec = unix_address(l.address, sa);
    if (!ec && !listener) ec = last_error();
    if (!ec && (::bind(listener.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0 ||
                ::chmod(l.address.c_str(), 0600) != 0 || ::listen(listener.get(), SOMAXCONN) != 0))
        ec = last_error();
    if (!ec) ec = send_with_fds(l.control, "L", 1, {listener.get()});
    if (ec) remove_directory(l);
    return ec;
}

// With l.mu held: a server that runs and can be reached, started or replaced if needed.
std::error_code ensure_locked(Link& l, const ForkserverLaunch& how) noexcept {
    if (l.control >= 0) {
        bool exited = false;
        int code = 0;
        // An error is ECHILD: someone's waitpid(-1) reaped it, so its pid is not ours any more.
        if (wait_process(l.server, Deadline::now(), exited, code)) exited = true;
        if (!exited) {
            struct stat st {};
            if (::stat(l.address.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return {};
            if (!rebind(l)) return {};
        }
        if (exited) l.server.pid = 0;  // reaped: nothing to kill or wait for
        retire(l, !exited, nullptr);
    }
    return launch(l, how);
}

// The errors that mean "the server is gone" rather than "this request was wrong".
bool server_gone(std::error_code ec) noexcept {
    return ec == std::errc::connection_refused || ec == std::errc::no_such_file_or_directory ||
           ec == std::errc::connection_aborted || ec == std::errc::connection_reset || ec == std::errc::broken_pipe;
}

}  // namespace

std::error_code forkserver_ensure_running(const ForkserverLaunch& launch_how) noexcept {
    Locked g(link());
    return ensure_locked(g.l, launch_how);
}

std::error_code forkserver_start_child(const ForkserverLaunch& how, const std::string& payload,
                                       const std::vector<native_handle>& handles, bool daemon, Child& out,
                                       ForkserverFate& fate) noexcept try {
    fate = ForkserverFate{};
    std::error_code ec;
    for (int attempt = 0; attempt < 2; ++attempt) {
        std::string address, key;
        int server_pid = 0;
        bool served = false;
        {
            Locked g(link());
            if ((ec = ensure_locked(g.l, how))) return ec;
            address = g.l.address;
            key = g.l.key;
            server_pid = g.l.server.pid;
            served = g.l.served;
        }
        ec = forkserver_request(address, key, payload, handles, daemon, out);
        std::fill(key.begin(), key.end(), '\0');
        Locked g(link());
        if (!ec) {
            if (g.l.server.pid == server_pid) g.l.served = true;
            return {};
        }
        if (!server_gone(ec)) return ec;
        // The server went away under us: collect what became of it, then start another, unless
        // it never served (its start-up fails, and another would fail the same way).
        if (g.l.server.pid == server_pid) retire(g.l, false, &fate);
        if (!served) return ec;
    }
    return ec;
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code forkserver_request(const std::string& address, const std::string& key, const std::string& payload,
                                   const std::vector<native_handle>& handles, bool daemon, Child& out) noexcept try {
    if (handles.size() + 3 > kMaxFds || payload.size() > kMaxPayload)
        return std::make_error_code(std::errc::argument_list_too_long);
    sockaddr_un sa;
    if (auto ec = unix_address(address, sa)) return ec;
    Handle sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock) return last_error();
    if (auto ec = with_timeouts(sock.get())) return ec;
    for (;;) {
        if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) break;
        if (errno == EINTR) continue;
        if (errno == EISCONN) break;  // an interrupted connect that completed meanwhile
        return io_error();
    }
    std::vector<int> back;
    bool eof = false;
    Hello hello{};
    if (auto ec = recv_with_fds(sock.get(), &hello, sizeof hello, back, eof)) return ec;
    close_all(back);
    if (eof) return std::make_error_code(std::errc::connection_aborted);
    if (hello.magic != kMagic || hello.version != kVersion) return std::make_error_code(std::errc::protocol_error);

    // The parent's stdio first (a child writes where its parent writes now, as under fork and
    // spawn), then the handles.
    std::vector<int> fds;
    RequestHeader h{};
    const std::uint32_t given[3] = {kStdinGiven, kStdoutGiven, kStderrGiven};
    for (int i = 0; i < 3; ++i) {
        if (::fcntl(i, F_GETFD) < 0) continue;
        fds.push_back(i);
        h.flags |= given[i];
    }
    fds.insert(fds.end(), handles.begin(), handles.end());
    if (daemon) h.flags |= kDaemon;
    h.payload_size = payload.size();
    h.fd_count = static_cast<std::uint32_t>(fds.size());
    if (auto ec = random_fill(h.nonce, sizeof h.nonce)) return ec;
    const Mac mac = request_mac(key, hello, h);
    std::memcpy(h.mac, mac.data(), kMacBytes);
    std::string message(reinterpret_cast<const char*>(&h), sizeof h);
    message += payload;
    if (auto ec = send_with_fds(sock.get(), message.data(), message.size(), fds)) return ec;

    Reply r{};
    if (auto ec = recv_with_fds(sock.get(), &r, sizeof r, back, eof)) {
        close_all(back);
        return ec;
    }
    Handle pidfd(back.empty() ? -1 : back.front());
    for (std::size_t i = 1; i < back.size(); ++i) ::close(back[i]);
    if (eof) return std::make_error_code(std::errc::connection_aborted);
    if (r.result == EACCES) return std::make_error_code(std::errc::permission_denied);
    if (r.result != 0) return os_error(r.result);
    const Mac expected = reply_mac(key, h, r);
    // A server that does not hold our key (something else answering at our address) is not ours.
    if (!detail::constant_time_equal(expected.data(), r.mac, kMacBytes) || r.pid <= 0) {
#if !defined(MP_POSIX_PORTABLE)  // (portable: no pidfd, and a pid from a stranger is not to be signalled)
        if (pidfd) ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
#endif
        return std::make_error_code(std::errc::operation_not_permitted);
    }
    out.pid = r.pid;
    out.process = std::move(pidfd);
    out.status = std::move(sock);
    return {};
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

int forkserver_pid() noexcept {
    Locked g(link());
    return g.l.control >= 0 ? g.l.server.pid : 0;
}

std::string forkserver_address() {
    Locked g(link());
    return g.l.control >= 0 ? g.l.address : std::string();
}

void forkserver_stop() noexcept {
    Locked g(link());
    if (g.l.control < 0) return;
    retire(g.l, false, nullptr);
}

// ---- the server's side ---------------------------------------------------------------------

namespace {

int g_sigchld_w = -1;
extern "C" void on_sigchld(int) {
    const int saved = errno;
    const char b = 0;
    [[maybe_unused]] const ssize_t w = ::write(g_sigchld_w, &b, 1);  // full: a wakeup is pending anyway
    errno = saved;
}

// In a forked child: the server's end of its own connection (see the top), which its own fork
// children must not keep.
int g_own_report_fd = -1;
void drop_own_report_fd() noexcept {
    if (g_own_report_fd >= 0) ::close(g_own_report_fd);
    g_own_report_fd = -1;
}

struct Kid {
    int conn;
    bool daemon;
};

struct Server {
    int listener = -1;
    int alive = -1;  // the alive channel: end of file when the parent is gone, or a new listener
    int sigchld_r = -1;
    int pid = 0;
    std::string key;
    rlim_t saved_nofile = 0;
    char saved_name[17] = {};
    std::unordered_map<int, Kid> kids;
};

void close_from(int first) noexcept {
#if defined(SYS_close_range) && !defined(MP_POSIX_PORTABLE)
    if (::syscall(SYS_close_range, static_cast<unsigned>(first), ~0u, 0) == 0) return;
#endif
    const long max = ::sysconf(_SC_OPEN_MAX);
    for (long fd = first; fd < (max > 0 ? max : 65536); ++fd) ::close(static_cast<int>(fd));
}

// The forked child: the server's state goes, the descriptors go where a spawned child has
// them, and the payload runs. The server is single-threaded, so the child may allocate.
[[noreturn]] void become_child(Server& s, std::string payload, std::vector<int>& fds, std::uint32_t flags, int conn,
                               ForkserverChildMain child_main) noexcept {
    ::signal(SIGCHLD, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
#if !defined(MP_POSIX_PORTABLE)
    ::prctl(PR_SET_NAME, s.saved_name, 0, 0, 0);
#endif
    if (s.saved_nofile) {
        rlimit rl{};
        if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = s.saved_nofile;
            ::setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    if (flags & kDaemon) {
        // Dies with the server (its only thread forked us), which ends when the parent does.
#if defined(MP_POSIX_PORTABLE)
        if (die_with_parent(s.pid, true)) ::_exit(1);
#else
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != s.pid) ::_exit(1);
#endif
    }
    std::size_t at = 0;
    int stdio[3] = {-1, -1, -1};
    const std::uint32_t given[3] = {kStdinGiven, kStdoutGiven, kStderrGiven};
    for (int i = 0; i < 3; ++i)
        if (flags & given[i]) stdio[i] = fds[at++];
    const int n = static_cast<int>(fds.size() - at);  // the watch handle, then the arguments'
    // Targets: the handles at 4, 5, ... (inherited_value(h, j + 1)), then the child's copy of
    // its connection; every source below `end` first moves above it, so no dup2 overwrites one.
    const int end = 4 + n + 1;
    auto above = [end](int fd) noexcept { return fd >= end ? fd : ::fcntl(fd, F_DUPFD_CLOEXEC, end); };
    for (int& fd : stdio)
        if (fd >= 0 && (fd = above(fd)) < 0) ::_exit(1);
    for (std::size_t i = at; i < fds.size(); ++i)
        if ((fds[i] = above(fds[i])) < 0) ::_exit(1);
    if ((conn = above(conn)) < 0) ::_exit(1);
    for (int i = 0; i < 3; ++i) {
        if (stdio[i] >= 0 ? ::dup2(stdio[i], i) < 0 : ::close(i) != 0 && errno != EBADF) ::_exit(1);
    }
    for (int j = 0; j < n; ++j)
        if (::dup2(fds[at + static_cast<std::size_t>(j)], 4 + j) < 0) ::_exit(1);
    if (::dup2(conn, 4 + n) < 0 || ::fcntl(4 + n, F_SETFD, FD_CLOEXEC) != 0) ::_exit(1);
    ::close(3);
    close_from(end);  // the listener, the pipes, the other children's connections, the copies
    g_own_report_fd = 4 + n;
    std::fill(s.key.begin(), s.key.end(), '\0');
    child_main(std::move(payload), 4);
    ::_exit(1);
}

// One connection, from hello to reply. Returns with `conn` kept (as a child's) or closed.
void serve_one(Server& s, int conn, ForkserverChildMain child_main) noexcept try {
    Handle c(conn);
    if (with_timeouts(conn)) return;
    Hello hello{kMagic, kVersion, {}};
    if (random_fill(hello.nonce, sizeof hello.nonce) || send_all(conn, &hello, sizeof hello)) return;
    std::vector<int> fds;
    struct CloseFds {
        std::vector<int>& fds;
        ~CloseFds() { close_all(fds); }
    } close_fds{fds};
    RequestHeader h{};
    bool eof = false;
    if (recv_with_fds(conn, &h, sizeof h, fds, eof) || eof) return;
    Reply r{};
    const Mac expected = request_mac(s.key, hello, h);
    if (!detail::constant_time_equal(expected.data(), h.mac, kMacBytes)) {
        r.result = EACCES;  // refused: no payload is read, nothing is forked
        send_all(conn, &r, sizeof r);
        return;
    }
    if (h.payload_size > kMaxPayload || h.fd_count > kMaxFds) {
        r.result = EPROTO;
        send_all(conn, &r, sizeof r);
        return;
    }
    std::string payload(static_cast<std::size_t>(h.payload_size), '\0');
    if (recv_with_fds(conn, payload.data(), payload.size(), fds, eof) || eof) return;
    std::size_t stdio = 0;
    for (std::uint32_t bit : {kStdinGiven, kStdoutGiven, kStderrGiven})
        if (h.flags & bit) ++stdio;
    if (fds.size() != h.fd_count || fds.size() < stdio + 1) {
        r.result = EPROTO;
        send_all(conn, &r, sizeof r);
        return;
    }
    std::fflush(nullptr);  // nothing of ours is written twice
    const pid_t pid = ::fork();
    if (pid == 0) become_child(s, std::move(payload), fds, h.flags, c.release(), child_main);
    if (pid < 0) {
        r.result = errno;
        send_all(conn, &r, sizeof r);
        return;
    }
#if defined(MP_POSIX_PORTABLE)
    Handle pidfd;  // none: the parent signals by pid (see the top of this file)
#else
    Handle pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // invalid on an old kernel
#endif
    r.pid = pid;
    const Mac mac = reply_mac(s.key, h, r);
    std::memcpy(r.mac, mac.data(), kMacBytes);
    std::vector<int> out;
    if (pidfd) out.push_back(pidfd.get());
    if (send_with_fds(conn, reinterpret_cast<const char*>(&r), sizeof r, out)) {
        ::kill(pid, SIGKILL);  // nobody learned of this child: it must not run unseen
    }
    s.kids[pid] = Kid{c.release(), (h.flags & kDaemon) != 0};
} catch (...) {
    // Out of memory for one request: that request fails (its connection closes), the server goes on.
}

// Reaps every child that has ended and writes each one's wait status into its connection.
void reap_kids(Server& s) noexcept {
    for (;;) {
        int status = 0;
        const pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) return;
        auto it = s.kids.find(pid);
        if (it == s.kids.end()) continue;
        // 4 bytes into an otherwise empty socket buffer: never blocks; a parent that closed its
        // end (the Process was closed) is nobody's loss.
        [[maybe_unused]] const ssize_t w = ::send(it->second.conn, &status, sizeof status, MSG_DONTWAIT | MSG_NOSIGNAL);
        ::close(it->second.conn);
        s.kids.erase(it);
    }
}

bool parse_fd(const char* text, int& out) noexcept {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (!*text || *end || v < 0 || v > 1 << 20) return false;
    out = static_cast<int>(v);
    return true;
}

// Before the settings arrive: at the default level (the parent's comes with the settings).
[[noreturn]] void server_failure(const char* why) noexcept {
    detail::log(detail::kLogError, "mp: forkserver %d cannot start: %s", static_cast<int>(::getpid()), why);
    ::_exit(1);
}

}  // namespace

void forkserver_serve(int argc, char** argv, ForkserverSettingsHook settings, ForkserverChildMain child_main) noexcept {
    Server s;
    int keyfd = -1;
    if (argc != 5 || !parse_fd(argv[2], s.listener) || !parse_fd(argv[3], s.alive) || !parse_fd(argv[4], keyfd))
        server_failure("malformed --mp-forkserver arguments");
    for (int fd : {s.listener, s.alive, keyfd})
        if (make_private(fd)) server_failure("an inherited descriptor is not usable");
    s.pid = static_cast<int>(::getpid());
    std::string blob;
    try {
        s.key.assign(kKeyBytes, '\0');
        std::size_t got = 0;
        std::uint32_t n = 0;
        if (read_full(keyfd, s.key.data(), kKeyBytes, got) || got != kKeyBytes)
            server_failure("the parent sent no key");
        if (read_full(keyfd, &n, sizeof n, got) || got != sizeof n) server_failure("the parent sent no settings");
        blob.assign(n, '\0');
        if (read_full(keyfd, blob.data(), n, got) || got != n) server_failure("the settings were cut short");
    } catch (const std::bad_alloc&) {
        server_failure("out of memory");
    }
    ::close(keyfd);
    // Ctrl+C reaches the parent's whole process group: the server, like CPython's, ignores it
    // (it ends with its parent); its children get the default action back.
    ::signal(SIGINT, SIG_IGN);
#if !defined(MP_POSIX_PORTABLE)
    ::prctl(PR_GET_NAME, s.saved_name, 0, 0, 0);
    ::prctl(PR_SET_NAME, "mp-forkserver", 0, 0, 0);
#endif
    if (!settings(blob)) ::_exit(1);  // a preload failed with on_error=fail; it said why
    std::fflush(nullptr);
    ::pthread_atfork(nullptr, nullptr, drop_own_report_fd);
    // One connection per live child is held here: the soft descriptor limit goes up to the hard
    // one (children get the original back).
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        s.saved_nofile = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &rl);
    }
    int sig[2];
    if (::pipe2(sig, O_CLOEXEC | O_NONBLOCK) != 0) server_failure("no pipe for SIGCHLD");
    s.sigchld_r = sig[0];
    g_sigchld_w = sig[1];
    struct sigaction sa {};
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
    ::sigaction(SIGCHLD, &sa, nullptr);
    ::fcntl(s.listener, F_SETFL, ::fcntl(s.listener, F_GETFL) | O_NONBLOCK);

    for (;;) {
        pollfd p[3] = {{s.alive, POLLIN, 0}, {s.sigchld_r, POLLIN, 0}, {s.listener, POLLIN, 0}};
        if (::poll(p, 3, -1) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (p[0].revents) {
            // A message from the parent carries a new listening socket (its directory had been
            // removed); end of file or an error means the parent is gone.
            std::vector<int> fds;
            char byte = 0;
            bool eof = false;
            if (recv_with_fds(s.alive, &byte, 1, fds, eof) || eof) break;
            if (fds.size() == 1) {
                ::close(s.listener);
                s.listener = fds.front();
                ::fcntl(s.listener, F_SETFL, ::fcntl(s.listener, F_GETFL) | O_NONBLOCK);
            } else {
                close_all(fds);
            }
        }
        if (p[1].revents) {
            char drain[64];
            while (::read(s.sigchld_r, drain, sizeof drain) > 0) {
            }
            reap_kids(s);
        }
        if (p[2].revents) {
            for (;;) {
                const int conn = ::accept4(s.listener, nullptr, nullptr, SOCK_CLOEXEC);
                if (conn < 0) break;  // EAGAIN: no more waiting; anything else: next time
                serve_one(s, conn, child_main);
            }
        }
    }
    // The parent has ended: its daemonic children go with it; the others live on, as they would
    // after fork or spawn.
    for (const auto& [pid, kid] : s.kids)
        if (kid.daemon) ::kill(pid, SIGKILL);
    ::_exit(0);
}

}  // namespace mp::sys
