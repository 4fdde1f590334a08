// common/sys/deadline.hpp - the one way the limit of a wait travels through mp.
//
// A user gives a timeout in seconds (< 0, or none: no limit). The public call turns it into a
// Deadline once (common/timeout.hpp, where NaN is a ValueError), and everything below it,
// the platform layer included, waits *until that deadline*: a wait that is cut into pieces (an
// EINTR, a slice, a wake-up meant for another thread) then never stretches the total, and
// Deadline::now() means "look once, do not wait". Infinite and absurdly large timeouts (more
// than about 31 years, beyond which a steady_clock time point overflows) mean no limit, here
// and nowhere else.
//
// The platform files turn a Deadline into what their OS waits with: wait_ms() for poll(2) and
// the Win32 wait functions (rounded up, so that no call ends before the deadline; at most
// 2e9 ms, below both INT_MAX and INFINITE, so an enormous wait is a few calls), left() for
// calls that take a duration. Each OS has one deadline-and-poll helper built on it
// (sys/handle.hpp: poll_until on POSIX, wait_objects and finish_overlapped on Windows).
#pragma once

#include <chrono>
#include <cmath>

namespace mp::sys {

class Deadline {
public:
    using clock = std::chrono::steady_clock;

    // No limit.
    constexpr Deadline() noexcept = default;
    static constexpr Deadline never() noexcept { return Deadline(); }
    // Already passed: look at what is ready, never wait.
    static Deadline now() noexcept { return Deadline(clock::now()); }
    // ms from now; ms < 0, or more than kMaxMs (infinity included): no limit. NaN is the
    // caller's to reject (common/timeout.hpp); here it counts as "no limit".
    static Deadline after_ms(double ms) noexcept {
        if (!(ms >= 0) || ms > kMaxMs) return never();
        return Deadline(clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double, std::milli>(ms)));
    }
    static Deadline after_seconds(double s) noexcept { return s < 0 ? never() : after_ms(s * 1000.0); }
    static Deadline after(std::chrono::nanoseconds d) noexcept {
        if (d < d.zero()) return never();
        return Deadline(clock::now() + std::chrono::duration_cast<clock::duration>(d));
    }
    static Deadline at(clock::time_point t) noexcept { return Deadline(t); }

    bool is_never() const noexcept { return never_; }
    bool passed() const noexcept { return !never_ && clock::now() >= at_; }
    // Time left: 0 once passed; nanoseconds::max() without a limit.
    std::chrono::nanoseconds left() const noexcept {
        if (never_) return std::chrono::nanoseconds::max();
        const auto l = std::chrono::duration_cast<std::chrono::nanoseconds>(at_ - clock::now());
        return l > l.zero() ? l : std::chrono::nanoseconds::zero();
    }
    // The length of one OS wait call towards the deadline, in whole milliseconds rounded up:
    // -1 without a limit, 0 once passed, at most 2e9. Callers wait again while time is left.
    long wait_ms() const noexcept {
        if (never_) return -1;
        const double ms = std::chrono::duration<double, std::milli>(at_ - clock::now()).count();
        if (!(ms > 0)) return 0;
        return ms >= 2e9 ? 2000000000L : static_cast<long>(std::ceil(ms));
    }
    // The earlier of this deadline and `slice` from now: a wait that must look at something
    // else now and then (a dead owner, a flag another thread sets) sleeps in such pieces.
    Deadline or_within(std::chrono::nanoseconds slice) const noexcept {
        const auto t = clock::now() + std::chrono::duration_cast<clock::duration>(slice);
        return never_ || t < at_ ? Deadline(t) : *this;
    }
    clock::time_point time_point() const noexcept { return at_; }

    // About 31 years: past this a deadline is "no limit" (clock::now() + it still fits).
    static constexpr double kMaxMs = 1e12;

private:
    explicit Deadline(clock::time_point t) noexcept : never_(false), at_(t) {}
    bool never_ = true;
    clock::time_point at_{};
};

}  // namespace mp::sys
