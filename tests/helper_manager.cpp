// tests/helper_manager.cpp - mp_test_manager_peer: the other programs of the manager tests.
//
//   serve KEY [unix]     serves a queue and a dict (published as "queue" and "dict") with
//                        serve_forever on 127.0.0.1, port 0 (or a Unix socket), prints
//                        "serving <address>" and, once a client has shut it down (or SIGINT /
//                        SIGTERM came), "server done"
//   client PORT KEY      connects to 127.0.0.1:PORT, puts 3 items on the queue and gets them back,
//                        writes the dict, prints "client ok" and exits 0; a wrong key makes it
//                        print "refused: AuthenticationError" and exit 3
//   owner MODE           starts a Manager (the default family), prints "socket <path>", then:
//                        exit   -> std::exit(0) with the manager still alive (never destroyed)
//                        wait   -> waits for a signal; SIGINT / SIGTERM end main normally (the
//                                  manager's destructor runs), anything else kills it
//                        raw    -> waits with the default actions (a signal kills it outright)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "mp/mp.hpp"

namespace {

int serve(const std::string& key, bool unix_socket) {
    const mp::Address where = unix_socket ? mp::arbitrary_address(mp::AddressFamily::unix_socket) : mp::Address::tcp("", 0);
    mp::SyncManager m(where, key);
    mp::ManagerServer server = m.get_server();
    {
        // The serving program is a client of its own server too: it makes the objects and
        // publishes them under names the other program looks up.
        mp::SyncManager self(server.address(), key);
        self.connect();
        auto q = self.Queue();
        auto d = self.dict<std::string, int>({{"made by", 1}});
        self.publish("queue", q);
        self.publish("dict", d);
    }
    // Until serve_forever takes them over, SIGINT and SIGTERM are recorded rather than fatal, so
    // that a test may signal as soon as it reads the line below.
    mp::signals::handle(mp::sig::INT, [](int) {});
    mp::signals::handle(mp::sig::TERM, [](int) {});
    const mp::Address a = server.address();
    std::printf("serving %s\n", a.family == mp::AddressFamily::unix_socket ? a.path.c_str() : std::to_string(a.port).c_str());
    std::fflush(stdout);
    server.serve_forever();
    std::printf("server done\n");
    std::fflush(stdout);
    return 0;
}

int client(int port, const std::string& key) {
    mp::SyncManager m(mp::Address::tcp("127.0.0.1", port), key);
    try {
        m.connect(10.0);
    } catch (const mp::AuthenticationError&) {
        std::printf("refused: AuthenticationError\n");
        return 3;
    }
    auto q = m.lookup<mp::QueueProxy>("queue");
    auto d = m.lookup<mp::DictProxy<std::string, int>>("dict");
    for (int i = 0; i < 3; ++i) q.put(std::string("item ") + std::to_string(i));
    std::string got;
    for (int i = 0; i < 3; ++i) got += q.get<std::string>(true, 10.0) + ";";
    d["client"] = 42;
    std::printf("got %s dict has %zu keys, made by %d\n", got.c_str(), d.size(), d.at("made by"));
    std::printf("client ok\n");
    std::fflush(stdout);
    return 0;
}

struct Stop {};

int owner(const std::string& mode) {
    if (mode == "exit") {
        auto* m = new mp::Manager;  // never destroyed: the exit handler must still end the server
        std::printf("socket %s\n", m->address().path.c_str());
        std::fflush(stdout);
        std::exit(0);
    }
    try {
        mp::Manager m;
        auto d = m.dict<int, int>({{1, 1}});
        if (mode == "wait") {
            mp::signals::handle(mp::sig::INT, [](int) { throw Stop{}; });
            mp::signals::handle(mp::sig::TERM, [](int) { throw Stop{}; });
        }
        std::printf("socket %s\n", m.address().path.c_str());
        std::fflush(stdout);
        for (;;) {
            if (mode == "wait")
                mp::signals::dispatch(std::nullopt);
            else
                std::this_thread::sleep_for(std::chrono::seconds(1));
        }
    } catch (const Stop&) {
        std::printf("stopped by a signal\n");
        std::fflush(stdout);
        return 0;
    }
}

}  // namespace

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    const std::string what = argc > 1 ? argv[1] : "";
    if (what == "serve" && argc >= 3) return serve(argv[2], argc >= 4 && std::string(argv[3]) == "unix");
    if (what == "client" && argc >= 4) return client(std::atoi(argv[2]), argv[3]);
    if (what == "owner" && argc >= 3) return owner(argv[2]);
    std::fprintf(stderr, "usage: %s serve KEY [unix] | client PORT KEY | owner exit|wait|raw\n", argv[0]);
    return 2;
}
