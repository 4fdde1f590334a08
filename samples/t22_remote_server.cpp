// T22 (beyond one program), the server half - CPython's "Using a remote manager": a program that
// serves a queue of jobs and a dict of results over TCP to any program, on this host or another,
// that holds the key. Run it, then t22_remote_client (the sample tour starts both, in that order).
//
// Python:                                                C++ (mp):
//   class QueueManager(BaseManager): pass                mp::SyncManager m(mp::Address::tcp(host, 0), key);
//   QueueManager.register('get_queue', lambda: queue)    self.publish("jobs", jobs);
//   m = QueueManager(address=('', 50000), authkey=key)   mp::ManagerServer server = m.get_server();
//   s = m.get_server(); s.serve_forever()                server.serve_forever();
//
//   t22_remote_server [PORT_FILE [HOST]]
// PORT_FILE: where to write the port the OS gave (the client reads it there); HOST: the address
// to listen on, 127.0.0.1 by default. Give 0.0.0.0 to serve other hosts, and then read the
// security notes in mp/managers.hpp: the key is the only protection, and the traffic is not
// encrypted.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "mp/mp.hpp"

static const char* const kKey = "abracadabra";  // a sample's key: use a long random one

static std::string default_port_file() {
    std::error_code ec;
    const std::filesystem::path dir = std::filesystem::temp_directory_path(ec);
    return ((ec ? std::filesystem::path(".") : dir) / "mp-t22-remote-manager.port").string();
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    const std::string port_file = argc > 1 ? argv[1] : default_port_file();
    const std::string host = argc > 2 ? argv[2] : "127.0.0.1";
    std::filesystem::remove(port_file);  // a file left by an earlier run names a dead server

    mp::SyncManager m(mp::Address::tcp(host, 0), kKey);
    mp::ManagerServer server = m.get_server();  // listening (and accepting) from here on
    {
        // This program is a client of its own server too: it makes the objects and publishes
        // them under names (the C++ form of register('get_queue', callable=lambda: queue)).
        mp::SyncManager self(server.address(), kKey);
        self.connect();
        auto jobs = self.JoinableQueue();
        auto results = self.dict<int, long long>();
        auto status = self.Namespace();
        status["served by"] = std::string("t22_remote_server, pid ") + std::to_string(mp::getpid());
        self.publish("jobs", jobs);
        self.publish("results", results);
        self.publish("status", status);
    }  // the server holds them under their names

    const std::string tmp = port_file + ".tmp";
    {
        std::ofstream out(tmp);
        out << server.address().port << "\n";
    }
    std::filesystem::rename(tmp, port_file);  // whole or not at all, for the client that waits
    std::printf("[server] serving a queue and a dict on %s:%d, key \"%s\"; stop it with a client's "
                "shutdown_server() or Ctrl+C\n",
                server.address().host.c_str(), server.address().port, kKey);
    std::fflush(stdout);

    server.serve_forever();  // SIGINT / SIGTERM also end it, and the destructors run

    std::filesystem::remove(port_file);
    std::printf("[server] a client asked the server to stop; it served its objects and ends\n");
    return 0;
}
