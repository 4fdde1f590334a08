// bench/bench_mpi.cpp - mp_mpi_bench, the mpi.* metrics: mp's MPI executor against bare MPI (and,
// in bench/run, mpi4py.futures). Runs as a static job: `mpirun -n 4 mp_mpi_bench [prefix ...]`
// (rank 0 measures, ranks 1-3 are the workers), one JSON object per metric on rank 0's stdout.
//   mpi.submit    small tasks per second on 3 worker ranks (higher is better)
//     cpp: PoolExecutor::submit(echo_int, i) for a batch, then every result()
//     raw: the same request/response with MPI_Send/MPI_Recv of one int, each worker holding
//          as many requests as mp's pipeline (2), answered by a bare loop on the worker
//   mpi.map_100k  us per item of a map of 100000 ints (lower is better)
//     cpp: mp::mpi::Pool::map(square_int, items) on 3 worker ranks, the default chunksize
//     raw: mp's local mp::Pool::map with cpu_count() workers (spawn context), the same call,
//          for comparison: this column is not a floor
//   mpi.bulk      MB/s moving a 64 MiB argument to a worker and a small result back (higher)
//     cpp: PoolExecutor::submit(byte_count, big).result(): the string encoded, sent, decoded
//     raw: MPI_Send of the same 64 MiB from a buffer, MPI_Recv into a buffer, a 4-byte reply
// The raw sides run on the same worker ranks: a task (raw_server) turns the rank into a bare
// MPI loop on MPI_COMM_WORLD until rank 0 tells it to stop, so both sides take turns sample by
// sample in one run. No CPU pinning: four busy ranks on one CPU would measure the scheduler.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "mp/mp.hpp"
#include "mp/mpi.hpp"

namespace {

int echo_int(int x) { return x; }
MP_TARGET(echo_int);

int square_int(int x) { return x * x; }
MP_TARGET(square_int);

long long byte_count(const std::string& s) { return static_cast<long long>(s.size()); }
MP_TARGET(byte_count);

constexpr int kReq = 11, kRep = 12, kStop = 13, kReady = 14;
constexpr int kBulk = 64 << 20;

// A bare MPI server on a worker rank: answers each int request with the int, each bulk message
// with 4 bytes, until a stop. Runs as an mp task, so the rank returns to mp's loop afterwards.
int raw_server(int bulk) {
    std::vector<char> buf(bulk ? static_cast<std::size_t>(kBulk) : 0);
    const char ready = 1;
    MPI_Send(&ready, 1, MPI_CHAR, 0, kReady, MPI_COMM_WORLD);
    for (;;) {
        MPI_Status st;
        if (bulk) {
            MPI_Probe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            if (st.MPI_TAG == kStop) {
                MPI_Recv(nullptr, 0, MPI_CHAR, 0, kStop, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                return 0;
            }
            MPI_Recv(buf.data(), kBulk, MPI_CHAR, 0, kReq, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            const int n = kBulk;
            MPI_Send(&n, 1, MPI_INT, 0, kRep, MPI_COMM_WORLD);
        } else {
            int x = 0;
            MPI_Recv(&x, 1, MPI_INT, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
            if (st.MPI_TAG == kStop) return 0;
            MPI_Send(&x, 1, MPI_INT, 0, kRep, MPI_COMM_WORLD);
        }
    }
}
MP_TARGET(raw_server);

using Clock = std::chrono::steady_clock;
double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? -1 : v[v.size() / 2];
}

// Puts the executor's worker ranks into raw_server, runs body, and brings them back.
double with_raw_servers(mp::mpi::PoolExecutor& ex, int bulk, const std::function<double(const std::vector<int>&)>& body) {
    std::vector<int> ranks;
    for (const auto& w : ex.workers()) ranks.push_back(w.rank);
    std::vector<mp::futures::Future<int>> servers;
    for (std::size_t i = 0; i < ranks.size(); ++i) servers.push_back(ex.submit(raw_server, bulk));
    for (std::size_t i = 0; i < ranks.size(); ++i) {
        char r;
        MPI_Recv(&r, 1, MPI_CHAR, MPI_ANY_SOURCE, kReady, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
    const double v = body(ranks);
    for (int r : ranks) MPI_Send(nullptr, 0, MPI_INT, r, kStop, MPI_COMM_WORLD);
    for (auto& f : servers) f.result();
    return v;
}

void print(const char* id, const char* unit, const char* better, double cpp, double raw) {
    std::printf("{\"id\": \"%s\", \"unit\": \"%s\", \"better\": \"%s\", \"cpp\": %.3f, \"raw\": %.3f}\n", id, unit, better, cpp, raw);
    std::fflush(stdout);
}

void submit_metric(mp::mpi::PoolExecutor& ex, int scale) {
    const int batch = 20000 / scale;
    const int samples = std::max(3, 9 / scale);
    std::vector<double> ours, raw;
    std::vector<mp::futures::Future<int>> fs;
    fs.reserve(static_cast<std::size_t>(batch));
    for (int s = 0; s < samples + 1; ++s) {
        fs.clear();
        auto t0 = Clock::now();
        for (int i = 0; i < batch; ++i) fs.push_back(ex.submit(echo_int, i));
        for (int i = 0; i < batch; ++i)
            if (fs[static_cast<std::size_t>(i)].result() != i) std::abort();
        const double mine = us_since(t0);
        const double theirs = with_raw_servers(ex, 0, [&](const std::vector<int>& ranks) {
            auto t1 = Clock::now();
            int sent = 0, got = 0;
            for (int depth = 0; depth < 2; ++depth)
                for (int r : ranks)
                    if (sent < batch) {
                        MPI_Send(&sent, 1, MPI_INT, r, kReq, MPI_COMM_WORLD);
                        ++sent;
                    }
            while (got < batch) {
                int x;
                MPI_Status st;
                MPI_Recv(&x, 1, MPI_INT, MPI_ANY_SOURCE, kRep, MPI_COMM_WORLD, &st);
                ++got;
                if (sent < batch) {
                    MPI_Send(&sent, 1, MPI_INT, st.MPI_SOURCE, kReq, MPI_COMM_WORLD);
                    ++sent;
                }
            }
            return us_since(t1);
        });
        if (s == 0) continue;  // warm-up
        ours.push_back(batch / (mine / 1e6));
        raw.push_back(batch / (theirs / 1e6));
    }
    print("mpi.submit", "tasks/s", "higher", median(ours), median(raw));
}

void map_metric(int scale) {
    const int n = 100000 / scale;
    std::vector<int> items(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) items[static_cast<std::size_t>(i)] = i % 32768;
    const int samples = std::max(3, 7 / scale);
    std::vector<double> ours, local;
    mp::mpi::Pool pool;
    mp::Pool lp(mp::cpu_count(), mp::PoolOptions().context(mp::get_context("spawn")));
    pool.map(square_int, items);
    lp.map(square_int, items);
    for (int s = 0; s < samples; ++s) {
        auto t0 = Clock::now();
        auto a = pool.map(square_int, items);
        ours.push_back(us_since(t0) / n);
        auto t1 = Clock::now();
        auto b = lp.map(square_int, items);
        local.push_back(us_since(t1) / n);
        if (a != b) std::abort();
    }
    pool.close();
    pool.join();
    print("mpi.map_100k", "us", "lower", median(ours), median(local));
}

void bulk_metric(mp::mpi::PoolExecutor& ex, int scale) {
    const int samples = std::max(3, 9 / scale);
    std::string big(static_cast<std::size_t>(kBulk), 'x');
    std::vector<double> ours, raw;
    for (int s = 0; s < samples + 1; ++s) {
        auto t0 = Clock::now();
        if (ex.submit(byte_count, big).result() != kBulk) std::abort();
        const double mine = us_since(t0);
        const double theirs = with_raw_servers(ex, 1, [&](const std::vector<int>& ranks) {
            auto t1 = Clock::now();
            MPI_Send(big.data(), kBulk, MPI_CHAR, ranks[0], kReq, MPI_COMM_WORLD);
            int n = 0;
            MPI_Recv(&n, 1, MPI_INT, ranks[0], kRep, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            return us_since(t1);
        });
        if (s == 0) continue;
        ours.push_back(kBulk / mine);  // bytes per us = MB/s
        raw.push_back(kBulk / theirs);
    }
    print("mpi.bulk", "MB/s", "higher", median(ours), median(raw));
}

}  // namespace

int main(int argc, char** argv) {
    mp::mpi::bootstrap(argc, argv);  // ranks 1..N-1 are the workers
    int scale = 1;
    std::vector<std::string> prefixes;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            scale = std::max(1, std::atoi(argv[++i]));
        else
            prefixes.emplace_back(argv[i]);
    }
    if (mp::mpi::world_size() < 2) {
        std::fprintf(stderr, "mp_mpi_bench: run it under mpirun -n 4\n");
        return 2;
    }
    auto wanted = [&](const std::string& id) {
        if (prefixes.empty()) return true;
        for (const auto& p : prefixes)
            if (id.compare(0, p.size(), p) == 0 || p.compare(0, id.size(), id) == 0) return true;
        return false;
    };
    if (wanted("mpi.submit") || wanted("mpi.bulk")) {
        mp::mpi::PoolExecutor ex;
        if (wanted("mpi.submit")) submit_metric(ex, scale);
        if (wanted("mpi.bulk")) bulk_metric(ex, scale);
    }
    if (wanted("mpi.map_100k")) map_metric(scale);
    return 0;
}
