// T27 - subprocess: run another program and talk to it. run() with captured output and text
// mode, check=true turning a failure into CalledProcessError (return code and stderr), a
// timeout that kills the child, Popen streaming a child's output line by line with poll() and
// wait(), and communicate() feeding stdin. The other program is this one, run again with
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
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
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

static int child_main(const std::string& mode) {
#if defined(_WIN32)
    // Binary stdout, so that "\r\n" below is what both systems write (text mode would add "\r").
    _setmode(_fileno(stdout), _O_BINARY);
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
    if (argc == 3 && std::strcmp(argv[1], "--child") == 0) return child_main(argv[2]);

    const std::string self = mp::os::executable_of(0);
    auto cmd = [&](const char* mode) { return std::vector<std::string>{self, "--child", mode}; };

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
    return 0;
}
