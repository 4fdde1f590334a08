// T27 - subprocess: run another program and talk to it. run() with captured output and text
// mode, check=true turning a failure into CalledProcessError (return code and stderr), a
// timeout that kills the child, Popen streaming a child's output line by line with poll() and
// wait(), and communicate() feeding stdin. Then the plumbing: three programs chained into a
// pipeline (`lines | grep 7 | wc`), stdout and stderr sent to a file and the file read back as
// another child's stdin, a shell command, and a process tree (a child that starts a
// grandchild) ended as a whole with kill_tree(). The other program is this one, run again with
// "--child MODE", so that the sample works the same on POSIX and Windows.
//
// Python:                                         C++ (mp::subprocess, here `sp`):
//   r = subprocess.run(cmd, capture_output=True,    auto r = sp::run(cmd, sp::Options()
//                      text=True)                       .capture_output().text());
//   r.stdout.strip(), r.returncode                  r.std_out, r.returncode
//   run(cmd, check=True, ...)                       sp::Options().check()
//   except subprocess.CalledProcessError as e:      catch (const sp::CalledProcessError& e)
//       e.returncode, e.stderr                          e.returncode(), e.std_err()
//   run(cmd, timeout=0.5)                           sp::Options().timeout(0.5)
//   except subprocess.TimeoutExpired:               catch (const sp::TimeoutExpired&)
//   p = Popen(cmd, stdout=PIPE, text=True)          sp::Popen p(cmd, sp::Options().std_out(sp::PIPE).text());
//   p.stdout.readline(), p.poll(), p.wait()         p.stdout_pipe().readline(), p.poll(), p.wait()
//   out, err = p.communicate(input)                 auto [out, err] = p.communicate(input);
//   p1 = Popen(a, stdout=PIPE)                      sp::Popen p1(a, sp::Options().std_out(sp::PIPE));
//   p2 = Popen(b, stdin=p1.stdout, stdout=PIPE)     sp::Popen p2(b, sp::Options().std_in(p1.stdout_pipe())
//   p1.stdout.close()                                                      .std_out(sp::PIPE));  (closed for you)
//   with open(path, "w") as f:                      sp::run(cmd, sp::Options().std_out(sp::File(path))
//       run(cmd, stdout=f, stderr=f)                                       .std_err(sp::File(path)));
//   open(path, "a")                                 sp::File(path, sp::FileMode::append)
//   run("echo hi", shell=True)                      sp::run({"echo hi"}, sp::Options().shell());
//   subprocess.getstatusoutput("exit 3")            sp::getstatusoutput("exit 3")
//   Popen(cmd, process_group=0)                     sp::Popen p(cmd, sp::Options().process_group());
//   os.killpg(p.pid, signal.SIGKILL); p.wait()      p.kill_tree();
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "mp/mp.hpp"

#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#endif

namespace sp = mp::subprocess;

// ---- the child: this program with --child MODE ---------------------------------------------

static std::vector<std::string> cmd_of(const std::string& self, const char* mode) {
    return {self, "--child", mode};
}

static int child_main(const std::string& self, const std::string& mode) {
#if defined(_WIN32)
    // Binary streams, so that "\r\n" below is what both systems write (text mode would add
    // "\r" on output, and take it away on input).
    _setmode(_fileno(stdout), _O_BINARY);
    _setmode(_fileno(stderr), _O_BINARY);
    _setmode(_fileno(stdin), _O_BINARY);
#endif
    if (mode == "version") {
        std::printf("t27 child 1.0\n");
    } else if (mode == "crlf") {
        std::printf("one\r\ntwo\r\n");  // Windows-style line ends
    } else if (mode == "fail") {
        std::fprintf(stderr, "error: something went wrong\n");
        return 3;
    } else if (mode == "sleep") {
        std::this_thread::sleep_for(std::chrono::seconds(5));
    } else if (mode == "steps") {
        // flush=True in the tutorial: a pipe is fully buffered, so without the flush the
        // parent would see all five lines at the end.
        for (int i = 0; i < 5; ++i) {
            std::printf("Step %d\n", i);
            std::fflush(stdout);
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    } else if (mode == "upper") {
        for (int c; (c = std::getchar()) != EOF;) std::putchar(std::toupper(c));
    } else if (mode == "lines") {
        // The pipeline's first program: 10000 lines, 98894 bytes, more than a pipe holds
        // (64 KiB on Linux), so it has to wait for its reader now and then.
        for (int i = 1; i <= 10000; ++i) std::printf("line %d\n", i);
    } else if (mode == "grep7") {
        // The middle one: the lines of stdin holding a '7', as `grep 7` prints them.
        char line[256];
        while (std::fgets(line, sizeof line, stdin))
            if (std::strchr(line, '7')) std::fputs(line, stdout);
    } else if (mode == "wc") {
        // The last one: counts what reaches its stdin, as `wc -l -c`.
        long lines = 0, bytes = 0;
        for (int c; (c = std::getchar()) != EOF; ++bytes) lines += c == '\n';
        std::printf("%ld lines, %ld bytes\n", lines, bytes);
    } else if (mode == "both") {
        // Writes to stdout and stderr in turn. Each flush hands the text to the OS at once, so
        // that the order the file shows is the order of the writes.
        std::printf("out: first\n");
        std::fflush(stdout);
        std::fprintf(stderr, "err: second\n");  // stderr is unbuffered
        std::printf("out: third\n");
        std::fflush(stdout);
    } else if (mode == "tree") {
        // A child that starts a grandchild and waits for it. The grandchild inherits our stdout,
        // the parent's pipe, so that pipe reaches end of file only when both of us are gone.
        sp::Popen grandchild(cmd_of(self, "hold"));
        std::printf("grandchild started\n");
        std::fflush(stdout);
        grandchild.wait();
    } else if (mode == "hold") {
        // Long enough that only kill_tree explains its going away quickly.
        std::this_thread::sleep_for(std::chrono::seconds(30));
    } else {
        return 2;
    }
    return 0;
}

// ---- the parent ------------------------------------------------------------------------------

// The text with its line ends made visible.
static std::string shown(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : std::string(1, c);
    return out + "'";
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    const std::string self = mp::os::executable_of(0);
    if (argc == 3 && std::strcmp(argv[1], "--child") == 0) return child_main(self, argv[2]);
    auto cmd = [&](const char* mode) { return cmd_of(self, mode); };

    std::printf("== run: capture_output and text ==\n");
    const sp::CompletedProcess r = sp::run(cmd("version"), sp::Options().capture_output().text());
    std::string version = r.std_out;
    while (!version.empty() && version.back() == '\n') version.pop_back();  // .strip()
    std::printf("  returncode %d, stdout: %s\n", r.returncode, shown(version).c_str());
    const std::string raw = sp::run(cmd("crlf"), sp::Options().capture_output()).std_out;
    const std::string text = sp::run(cmd("crlf"), sp::Options().capture_output().text()).std_out;
    std::printf("  bytes: %s   text: %s   (text mode: universal newlines)\n", shown(raw).c_str(), shown(text).c_str());

    std::printf("== check: a failing child raises CalledProcessError ==\n");
    try {
        sp::run(cmd("fail"), sp::Options().capture_output().text().check());
        std::printf("  not raised?\n");
    } catch (const sp::CalledProcessError& e) {
        std::printf("  CalledProcessError: ...%s\n", std::strstr(e.what(), "' returned"));
        std::printf("  returncode %d, stderr: %s\n", e.returncode(), shown(e.std_err()).c_str());
    }

    std::printf("== timeout: the child sleeps 5 s, we give it 0.5 s ==\n");
    const auto t0 = std::chrono::steady_clock::now();
    try {
        sp::run(cmd("sleep"), sp::Options().capture_output().timeout(0.5));
        std::printf("  not raised?\n");
    } catch (const sp::TimeoutExpired& e) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("  TimeoutExpired: ...%s (after %.1f s; the child was killed and reaped)\n",
                    std::strstr(e.what(), "' timed out"), s);
    }

    std::printf("== Popen: the child's output line by line, as it comes ==\n");
    sp::Popen p(cmd("steps"), sp::Options().std_out(sp::PIPE).std_err(sp::PIPE).text());
    for (;;) {
        const std::string line = p.stdout_pipe().readline();
        if (line.empty() && p.poll()) break;  // end of output and the child has ended
        if (!line.empty()) {
            const bool running = !p.poll();
            std::printf("  live: %s (poll() -> %s)\n", line.substr(0, line.size() - 1).c_str(),
                        running ? "None, still running" : "ended");
            std::fflush(stdout);
        }
    }
    const auto ended = p.communicate();  // the rest, and stderr
    std::printf("  finished: returncode %d, stderr %s\n", p.wait(), shown(ended.second).c_str());

    std::printf("== communicate: input to stdin, output back ==\n");
    sp::Popen u(cmd("upper"), sp::Options().std_in(sp::PIPE).std_out(sp::PIPE));
    const auto [out, err] = u.communicate("hello subprocess", 10.0);
    std::printf("  sent 'hello subprocess', got %s, returncode %d\n", shown(out).c_str(), *u.returncode());

    std::printf("== pipeline: lines | grep7 | wc, child to child ==\n");
    {
        // Each program's stdin is the stdout pipe of the one before it. The bytes go from child
        // to child through the OS pipe, never through this process; and once the next program
        // has started, our copy of the pipe is closed (Python's p1.stdout.close()), so that the
        // pipe's only ends are in the two children: if a reader ends early, its writer gets
        // SIGPIPE (Windows: ERROR_NO_DATA) instead of waiting forever on a pipe we still hold.
        sp::Popen lines(cmd("lines"), sp::Options().std_out(sp::PIPE));
        sp::Popen grep(cmd("grep7"), sp::Options().std_in(lines.stdout_pipe()).std_out(sp::PIPE));
        sp::Popen wc(cmd("wc"), sp::Options().std_in(grep.stdout_pipe()).std_out(sp::PIPE).text());
        const std::string counted = wc.communicate(30.0).first;  // only the last one talks to us
        std::printf("  wc says: %s", counted.c_str());
        std::printf("  returncodes: lines %d, grep7 %d, wc %d\n", lines.wait(30), grep.wait(30), *wc.returncode());
    }

    std::printf("== redirect: stdout and stderr to one file, then the file as stdin ==\n");
    {
        const std::string path = (std::filesystem::temp_directory_path() /
                                  ("mp_t27_" + std::to_string(mp::getpid()) + ".log")).u8string();
        // The same path for both streams: one open file, shared, so the lines keep the order the
        // child wrote them in (two opens of the file would each write from offset 0).
        sp::run(cmd("both"), sp::Options().std_out(sp::File(path)).std_err(sp::File(path)));
        // append: created if missing, and every write lands at the end (O_APPEND).
        sp::run(cmd("version"), sp::Options().std_out(sp::File(path, sp::FileMode::append)));
        std::ifstream in(path, std::ios::binary);
        const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        in.close();
        std::printf("  the file holds %s\n", shown(written).c_str());
        // A File for stdin is opened for reading: the child reads the file as its input.
        const auto back = sp::run(cmd("upper"), sp::Options().std_in(sp::File(path)).capture_output());
        std::printf("  read back as stdin by 'upper': %s\n", shown(back.std_out).c_str());
        std::filesystem::remove(path);
    }

    std::printf("== shell: a command line for /bin/sh or cmd.exe ==\n");
    {
        // shell() hands args[0] to the system shell (POSIX /bin/sh -c, Windows cmd.exe /d /s /c),
        // which parses it: variables, redirections, `&&` and `|` all work, so a shell command must
        // never contain text from someone untrusted (run the program itself, without shell(), and
        // pass such text as an argument: no shell ever sees it). `echo` means the same in both.
        const auto r = sp::run({"echo hello from the shell"}, sp::Options().shell().capture_output().text());
        std::printf("  echo: %s, returncode %d\n", shown(r.std_out).c_str(), r.returncode);
        // getstatusoutput: the shell's output (stderr joined to it, one trailing newline
        // removed) and its exit status.
        const auto [status, output] = sp::getstatusoutput("exit 3");
        std::printf("  getstatusoutput(\"exit 3\") -> (%d, %s)\n", status, shown(output).c_str());
        std::printf("  getoutput(\"echo hi\") -> %s\n", shown(sp::getoutput("echo hi")).c_str());
    }

    std::printf("== process tree: the child, its grandchild, and kill_tree ==\n");
    {
        // kill() ends the child alone; a grandchild it started lives on (and here would keep our
        // pipe open for its 30 s). process_group() puts the child at the head of a tree of its
        // own (POSIX: a new process group; Windows: a job object, which everything the child
        // starts joins), and kill_tree() ends all of it, then reaps the child.
        sp::Popen tree(cmd("tree"), sp::Options().process_group().std_out(sp::PIPE).text());
        std::printf("  child says: %s", tree.stdout_pipe().readline(30).c_str());
        tree.kill_tree(10);
        std::printf("  kill_tree(): the child's returncode %d\n", *tree.returncode());
        try {
            // End of file on the pipe means nobody holds its write end any more: the
            // grandchild, which inherited it, has gone too.
            tree.stdout_pipe().read(-1, 10);
            std::printf("  the pipe reached end of file: the grandchild is gone too\n");
        } catch (const sp::TimeoutExpired&) {
            std::printf("  the pipe is still open after 10 s: the grandchild survived?\n");
            return 1;
        }
    }
    return 0;
}
