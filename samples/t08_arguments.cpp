// T8 - passing arguments: positional arguments of any encodable type, and an options struct as
// the C++ answer to keyword arguments.
//
// Python:                                        C++ (mp):
//   Process(target=f, args=(1, "a"),               mp::Process p(f, 1, std::string("a"), opts);
//           kwargs={"retries": 3})                 // opts: a struct with named fields
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mp/mp.hpp"

struct Point {
    double x = 0;
    double y = 0;
    std::string label;
    MP_FIELDS(x, y, label)  // spawn encodes these members, in this order
};

// Keyword arguments: every option has a name and a default, the caller sets only what it wants.
struct Options {
    int retries = 1;
    double timeout_s = 5.0;
    bool verbose = false;
    std::string mode = "fast";
    MP_FIELDS(retries, timeout_s, verbose, mode)
};

static void show_all(int n, std::string text, std::vector<int> numbers, std::map<std::string, int> ages,
                     std::optional<double> maybe, Point point, Options opts) {
    std::printf("  [child pid %d] n=%d text=\"%s\"\n", mp::getpid(), n, text.c_str());
    std::printf("    numbers=[");
    for (std::size_t i = 0; i < numbers.size(); ++i) std::printf("%s%d", i ? ", " : "", numbers[i]);
    std::printf("]\n    ages={");
    const char* sep = "";
    for (const auto& [name, age] : ages) std::printf("%s%s: %d", std::exchange(sep, ", "), name.c_str(), age);
    std::printf("}\n    maybe=%s point=(%g, %g, \"%s\")\n", maybe ? std::to_string(*maybe).c_str() : "None", point.x,
                point.y, point.label.c_str());
    std::printf("    options: retries=%d timeout_s=%g verbose=%s mode=%s\n", opts.retries, opts.timeout_s,
                opts.verbose ? "true" : "false", opts.mode.c_str());
    std::fflush(stdout);
}
MP_TARGET(show_all);  // also checks at compile time that every parameter type is encodable

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== start method: %s ==\n", method.c_str());
        Options opts;  // like kwargs={"retries": 3, "verbose": True}; the rest keep their defaults
        opts.retries = 3;
        opts.verbose = true;
        mp::Process p = mp::get_context(method).Process(show_all, 42, std::string("hello"), std::vector<int>{1, 2, 3},
                                                        std::map<std::string, int>{{"ann", 31}, {"bob", 27}},
                                                        std::optional<double>{}, Point{1.5, -2, "origin-ish"}, opts);
        p.start();
        p.join();
        std::printf("  exitcode %d\n", p.exitcode().value_or(-1));
    }
    // Mistakes are compile errors, not a TypeError in the child at run time:
    //   mp::Process bad(show_all, 42);              // too few arguments:
    //       "mp::Process: the target cannot be called with these arguments ..."
    //   mp::Process bad(show_all, "x", ...);        // a string where an int is expected: same
    //   void g(std::FILE* f); MP_TARGET(g);         // a pointer cannot cross to another process:
    //       "MP_TARGET: every parameter of the function must be a type the codec can encode"
    std::printf("(wrong number or types of arguments fail at compile time: see the comment at the end)\n");
    return 0;
}
