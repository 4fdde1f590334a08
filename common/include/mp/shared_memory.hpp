// mp/shared_memory.hpp - named shared memory (Python's multiprocessing.shared_memory).
//
// Python:                                          C++ (mp):
//   shm = SharedMemory(create=True, size=4096)       auto shm = mp::SharedMemory::create(4096);
//   other = SharedMemory(name=shm.name)              auto other = mp::SharedMemory::attach(shm.name());
//   shm.buf[0] = 1                                   shm.data()[0] = std::byte{1};   // or shm.buf()[0]
//   shm.close(); shm.unlink()                        shm.close(); shm.unlink();
//   SharedMemory(name, create, size)                 mp::SharedMemory(name, create, size)
//
// Lifetime. A destroyed (or close()d) SharedMemory unmaps its view and closes its handle; it
// never removes the name: unlink() does, explicitly, as in Python. Copies of a SharedMemory
// share one mapping (like references to one Python object): close() on any closes it for all.
//
// Crash cleanup: a segment does not outlive all of its users.
//  - Windows: the kernel deletes a named mapping when its last handle closes, crash or not.
//    unlink() does nothing there (as in CPython).
//  - POSIX: the name would survive every process, so the creating process starts (on its first
//    create) one tracker process - this program re-executed - holding the read end of a pipe
//    whose write end only the creator holds. Each name it creates is written into a registry
//    segment shared with the tracker (no message, no syscall); unlink() clears the entry.
//    When the creator ends, however
//    it ends (exit, crash, SIGKILL), the tracker sees end of file, unlinks every name still
//    registered, warns on stderr ("resource_tracker: There appear to be N leaked
//    shared_memory objects to clean up at shutdown") as CPython does, and exits. Attaching
//    never registers: only the creator owns a name. As in CPython, when the creator ends while
//    others still use the segment, their mappings stay valid but the name is gone (no new
//    attach). If the tracker cannot be started, creation still succeeds, with a warning on
//    stderr, and the name is then not protected against a crash.
//
// Names on Windows are used as given, as in CPython: a plain name lives in the session's
// namespace (what "Local\name" means). '\' is refused, so "Global\..." cannot be named; the
// mapping gets the creator's default security, so processes of the same user can attach.
//
// Passing to a child: a SharedMemory is a valid Process argument under every start method
// (fork inherits the mapping; spawn sends the fd/HANDLE, the name and the size, and the child
// maps it again). The child's copy is attached: it never owns the name.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace mp {

class Encoder;
class Decoder;

// A view of bytes (C++17 has no std::span): valid while the SharedMemory stays open.
struct ByteSpan {
    std::byte* ptr = nullptr;
    std::size_t len = 0;
    std::byte* data() const noexcept { return ptr; }
    std::size_t size() const noexcept { return len; }
    bool empty() const noexcept { return len == 0; }
    std::byte* begin() const noexcept { return ptr; }
    std::byte* end() const noexcept { return ptr + len; }
    std::byte& operator[](std::size_t i) const noexcept { return ptr[i]; }
};

class SharedMemory {
public:
    // Python's SharedMemory(name=None, create=False, size=0). An empty name means None: with
    // create a unique name is generated ("psm_" / "wnsm_" + random hex). Errors: ValueError
    // (size <= 0 when creating, an empty name when attaching, a name with '/' after its first
    // character on POSIX or any '\' on Windows, a name too long), FileNotFoundError (attaching
    // a name that does not exist), FileExistsError (creating a name that exists), OSError.
    // When attaching, size is ignored: the segment's own size is used (on Windows rounded up to
    // the page size, as in CPython). A POSIX name may be given with or without its leading '/';
    // name() is always without it.
    explicit SharedMemory(const std::string& name, bool create = false, long long size = 0);
    // An empty, closed object (what a Decoder fills in).
    SharedMemory() noexcept;

    // The C++ spellings: create a new segment (unique name when name is empty) or attach.
    static SharedMemory create(std::size_t size, const std::string& name = "");
    static SharedMemory attach(const std::string& name);

    std::byte* data() const noexcept;  // nullptr once closed
    std::size_t size() const noexcept;
    ByteSpan buf() const noexcept;     // {data(), size()}; empty once closed
    const std::string& name() const noexcept;
    bool closed() const noexcept;

    // Unmaps the view and closes the handle (every copy sees it closed). Idempotent.
    void close();
    // Removes the name (POSIX shm_unlink; nothing on Windows) and, in the creating process,
    // unregisters it from the tracker. Mappings stay valid; new attaches fail.
    // FileNotFoundError when the name is already gone.
    void unlink();

    // The codec hook that makes a SharedMemory a Process argument (see the header comment).
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

    // The POSIX tracker process of this process (0 when none runs, always 0 on Windows).
    static int tracker_pid() noexcept;
    // Ends the tracker now: it unlinks the names this process still has registered (with the
    // leak warning) and exits; this waits for it, so it leaves no child behind. A later
    // create starts a new one. Tests use it; programs need not (the tracker ends with them).
    static void stop_tracker() noexcept;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

}  // namespace mp
