// T21 - Condition: a producer and two consumers over a small buffer in shared memory, each
// waiting until its condition holds ("there is room", "there is an item"); under every start
// method this platform has.
//
// Python:                                    C++ (mp):
//   cv = Condition()                           mp::Condition cv;
//   with cv:                                   std::unique_lock<mp::Condition> g(cv);
//       cv.wait_for(lambda: count > 0, 10)       cv.wait_for([&] { return count() > 0; }, 10.0);
//       ...take an item...                       ...take an item...
//       cv.notify_all()                          cv.notify_all();
//
// wait releases the lock while it sleeps (so the other side can change the buffer) and holds
// it again when it returns; wait_for re-checks the predicate after every wake-up.
#include <cstdio>
#include <mutex>
#include <string>

#include "mp/mp.hpp"

constexpr int kCapacity = 3;
constexpr int kItems = 10;
constexpr int kStop = -1;  // one per consumer: "no more items"

struct Ring {
    int head;   // next slot to read
    int count;  // items in the buffer
};

static bool put(mp::Condition cv, mp::Array<int> slots, mp::Value<Ring> ring, int item) {
    std::unique_lock<mp::Condition> g(cv);
    Ring& r = ring.get_obj();
    if (r.count == kCapacity) {
        std::printf("  producer: buffer full, waits\n");
        std::fflush(stdout);
    }
    // Both kinds of waiter share this one condition, so notify_all: notify() could wake the
    // other consumer instead of the producer.
    if (!cv.wait_for([&] { return r.count < kCapacity; }, 10.0)) return false;
    slots[(r.head + r.count) % kCapacity] = item;
    ++r.count;
    cv.notify_all();
    return true;
}

static int producer(mp::Condition cv, mp::Array<int> slots, mp::Value<Ring> ring) {
    for (int i = 1; i <= kItems; ++i)
        if (!put(cv, slots, ring, i)) return 1;  // the consumers died?
    return put(cv, slots, ring, kStop) && put(cv, slots, ring, kStop) ? 0 : 1;
}
MP_TARGET(producer);

static int consumer(int id, mp::Condition cv, mp::Array<int> slots, mp::Value<Ring> ring, mp::Value<int> total) {
    int taken = 0;
    for (;;) {
        std::unique_lock<mp::Condition> g(cv);
        Ring& r = ring.get_obj();
        if (!cv.wait_for([&] { return r.count > 0; }, 10.0)) return 1;  // the producer died?
        const int item = slots[r.head];
        r.head = (r.head + 1) % kCapacity;
        --r.count;
        cv.notify_all();
        if (item == kStop) break;
        total.get_obj() += item * item;  // under cv's lock too
        ++taken;
    }
    std::printf("  consumer %d: took %d items, then the stop mark\n", id, taken);
    std::fflush(stdout);
    return 0;
}
MP_TARGET(consumer);

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        // The buffer: slots in an Array, its cursor in a Value, the sum in another; none has a
        // lock of its own: the Condition's lock guards them all.
        mp::Condition cv;
        mp::Array<int> slots(kCapacity, false);
        mp::Value<Ring> ring(Ring{0, 0}, false);
        mp::Value<int> total(0, false);
        mp::Process c1 = ctx.Process(consumer, 1, cv, slots, ring, total);
        mp::Process c2 = ctx.Process(consumer, 2, cv, slots, ring, total);
        mp::Process prod = ctx.Process(producer, cv, slots, ring);
        c1.start();
        c2.start();
        prod.start();
        prod.join();
        c1.join();
        c2.join();
        std::printf("  [parent] exit codes %d %d %d; sum of squares of 1..%d = %d (expected 385)\n",
                    prod.exitcode().value_or(-1), c1.exitcode().value_or(-1), c2.exitcode().value_or(-1), kItems,
                    total.get_obj());
        ok = ok && total.get_obj() == 385 && c1.exitcode() == 0 && c2.exitcode() == 0 && prod.exitcode() == 0;
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
