// tests/test_mpi.cpp - mp_mpi_tests: the MPI backend (mp/mpi.hpp). Its own program, because it
// runs under MPI: `mpirun -n 2|4 mp_mpi_tests` tests static mode (rank 0 runs GoogleTest, the
// other ranks serve tasks), and `mp_mpi_tests` started alone tests spawn mode (each executor
// spawns its workers). The same bodies run in both: the fixture makes the executor of the mode the
// program was started in. What a dying rank does to a static job is tested by starting a job of
// its own (mpirun with mp_mpi_test_helper, from rank 0 of the 2-rank run) and reading what it
// printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"
#include "mp/mpi.hpp"
#include "sys/process.hpp"

#include <unistd.h>

namespace fu = mp::futures;

// ---- tasks (registered on every rank: every rank runs this program) -----------------------------

static int square(int x) { return x * x; }
MP_TARGET(square);

static std::string label(std::string s, int n) { return s + ":" + std::to_string(n); }
MP_TARGET(label);

static long long add(int a, long long b) { return a + b; }
MP_TARGET(add);

static int throws_runtime(int x) {
    if (x % 5 == 3) throw std::runtime_error("boom " + std::to_string(x));
    return x;
}
MP_TARGET(throws_runtime);

static int exits_task(int code) { throw mp::SystemExit(code); }
MP_TARGET(exits_task);

static int my_pid(int) { return mp::getpid(); }
MP_TARGET(my_pid);

// Blocks until the file `path` exists (the test's gate), at most 60 s.
static int wait_gate(std::string path, int v) {
    for (int i = 0; i < 12000; ++i) {
        if (std::ifstream(path)) return v;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return -1;
}
MP_TARGET(wait_gate);

static std::uint64_t fnv(const std::string& s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}
static std::pair<std::uint64_t, std::uint64_t> digest(std::string s) { return {s.size(), fnv(s)}; }
MP_TARGET(digest);

static std::string reversed(std::string s) {
    std::reverse(s.begin(), s.end());
    return s;
}
MP_TARGET(reversed);

static int abort_rank(int) {
    std::abort();
}
MP_TARGET(abort_rank);

static int no_op(int x) { return x; }  // deliberately not registered

namespace {

std::string big_string(std::size_t n) {
    std::string s(n, '\0');
    std::uint32_t x = 12345;
    for (std::size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        s[i] = static_cast<char>(x >> 24);
    }
    return s;
}

std::string gate_path() {
    static int n = 0;
    return "/tmp/mp_mpi_gate_" + std::to_string(::getpid()) + "_" + std::to_string(++n);
}
// Every gate of the run. They are removed only after mp::mpi::finalize(), which waits for the
// ranks still running a terminated pool's tasks: a gate removed at the end of its test could
// leave such a rank waiting on it, and the next test's work stuck behind it.
std::vector<std::string>& all_gates() {
    static std::vector<std::string> v;
    return v;
}
void open_gate(const std::string& p) { std::ofstream(p) << "go"; }

bool spawn_mode() { return mp::mpi::world_size() == 1; }

// The tests that start MPI jobs of their own (mpirun from rank 0, with this job's variables
// left out) run in the 2-rank run only: once is enough, and the spawn-mode run is kept short
// (see the README on Open MPI's spawn hangs).
bool job_starter() { return mp::mpi::world_size() == 2; }

// Local pools in an MPI process use spawn: the MPI library runs threads of its own.
mp::PoolOptions local_options() { return mp::PoolOptions().context(mp::get_context("spawn")); }

// The options of the mode this program runs in: spawn mode starts two workers (oversubscribed:
// this machine may have fewer cores than processes).
mp::mpi::Options options() { return mp::mpi::Options().spawn_info("map_by", "slot:OVERSUBSCRIBE"); }
int worker_count() { return spawn_mode() ? 2 : mp::mpi::world_size() - 1; }

class Mpi : public ::testing::Test {
protected:
    // A hang fails; a slow, shared machine does not: every test takes about a second, and Open
    // MPI's occasional MPI_Comm_spawn hang (README) is retried by .ci/test, so the limit need not
    // cost more than 2 minutes when it happens.
    void SetUp() override { alarm(120); }
    void TearDown() override { alarm(0); }
    std::string gate() {
        all_gates().push_back(gate_path());
        return all_gates().back();
    }
};

// A function written for "an executor", local or MPI.
std::vector<int> squares_on(fu::Executor& ex, int n, std::size_t chunksize) {
    std::vector<int> items(static_cast<std::size_t>(n));
    std::iota(items.begin(), items.end(), 0);
    return ex.map(square, items, 60.0, chunksize);
}

}  // namespace

TEST_F(Mpi, WorkersAreOtherRanksOrSpawnedProcesses) {
    mp::mpi::PoolExecutor ex(0, options());
    EXPECT_EQ(ex.max_workers(), worker_count());
    const auto ws = ex.workers();
    ASSERT_EQ(static_cast<int>(ws.size()), worker_count());
    std::set<int> pids;
    for (const auto& w : ws) {
        EXPECT_NE(w.pid, mp::getpid());
        EXPECT_FALSE(w.host.empty());
        EXPECT_TRUE(w.alive);
        pids.insert(w.pid);
        if (!spawn_mode()) {
            EXPECT_GE(w.rank, 1);
        }
    }
    EXPECT_EQ(pids.size(), ws.size());
    // Tasks run there, not here.
    std::vector<int> got = ex.map(my_pid, std::vector<int>(50, 0));
    for (int p : got) EXPECT_TRUE(pids.count(p)) << p;
}

TEST_F(Mpi, SubmitAndMapEqualALocalRun) {
    std::vector<int> items(300);
    std::iota(items.begin(), items.end(), -100);
    std::vector<int> local_map;
    std::vector<std::string> local_labels;
    {
        fu::ProcessPoolExecutor local(2, local_options());
        local_map = local.map(square, items);
        for (int i = 0; i < 20; ++i) local_labels.push_back(local.submit(label, "x", i).result(30.0));
    }
    mp::mpi::PoolExecutor ex(0, options());
    EXPECT_EQ(ex.map(square, items), local_map);
    std::vector<fu::Future<std::string>> fs;
    for (int i = 0; i < 20; ++i) fs.push_back(ex.submit(label, std::string("x"), i));
    std::vector<std::string> labels;
    for (auto& f : fs) labels.push_back(f.result(30.0));
    EXPECT_EQ(labels, local_labels);
    EXPECT_EQ(ex.submit(add, 2, 40000000000LL).result(), 40000000002LL);
}

TEST_F(Mpi, OneFunctionTakesEitherExecutor) {
    fu::ProcessPoolExecutor local(2, local_options());
    mp::mpi::PoolExecutor remote(0, options());
    EXPECT_EQ(squares_on(local, 100, 7), squares_on(remote, 100, 7));
}

TEST_F(Mpi, MapWithChunksizeAndBuffersize) {
    mp::mpi::PoolExecutor ex(0, options());
    std::vector<int> items(257);
    std::iota(items.begin(), items.end(), 0);
    std::vector<int> want;
    for (int x : items) want.push_back(x * x);
    for (std::size_t chunk : {1, 2, 7, 64, 1000})
        for (std::size_t buffer : {0, 1, 2, 5}) EXPECT_EQ(ex.map(square, items, 60.0, chunk, buffer), want) << chunk << "/" << buffer;
    EXPECT_THROW(ex.map(square, items, 60.0, 0), mp::ValueError);
    EXPECT_TRUE(ex.map(square, std::vector<int>{}).empty());
}

// buffersize b: chunk k is submitted only once chunk k - b has been collected.
class Recording : public fu::Executor {
public:
    explicit Recording(fu::Executor& inner) : inner_(inner) {}
    void shutdown(bool wait, bool cancel) override { inner_.shutdown(wait, cancel); }
    int max_workers() const override { return inner_.max_workers(); }
    mp::detail::TaskRef submit_encoded(const char* api, std::string fn, std::string calls, std::size_t count) override {
        std::size_t in_flight = 0;
        for (const auto& r : refs)
            if (!r.ready()) ++in_flight;
        most_in_flight = std::max(most_in_flight, in_flight);
        if (refs.size() >= window) ready_before_submit.push_back(refs[refs.size() - window].ready());
        refs.push_back(inner_.submit_encoded(api, std::move(fn), std::move(calls), count));
        return refs.back();
    }
    std::size_t window = 1;
    std::vector<mp::detail::TaskRef> refs;
    std::vector<bool> ready_before_submit;
    std::size_t most_in_flight = 0;

protected:
    const char* submit_api() const override { return "Recording::submit"; }
    const char* map_api() const override { return "Recording::map"; }

private:
    fu::Executor& inner_;
};

TEST_F(Mpi, BuffersizeBoundsTheChunksInFlight) {
    mp::mpi::PoolExecutor ex(0, options());
    for (std::size_t b : {1, 3}) {
        Recording rec(ex);
        rec.window = b;
        std::vector<int> items(40);
        std::iota(items.begin(), items.end(), 0);
        const std::vector<int> got = rec.map(square, items, 60.0, 2, b);
        ASSERT_EQ(got.size(), items.size());
        EXPECT_EQ(got[39], 39 * 39);
        EXPECT_EQ(rec.refs.size(), 20u);
        ASSERT_EQ(rec.ready_before_submit.size(), 20u - b);
        for (bool r : rec.ready_before_submit) EXPECT_TRUE(r);
        EXPECT_LE(rec.most_in_flight, b);
    }
}

TEST_F(Mpi, ExceptionsComeBackAsRemoteError) {
    mp::mpi::PoolExecutor ex(0, options());
    try {
        ex.submit(throws_runtime, 3).result(30.0);
        FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_EQ(e.type_name(), "std::runtime_error");
        EXPECT_EQ(e.message(), "boom 3");
    }
    auto f = ex.submit(throws_runtime, 8);
    std::exception_ptr err = f.exception(30.0);
    ASSERT_TRUE(err);
    EXPECT_THROW(std::rethrow_exception(err), mp::RemoteError);
    std::vector<int> items{0, 1, 2, 3, 4};
    EXPECT_THROW(ex.map(throws_runtime, items), mp::RemoteError);
    // A task's SystemExit does not end its rank.
    try {
        ex.submit(exits_task, 7).result(30.0);
        FAIL() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_EQ(e.type_name(), "mp::SystemExit");
        EXPECT_NE(e.message().find("SystemExit(7)"), std::string::npos) << e.message();
    }
    EXPECT_THROW(ex.submit(no_op, 1), mp::ValueError);  // not registered: refused here, by name
    // The executor goes on.
    EXPECT_EQ(ex.submit(square, 9).result(30.0), 81);
}

TEST_F(Mpi, ResultTimeoutLeavesTheFutureRunning) {
    mp::mpi::PoolExecutor ex(0, options());
    const std::string g = gate();
    auto f = ex.submit(wait_gate, g, 5);
    EXPECT_THROW(f.result(0.05), mp::TimeoutError);
    EXPECT_FALSE(f.done());
    open_gate(g);
    EXPECT_EQ(f.result(60.0), 5);
    EXPECT_TRUE(f.done());
}

TEST_F(Mpi, ShutdownWithPendingWorkCancelsWhatNoRankHas) {
    const int pipeline = 2;
    mp::mpi::PoolExecutor ex(0, options().pipeline(pipeline));
    const int workers = ex.max_workers();
    const std::string g = gate();
    std::vector<fu::Future<int>> fs;
    const int n = workers * pipeline + 10;
    for (int i = 0; i < n; ++i) fs.push_back(ex.submit(wait_gate, g, i));
    ex.shutdown(false, true);
    EXPECT_THROW(ex.submit(square, 1), mp::RuntimeError);
    int cancelled = 0;
    for (auto& f : fs) cancelled += f.cancelled() ? 1 : 0;
    EXPECT_EQ(cancelled, 10);  // all but what the ranks hold
    open_gate(g);
    for (int i = 0; i < n; ++i) {
        if (fs[static_cast<std::size_t>(i)].cancelled()) {
            EXPECT_THROW(fs[static_cast<std::size_t>(i)].result(), mp::CancelledError);
        } else {
            EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(60.0), i);
        }
    }
    ex.shutdown(true);
}

TEST_F(Mpi, ShutdownWaitFinishesPendingWork) {
    std::vector<fu::Future<int>> fs;
    const std::string g = gate();
    {
        mp::mpi::PoolExecutor ex(0, options());
        for (int i = 0; i < 30; ++i) fs.push_back(ex.submit(wait_gate, g, i));
        open_gate(g);
        ex.shutdown(true);
        for (auto& f : fs) EXPECT_TRUE(f.done());
    }
    for (int i = 0; i < 30; ++i) EXPECT_EQ(fs[static_cast<std::size_t>(i)].result(0.0), i);
    // The ranks serve the next executor (static mode), or new ones are spawned.
    mp::mpi::PoolExecutor again(0, options());
    EXPECT_EQ(again.submit(square, 12).result(30.0), 144);
}

TEST_F(Mpi, ManySmallTasks) {
    mp::mpi::PoolExecutor ex(0, options());
    const int n = 10000;
    std::vector<fu::Future<int>> fs;
    fs.reserve(n);
    for (int i = 0; i < n; ++i) fs.push_back(ex.submit(square, i % 1000));
    long long sum = 0;
    for (const auto& f : fs) sum += f.result(60.0);
    long long want = 0;
    for (int i = 0; i < n; ++i) want += (i % 1000) * (i % 1000);
    EXPECT_EQ(sum, want);
    // as_completed looks at every open future for each one it yields: fewer of them here.
    fs.resize(2000);
    for (int i = 0; i < 2000; ++i) fs[static_cast<std::size_t>(i)] = ex.submit(square, i);
    int seen = 0;
    long long sum2 = 0;
    for (const auto& f : fu::as_completed(fs, 120.0)) {
        sum2 += f.result();
        ++seen;
    }
    EXPECT_EQ(seen, 2000);
    EXPECT_EQ(sum2, 1999LL * 2000 * 3999 / 6);
    auto first = fu::wait(std::vector<fu::Future<int>>{ex.submit(square, 3)}, 30.0, fu::ReturnWhen::FIRST_COMPLETED);
    EXPECT_EQ(first.done.size(), 1u);
}

TEST_F(Mpi, LargeArgumentsAndResults64MiB) {
    mp::mpi::PoolExecutor ex(0, options());
    const std::string big = big_string(std::size_t(64) << 20);
    const auto want = std::make_pair(static_cast<std::uint64_t>(big.size()), fnv(big));
    EXPECT_EQ(ex.submit(digest, big).result(120.0), want);
    std::string back = ex.submit(reversed, big).result(120.0);
    ASSERT_EQ(back.size(), big.size());
    EXPECT_TRUE(std::equal(back.rbegin(), back.rend(), big.begin()));
    // Several at once, with small tasks between them.
    std::vector<fu::Future<std::pair<std::uint64_t, std::uint64_t>>> fs;
    std::vector<fu::Future<int>> small;
    for (int i = 0; i < 3; ++i) {
        fs.push_back(ex.submit(digest, big));
        small.push_back(ex.submit(square, i));
    }
    for (auto& f : fs) EXPECT_EQ(f.result(120.0), want);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(small[static_cast<std::size_t>(i)].result(30.0), i * i);
}

TEST_F(Mpi, ThreadsShareOneExecutor) {
    mp::mpi::PoolExecutor ex(0, options());
    std::atomic<int> wrong{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 300; ++i)
                if (ex.submit(square, t * 1000 + i).result(60.0) != (t * 1000 + i) * (t * 1000 + i)) ++wrong;
        });
    for (auto& t : ts) t.join();
    EXPECT_EQ(wrong.load(), 0);
}

TEST_F(Mpi, PoolMapStarmapImapApply) {
    mp::mpi::Pool pool(0, options());
    EXPECT_EQ(pool.processes(), worker_count());
    std::vector<int> items(100);
    std::iota(items.begin(), items.end(), 0);
    std::vector<int> want;
    for (int x : items) want.push_back(x * x);
    EXPECT_EQ(pool.map(square, items), want);
    EXPECT_EQ(pool.map(square, items, 9), want);
    std::vector<std::pair<int, long long>> pairs{{1, 2}, {3, 4}, {5, 6}};
    EXPECT_EQ(pool.starmap(add, pairs), (std::vector<long long>{3, 7, 11}));
    std::vector<int> ordered;
    for (int v : pool.imap(square, items)) ordered.push_back(v);
    EXPECT_EQ(ordered, want);
    std::vector<int> unordered;
    for (int v : pool.imap_unordered(square, items, 4)) unordered.push_back(v);
    std::sort(unordered.begin(), unordered.end());
    EXPECT_EQ(unordered, want);
    int from_callback = 0;
    auto a = pool.apply_async(square, 11);
    a.then([&](int v) { from_callback = v; });
    EXPECT_EQ(a.get(30.0), 121);
    EXPECT_EQ(from_callback, 121);
    EXPECT_EQ(pool.apply(label, std::string("p"), 2), "p:2");
    EXPECT_THROW(pool.map(throws_runtime, items), mp::RemoteError);
    EXPECT_THROW(pool.join(), mp::ValueError);  // still running
    pool.close();
    EXPECT_THROW(pool.apply(square, 1), mp::ValueError);
    pool.join();
}

TEST_F(Mpi, PoolTerminateFailsUnfinishedTasks) {
    const std::string g = gate();
    std::vector<mp::AsyncResult<int>> rs;
    {
        mp::mpi::Pool pool(0, options());
        for (int i = 0; i < 10; ++i) rs.push_back(pool.apply_async(wait_gate, g, i));
        pool.terminate();
        for (auto& r : rs) EXPECT_THROW(r.get(5.0), mp::ProcessError);
        open_gate(g);  // the ranks finish what they run; the results are dropped
    }
    // The ranks are free for the next pool once they come back.
    mp::mpi::Pool next(0, options());
    EXPECT_EQ(next.apply(square, 5), 25);
}

TEST_F(Mpi, ExecutorsShareTheJobsRanks) {
    if (spawn_mode()) GTEST_SKIP() << "spawn mode: every executor has workers of its own";
    if (mp::mpi::world_size() < 3) {
        mp::mpi::PoolExecutor one(0, options());
        EXPECT_THROW(mp::mpi::PoolExecutor(0, options()), mp::RuntimeError);
        return;
    }
    mp::mpi::PoolExecutor one(1, options());
    mp::mpi::PoolExecutor rest(0, options());
    EXPECT_EQ(one.max_workers(), 1);
    EXPECT_EQ(rest.max_workers(), mp::mpi::world_size() - 2);
    EXPECT_NE(one.submit(my_pid, 0).result(30.0), rest.submit(my_pid, 0).result(30.0));
    EXPECT_THROW(mp::mpi::PoolExecutor(0, options()), mp::RuntimeError);
}

// ---- a rank that dies ---------------------------------------------------------------------------

namespace {

// Runs `mpirun -n ranks mp_mpi_test_helper mode` as a job of its own: the variables of the job
// this test runs in are left out, so mpirun does not take itself for one of its ranks.
mp::subprocess::CompletedProcess run_job(int ranks, const std::string& mode, const std::string& program = "mp_mpi_test_helper") {
    std::map<std::string, std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string kv(*e);
        const auto eq = kv.find('=');
        const std::string k = kv.substr(0, eq);
        if (k.rfind("OMPI_", 0) == 0 || k.rfind("PMIX_", 0) == 0 || k.rfind("OPAL_", 0) == 0 || k.rfind("PRTE_", 0) == 0 ||
            k.rfind("ORTE_", 0) == 0 || k == "HYDRA_HOST_FILE")
            continue;
        env[k] = eq == std::string::npos ? "" : kv.substr(eq + 1);
    }
    std::string self;
    mp::sys::current_executable(self);
    const std::string helper = self.substr(0, self.find_last_of('/') + 1) + program;
    std::vector<std::string> args{"mpirun", "--allow-run-as-root", "--oversubscribe", "-n", std::to_string(ranks), helper};
    if (!mode.empty()) args.push_back(mode);
    return mp::subprocess::run(args,
                               mp::subprocess::Options().std_out(mp::subprocess::PIPE).std_err(mp::subprocess::STDOUT).env(env).timeout(90));
}

// If rank 0 noticed the death before mpirun ended it, it got WorkerLostError naming the rank.
void expect_rank0_saw_at_most_a_lost_worker(const std::string& out) {
    EXPECT_EQ(out.find("rank 0 got a result"), std::string::npos) << out;
    EXPECT_EQ(out.find("rank 0 caught something else"), std::string::npos) << out;
    const auto caught = out.find("rank 0 caught WorkerLostError: ");
    if (caught != std::string::npos) {
        EXPECT_NE(out.find("MPI rank 1 (pid ", caught), std::string::npos) << out;
    }
}

}  // namespace

TEST_F(Mpi, TaskThatAbortsItsRankEndsTheStaticJobWithAnErrorNamingTheRank) {
    if (!job_starter()) GTEST_SKIP() << "started once, from rank 0 of the 2-rank run";
    auto r = run_job(2, "abort");
    const std::string out = r.std_out;
    EXPECT_NE(r.returncode, 0) << out;
    // mp's own line, from the dying rank, and Open MPI's, from mpirun.
    EXPECT_NE(out.find("mp::mpi: rank 1 (pid "), std::string::npos) << out;
    EXPECT_NE(out.find("in task 'abort_rank' is dying of signal 6"), std::string::npos) << out;
    EXPECT_NE(out.find("process rank 1"), std::string::npos) << out;
    expect_rank0_saw_at_most_a_lost_worker(out);
}

TEST_F(Mpi, TaskThatExitsItsRankEndsTheStaticJobWithAnErrorNamingTheRank) {
    if (!job_starter()) GTEST_SKIP() << "started once, from rank 0 of the 2-rank run";
    auto r = run_job(2, "exit");
    const std::string out = r.std_out;
    EXPECT_NE(r.returncode, 0) << out;
    EXPECT_NE(out.find("mp::mpi: rank 1 (pid "), std::string::npos) << out;
    EXPECT_NE(out.find("in task 'exit_rank' called exit()"), std::string::npos) << out;
    EXPECT_NE(out.find("[[") , std::string::npos) << out;  // mpirun names the process: [[job,1],1]
    expect_rank0_saw_at_most_a_lost_worker(out);
}

TEST_F(Mpi, SampleT30RunsTheSameWorkLocallyAndOnFourRanks) {
    if (!job_starter()) GTEST_SKIP() << "started once, from rank 0 of the 2-rank run";
    std::string self;
    mp::sys::current_executable(self);
    if (!std::ifstream(self.substr(0, self.find_last_of('/') + 1) + "../samples/t30_mpi"))
        GTEST_SKIP() << "the samples are not built (-Dsamples=false)";
    auto r = run_job(4, "", "../samples/t30_mpi");
    const std::string out = r.std_out;
    ASSERT_EQ(r.returncode, 0) << out;
    EXPECT_NE(out.find("rank 0 of 4 on "), std::string::npos) << out;
    const auto checksum = [&](const std::string& what) {
        const auto at = out.find(what);
        if (at == std::string::npos) return std::string("missing: ") + what;
        const auto c = out.find("(checksum ", at);
        return out.substr(c, out.find(')', c) - c);
    };
    EXPECT_EQ(checksum("local pool, "), checksum("serial: "));
    EXPECT_EQ(checksum("MPI ranks, 3 workers: "), checksum("serial: "));
    for (int rank = 1; rank <= 3; ++rank) EXPECT_NE(out.find("  worker: rank " + std::to_string(rank) + " on "), std::string::npos) << out;
    EXPECT_NE(out.find("3 of 3 tasks ran outside rank 0"), std::string::npos) << out;
}

TEST_F(Mpi, SpawnedWorkerThatDiesFailsItsTaskAndNeverHangs) {
    if (!spawn_mode()) GTEST_SKIP() << "spawn mode only: under mpirun a dead rank ends the whole job";
    for (bool heartbeat : {false, true}) {
        SCOPED_TRACE(heartbeat ? "watched by heartbeat" : "watched by pid");
        auto o = options();
        if (heartbeat) o.watch_by_heartbeat().heartbeat_timeout(5);
        mp::mpi::PoolExecutor ex(2, o);
        EXPECT_EQ(ex.submit(square, 4).result(30.0), 16);
        auto doomed = ex.submit(abort_rank, 0);
        try {
            doomed.result(60.0);
            FAIL() << "no exception";
        } catch (const mp::WorkerLostError& e) {
            EXPECT_NE(std::string(e.what()).find("MPI rank "), std::string::npos) << e.what();
        }
        // Open MPI ends the spawned job whole: later tasks run on a survivor, or fail with
        // BrokenProcessPool naming the lost ranks; none waits for ever.
        for (int i = 0; i < 5; ++i) {
            try {
                auto f = ex.submit(square, i);
                EXPECT_EQ(f.result(60.0), i * i);
            } catch (const mp::BrokenProcessPool& e) {
                EXPECT_NE(std::string(e.what()).find("MPI rank "), std::string::npos) << e.what();
            } catch (const mp::WorkerLostError& e) {
                EXPECT_NE(std::string(e.what()).find("MPI rank "), std::string::npos) << e.what();
            }
        }
        ex.shutdown(true);
    }
}

namespace {
char g_running[256] = "?";
class NameRecorder : public ::testing::EmptyTestEventListener {
    void OnTestStart(const ::testing::TestInfo& info) override {
        std::snprintf(g_running, sizeof g_running, "%s.%s", info.test_suite_name(), info.name());
    }
};
}  // namespace

int main(int argc, char** argv) {
    mp::mpi::bootstrap(argc, argv);  // worker ranks serve here and never return
    ::testing::InitGoogleTest(&argc, argv);
    ::testing::UnitTest::GetInstance()->listeners().Append(new NameRecorder);
    std::signal(SIGALRM, [](int) {
        const char head[] = "\n*** TIMEOUT: ";
        const char tail[] = " ran past its time limit ***\n";
        (void)!::write(2, head, sizeof head - 1);
        (void)!::write(2, g_running, std::strlen(g_running));
        (void)!::write(2, tail, sizeof tail - 1);
        std::_Exit(3);
    });
    const int rc = RUN_ALL_TESTS();
    mp::mpi::finalize();
    for (auto& p : all_gates()) std::remove(p.c_str());
    return rc;
}
