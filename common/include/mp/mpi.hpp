// mp/mpi.hpp - the executor and the pool on the ranks of an MPI job: the C++ counterpart of
// mpi4py.futures.MPIPoolExecutor and mpi4py.util.pool.Pool. Optional: built when Meson finds
// MPI (-Dmpi=auto|enabled|disabled), as the library mp_mpi (dependency 'mp_mpi'); the core
// library never depends on it. This header is standard C++17 and does not include <mpi.h>.
//
//     long long work(int n);  MP_TARGET(work);       // tasks are the same registered functions
//
//     int main(int argc, char** argv) {
//         mp::mpi::bootstrap(argc, argv);            // ranks other than 0 serve tasks here
//         mp::mpi::PoolExecutor ex;                  // every other rank is a worker
//         std::vector<long long> r = ex.map(work, jobs, std::nullopt, 4);
//     }                                              // at exit the worker ranks end
//
//     $ mpiexec -n 4 ./app                           # rank 0 runs main, ranks 1-3 work
//     $ ./app                                        # spawn mode: MPI_Comm_spawn starts workers
//
// How a job starts:
//  - Static mode, `mpiexec -n N ./app`: every rank runs the same program, so every MP_TARGET
//    name resolves on every rank. bootstrap() initialises MPI; on rank 0 it returns and main
//    goes on; on every other rank it serves tasks until rank 0's program ends (or calls
//    finalize()), then finalises MPI and exits with 0, never returning into main. Several
//    executors may exist one after the other or side by side: each takes the worker ranks no
//    other executor holds (max_workers of them, 0: all that are free).
//  - Spawn mode, a program started without mpiexec (a world of one rank): each executor starts
//    its workers with MPI_Comm_spawn, new runs of the same executable that bootstrap() turns into
//    workers, and ends them at shutdown (waiting for them to exit). Open MPI 4.1 built with an
//    external PMIx 4 (Debian 12's) now and then hangs inside MPI_Comm_spawn; see the README.
//
// What crosses: a task's function name and its arguments, encoded by mp's codec, as for the
// local pool; results the same way. An exception in a task comes back as mp::RemoteError with
// its type name and message. mp::SystemExit in a task does not end its rank (that would end the
// whole job): it fails the task with a RemoteError naming mp::SystemExit and its code.
//
// Futures, wait and as_completed are those of mp::futures (one Future type for local and MPI
// tasks), and PoolExecutor derives from mp::futures::Executor, the base it shares with the
// local ProcessPoolExecutor: a function taking `mp::futures::Executor&` works with either.
//
// Progress: as with the local pool there is no hidden thread. The thread that waits (result(),
// wait, as_completed, map, shutdown) sends queued tasks and collects results; each rank holds at
// most Options::pipeline tasks at a time (one running, the next already on its way).
//
// A rank that dies (a task that aborts, crashes or calls exit):
//  - Under mpiexec, Open MPI ends the whole job: the dying rank prints
//        mp::mpi: rank 2 (pid 4242 on node1) is dying of signal 6 in task 'crash'
//    and mpiexec prints "mpirun noticed that process rank 2 with PID 0 on node node1 exited on
//    signal 6 (Aborted)", kills rank 0 and the others, and exits with a non-zero status. Rank 0
//    gets no exception: it is ended too. Nothing hangs.
//  - In spawn mode (and under `mpiexec --enable-recovery`) rank 0 lives on: a rank on rank 0's
//    host is watched by its pid, and its death fails the task it was running with
//    mp::WorkerLostError ("MPI rank 2 (pid 4242 on node1) ended while running this task"); the
//    tasks it had not started go to the other ranks of a static job. Open MPI ends a spawned job
//    whole (and its other ranks may hang until then), so in spawn mode the other workers are given
//    up at once: their running tasks fail with WorkerLostError too, and every queued task and
//    every later submit fails with mp::BrokenProcessPool naming the lost ranks. A rank on another host
//    says it is alive every second; silence for Options::heartbeat_timeout counts as its death.
//
// Threads: one PoolExecutor may be used by several threads; mp makes all its MPI calls under one
// lock (MPI_THREAD_SERIALIZED is enough). If the program initialised MPI itself before
// bootstrap() with less than MPI_THREAD_SERIALIZED, only that thread may use the executors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mp/duration.hpp"
#include "mp/futures.hpp"
#include "mp/pool.hpp"

namespace mp {
namespace mpi {

// The first statement of main() in a program that uses this backend (it also does
// mp::bootstrap's work, so a local pool's spawned child still finds its target). Initialises MPI
// (MPI_Init_thread, asking for MPI_THREAD_SERIALIZED) unless the program already did. Returns on
// rank 0 of a static job and in a program started without mpiexec; on a worker rank it serves
// tasks and then exits the process without returning.
void bootstrap(int argc, char** argv);

// Ends the static worker ranks (they finalise MPI and exit) and finalises MPI if bootstrap()
// initialised it. Runs by itself at exit; after it no executor can be made. Waits for tasks
// that ranks are still running (MPI cannot stop a rank's task).
void finalize();

bool initialized();   // bootstrap() has run and finalize() has not
int rank();           // this process's rank in MPI_COMM_WORLD
int world_size();     // ranks in MPI_COMM_WORLD (1 when started without mpiexec)
std::string processor_name();  // MPI_Get_processor_name: the host, as MPI names it

// One rank that serves an executor.
struct WorkerInfo {
    int rank = -1;     // in MPI_COMM_WORLD (static mode) or in the spawned job
    int pid = 0;
    std::string host;  // MPI_Get_processor_name on that rank
    bool alive = true;
};

class Options {
public:
    enum class Mode { automatic, static_ranks, spawn };
    // automatic (the default): static when MPI_COMM_WORLD has more than one rank, spawn otherwise.
    Options& mode(Mode m) {
        mode_ = m;
        return *this;
    }
    // An MPI_Info key for MPI_Comm_spawn (spawn mode): "host", "hostfile", "wdir", and for Open
    // MPI "map_by" = "slot:OVERSUBSCRIBE" to start more workers than this host has cores.
    Options& spawn_info(std::string key, std::string value) {
        info_[std::move(key)] = std::move(value);
        return *this;
    }
    // Tasks a rank holds at once (>= 1; default 2): 1 sends a task only to an idle rank; 2 has the
    // next one arrive while the rank runs the current one, which hides the round trip for small
    // tasks but can keep a short task waiting behind a long one.
    Options& pipeline(int tasks_per_rank) {
        pipeline_ = tasks_per_rank;
        return *this;
    }
    // A worker on another host (whose pid rank 0 cannot watch) says it is alive every second;
    // after this many seconds of silence it counts as lost (default 30).
    Options& heartbeat_timeout(double seconds) {
        heartbeat_timeout_ = seconds;
        return *this;
    }
    template <class Rep, class Period>
    Options& heartbeat_timeout(std::chrono::duration<Rep, Period> timeout) {
        return heartbeat_timeout(mp::detail::nonnegative_seconds(timeout));
    }
    // Spawn mode: watch the spawned workers by their heartbeat even on this host, as if they ran
    // elsewhere (for hosts whose pids rank 0 cannot see, such as containers sharing a name).
    Options& watch_by_heartbeat(bool on = true) {
        watch_by_heartbeat_ = on;
        return *this;
    }

    Mode get_mode() const { return mode_; }
    const std::map<std::string, std::string>& get_spawn_info() const { return info_; }
    int get_pipeline() const { return pipeline_; }
    double get_heartbeat_timeout() const { return heartbeat_timeout_; }
    bool get_watch_by_heartbeat() const { return watch_by_heartbeat_; }

private:
    Mode mode_ = Mode::automatic;
    std::map<std::string, std::string> info_;
    int pipeline_ = 2;
    double heartbeat_timeout_ = 30.0;
    bool watch_by_heartbeat_ = false;
};

namespace detail {

// An executor's claim on a set of worker ranks (mpi.cpp): its tasks, their queue, and the ranks.
struct Handle;
std::shared_ptr<Handle> make_handle(int max_workers, const Options& options, bool is_pool);
// Pool (is_pool) refuses after close() with ValueError "Pool not running"; an executor after
// shutdown() with RuntimeError, as Python's do.
mp::detail::TaskRef handle_submit(Handle& h, const char* api, std::string fn, std::string calls, std::size_t count);
void handle_shutdown(Handle& h, bool wait, bool cancel_futures);
void handle_close(Handle& h);
void handle_terminate(Handle& h);
bool handle_join(Handle& h, double timeout_ms);
int handle_workers(const Handle& h);
std::vector<WorkerInfo> handle_worker_info(const Handle& h);

}  // namespace detail

class PoolExecutor : public mp::futures::Executor {
public:
    // max_workers <= 0: every free worker rank (static mode), or cpu_count() workers (spawn mode).
    explicit PoolExecutor(int max_workers = 0, const Options& options = Options())
        : h_(detail::make_handle(max_workers, options, false)) {}
    // shutdown(wait = true), as leaving Python's `with MPIPoolExecutor() as ex:` does.
    ~PoolExecutor() override {
        try {
            detail::handle_shutdown(*h_, true, false);
        } catch (...) {  // a destructor must not throw
        }
    }

    // submit and map: mp::futures::Executor's.

    // No more submissions; with wait, returns once every pending future is done (and, in spawn
    // mode, the spawned workers have ended); cancel_futures cancels those no rank has received.
    // The worker ranks of a static job go back to serving the next executor.
    void shutdown(bool wait = true, bool cancel_futures = false) override { detail::handle_shutdown(*h_, wait, cancel_futures); }
    int max_workers() const override { return detail::handle_workers(*h_); }
    // The ranks serving this executor: rank, pid, host.
    std::vector<WorkerInfo> workers() const { return detail::handle_worker_info(*h_); }

    mp::detail::TaskRef submit_encoded(const char* api, std::string fn, std::string calls, std::size_t count) override {
        return detail::handle_submit(*h_, api, std::move(fn), std::move(calls), count);
    }

protected:
    const char* submit_api() const override { return "mp::mpi::PoolExecutor::submit"; }
    const char* map_api() const override { return "mp::mpi::PoolExecutor::map"; }

private:
    std::shared_ptr<detail::Handle> h_;
};

// multiprocessing.Pool's interface on MPI ranks (mpi4py.util.pool's): apply_async, map, starmap,
// imap, imap_unordered, close, join, terminate. MP_TARGET functions, results as with mp::Pool
// (AsyncResult, MapResult, IMapIterator). terminate() fails unfinished tasks at once, but a
// task a rank is running goes on to its end there (MPI cannot stop one rank's work); its
// result is dropped. The destructor terminates, as mp::Pool's does.
class Pool {
public:
    explicit Pool(int processes = 0, const Options& options = Options()) : h_(detail::make_handle(processes, options, true)) {}
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;
    ~Pool() {
        try {
            detail::handle_terminate(*h_);
        } catch (...) {
        }
    }

    template <class F, class... A>
    AsyncResult<mp::detail::task_result_t<F>> apply_async(F fn, A&&... args) {
        static_assert(std::is_void_v<mp::detail::task_result_t<F>> ||
                          is_encodable_v<std::decay_t<mp::detail::task_result_t<F>>>,
                      "pool task: the function's result must be void or a type the codec can encode");
        return AsyncResult<mp::detail::task_result_t<F>>(
            detail::handle_submit(*h_, "mp::mpi::Pool::apply_async", mp::detail::task_name_of(fn, "mp::mpi::Pool::apply_async"),
                                  mp::detail::encode_call<F>(std::forward<A>(args)...), 1));
    }
    template <class F, class... A>
    mp::detail::task_result_t<F> apply(F fn, A&&... args) {
        return apply_async(fn, std::forward<A>(args)...).get();
    }
    // chunksize 0: about four chunks per worker, as Python's Pool chooses.
    template <class F, class Items>
    MapResult<mp::detail::task_result_t<F>> map_async(F fn, const Items& items, std::size_t chunksize = 0) {
        return MapResult<mp::detail::task_result_t<F>>(chunks_of<false>(fn, items, chunksize, "mp::mpi::Pool::map_async"),
                                                       std::size(items));
    }
    template <class F, class Items>
    std::vector<mp::detail::task_result_t<F>> map(F fn, const Items& items, std::size_t chunksize = 0) {
        return map_async(fn, items, chunksize).get();
    }
    template <class F, class Items>
    MapResult<mp::detail::task_result_t<F>> starmap_async(F fn, const Items& items, std::size_t chunksize = 0) {
        return MapResult<mp::detail::task_result_t<F>>(chunks_of<true>(fn, items, chunksize, "mp::mpi::Pool::starmap_async"),
                                                       std::size(items));
    }
    template <class F, class Items>
    std::vector<mp::detail::task_result_t<F>> starmap(F fn, const Items& items, std::size_t chunksize = 0) {
        return starmap_async(fn, items, chunksize).get();
    }
    template <class F, class Items>
    IMapIterator<mp::detail::task_result_t<F>> imap(F fn, const Items& items, std::size_t chunksize = 1) {
        return IMapIterator<mp::detail::task_result_t<F>>(chunks_of<false>(fn, items, chunksize, "mp::mpi::Pool::imap"), true);
    }
    template <class F, class Items>
    IMapIterator<mp::detail::task_result_t<F>> imap_unordered(F fn, const Items& items, std::size_t chunksize = 1) {
        return IMapIterator<mp::detail::task_result_t<F>>(chunks_of<false>(fn, items, chunksize, "mp::mpi::Pool::imap_unordered"),
                                                          false);
    }

    void close() { detail::handle_close(*h_); }
    void terminate() { detail::handle_terminate(*h_); }
    // ValueError while the pool is still running (close or terminate it first).
    void join() { detail::handle_join(*h_, -1); }
    [[nodiscard]] bool join(std::optional<double> timeout_seconds) { return detail::handle_join(*h_, mp::detail::timeout_to_ms(timeout_seconds, "mp::mpi::Pool::join")); }
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) { return join(mp::detail::nonnegative_seconds(timeout)); }
    int processes() const { return detail::handle_workers(*h_); }
    std::vector<WorkerInfo> workers() const { return detail::handle_worker_info(*h_); }

private:
    template <bool Star, class F, class Items>
    std::vector<mp::detail::TaskRef> chunks_of(F fn, const Items& items, std::size_t chunksize, const char* api) {
        static_assert(std::is_void_v<mp::detail::task_result_t<F>> ||
                          is_encodable_v<std::decay_t<mp::detail::task_result_t<F>>>,
                      "pool task: the function's result must be void or a type the codec can encode");
        const std::string name = mp::detail::task_name_of(fn, api);
        const std::size_t n = std::size(items);
        if (chunksize == 0) {
            const std::size_t parts = static_cast<std::size_t>(processes()) * 4;
            chunksize = n / parts + (n % parts ? 1 : 0);
            if (chunksize == 0) chunksize = 1;
        }
        std::vector<mp::detail::TaskRef> out;
        std::string calls;
        std::size_t count = 0;
        for (const auto& item : items) {
            if constexpr (Star) {
                std::apply([&](const auto&... a) { mp::detail::append_call<F>(calls, a...); }, item);
            } else {
                mp::detail::append_call<F>(calls, item);
            }
            if (++count == chunksize) {
                out.push_back(detail::handle_submit(*h_, api, name, std::move(calls), count));
                calls.clear();
                count = 0;
            }
        }
        if (count) out.push_back(detail::handle_submit(*h_, api, name, std::move(calls), count));
        return out;
    }

    std::shared_ptr<detail::Handle> h_;
};

}  // namespace mpi
}  // namespace mp
