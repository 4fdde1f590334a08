// T17 - shared memory: one block of bytes that several processes see at once.
//
// Python:                                             C++ (mp):
//   from multiprocessing import shared_memory
//   shm = shared_memory.SharedMemory(create=True,       auto shm = mp::SharedMemory::create(64);
//                                    size=64)
//   p = Process(target=f, args=(shm,))                  mp::Process p(f, shm);
//   other = shared_memory.SharedMemory(name=shm.name)   auto other = mp::SharedMemory::attach(shm.name());
//   shm.close(); shm.unlink()                           shm.close(); shm.unlink();
//
// Unlike a Queue, nothing is copied: a write by one process is visible to the others in place.
// The creator owns the name: unlink() removes it, and if the creator crashes first, the
// tracker (POSIX) or the kernel (Windows) removes it, so no segment outlives its users.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "mp/mp.hpp"

// Receives the segment itself as an argument: fork inherits the mapping, spawn passes the
// handle and maps it again in the child.
static void write_greeting(mp::SharedMemory shm, std::string text) {
    std::memcpy(shm.data(), text.c_str(), text.size() + 1);
    std::printf("  [child %d] wrote \"%s\" into %s (a segment it received as an argument)\n", mp::getpid(),
                text.c_str(), shm.name().c_str());
    std::fflush(stdout);
}
MP_TARGET(write_greeting);

// Receives only the name and attaches by itself, like SharedMemory(name=...) in Python.
static void append_by_name(std::string name, std::string text) {
    mp::SharedMemory shm = mp::SharedMemory::attach(name);
    char* bytes = reinterpret_cast<char*>(shm.data());
    const std::size_t used = std::strlen(bytes);
    std::memcpy(bytes + used, text.c_str(), text.size() + 1);
    std::printf("  [child %d] attached to %s by name (%zu bytes) and appended \"%s\"\n", mp::getpid(), name.c_str(),
                shm.size(), text.c_str());
    std::fflush(stdout);
}  // the attached view is closed here; the name stays: only the creator's unlink removes it
MP_TARGET(append_by_name);

// Creates a segment of its own (so this child owns it), writes its name into the mailbox the
// parent gave it, then waits to be killed without ever calling unlink().
static void create_and_hang(mp::SharedMemory mailbox) {
    mp::SharedMemory mine = mp::SharedMemory::create(4096);
    std::memcpy(mailbox.data() + 1, mine.name().c_str(), mine.name().size() + 1);
    reinterpret_cast<std::atomic<char>*>(mailbox.data())->store(1);  // "the name is there"
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}
MP_TARGET(create_and_hang);

// A creator killed before it could unlink: who removes its segment?
static void crash_demo(const mp::Context& ctx) {
    mp::SharedMemory mailbox = mp::SharedMemory::create(256);
    mp::Process p = ctx.Process(create_and_hang, mailbox);
    p.start();
    auto* flag = reinterpret_cast<std::atomic<char>*>(mailbox.data());
    while (flag->load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const std::string name(reinterpret_cast<const char*>(mailbox.data()) + 1);
    std::printf("  [parent] child %d created %s and hangs; killing it (SIGKILL: no destructor, no unlink)\n",
                *p.pid(), name.c_str());
    std::fflush(stdout);
    p.kill();
    p.join();
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        try {
            mp::SharedMemory::attach(name);
        } catch (const mp::FileNotFoundError&) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
#if defined(_WIN32)
    std::printf("  [parent] %s vanished %.1f ms after the kill: the kernel deleted the mapping with its last handle\n",
                name.c_str(), ms);
#else
    std::printf("  [parent] %s vanished %.1f ms after the kill: the child's tracker saw its pipe close and unlinked\n"
                "           it, warning on stderr about the leak as CPython's resource_tracker does\n",
                name.c_str(), ms);
#endif
    mailbox.close();
    mailbox.unlink();
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== start method: %s ==\n", method.c_str());
        const mp::Context& ctx = mp::get_context(method);
        mp::SharedMemory shm = mp::SharedMemory::create(64);  // a unique name is generated
        std::printf("  [parent %d] created %s, %zu bytes, all zero\n", mp::getpid(), shm.name().c_str(), shm.size());

        mp::Process writer = ctx.Process(write_greeting, shm, std::string("hello from a child"));
        writer.start();
        writer.join();
        std::printf("  [parent] reads \"%s\": the child's write landed in our memory, nothing was sent back\n",
                    reinterpret_cast<const char*>(shm.data()));

        mp::Process attacher = ctx.Process(append_by_name, shm.name(), std::string(" + another"));
        attacher.start();
        attacher.join();
        std::printf("  [parent] reads \"%s\"\n", reinterpret_cast<const char*>(shm.data()));

        const std::string name = shm.name();
        shm.close();   // our view is gone (a destructor would do the same)
        shm.unlink();  // and the name: the creator's explicit job, as in Python
        try {
            mp::SharedMemory::attach(name);
        } catch (const mp::FileNotFoundError&) {
            std::printf("  [parent] after close() + unlink(), attaching %s raises FileNotFoundError\n", name.c_str());
        }
        crash_demo(ctx);
    }
    std::fflush(stdout);
    return 0;
}
