// T17 - Value and Array: typed data in shared memory. A counter several workers increment
// under its lock, and an Array squared in place by several processes, each its own slice;
// under every start method this platform has.
//
// Python:                                   C++ (mp):
//   counter = Value('i', 0)                   mp::Value<int> counter(0);
//   with counter.get_lock():                  std::lock_guard<mp::RLock> g(counter.get_lock());
//       counter.value += 1                        counter.get_obj() += 1;
//   nums = Array('i', [1, 2, 3, 4])           mp::Array<int> nums({1, 2, 3, 4});
//   nums[i] = nums[i] * nums[i]               nums[i] = nums[i] * nums[i];
//
// Nothing is sent back: the children write into the memory the parent reads.
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "mp/mp.hpp"

constexpr int kWorkers = 4;
constexpr int kIncrements = 250;

static void add_counter(mp::Value<int> counter, int n) {
    for (int i = 0; i < n; ++i) {
        std::lock_guard<mp::RLock> g(counter.get_lock());  // += is read-modify-write
        counter.get_obj() += 1;
    }
}
MP_TARGET(add_counter);

// Squares nums[begin, end). The slices do not overlap, so no lock is needed: no element is
// touched by two processes.
static void square_slice(mp::Array<int> nums, int begin, int end) {
    for (int i = begin; i < end; ++i) {
        const auto k = static_cast<std::size_t>(i);
        nums[k] = nums[k] * nums[k];
    }
    std::printf("  [child %d] squared elements %d..%d\n", mp::getpid(), begin, end - 1);
    std::fflush(stdout);
}
MP_TARGET(square_slice);

static std::string show(const mp::Array<int>& a) {
    std::string s = "[";
    for (std::size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + std::to_string(a[i]);
    return s + "]";
}

int main(int argc, char** argv) {
    mp::bootstrap(argc, argv);  // a spawned child runs its target here and never returns

    bool ok = true;
    for (const std::string& method : mp::get_all_start_methods()) {
        const mp::Context& ctx = mp::get_context(method);
        std::printf("== start method: %s ==\n", method.c_str());

        mp::Value<int> counter(0);  // with its own lock (an RLock, as in Python)
        std::vector<mp::Process> ps;
        for (int i = 0; i < kWorkers; ++i) ps.push_back(ctx.Process(add_counter, counter, kIncrements));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        std::printf("  counter: %d workers x %d increments = %d\n", kWorkers, kIncrements, counter.value());
        ok = ok && counter.value() == kWorkers * kIncrements;

        mp::Array<int> nums({1, 2, 3, 4, 5, 6, 7, 8});
        std::printf("  before: %s\n", show(nums).c_str());
        std::fflush(stdout);
        ps.clear();
        const int per = static_cast<int>(nums.size()) / kWorkers;
        for (int w = 0; w < kWorkers; ++w) ps.push_back(ctx.Process(square_slice, nums, w * per, (w + 1) * per));
        for (auto& p : ps) p.start();
        for (auto& p : ps) p.join();
        std::printf("  after:  %s\n", show(nums).c_str());
        for (std::size_t i = 0; i < nums.size(); ++i) ok = ok && nums[i] == static_cast<int>((i + 1) * (i + 1));
    }
    std::fflush(stdout);
    return ok ? 0 : 1;
}
