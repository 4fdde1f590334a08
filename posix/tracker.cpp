// posix/tracker.cpp - the resource tracker on POSIX: a process that removes what its creator
// left in the file systems (shared-memory names, socket files, FIFOs, directories).
//
// POSIX names outlive processes: a /dev/shm name, a socket file or a FIFO stays until someone
// removes it, a crash included. So the first process that makes one starts a tracker (this
// same program re-executed with MP_TRACKER set; it runs before main() and never reaches the
// program's logic) and keeps the only write end of a pipe to it (close-on-exec, dropped in fork
// children). Names go into a registry segment the two share (an unlinked shm object, slots of
// 256 bytes), written by the creator with no system call. When the pipe reaches end of file -
// the creator ended, by exit, crash or SIGKILL - the tracker removes every name still
// registered, warns about them on stderr as CPython's resource_tracker does, and exits. A
// tracker that was killed is replaced at the next registration, with a warning.
// No instant is unprotected: a name is registered before it exists. It is made at a private
// name first (".mp_c_<pid>_<slot>" beside it, or "mp_c_<pid>_<slot>" for shared memory), then
// hard-linked to its real name, which fails if the name is taken (so nobody else's object is
// ever replaced or removed), and only then marked made. A tracker finding a creator dead half
// way removes the private name, and the real one if it is the same inode.
// Windows differs: a named kernel object lives exactly as long as some handle to it, so the
// kernel already cleans up after a crash, and win32/tracker.cpp has nothing to do.
#include "../common/sys/tracker.hpp"
#include "../common/sys/error.hpp"
#include "../common/logging_internal.hpp"

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>
#include <vector>

#include "../common/sys/handle.hpp"
#include "../common/sys/process.hpp"

namespace mp::sys {

namespace {

constexpr const char* kTrackerEnv = "MP_TRACKER";  // "<pipe fd> <registry fd> <creator pid> <log level>"
constexpr std::size_t kSlot = 256;
constexpr std::size_t kMaxName = kSlot - 3;  // state, kind, the name, its NUL
constexpr std::size_t kFirstSlots = 64;
enum : char { kFree = 0, kMade = 1, kCreating = 2 };

// The private name a slot's object is made at, the same in creator and tracker.
std::string temporary_of(Resource kind, const std::string& name, long creator, std::size_t slot) {
    const std::string base = "mp_c_" + std::to_string(creator) + "_" + std::to_string(slot);
    if (kind == Resource::shared_memory) return base;
    const std::size_t cut = name.rfind('/');
    return (cut == std::string::npos ? std::string(".") : name.substr(0, cut)) + "/." + base;
}

// The file a name is: shared memory lives in /dev/shm on Linux (glibc's shm_open opens
// /dev/shm/<name>), where link() and stat() reach it too.
std::string path_of(Resource kind, const std::string& name) {
    return kind == Resource::shared_memory ? "/dev/shm/" + name : name;
}

bool same_inode(const std::string& a, const std::string& b) noexcept {
    struct stat sa {}, sb {};
    return ::lstat(a.c_str(), &sa) == 0 && ::lstat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

// Removes a name; false when there was nothing to remove.
bool remove_resource(Resource kind, const std::string& name) noexcept {
    switch (kind) {
        case Resource::shared_memory: return ::shm_unlink(("/" + name).c_str()) == 0;
        case Resource::file: return ::unlink(name.c_str()) == 0;
        case Resource::directory: {
            if (DIR* d = ::opendir(name.c_str())) {
                while (const dirent* e = ::readdir(d))
                    if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
                        ::unlink((name + "/" + e->d_name).c_str());
                ::closedir(d);
            }
            return ::rmdir(name.c_str()) == 0;
        }
    }
    return false;
}

const char* kind_word(Resource kind) noexcept {
    return kind == Resource::shared_memory ? "shared_memory" : kind == Resource::file ? "file" : "directory";
}

// ---- the tracker process ------------------------------------------------------------------

// Entered while the library's statics are initialised (before main(), before the program's
// own statics), so it works whether or not the program calls mp::bootstrap, and it can never
// run the program's logic again.
[[noreturn]] void run_tracker(int pipe_fd, int registry_fd, long creator) {
    ::setsid();  // out of the creator's process group and session: its group signals miss us
    std::signal(SIGINT, SIG_IGN);
    std::signal(SIGTERM, SIG_IGN);  // as CPython's tracker: only end of file ends it
    char chunk[256];
    for (;;) {
        const ssize_t r = ::read(pipe_fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
    }
    std::map<Resource, std::pair<std::size_t, std::string>> leaked;  // count, the first names
    struct stat st {};
    if (::fstat(registry_fd, &st) == 0 && st.st_size > 0) {
        const auto size = static_cast<std::size_t>(st.st_size);
        void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, registry_fd, 0);
        if (p != MAP_FAILED) {
            const char* reg = static_cast<const char*>(p);
            for (std::size_t off = 0, slot = 0; off + kSlot <= size; off += kSlot, ++slot) {
                const char state = reg[off];
                if (state != kMade && state != kCreating) continue;
                const auto kind = static_cast<Resource>(reg[off + 1]);
                if (kind != Resource::shared_memory && kind != Resource::file && kind != Resource::directory) continue;
                const std::string name(reg + off + 2, ::strnlen(reg + off + 2, kSlot - 2));
                const std::string temp = temporary_of(kind, name, creator, slot);
                // Half made: the real name is ours only if it is the private one's inode.
                bool ours = state == kMade || same_inode(path_of(kind, temp), path_of(kind, name));
                remove_resource(kind, temp);
                if (!ours || !remove_resource(kind, name)) continue;  // not made, or removed by another
                auto& [count, names] = leaked[kind];
                if (count < 20) names += (count ? ", '" : "'") + std::string(kind == Resource::shared_memory ? "/" : "") + name + "'";
                ++count;
            }
        }
    }
    for (auto& [kind, what] : leaked) {
        auto& [count, names] = what;
        if (count > 20) names += ", ... (" + std::to_string(count - 20) + " more)";
        detail::log(detail::kLogWarning,
                    "mp: resource_tracker: There appear to be %zu leaked %s objects to clean up at shutdown: [%s]",
                    count, kind_word(kind), names.c_str());
    }
    ::_exit(0);
}

[[maybe_unused]] const bool g_is_tracker = [] {
    const char* v = std::getenv(kTrackerEnv);
    if (!v || !*v) return false;
    char* end = nullptr;
    const long pipe_fd = std::strtol(v, &end, 10);
    const long registry_fd = std::strtol(end, &end, 10);
    const long creator = std::strtol(end, &end, 10);
    char* after = nullptr;
    const long level = std::strtol(end, &after, 10);  // the creator's log level, when it started us
    if (after != end) detail::set_log_level_number(static_cast<int>(level));
    run_tracker(static_cast<int>(pipe_fd), static_cast<int>(registry_fd), creator);
}();

// ---- the creator's side -------------------------------------------------------------------

// One tracker per process. A fork child drops the inherited pipe end and registry (so that
// only the creator's death ends the tracker, and the child cannot write into its parent's
// registry) and starts its own tracker on first need.
struct Tracker {
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int fd = -1;  // pipe write end; -1: no tracker
    int registry_fd = -1;
    char* registry = nullptr;
    std::size_t slots = 0;
    Child child;
    std::map<std::pair<Resource, std::string>, std::size_t> slot_of;
    std::vector<std::size_t> free_slots;
    int lost_pid = 0;  // a tracker found dead, to be replaced (and warned about) at the next start
    int lost_code = 0;
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
    t.lost_pid = 0;
    drop_registry(t);  // the parent's names are the parent's tracker's business
    pthread_mutex_unlock(&t.mu);
}

// The tracker's lock is the innermost one: other parts call into the tracker with their own
// lock held (the forkserver makes its directory under its lock). The prepare steps of fork
// handlers run in the reverse order of their registration, so the tracker's handlers are
// registered first, when the library loads: its prepare step then runs last, after every
// other part has taken its own lock, and fork takes the locks in the same order as they do.
const int g_atfork_result = ::pthread_atfork(atfork_prepare, atfork_parent, atfork_child);

// A normal exit ends the tracker and waits for it, so it is never left an orphan (a fork child's
// copy of this handler stops only a tracker the child started itself). Registered when the
// library loads too: exit handlers run in the reverse order of their registration, so this one
// runs after every handler the program's run registered, among them the one that stops the
// forkserver, which forgets its directory here on the way out. Registered on the tracker's first
// start instead, it ran first, and the tracker reported that directory as leaked.
const int g_atexit_result = std::atexit([] { stop_tracker(); });

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

// Starts a tracker on the registry (made here on first use, kept when a tracker is replaced,
// so that the new one knows every name the old one did).
std::error_code start_tracker(Tracker& t) noexcept try {
    if (g_atfork_result != 0 || g_atexit_result != 0) return std::make_error_code(std::errc::not_enough_memory);
    std::string exe;
    if (auto ec = current_executable(exe)) return ec;
    if (t.registry_fd < 0) {
        // An shm object unlinked at once, so only its fds (ours and the tracker's) keep it.
        const std::string reg_name = "/mp_tracker_registry_" + std::to_string(::getpid()) + "_" +
                                     std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
        const int reg = ::shm_open(reg_name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (reg < 0) return last_error();
        ::shm_unlink(reg_name.c_str());
        t.registry_fd = reg;
    }
    PipeEnds p;
    if (auto ec = make_pipe(p)) return ec;
    Handle devnull;
    if (auto ec = open_null_device(devnull)) return ec;
    SpawnRequest req;
    req.program = exe;
    const std::string fds = std::to_string(inherited_value(p.read.get(), 0)) + " " +
                            std::to_string(inherited_value(t.registry_fd, 1)) + " " + std::to_string(::getpid()) +
                            " " + std::to_string(detail::log_level_number());
    req.args = {exe, "--mp-tracker", fds};
    req.env = {{kTrackerEnv, fds}};
    req.inherit = {p.read.get(), t.registry_fd};
    req.stdin_handle = devnull.get();
    req.stdout_handle = devnull.get();
    Child c;
    if (auto ec = spawn_process(req, c)) return ec;
    t.fd = p.write.release();
    t.child = std::move(c);
    return {};
} catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
}

// Whether the tracker has died (killed: it never ends on its own while we live); then it is
// reaped and forgotten, and the registry waits for the next one.
bool tracker_died(Tracker& t) noexcept {
    if (t.fd < 0) return false;
    bool exited = false;
    int code = 0;
    if (wait_process(t.child, Deadline::now(), exited, code) || !exited) return false;
    t.lost_pid = t.child.pid;
    t.lost_code = code;
    ::close(t.fd);
    t.fd = -1;
    t.child = Child{};
    return true;
}

// A tracker that runs, started now or found dead and replaced.
std::error_code ensure_running(Tracker& t) noexcept {
    tracker_died(t);
    if (t.fd >= 0) return {};
    if (t.lost_pid) {
        detail::log(detail::kLogWarning,
                    "mp: resource_tracker: process %d died unexpectedly (exit code %d), relaunching. Some "
                    "resources might leak.",
                    t.lost_pid, t.lost_code);
        t.lost_pid = 0;
    }
    return start_tracker(t);
}

// With t.mu held: a slot for kind/name, filled in with `state`.
std::error_code register_name(Tracker& t, Resource kind, const std::string& name, char state, std::size_t& slot) noexcept try {
    if (name.size() > kMaxName) return std::make_error_code(std::errc::filename_too_long);
    if (auto ec = ensure_running(t)) return ec;
    if (t.free_slots.empty()) {
        if (auto ec = grow_registry(t)) return ec;
    }
    slot = t.free_slots.back();
    char* s = t.registry + slot * kSlot;
    std::memcpy(s + 2, name.c_str(), name.size() + 1);
    s[1] = static_cast<char>(kind);
    s[0] = state;  // last: the tracker reads a slot only by its state
    t.free_slots.pop_back();
    t.slot_of[{kind, name}] = slot;
    return {};
} catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
}

void free_slot(Tracker& t, std::size_t slot) noexcept {
    t.registry[slot * kSlot] = kFree;
    t.free_slots.push_back(slot);
}

// Paths are kept absolute: the tracker removes them from wherever it runs.
std::string absolute(Resource kind, const std::string& name) {
    if (kind == Resource::shared_memory || name.empty() || name[0] == '/') return name;
    char cwd[4096];
    if (!::getcwd(cwd, sizeof cwd)) return name;
    return std::string(cwd) + "/" + name;
}

struct Locked {
    Tracker& t;
    explicit Locked(Tracker& tr) noexcept : t(tr) { pthread_mutex_lock(&t.mu); }
    ~Locked() { pthread_mutex_unlock(&t.mu); }
};

}  // namespace

std::error_code begin_creation(Resource kind, const std::string& name, Creation& c) noexcept try {
    c = Creation{};
    c.kind = kind;
    c.name = absolute(kind, name);
    Locked l(tracker());
    if (auto ec = register_name(l.t, kind, c.name, kCreating, c.slot)) return ec;
    c.temporary = temporary_of(kind, c.name, static_cast<long>(::getpid()), c.slot);
    remove_resource(kind, c.temporary);  // a leftover of an earlier process with our pid
    c.active = true;
    return {};
} catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code finish_creation(Creation& c, bool made) noexcept try {
    if (!c.active) return {};
    c.active = false;
    Locked l(tracker());
    Tracker& t = l.t;
    std::error_code result;
    if (made) {
        if (::link(path_of(c.kind, c.temporary).c_str(), path_of(c.kind, c.name).c_str()) == 0)
            t.registry[c.slot * kSlot] = kMade;  // before the private name goes (see the top)
        else
            result = errno == EEXIST ? std::make_error_code(std::errc::file_exists) : last_error();
        remove_resource(c.kind, c.temporary);
    }
    if (!made || result) {
        t.slot_of.erase({c.kind, c.name});
        free_slot(t, c.slot);
    }
    return result;
} catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
}

std::error_code track(Resource kind, const std::string& name) noexcept try {
    const std::string full = absolute(kind, name);
    Locked l(tracker());
    if (l.t.slot_of.count({kind, full})) return {};
    std::size_t slot = 0;
    return register_name(l.t, kind, full, kMade, slot);
} catch (...) {
    return std::make_error_code(std::errc::not_enough_memory);
}

void untrack(Resource kind, const std::string& name) noexcept try {
    const std::string full = absolute(kind, name);
    Locked l(tracker());
    auto it = l.t.slot_of.find({kind, full});
    if (it == l.t.slot_of.end()) return;  // not ours (an attacher's unlink): nothing to do
    free_slot(l.t, it->second);
    l.t.slot_of.erase(it);
} catch (...) {
}

int tracker_pid() noexcept {
    Locked l(tracker());
    if (l.t.fd < 0 || tracker_died(l.t)) return 0;
    return l.t.child.pid;
}

void stop_tracker() noexcept {
    Locked l(tracker());
    Tracker& t = l.t;
    if (t.fd < 0) return;
    ::close(t.fd);  // the tracker removes what is still registered
    t.fd = -1;
    bool exited = false;
    int code = 0;
    wait_process(t.child, Deadline::never(), exited, code);
    t.child = Child{};
    drop_registry(t);
}

}  // namespace mp::sys
