// tests/helper_subprocess.cpp - mp_test_subprocess_child: the program tests/test_subprocess.cpp
// runs, the same on POSIX and Windows. Its arguments are commands, done in order:
//   out TEXT | err TEXT      write TEXT (as it is, no newline added) to stdout / stderr
//   exit N                   end with exit code N (the default at the end is 0)
//   sleep MS                 pause
//   cat | tee                copy stdin to stdout (tee: to stdout and stderr) until end of file
//   readline                 wait for one line on stdin (a go-ahead from the parent)
//   count                    read stdin to end of file and print how many bytes came
//   lines N MS               print "line 1\n" ... "line N\n", each flushed, MS apart
//   spew OUT_MIB ERR_MIB     write that much to stdout and stderr, 64 KiB at a time, alternating
//   grandchild MS            start this program with "sleep MS" (it inherits our stdout and
//                            stderr), print "grandchild PID\n", and go on at once
//   touch PATH               create the file PATH (tells the test how far we got)
//   env NAME                 print the variable's value, or "<unset>", and "\n"
//   cwd | argv0 | session    print the current directory / argv[0] / "leader" if this process
//                            leads its own session, else "member" (Windows: "n/a")
//   fds                      POSIX: the open fds, "0 1 2"; Windows: "n/a"
//   pgroup | umask | ids | sigpipe   POSIX: "leader" if this process leads its process
//                            group, else "member" / the umask ("022") / "UID GID GROUPS..." /
//                            "ignored" or "default" for SIGPIPE; Windows: "n/a"
//   probe VALUE              whether VALUE (an fd or HANDLE number of the parent's) is a pipe
//                            here holding "secret": "leaked" or "clean"
//   echo ARGS... | hexargs ARGS...   print each remaining argument on its own line (hexargs:
//                            hex-encoded, so that newlines and quotes survive); ends the list
// Windows: the arguments come from wmain (the C runtime's own split of the command line, the
// thing the quoting must round-trip) and the standard streams are switched to binary, so that
// both systems write exactly the same bytes.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "hmac_sha256.hpp"
#include "sys/handle.hpp"
#include "sys/process.hpp"

#if defined(_WIN32)
#include <windows.h>
#include <fcntl.h>
#include <io.h>

#include "sys/os.hpp"
#define READ_FD _read
#define WRITE_FD _write
#else
#include <csignal>
#include <dirent.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#define READ_FD ::read
#define WRITE_FD ::write
#endif

namespace {

void put(int fd, const char* p, std::size_t n) {
    std::fflush(stdout);
    std::fflush(stderr);
    while (n > 0) {
        const auto w = WRITE_FD(fd, p, static_cast<unsigned>(n > (1u << 20) ? (1u << 20) : n));
        if (w <= 0) std::exit(120);
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}
void put(int fd, const std::string& s) { put(fd, s.data(), s.size()); }

void copy_stdin(bool to_err) {
    std::vector<char> buf(64 * 1024);
    for (;;) {
        const auto n = READ_FD(0, buf.data(), static_cast<unsigned>(buf.size()));
        if (n <= 0) return;
        put(1, buf.data(), static_cast<std::size_t>(n));
        if (to_err) put(2, buf.data(), static_cast<std::size_t>(n));
    }
}

std::string hex(const std::string& s) { return mp::detail::to_hex(s.data(), s.size()); }

bool probe(const std::string& value) {
    char buf[6] = {};
#if defined(_WIN32)
    HANDLE h = reinterpret_cast<HANDLE>(static_cast<std::uintptr_t>(std::stoull(value)));
    DWORD avail = 0, got = 0;
    if (!PeekNamedPipe(h, nullptr, 0, nullptr, &avail, nullptr) || avail < 6) return false;
    if (!ReadFile(h, buf, 6, &got, nullptr) || got != 6) return false;
#else
    const int fd = std::stoi(value);
    if (::fcntl(fd, F_GETFD) < 0) return false;
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    if (::read(fd, buf, 6) != 6) return false;
#endif
    return std::string(buf, 6) == "secret";
}

int run(const std::vector<std::string>& a) {
    for (std::size_t i = 1; i < a.size(); ++i) {
        const std::string& c = a[i];
        auto next = [&]() -> const std::string& {
            if (i + 1 >= a.size()) std::exit(121);
            return a[++i];
        };
        if (c == "out") {
            put(1, next());
        } else if (c == "err") {
            put(2, next());
        } else if (c == "exit") {
            return std::atoi(next().c_str());
        } else if (c == "sleep") {
            std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(next().c_str())));
        } else if (c == "cat" || c == "tee") {
            copy_stdin(c == "tee");
        } else if (c == "count") {
            std::vector<char> buf(64 * 1024);
            unsigned long long total = 0;
            for (;;) {
                const auto n = READ_FD(0, buf.data(), static_cast<unsigned>(buf.size()));
                if (n <= 0) break;
                total += static_cast<unsigned long long>(n);
            }
            put(1, std::to_string(total) + "\n");
        } else if (c == "readline") {
            char ch = 0;
            while (READ_FD(0, &ch, 1) == 1 && ch != '\n') {
            }
        } else if (c == "lines") {
            const int n = std::atoi(next().c_str());
            const int ms = std::atoi(next().c_str());
            for (int k = 1; k <= n; ++k) {
                put(1, "line " + std::to_string(k) + "\n");
                if (k < n) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            }
        } else if (c == "spew") {
            std::size_t out = std::stoul(next()) << 20, err = std::stoul(next()) << 20;
            const std::string chunk(64 * 1024, 'x');
            while (out || err) {
                if (out) {
                    put(1, chunk);
                    out -= chunk.size();
                }
                if (err) {
                    put(2, chunk);
                    err -= chunk.size();
                }
            }
        } else if (c == "grandchild") {
            mp::sys::SpawnRequest req;
            if (mp::sys::current_executable(req.program)) return 122;
            req.args = {req.program, "sleep", next()};
            mp::sys::Child child;
            if (mp::sys::spawn_process(req, child)) return 123;
            put(1, "grandchild " + std::to_string(child.pid) + "\n");
        } else if (c == "touch") {
            std::FILE* f = std::fopen(next().c_str(), "w");
            if (f) std::fclose(f);
        } else if (c == "env") {
            const char* v = std::getenv(next().c_str());
            put(1, std::string(v ? v : "<unset>") + "\n");
        } else if (c == "cwd") {
            put(1, std::filesystem::current_path().u8string() + "\n");
        } else if (c == "argv0") {
            put(1, a[0] + "\n");
        } else if (c == "session") {
#if defined(_WIN32)
            put(1, "n/a\n");
#else
            put(1, ::getsid(0) == ::getpid() ? "leader\n" : "member\n");
#endif
        } else if (c == "pgroup" || c == "umask" || c == "ids" || c == "sigpipe") {
            // POSIX: "leader"/"member" of a process group; the umask in octal; "UID GID
            // GROUPS..."; SIGPIPE's disposition. Windows: "n/a".
#if defined(_WIN32)
            put(1, "n/a\n");
#else
            std::string line;
            if (c == "pgroup") line = ::getpgid(0) == ::getpid() ? "leader" : "member";
            if (c == "umask") {
                const mode_t m = ::umask(0);
                ::umask(m);
                char buf[16];
                std::snprintf(buf, sizeof buf, "%03o", static_cast<unsigned>(m));
                line = buf;
            }
            if (c == "ids") {
                line = std::to_string(::getuid()) + " " + std::to_string(::getgid());
                gid_t groups[64];
                const int n = ::getgroups(64, groups);
                for (int k = 0; k < n; ++k) line += " " + std::to_string(groups[k]);
            }
            if (c == "sigpipe") {
                struct sigaction sa{};
                ::sigaction(SIGPIPE, nullptr, &sa);
                line = sa.sa_handler == SIG_IGN ? "ignored" : "default";
            }
            put(1, line + "\n");
#endif
        } else if (c == "fds") {
#if defined(_WIN32)
            put(1, "n/a\n");
#else
            std::string list;
            DIR* d = ::opendir("/proc/self/fd");
            while (const dirent* e = d ? ::readdir(d) : nullptr) {
                if (e->d_name[0] == '.' || std::atoi(e->d_name) == ::dirfd(d)) continue;
                list += (list.empty() ? "" : " ") + std::string(e->d_name);
            }
            if (d) ::closedir(d);
            put(1, list + "\n");
#endif
        } else if (c == "probe") {
            put(1, probe(next()) ? "leaked\n" : "clean\n");
        } else if (c == "echo" || c == "hexargs") {
            for (std::size_t k = i + 1; k < a.size(); ++k) put(1, (c == "echo" ? a[k] : hex(a[k])) + "\n");
            break;
        } else {
            put(2, "helper: unknown command " + c + "\n");
            return 124;
        }
    }
    return 0;
}

}  // namespace

#if defined(_WIN32)
int wmain(int argc, wchar_t** argv) {
    _setmode(_fileno(stdin), _O_BINARY);
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    std::vector<std::string> a;
    for (int i = 0; i < argc; ++i) a.push_back(mp::sys::narrow(argv[i]));
    return run(a);
}
#else
int main(int argc, char** argv) { return run(std::vector<std::string>(argv, argv + argc)); }
#endif
