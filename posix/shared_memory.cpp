// posix/shared_memory.cpp - named shared memory on POSIX: shm_open + ftruncate + mmap.
//
// A POSIX segment is a file in a memory-backed file system (/dev/shm on Linux) reached by a
// name "/name". The fd from shm_open holds it open, mmap(MAP_SHARED) shows it, and the name
// lives until shm_unlink - it survives every process that used it, a crash included. So
// ownership has to be built: the first process that creates a segment starts one tracker
// process (this same program re-executed with MP_SHM_TRACKER_FD set) and keeps the only write
// end of a pipe to it (close-on-exec, dropped in fork children). It records each name it
// creates in a registry segment it shares with the tracker, and clears the entry on unlink.
// When the pipe reaches end of file - the creator ended, by exit, crash or SIGKILL - the
// tracker unlinks every name still registered, warns about them on stderr as CPython's
// resource_tracker does, and exits. Processes that only attach never register. Mappings stay
// valid after the name is gone; only new attaches fail.
// Windows differs: a named file mapping lives exactly as long as some handle to it, so the
// kernel already cleans up after a crash, unlink has nothing to do, and there is no tracker.
#include "../common/sys/shared_memory.hpp"
#include "../common/sys/error.hpp"

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <pthread.h>
#include <unordered_map>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "../common/sys/process.hpp"

namespace mp::sys {

namespace {
constexpr const char* kTrackerEnv = "MP_SHM_TRACKER_FD";

// glibc refuses names whose length (after the '/') plus the terminating NUL reaches NAME_MAX.
constexpr std::size_t kMaxName = NAME_MAX - 2;

bool slash_name(const std::string& name, char* out, std::size_t cap) noexcept {
    if (name.size() + 2 > cap) return false;
    out[0] = '/';
    std::memcpy(out + 1, name.c_str(), name.size() + 1);
    return true;
}
}  // namespace

const char* shm_generated_prefix() noexcept { return "psm_"; }

const char* shm_name_problem(const std::string& name) noexcept {
    if (name.empty()) return "the name is empty";
    if (name.find('/') != std::string::npos) return "a POSIX shared memory name may hold '/' only as its first character";
    if (name.find('\0') != std::string::npos) return "the name holds a NUL character";
    if (name == "." || name == "..") return "'.' and '..' cannot name a segment";
    if (name.size() > kMaxName) return "the name is longer than NAME_MAX allows (253 characters after the '/')";
    return nullptr;
}

std::error_code shm_create(const std::string& name, std::size_t size, Handle& out) noexcept {
    char path[NAME_MAX + 2];
    if (!slash_name(name, path, sizeof path)) return std::make_error_code(std::errc::filename_too_long);
    if (size > static_cast<std::size_t>(std::numeric_limits<off_t>::max())) return std::make_error_code(std::errc::file_too_large);
    const int fd = ::shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    if (::ftruncate(fd, static_cast<off_t>(size)) != 0) {
        const std::error_code ec = last_error();
        ::shm_unlink(path);
        ::close(fd);
        return ec;
    }
    out.reset(fd);
    return {};
}

std::error_code shm_attach(const std::string& name, Handle& out) noexcept {
    char path[NAME_MAX + 2];
    if (!slash_name(name, path, sizeof path)) return std::make_error_code(std::errc::filename_too_long);
    const int fd = ::shm_open(path, O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    out.reset(fd);
    return {};
}

std::error_code shm_map(native_handle h, std::size_t& size, void*& addr) noexcept {
    if (size == 0) {
        struct stat st {};
        if (::fstat(h, &st) != 0) return last_error();
        size = static_cast<std::size_t>(st.st_size);
        if (size == 0) return std::make_error_code(std::errc::invalid_argument);
    }
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0);
    if (p == MAP_FAILED) return last_error();
    addr = p;
    return {};
}

std::error_code shm_unmap(void* addr, std::size_t size) noexcept {
    if (::munmap(addr, size) != 0) return last_error();
    return {};
}

std::error_code shm_remove(const std::string& name) noexcept {
    char path[NAME_MAX + 2];
    if (!slash_name(name, path, sizeof path)) return std::make_error_code(std::errc::filename_too_long);
    if (::shm_unlink(path) != 0) return last_error();
    return {};
}

// The tracker process. It is entered while the library's statics are initialised (before
// main(), before the program's own statics), so it works whether or not the program calls
// mp::bootstrap, and it can never run the program's logic again.
//
// Registration costs no message: the creator and the tracker share a small registry segment
// (an already-unlinked shm object, passed to the tracker as an fd) of 256-byte slots, one per
// name the creator holds: a state byte (1: registered) and the NUL-terminated name. The creator
// fills a slot after each create and clears it on unlink - a memory write, no syscall, no
// wakeup. The pipe carries nothing; the tracker just waits for its end of file (the creator's
// death or stop), then reads the registry, which nobody writes any more, and unlinks what is
// still marked.
namespace {
constexpr std::size_t kSlot = 256;
constexpr std::size_t kFirstSlots = 64;

[[noreturn]] void run_tracker(int pipe_fd, int registry_fd) {
    ::setsid();  // out of the creator's process group and session: its group signals miss us
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);  // as CPython's tracker: only end of file ends it
    char chunk[256];
    for (;;) {
        const ssize_t r = ::read(pipe_fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
    }
    std::string leaked;
    std::size_t count = 0;
    struct stat st {};
    if (::fstat(registry_fd, &st) == 0 && st.st_size > 0) {
        const auto size = static_cast<std::size_t>(st.st_size);
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, registry_fd, 0);
        if (p != MAP_FAILED) {
            const char* reg = static_cast<const char*>(p);
            for (std::size_t off = 0; off + kSlot <= size; off += kSlot) {
                if (reg[off] != 1) continue;
                const std::string n(reg + off + 1, ::strnlen(reg + off + 1, kSlot - 1));
                if (shm_remove(n)) continue;  // already gone (unlinked by another process): not a leak
                if (count < 20) leaked += (count ? ", '/" : "'/") + n + "'";
                ++count;
            }
            if (count > 20) leaked += ", ... (" + std::to_string(count - 20) + " more)";
        }
    }
    if (count)
        std::fprintf(stderr,
                     "mp: resource_tracker: There appear to be %zu leaked shared_memory objects to clean up at "
                     "shutdown: [%s]\n",
                     count, leaked.c_str());
    std::fflush(stderr);
    ::_exit(0);
}

[[maybe_unused]] const bool g_is_tracker = [] {
    const char* v = std::getenv(kTrackerEnv);  // "<pipe fd> <registry fd>"
    if (!v || !*v) return false;
    char* end = nullptr;
    const long pipe_fd = std::strtol(v, &end, 10);
    const long registry_fd = std::strtol(end, nullptr, 10);
    run_tracker(static_cast<int>(pipe_fd), static_cast<int>(registry_fd));
}();

// The creator's side. One tracker per process; a fork child drops the inherited pipe end and
// registry (so that only the creator's death ends the tracker, and the child cannot write into
// its parent's registry) and starts its own tracker on first need.
struct Tracker {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int fd = -1;           // pipe write end
    int registry_fd = -1;
    char* registry = nullptr;
    std::size_t slots = 0;
    Child child;
    std::unordered_map<std::string, std::size_t> slot_of;
    std::vector<std::size_t> free_slots;
    bool atfork_set = false;
};
Tracker& tracker() noexcept {
    static Tracker* t = new Tracker;  // never destroyed: usable from exit handlers
    return *t;
}

void drop_registry(Tracker& t) noexcept {
    if (t.registry) ::munmap(t.registry, t.slots * kSlot);
    if (t.registry_fd >= 0) ::close(t.registry_fd);
    t.registry = nullptr;
    t.registry_fd = -1;
    t.slots = 0;
    t.slot_of.clear();
    t.free_slots.clear();
}

void atfork_prepare() noexcept { pthread_mutex_lock(&tracker().mu); }
void atfork_parent() noexcept { pthread_mutex_unlock(&tracker().mu); }
void atfork_child() noexcept {
    Tracker& t = tracker();
    if (t.fd >= 0) ::close(t.fd);
    t.fd = -1;
    if (t.child.process) ::close(t.child.process.release());
    t.child.pid = 0;
    drop_registry(t);  // the parent's names are the parent's tracker's business
    pthread_mutex_unlock(&t.mu);
}

std::error_code grow_registry(Tracker& t) noexcept {
    const std::size_t slots = t.slots ? t.slots * 2 : kFirstSlots;
    if (::ftruncate(t.registry_fd, static_cast<off_t>(slots * kSlot)) != 0) return last_error();
    void* p = ::mmap(nullptr, slots * kSlot, PROT_READ | PROT_WRITE, MAP_SHARED, t.registry_fd, 0);
    if (p == MAP_FAILED) return last_error();
    if (t.registry) ::munmap(t.registry, t.slots * kSlot);
    t.registry = static_cast<char*>(p);
    for (std::size_t i = slots; i-- > t.slots;) t.free_slots.push_back(i);
    t.slots = slots;
    return {};
}

std::error_code start_tracker(Tracker& t) noexcept {
    if (!t.atfork_set) {
        if (::pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0) return std::make_error_code(std::errc::not_enough_memory);
        t.atfork_set = true;
    }
    try {
        std::string exe;
        if (auto ec = current_executable(exe)) return ec;
        // The registry: an shm object unlinked at once, so only its two fds keep it.
        const std::string reg_name = "/mp_shm_registry_" + std::to_string(::getpid()) + "_" +
                                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
        const int reg = ::shm_open(reg_name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (reg < 0) return last_error();
        ::shm_unlink(reg_name.c_str());
        Handle registry(reg);
        PipeEnds p;
        if (auto ec = make_pipe(p)) return ec;
        Handle devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
        SpawnRequest req;
        req.program = exe;
        const std::string fds = std::to_string(inherited_value(p.read.get(), 0)) + " " +
                                std::to_string(inherited_value(registry.get(), 1));
        req.args = {exe, "--mp-shm-tracker", fds};
        req.env = {{kTrackerEnv, fds}};
        req.inherit = {p.read.get(), registry.get()};
        req.stdin_handle = devnull.get();
        req.stdout_handle = devnull.get();
        Child c;
        if (auto ec = spawn_process(req, c)) return ec;
        t.fd = p.write.release();
        t.registry_fd = registry.release();
        t.child = std::move(c);
        return {};
    } catch (...) {
        return std::make_error_code(std::errc::not_enough_memory);
    }
}

void stop_locked(Tracker& t) noexcept {
    if (t.fd < 0) return;
    ::close(t.fd);
    t.fd = -1;
    bool exited = false;
    int code = 0;
    wait_process(t.child, Deadline::never(), exited, code);
    t.child = Child{};
    drop_registry(t);
}
}  // namespace

std::error_code shm_track(const std::string& name, bool track) noexcept {
    if (name.size() >= kSlot - 1) return std::make_error_code(std::errc::filename_too_long);
    Tracker& t = tracker();
    pthread_mutex_lock(&t.mu);
    std::error_code ec;
    try {
        if (!track) {
            auto it = t.slot_of.find(name);
            if (it != t.slot_of.end()) {  // else not ours (an attacher's unlink): nothing to do
                t.registry[it->second * kSlot] = 0;
                t.free_slots.push_back(it->second);
                t.slot_of.erase(it);
            }
        } else if (t.slot_of.count(name) == 0) {
            if (t.fd < 0) ec = start_tracker(t);
            if (!ec && t.free_slots.empty()) ec = grow_registry(t);
            if (!ec) {
                const std::size_t slot = t.free_slots.back();
                char* s = t.registry + slot * kSlot;
                std::memcpy(s + 1, name.c_str(), name.size() + 1);
                s[0] = 1;
                t.slot_of.emplace(name, slot);
                t.free_slots.pop_back();
            }
        }
    } catch (...) {
        ec = std::make_error_code(std::errc::not_enough_memory);
    }
    pthread_mutex_unlock(&t.mu);
    return ec;
}

int shm_tracker_pid() noexcept {
    Tracker& t = tracker();
    pthread_mutex_lock(&t.mu);
    const int pid = t.fd >= 0 ? t.child.pid : 0;
    pthread_mutex_unlock(&t.mu);
    return pid;
}

void shm_stop_tracker() noexcept {
    Tracker& t = tracker();
    pthread_mutex_lock(&t.mu);
    stop_locked(t);  // the tracker removes what is still registered
    pthread_mutex_unlock(&t.mu);
}

}  // namespace mp::sys
