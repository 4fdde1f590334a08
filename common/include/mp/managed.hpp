// mp/managed.hpp - ManagedProcesses, a scope guard that leaves no child behind (the tutorials'
// `managed_processes` context manager).
//
//     {
//         mp::ManagedProcesses guard(2.0);            // join for up to 2 s at scope exit
//         mp::Process& a = guard.emplace(work, 1);    // owned by the guard
//         mp::Process b(work, 2);
//         guard.add(b);                               // referenced: b must outlive the guard
//         a.start(); b.start();
//         ...                                         // a return or an exception here...
//     }                                               // ...still ends a and b
//
// At scope exit (or at finish()) the guard, for every process it holds that was started:
//   1. joins it, all of them sharing one deadline of `join_timeout` seconds
//      (Policy::terminate_first skips this step, as Python's Pool.__exit__ does);
//   2. terminates those still alive (SIGTERM; TerminateProcess on Windows) and joins them,
//      sharing a deadline of `terminate_timeout` seconds;
//   3. kills any survivor (SIGKILL; it cannot be ignored) and joins it without a limit.
// So a child that sleeps forever ends in step 2, and one that ignores SIGTERM in step 3 (on
// Windows, terminate() cannot be ignored, so step 3 finds nothing). Every child is reaped.
// Processes are handled in the order they were added. Processes never started, already
// joined, or closed are skipped. The destructor never throws.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "process.hpp"

namespace mp {

class ManagedProcesses {
public:
    enum class Policy {
        join_first,       // join (up to join_timeout), then terminate, then kill: the default
        terminate_first,  // terminate at once, then kill: for children that never end by themselves
    };

    // What finish() had to do, counted over the processes it found still running.
    struct Outcome {
        std::size_t joined = 0;      // ended by themselves within join_timeout
        std::size_t terminated = 0;  // ended after terminate()
        std::size_t killed = 0;      // needed kill()
    };

    explicit ManagedProcesses(double join_timeout_seconds = 5.0, Policy policy = Policy::join_first,
                              double terminate_timeout_seconds = 1.0);
    ManagedProcesses(const ManagedProcesses&) = delete;
    ManagedProcesses& operator=(const ManagedProcesses&) = delete;
    ~ManagedProcesses() noexcept;

    // References p, which must outlive the guard (or be handed over with adopt()).
    Process& add(Process& p);
    // Takes ownership of p (moved in); the returned reference stays valid as long as the guard.
    Process& adopt(Process&& p);
    // Constructs an owned Process(target, args...), not yet started.
    template <class F, class... Args>
    Process& emplace(F&& target, Args&&... args) {
        return adopt(Process(std::forward<F>(target), std::forward<Args>(args)...));
    }

    // Starts every held process not yet started.
    void start_all();

    // Ends every held process now, as the destructor would, and returns what it had to do.
    // The guard stays usable: processes added later are handled by the next finish().
    Outcome finish() noexcept;

    std::size_t size() const noexcept { return procs_.size(); }

private:
    double join_timeout_;
    double terminate_timeout_;
    Policy policy_;
    std::vector<Process*> procs_;
    std::vector<std::unique_ptr<Process>> owned_;
};

}  // namespace mp
