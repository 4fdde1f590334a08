// mp/futures.hpp - mp::futures::ProcessPoolExecutor, Future, wait and as_completed: the C++
// counterpart of concurrent.futures with processes.
//
//     int crunch(int n);  MP_TARGET(crunch);
//
//     mp::futures::ProcessPoolExecutor ex(4);               // 0: cpu_count() workers
//     std::vector<mp::futures::Future<int>> fs;
//     for (int n : work) fs.push_back(ex.submit(crunch, n));
//     for (auto& f : mp::futures::as_completed(fs, 60.0))   // in the order they finish
//         std::printf("%d\n", f.result());
//     std::vector<int> all = ex.map(crunch, work);          // in order
//     ex.shutdown();                                        // or let the destructor do it
//
// It runs on the same core as mp::Pool (mp/pool.hpp): registered functions, arguments and
// results through the codec, no hidden thread (futures complete while some thread waits on
// them: result(), wait, as_completed, shutdown(wait=true)), and done-callbacks run in that
// thread. Differences from Python, on purpose:
//  - A worker that dies in the middle of a task fails that future alone, with
//    mp::WorkerLostError (the worker's pid and exit code), and is replaced. Python's executor becomes broken:
//    every pending future fails with BrokenProcessPool and no more can be submitted. An
//    initializer that throws does break it here too (BrokenProcessPool).
//  - map returns all results in a vector, in order (Python yields them lazily; for that,
//    use Pool::imap). Its buffersize (Python 3.14) bounds the chunks in flight all the same.
//  - Executor is the base of this executor and of mp::mpi::PoolExecutor: one interface for
//    local and MPI executors.
//  - The destructor is shutdown(wait = true), as leaving Python's `with` block is.
#pragma once

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "duration.hpp"
#include "pool.hpp"
#include "source_iterator.hpp"

namespace mp {
namespace futures {

template <class R>
class Future {
public:
    Future() = default;
    explicit Future(detail::TaskRef t) : t_(std::move(t)) {}

    // The result, waiting at most timeout seconds (TimeoutError); CancelledError if the
    // future was cancelled; the task's own failure (RemoteError, WorkerLostError, ...).
    R result(std::optional<double> timeout = std::nullopt) const {
        wait_or_throw(timeout, "mp::futures::Future::result");
        if (!t_.ok()) t_.rethrow();
        return detail::decode_first<R>(t_);
    }
    // The task's exception (nullptr when it succeeded); CancelledError if cancelled.
    std::exception_ptr exception(std::optional<double> timeout = std::nullopt) const {
        wait_or_throw(timeout, "mp::futures::Future::exception");
        if (t_.cancelled()) t_.rethrow();
        return t_.error();
    }
    // result and exception with a duration (a negative one: no time left, see mp/duration.hpp).
    template <class Rep, class Period>
    R result(std::chrono::duration<Rep, Period> timeout) const { return result(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    template <class Rep, class Period>
    std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const { return exception(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    bool done() const { return t_.poll(); }
    bool running() const { return t_.running(); }
    bool cancelled() const { return t_.cancelled(); }
    // Cancels a future no worker has received yet (true); false once it runs or is done.
    bool cancel() { return t_.cancel(); }
    // fn(future) once the future is done: at once if it already is, otherwise in the thread
    // that collects its result.
    void add_done_callback(std::function<void(const Future&)> fn) const {
        Future self = *this;
        t_.on_done([self, fn] { fn(self); });
    }

    const detail::TaskRef& ref() const { return t_; }

private:
    void wait_or_throw(const std::optional<double>& timeout, const char* api) const {
        if (!t_.wait(detail::timeout_to_ms(timeout, api))) throw TimeoutError(std::string(api) + ": the future is not done");
    }
    detail::TaskRef t_;
};

// What every executor offers: the local ProcessPoolExecutor below and mp::mpi::PoolExecutor
// (mp/mpi.hpp, the optional MPI backend) both derive from it, so code written against
// Executor& runs its tasks in local worker processes or on the ranks of an MPI job alike:
//
//     std::vector<long long> crunch_all(mp::futures::Executor& ex, const std::vector<int>& work) {
//         return ex.map(crunch, work, std::nullopt, 4);
//     }
//
// submit and map are templates (they encode the call), so they are not virtual: they hand the
// encoded call to submit_encoded, which each executor implements.
class Executor {
public:
    Executor() = default;
    Executor(const Executor&) = delete;
    Executor& operator=(const Executor&) = delete;
    virtual ~Executor() = default;

    // fn(args...) as a Future. RuntimeError after shutdown(), as in Python.
    template <class F, class... A>
    Future<detail::task_result_t<F>> submit(F fn, A&&... args) {
        static_assert(std::is_void_v<detail::task_result_t<F>> || is_encodable_v<std::decay_t<detail::task_result_t<F>>>,
                      "executor task: the function's result must be void or a type the codec can encode");
        const char* api = submit_api();
        return Future<detail::task_result_t<F>>(
            submit_encoded(api, detail::task_name_of(fn, api), detail::encode_call<F>(std::forward<A>(args)...), 1));
    }

    // fn(item) for each item, in order, chunksize items per task; timeout (seconds) bounds the
    // whole call (TimeoutError). buffersize (Python 3.14's), when not 0, bounds the chunks
    // submitted and not yet collected: the rest are encoded and submitted as results come in,
    // so a long input is never encoded all at once. On a timeout or a failure the calls no
    // worker has received yet are cancelled, as in Python.
    // map with a duration (a negative one: no time left, see mp/duration.hpp).
    template <class F, class Items, class Rep, class Period>
    std::vector<detail::task_result_t<F>> map(F fn, const Items& items, std::chrono::duration<Rep, Period> timeout,
                                              std::size_t chunksize = 1, std::size_t buffersize = 0) {
        return map(std::move(fn), items, std::optional<double>(mp::detail::nonnegative_seconds(timeout)), chunksize, buffersize);
    }
    template <class F, class Items>
    std::vector<detail::task_result_t<F>> map(F fn, const Items& items, std::optional<double> timeout = std::nullopt,
                                              std::size_t chunksize = 1, std::size_t buffersize = 0) {
        using R = detail::task_result_t<F>;
        static_assert(!std::is_void_v<R>, "map of a function without a result: give it one, or use submit");
        const char* api = map_api();
        if (chunksize == 0) throw ValueError(std::string(api) + ": chunksize must be >= 1");
        const double ms = detail::timeout_to_ms(timeout, api);
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                                std::chrono::duration<double, std::milli>(ms < 0 ? 0 : ms));
        const std::string name = detail::task_name_of(fn, api);
        std::vector<detail::TaskRef> chunks;  // submitted, in order
        std::size_t collected = 0;            // chunks[0, collected) are in out
        std::vector<R> out;
        out.reserve(std::size(items));
        auto collect_one = [&] {
            double left = -1;
            if (ms >= 0) left = std::max(0.0, std::chrono::duration<double, std::milli>(end - std::chrono::steady_clock::now()).count());
            const detail::TaskRef& c = chunks[collected];
            if (!c.wait(left)) throw TimeoutError(std::string(api) + ": the results did not come in time");
            if (!c.ok()) c.rethrow();
            detail::decode_results(c, out);
            chunks[collected++] = detail::TaskRef();  // its results are in out: let it go
        };
        try {
            std::string calls;
            std::size_t count = 0;
            auto flush = [&] {
                if (buffersize && chunks.size() - collected >= buffersize) collect_one();
                chunks.push_back(submit_encoded(api, name, std::move(calls), count));
                calls.clear();
                count = 0;
            };
            for (const auto& item : items) {
                detail::append_call<F>(calls, item);
                if (++count == chunksize) flush();
            }
            if (count) flush();
            while (collected < chunks.size()) collect_one();
        } catch (...) {
            for (std::size_t i = collected; i < chunks.size(); ++i) chunks[i].cancel();
            throw;
        }
        return out;
    }

    // No more submissions; with wait, returns once every pending future is done (and, for the
    // local executor, the workers have exited); cancel_futures cancels those no worker has
    // received.
    virtual void shutdown(bool wait = true, bool cancel_futures = false) = 0;
    // How many workers run tasks at once.
    virtual int max_workers() const = 0;

    // The executor's own entry: count calls of the registered function fn, encoded back to back
    // in calls (detail::append_call). submit and map call it; it is public so that code built
    // on top of an executor (mp::mpi::Pool) can too.
    virtual detail::TaskRef submit_encoded(const char* api, std::string fn, std::string calls, std::size_t count) = 0;

protected:
    // The names that messages give for submit and map ("mp::futures::ProcessPoolExecutor::submit").
    virtual const char* submit_api() const = 0;
    virtual const char* map_api() const = 0;
};

class ProcessPoolExecutor : public Executor {
public:
    // max_workers <= 0: cpu_count(). The options give the initializer, the context and
    // max_tasks_per_child (PoolOptions::maxtasksperchild).
    explicit ProcessPoolExecutor(int max_workers = 0, const PoolOptions& options = PoolOptions()) {
        detail::PoolSettings s = options.settings();
        s.processes = max_workers;
        core_ = detail::make_pool_core(s);
    }
    ~ProcessPoolExecutor() override {
        if (!core_) return;
        try {
            shutdown(true);
        } catch (...) {  // a destructor must not throw; the workers are ended either way
            detail::pool_terminate(*core_);
        }
    }

    // submit and map: Executor's.

    // No more submissions; with wait, returns once every pending future is done and the
    // workers have exited; cancel_futures cancels those no worker has received.
    void shutdown(bool wait = true, bool cancel_futures = false) override { detail::pool_shutdown(*core_, wait, cancel_futures); }
    int max_workers() const override { return detail::pool_processes(*core_); }

    // Python 3.14's terminate_workers() and kill_workers(): ends every worker at once, with
    // SIGTERM (a worker that has not ended 5 s later is killed, so that none survives) or
    // SIGKILL (Windows: TerminateProcess for both), and shuts the executor down: the futures
    // no worker has received are cancelled, each one a worker was running fails with
    // BrokenProcessPool naming that worker's pid and exit code, results already sent back
    // count, and submit raises RuntimeError from then on. Returns once the workers are gone.
    void terminate_workers() { detail::pool_end_workers(*core_, false); }
    void kill_workers() { detail::pool_end_workers(*core_, true); }

    detail::TaskRef submit_encoded(const char* api, std::string fn, std::string calls, std::size_t count) override {
        return detail::submit(core_, api, std::move(fn), std::move(calls), count, true);
    }

protected:
    const char* submit_api() const override { return "mp::futures::ProcessPoolExecutor::submit"; }
    const char* map_api() const override { return "mp::futures::ProcessPoolExecutor::map"; }

private:
    std::shared_ptr<detail::PoolCore> core_;
};

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };

template <class R>
struct DoneAndNotDone {
    std::vector<Future<R>> done;
    std::vector<Future<R>> not_done;
};

// Python's concurrent.futures.wait: returns when return_when is met or the timeout passes.
template <class R>
DoneAndNotDone<R> wait(const std::vector<Future<R>>& fs, std::optional<double> timeout = std::nullopt,
                       ReturnWhen return_when = ReturnWhen::ALL_COMPLETED) {
    const double ms = detail::timeout_to_ms(timeout, "mp::futures::wait");
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                            std::chrono::duration<double, std::milli>(ms < 0 ? 0 : ms));
    auto met = [&] {
        bool all = true;
        for (const auto& f : fs) {
            if (!f.done()) {
                all = false;
                continue;
            }
            if (return_when == ReturnWhen::FIRST_COMPLETED) return true;
            if (return_when == ReturnWhen::FIRST_EXCEPTION && !f.cancelled() && f.ref().error()) return true;
        }
        return all;
    };
    while (!met()) {
        std::vector<detail::TaskRef> open;
        for (const auto& f : fs)
            if (!f.done()) open.push_back(f.ref());
        double left = -1;
        if (ms >= 0) {
            left = std::chrono::duration<double, std::milli>(end - std::chrono::steady_clock::now()).count();
            if (left <= 0) break;
        }
        detail::wait_any(open, left);
    }
    DoneAndNotDone<R> out;
    for (const auto& f : fs) (f.done() ? out.done : out.not_done).push_back(f);
    return out;
}

// Python's as_completed: the futures one at a time as they finish (those already done first).
// timeout bounds the whole iteration: TimeoutError when it passes with futures unfinished.
template <class R>
class AsCompleted {
public:
    AsCompleted(std::vector<Future<R>> fs, std::optional<double> timeout)
        : open_(std::move(fs)), ms_(detail::timeout_to_ms(timeout, "mp::futures::as_completed")),
          end_(std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                      std::chrono::duration<double, std::milli>(ms_ < 0 ? 0 : ms_))) {}

    std::optional<Future<R>> next() {
        if (head_) return std::exchange(head_, std::nullopt);
        if (open_.empty()) return std::nullopt;
        std::vector<detail::TaskRef> refs;
        for (const auto& f : open_) refs.push_back(f.ref());
        double left = -1;
        if (ms_ >= 0) left = std::max(0.0, std::chrono::duration<double, std::milli>(end_ - std::chrono::steady_clock::now()).count());
        const std::size_t k = detail::wait_any(refs, left);
        if (k == refs.size())
            throw TimeoutError("mp::futures::as_completed: " + std::to_string(open_.size()) + " futures unfinished");
        Future<R> f = open_[k];
        open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(k));
        return f;
    }

    // A range-for loop, or a C++20 view, walks the futures with next() (see
    // mp/source_iterator.hpp): one looked at and not stepped past stays for next().
    using iterator = mp::detail::SourceIterator<AsCompleted, Future<R>>;
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }

private:
    template <class, class>
    friend class mp::detail::SourceIterator;
    Future<R>* source_peek() {
        if (!head_) head_ = next();
        return head_ ? &*head_ : nullptr;
    }
    void source_drop() {
        if (source_peek()) head_.reset();
    }

    std::vector<Future<R>> open_;
    std::optional<Future<R>> head_;  // the future the iterators look at, taken from open_
    double ms_;
    std::chrono::steady_clock::time_point end_;
};

template <class R>
AsCompleted<R> as_completed(const std::vector<Future<R>>& fs, std::optional<double> timeout = std::nullopt) {
    return AsCompleted<R>(fs, timeout);
}
template <class R, class Rep, class Period>
AsCompleted<R> as_completed(const std::vector<Future<R>>& fs, std::chrono::duration<Rep, Period> timeout) {
    return AsCompleted<R>(fs, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
}
template <class R, class Rep, class Period>
DoneAndNotDone<R> wait(const std::vector<Future<R>>& fs, std::chrono::duration<Rep, Period> timeout,
                       ReturnWhen return_when = ReturnWhen::ALL_COMPLETED) {
    return wait(fs, std::optional<double>(mp::detail::nonnegative_seconds(timeout)), return_when);
}

}  // namespace futures
}  // namespace mp
