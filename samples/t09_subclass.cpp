// T9 - a Process subclass: override run(), keep per-object data in members.
//
// Python:                                  C++ (mp):
//   class Counter(Process):                  class Counter : public mp::Process {
//       def run(self): ...                       void run() override { ... }
//   c = Counter("a", 3); c.start()           Counter c("a", 3); c.start();
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "mp/mp.hpp"

class Counter : public mp::Process {
public:
    Counter() = default;  // a spawned child default-constructs, then decodes MP_FIELDS into it
    Counter(std::string label, int count) : label_(std::move(label)), count_(count) {}

    void run() override {
        mp::Process& me = mp::current_process();  // this object, inside the child
        for (int i = 1; i <= count_; ++i) {
            std::printf("  [%s pid %d] %s: step %d of %d\n", me.name().c_str(), mp::getpid(), label_.c_str(), i,
                        count_);
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        count_ = 0;  // changes the child's copy only
        std::fflush(stdout);
    }

    const std::string& label() const { return label_; }
    int count() const { return count_; }

    MP_FIELDS(label_, count_)

private:
    std::string label_;
    int count_ = 0;
};
MP_REGISTER_PROCESS(Counter);  // so that a spawned child can re-create a Counter by name

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);

    for (const std::string& method : mp::get_all_start_methods()) {
        std::printf("== start method: %s ==\n", method.c_str());
        Counter a("apples", 2);
        Counter b("pears", 3);
        a.set_name("Counter-a");
        b.set_name("Counter-b");
        a.set_context(mp::get_context(method));
        b.set_context(mp::get_context(method));
        a.start();
        b.start();
        a.join();
        b.join();
        std::printf("  parent pid %d (%s): %s still has count %d, %s count %d; exitcodes %d %d\n", mp::getpid(),
                    mp::current_process().name().c_str(), a.label().c_str(), a.count(), b.label().c_str(), b.count(),
                    a.exitcode().value_or(-1), b.exitcode().value_or(-1));
    }
    return 0;
}
