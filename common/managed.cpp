// common/managed.cpp - ManagedProcesses: join, then terminate, then kill, leaving no child.
#include "mp/managed.hpp"

#include <chrono>

namespace mp {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_until(Clock::time_point deadline) {
    const auto left = std::chrono::duration<double>(deadline - Clock::now()).count();
    return left > 0 ? left : 0.0;
}

// Whether p was started and has not been reaped or closed. Every Process call may throw
// (a closed process is a ValueError), so the guard asks through this.
bool running(Process& p) noexcept {
    try {
        return p.pid().has_value() && p.is_alive();
    } catch (...) {
        return false;
    }
}

}  // namespace

ManagedProcesses::ManagedProcesses(double join_timeout_seconds, Policy policy, double terminate_timeout_seconds)
    : join_timeout_(join_timeout_seconds < 0 ? 0 : join_timeout_seconds),
      terminate_timeout_(terminate_timeout_seconds < 0 ? 0 : terminate_timeout_seconds),
      policy_(policy) {}

ManagedProcesses::~ManagedProcesses() noexcept { finish(); }

Process& ManagedProcesses::add(Process& p) {
    procs_.push_back(&p);
    return p;
}

Process& ManagedProcesses::adopt(Process&& p) {
    owned_.push_back(std::make_unique<Process>(std::move(p)));
    procs_.push_back(owned_.back().get());
    return *owned_.back();
}

void ManagedProcesses::start_all() {
    for (Process* p : procs_)
        if (!p->pid()) p->start();
}

ManagedProcesses::Outcome ManagedProcesses::finish() noexcept {
    Outcome out;
    std::vector<Process*> live;
    for (Process* p : procs_)
        if (running(*p)) live.push_back(p);

    // 1. Let them finish by themselves, all within one deadline.
    if (policy_ == Policy::join_first) {
        const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                 std::chrono::duration<double>(join_timeout_));
        for (Process* p : live) {
            try {
                p->join(seconds_until(deadline));
            } catch (...) {
            }
        }
    }
    // 2. Terminate those still alive and give them terminate_timeout to go.
    std::vector<Process*> left;
    for (Process* p : live) {
        if (running(*p)) {
            left.push_back(p);
            try {
                p->terminate();
            } catch (...) {
            }
        } else {
            ++out.joined;
        }
    }
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(terminate_timeout_));
    for (Process* p : left) {
        try {
            p->join(seconds_until(deadline));
        } catch (...) {
        }
    }
    // 3. Kill the survivors (SIGKILL cannot be caught or ignored) and reap them.
    for (Process* p : left) {
        if (!running(*p)) {
            ++out.terminated;
            continue;
        }
        ++out.killed;
        try {
            p->kill();
            p->join();
        } catch (...) {
        }
    }
    return out;
}

}  // namespace mp
