// .ci/consumer/consumer.cpp - a program outside mp's tree, built against mp the three ways a
// user gets it (.ci/packaging): as a Meson subproject, through pkg-config, and through the
// installed CMake package. It checks that the headers it compiled against are the version its
// build system found (EXPECTED_VERSION), then starts a child under every start method, hands it
// a pipe end and reads back what the child computed.
#include <mp/mp.hpp>

#include <cstdio>
#include <string>

#ifndef EXPECTED_VERSION
#error "build with -DEXPECTED_VERSION=\"x.y.z\", the version the build system found"
#endif

int square_into(mp::Connection out, int n) {
    out.send(n * n);
    return 0;
}
MP_TARGET(square_into);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);
    if (std::string(MP_VERSION_STRING) != EXPECTED_VERSION) {
        std::fprintf(stderr, "consumer: headers say mp %s, the build system found %s\n", MP_VERSION_STRING,
                     EXPECTED_VERSION);
        return 1;
    }
    int started = 0;
    for (const auto& method : mp::get_all_start_methods()) {
        auto [r, w] = mp::Pipe(false);
        mp::Process p = mp::get_context(method).Process(square_into, w, 7);
        p.start();
        w.close();
        if (!r.poll(60.0)) {
            std::fprintf(stderr, "consumer: no answer from the %s child in 60 s\n", method.c_str());
            p.kill();
            return 1;
        }
        const int got = r.recv<int>();
        p.join(60.0);
        if (got != 49 || p.exitcode() != 0) {
            std::fprintf(stderr, "consumer: %s child sent %d and exited with %d\n", method.c_str(), got,
                         p.exitcode().value_or(-999));
            return 1;
        }
        ++started;
    }
    std::printf("consumer: mp %s, %d start method(s), each child answered\n", MP_VERSION_STRING, started);
    return started > 0 ? 0 : 1;
}
