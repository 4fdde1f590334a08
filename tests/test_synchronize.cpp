// tests/test_synchronize.cpp - Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition,
// Barrier, Value and Array: semantics and misuse in one process, then across processes under
// every start method, including holders and parties killed in the middle.
#include "test_profile.hpp"  // MP_POSIX_PORTABLE in the portable POSIX profile
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "sync_state.hpp"
#include "test_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Rounds of locked increments per process: fewer under Wine, where each contended lock is a
// wineserver call or more.
int increments() { return mp_test::under_wine() ? 20000 : 100000; }

}  // namespace

// ---- one process ----------------------------------------------------------------------------

TEST(Lock, AcquireReleaseAndStdGuards) {
    mp::Lock l;
    EXPECT_TRUE(l.acquire());
    EXPECT_TRUE(l.is_owned());
    bool other = true;
    std::thread([&] { other = l.acquire(false); }).join();
    EXPECT_FALSE(other);
    l.release();
    EXPECT_FALSE(l.is_owned());
    {
        std::lock_guard<mp::Lock> g(l);
        std::thread([&] { other = l.try_lock(); }).join();
        EXPECT_FALSE(other);
    }
    std::unique_lock<mp::Lock> u(l, std::defer_lock);
    EXPECT_TRUE(u.try_lock_for(10ms));
    u.unlock();
    EXPECT_TRUE(l.acquire(std::chrono::milliseconds(5)));
    l.release();
}

TEST(Lock, LockedTellsWhetherAnyoneHoldsIt) {
    mp::Lock l;
    mp::RLock r;
    mp::Semaphore s(2);
    mp::BoundedSemaphore b(1);
    EXPECT_FALSE(l.locked());
    EXPECT_FALSE(r.locked());
    l.acquire();
    r.acquire();
    r.acquire();
    bool seen_l = false, seen_r = false;
    std::thread([&] {
        seen_l = l.locked();  // held by another thread: locked all the same
        seen_r = r.locked();
    }).join();
    EXPECT_TRUE(seen_l);
    EXPECT_TRUE(seen_r);
    l.release();
    r.release();
    EXPECT_TRUE(r.locked());  // still held once
    r.release();
    EXPECT_FALSE(r.locked());
    EXPECT_FALSE(s.locked());
    s.acquire();
    EXPECT_FALSE(s.locked());
    s.acquire();
    EXPECT_TRUE(s.locked());
    s.release(2);
    EXPECT_FALSE(b.locked());
    b.acquire();
    EXPECT_TRUE(b.locked());
    b.release();
}

TEST(Lock, MisuseIsReportedNotHung) {
    mp::Lock l;
    EXPECT_THROW(l.release(), mp::ValueError);  // held by no one
    l.acquire();
    EXPECT_FALSE(l.acquire(false));            // this thread holds it: not re-entrant
    const auto t0 = Clock::now();
    EXPECT_FALSE(l.acquire(true, 0.05));       // a timed self-wait times out
    EXPECT_GE(seconds_since(t0), 0.05);
    EXPECT_THROW(l.acquire(), mp::RuntimeError);  // an unbounded one would deadlock
    std::thread([&] { EXPECT_THROW(l.release(), mp::RuntimeError); }).join();  // not the owner
    l.release();
    EXPECT_THROW(l.make_consistent(), mp::RuntimeError);  // not held
}

TEST(RLock, ReentryAndOwnership) {
    mp::RLock r;
    EXPECT_THROW(r.release(), mp::RuntimeError);
    try {
        r.release();
    } catch (const mp::RuntimeError& e) {
        EXPECT_NE(std::string(e.what()).find("cannot release un-acquired lock"), std::string::npos);
    }
    EXPECT_TRUE(r.acquire());
    EXPECT_TRUE(r.acquire());
    EXPECT_TRUE(r.acquire(false));
    bool other = true;
    std::thread([&] { other = r.acquire(false); }).join();
    EXPECT_FALSE(other);
    r.release();
    r.release();
    std::thread([&] { other = r.acquire(false); }).join();
    EXPECT_FALSE(other);  // still held once
    std::thread([&] { EXPECT_THROW(r.release(), mp::RuntimeError); }).join();
    r.release();
    std::thread([&] {
        other = r.acquire(false);
        if (other) r.release();
    }).join();
    EXPECT_TRUE(other);
}

TEST(Lock, MovedFromLockStillWorks) {
    mp::RLock a;
    mp::RLock b = std::move(a);  // a move shares, as a copy does: `a` is not left empty
    EXPECT_TRUE(a.acquire());
    EXPECT_TRUE(b.is_owned());
    EXPECT_TRUE(b.acquire());  // re-entry through the other reference
    a.release();
    bool other = true;
    std::thread([&] { other = b.acquire(false); }).join();
    EXPECT_FALSE(other);  // still held once
    b.release();
    EXPECT_FALSE(a.is_owned());
    mp::Lock c;
    mp::Lock d;
    d = std::move(c);
    EXPECT_TRUE(c.acquire(false));
    EXPECT_FALSE(d.acquire(false));  // the same lock, held by this thread
    c.release();
}

// An RLock re-entered many times, and a thread that comes and goes between: the per-thread
// identity stays distinct and the depth exact.
TEST(RLock, DeepReentryAndManyThreads) {
    mp::RLock r;
    const int depth = 1000;
    for (int i = 0; i < depth; ++i) ASSERT_TRUE(r.acquire(false));
    for (int t = 0; t < 20; ++t) {
        bool other = true, owned = true;
        std::thread([&] {
            owned = r.is_owned();
            other = r.acquire(false);
            if (other) r.release();
        }).join();
        EXPECT_FALSE(owned);
        EXPECT_FALSE(other);
    }
    for (int i = 0; i < depth - 1; ++i) r.release();
    EXPECT_TRUE(r.is_owned());
    r.release();
    EXPECT_FALSE(r.is_owned());
    EXPECT_THROW(r.release(), mp::RuntimeError);
}

TEST(Semaphore, CountsAndBounds) {
    EXPECT_THROW(mp::Semaphore(-1), mp::ValueError);
    mp::Semaphore s(2);
    EXPECT_EQ(s.get_value(), 2);
    EXPECT_TRUE(s.acquire());
    EXPECT_TRUE(s.acquire(false));
    EXPECT_FALSE(s.acquire(false));
    EXPECT_EQ(s.get_value(), 0);
    s.release(2);
    s.release();  // an unbounded semaphore may go past its start
    EXPECT_EQ(s.get_value(), 3);
    EXPECT_THROW(s.release(0), mp::ValueError);

    mp::BoundedSemaphore b(2);
    EXPECT_THROW(b.release(), mp::ValueError);
    b.acquire();
    b.release();
    EXPECT_EQ(b.get_value(), 2);
    b.acquire();
    EXPECT_THROW(b.release(2), mp::ValueError);
    EXPECT_EQ(b.get_value(), 1);
}

TEST(Event, SetClearWaitAcrossThreads) {
    mp::Event e;
    EXPECT_FALSE(e.is_set());
    EXPECT_FALSE(e.wait(0));
    std::thread t([&] {
        std::this_thread::sleep_for(20ms);
        e.set();
    });
    EXPECT_TRUE(e.wait(30.0));
    t.join();
    EXPECT_TRUE(e.is_set());
    EXPECT_TRUE(e.wait(0));
    e.clear();
    EXPECT_FALSE(e.is_set());
}

TEST(Condition, NotifyNeedsTheLockAndWakesWaiters) {
    mp::Condition cv;
    EXPECT_THROW(cv.wait(0.01), mp::RuntimeError);
    EXPECT_THROW(cv.notify(), mp::RuntimeError);
    int ready = 0;
    std::thread t([&] {
        std::lock_guard<mp::Condition> g(cv);
        ready = 1;
        cv.notify_all();
    });
    {
        std::unique_lock<mp::Condition> g(cv);
        EXPECT_TRUE(cv.wait_for([&] { return ready == 1; }, 30.0));
    }
    t.join();
    // An RLock held twice is released whole during the wait and held twice again afterwards.
    mp::RLock r;
    mp::Condition c2(r);
    r.acquire();
    r.acquire();
    std::thread t2([&] {
        std::lock_guard<mp::RLock> g(r);  // possible only while the waiter released it
        ready = 2;
        c2.notify();
    });
    EXPECT_TRUE(c2.wait_for([&] { return ready == 2; }, 30.0));
    EXPECT_TRUE(r.is_owned());
    r.release();
    r.release();
    EXPECT_FALSE(r.is_owned());
    t2.join();
}

TEST(Barrier, ThreadsAbortResetAndBadParties) {
    EXPECT_THROW(mp::Barrier(0), mp::ValueError);
    std::atomic<int> actions{0};
    mp::Barrier b(3, [&] { ++actions; });
    EXPECT_EQ(b.parties(), 3);
    std::vector<std::size_t> idx(3);
    std::vector<std::thread> ts;
    for (int i = 0; i < 3; ++i) ts.emplace_back([&, i] { idx[i] = b.wait(30.0); });
    for (auto& t : ts) t.join();
    std::sort(idx.begin(), idx.end());
    EXPECT_EQ(idx, (std::vector<std::size_t>{0, 1, 2}));
    EXPECT_EQ(actions.load(), 1);

    // abort: a waiter is released with BrokenBarrierError, and so is every later wait.
    std::thread w([&] { EXPECT_THROW(b.wait(30.0), mp::BrokenBarrierError); });
    while (b.n_waiting() != 1) std::this_thread::sleep_for(1ms);
    b.abort();
    w.join();
    EXPECT_TRUE(b.broken());
    EXPECT_THROW(b.wait(1.0), mp::BrokenBarrierError);
    b.reset();
    EXPECT_FALSE(b.broken());

    // reset while one waits: that waiter gets BrokenBarrierError, the barrier is usable after.
    std::thread w2([&] { EXPECT_THROW(b.wait(30.0), mp::BrokenBarrierError); });
    while (b.n_waiting() != 1) std::this_thread::sleep_for(1ms);
    b.reset();
    w2.join();
    EXPECT_FALSE(b.broken());
    ts.clear();
    for (int i = 0; i < 3; ++i) ts.emplace_back([&] { b.wait(30.0); });
    for (auto& t : ts) t.join();
    EXPECT_EQ(actions.load(), 2);

    // A throwing action breaks the barrier and reaches the caller that ran it.
    mp::Barrier bad(1, [] { throw std::runtime_error("action failed"); });
    EXPECT_THROW(bad.wait(), std::runtime_error);
    EXPECT_TRUE(bad.broken());
}

TEST(Synchronize, HugeAndInfiniteTimeoutsMeanNoLimitAndNaNIsRefused) {
    mp_test::time_limit(30);
    const double inf = std::numeric_limits<double>::infinity();
    // Each wait is released 50 ms later by another thread: a timeout that overflowed the clock
    // would have ended at once instead.
    mp::Event e;
    mp::Semaphore s(0);
    std::thread t([&] {
        std::this_thread::sleep_for(50ms);
        e.set();
        s.release();
    });
    EXPECT_TRUE(e.wait(inf));
    EXPECT_TRUE(s.acquire(true, 1e300));
    t.join();
    mp::Lock l;
    mp::Event held;
    std::thread holder([&] {
        l.acquire();
        held.set();
        std::this_thread::sleep_for(50ms);
        l.release();
    });
    ASSERT_TRUE(held.wait(10.0));
    EXPECT_TRUE(l.acquire(true, inf));
    l.release();
    holder.join();
    EXPECT_THROW((void)e.wait(std::nan("")), mp::ValueError);
    EXPECT_THROW((void)s.acquire(true, std::nan("")), mp::ValueError);
}

// mp/duration.hpp: std::nullopt is the one "no limit"; negative seconds are a ValueError (an
// old "-1 for ever" would otherwise be "no time left"); a negative duration is no time left.
TEST(Synchronize, NulloptIsNoLimitAndNegativeSecondsAreRefused) {
    mp_test::time_limit(30);
    mp::Lock l;
    mp::RLock r;
    mp::Semaphore s(1);
    mp::Event e;
    mp::Condition c;
    mp::Barrier b(1);
    EXPECT_THROW((void)l.acquire(true, -1.0), mp::ValueError);
    EXPECT_THROW((void)r.acquire(true, -0.5), mp::ValueError);
    EXPECT_THROW((void)s.acquire(true, -1.0), mp::ValueError);
    EXPECT_THROW((void)e.wait(-1.0), mp::ValueError);
    EXPECT_THROW(b.wait(-1.0), mp::ValueError);
    EXPECT_THROW(mp::Barrier(2, {}, -1.0), mp::ValueError);
    ASSERT_TRUE(c.acquire());
    EXPECT_THROW(c.wait(-1.0), mp::ValueError);
    EXPECT_THROW((void)c.wait_for([] { return false; }, -1.0), mp::ValueError);
    c.release();
    // Not blocking is a try, whatever the timeout says (Python's rule).
    EXPECT_TRUE(l.acquire(false, -1.0));
    l.release();
    // std::nullopt waits without limit; each is released (or already free) so it returns.
    EXPECT_TRUE(l.acquire(true, std::nullopt));
    l.release();
    EXPECT_TRUE(s.acquire(true, std::nullopt));
    s.release();
    e.set();
    EXPECT_TRUE(e.wait(std::nullopt));
    EXPECT_EQ(b.wait(std::nullopt), 0u);
    // A negative duration: no time left, never no limit.
    e.clear();
    EXPECT_FALSE(e.wait(-1ms));
    ASSERT_TRUE(l.acquire());
    std::thread other([&] { EXPECT_FALSE(l.acquire(-5ms)); });
    other.join();
    l.release();
}

TEST(Barrier, ActionMayAskAndAbortButNotWait) {
    mp_test::time_limit(30);
    // The action runs holding the barrier's internal lock, as in Python: asking the barrier
    // about itself from there must not deadlock on that lock.
    int seen_waiting = -1;
    bool seen_broken = true;
    mp::Barrier* self = nullptr;
    mp::Barrier asks(2, [&] {
        seen_waiting = self->n_waiting();
        seen_broken = self->broken();
    });
    self = &asks;
    std::thread other([&] { asks.wait(10.0); });
    asks.wait(10.0);
    other.join();
    EXPECT_EQ(seen_waiting, 2);
    EXPECT_FALSE(seen_broken);

    mp::Barrier aborts(1, [&] { self->abort(); });
    self = &aborts;
    EXPECT_THROW(aborts.wait(10.0), mp::BrokenBarrierError);
    EXPECT_TRUE(aborts.broken());

    mp::Barrier waits(1, [&] { self->wait(1.0); });
    self = &waits;
    EXPECT_THROW(waits.wait(10.0), mp::RuntimeError);
}

TEST(Value, ValueArrayAndRawForms) {
    mp::Value<int> v(5);
    EXPECT_EQ(v.value(), 5);
    v = 7;
    EXPECT_EQ(v.value(), 7);
    {
        std::lock_guard<mp::RLock> g(v.get_lock());
        v.set(v.value() + 1);  // value()/set() re-enter the held RLock
    }
    EXPECT_EQ(v.get_obj(), 8);
    mp::Value<double> raw(1.5, false);
    EXPECT_THROW(raw.get_lock(), mp::RuntimeError);
    EXPECT_EQ(raw.value(), 1.5);
    mp::Value<int, mp::Lock> with_lock(3, mp::Lock());
    with_lock.get_lock().acquire();
    with_lock.get_lock().release();

    mp::Array<int> a({1, 2, 3});
    EXPECT_EQ(a.size(), 3u);
    a[1] = 20;
    EXPECT_EQ(std::vector<int>(a.begin(), a.end()), (std::vector<int>{1, 20, 3}));
    mp::Array<char> z(64, false);
    EXPECT_TRUE(std::all_of(z.begin(), z.end(), [](char c) { return c == 0; }));
    EXPECT_THROW(z.get_lock(), mp::RuntimeError);
    mp::Array<int> empty;
    EXPECT_EQ(empty.size(), 0u);
    // Copies share the memory.
    mp::Array<int> b = a;
    b[0] = 10;
    EXPECT_EQ(a[0], 10);
}

TEST(Synchronize, TimeoutsNeverReturnEarly) {
    const double t = 0.1;
    mp::Lock l;
    l.acquire();
    std::thread([&] {
        auto t0 = Clock::now();
        EXPECT_FALSE(l.acquire(true, t));
        EXPECT_GE(seconds_since(t0), t);
        t0 = Clock::now();
        EXPECT_FALSE(l.acquire(std::chrono::milliseconds(100)));
        EXPECT_GE(seconds_since(t0), t);
    }).join();
    l.release();

    mp::RLock r;
    r.acquire();
    std::thread([&] {
        const auto t0 = Clock::now();
        EXPECT_FALSE(r.acquire(true, t));
        EXPECT_GE(seconds_since(t0), t);
    }).join();
    r.release();

    mp::Event e;
    auto t0 = Clock::now();
    EXPECT_FALSE(e.wait(t));
    EXPECT_GE(seconds_since(t0), t);

    mp::Semaphore s(0);
    t0 = Clock::now();
    EXPECT_FALSE(s.acquire(true, t));
    EXPECT_GE(seconds_since(t0), t);

    mp::Condition cv;
    cv.acquire();
    t0 = Clock::now();
    EXPECT_FALSE(cv.wait(t));
    EXPECT_GE(seconds_since(t0), t);
    t0 = Clock::now();
    EXPECT_FALSE(cv.wait_for([] { return false; }, t));
    EXPECT_GE(seconds_since(t0), t);
    cv.release();

    mp::Barrier b(2);
    t0 = Clock::now();
    EXPECT_THROW(b.wait(t), mp::BrokenBarrierError);
    EXPECT_GE(seconds_since(t0), t);
    EXPECT_TRUE(b.broken());
    mp::Barrier bt(2, {}, t);  // the barrier's own default timeout
    t0 = Clock::now();
    EXPECT_THROW(bt.wait(), mp::BrokenBarrierError);
    EXPECT_GE(seconds_since(t0), t);
}

TEST(Synchronize, OwnerDeadThreadAndUnrecoverable) {
    // A thread that ends holding the lock counts as a dead owner too.
    mp::Lock l;
    std::thread([&] { l.acquire(); }).join();
    EXPECT_THROW(l.acquire(), mp::OwnerDeadError);
    EXPECT_TRUE(l.is_owned());  // the catcher holds it
    l.release();                // ... and releases it without make_consistent()
    try {
        (void)l.acquire(true, 1.0);  // it must throw: either result is the failure below
        ADD_FAILURE() << "a lock released without make_consistent() still worked";
    } catch (const mp::OwnerDeadError&) {
        ADD_FAILURE() << "OwnerDeadError again";
    } catch (const mp::OSError& e) {
        EXPECT_EQ(e.code(), std::errc::state_not_recoverable);
    }
    EXPECT_THROW((void)l.try_lock(), mp::OSError);
}

// The std::error_code forms of acquire: a dead owner is true (held) with owner_dead, a broken
// lock false with state_not_recoverable, a busy lock false with ec clear; misuse still throws.
TEST(Lock, ErrorCodeAcquire) {
    mp::Lock l;
    std::error_code ec = std::make_error_code(std::errc::io_error);
    EXPECT_TRUE(l.acquire(false, std::nullopt, ec));
    EXPECT_FALSE(ec) << "an acquire that succeeds clears ec";
    std::thread([&] {
        std::error_code tec = std::make_error_code(std::errc::io_error);
        EXPECT_FALSE(l.acquire(false, std::nullopt, tec));  // held by another thread
        EXPECT_FALSE(tec) << "not acquired in time is false with ec clear";
        EXPECT_FALSE(l.acquire(true, 0.02, tec));
        EXPECT_FALSE(tec);
        EXPECT_FALSE(l.acquire(std::chrono::milliseconds(20), tec));
        EXPECT_FALSE(tec);
    }).join();
    EXPECT_THROW((void)l.acquire(true, -1.0, ec), mp::ValueError);
    EXPECT_THROW(l.acquire(ec), mp::RuntimeError);  // held by this thread: an unbounded wait would deadlock
    l.release();
    ec = mp::errc::queue_full;
    EXPECT_TRUE(l.acquire(ec));
    EXPECT_FALSE(ec);
    l.release();

    // A thread that ends holding the lock is a dead owner: reported in ec, and the lock is held.
    std::thread([&] { l.acquire(); }).join();
    EXPECT_TRUE(l.acquire(true, 10.0, ec));
    EXPECT_EQ(ec, std::errc::owner_dead) << ec.message();
    EXPECT_TRUE(l.is_owned());
    l.make_consistent();
    l.release();
    EXPECT_TRUE(l.acquire(false, std::nullopt, ec)) << "it works normally again";
    EXPECT_FALSE(ec);
    l.release();

    // Released without make_consistent(): broken for good, false with state_not_recoverable.
    std::thread([&] { l.acquire(); }).join();
    EXPECT_TRUE(l.acquire(ec));
    EXPECT_EQ(ec, std::errc::owner_dead);
    l.release();
    EXPECT_FALSE(l.acquire(true, 1.0, ec));
    EXPECT_EQ(ec, std::errc::state_not_recoverable) << ec.message();
    EXPECT_FALSE(l.is_owned());
    EXPECT_FALSE(l.acquire(ec));
    EXPECT_EQ(ec, std::errc::state_not_recoverable);
    EXPECT_THROW((void)l.try_lock(), mp::OSError);  // the throwing forms are unchanged

    // An RLock: re-entry clears ec too.
    mp::RLock r;
    EXPECT_TRUE(r.acquire(false, std::nullopt, ec));
    ec = mp::errc::queue_full;
    EXPECT_TRUE(r.acquire(false, std::nullopt, ec));
    EXPECT_FALSE(ec);
    r.release();
    r.release();
}

// ---- across processes --------------------------------------------------------------------

namespace {

int add_under_lock(mp::Lock l, mp::Value<long long> counter, int n) {
    long long& c = counter.get_obj();
    for (int i = 0; i < n; ++i) {
        std::lock_guard<mp::Lock> g(l);
        c = c + 1;
    }
    return 0;
}
MP_TARGET(add_under_lock);

int add_under_rlock(mp::RLock r, mp::Value<long long> counter, int n) {
    long long& c = counter.get_obj();
    for (int i = 0; i < n; ++i) {
        std::lock_guard<mp::RLock> g(r);
        std::lock_guard<mp::RLock> again(r);
        c = c + 1;
    }
    return 0;
}
MP_TARGET(add_under_rlock);

int add_under_value_lock(mp::Value<long long> counter, int n) {
    for (int i = 0; i < n; ++i) {
        std::lock_guard<mp::RLock> g(counter.get_lock());
        counter.get_obj() += 1;
    }
    return 0;
}
MP_TARGET(add_under_value_lock);

int hold_until_killed(mp::Lock l, mp::Event held) {
    l.acquire();
    held.set();
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 3;
}
MP_TARGET(hold_until_killed);

int hold_rlock_until_killed(mp::RLock l, mp::Event held) {
    l.acquire();
    l.acquire();
    held.set();
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 3;
}
MP_TARGET(hold_rlock_until_killed);

// A lock its parent holds: the child is another process and so not its owner, even when it
// is a fork of the very thread that holds it. 0: right; bit 1: thought it owned it; bit 2:
// took it.
int probe_parents_lock(mp::RLock r, mp::Lock l) {
    int bad = 0;
    if (r.is_owned() || l.is_owned()) bad |= 1;
    if (r.acquire(false)) bad |= 2;
    if (l.acquire(false)) bad |= 2;
    if (r.acquire(true, 0.01)) bad |= 2;
    return bad;
}
MP_TARGET(probe_parents_lock);

// Works under the semaphore, recording how many are inside at once.
int limited_work(mp::Semaphore s, mp::Lock l, mp::Array<int> inside, int rounds) {
    for (int i = 0; i < rounds; ++i) {
        std::lock_guard<mp::Semaphore> slot(s);
        {
            std::lock_guard<mp::Lock> g(l);
            inside[1] = std::max(inside[1], ++inside[0]);
        }
        std::this_thread::sleep_for(2ms);
        {
            std::lock_guard<mp::Lock> g(l);
            --inside[0];
        }
    }
    return 0;
}
MP_TARGET(limited_work);

int wait_then_mark(mp::Event go, mp::Array<int> marks, int i) {
    if (!go.wait(60.0)) return 1;
    marks[static_cast<std::size_t>(i)] = 1;
    return 0;
}
MP_TARGET(wait_then_mark);

int produce(mp::Condition cv, mp::Value<int> items, int n) {
    for (int i = 0; i < n; ++i) {
        std::lock_guard<mp::Condition> g(cv);
        items.get_obj() += 1;
        cv.notify();
    }
    return 0;
}
MP_TARGET(produce);

int meet(mp::Barrier b, mp::Array<int> seen, int rounds, int me) {
    for (int r = 0; r < rounds; ++r) {
        const std::size_t i = b.wait(60.0);
        seen[static_cast<std::size_t>(r * 3 + static_cast<int>(i))] = me + 1;
    }
    return 0;
}
MP_TARGET(meet);

int meet_expect_broken(mp::Barrier b) {
    try {
        b.wait();
    } catch (const mp::BrokenBarrierError&) {
        return 0;
    }
    return 1;
}
MP_TARGET(meet_expect_broken);

int never_arrive(mp::Barrier b) {
    (void)b;
    std::this_thread::sleep_for(std::chrono::seconds(120));
    return 3;
}
MP_TARGET(never_arrive);

int fill_array(mp::Array<double> a, mp::Value<int> v) {
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = a[i] * 2;
    v = v.value() + 1;
    return a.size() == 4 ? 0 : 1;
}
MP_TARGET(fill_array);

int take_in_turn(mp::Lock l, mp::Value<int> served, mp::Array<int> order, int me) {
    l.acquire();
    order[static_cast<std::size_t>(served.value())] = me;
    served = served.value() + 1;
    l.release();
    return 0;
}
MP_TARGET(take_in_turn);

class SyncMethodTest : public mp_test::MethodTest {};

}  // namespace

// Waiters that queue up one after another for a held lock get it in that order: the mutex
// hands over to the first waiter, and nobody can take a freed lock before it.
TEST_P(SyncMethodTest, LockServesWaitersInArrivalOrder) {
#if defined(MP_POSIX_PORTABLE)
    GTEST_SKIP() << "the portable POSIX profile's lock is a robust pthread mutex, which promises no order among "
                    "its waiters, and POSIX cannot tell that a child sleeps (README, \"Platforms\")";
#endif
    mp_test::time_limit(120);
    constexpr int n = 5;
    mp::Lock l;
    mp::Value<int> served(0, false);
    mp::Array<int> order(n, false);
    mp::sys::Mutex& m = l.state_()->mutexes[0];
    ASSERT_TRUE(l.acquire());
    std::vector<mp::Process> ps;
    for (int i = 0; i < n; ++i) {
        ps.push_back(ctx().Process(take_in_turn, l, served, order, i));
        ps.back().start();
        // Child i is asleep on the lock before child i + 1 starts: the mutex counts it among
        // its sleepers, and on Linux the kernel also says it sleeps. (Wine reports no thread
        // states, so there the count alone tells: it is taken just before the sleeping call.)
        for (;;) {
            const bool counted = mp::sys::mutex_sleepers(m) == static_cast<std::uint32_t>(i + 1);
#if defined(_WIN32)
            if (counted) break;
#else
            if (counted && mp::os::process_state(ps.back().pid().value()) == mp::os::ProcessState::sleeping) break;
#endif
            std::this_thread::sleep_for(1ms);
        }
    }
    l.release();
    for (auto& p : ps) {
        p.join(60);
        EXPECT_EQ(p.exitcode(), 0);
    }
    ASSERT_EQ(served.value(), n);
    for (int i = 0; i < n; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i) << "place " << i;
}

TEST_P(SyncMethodTest, LockMutualExclusion) {
    mp_test::time_limit(120);
    mp::Lock l;
    mp::Value<long long> counter(0, false);
    const int n = increments();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(ctx().Process(add_under_lock, l, counter, n));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(counter.value(), 4LL * n);
}

TEST_P(SyncMethodTest, RLockMutualExclusionWithReentry) {
    mp_test::time_limit(120);
    mp::RLock r;
    mp::Value<long long> counter(0, false);
    const int n = increments() / 2;
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(ctx().Process(add_under_rlock, r, counter, n));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(counter.value(), 4LL * n);
}

TEST_P(SyncMethodTest, ValueGetLockMutualExclusion) {
    mp_test::time_limit(120);
    mp::Value<long long> counter(0);
    const int n = increments() / 2;
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(ctx().Process(add_under_value_lock, counter, n));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(counter.value(), 4LL * n);
}

TEST_P(SyncMethodTest, ChildIsNotTheOwnerOfItsParentsLock) {
    mp::RLock r;
    mp::Lock l;
    ASSERT_TRUE(r.acquire());
    ASSERT_TRUE(r.acquire());
    ASSERT_TRUE(l.acquire());
    mp::Process p = ctx().Process(probe_parents_lock, r, l);
    p.start();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_TRUE(r.is_owned());
    r.release();
    r.release();
    l.release();
}

TEST_P(SyncMethodTest, KilledHolderGivesOwnerDeadThenLockWorks) {
    mp_test::time_limit(240);
    const int trials = mp_test::under_wine() ? 20 : mp_test::under_sanitizer() ? (is_fork() ? 200 : 50)
                                                : is_fork() ? 1000 : 100;
    mp::Lock l;
    mp::Event held;
    double worst = 0;
    for (int t = 0; t < trials; ++t) {
        held.clear();
        mp::Process p = ctx().Process(hold_until_killed, l, held);
        p.start();
        ASSERT_TRUE(held.wait(60.0)) << "trial " << t << ": the child never took the lock";
        // Odd trials: a waiter is already asleep on the lock when the holder dies (the path
        // that must notice the death while waiting); even ones: it comes after the death.
        std::atomic<bool> dead_seen{false};
        auto take = [&] {
            try {
                l.acquire();
            } catch (const mp::OwnerDeadError& e) {
                dead_seen = true;
                EXPECT_EQ(e.code(), std::errc::owner_dead);
            }
            if (dead_seen) l.make_consistent();
            l.release();
        };
        std::thread early;
        if (t % 2) {
            early = std::thread(take);
            std::this_thread::sleep_for(1ms);
        }
        const auto t0 = Clock::now();
        p.kill();
        if (t % 2) {
            early.join();
        } else {
            take();
        }
        worst = std::max(worst, seconds_since(t0));
        ASSERT_TRUE(dead_seen) << "trial " << t;
        ASSERT_TRUE(l.acquire(false)) << "trial " << t;  // works normally again
        l.release();
        p.join();
        EXPECT_EQ(p.exitcode(), -9);
    }
    std::printf("[ info     ] %d killed holders, worst kill-to-OwnerDeadError %.3f ms\n", trials, worst * 1000);
}

TEST_P(SyncMethodTest, TriesAndShortWaitsTellALiveOwnerFromADeadOne) {
    mp_test::time_limit(60);
    mp::Lock l;
    mp::Event held;
    // A live holder that keeps the lock through many of the waiters' looks at it (Linux looks
    // after 1 ms, then every 10 ms) is never mistaken for a dead one.
    mp::Process p = ctx().Process(hold_until_killed, l, held);
    p.start();
    ASSERT_TRUE(held.wait(60.0));
    EXPECT_FALSE(l.acquire(false));
    const auto t0 = Clock::now();
    EXPECT_FALSE(l.acquire(true, 0.3));
    EXPECT_GE(seconds_since(t0), 0.3);
    // Once it is dead, a try finds out at once, and so does a wait shorter than the first
    // look: here reaped (no such process any more), then ended but not reaped (a zombie on
    // POSIX, whose /proc entry is still there).
    p.kill();
    p.join();
    EXPECT_THROW((void)l.acquire(false), mp::OwnerDeadError);
    l.make_consistent();
    l.release();
    held.clear();
    mp::Process q = ctx().Process(hold_until_killed, l, held);
    q.start();
    ASSERT_TRUE(held.wait(60.0));
    q.kill();
    ASSERT_EQ(mp::wait({q}, 30.0).size(), 1u);  // ended; wait does not reap
    EXPECT_THROW((void)l.acquire(true, 0.0005), mp::OwnerDeadError);
    l.make_consistent();
    l.release();
    EXPECT_TRUE(l.acquire(false));
    l.release();
    q.join();
}

TEST_P(SyncMethodTest, KilledRLockHolderAndUnrecoverableAcrossProcesses) {
    mp_test::time_limit(60);
    mp::RLock r;
    mp::Event held;
    mp::Process p = ctx().Process(hold_rlock_until_killed, r, held);
    p.start();
    ASSERT_TRUE(held.wait(60.0));
    p.kill();
    p.join();
    EXPECT_THROW((void)r.acquire(true, 30.0), mp::OwnerDeadError);
    EXPECT_TRUE(r.is_owned());
    EXPECT_TRUE(r.acquire());  // it is an RLock, held once by this thread now
    r.release();
    r.make_consistent();
    r.release();
    EXPECT_FALSE(r.is_owned());

    // The same death, but the new owner releases without make_consistent(): broken for good,
    // in this process and in a fresh child.
    mp::Lock l;
    held.clear();
    mp::Process q = ctx().Process(hold_until_killed, l, held);
    q.start();
    ASSERT_TRUE(held.wait(60.0));
    q.kill();
    q.join();
    EXPECT_THROW(l.acquire(), mp::OwnerDeadError);
    l.release();
    try {
        (void)l.acquire(true, 1.0);  // it must throw: either result is the failure below
        ADD_FAILURE() << "the lock still works";
    } catch (const mp::OwnerDeadError&) {
        ADD_FAILURE() << "OwnerDeadError twice";
    } catch (const mp::OSError& e) {
        EXPECT_EQ(e.code(), std::errc::state_not_recoverable);
    }
}

// The std::error_code form after a killed holder: owner_dead with the lock held, then usable
// after make_consistent(); for an RLock too.
TEST_P(SyncMethodTest, KilledHolderIsOwnerDeadInErrorCodeThenLockWorks) {
    mp_test::time_limit(60);
    mp::Lock l;
    mp::Event held;
    mp::Process p = ctx().Process(hold_until_killed, l, held);
    p.start();
    ASSERT_TRUE(held.wait(60.0));
    std::error_code ec = std::make_error_code(std::errc::io_error);
    EXPECT_FALSE(l.acquire(false, std::nullopt, ec)) << "a live holder: not acquired";
    EXPECT_FALSE(ec) << ec.message();
    p.kill();
    p.join();
    EXPECT_TRUE(l.acquire(std::chrono::seconds(30), ec));
    EXPECT_EQ(ec, std::errc::owner_dead) << ec.message();
    EXPECT_TRUE(l.is_owned());
    l.make_consistent();
    l.release();
    EXPECT_TRUE(l.acquire(false, std::nullopt, ec));
    EXPECT_FALSE(ec) << "works normally again: " << ec.message();
    l.release();

    mp::RLock r;
    held.clear();
    mp::Process q = ctx().Process(hold_rlock_until_killed, r, held);
    q.start();
    ASSERT_TRUE(held.wait(60.0));
    q.kill();
    q.join();
    EXPECT_TRUE(r.acquire(true, 30.0, ec));
    EXPECT_EQ(ec, std::errc::owner_dead) << ec.message();
    EXPECT_TRUE(r.acquire(ec));  // re-entry by the new owner
    EXPECT_FALSE(ec);
    r.release();
    r.make_consistent();
    r.release();
    EXPECT_FALSE(r.is_owned());
    EXPECT_TRUE(r.acquire(false, std::nullopt, ec));
    EXPECT_FALSE(ec);
    r.release();
}

TEST_P(SyncMethodTest, SemaphoreLimitsConcurrencyToThree) {
    mp_test::time_limit(60);
    mp::Semaphore s(3);
    mp::Lock l;
    mp::Array<int> inside(2, false);
    const int rounds = mp_test::under_wine() ? 5 : 20;
    std::vector<mp::Process> ps;
    for (int i = 0; i < 6; ++i) ps.push_back(ctx().Process(limited_work, s, l, inside, rounds));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(inside[0], 0);
    EXPECT_GE(inside[1], 1);
    EXPECT_LE(inside[1], 3);
    EXPECT_EQ(s.get_value(), 3);
}

TEST_P(SyncMethodTest, EventIsAStartSignal) {
    mp_test::time_limit(60);
    mp::Event go;
    mp::Array<int> marks(3, false);
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(ctx().Process(wait_then_mark, go, marks, i));
    for (auto& p : ps) p.start();
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(marks[0] + marks[1] + marks[2], 0);  // nobody went before the signal
    go.set();
    for (auto& p : ps) {
        p.join();
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(marks[0] + marks[1] + marks[2], 3);
}

TEST_P(SyncMethodTest, ConditionProducerConsumer) {
    mp_test::time_limit(60);
    mp::Condition cv;
    mp::Value<int> items(0, false);
    const int n = mp_test::under_wine() ? 200 : 2000;
    mp::Process p = ctx().Process(produce, cv, items, n);
    p.start();
    int consumed = 0;
    {
        std::unique_lock<mp::Condition> g(cv);
        while (consumed < n) {
            ASSERT_TRUE(cv.wait_for([&] { return items.get_obj() > 0; }, 30.0)) << "after " << consumed;
            consumed += items.get_obj();
            items.get_obj() = 0;
        }
    }
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(consumed, n);
}

TEST_P(SyncMethodTest, BarrierAcrossProcesses) {
    mp_test::time_limit(60);
    const int rounds = 5;
    mp::Barrier b(3);
    mp::Array<int> seen(static_cast<std::size_t>(rounds * 3), false);
    mp::Process p1 = ctx().Process(meet, b, seen, rounds, 1);
    mp::Process p2 = ctx().Process(meet, b, seen, rounds, 2);
    p1.start();
    p2.start();
    for (int r = 0; r < rounds; ++r) {
        const std::size_t i = b.wait(60.0);
        seen[static_cast<std::size_t>(r * 3) + i] = 1;
    }
    p1.join();
    p2.join();
    EXPECT_EQ(p1.exitcode(), 0);
    EXPECT_EQ(p2.exitcode(), 0);
    // Every round's indices were distinct: each slot was written exactly once.
    for (int r = 0; r < rounds; ++r) {
        std::vector<int> who(seen.begin() + r * 3, seen.begin() + r * 3 + 3);
        std::sort(who.begin(), who.end());
        EXPECT_EQ(who, (std::vector<int>{1, 2, 3})) << "round " << r;
    }
}

TEST_P(SyncMethodTest, BarrierWithAKilledPartyBreaksByTimeout) {
    mp_test::time_limit(60);
    mp::Barrier b(3, {}, 0.5);
    mp::Process waiter = ctx().Process(meet_expect_broken, b);
    mp::Process doomed = ctx().Process(never_arrive, b);
    waiter.start();
    doomed.start();
    doomed.kill();
    doomed.join();
    EXPECT_THROW(b.wait(), mp::BrokenBarrierError);
    waiter.join();
    EXPECT_EQ(waiter.exitcode(), 0);  // the other waiter was released broken, not hung
    EXPECT_TRUE(b.broken());
    b.reset();
    EXPECT_FALSE(b.broken());
    EXPECT_EQ(b.n_waiting(), 0);
}

TEST_P(SyncMethodTest, ValueAndArrayReachChildren) {
    mp_test::time_limit(60);
    mp::Array<double> a({1.0, 2.0, 3.0, 4.0});
    mp::Value<int> v(41);
    mp::Process p = ctx().Process(fill_array, a, v);
    p.start();
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(std::vector<double>(a.begin(), a.end()), (std::vector<double>{2, 4, 6, 8}));
    EXPECT_EQ(v.value(), 42);
}

MP_INSTANTIATE_FOR_EACH_METHOD(SyncMethodTest);
