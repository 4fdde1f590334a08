// T22 (beyond one program), the client half - connects to t22_remote_server (started first, maybe
// on another host), is refused with a wrong key, then puts jobs on the server's queue and lets
// worker processes of its own, under every start method, take them and write results into the
// server's dict. The proxies it gives its workers work there too: they reach the server by
// themselves.
//
// Python:                                                C++ (mp):
//   QueueManager.register('get_queue')                   (nothing: the names are looked up)
//   m = QueueManager(address=(host, 50000), authkey=key) mp::SyncManager m(mp::Address::tcp(host, port), key);
//   m.connect()                                          m.connect();
//   queue = m.get_queue(); queue.put('hello')            auto jobs = m.lookup<mp::JoinableQueueProxy>("jobs");
//
//   t22_remote_client [PORT_FILE [HOST]]      (HOST: where the server runs, 127.0.0.1 by default)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

static const char* const kKey = "abracadabra";

static std::string default_port_file() {
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
    return ((ec ? std::filesystem::path(".") : dir) / "mp-t22-remote-manager.port").string();
}

// A worker: takes numbers until it gets -1, puts each one's square of squares in the results.
static int worker(mp::JoinableQueueProxy jobs, mp::DictProxy<int, long long> results) {
    for (;;) {
        const int n = jobs.get<int>(true, 60.0);
        if (n >= 0) results[n] = static_cast<long long>(n) * n * n * n;
        jobs.task_done();
        if (n < 0) return 0;
    }
}
MP_TARGET(worker);

// Waits for the server's port file, then for the server to take connections (a file left by a
// crashed run names a dead server: then the connect is refused, and we try again).
static mp::SyncManager connect_to(const std::string& port_file, const std::string& host) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
        int port = 0;
        std::ifstream in(port_file);
        if (in >> port && port > 0) {
            mp::SyncManager m(mp::Address::tcp(host, port), kKey);
            try {
                m.connect(10.0);
                return m;
            } catch (const mp::ConnectionError&) {
            }
        }
        if (std::chrono::steady_clock::now() > end) throw mp::TimeoutError("no t22_remote_server answered within 60 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    const std::string port_file = argc > 1 ? argv[1] : default_port_file();
    const std::string host = argc > 2 ? argv[2] : "127.0.0.1";

    mp::SyncManager m = connect_to(port_file, host);
    std::printf("[client] connected to %s\n", m.address().to_string().c_str());
    auto status = m.lookup<mp::NamespaceProxy>("status");
    std::printf("[client] the server's namespace says: served by %s\n", status.get<std::string>("served by").c_str());

    // The key is checked on every connection, before any request is read.
    mp::SyncManager intruder(m.address(), "not the key");
    try {
        intruder.connect(10.0);
        std::printf("[client] a wrong key was accepted (this must not happen)\n");
        return 1;
    } catch (const mp::AuthenticationError&) {
        std::printf("[client] a wrong key is refused: AuthenticationError\n");
    }

    auto jobs = m.lookup<mp::JoinableQueueProxy>("jobs");
    auto results = m.lookup<mp::DictProxy<int, long long>>("results");
    bool ok = true;
    int first = 0;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::vector<mp::Process> ps;
        for (int i = 0; i < 2; ++i) ps.push_back(ctx.Process(worker, jobs, results));
        for (auto& p : ps) p.start();
        for (int n = first; n < first + 10; ++n) jobs.put(n);
        for (std::size_t i = 0; i < ps.size(); ++i) jobs.put(-1);
        jobs.join();  // every job done (task_done for each)
        for (auto& p : ps) p.join(60);
        long long sum = 0;
        for (int n = first; n < first + 10; ++n) sum += results.at(n);
        std::printf("[client] %s workers: 10 jobs through the server's queue, results[%d] = %lld, sum %lld\n",
                    method.c_str(), first + 9, results.at(first + 9), sum);
        for (auto& p : ps) ok = ok && p.exitcode() == 0;
        first += 10;
    }
    std::printf("[client] the server's dict holds %zu results\n", results.size());
    ok = ok && results.size() == static_cast<std::size_t>(first);
    m.shutdown_server();  // any client with the key may: the key is the whole of the protection
    std::printf("[client] asked the server to stop\n");
    return ok ? 0 : 1;
}
