// mp/pool.hpp - mp::Pool, the C++ counterpart of multiprocessing.Pool: a fixed set of worker
// processes that run functions on the caller's behalf.
//
//     int square(int x) { return x * x; }
//     MP_TARGET(square);                            // tasks cross to workers by name
//
//     mp::Pool pool(4);                             // 4 workers (0: cpu_count())
//     std::vector<int> r = pool.map(square, std::vector<int>{1, 2, 3});   // {1, 4, 9}
//     int one = pool.apply(square, 7);              // 49
//     auto a = pool.apply_async(square, 8);         // an AsyncResult<int>
//     a.get(5.0);                                   // 64, or TimeoutError after 5 s
//     for (int v : pool.imap_unordered(square, items, 16)) ...   // as they complete
//     pool.close(); pool.join();
//
// Functions must be registered with MP_TARGET, under fork as under spawn: a task is sent to
// a worker that is already running, so only its name and its encoded arguments can travel
// (Python's Pool likewise sends functions by name, and refuses lambdas). Arguments and results
// go through the codec (mp/codec.hpp).
//
// How it works: each worker is a daemonic mp::Process with a Pipe to it and one from it. The
// pool sends a task to a worker only when that worker is idle, so a short task never waits
// behind a long one in a busy worker's pipe (map's chunks hide the round trip). There is no
// hidden thread: results are collected, callbacks run, and dead workers replaced by the thread
// that waits on the pool (get, wait, map, imap's iteration, join), through one mp::wait over
// the result pipes and the workers' sentinels. So a program that never waits on its results also
// never gets callbacks; a program without threads stays without threads, and its forks stay
// safe. Several threads may use one pool: one of them collects at a time, for all of them.
//
// Beyond CPython: a worker that dies in the middle of a task (killed, crashed, or exited from
// inside the function) fails only that task, with WorkerLostError carrying the exit code, and
// is replaced; tasks it had not started go to other workers, and the pool goes on. (CPython's
// Pool waits for such a task for ever.) An exception thrown by a task comes back as
// RemoteError (its type name and message: C++ exceptions cannot be rebuilt in another process).
// An initializer that throws breaks the pool: its tasks and all later ones fail with
// BrokenProcessPool, where CPython's Pool would start new workers for ever.
//
// Lifetime: close() stops new tasks; join() waits until every task has finished and the
// workers have exited (it needs close() or terminate() first, as in Python); terminate() kills
// the workers, and unfinished tasks fail with ProcessError. The destructor terminates, as
// leaving Python's `with Pool() as p:` does: join before it if the tasks must finish.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "context.hpp"
#include "duration.hpp"
#include "errors.hpp"
#include "process.hpp"
#include "source_iterator.hpp"

namespace mp {

// An exception that a task threw in a worker: its type name (demangled) and its message.
class RemoteError : public std::runtime_error {
public:
    RemoteError(std::string type, const std::string& message)
        : std::runtime_error(type + ": " + message), type_(std::move(type)), message_(message) {}
    const std::string& type_name() const noexcept { return type_; }
    const std::string& message() const noexcept { return message_; }

private:
    std::string type_;
    std::string message_;
};

// The worker running the task ended before the task did: pid() is the worker's, exitcode()
// says how it ended (-9: SIGKILL), and the message names both. The pool has replaced the
// worker. Each failed task has an exception object of its own.
class WorkerLostError : public ProcessError {
public:
    WorkerLostError(const std::string& what, int exitcode, int pid = 0)
        : ProcessError(what), exitcode_(exitcode), pid_(pid) {}
    int exitcode() const noexcept { return exitcode_; }
    int pid() const noexcept { return pid_; }

private:
    int exitcode_;
    int pid_;
};

// The pool cannot run tasks (Python's BrokenProcessPool): the workers' initializer failed,
// the workers keep dying before they are ready, or the executor's workers were ended
// (terminate_workers, kill_workers) with the task in them. When a particular worker's end is
// the reason, pid() and exitcode() name it (as the message does); otherwise both are empty.
// Each failed future has an exception object of its own (CPython 3.15).
class BrokenProcessPool : public ProcessError {
public:
    explicit BrokenProcessPool(const std::string& what, std::optional<int> pid = std::nullopt,
                               std::optional<int> exitcode = std::nullopt)
        : ProcessError(what), pid_(pid), exitcode_(exitcode) {}
    std::optional<int> pid() const noexcept { return pid_; }
    std::optional<int> exitcode() const noexcept { return exitcode_; }

private:
    std::optional<int> pid_;
    std::optional<int> exitcode_;
};

// A Future that was cancelled before it ran (concurrent.futures.CancelledError).
class CancelledError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

struct PoolCore;
struct TaskState;

// One submitted task (one or more calls of one function), shared by AsyncResult, Future and
// the pool. Waiting on it makes the waiting thread collect results for the whole pool.
class TaskRef {
public:
    TaskRef() = default;
    explicit TaskRef(std::shared_ptr<TaskState> s) : s_(std::move(s)) {}
    // timeout_ms < 0: without limit. false: the time ran out.
    bool wait(double timeout_ms) const;
    // Whether it is done, after collecting what has arrived (unless another thread is
    // collecting); ready() only looks.
    bool poll() const { return wait(0); }
    bool ready() const;
    bool ok() const;  // ready and no error
    bool cancelled() const;
    bool running() const;  // sent to a worker, not done
    bool cancel();         // only a task no worker has received can be cancelled
    // The results of the task's calls, encoded one after the other, once ready and ok.
    const std::string& results() const;
    std::size_t result_count() const;
    // Throws the task's error (ready and not ok).
    [[noreturn]] void rethrow() const;
    // The task's error: nullptr unless it is ready and failed.
    std::exception_ptr error() const;
    // Runs fn once the task is done (at once, in this thread, if it already is); otherwise
    // in the thread that collects its result.
    void on_done(std::function<void()> fn) const;
    bool operator==(const TaskRef& o) const { return s_ == o.s_; }

private:
    std::shared_ptr<TaskState> s_;
    friend std::size_t wait_any(const std::vector<TaskRef>&, double);
};

// Waits until one of refs is done; its index, or refs.size() when the time ran out first.
std::size_t wait_any(const std::vector<TaskRef>& refs, double timeout_ms);

[[noreturn]] void throw_unregistered_task(const char* api, const char* type);

// The registered name of fn (ValueError naming MP_TARGET if it has none).
template <class F>
std::string task_name_of(F fn, const char* api) {
    using Traits = fn_traits<F>;
    static_assert(Traits::is_function_pointer,
                  "a pool task is a function registered with MP_TARGET (not a lambda or another "
                  "callable: a task travels to a running worker by name)");
    for (const auto& entry : registered_functions<typename Traits::signature>())
        if (entry.first == fn) return entry.second;
    throw_unregistered_task(api, typeid(F).name());
}
// Appends one call of fn: the tuple of its parameters, built from args. A task's calls travel
// as one string of such encodings back to back (a chunk of a map is one allocation, not one
// per item), and its results come back the same way.
template <class F, class... A>
void append_call(std::string& calls, A&&... args) {
    using Params = typename fn_traits<F>::params;
    static_assert(std::is_constructible_v<Params, A&&...>, "pool task: the arguments do not match the function's parameters");
    static_assert(is_encodable_v<Params>, "pool task: every parameter must be a type the codec can encode");
    Encoder(calls).write_typed(Params(std::forward<A>(args)...));
}
template <class F, class... A>
std::string encode_call(A&&... args) {
    std::string out;
    append_call<F>(out, std::forward<A>(args)...);
    return out;
}

// What a task gives back: its function's result as a value (a reference result is copied in
// the worker; nothing could refer into the worker's memory anyway).
template <class F>
using task_result_t = std::decay_t<typename return_of<typename fn_traits<F>::signature>::type>;

// The task's results, decoded in order (appended to out).
template <class R>
void decode_results(const TaskRef& t, std::vector<R>& out) {
    const std::string& blob = t.results();
    Decoder d(blob.data(), blob.size());
    for (std::size_t i = 0, n = t.result_count(); i < n; ++i) out.push_back(d.read_typed<R>());
    d.expect_end();
}
// The result of a one-call task.
template <class R>
R decode_first(const TaskRef& t) {
    if constexpr (std::is_void_v<R>) {
        (void)t;
    } else {
        const std::string& blob = t.results();
        Decoder d(blob.data(), blob.size());
        R v = d.read_typed<std::decay_t<R>>();
        d.expect_end();
        return v;
    }
}

// What Pool's templates ask of the pool core.
// A pool that is closed or terminated refuses with ValueError ("Pool not running"), or with
// RuntimeError as an executor after shutdown (as Python's do).
// Whether std::size works on T (imap's default chunksize needs it; an endless input has none).
template <class T, class = void>
struct has_size : std::false_type {};
template <class T>
struct has_size<T, std::void_t<decltype(std::size(std::declval<T&>()))>> : std::true_type {};

TaskRef submit(const std::shared_ptr<PoolCore>& core, const char* api, std::string fn, std::string calls,
               std::size_t count, bool executor = false);

struct PoolSettings {
    int processes = 0;
    std::uint64_t maxtasksperchild = 0;  // 0: workers live as long as the pool
    std::string method;                  // "": the default start method
    std::string init_fn, init_args;      // a registered initializer and its encoded arguments
};
std::shared_ptr<PoolCore> make_pool_core(const PoolSettings& settings);
void pool_close(PoolCore& core);
void pool_terminate(PoolCore& core);
bool pool_join(PoolCore& core, double timeout_ms);  // false: the time ran out
int pool_processes(const PoolCore& core);
void pool_shutdown(PoolCore& core, bool wait, bool cancel_pending);  // for ProcessPoolExecutor
void pool_end_workers(PoolCore& core, bool kill);  // terminate_workers / kill_workers
}  // namespace detail

// Python's AsyncResult: the result of apply_async.
namespace detail {
// Hands a failed task's exception to an error callback, in the form it takes: the
// exception_ptr itself (to rethrow), or the exception as a const std::exception& (a task's own
// failure is a RemoteError, whose type_name() and message() tell what the worker threw).
template <class Eb>
void deliver_error(const Eb& error_callback, const TaskRef& t) {
    try {
        t.rethrow();
    } catch (const std::exception& e) {
        if constexpr (std::is_invocable_v<const Eb&, std::exception_ptr>)
            error_callback(std::current_exception());
        else
            error_callback(e);
    } catch (...) {
        if constexpr (std::is_invocable_v<const Eb&, std::exception_ptr>)
            error_callback(std::current_exception());
        else
            error_callback(RemoteError("unknown", "a task failed with something that is not a std::exception"));
    }
}
}  // namespace detail

template <class R>
class AsyncResult {
public:
    AsyncResult() = default;
    explicit AsyncResult(detail::TaskRef t) : t_(std::move(t)) {}

    // The result; TimeoutError if it is not there within timeout seconds; the task's own
    // failure (RemoteError, WorkerLostError, ...) if it failed.
    R get(std::optional<double> timeout = std::nullopt) const {
        if (!t_.wait(detail::timeout_to_ms(timeout, "mp::AsyncResult::get")))
            throw TimeoutError("mp::AsyncResult::get: the result did not come in time");
        if (!t_.ok()) t_.rethrow();
        return detail::decode_first<R>(t_);
    }
    // Waits for the result (true) or the timeout (false). Python's wait() returns None; the
    // bool tells which without a call to ready().
    bool wait(std::optional<double> timeout = std::nullopt) const {
        return t_.wait(detail::timeout_to_ms(timeout, "mp::AsyncResult::wait"));
    }
    // get and wait with a duration (a negative one: no time left, see mp/duration.hpp).
    template <class Rep, class Period>
    R get(std::chrono::duration<Rep, Period> timeout) const { return get(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) const { return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    bool ready() const { return t_.poll(); }
    // ValueError while not ready, as in Python.
    bool successful() const {
        if (!t_.poll()) throw ValueError("mp::AsyncResult::successful: the result is not ready");
        return t_.ok();
    }
    // Python's callback / error_callback: on success callback(result), on failure
    // error_callback(the exception), which takes a std::exception_ptr (to rethrow) or a
    // const std::exception& (read it: a task's own failure is an mp::RemoteError, with the
    // worker's type_name() and message()). They run once, in the thread that collects the
    // result (or at once if it is already there). Returns *this.
    template <class Cb, class Eb = std::nullptr_t>
    const AsyncResult& then(Cb callback, Eb error_callback = nullptr) const {
        detail::TaskRef t = t_;
        t_.on_done([t, callback, error_callback] {
            if (t.ok()) {
                if constexpr (std::is_void_v<R>) {
                    callback();
                } else {
                    callback(detail::decode_first<R>(t));
                }
            } else if constexpr (!std::is_same_v<Eb, std::nullptr_t>) {
                detail::deliver_error(error_callback, t);
            } else {
                (void)error_callback;  // none given (clang: a capture must be used)
            }
        });
        return *this;
    }

private:
    detail::TaskRef t_;
};

// The result of map_async / starmap_async: the results in order once every chunk is done.
template <class R>
class MapResult {
    static_assert(!std::is_void_v<R>, "map of a function without a result: give it one, or use apply_async");

public:
    MapResult() = default;
    MapResult(std::vector<detail::TaskRef> chunks, std::size_t n) : chunks_(std::move(chunks)), n_(n) {}

    // All results in order; the first failure in order is thrown (as Python raises it).
    template <class Rep, class Period>
    std::vector<R> get(std::chrono::duration<Rep, Period> timeout) const { return get(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) const { return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    std::vector<R> get(std::optional<double> timeout = std::nullopt) const {
        if (!wait(timeout)) throw TimeoutError("mp::MapResult::get: the results did not come in time");
        std::vector<R> out;
        out.reserve(n_);
        for (const auto& c : chunks_) {
            if (!c.ok()) c.rethrow();
            detail::decode_results(c, out);
        }
        return out;
    }
    bool wait(std::optional<double> timeout = std::nullopt) const {
        const double ms = detail::timeout_to_ms(timeout, "mp::MapResult::wait");
        const auto end = std::chrono::steady_clock::now() +
                         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double, std::milli>(ms < 0 ? 0 : ms));
        for (const auto& c : chunks_) {
            double left = -1;
            if (ms >= 0) {
                left = std::chrono::duration<double, std::milli>(end - std::chrono::steady_clock::now()).count();
                if (left < 0) left = 0;
            }
            if (!c.wait(left)) return false;
        }
        return true;
    }
    bool ready() const {
        for (const auto& c : chunks_)
            if (!c.poll()) return false;
        return true;
    }
    bool successful() const {
        if (!ready()) throw ValueError("mp::MapResult::successful: the results are not ready");
        for (const auto& c : chunks_)
            if (!c.ok()) return false;
        return true;
    }

private:
    std::vector<detail::TaskRef> chunks_;
    std::size_t n_ = 0;
};

// imap / imap_unordered: results one at a time, in order or as they complete. next(timeout)
// is Python's; a range-for loop waits without limit. A task's failure is thrown when its
// result's turn comes; the iteration can go on past it. With a buffersize (Pool::imap's,
// Python 3.16's), the chunks are submitted as the results are consumed: at most buffersize of
// them are submitted and not yet taken by next(), so a huge input runs in bounded memory.
template <class R>
class IMapIterator {
    static_assert(!std::is_void_v<R>, "imap of a function without a result: give it one, or use apply_async");

public:
    // Submits the next chunk; std::nullopt when the input is exhausted.
    using Feeder = std::function<std::optional<detail::TaskRef>()>;

    IMapIterator(std::vector<detail::TaskRef> chunks, bool ordered) : ordered_(ordered) {
        for (auto& c : chunks) open_.push_back(std::move(c));
    }
    IMapIterator(Feeder feed, std::size_t buffersize, bool ordered)
        : feed_(std::move(feed)), buffersize_(buffersize), ordered_(ordered) {
        top_up();
    }

    // The next result; std::nullopt when there are no more (Python's StopIteration);
    // TimeoutError when it does not come in time. With a buffersize, a pool closed or
    // terminated before the whole input was submitted: the submitted part's results, then the
    // pool's refusal (ValueError), as the rest will never run.
    // With a duration (a negative one: no time left, see mp/duration.hpp).
    template <class Rep, class Period>
    std::optional<R> next(std::chrono::duration<Rep, Period> timeout) { return next(std::optional<double>(mp::detail::nonnegative_seconds(timeout))); }
    std::optional<R> next(std::optional<double> timeout = std::nullopt) {
        if (head_) return std::exchange(head_, std::nullopt);
        while (pos_ >= buffer_.size()) {
            top_up();
            if (open_.empty()) {
                if (refused_) std::rethrow_exception(std::exchange(refused_, nullptr));
                return std::nullopt;
            }
            std::size_t k = 0;
            if (ordered_) {
                if (!open_.front().wait(detail::timeout_to_ms(timeout, "mp::IMapIterator::next")))
                    throw TimeoutError("mp::IMapIterator::next: the next result did not come in time");
            } else {
                const std::vector<detail::TaskRef> refs(open_.begin(), open_.end());
                k = detail::wait_any(refs, detail::timeout_to_ms(timeout, "mp::IMapIterator::next"));
                if (k == refs.size()) throw TimeoutError("mp::IMapIterator::next: the next result did not come in time");
            }
            const detail::TaskRef c = open_[k];
            open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(k));
            buffer_.clear();
            pos_ = 0;
            if (!c.ok()) c.rethrow();
            detail::decode_results(c, buffer_);
        }
        return std::move(buffer_[pos_++]);
    }

    // A range-for loop, or a C++20 view, walks the results with next() (see
    // mp/source_iterator.hpp): a result looked at and not stepped past stays for next().
    using iterator = detail::SourceIterator<IMapIterator, R>;
    iterator begin() { return iterator(this); }
    iterator end() { return iterator(); }

private:
    template <class, class>
    friend class detail::SourceIterator;
    R* source_peek() {
        if (!head_) head_ = next();
        return head_ ? &*head_ : nullptr;
    }
    void source_drop() {
        if (source_peek()) head_.reset();
    }

    // Submits chunks until buffersize are open or the input is done. A refusal (the pool closed
    // or terminated meanwhile) ends the feeding; it is thrown at once when no chunk is open,
    // otherwise once the open chunks are taken.
    void top_up() {
        while (feed_ && open_.size() < buffersize_) {
            std::optional<detail::TaskRef> c;
            try {
                c = feed_();
            } catch (...) {
                feed_ = nullptr;
                if (open_.empty()) throw;
                refused_ = std::current_exception();
                break;
            }
            if (!c) {
                feed_ = nullptr;
                break;
            }
            open_.push_back(std::move(*c));
        }
    }

    Feeder feed_;                         // empty: every chunk is submitted
    std::size_t buffersize_ = 0;
    std::deque<detail::TaskRef> open_;    // submitted, not yet taken, in submission order
    std::exception_ptr refused_;
    std::vector<R> buffer_;
    std::size_t pos_ = 0;
    std::optional<R> head_;               // the result the iterators look at, taken from the rest
    bool ordered_;
};

// What a Pool is made with, beside its size (Python's initializer, initargs, maxtasksperchild
// and context).
class PoolOptions {
public:
    // A registered function that each worker runs once, before its first task.
    template <class F, class... A>
    PoolOptions& initializer(F fn, A&&... args) {
        s_.init_fn = detail::task_name_of(fn, "mp::PoolOptions::initializer");
        s_.init_args = detail::encode_call<F>(std::forward<A>(args)...);
        return *this;
    }
    // A worker exits after this many tasks and a fresh one takes its place (0: never).
    PoolOptions& maxtasksperchild(std::uint64_t n) {
        s_.maxtasksperchild = n;
        return *this;
    }
    PoolOptions& context(const Context& ctx) {
        s_.method = ctx.get_start_method();
        return *this;
    }
    const detail::PoolSettings& settings() const { return s_; }

private:
    detail::PoolSettings s_;
};

class Pool {
public:
    // processes <= 0: cpu_count().
    explicit Pool(int processes = 0, const PoolOptions& options = PoolOptions()) {
        detail::PoolSettings s = options.settings();
        s.processes = processes;
        core_ = detail::make_pool_core(s);
    }
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    Pool(Pool&&) noexcept = default;
    // The pool assigned over is terminated first, as its destructor would.
    Pool& operator=(Pool&& o) noexcept {
        if (this != &o) {
            if (core_) detail::pool_terminate(*core_);
            core_ = std::move(o.core_);
        }
        return *this;
    }
    ~Pool() {
        if (core_) detail::pool_terminate(*core_);
    }

    template <class F, class... A>
    AsyncResult<detail::task_result_t<F>> apply_async(F fn, A&&... args) {
        static_assert(std::is_void_v<detail::task_result_t<F>> || is_encodable_v<std::decay_t<detail::task_result_t<F>>>,
                      "pool task: the function's result must be void or a type the codec can encode");
        return AsyncResult<detail::task_result_t<F>>(
            detail::submit(core(), "mp::Pool::apply_async", detail::task_name_of(fn, "mp::Pool::apply_async"),
                           detail::encode_call<F>(std::forward<A>(args)...), 1));
    }
    template <class F, class... A>
    detail::task_result_t<F> apply(F fn, A&&... args) {
        return apply_async(fn, std::forward<A>(args)...).get();
    }

    // fn(item) for each item, chunksize items per task (0: Python's choice, about four
    // chunks per worker).
    template <class F, class Items>
    MapResult<detail::task_result_t<F>> map_async(F fn, const Items& items, std::size_t chunksize = 0) {
        return MapResult<detail::task_result_t<F>>(chunks_of<false>(fn, items, chunksize, "mp::Pool::map_async"),
                                                   std::size(items));
    }
    template <class F, class Items>
    std::vector<detail::task_result_t<F>> map(F fn, const Items& items, std::size_t chunksize = 0) {
        return map_async(fn, items, chunksize).get();
    }
    // fn(args...) for each tuple (or pair) of arguments.
    template <class F, class Items>
    MapResult<detail::task_result_t<F>> starmap_async(F fn, const Items& items, std::size_t chunksize = 0) {
        return MapResult<detail::task_result_t<F>>(chunks_of<true>(fn, items, chunksize, "mp::Pool::starmap_async"),
                                                   std::size(items));
    }
    template <class F, class Items>
    std::vector<detail::task_result_t<F>> starmap(F fn, const Items& items, std::size_t chunksize = 0) {
        return starmap_async(fn, items, chunksize).get();
    }
    // Results one at a time, in order (imap: chunksize 1 by default, as in Python) or as
    // they complete. buffersize (Python 3.16's), when not 0: at most that many chunks are
    // submitted and not yet taken by the iteration; the rest of the input is encoded and
    // submitted as results are taken. The input is then read during the iteration: an input
    // given as a temporary is moved into the iterator, one given by name must outlive it.
    template <class F, class Items>
    IMapIterator<detail::task_result_t<F>> imap(F fn, Items&& items, std::size_t chunksize = 1, std::size_t buffersize = 0) {
        return imap_of(fn, std::forward<Items>(items), chunksize, buffersize, true, "mp::Pool::imap");
    }
    template <class F, class Items>
    IMapIterator<detail::task_result_t<F>> imap_unordered(F fn, Items&& items, std::size_t chunksize = 1,
                                                          std::size_t buffersize = 0) {
        return imap_of(fn, std::forward<Items>(items), chunksize, buffersize, false, "mp::Pool::imap_unordered");
    }

    void close() { detail::pool_close(*core()); }
    void terminate() { detail::pool_terminate(*core()); }
    // ValueError while the pool is still running (close or terminate it first).
    void join() { detail::pool_join(*core(), -1); }
    // false when the timeout passed first.
    [[nodiscard]] bool join(std::optional<double> timeout_seconds) { return detail::pool_join(*core(), detail::timeout_to_ms(timeout_seconds, "mp::Pool::join")); }
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) { return join(mp::detail::nonnegative_seconds(timeout)); }
    int processes() const { return detail::pool_processes(*core()); }

private:
    const std::shared_ptr<detail::PoolCore>& core() const {
        if (!core_) throw ValueError("mp::Pool: moved from");
        return core_;
    }

    template <class F, class Items>
    IMapIterator<detail::task_result_t<F>> imap_of(F fn, Items&& items, std::size_t chunksize, std::size_t buffersize,
                                                   bool ordered, const char* api) {
        using R = detail::task_result_t<F>;
        static_assert(is_encodable_v<std::decay_t<R>>, "pool task: the function's result must be a type the codec can encode");
        if (chunksize == 0) {
            // Python's map choice (about four chunks per worker), for an input that knows its size.
            if constexpr (detail::has_size<Items>::value) {
                if (buffersize == 0) return IMapIterator<R>(chunks_of<false>(fn, items, 0, api), ordered);
            }
            throw ValueError(std::string(api) + ": chunksize must be >= 1");
        }
        // Without a buffersize, every chunk is submitted before this returns.
        if (buffersize == 0) buffersize = static_cast<std::size_t>(-1);
        using Held = std::remove_reference_t<Items>;
        std::shared_ptr<Held> held;
        if constexpr (std::is_lvalue_reference_v<Items>)
            held = std::shared_ptr<Held>(std::shared_ptr<Held>(), &items);  // the caller's, not owned
        else
            held = std::make_shared<Held>(std::move(items));
        struct Feed {
            std::shared_ptr<detail::PoolCore> core;
            std::shared_ptr<Held> items;
            decltype(std::begin(*items)) at, end;
            std::string name;
            std::size_t chunksize;
            const char* api;
        };
        auto f = std::make_shared<Feed>(Feed{core(), held, std::begin(*held), std::end(*held),
                                             detail::task_name_of(fn, api), chunksize, api});
        return IMapIterator<R>(
            [f]() -> std::optional<detail::TaskRef> {
                if (f->at == f->end) return std::nullopt;
                std::string calls;
                std::size_t count = 0;
                for (; f->at != f->end && count < f->chunksize; ++f->at, ++count) detail::append_call<F>(calls, *f->at);
                return detail::submit(f->core, f->api, f->name, std::move(calls), count);
            },
            buffersize, ordered);
    }

    template <bool Star, class F, class Items>
    std::vector<detail::TaskRef> chunks_of(F fn, const Items& items, std::size_t chunksize, const char* api) {
        static_assert(std::is_void_v<detail::task_result_t<F>> || is_encodable_v<std::decay_t<detail::task_result_t<F>>>,
                      "pool task: the function's result must be void or a type the codec can encode");
        const std::string name = detail::task_name_of(fn, api);
        const std::size_t n = std::size(items);
        if (chunksize == 0) {
            const std::size_t parts = static_cast<std::size_t>(processes()) * 4;
            chunksize = n / parts + (n % parts ? 1 : 0);
            if (chunksize == 0) chunksize = 1;
        }
        std::vector<detail::TaskRef> out;
        std::string calls;
        std::size_t count = 0;
        for (const auto& item : items) {
            if constexpr (Star) {
                std::apply([&](const auto&... a) { detail::append_call<F>(calls, a...); }, item);
            } else {
                detail::append_call<F>(calls, item);
            }
            if (++count == chunksize) {
                out.push_back(detail::submit(core(), api, name, std::move(calls), count));
                calls.clear();
                count = 0;
            }
        }
        if (count) out.push_back(detail::submit(core(), api, name, std::move(calls), count));
        return out;
    }

    std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace mp
