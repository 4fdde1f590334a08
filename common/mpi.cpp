// mpi/mpi.cpp - the MPI backend: mp::mpi::bootstrap, the worker ranks' serving loop, and the
// engine on rank 0 that sends tasks and collects results (see mp/mpi.hpp for what users see).
//
// MPI has no wait with a timeout and nothing that mp::wait could wait on, so progress is made by
// polling: the thread that waits on a task probes for results (MPI_Improbe), tests the pending
// sends, sends queued tasks, and watches the workers, then yields or sleeps a little longer each
// time nothing happened (from a yield up to 1 ms). Worker ranks poll for tasks the same way, so
// an idle rank costs little CPU (a rank blocked in MPI_Recv spins at 100%).
//
// Groups and handles: a Group is a communicator and its worker ranks (slots): the one of a
// static job (a duplicate of MPI_COMM_WORLD, ranks 1..N-1), or one per spawn (the
// intercommunicator to the spawned job). A Handle is one executor's or pool's claim on some slots
// of one group, with its queue of tasks; it is the TaskHost of its tasks. Each slot remembers the
// tasks it was sent, in order, even past the handle that sent them (a terminated pool leaves a
// rank running its task), so a later handle never counts a busy rank as idle.
//
// On the wire (tags below): a task is a header (id, function name, number of calls, whether the
// body follows apart, body size) followed by the encoded calls; a result is a header (id, kind,
// count, error type and text, apart, size) followed by the encoded results. A body over 256 KiB
// goes as a second message straight from (or into) its own buffer, so that 64 MiB is never copied
// into a header's buffer. MPI keeps messages between two ranks with one tag in order.
//
// All MPI calls of the process are made under one mutex, so MPI_THREAD_SERIALIZED suffices.
#include "mp/mpi.hpp"

#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "mp/process.hpp"
#include "process_internal.hpp"
#include "sys/os.hpp"
#include "sys/process.hpp"
#include "task_internal.hpp"

#if !defined(_WIN32)
#include <unistd.h>
#endif

namespace mp {
namespace mpi {
namespace detail {

using mp::detail::Callbacks;
using mp::detail::TaskRef;
using mp::detail::TaskState;

namespace {

using Clock = std::chrono::steady_clock;

enum Tag : int { kTagHello = 0x6d70, kTagTask, kTagResult, kTagStop, kTagHeartbeat, kTagBye };
enum : std::uint8_t { kOk = 0, kError = 1 };
constexpr std::size_t kApart = 256 * 1024;  // bodies larger than this travel as their own message
constexpr const char* kWorkerArg = "--mp-mpi-worker";

// ---- process-wide state --------------------------------------------------------------------

std::mutex g_mu;  // every MPI call, and all groups, handles and tasks
bool g_bootstrapped = false;
bool g_finalized = false;
bool g_we_initialised = false;
int g_thread_level = MPI_THREAD_SINGLE;
std::thread::id g_init_thread;
MPI_Comm g_world = MPI_COMM_NULL;  // our duplicate of MPI_COMM_WORLD
int g_rank = 0;
int g_size = 1;
std::string g_host;

[[noreturn]] void fail_mpi(int rc, const char* what) {
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw ProcessError(std::string("mp::mpi: ") + what + " failed: " + std::string(text, static_cast<std::size_t>(len)));
}
void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) fail_mpi(rc, what);
}

int to_int_count(std::size_t n, const char* what) {
    if (n > static_cast<std::size_t>(INT_MAX))
        throw ValueError(std::string("mp::mpi: ") + what + " encodes to " + std::to_string(n) +
                         " bytes; one MPI message carries at most 2 GiB - 1 bytes here");
    return static_cast<int>(n);
}

// Waits a little longer each time nothing happened: yields first, then sleeps from 20 us up to
// 1 ms. Polling stays cheap for a rank that idles, and quick while work streams.
void backoff(int idle) {
    if (idle < 64) {
        std::this_thread::yield();
        return;
    }
    const int step = std::min((idle - 64) / 16, 6);
    std::this_thread::sleep_for(std::chrono::microseconds(std::min(1000, 20 << step)));
}

void require_bootstrap(const char* api) {
    if (!g_bootstrapped) throw RuntimeError(std::string(api) + ": call mp::mpi::bootstrap(argc, argv) first in main()");
    if (g_finalized) throw RuntimeError(std::string(api) + ": mp::mpi::finalize() has already run");
    if (g_thread_level < MPI_THREAD_SERIALIZED && std::this_thread::get_id() != g_init_thread)
        throw RuntimeError(std::string(api) +
                           ": MPI was initialised with less than MPI_THREAD_SERIALIZED, so only the thread that "
                           "initialised it may use the MPI executors");
}

// ---- messages ------------------------------------------------------------------------------

struct TaskHeader {
    std::uint64_t id = 0;
    std::string fn;
    std::uint64_t count = 0;
    bool apart = false;
    std::uint64_t size = 0;
    MP_FIELDS(id, fn, count, apart, size)
};

struct ResultHeader {
    std::uint64_t id = 0;
    std::uint8_t kind = kOk;
    std::uint64_t count = 0;
    std::string type, what;
    bool apart = false;
    std::uint64_t size = 0;
    MP_FIELDS(id, kind, count, type, what, apart, size)
};

struct Hello {
    std::int64_t pid = 0;
    std::string host;
    bool heartbeat = false;
    MP_FIELDS(pid, host, heartbeat)
};

// Receives a probed message whole.
std::string mrecv_all(MPI_Message& msg, MPI_Status& st) {
    int n = 0;
    check(MPI_Get_count(&st, MPI_BYTE, &n), "MPI_Get_count");
    std::string buf(static_cast<std::size_t>(n), '\0');
    check(MPI_Mrecv(buf.data(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE), "MPI_Mrecv");
    return buf;
}

// ---- the worker's side ---------------------------------------------------------------------

// What the fatal-signal and exit hooks print: prepared before each task, since a signal
// handler can only write(). The signal handler's line is the one message of mp that does not
// go through mp's log (mp/logging.hpp): the log may lock and allocate, a signal handler may not.
char g_last_words[512];
std::size_t g_last_words_len = 0;
std::atomic<bool> g_in_task{false};

#if !defined(_WIN32)
struct sigaction g_previous[32];
const int kFatalSignals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};

void write_stderr(const char* s, std::size_t n) {
    while (n > 0) {
        const ssize_t w = ::write(2, s, n);
        if (w <= 0) return;
        s += w;
        n -= static_cast<std::size_t>(w);
    }
}

extern "C" void on_fatal_signal(int sig, siginfo_t* info, void* ctx) {
    if (g_in_task.load()) {
        char num[16];
        int k = 0;
        for (int v = sig; v > 0 && k < 15; v /= 10) num[k++] = static_cast<char>('0' + v % 10);
        char line[600];
        std::size_t n = 0;
        const char head[] = "mp::mpi: ";
        for (char c : head)
            if (c) line[n++] = c;
        for (std::size_t i = 0; i < g_last_words_len && n < 480; ++i) line[n++] = g_last_words[i];
        const char mid[] = " is dying of signal ";
        for (char c : mid)
            if (c) line[n++] = c;
        while (k > 0) line[n++] = num[--k];
        line[n++] = '\n';
        write_stderr(line, n);
    }
    // Then whatever handled the signal before (Open MPI prints a backtrace), or the default.
    const struct sigaction& prev = g_previous[sig];
    if (prev.sa_flags & SA_SIGINFO) {
        if (prev.sa_sigaction) prev.sa_sigaction(sig, info, ctx);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(sig);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_last_words() {
    for (int sig : kFatalSignals) {
        struct sigaction sa;
        std::memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fatal_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, &g_previous[sig]);
    }
}
#else
void install_last_words() {}  // Windows (MS-MPI, untested): no POSIX signals to hook
#endif

void set_last_words(const std::string& task) {
    const std::string s = "rank " + std::to_string(g_rank) + " (pid " + std::to_string(mp::getpid()) + " on " + g_host +
                          ") in task '" + task + "'";
    g_last_words_len = std::min(s.size(), sizeof g_last_words);
    std::memcpy(g_last_words, s.data(), g_last_words_len);
}

std::string failure_type(const std::exception& e) { return mp::detail::type_name(typeid(e).name()); }

// Runs one task message; the result header and body.
void run_task(const TaskHeader& h, const char* calls, std::size_t size, ResultHeader& r, std::string& values) {
    r.id = h.id;
    r.kind = kOk;
    values.clear();
    try {
        mp::detail::TaskInvoker fn = mp::detail::find_task_function(h.fn);
        if (!fn) throw ValueError("the function " + h.fn + " is not registered as a task in this program");
        Decoder d(calls, size);
        Encoder out(values);
        for (std::uint64_t i = 0; i < h.count; ++i) fn(d, out);
        d.expect_end();
        r.count = h.count;
    } catch (const SystemExit& e) {
        r.kind = kError;
        r.type = "mp::SystemExit";
        r.what = "the task threw mp::SystemExit(" + std::to_string(e.code()) +
                 "); an MPI rank goes on serving, since its end would end the whole job";
        values.clear();
    } catch (const std::exception& e) {
        r.kind = kError;
        r.type = failure_type(e);
        r.what = e.what();
        values.clear();
    } catch (...) {
        r.kind = kError;
        r.type = "unknown";
        r.what = "the task threw something that is not a std::exception";
        values.clear();
    }
}

// The serving loop of a worker rank: tasks from rank 0 of `comm` until it says stop.
void serve(MPI_Comm comm, bool heartbeat) {
    std::atomic<bool> stop_heartbeat{false};
    std::thread beat;
    if (heartbeat) {
        beat = std::thread([&] {
            const char none = 0;
            while (!stop_heartbeat.load()) {
                {
                    std::lock_guard<std::mutex> lk(g_mu);
                    MPI_Send(&none, 0, MPI_BYTE, 0, kTagHeartbeat, comm);
                }
                for (int i = 0; i < 20 && !stop_heartbeat.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        });
    }
    install_last_words();
    std::atexit([] {
        if (g_in_task.load()) {
            mp::detail::log(mp::detail::kLogError, "mp::mpi: %.*s called exit() (MPI ends the whole job)",
                            static_cast<int>(g_last_words_len), g_last_words);
        }
    });
    std::string buf, body, values, head;
    int idle = 0;
    for (;;) {
        MPI_Message msg;
        MPI_Status st;
        int flag = 0;
        std::unique_lock<std::mutex> lk(g_mu);
        if (MPI_Improbe(0, MPI_ANY_TAG, comm, &flag, &msg, &st) != MPI_SUCCESS) break;
        if (!flag) {
            lk.unlock();
            backoff(idle++);
            continue;
        }
        idle = 0;
        int n = 0;
        MPI_Get_count(&st, MPI_BYTE, &n);
        buf.resize(static_cast<std::size_t>(n));
        MPI_Mrecv(buf.data(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
        if (st.MPI_TAG == kTagStop) break;
        if (st.MPI_TAG != kTagTask) continue;
        TaskHeader h;
        Decoder d(buf.data(), buf.size());
        const char* calls = nullptr;
        std::size_t size = 0;
        bool readable = true;
        try {
            d.read(h);
            if (h.apart) {
                body.resize(static_cast<std::size_t>(h.size));
                MPI_Recv(body.data(), static_cast<int>(h.size), MPI_BYTE, 0, kTagTask, comm, MPI_STATUS_IGNORE);
                calls = body.data();
                size = body.size();
            } else {
                calls = buf.data() + d.offset();
                size = d.remaining();
            }
        } catch (const DecodeError&) {
            readable = false;  // not from mp's rank 0: nothing to answer
        }
        lk.unlock();
        if (!readable) continue;
        ResultHeader r;
        set_last_words(h.fn);
        g_in_task.store(true);
        run_task(h, calls, size, r, values);
        g_in_task.store(false);
        if (values.size() > static_cast<std::size_t>(INT_MAX)) {  // too big for one message: the task fails
            r = ResultHeader();
            r.id = h.id;
            r.kind = kError;
            r.type = "mp::ValueError";
            r.what = "the task's results encode to " + std::to_string(values.size()) +
                     " bytes; one MPI message carries at most 2 GiB - 1 bytes here";
            values.clear();
        }
        r.apart = values.size() > kApart;
        r.size = values.size();
        head.clear();
        Encoder(head).write(r);
        if (!r.apart) head += values;
        lk.lock();
        MPI_Send(head.data(), static_cast<int>(head.size()), MPI_BYTE, 0, kTagResult, comm);
        if (r.apart) MPI_Send(values.data(), static_cast<int>(values.size()), MPI_BYTE, 0, kTagResult, comm);
        if (body.capacity() > (std::size_t(256) << 20)) std::string().swap(body);  // keep up to 256 MiB for the next one
    }
    stop_heartbeat.store(true);
    if (beat.joinable()) beat.join();
    // The last message: rank 0 reads up to it, so that no heartbeat is left unread when the two
    // sides disconnect.
    const char none = 0;
    std::lock_guard<std::mutex> lk(g_mu);
    MPI_Send(&none, 0, MPI_BYTE, 0, kTagBye, comm);
}

[[noreturn]] void worker_exit(MPI_Comm comm, bool spawned) {
    if (spawned) {
        MPI_Comm_disconnect(&comm);
    } else {
        MPI_Comm_free(&comm);
    }
    g_finalized = true;
    MPI_Finalize();
    std::fflush(nullptr);
    std::exit(0);
}

void hello(MPI_Comm comm, bool heartbeat) {
    Hello me;
    me.pid = mp::getpid();
    me.host = g_host;
    me.heartbeat = heartbeat;
    const std::string wire = encode(me);
    MPI_Send(wire.data(), static_cast<int>(wire.size()), MPI_BYTE, 0, kTagHello, comm);
}

// ---- rank 0's side -------------------------------------------------------------------------

struct MpiTask : TaskState {
    std::shared_ptr<const std::string> apart;  // the calls, when they travel as their own message
};

struct Slot {
    WorkerInfo info;
    bool heartbeat = false;  // watched by its heartbeat (another host), not by its pid
    Clock::time_point last_heard = Clock::now();
    std::deque<std::shared_ptr<MpiTask>> outstanding;  // sent, not answered, in order
    std::weak_ptr<Handle> owner;
};

struct Group {
    MPI_Comm comm = MPI_COMM_NULL;
    bool spawned = false;
    std::vector<Slot> slots;  // by rank in comm (static: slot 0 is rank 0 itself, unused)
    bool retiring = false;    // spawned: stop the workers once they have no task left
    bool retired = false;
    double heartbeat_timeout_s = 30;
};

struct SendOp {
    MPI_Request req = MPI_REQUEST_NULL;
    std::string buf;
    std::shared_ptr<const std::string> keep;
};

std::shared_ptr<Group> g_world_group;
std::vector<std::shared_ptr<Group>> g_groups;  // every group that is not retired
std::deque<std::unique_ptr<SendOp>> g_sends;
Clock::time_point g_last_watch = Clock::now();

}  // namespace

struct Handle final : mp::detail::TaskHost, std::enable_shared_from_this<Handle> {
    std::shared_ptr<Group> group;
    std::vector<std::size_t> slots;  // indices into group->slots
    std::deque<std::shared_ptr<MpiTask>> pending;
    std::size_t unfinished = 0;
    enum class State { running, closed, terminated, broken } state = State::running;
    bool is_pool = false;
    bool released = false;
    std::string broken_why;
    int pipeline = 2;
    std::uint64_t next_id = 1;

    std::mutex& mutex() override { return g_mu; }
    bool wait_until(const std::function<bool()>& done, double timeout_ms) override;
    bool unqueue(const std::shared_ptr<TaskState>& t) override {
        if (t->phase != TaskState::Phase::pending) return false;
        pending.erase(std::remove_if(pending.begin(), pending.end(),
                                     [&](const std::shared_ptr<MpiTask>& p) { return p.get() == t.get(); }),
                      pending.end());
        return true;
    }
    void on_finished(TaskState&) override;
};

namespace {

std::string describe(const Slot& s) {
    return "MPI rank " + std::to_string(s.info.rank) + " (pid " + std::to_string(s.info.pid) + " on " + s.info.host + ")";
}

void post_send(MPI_Comm comm, int dest, int tag, std::string buf, std::shared_ptr<const std::string> keep) {
    auto op = std::make_unique<SendOp>();
    op->buf = std::move(buf);
    op->keep = std::move(keep);
    const void* data = op->keep ? static_cast<const void*>(op->keep->data()) : static_cast<const void*>(op->buf.data());
    const std::size_t n = op->keep ? op->keep->size() : op->buf.size();
    check(MPI_Isend(data, to_int_count(n, "a task's arguments"), MPI_BYTE, dest, tag, comm, &op->req), "MPI_Isend");
    g_sends.push_back(std::move(op));
}

// Frees the sends that have completed; true if any did.
bool test_sends() {
    bool any = false;
    for (auto it = g_sends.begin(); it != g_sends.end();) {
        int done = 0;
        check(MPI_Test(&(*it)->req, &done, MPI_STATUS_IGNORE), "MPI_Test");
        if (done) {
            it = g_sends.erase(it);
            any = true;
        } else {
            ++it;
        }
    }
    return any;
}

void send_task(Group& g, Slot& s, const std::shared_ptr<MpiTask>& t) {
    TaskHeader h;
    h.id = t->id;
    h.fn = t->fn;
    h.count = t->count;
    h.apart = bool(t->apart);
    h.size = t->apart ? t->apart->size() : t->calls.size();
    std::string head;
    Encoder(head).write(h);
    if (t->apart) {
        post_send(g.comm, s.info.rank, kTagTask, std::move(head), nullptr);
        post_send(g.comm, s.info.rank, kTagTask, {}, t->apart);
    } else {
        head += t->calls;
        post_send(g.comm, s.info.rank, kTagTask, std::move(head), nullptr);
    }
    t->phase = TaskState::Phase::sent;
    s.outstanding.push_back(t);
}

// Sends queued tasks of h to its ranks that have room: first to the idle ones, then up to
// the pipeline depth.
void dispatch(Handle& h) {
    if (h.pending.empty()) return;
    Group& g = *h.group;
    for (int depth = 1; depth <= h.pipeline && !h.pending.empty(); ++depth) {
        for (std::size_t i : h.slots) {
            Slot& s = g.slots[i];
            if (h.pending.empty()) break;
            if (!s.info.alive || s.outstanding.size() >= static_cast<std::size_t>(depth)) continue;
            std::shared_ptr<MpiTask> t = h.pending.front();
            h.pending.pop_front();
            send_task(g, s, t);
        }
    }
}

void break_handle(Handle& h, const std::string& why, Callbacks& run) {
    h.state = Handle::State::broken;
    h.broken_why = why;
    auto e = std::make_exception_ptr(BrokenProcessPool(why));
    for (auto& t : h.pending) mp::detail::fail_task(h, *t, e, run);
    h.pending.clear();
}

// A worker is gone: the task it was running fails, those it had not started go back to their
// queues, and a handle left without workers is broken.
void lose(Group& g, Slot& s, const std::string& how, Callbacks& run) {
    s.info.alive = false;
    const std::string who = describe(s);
    std::vector<std::shared_ptr<Handle>> touched;
    for (auto it = s.outstanding.rbegin(); it != s.outstanding.rend(); ++it) {
        const std::shared_ptr<MpiTask>& t = *it;
        std::shared_ptr<mp::detail::TaskHost> host = t->host.lock();
        auto* h = static_cast<Handle*>(host.get());
        if (!h || t->finished.load()) continue;
        const bool running = it == std::prev(s.outstanding.rend());
        if (running) {
            mp::detail::fail_task(*h, *t,
                                  std::make_exception_ptr(WorkerLostError(
                                      who + " " + how + " while running this task; its exit status is known to mpiexec, not to rank 0",
                                      -1)),
                                  run);
        } else {
            t->phase = TaskState::Phase::pending;
            h->pending.push_front(t);
        }
        touched.push_back(std::static_pointer_cast<Handle>(host));
    }
    s.outstanding.clear();
    if (auto owner = s.owner.lock()) touched.push_back(owner);
    for (auto& h : touched) {
        if (h->state == Handle::State::broken) continue;
        const bool any_alive = std::any_of(h->slots.begin(), h->slots.end(), [&](std::size_t i) { return g.slots[i].info.alive; });
        if (!any_alive) {
            std::string lost;
            for (std::size_t i : h->slots) lost += (lost.empty() ? "" : ", ") + describe(g.slots[i]);
            break_handle(*h, "every worker rank of this executor is gone (" + lost + "; last: " + who + " " + how + ")", run);
        } else {
            dispatch(*h);
        }
    }
}

// A spawned job is ended whole by Open MPI when one of its ranks dies, and its other ranks may
// hang in the meantime: they are all given up at once, rather than sent tasks they might never
// answer.
void lose_job_of(Group& g, Slot& dead, const std::string& how, Callbacks& run) {
    const std::string who = describe(dead);
    lose(g, dead, how, run);
    if (!g.spawned) return;
    for (Slot& s : g.slots)
        if (s.info.alive)
            lose(g, s, "is given up: " + who + " " + how + ", and Open MPI ends a spawned job whole", run);
}

void watch(Callbacks& run) {
    const auto now = Clock::now();
    if (now - g_last_watch < std::chrono::milliseconds(20)) return;
    g_last_watch = now;
    for (auto& gp : g_groups) {
        Group& g = *gp;
        for (std::size_t i = 0; i < g.slots.size(); ++i) {
            Slot& s = g.slots[i];
            if (!s.info.alive || s.info.pid == 0) continue;
            if (s.heartbeat) {
                const double silent = std::chrono::duration<double>(now - s.last_heard).count();
                if (silent > g.heartbeat_timeout_s)
                    lose_job_of(g, s, "has not been heard from for " + std::to_string(static_cast<int>(silent)) + " s", run);
            } else if (!mp::sys::pid_exists(s.info.pid)) {
                lose_job_of(g, s, "ended", run);
            }
        }
    }
}

void apply_result(Group& g, int source, std::string& wire, Callbacks& run) {
    if (source < 0 || static_cast<std::size_t>(source) >= g.slots.size()) return;
    Slot& s = g.slots[static_cast<std::size_t>(source)];
    s.last_heard = Clock::now();
    ResultHeader r;
    Decoder d(wire.data(), wire.size());
    d.read(r);
    std::string values;
    if (r.apart) {
        values.resize(static_cast<std::size_t>(r.size));
        check(MPI_Recv(values.data(), to_int_count(values.size(), "a result"), MPI_BYTE, source, kTagResult, g.comm, MPI_STATUS_IGNORE),
              "MPI_Recv");
    } else {
        values.assign(wire.data() + d.offset(), d.remaining());
    }
    if (s.outstanding.empty() || s.outstanding.front()->id != r.id) return;  // not what it was sent: ignore
    std::shared_ptr<MpiTask> t = s.outstanding.front();
    s.outstanding.pop_front();
    std::shared_ptr<mp::detail::TaskHost> host = t->host.lock();
    if (host && !t->finished.load()) {
        if (r.kind == kOk && r.count == t->count)
            mp::detail::finish_task(*host, *t, true, std::move(values), r.count, nullptr, run);
        else if (r.kind == kOk)
            mp::detail::fail_task(*host, *t,
                                  std::make_exception_ptr(RemoteError("mp::DecodeError", "the worker answered with the wrong number of results")),
                                  run);
        else
            mp::detail::fail_task(*host, *t, std::make_exception_ptr(RemoteError(r.type, r.what)), run);
    }
    if (auto owner = s.owner.lock()) dispatch(*owner);
}

// Reads every message of comm (heartbeats, results nobody waits for) up to n goodbyes, at most
// 10 s, so that nothing is left unread when the communicator goes.
void drain_until_goodbyes(MPI_Comm comm, std::size_t n) {
    std::size_t byes = 0;
    const auto limit = Clock::now() + std::chrono::seconds(10);
    int idle = 0;
    while (byes < n && Clock::now() < limit) {
        MPI_Message msg;
        MPI_Status st;
        int flag = 0;
        if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm, &flag, &msg, &st) != MPI_SUCCESS) break;
        if (!flag) {
            backoff(idle++);
            continue;
        }
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        std::string buf(static_cast<std::size_t>(count), '\0');
        if (MPI_Mrecv(buf.data(), count, MPI_BYTE, &msg, MPI_STATUS_IGNORE) != MPI_SUCCESS) break;
        if (st.MPI_TAG == kTagBye) ++byes;
    }
}

void retire(Group& g) {
    if (g.retired) return;
    bool any_lost = false;
    const char none = 0;
    std::vector<MPI_Request> reqs;
    for (std::size_t i = 0; i < g.slots.size(); ++i) {
        Slot& s = g.slots[i];
        if (!s.info.alive) {
            any_lost = true;
            continue;
        }
        MPI_Request r;
        check(MPI_Isend(&none, 0, MPI_BYTE, s.info.rank, kTagStop, g.comm, &r), "MPI_Isend");
        reqs.push_back(r);
    }
    if (!any_lost) {
        MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
        drain_until_goodbyes(g.comm, reqs.size());
        MPI_Comm_disconnect(&g.comm);  // waits for the workers to disconnect too
    } else {
        // A lost worker would never disconnect: the others are left to Open MPI, which ends
        // a spawned job whole when one of its ranks dies.
        for (auto& r : reqs) MPI_Request_free(&r);
        MPI_Comm_free(&g.comm);
    }
    // Then for the workers to exit (those on this host, up to 10 s): Open MPI 4.1 with PMIx 4
    // hangs now and then in the next MPI_Comm_spawn, far more often while the previous spawned
    // job is still ending (README, "Beyond one machine").
    const auto until = Clock::now() + std::chrono::seconds(10);
    for (const Slot& s : g.slots)
        while (s.info.host == g_host && s.info.pid > 0 && mp::sys::pid_exists(s.info.pid) && Clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
    g.retired = true;
}

// One round of progress over every group; true if something happened.
bool progress(Callbacks& run) {
    bool moved = test_sends();
    for (std::size_t gi = 0; gi < g_groups.size(); ++gi) {
        Group& g = *g_groups[gi];
        for (int k = 0; k < 64; ++k) {
            MPI_Message msg;
            MPI_Status st;
            int flag = 0;
            check(MPI_Improbe(MPI_ANY_SOURCE, kTagResult, g.comm, &flag, &msg, &st), "MPI_Improbe");
            if (!flag) break;
            std::string wire = mrecv_all(msg, st);
            apply_result(g, st.MPI_SOURCE, wire, run);
            moved = true;
        }
        for (;;) {
            MPI_Message msg;
            MPI_Status st;
            int flag = 0;
            check(MPI_Improbe(MPI_ANY_SOURCE, kTagHeartbeat, g.comm, &flag, &msg, &st), "MPI_Improbe");
            if (!flag) break;
            mrecv_all(msg, st);
            if (st.MPI_SOURCE >= 0 && static_cast<std::size_t>(st.MPI_SOURCE) < g.slots.size())
                g.slots[static_cast<std::size_t>(st.MPI_SOURCE)].last_heard = Clock::now();
        }
    }
    watch(run);
    for (std::size_t gi = 0; gi < g_groups.size();) {
        Group& g = *g_groups[gi];
        if (g.retiring && std::none_of(g.slots.begin(), g.slots.end(), [](const Slot& s) { return !s.outstanding.empty(); })) {
            retire(g);
            g_groups.erase(g_groups.begin() + static_cast<std::ptrdiff_t>(gi));
            moved = true;
            continue;
        }
        ++gi;
    }
    return moved;
}

// Waits under g_mu (held by lk) until done() or the timeout; false on timeout.
bool engine_wait(std::unique_lock<std::mutex>& lk, const std::function<bool()>& done, double timeout_ms) {
    const bool forever = timeout_ms < 0;
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double, std::milli>(forever ? 0 : timeout_ms));
    int idle = 0;
    for (;;) {
        if (done()) return true;
        Callbacks run;
        bool moved = false;
        try {
            moved = progress(run);
        } catch (...) {
            lk.unlock();
            mp::detail::run_callbacks(run);
            lk.lock();
            throw;
        }
        if (!run.empty()) {
            lk.unlock();
            mp::detail::run_callbacks(run);
            lk.lock();
        }
        if (done()) return true;
        if (!forever && Clock::now() >= end) return false;
        if (moved) {
            idle = 0;
            continue;
        }
        // A large send moves only while this rank calls into MPI: no sleeping while one is
        // under way.
        if (!g_sends.empty()) idle = std::min(idle, 63);
        lk.unlock();
        backoff(idle++);
        lk.lock();
    }
}

// Receives the hellos of a new group's workers (they send it right after MPI_Init).
void receive_hellos(Group& g, std::size_t first, double limit_s) {
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit_s));
    std::size_t missing = g.slots.size() - first;
    int idle = 0;
    while (missing > 0) {
        MPI_Message msg;
        MPI_Status st;
        int flag = 0;
        check(MPI_Improbe(MPI_ANY_SOURCE, kTagHello, g.comm, &flag, &msg, &st), "MPI_Improbe");
        if (!flag) {
            if (Clock::now() > end)
                throw ProcessError("mp::mpi: " + std::to_string(missing) + " worker ranks did not report within " +
                                   std::to_string(static_cast<int>(limit_s)) + " s (do they call mp::mpi::bootstrap first in main?)");
            backoff(idle++);
            continue;
        }
        std::string wire = mrecv_all(msg, st);
        Hello hi = decode<Hello>(wire);
        const auto r = static_cast<std::size_t>(st.MPI_SOURCE);
        if (r < first || r >= g.slots.size()) continue;
        Slot& s = g.slots[r];
        s.info.rank = st.MPI_SOURCE;
        s.info.pid = static_cast<int>(hi.pid);
        s.info.host = hi.host;
        s.heartbeat = hi.heartbeat;
        s.last_heard = Clock::now();
        --missing;
    }
}

std::shared_ptr<Group> world_group() {
    if (g_world_group) return g_world_group;
    auto g = std::make_shared<Group>();
    g->comm = g_world;
    g->slots.resize(static_cast<std::size_t>(g_size));
    g->slots[0].info.alive = false;  // rank 0 is us
    g->slots[0].info.rank = 0;
    receive_hellos(*g, 1, 120);
    g_world_group = g;
    g_groups.push_back(g);
    return g;
}

std::shared_ptr<Group> spawn_group(int n, const Options& o) {
    std::string exe;
    if (auto ec = mp::sys::current_executable(exe)) throw OSError(ec, "mp::mpi: finding this program's executable");
    std::string arg0 = kWorkerArg;  // only to tell workers apart in a process list
    char* argv[] = {arg0.data(), nullptr};
    MPI_Info info = MPI_INFO_NULL;
    if (!o.get_spawn_info().empty()) {
        check(MPI_Info_create(&info), "MPI_Info_create");
        for (const auto& kv : o.get_spawn_info()) MPI_Info_set(info, kv.first.c_str(), kv.second.c_str());
    }
    MPI_Comm inter = MPI_COMM_NULL;
    std::vector<int> codes(static_cast<std::size_t>(n), MPI_SUCCESS);
    MPI_Comm_set_errhandler(MPI_COMM_SELF, MPI_ERRORS_RETURN);
    const int rc = MPI_Comm_spawn(exe.c_str(), argv, n, info, 0, MPI_COMM_SELF, &inter, codes.data());
    if (info != MPI_INFO_NULL) MPI_Info_free(&info);
    if (rc != MPI_SUCCESS) {
        char text[MPI_MAX_ERROR_STRING] = {};
        int len = 0;
        MPI_Error_string(rc, text, &len);
        throw ProcessError("mp::mpi: MPI_Comm_spawn of " + std::to_string(n) + " workers failed: " +
                           std::string(text, static_cast<std::size_t>(len)) +
                           " (with Open MPI, more workers than this host's slots need "
                           "Options().spawn_info(\"map_by\", \"slot:OVERSUBSCRIBE\"), or a hostfile)");
    }
    for (int c : codes)
        if (c != MPI_SUCCESS) {
            MPI_Comm_free(&inter);
            fail_mpi(c, "MPI_Comm_spawn (a worker did not start)");
        }
    MPI_Comm_set_errhandler(inter, MPI_ERRORS_RETURN);
    auto g = std::make_shared<Group>();
    g->comm = inter;
    g->spawned = true;
    g->heartbeat_timeout_s = o.get_heartbeat_timeout();
    g->slots.resize(static_cast<std::size_t>(n));
    try {
        receive_hellos(*g, 0, 120);
    } catch (...) {
        MPI_Comm_free(&g->comm);
        throw;
    }
    for (auto& s : g->slots) s.heartbeat = o.get_watch_by_heartbeat() || s.info.host != g_host;
    g_groups.push_back(g);
    return g;
}

// Gives the handle's ranks back (static mode) or has its spawned workers stopped once idle.
void release(Handle& h) {
    if (h.released) return;
    h.released = true;
    for (std::size_t i : h.slots) h.group->slots[i].owner.reset();
    if (h.group->spawned) h.group->retiring = true;
}

void finalize_locked(std::unique_lock<std::mutex>& lk) {
    if (g_finalized || !g_bootstrapped) return;
    int done = 0;
    MPI_Finalized(&done);
    if (done) {  // the program finalised MPI itself
        g_finalized = true;
        return;
    }
    if (g_rank == 0) {
        // Tasks that ranks are still running (a terminated pool's) come back first.
        auto busy = [] {
            for (auto& g : g_groups)
                for (auto& s : g->slots)
                    if (s.info.alive && !s.outstanding.empty()) return true;
            return false;
        };
        engine_wait(lk, [&] { return !busy(); }, -1);
        for (auto& g : g_groups)
            if (g->spawned) retire(*g);
        g_groups.clear();
        if (g_world != MPI_COMM_NULL && g_size > 1) {
            if (!g_world_group) world_group();  // their hellos are read, so nothing is left unmatched
            const char none = 0;
            std::vector<MPI_Request> reqs;
            for (auto& s : g_world_group->slots) {
                if (s.info.rank <= 0 || !s.info.alive) continue;
                MPI_Request r;
                MPI_Isend(&none, 0, MPI_BYTE, s.info.rank, kTagStop, g_world, &r);
                reqs.push_back(r);
            }
            MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE);
            drain_until_goodbyes(g_world, reqs.size());
        }
        while (!g_sends.empty()) {
            MPI_Wait(&g_sends.front()->req, MPI_STATUS_IGNORE);
            g_sends.pop_front();
        }
        g_world_group.reset();
        if (g_world != MPI_COMM_NULL) MPI_Comm_free(&g_world);
    }
    g_finalized = true;
    if (g_we_initialised) MPI_Finalize();
}

}  // namespace

void Handle::on_finished(TaskState&) {
    --unfinished;
    if (unfinished == 0 && state != State::running) release(*this);  // shut down without waiting
}

bool Handle::wait_until(const std::function<bool()>& done, double timeout_ms) {
    std::unique_lock<std::mutex> lk(g_mu);
    if (g_finalized) return done();
    return engine_wait(lk, done, timeout_ms);
}

std::shared_ptr<Handle> make_handle(int max_workers, const Options& o, bool is_pool) {
    const char* api = is_pool ? "mp::mpi::Pool" : "mp::mpi::PoolExecutor";
    require_bootstrap(api);
    if (o.get_pipeline() < 1) throw ValueError(std::string(api) + ": Options::pipeline must be >= 1");
    if (!(o.get_heartbeat_timeout() > 0)) throw ValueError(std::string(api) + ": Options::heartbeat_timeout must be > 0");
    std::lock_guard<std::mutex> lk(g_mu);
    auto h = std::make_shared<Handle>();
    h->is_pool = is_pool;
    h->pipeline = o.get_pipeline();
    Options::Mode mode = o.get_mode();
    if (mode == Options::Mode::automatic) mode = g_size > 1 ? Options::Mode::static_ranks : Options::Mode::spawn;
    if (mode == Options::Mode::static_ranks) {
        if (g_size < 2)
            throw ValueError(std::string(api) + ": static mode needs a job of two ranks or more (mpiexec -n N with N >= 2); "
                                                "started alone, use spawn mode");
        h->group = world_group();
        for (std::size_t i = 1; i < h->group->slots.size(); ++i) {
            Slot& s = h->group->slots[i];
            if (!s.info.alive || s.owner.lock()) continue;
            if (max_workers > 0 && h->slots.size() >= static_cast<std::size_t>(max_workers)) break;
            h->slots.push_back(i);
        }
        if (h->slots.empty())
            throw RuntimeError(std::string(api) + ": every worker rank of this job (" + std::to_string(g_size - 1) +
                               ") already serves another executor or pool; shut one down first");
    } else {
        const int n = max_workers > 0 ? max_workers : mp::cpu_count();
        h->group = spawn_group(n, o);
        for (std::size_t i = 0; i < h->group->slots.size(); ++i) h->slots.push_back(i);
    }
    for (std::size_t i : h->slots) h->group->slots[i].owner = h;
    return h;
}

TaskRef handle_submit(Handle& h, const char* api, std::string fn, std::string calls, std::size_t count) {
    auto t = std::make_shared<MpiTask>();
    t->fn = std::move(fn);
    t->count = count;
    if (calls.size() > kApart) {
        to_int_count(calls.size(), "a task's arguments");
        t->apart = std::make_shared<const std::string>(std::move(calls));
    } else {
        t->calls = std::move(calls);
    }
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_finalized) throw RuntimeError(std::string(api) + ": mp::mpi::finalize() has already run");
    if (h.state == Handle::State::broken) throw BrokenProcessPool(std::string(api) + ": " + h.broken_why);
    if (h.state != Handle::State::running) {
        if (!h.is_pool) throw RuntimeError(std::string(api) + ": cannot schedule new futures after shutdown");
        throw ValueError(std::string(api) + ": Pool not running");
    }
    t->id = h.next_id++;
    t->host = h.shared_from_this();
    h.pending.push_back(t);
    ++h.unfinished;
    dispatch(h);
    return TaskRef(t);
}

void handle_shutdown(Handle& h, bool wait, bool cancel_futures) {
    Callbacks run;
    {
        std::unique_lock<std::mutex> lk(g_mu);
        if (cancel_futures) {
            for (auto& t : h.pending) {
                t->was_cancelled = true;
                mp::detail::fail_task(h, *t, std::make_exception_ptr(CancelledError("mp::Future: cancelled")), run);
            }
            h.pending.clear();
        }
        if (h.state == Handle::State::running) h.state = Handle::State::closed;
        if (wait && !g_finalized) {
            lk.unlock();
            mp::detail::run_callbacks(run);
            lk.lock();
            engine_wait(lk, [&] { return h.unfinished == 0; }, -1);
            release(h);
            // Spawned workers stop now that they are idle.
            engine_wait(lk, [&] { return h.group->retired || !h.group->spawned; }, -1);
        } else if (h.unfinished == 0) {
            release(h);
        }
    }
    mp::detail::run_callbacks(run);
}

void handle_close(Handle& h) {
    std::lock_guard<std::mutex> lk(g_mu);
    if (h.state == Handle::State::running) h.state = Handle::State::closed;
}

void handle_terminate(Handle& h) {
    Callbacks run;
    {
        std::unique_lock<std::mutex> lk(g_mu);
        if (h.state == Handle::State::terminated) return;
        h.state = Handle::State::terminated;
        auto e = std::make_exception_ptr(ProcessError("mp::mpi::Pool: terminated before this task finished"));
        for (auto& t : h.pending) mp::detail::fail_task(h, *t, e, run);
        h.pending.clear();
        // What the ranks are running goes on there; the tasks fail here, and the slots keep them
        // until their results come (and are dropped).
        for (std::size_t i : h.slots)
            for (auto& t : h.group->slots[i].outstanding)
                if (t->host.lock().get() == &h) mp::detail::fail_task(h, *t, e, run);
        release(h);
    }
    mp::detail::run_callbacks(run);
}

bool handle_join(Handle& h, double timeout_ms) {
    std::unique_lock<std::mutex> lk(g_mu);
    if (h.state == Handle::State::running)
        throw ValueError("mp::mpi::Pool::join: the pool is still running: call close() or terminate() first");
    if (g_finalized) return h.unfinished == 0;
    if (!engine_wait(lk, [&] { return h.unfinished == 0; }, timeout_ms)) return false;
    release(h);
    return true;
}

int handle_workers(const Handle& h) { return static_cast<int>(h.slots.size()); }

std::vector<WorkerInfo> handle_worker_info(const Handle& h) {
    std::lock_guard<std::mutex> lk(g_mu);
    std::vector<WorkerInfo> out;
    for (std::size_t i : h.slots) out.push_back(h.group->slots[i].info);
    return out;
}

}  // namespace detail

// ---- the public functions --------------------------------------------------------------------

void bootstrap(int argc, char** argv) {
    using namespace detail;
    mp::bootstrap(argc, argv);  // a local pool's spawned child runs its target there
    if (g_bootstrapped) return;
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        int provided = MPI_THREAD_SINGLE;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
            mp::detail::log(mp::detail::kLogError, "mp::mpi::bootstrap: MPI_Init_thread failed");
            std::exit(1);
        }
        g_we_initialised = true;
        g_thread_level = provided;
    } else {
        MPI_Query_thread(&g_thread_level);
    }
    g_init_thread = std::this_thread::get_id();
    g_bootstrapped = true;
    char name[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    MPI_Get_processor_name(name, &len);
    g_host.assign(name, static_cast<std::size_t>(len));

    MPI_Comm parent = MPI_COMM_NULL;
    MPI_Comm_get_parent(&parent);
    if (parent != MPI_COMM_NULL) {  // a spawned worker
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_set_errhandler(parent, MPI_ERRORS_RETURN);
        {
            std::lock_guard<std::mutex> lk(g_mu);
            hello(parent, true);
        }
        // A spawned worker always beats (it cannot tell whether rank 0 can watch its pid);
        // rank 0 listens to the beats of those it cannot watch.
        serve(parent, true);
        worker_exit(parent, true);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm_dup(MPI_COMM_WORLD, &g_world);
    MPI_Comm_set_errhandler(g_world, MPI_ERRORS_RETURN);
    // Every rank learns rank 0's host: a worker elsewhere proves it is alive by a heartbeat.
    char root[MPI_MAX_PROCESSOR_NAME] = {};
    std::memcpy(root, name, sizeof root);
    MPI_Bcast(root, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, g_world);
    const bool elsewhere = g_host != std::string(root);
    if (g_rank != 0) {
        {
            std::lock_guard<std::mutex> lk(g_mu);
            hello(g_world, elsewhere);
        }
        serve(g_world, elsewhere);
        worker_exit(g_world, false);
    }
    std::atexit([] {
        try {
            finalize();
        } catch (...) {
        }
    });
}

void finalize() {
    std::unique_lock<std::mutex> lk(detail::g_mu);
    detail::finalize_locked(lk);
}

bool initialized() { return detail::g_bootstrapped && !detail::g_finalized; }

int rank() {
    detail::require_bootstrap("mp::mpi::rank");
    return detail::g_rank;
}

int world_size() {
    detail::require_bootstrap("mp::mpi::world_size");
    return detail::g_size;
}

std::string processor_name() {
    detail::require_bootstrap("mp::mpi::processor_name");
    return detail::g_host;
}

}  // namespace mpi
}  // namespace mp
