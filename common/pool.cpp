// common/pool.cpp - the core that mp::Pool and mp::ProcessPoolExecutor share: worker
// processes, the task queue, and the collection of results (see mp/pool.hpp for the design).
//
// Portable: written against Process, Pipe and mp::wait (and sys::end_allow_sigpipe for the
// worker's result pipe). Each worker has two one-way pipes: tasks in, results out. The parent never reads a task back: a worker takes its tasks
// in the order they were sent, so when it ends, the first task it had not answered is the one
// it died in (it fails), and the others were never started (they go back to the queue).
//
// Locking: one mutex per pool guards its state. One thread at a time "collects": it waits
// outside the mutex on the result pipes and the workers' sentinels, then handles what came
// under it; other waiting threads sleep on a condition variable and take over when it is
// done. Callbacks run outside the mutex.
#include "mp/pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "connection_internal.hpp"
#include "logging_internal.hpp"
#include "mp/connection.hpp"
#include "mp/wait.hpp"
#include "process_internal.hpp"
#include "task_internal.hpp"
#include "timeout.hpp"

namespace mp {
namespace detail {

namespace {

enum : std::uint8_t { kOk = 0, kError = 1, kInitError = 2, kReady = 3 };

// A task on the wire: `count` calls of fn, their arguments encoded back to back; id 0 tells
// the worker to exit.
struct TaskMsg {
    std::uint64_t id = 0;
    std::string fn;
    std::uint64_t count = 0;
    std::string calls;
    MP_FIELDS(id, fn, count, calls)
};

// The answer: the calls' results back to back, or what went wrong.
struct ResultMsg {
    std::uint64_t id = 0;
    std::uint8_t kind = kOk;
    std::uint64_t count = 0;
    std::string values;
    std::string type, what;
    MP_FIELDS(id, kind, count, values, type, what)
};

// A pool whose workers keep dying before they take any task (a spawned child that cannot
// start, say) is broken after this many such deaths in a row, instead of restarting for ever.
constexpr int kMaxStartFailures = 3;

// How long terminate_workers gives a worker to end on SIGTERM before it is killed.
constexpr double kTerminateGrace = 5.0;

ResultMsg failure(std::uint64_t id, std::uint8_t kind, const char* type, const std::string& what) {
    ResultMsg r;
    r.id = id;
    r.kind = kind;
    r.type = type;
    r.what = what;
    return r;
}

}  // namespace

// ---- the worker -------------------------------------------------------------------------

int pool_worker(Connection tasks, Connection results, std::uint64_t maxtasks, std::string init_fn,
                std::string init_args) {
    if (!init_fn.empty()) {
        try {
            SpawnInvoker init = find_function_target(init_fn);
            if (!init) throw ValueError("the initializer " + init_fn + " is not registered in this program");
            Decoder d(init_args.data(), init_args.size());
            init(d);
        } catch (const std::exception& e) {
            results.send(failure(0, kInitError, type_name(typeid(e).name()).c_str(), e.what()));
            return 1;
        } catch (...) {
            results.send(failure(0, kInitError, "unknown", "the initializer threw something that is not a std::exception"));
            return 1;
        }
    }
    // The result pipe's only reader is the pool that started this worker: once it is gone, so
    // is the worker's purpose, and a SIGPIPE may end it. Its writes then need no guard (POSIX:
    // two sigprocmask calls fewer per result).
    sys::end_allow_sigpipe(ConnectionAccess::writable_end(results));
    // Ready: a worker that dies before this is a start failure, and the task it may have been
    // sent never ran (it goes back to the queue).
    results.send(failure(0, kReady, "", ""));
    for (std::uint64_t done = 0; maxtasks == 0 || done < maxtasks; ++done) {
        TaskMsg t;
        try {
            t = tasks.recv<TaskMsg>();
        } catch (const EOFError&) {
            return 0;  // the pool is gone
        }
        if (t.id == 0) return 0;
        ResultMsg r;
        r.id = t.id;
        try {
            TaskInvoker fn = find_task_function(t.fn);
            if (!fn) throw ValueError("the function " + t.fn + " is not registered as a task in this program");
            Decoder calls(t.calls.data(), t.calls.size());
            Encoder out(r.values);
            for (std::uint64_t i = 0; i < t.count; ++i) fn(calls, out);
            calls.expect_end();
            r.count = t.count;
        } catch (const SystemExit& e) {
            return e.code();  // the worker ends, as Python's does; the task fails with its code
        } catch (const std::exception& e) {
            r = failure(t.id, kError, type_name(typeid(e).name()).c_str(), e.what());
        } catch (...) {
            r = failure(t.id, kError, "unknown", "the task threw something that is not a std::exception");
        }
        results.send(r);
    }
    return 0;
}
MP_TARGET(pool_worker);

// ---- the parent's side ------------------------------------------------------------------

// TaskState and TaskHost: task_internal.hpp.

struct Worker {
    Process proc;
    std::uintptr_t sentinel = 0;  // proc.sentinel(), taken once: each call asks the OS for the pid
    Connection tasks;    // the parent's sending end
    Connection results;  // the parent's receiving end
    std::deque<std::shared_ptr<TaskState>> outstanding;  // sent, not answered, in order
    std::uint64_t sent = 0;
    bool ready = false;     // its initializer has run
    bool stopping = false;  // told to exit
    // Collection rounds left before its pipe is read again without a wait first (collect_once),
    // and how many such reads in a row found no whole answer. Only the collecting thread uses
    // them, with the lock held.
    unsigned nowait_skip = 0;
    unsigned nowait_misses = 0;
};

// What one collection round waits on and finds, kept from round to round so that a round
// allocates nothing once it has run (only the collecting thread uses it).
struct CollectScratch {
    std::vector<sys::PipeEnd*> ends;             // the wake-up pipe, then each worker's results
    std::vector<sys::native_handle> sentinels;   // each worker's sentinel
    std::vector<std::size_t> slots;              // the worker of ends[1 + k] and sentinels[k]
    std::vector<unsigned char> ready;            // ends, then sentinels
    std::vector<std::size_t> nowait;             // workers whose answer may be there already
    std::vector<std::size_t> missed;             // ... and was not
    std::vector<std::pair<std::size_t, ResultMsg>> answers;
    std::vector<std::size_t> ended;
};

struct PoolCore final : TaskHost {
    PoolSettings settings;
    std::mutex mu;
    std::condition_variable changed;
    bool collecting = false;
    int exclusive_waiters = 0;  // threads that need the collector's role (terminate, shutdown)
    // Written to wake the collector out of its wait when another thread needs the role.
    Connection wake_r, wake_w;
    std::vector<std::unique_ptr<Worker>> workers;  // by slot; empty once a worker is gone for good
    std::deque<std::shared_ptr<TaskState>> pending;
    std::uint64_t next_id = 1;
    std::size_t unfinished = 0;
    int worker_names = 0;
    int start_failures = 0;
    enum class State { running, closed, terminated, broken } state = State::running;
    std::string broken_why;
    std::weak_ptr<PoolCore> self;
    CollectScratch scratch;

    std::mutex& mutex() override { return mu; }
    bool wait_until(const std::function<bool()>& done, double timeout_ms) override;
    bool unqueue(const std::shared_ptr<TaskState>& t) override {
        if (t->phase != TaskState::Phase::pending) return false;
        pending.erase(std::remove(pending.begin(), pending.end(), t), pending.end());
        return true;
    }
    void on_finished(TaskState&) override {
        --unfinished;
        changed.notify_all();
    }
};

namespace {

using Clock = std::chrono::steady_clock;

void start_worker(PoolCore& c, std::size_t slot) {
    auto [task_r, task_w] = Pipe(false);
    auto [result_r, result_w] = Pipe(false);
    auto w = std::make_unique<Worker>();
    w->proc = get_context(c.settings.method)
                  .Process(pool_worker, task_r, result_w, c.settings.maxtasksperchild, c.settings.init_fn,
                           c.settings.init_args);
    const std::string m = c.settings.method.empty() ? get_start_method() : c.settings.method;
    w->proc.set_name((m == "fork" ? "ForkPoolWorker-" : "SpawnPoolWorker-") + std::to_string(++c.worker_names));
    w->proc.set_daemon(true);
    w->proc.start();
    w->sentinel = w->proc.sentinel();
    task_r.close();  // the worker has its own ends now
    result_w.close();
    w->tasks = task_w;
    w->results = result_r;
    c.workers[slot] = std::move(w);
}

// Finishes t with its outcome and hands its callbacks to the caller (to run outside the lock).
void finish(PoolCore& c, TaskState& t, bool ok, std::string values, std::uint64_t value_count,
            std::exception_ptr error, Callbacks& run) {
    finish_task(c, t, ok, std::move(values), value_count, std::move(error), run);
}

void fail(PoolCore& c, TaskState& t, std::exception_ptr e, Callbacks& run) { finish(c, t, false, {}, 0, std::move(e), run); }

// Makes the exception a task fails with: one object per task (CPython 3.15), so that what one
// future's owner does with it (a message added, say) never shows in another's.
using ErrorFor = std::function<std::exception_ptr()>;

// Every task not yet finished fails with an error(); the workers end: killed at once, or
// (grace > 0) told to stop and given that long to exit by themselves first.
void end_all(PoolCore& c, const ErrorFor& error, Callbacks& run, double grace_s = 0) {
    if (grace_s > 0) {
        for (auto& w : c.workers) {
            if (!w) continue;
            try {
                w->tasks.send(TaskMsg{});
            } catch (const OSError&) {  // already gone
            }
        }
    }
    auto e = [&] { return error ? error() : nullptr; };
    for (auto& w : c.workers) {
        if (!w) continue;
        if (grace_s > 0) w->proc.join(grace_s);
        w->proc.kill();
        w->proc.join();
        for (auto& t : w->outstanding) fail(c, *t, e(), run);
        w.reset();
    }
    for (auto& t : c.pending) fail(c, *t, e(), run);
    c.pending.clear();
}

// The workers of a broken pool are ending by themselves (their initializer failed) or idle:
// they get a moment to finish their exit, which is gentler than a kill in the middle of it.
// pid and exitcode: the worker whose end is the reason, when one is.
void break_pool(PoolCore& c, const std::string& why, Callbacks& run, std::optional<int> pid = std::nullopt,
                std::optional<int> exitcode = std::nullopt) {
    c.state = PoolCore::State::broken;
    c.broken_why = why;
    end_all(c, [&] { return std::make_exception_ptr(BrokenProcessPool(why, pid, exitcode)); }, run, 1.0);
}

// "pid 1234", for the messages that name a worker.
std::string pid_text(const Worker& w) {
    const std::optional<int> pid = w.proc.pid();
    return pid ? "pid " + std::to_string(*pid) : std::string("no pid");
}

// A worker gets a task only when it has none: it then waits to read, so the send never
// blocks for long (and never against a worker blocked on sending a result back), and a short
// task is never stuck behind a long one in a busy worker's pipe (Python's Pool shares one
// queue for the same reason). The cost is one round trip between tasks; map's chunks hide it.
bool can_take(const PoolCore& c, const Worker& w) {
    if (w.stopping || !w.outstanding.empty()) return false;
    return c.settings.maxtasksperchild == 0 || w.sent < c.settings.maxtasksperchild;
}

// Sends queued tasks to workers that can take them.
void dispatch(PoolCore& c) {
    for (auto& w : c.workers) {
        if (w && !c.pending.empty() && can_take(c, *w)) {
            const std::shared_ptr<TaskState> t = c.pending.front();
            try {
                w->tasks.send(std::forward_as_tuple(t->id, t->fn, t->count, t->calls));
            } catch (const OSError&) {
                continue;  // the worker is gone: its sentinel says so, and the task waits for another
            }
            c.pending.pop_front();
            t->phase = TaskState::Phase::sent;
            w->outstanding.push_back(t);
            ++w->sent;
        }
    }
}

void apply_result(PoolCore& c, Worker& w, ResultMsg& r, Callbacks& run) {
    if (r.kind == kInitError) {
        // The worker ends by itself once it has said so: its exit code is part of the story.
        w.proc.join(1.0);
        const std::optional<int> code = w.proc.exitcode();
        break_pool(c,
                   "the pool's initializer failed in the worker " + w.proc.name() + " (" + pid_text(w) +
                       (code ? ", exit code " + std::to_string(*code) : std::string()) + "): " + r.type + ": " + r.what,
                   run, w.proc.pid(), code);
        return;
    }
    if (r.kind == kReady) {
        w.ready = true;
        c.start_failures = 0;
        return;
    }
    if (w.outstanding.empty() || w.outstanding.front()->id != r.id) return;  // not ours: ignore
    const std::shared_ptr<TaskState> t = w.outstanding.front();
    w.outstanding.pop_front();
    if (r.kind == kOk && r.count == t->count)
        finish(c, *t, true, std::move(r.values), r.count, nullptr, run);
    else if (r.kind == kOk)
        fail(c, *t, std::make_exception_ptr(RemoteError("mp::DecodeError", "the worker answered with the wrong number of results")), run);
    else
        fail(c, *t, std::make_exception_ptr(RemoteError(r.type, r.what)), run);
}

// A worker's process ended: what it answered counts, the task it was in fails, the tasks it
// had not started go back to the front of the queue, and (while there is work) a new worker
// takes the slot.
// The answers an ended worker sent before it ended; false when one broke the pool (the worker
// is gone then).
bool drain_answers(PoolCore& c, std::size_t slot, Callbacks& run) {
    Worker& w = *c.workers[slot];
    for (;;) {
        try {
            if (!w.results.poll(0)) return true;
            ResultMsg r = w.results.recv<ResultMsg>();
            apply_result(c, w, r, run);
            if (!c.workers[slot]) return false;
        } catch (const std::exception&) {
            return true;  // end of file, or a message cut by the death
        }
    }
}

void handle_end(PoolCore& c, std::size_t slot, Callbacks& run) {
    if (!drain_answers(c, slot, run)) return;
    Worker& w = *c.workers[slot];
    w.proc.join();
    const int code = w.proc.exitcode().value_or(-1);
    const bool never_ready = !w.ready;
    // A worker that never got ready (its initializer did not finish) ran none of its tasks.
    if (!w.outstanding.empty() && !never_ready) {
        fail(c, *w.outstanding.front(),
             std::make_exception_ptr(WorkerLostError(
                 "the worker process running this task (" + w.proc.name() + ", " + pid_text(w) +
                     ") ended with exit code " + std::to_string(code) +
                     " before the task did; the pool has started a new worker",
                 code, w.proc.pid().value_or(0))),
             run);
        w.outstanding.pop_front();
    }
    for (auto it = w.outstanding.rbegin(); it != w.outstanding.rend(); ++it) {
        (*it)->phase = TaskState::Phase::pending;
        c.pending.push_front(*it);
    }
    w.outstanding.clear();
    const bool stopped = w.stopping;
    const std::optional<int> pid = w.proc.pid();
    const std::string who = pid_text(w);
    c.workers[slot].reset();
    if (never_ready && !stopped && ++c.start_failures >= kMaxStartFailures) {
        break_pool(c,
                   "the pool's workers keep ending before they are ready (the last, " + who + ", with exit code " +
                       std::to_string(code) + "): a spawned child that cannot start, or an initializer that ends its process",
                   run, pid, code);
        return;
    }
    const bool needed = c.state == PoolCore::State::running ||
                        (c.state == PoolCore::State::closed && (c.unfinished > 0 || !c.pending.empty()));
    if (!needed) return;
    try {
        start_worker(c, slot);
    } catch (const std::exception& e) {
        // Out of processes or descriptors: the pool goes on with the workers it has, and
        // breaks only when it has none left.
        if (std::none_of(c.workers.begin(), c.workers.end(), [](const std::unique_ptr<Worker>& x) { return bool(x); }))
            break_pool(c, std::string("the pool could not start a worker: ") + e.what(), run);
    }
}

}  // namespace

void run_callbacks(Callbacks& run) {
    for (auto& cb : run) {
        try {
            cb();
        } catch (const std::exception& e) {
            detail::log(kLogError, "mp::Pool: a callback threw %s: %s", type_name(typeid(e).name()).c_str(), e.what());
        } catch (...) {
            detail::log(kLogError, "mp::Pool: a callback threw something that is not a std::exception");
        }
    }
    run.clear();
}

void finish_task(TaskHost& host, TaskState& t, bool ok, std::string values, std::uint64_t value_count,
                 std::exception_ptr error, Callbacks& run) {
    if (t.finished.load()) return;
    t.phase = TaskState::Phase::done;
    t.ok = ok;
    t.values = std::move(values);
    t.value_count = value_count;
    t.error = std::move(error);
    t.calls.clear();
    t.calls.shrink_to_fit();
    t.finished.store(true);
    host.on_finished(t);
    for (auto& cb : t.callbacks) run.push_back(std::move(cb));
    t.callbacks.clear();
}

namespace {

// After two reads in a row without a wait found no whole answer from a worker, this many
// rounds wait on its pipe first: a worker that answers later than the collector looks (another
// CPU still running the task) would otherwise cost a read that finds nothing in every round.
// One miss alone changes nothing (on one CPU the answer is usually there, now and then not).
constexpr unsigned kNowaitBackoff = 8;

// One round of collection, by the collecting thread: waits up to timeout_ms for an answer, the
// end of a worker, or a wake-up, and handles all that came. lk is held on entry and on return.
// The callbacks of the tasks it finished are handed to the caller, to run once it has given up
// the collector's role (a callback may use the pool: wait on it, terminate it, join it).
// An answer already in a worker's pipe (the worker ran while this thread was on its way here,
// as on one CPU) is read without a wait first (ConnectionAccess::whole_message_nowait); the
// round then handles it alone, and the wake-up pipe and the sentinels are looked at in the
// next round, which waits.
void collect_once(PoolCore& c, std::unique_lock<std::mutex>& lk, double timeout_ms, Callbacks& run) {
    dispatch(c);
    CollectScratch& s = c.scratch;
    s.ends.clear();
    s.sentinels.clear();
    s.slots.clear();
    s.nowait.clear();
    s.missed.clear();
    s.answers.clear();
    s.ended.clear();
    const sys::Deadline deadline = deadline_in_ms(timeout_ms, "mp::Pool");
    s.ends.push_back(&ConnectionAccess::readable_end(c.wake_r));
    bool buffered = ConnectionAccess::has_buffered(c.wake_r);
    for (std::size_t i = 0; i < c.workers.size(); ++i) {
        Worker* w = c.workers[i].get();
        if (!w) continue;
        s.ends.push_back(&ConnectionAccess::readable_end(w->results));
        s.sentinels.push_back(sys::handle_from_value(w->sentinel));
        s.slots.push_back(i);
        if (w->outstanding.empty()) continue;
        if (w->nowait_skip == 0) s.nowait.push_back(i);
        else --w->nowait_skip;
    }
    lk.unlock();
    try {
        // Only the collecting thread reads the result pipes, and only it changes the set of
        // workers, so the reads need no lock.
        for (std::size_t slot : s.nowait) {
            Connection& results = c.workers[slot]->results;
            if (!ConnectionAccess::whole_message_nowait(results)) {
                s.missed.push_back(slot);
                continue;
            }
            try {
                s.answers.emplace_back(slot, results.recv<ResultMsg>());
            } catch (const std::exception&) {
                s.ended.push_back(slot);  // a message it cannot decode: as below
            }
        }
        if (s.answers.empty() && s.ended.empty()) {
            for (std::size_t k = 0; k < s.slots.size() && !buffered; ++k)
                buffered = ConnectionAccess::has_buffered(c.workers[s.slots[k]]->results);
            s.ready.assign(s.ends.size() + s.sentinels.size(), 0);
            // A message's first bytes already in a read-ahead: look at the rest without waiting.
            if (auto ec = sys::wait_ready(s.ends.data(), s.ends.size(), s.sentinels.data(), s.sentinels.size(),
                                          buffered ? sys::Deadline::now() : deadline, s.ready.data()))
                raise_os_error(ec, "mp::wait");
            if (s.ready[0] || ConnectionAccess::has_buffered(c.wake_r))  // a wake-up: drain them all
                while (c.wake_r.poll(0)) c.wake_r.recv_bytes();
            for (std::size_t k = 0; k < s.slots.size(); ++k) {
                const std::size_t slot = s.slots[k];
                if (s.ready[s.ends.size() + k]) s.ended.push_back(slot);
                if (!s.ready[1 + k] && !ConnectionAccess::has_buffered(c.workers[slot]->results)) continue;
                try {
                    s.answers.emplace_back(slot, c.workers[slot]->results.recv<ResultMsg>());
                } catch (const std::exception&) {
                    s.ended.push_back(slot);  // end of file: it died; its sentinel follows
                }
            }
        }
    } catch (...) {
        lk.lock();
        throw;
    }
    lk.lock();
    for (std::size_t slot : s.nowait) {
        Worker* w = c.workers[slot].get();
        if (!w) continue;
        if (std::find(s.missed.begin(), s.missed.end(), slot) == s.missed.end()) w->nowait_misses = 0;
        else if (++w->nowait_misses >= 2) w->nowait_skip = kNowaitBackoff;
    }
    for (auto& [slot, r] : s.answers)
        if (c.workers[slot]) apply_result(c, *c.workers[slot], r, run);
    std::sort(s.ended.begin(), s.ended.end());
    s.ended.erase(std::unique(s.ended.begin(), s.ended.end()), s.ended.end());
    for (std::size_t slot : s.ended) {
        if (!c.workers[slot]) continue;
        // A pipe at end of file with the process still running is a worker that closed it:
        // wait for the process itself before deciding.
        if (c.workers[slot]->proc.is_alive()) continue;
        handle_end(c, slot, run);
    }
    dispatch(c);
}

// Waits until done() (checked under the lock) or timeout_ms passes; false on timeout. However
// short the timeout (0 included), a thread that finds nobody collecting collects once, so
// polling with a zero timeout sees results that have arrived.
template <class Done>
bool wait_until(PoolCore& c, Done done, double timeout_ms) {
    const bool forever = timeout_ms < 0;
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double, std::milli>(forever ? 0 : timeout_ms));
    std::unique_lock<std::mutex> lk(c.mu);
    bool collected = false;
    for (;;) {
        if (done()) return true;
        double left = -1;
        if (!forever) {
            left = std::chrono::duration<double, std::milli>(end - Clock::now()).count();
            if (left <= 0) {
                if (collected || c.collecting || c.exclusive_waiters) return done();
                left = 0;
            }
        }
        if (!c.collecting && !c.exclusive_waiters) {
            c.collecting = true;
            Callbacks run;
            try {
                collect_once(c, lk, left, run);
            } catch (...) {
                c.collecting = false;
                c.changed.notify_all();
                lk.unlock();
                run_callbacks(run);
                throw;
            }
            collected = true;
            c.collecting = false;
            c.changed.notify_all();
            if (!run.empty()) {
                lk.unlock();
                run_callbacks(run);
                lk.lock();
            }
        } else if (forever) {
            c.changed.wait(lk);
        } else {
            c.changed.wait_until(lk, end);
        }
    }
}

// Takes the collector's role for work that changes the set of workers from outside
// collect_once (terminate, shutdown): the collector is woken, yields the role after its round,
// and waiting threads do not take it while someone waits here.
class Exclusive {
public:
    explicit Exclusive(PoolCore& c) : c_(c), lk_(c.mu) {
        ++c_.exclusive_waiters;
        if (c_.collecting) {
            try {
                c_.wake_w.send_bytes("w", 1, 0.0);
            } catch (const std::exception&) {  // a full pipe already wakes it
            }
        }
        c_.changed.wait(lk_, [&] { return !c_.collecting; });
        --c_.exclusive_waiters;
        c_.collecting = true;
    }
    ~Exclusive() {
        c_.collecting = false;
        c_.changed.notify_all();
    }
    std::unique_lock<std::mutex>& lock() { return lk_; }

private:
    PoolCore& c_;
    std::unique_lock<std::mutex> lk_;
};

}  // namespace

bool PoolCore::wait_until(const std::function<bool()>& done, double timeout_ms) {
    return detail::wait_until(*this, done, timeout_ms);
}

// ---- what the templates call ----------------------------------------------------------------

double timeout_to_ms(const std::optional<double>& seconds, const char* api) {
    if (!seconds) return -1;
    check_timeout(*seconds, api);
    return checked_timeout_ms(*seconds * 1000.0, api);
}

void throw_unregistered_task(const char* api, const char* type) {
    throw ValueError(std::string(api) + ": the function (type " + type_name(type) +
                     ") is not registered: a task is sent to a worker that is already running, so it "
                     "travels by name. Register it at namespace scope with MP_TARGET(function_name), "
                     "under every start method");
}

std::shared_ptr<PoolCore> make_pool_core(const PoolSettings& settings) {
    auto c = std::make_shared<PoolCore>();
    c->settings = settings;
    if (c->settings.processes <= 0) c->settings.processes = cpu_count();
    c->self = c;
    check_start_method(c->settings.method.empty() ? get_start_method() : c->settings.method);
    c->workers.resize(static_cast<std::size_t>(c->settings.processes));
    auto [wake_r, wake_w] = Pipe(false);
    c->wake_r = wake_r;
    c->wake_w = wake_w;
    std::lock_guard<std::mutex> lk(c->mu);
    try {
        for (std::size_t i = 0; i < c->workers.size(); ++i) start_worker(*c, i);
    } catch (...) {
        Callbacks none;
        end_all(*c, nullptr, none);
        throw;
    }
    return c;
}

TaskRef submit(const std::shared_ptr<PoolCore>& core, const char* api, std::string fn, std::string calls,
               std::size_t count, bool executor) {
    PoolCore& c = *core;
    auto t = std::make_shared<TaskState>();
    t->fn = std::move(fn);
    t->calls = std::move(calls);
    t->count = count;
    t->host = core;
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.state == PoolCore::State::broken) throw BrokenProcessPool(std::string(api) + ": " + c.broken_why);
    if (c.state != PoolCore::State::running) {
        if (executor) throw RuntimeError(std::string(api) + ": cannot schedule new futures after shutdown");
        throw ValueError(std::string(api) + ": Pool not running");
    }
    t->id = c.next_id++;
    c.pending.push_back(t);
    ++c.unfinished;
    dispatch(c);
    return TaskRef(t);
}

void pool_close(PoolCore& c) {
    std::lock_guard<std::mutex> lk(c.mu);
    if (c.state == PoolCore::State::running) c.state = PoolCore::State::closed;
}

void pool_terminate(PoolCore& c) {
    Callbacks run;
    {
        Exclusive ex(c);
        if (c.state == PoolCore::State::terminated) return;
        const bool had_work = c.unfinished > 0;
        c.state = PoolCore::State::terminated;
        ErrorFor terminated;
        if (had_work) terminated = [] { return std::make_exception_ptr(ProcessError("mp::Pool: terminated before this task finished")); };
        end_all(c, terminated, run);
    }
    run_callbacks(run);
}

void pool_end_workers(PoolCore& c, bool kill) {
    const char* how = kill ? "kill_workers" : "terminate_workers";
    Callbacks run;
    {
        Exclusive ex(c);
        // The futures no worker has received are cancelled, as shutdown(cancel_futures) does.
        for (auto& t : c.pending) {
            t->was_cancelled = true;
            fail(c, *t, std::make_exception_ptr(CancelledError("mp::Future: cancelled")), run);
        }
        c.pending.clear();
        if (c.state == PoolCore::State::running || c.state == PoolCore::State::closed) c.state = PoolCore::State::terminated;
        for (auto& w : c.workers) {
            if (!w) continue;
            try {
                if (kill) w->proc.kill();
                else w->proc.terminate();
            } catch (const std::exception&) {  // it has ended already: its answers still count
            }
        }
        for (std::size_t slot = 0; slot < c.workers.size(); ++slot) {
            if (!c.workers[slot]) continue;
            // SIGTERM can be caught or held off by a task; no worker survives all the same.
            if (!kill) c.workers[slot]->proc.join(kTerminateGrace);
            if (c.workers[slot]->proc.is_alive()) c.workers[slot]->proc.kill();
            c.workers[slot]->proc.join();
            if (!drain_answers(c, slot, run)) continue;  // the pool broke: the rest is done
            Worker& w = *c.workers[slot];
            const std::optional<int> code = w.proc.exitcode();
            for (auto& t : w.outstanding) {
                fail(c, *t,
                     std::make_exception_ptr(BrokenProcessPool(
                         std::string("mp::futures::ProcessPoolExecutor::") + how + ": the worker running this task (" +
                             w.proc.name() + ", " + pid_text(w) + ") was ended, with exit code " +
                             (code ? std::to_string(*code) : std::string("unknown")),
                         w.proc.pid(), code)),
                     run);
            }
            c.workers[slot].reset();
        }
    }
    run_callbacks(run);
}

bool pool_join(PoolCore& c, double timeout_ms) {
    {
        std::lock_guard<std::mutex> lk(c.mu);
        if (c.state == PoolCore::State::running)
            throw ValueError("mp::Pool::join: the pool is still running: call close() or terminate() first");
    }
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double, std::milli>(timeout_ms < 0 ? 0 : timeout_ms));
    auto left = [&] {
        if (timeout_ms < 0) return -1.0;
        return std::max(0.0, std::chrono::duration<double, std::milli>(end - Clock::now()).count());
    };
    if (!wait_until(c, [&] { return c.unfinished == 0; }, left())) return false;
    {
        std::lock_guard<std::mutex> lk(c.mu);
        for (auto& w : c.workers) {
            if (!w || w->stopping) continue;
            w->stopping = true;
            try {
                w->tasks.send(TaskMsg{});
            } catch (const OSError&) {  // already gone: its sentinel says so
            }
        }
    }
    return wait_until(c, [&] {
        return std::none_of(c.workers.begin(), c.workers.end(), [](const std::unique_ptr<Worker>& w) { return bool(w); });
    }, left());
}

int pool_processes(const PoolCore& c) { return c.settings.processes; }

void pool_shutdown(PoolCore& c, bool wait, bool cancel_pending) {
    Callbacks run;
    {
        std::lock_guard<std::mutex> lk(c.mu);
        if (cancel_pending) {
            for (auto& t : c.pending) {
                t->was_cancelled = true;
                fail(c, *t, std::make_exception_ptr(CancelledError("mp::Future: cancelled")), run);
            }
            c.pending.clear();
        }
        if (c.state == PoolCore::State::running) c.state = PoolCore::State::closed;
    }
    run_callbacks(run);
    if (wait) pool_join(c, -1);
}

// ---- TaskRef ----------------------------------------------------------------------------------

bool TaskRef::wait(double timeout_ms) const {
    if (!s_) throw ValueError("mp: this result belongs to no task");
    if (s_->finished.load()) return true;
    std::shared_ptr<TaskHost> host = s_->host.lock();
    if (!host) return s_->finished.load();
    return host->wait_until([&] { return s_->finished.load(); }, timeout_ms);
}

bool TaskRef::ready() const { return s_ && s_->finished.load(); }
bool TaskRef::ok() const { return ready() && s_->ok; }
bool TaskRef::cancelled() const { return ready() && s_->was_cancelled; }

bool TaskRef::running() const {
    if (!s_ || s_->finished.load()) return false;
    std::shared_ptr<TaskHost> host = s_->host.lock();
    if (!host) return false;
    std::lock_guard<std::mutex> lk(host->mutex());
    return s_->phase == TaskState::Phase::sent;
}

bool TaskRef::cancel() {
    if (!s_) return false;
    if (s_->finished.load()) return s_->was_cancelled;
    std::shared_ptr<TaskHost> host = s_->host.lock();
    if (!host) return false;
    Callbacks run;
    {
        std::lock_guard<std::mutex> lk(host->mutex());
        if (s_->finished.load() || !host->unqueue(s_)) return s_->was_cancelled;
        s_->was_cancelled = true;
        fail_task(*host, *s_, std::make_exception_ptr(CancelledError("mp::Future: cancelled")), run);
    }
    run_callbacks(run);
    return true;
}

const std::string& TaskRef::results() const {
    if (!ok()) throw ValueError("mp: the task has no result");
    return s_->values;
}

std::size_t TaskRef::result_count() const { return ok() ? static_cast<std::size_t>(s_->value_count) : 0; }

void TaskRef::rethrow() const {
    if (!ready() || s_->ok || !s_->error) throw ValueError("mp: the task did not fail");
    std::rethrow_exception(s_->error);
}

std::exception_ptr TaskRef::error() const { return ready() && !s_->ok ? s_->error : nullptr; }

void TaskRef::on_done(std::function<void()> fn) const {
    if (!s_) throw ValueError("mp: this result belongs to no task");
    std::shared_ptr<TaskHost> host = s_->host.lock();
    if (host) {
        std::lock_guard<std::mutex> lk(host->mutex());
        if (!s_->finished.load()) {
            s_->callbacks.push_back(std::move(fn));
            return;
        }
    }
    Callbacks run{std::move(fn)};
    run_callbacks(run);
}

std::size_t wait_any(const std::vector<TaskRef>& refs, double timeout_ms) {
    auto first_done = [&]() -> std::size_t {
        for (std::size_t i = 0; i < refs.size(); ++i)
            if (refs[i].ready()) return i;
        return refs.size();
    };
    std::size_t i = first_done();
    if (i < refs.size() || refs.empty()) return i;
    // Waiting on one pool collects for all its tasks; refs from several pools (local or MPI)
    // are looked at in turns of 10 ms.
    std::shared_ptr<TaskHost> pool;
    bool one_pool = true;
    for (const auto& r : refs) {
        std::shared_ptr<TaskHost> p = r.s_ ? r.s_->host.lock() : nullptr;
        if (!p) continue;
        if (!pool) pool = p;
        else if (p != pool) one_pool = false;
    }
    if (!pool) return first_done();
    if (one_pool) {
        pool->wait_until([&] { return first_done() < refs.size(); }, timeout_ms);
        return first_done();
    }
    const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double, std::milli>(timeout_ms < 0 ? 0 : timeout_ms));
    for (;;) {
        for (const auto& r : refs) {
            if (r.ready()) continue;
            r.wait(10);
            if ((i = first_done()) < refs.size()) return i;
        }
        if (timeout_ms >= 0 && Clock::now() >= end) return first_done();
    }
}

}  // namespace detail
}  // namespace mp
