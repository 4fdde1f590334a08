// mp/os.hpp - facts about any process by pid: its parent, its executable, its state, its
// priority and its scheduling policy (the tutorials' topics T1-T4; Python spreads these over
// os.getppid, os.getpriority/setpriority, os.sched_getscheduler/sched_setscheduler and psutil).
//
//     int ppid = mp::os::parent_pid_of(pid);          // any pid, not only our own
//     std::string exe = mp::os::executable_of(pid);    // UTF-8 path
//     mp::os::ProcessState s = mp::os::process_state(pid);
//     mp::os::set_priority(pid, 10);                   // POSIX niceness: -20 (high) .. 19 (low)
//
// A pid of 0 means this process everywhere. Errors are Python's:
//   - a pid that names no process                -> mp::ProcessLookupError
//   - not allowed (another user's process, or lowering niceness without CAP_SYS_NICE;
//     Windows: a protected process)              -> mp::PermissionError
//   - a niceness or real-time priority out of range, a negative pid -> mp::ValueError
//   - a scheduling policy the OS does not have (Windows) -> mp::NotImplementedError
// Pids are reused: a pid names a process only while someone keeps it from being reaped (an
// unjoined child of yours, on either OS).
#pragma once

#include <string>

namespace mp::os {

// ---- identity -------------------------------------------------------------------------------

// The parent's pid as the OS records it now. POSIX re-parents an orphan to init (pid 1) or to
// the nearest "child subreaper" (prctl(PR_SET_CHILD_SUBREAPER)), so the answer changes when a
// parent dies. Windows records the parent's pid once, at creation, and never changes it: an
// orphan keeps reporting its dead parent's number, which may by then belong to a stranger.
int parent_pid_of(int pid);

// The file the process was started from, as a UTF-8 path (/proc/<pid>/exe on Linux,
// QueryFullProcessImageNameW on Windows). Empty for a process that has none any more: a
// zombie or a kernel thread on Linux.
std::string executable_of(int pid);

// ---- state ----------------------------------------------------------------------------------

// What a process is doing now. The two OSes see very different amounts:
//
//   state       Linux (/proc/<pid>/stat, field 3)          Windows
//   ---------   ----------------------------------------   -----------------------------------
//   running     R  running or runnable                     alive (any thread may run)
//   sleeping    S  interruptible sleep (I: idle kthread)   - (not told apart from running)
//   disk_wait   D  uninterruptible sleep, usually I/O      -
//   stopped     T  SIGSTOP/SIGTSTP, t  stopped by tracer   - (Windows has no job control)
//   zombie      Z  ended, not yet reaped by its parent     - (see dead)
//   dead        X  being torn down (seen rarely)           ended, but its process object is
//                                                          still held open by some handle: the
//                                                          counterpart of a zombie
//   unknown     any other letter                           -
//
// Windows keeps scheduling state per thread, not per process; the only documented per-process
// facts are "alive" and "ended" (WaitForSingleObject on the process), so mp reports those two
// and does not guess at "sleeping" or "suspended" from thread wait reasons.
enum class ProcessState { running, sleeping, disk_wait, stopped, zombie, dead, unknown };

const char* to_string(ProcessState s) noexcept;  // "running", "sleeping", ...

ProcessState process_state(int pid);

// ---- priority -------------------------------------------------------------------------------

// The POSIX niceness scale: -20 is the highest priority, 19 the lowest, 0 the default.
constexpr int min_niceness = -20;
constexpr int max_niceness = 19;

// The niceness of pid (0: this process). On Linux niceness belongs to each thread; pid names
// the process's main thread, and a child started by mp inherits it from the starting thread.
// Windows has priority classes instead; they map to niceness as follows:
//
//   niceness set    Windows priority class            niceness read back
//   -------------   -------------------------------   ------------------
//   -20 .. -16      REALTIME_PRIORITY_CLASS (*)       -20
//   -15 ..  -6      HIGH_PRIORITY_CLASS               -10
//    -5 ..  -1      ABOVE_NORMAL_PRIORITY_CLASS        -5
//     0 ..   4      NORMAL_PRIORITY_CLASS               0
//     5 ..  14      BELOW_NORMAL_PRIORITY_CLASS        10
//    15 ..  19      IDLE_PRIORITY_CLASS                19
//
// (*) Without SeIncreaseBasePriorityPrivilege Windows silently grants HIGH instead of REALTIME,
// so a read-back of -10 after setting -20 is Windows' answer, not an error.
// The read-back values are the only ones that round-trip exactly on both OSes.
int get_priority(int pid = 0);

// Sets the niceness (see get_priority). Out of -20..19 is a ValueError. On POSIX, raising
// niceness (lowering priority) is always allowed for your own processes; lowering it needs
// CAP_SYS_NICE (or RLIMIT_NICE) and is otherwise a PermissionError, so an unprivileged process
// cannot undo its own set_priority(0, 10).
void set_priority(int pid, int niceness);

// ---- scheduling policy ----------------------------------------------------------------------

// POSIX scheduling policies (sched_setscheduler). other, batch and idle are time-shared and
// take priority 0 (niceness still applies); fifo and rr are real-time and take a static
// priority in scheduling_priority_range() (1..99 on Linux), and need privilege.
// Windows has no policies: every thread is scheduled by its priority (class + thread level),
// so get_scheduling() reports {other, 0} for any live process there, set_scheduling() of
// {other, 0} does nothing, any other policy is a NotImplementedError, and {other, n != 0} is a
// ValueError as on POSIX.
enum class SchedPolicy { other, batch, idle, fifo, rr };

const char* to_string(SchedPolicy p) noexcept;  // "other", "batch", ...

struct Scheduling {
    SchedPolicy policy = SchedPolicy::other;
    int priority = 0;  // the static (real-time) priority; 0 for other/batch/idle
};

// The valid static priorities for a policy: {1, 99} for fifo/rr on Linux, {0, 0} otherwise.
struct PriorityRange {
    int min = 0;
    int max = 0;
};
PriorityRange scheduling_priority_range(SchedPolicy policy);

Scheduling get_scheduling(int pid = 0);

// Sets pid's policy and static priority. A priority outside scheduling_priority_range(policy)
// is a ValueError; a real-time policy without privilege is a PermissionError.
void set_scheduling(int pid, SchedPolicy policy, int priority = 0);

}  // namespace mp::os
