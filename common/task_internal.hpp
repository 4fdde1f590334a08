// common/task_internal.hpp - a submitted task and what owns it, shared by the local pool
// (pool.cpp) and the optional MPI backend (mpi/mpi.cpp).
//
// TaskRef, AsyncResult, Future, wait and as_completed (mp/pool.hpp, mp/futures.hpp) hold a
// shared TaskState and never look at who runs it: they ask its TaskHost to wait, to cancel, or
// to guard the state with its lock. The local pool's core is one host; an MPI executor's core is
// another. So one Future type serves both executors, and a function written for one works with
// the other.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "mp/pool.hpp"

namespace mp::detail {

using Callbacks = std::vector<std::function<void()>>;

struct TaskState;

class TaskHost {
public:
    virtual ~TaskHost() = default;
    // Guards every task's phase and callbacks, and the host's own state.
    virtual std::mutex& mutex() = 0;
    // Waits until done() (called with mutex() held) holds, collecting results meanwhile, or
    // until timeout_ms passes (< 0: without limit); false when the time ran out. Callbacks of
    // the tasks it finishes run in this thread, outside the lock.
    virtual bool wait_until(const std::function<bool()>& done, double timeout_ms) = 0;
    // With mutex() held: removes t from the queue of tasks no worker has received and
    // reports true, or false if a worker has it already.
    virtual bool unqueue(const std::shared_ptr<TaskState>& t) = 0;
    // With mutex() held, once t is finished: the host's own bookkeeping (counters, wake-ups).
    virtual void on_finished(TaskState& t) = 0;
};

struct TaskState {
    enum class Phase { pending, sent, done };
    std::uint64_t id = 0;
    std::string fn;
    std::string calls;
    std::uint64_t count = 0;
    Phase phase = Phase::pending;       // under the host's mutex
    std::atomic<bool> finished{false};  // set last, after the outcome below
    bool ok = false;
    bool was_cancelled = false;
    std::string values;
    std::uint64_t value_count = 0;
    std::exception_ptr error;
    std::vector<std::function<void()>> callbacks;  // under the host's mutex, until finished
    std::weak_ptr<TaskHost> host;
};

// With the host's mutex held: gives t its outcome, tells the host, and hands t's callbacks to
// the caller (to run outside the lock). A task already finished is left alone.
void finish_task(TaskHost& host, TaskState& t, bool ok, std::string values, std::uint64_t value_count,
                 std::exception_ptr error, Callbacks& run);
inline void fail_task(TaskHost& host, TaskState& t, std::exception_ptr e, Callbacks& run) {
    finish_task(host, t, false, {}, 0, std::move(e), run);
}

// Runs callbacks outside any lock; one that throws is reported through mp's log (an ERROR, on
// stderr by default) and the rest run.
void run_callbacks(Callbacks& run);

}  // namespace mp::detail
