// T15 - named pipes: a reader process and a writer process that find each other by name, not
// by inheriting a handle; under every start method this platform has.
//
// Python (POSIX only):                     C++ (mp, POSIX and Windows):
//   os.mkfifo(path)                          auto r = mp::NamedPipe::create("t15", "r");
//   with open(path) as f: f.readline()       r.accept(10); r.readline();
//   with open(path, "w") as f: f.write(s)    mp::NamedPipe::open("t15", "w", 10).write(s);
//   os.unlink(path)                          r.remove();  (or let r go out of scope)
//
// On POSIX the name is a FIFO in the file system ($TMPDIR/mp-fifo-<name>), made with mode
// 0600; it stays until unlinked. On Windows it is \\.\pipe\<name>, which exists only while
// its creator holds it open. Either way the creator makes the name and waits (accept) for the
// other side, which opens it by name.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "mp/mp.hpp"

// The writer process: it knows only the name.
static int writer(std::string name) {
    mp::NamedPipe w = mp::NamedPipe::open(name, "w", 10);
    for (int i = 1; i <= 3; ++i) w.write("message " + std::to_string(i) + " from pid " + std::to_string(mp::getpid()) + "\n");
    w.write("bye\n");
    return 0;  // closing the write end: the reader sees end of file
}
MP_TARGET(writer);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());
        const std::string name = "t15-" + method + "-" + std::to_string(mp::getpid());

        // The reader makes the name. Nobody is there yet: a timed accept gives up.
        mp::NamedPipe r = mp::NamedPipe::create(name, "r");
        std::printf("  created %s\n", r.path().c_str());
        try {
            r.accept(0.2);
        } catch (const mp::TimeoutError& e) {
            std::printf("  accept(0.2) with no writer: TimeoutError (%s)\n", e.what());
        }

        mp::Process p = ctx.Process(writer, name);
        p.start();
        r.accept(10);
        for (std::string line = r.readline(); !line.empty(); line = r.readline())
            std::printf("  reader got: %s", line.c_str());
        std::printf("  end of file: the writer has closed\n");
        p.join();
        std::printf("  writer exit code %d\n", p.exitcode().value_or(-1));
        // POSIX: the FIFO stays in the file system until unlinked (the creator's destructor
        // would do it). Windows: the name lives exactly as long as the creator's handle, so
        // close() already ends it and remove() has nothing left to do.
        r.close();
        r.remove();
        try {
            mp::NamedPipe::open(name, "w", 1);
        } catch (const mp::FileNotFoundError&) {
            std::printf("  after remove(): opening the name is FileNotFoundError\n");
        }
    }
    return 0;
}
