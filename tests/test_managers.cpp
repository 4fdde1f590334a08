// tests/test_managers.cpp - managers (mp/managers.hpp): the builtin proxies and Python's
// semantics for each, registered types, nested proxies and reference counts, clients that die,
// hostile clients, timeouts, two separate programs over TCP, and what is left in the file system.
// The cross-process tests run once per start method.
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if !defined(_WIN32)
#include <csignal>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "hmac_sha256.hpp"
#include "test_util.hpp"

namespace counters {

struct Counter {
    int n = 0;
    int add(int k) { return n += k; }
    int get() const { return n; }
    void fail(const std::string& why) { throw mp::ValueError(why); }
    void fail_other() { throw std::out_of_range("custom out_of_range"); }
    std::string label(const std::string& prefix, long x) const { return prefix + std::to_string(x + n); }
    std::vector<int> history(int upto) const {
        std::vector<int> v;
        for (int i = 0; i < upto; ++i) v.push_back(i * n);
        return v;
    }
};
MP_MANAGED(Counter, add, get, fail, fail_other, label, history);

struct CounterProxy : mp::Proxy<Counter> {
    using Proxy::Proxy;
    int add(int k) { return call<&Counter::add>(k); }
    int get() const { return call<&Counter::get>(); }
};

struct Account {
    std::string owner;
    long balance = 0;
    long deposit(long x) { return balance += x; }
    std::string who() const { return owner; }
};
Account make_account(std::string owner, long start) { return Account{std::move(owner), start}; }
MP_MANAGED_FACTORY(Account, make_account, deposit, who);

}  // namespace counters

namespace {

using namespace std::chrono_literals;

int deposit(mp::DictProxy<std::string, int> accounts, mp::AcquirerProxy lock, int times) {
    for (int i = 0; i < times; ++i) {
        std::lock_guard<mp::AcquirerProxy> g(lock);
        accounts["bank"] = accounts["bank"] + 100;
    }
    return 0;
}
MP_TARGET(deposit);

int report(mp::ListProxy<std::string> log, mp::DictProxy<int, int> progress, int id) {
    for (int step = 1; step <= 5; ++step) progress[id] = step * 20;
    log.append("worker " + std::to_string(id) + " done");
    return 0;
}
MP_TARGET(report);

int hammer(mp::ListProxy<int> l, int base, int n) {
    for (int i = 0; i < n; ++i) l.append(base + i);
    return 0;
}
MP_TARGET(hammer);

// The task-manager pattern: take a task while there is one; put the result where all see it.
int task_worker(mp::ListProxy<int> tasks, mp::DictProxy<int, long long> results, mp::AcquirerProxy lock) {
    for (;;) {
        int n = 0;
        {
            std::lock_guard<mp::AcquirerProxy> g(lock);
            if (tasks.size() == 0) return 0;
            n = tasks.pop();
        }
        long long f = 1;
        for (int i = 2; i <= n; ++i) f *= i;
        results[n] = f;
    }
}
MP_TARGET(task_worker);

int wait_for_ready(mp::ConditionProxy cond, mp::ValueProxy<int> ready, mp::EventProxy waiting) {
    std::lock_guard<mp::ConditionProxy> g(cond);
    waiting.set();
    return cond.wait_for([&] { return ready.get() == 1; }, 30.0) ? 0 : 1;
}
MP_TARGET(wait_for_ready);

int use_counter(counters::CounterProxy c, int times) {
    for (int i = 0; i < times; ++i) c.add(1);
    try {
        c.call<&counters::Counter::fail>(std::string("from the child"));
        return 10;
    } catch (const mp::ValueError& e) {
        if (std::string(e.what()) != "from the child") return 11;
    }
    try {
        c.call<&counters::Counter::fail_other>();
        return 12;
    } catch (const mp::RemoteError& e) {
        if (e.type_name() != "std::out_of_range" || e.message() != "custom out_of_range") return 13;
    }
    return 0;
}
MP_TARGET(use_counter);

// A nested proxy, read back in the child from the list that holds it.
int use_nested(mp::ListProxy<mp::DictProxy<std::string, int>> outer) {
    auto inner = outer.at(0);
    inner["seen by the child"] = 1;
    return inner.at("made by the parent") == 7 ? 0 : 1;
}
MP_TARGET(use_nested);

// Takes its own reference to a published dict, says so, and drops it when told.
int hold_then_drop(mp::Address where, std::string key, mp::EventProxy have, mp::EventProxy drop) {
    mp::SyncManager m(where, key);
    m.connect();
    auto d = m.lookup<mp::DictProxy<int, int>>("d");
    have.set();
    if (!drop.wait(60)) return 1;
    d = {};  // the last reference anywhere
    return d.valid() ? 1 : 0;
}
MP_TARGET(hold_then_drop);

// A client that connects itself, makes objects, takes a lock, says so and waits to be killed.
int doomed_client(mp::Address where, std::string key, mp::EventProxy ready) {
    mp::SyncManager m(where, key);
    m.connect();
    auto mine = m.list<int>({1, 2, 3});
    auto d = m.dict<int, int>();
    auto lock = m.lookup<mp::AcquirerProxy>("lock");
    lock.acquire();
    ready.set();
    for (;;) std::this_thread::sleep_for(1s);
}
MP_TARGET(doomed_client);

int consume(mp::JoinableQueueProxy q, mp::DictProxy<int, int> seen) {
    for (;;) {
        const int v = q.get<int>(true, 60.0);
        if (v < 0) {
            q.task_done();
            return 0;
        }
        seen[v] = v * v;
        q.task_done();
    }
}
MP_TARGET(consume);

int at_barrier(mp::BarrierProxy b, mp::ListProxy<int> order, int id) {
    order.append(id);
    b.wait(60);
    order.append(100 + id);
    return 0;
}
MP_TARGET(at_barrier);

int limited(mp::AcquirerProxy sem, mp::ValueProxy<int> inside, mp::ValueProxy<int> peak, mp::AcquirerProxy guard) {
    for (int k = 0; k < 5; ++k) {
        std::lock_guard<mp::AcquirerProxy> s(sem);
        {
            std::lock_guard<mp::AcquirerProxy> g(guard);
            inside.set(inside.get() + 1);
            if (inside.get() > peak.get()) peak.set(inside.get());
        }
        std::this_thread::sleep_for(2ms);
        std::lock_guard<mp::AcquirerProxy> g(guard);
        inside.set(inside.get() - 1);
    }
    return 0;
}
MP_TARGET(limited);

// Waits (bounded) until the manager holds `n` objects: releases arrive as messages.
bool objects_become(mp::BaseManager& m, std::size_t n, std::chrono::seconds limit = 20s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (m.number_of_objects() == n) return true;
        std::this_thread::sleep_for(10ms);
    }
    return m.number_of_objects() == n;
}

}  // namespace

// ---- one process ------------------------------------------------------------------------------

TEST(Manager, DictLikePython) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto d = m.dict<std::string, int>({{"a", 1}});
    d["c"] = 3;
    d.set("b", 2);
    EXPECT_EQ(d.at("a"), 1);
    EXPECT_EQ(static_cast<int>(d["c"]), 3);
    d["c"] += 10;  // a read and a write
    EXPECT_EQ(d.at("c"), 13);
    EXPECT_EQ(d.size(), 3u);
    EXPECT_TRUE(d.contains("b"));
    EXPECT_FALSE(d.contains("z"));
    EXPECT_THROW(d.at("z"), mp::KeyError);
    EXPECT_THROW((void)static_cast<int>(d["z"]), mp::KeyError);
    EXPECT_EQ(d.get("z", -1), -1);
    EXPECT_EQ(d.get("z"), std::nullopt);
    EXPECT_EQ(d.get("c"), 13);
    EXPECT_EQ(d.keys(), (std::vector<std::string>{"a", "c", "b"}));  // insertion order
    EXPECT_EQ(d.values(), (std::vector<int>{1, 13, 2}));
    EXPECT_EQ(d.items(), (mp::Items<std::string, int>{{"a", 1}, {"c", 13}, {"b", 2}}));
    EXPECT_EQ(d.reversed(), (std::vector<std::string>{"b", "c", "a"}));
    d["a"] = 10;  // a new value keeps its place
    EXPECT_EQ(d.keys().front(), "a");
    std::vector<std::string> walked;
    for (const std::string& k : d) walked.push_back(k);
    EXPECT_EQ(walked, (std::vector<std::string>{"a", "c", "b"}));
    EXPECT_EQ(d.setdefault("a", 99), 10);
    EXPECT_EQ(d.setdefault("n", 5), 5);
    EXPECT_EQ(d.pop("n"), 5);
    EXPECT_THROW(d.pop("n"), mp::KeyError);
    EXPECT_EQ(d.pop("n", -7), -7);
    d.erase("c");
    EXPECT_THROW(d.erase("c"), mp::KeyError);
    EXPECT_EQ(d.copy(), (mp::Items<std::string, int>{{"a", 10}, {"b", 2}}));
    d.update({{"x", 1}, {"a", 11}});
    EXPECT_EQ(d.copy(), (mp::Items<std::string, int>{{"a", 11}, {"b", 2}, {"x", 1}}));
    d |= std::map<std::string, int>{{"y", 2}};
    EXPECT_EQ(d.keys().back(), "y");
    EXPECT_EQ((d | mp::Items<std::string, int>{{"b", 20}, {"z", 3}}),
              (mp::Items<std::string, int>{{"a", 11}, {"b", 20}, {"x", 1}, {"y", 2}, {"z", 3}}));
    EXPECT_EQ(d.size(), 4u);  // | made a new dict
    EXPECT_EQ(d.popitem(), (std::pair<std::string, int>{"y", 2}));  // the last inserted
    EXPECT_EQ((mp::DictProxy<std::string, int>::fromkeys(std::vector<std::string>{"p", "q"}, 0)),
              (mp::Items<std::string, int>{{"p", 0}, {"q", 0}}));
    d.clear();
    EXPECT_EQ(d.size(), 0u);
    EXPECT_TRUE(d.empty());
    EXPECT_THROW(d.popitem(), mp::KeyError);
}

TEST(Manager, ListLikePython) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto l = m.list<int>({1, 2});
    l.append(3);
    l.extend({4, 5});
    EXPECT_EQ(l.size(), 5u);
    EXPECT_EQ(l.at(0), 1);
    EXPECT_EQ(static_cast<int>(l[-1]), 5);
    EXPECT_THROW(l.at(5), mp::IndexError);
    EXPECT_THROW(l.at(-6), mp::IndexError);
    l[-2] = 40;
    EXPECT_THROW(l.set(9, 0), mp::IndexError);
    EXPECT_EQ(l.pop(), 5);
    EXPECT_EQ(l.pop(0), 1);
    l.insert(0, 0);
    l.insert(100, 99);  // past the end: appended, as in Python
    l.insert(-100, -1);
    EXPECT_EQ(l.copy(), (std::vector<int>{-1, 0, 2, 3, 40, 99}));
    EXPECT_EQ(l.slice(1, 3), (std::vector<int>{0, 2}));
    EXPECT_EQ(l.slice(-2), (std::vector<int>{40, 99}));
    l.set_slice(1, 3, {7, 7, 7});
    EXPECT_EQ(l.copy(), (std::vector<int>{-1, 7, 7, 7, 3, 40, 99}));
    EXPECT_EQ(l.count(7), 3u);
    EXPECT_EQ(l.index(7), 1u);
    EXPECT_EQ(l.index(7, 2), 2u);
    EXPECT_THROW(l.index(7, 4), mp::ValueError);
    l.remove(7);
    EXPECT_THROW(l.remove(1234), mp::ValueError);
    l.erase_slice(0, 2);
    EXPECT_EQ(l.copy(), (std::vector<int>{7, 3, 40, 99}));
    l.erase(-1);
    EXPECT_TRUE(l.contains(40));
    EXPECT_FALSE(l.contains(99));
    l.reverse();
    EXPECT_EQ(l.copy(), (std::vector<int>{40, 3, 7}));
    l.sort();
    EXPECT_EQ(l.copy(), (std::vector<int>{3, 7, 40}));
    l.sort(std::less<int>(), true);
    EXPECT_EQ(l.copy(), (std::vector<int>{40, 7, 3}));
    EXPECT_EQ(l.reversed(), (std::vector<int>{3, 7, 40}));
    EXPECT_EQ(l + std::vector<int>{1}, (std::vector<int>{40, 7, 3, 1}));
    EXPECT_EQ(l * 2, (std::vector<int>{40, 7, 3, 40, 7, 3}));
    l += std::vector<int>{5};
    l *= 2;
    EXPECT_EQ(l.copy(), (std::vector<int>{40, 7, 3, 5, 40, 7, 3, 5}));
    int sum = 0;
    for (int v : l) sum += v;
    EXPECT_EQ(sum, 110);
    l.clear();
    EXPECT_THROW(l.pop(), mp::IndexError);
}

TEST(Manager, SetLikePython) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto s = m.set<int>({1, 2, 3});
    auto t = m.set<int>({3, 4});
    s.add(2);
    EXPECT_EQ(s.size(), 3u);
    EXPECT_TRUE(s.contains(1));
    s.discard(10);
    EXPECT_THROW(s.remove(10), mp::KeyError);
    const auto u = s | t;
    EXPECT_EQ(std::set<int>(u.begin(), u.end()), (std::set<int>{1, 2, 3, 4}));
    EXPECT_EQ((s & std::vector<int>{2, 3, 9}), (std::vector<int>{2, 3}));
    EXPECT_EQ(s - t, (std::vector<int>{1, 2}));
    const auto x = s ^ t;
    EXPECT_EQ(std::set<int>(x.begin(), x.end()), (std::set<int>{1, 2, 4}));
    EXPECT_TRUE(s.issubset(std::vector<int>{1, 2, 3, 4}));
    EXPECT_TRUE((s <= std::vector<int>{1, 2, 3}));
    EXPECT_FALSE((s < std::vector<int>{1, 2, 3}));
    EXPECT_TRUE((s > std::vector<int>{1}));
    EXPECT_TRUE(s.isdisjoint(std::vector<int>{7, 8}));
    EXPECT_FALSE(s.isdisjoint(t));
    s |= t;  // read in the server, in the same step
    EXPECT_EQ(s.size(), 4u);
    s -= std::vector<int>{1};
    s &= std::vector<int>{2, 3, 4, 5};
    EXPECT_EQ(std::set<int>(s.begin(), s.end()), (std::set<int>{2, 3, 4}));
    s ^= std::vector<int>{4, 6};
    EXPECT_EQ(std::set<int>(s.begin(), s.end()), (std::set<int>{2, 3, 6}));
    const int popped = s.pop();
    EXPECT_FALSE(s.contains(popped));
    s.clear();
    EXPECT_THROW(s.pop(), mp::KeyError);
}

TEST(Manager, ValueArrayNamespace) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto v = m.Value<double>(1.5);
    EXPECT_EQ(v.get(), 1.5);
    v.set(2.25);
    EXPECT_EQ(v.value(), 2.25);
    auto s = m.Value<std::string>("text");
    EXPECT_EQ(s.get(), "text");
    auto a = m.Array<int>(3);
    EXPECT_EQ(a.size(), 3u);
    a[0] = 5;
    a.set(-1, 9);
    EXPECT_EQ(a.copy(), (std::vector<int>{5, 0, 9}));
    EXPECT_THROW(a.at(3), mp::IndexError);
    EXPECT_THROW(a.set(3, 1), mp::IndexError);
    auto b = m.Array<double>(std::vector<double>{0.5, 1.5});
    EXPECT_EQ(b.at(1), 1.5);
    auto ns = m.Namespace();
    ns.set("x", 10);
    ns["name"] = std::string("job");
    EXPECT_EQ(ns.get<int>("x"), 10);
    const std::string name = ns["name"];
    EXPECT_EQ(name, "job");
    EXPECT_TRUE(ns.has("x"));
    EXPECT_EQ(ns.names(), (std::vector<std::string>{"x", "name"}));
    EXPECT_THROW(ns.get<int>("missing"), mp::AttributeError);
    EXPECT_EQ(ns.get_opt<int>("missing"), std::nullopt);
    ns.erase("x");
    EXPECT_THROW(ns.erase("x"), mp::AttributeError);
    // Written as a string: read as another type, a TypeError naming both; read right, fine.
    try {
        (void)ns.get<double>("name");
        ADD_FAILURE() << "a string read as a double";
    } catch (const mp::TypeError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("received std::string"), std::string::npos) << what;
        EXPECT_NE(what.find("where double was expected"), std::string::npos) << what;
    }
    ns.set("n", 300);
    EXPECT_THROW(ns.get<unsigned>("n"), mp::TypeError);
    EXPECT_EQ(ns.get<long>("n"), 300L);  // integers travel by value
    EXPECT_EQ(ns.get<std::string>("name"), "job");
}

TEST(Manager, SyncObjectsInOneProcess) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto lock = m.Lock();
    EXPECT_TRUE(lock.acquire());
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(lock.acquire(false));
    EXPECT_FALSE(lock.acquire(true, 0.05));
    lock.release();
    EXPECT_THROW(lock.release(), mp::RuntimeError);
    auto r = m.RLock();
    r.acquire();
    r.acquire();
    r.release();
    EXPECT_TRUE(r.locked());
    r.release();
    EXPECT_THROW(r.release(), mp::RuntimeError);
    std::thread([r]() mutable {
        EXPECT_TRUE(r.acquire());
        r.release();
    }).join();
    auto sem = m.Semaphore(2);
    EXPECT_TRUE(sem.acquire());
    EXPECT_TRUE(sem.acquire());
    EXPECT_FALSE(sem.acquire(false));
    EXPECT_EQ(sem.get_value(), 0);
    sem.release(2);
    EXPECT_EQ(sem.get_value(), 2);
    auto bsem = m.BoundedSemaphore(1);
    EXPECT_THROW(bsem.release(), mp::ValueError);
    auto ev = m.Event();
    EXPECT_FALSE(ev.is_set());
    EXPECT_FALSE(ev.wait(0.05));
    EXPECT_THROW((void)ev.wait(-1.0), mp::ValueError);  // std::nullopt is "no limit" (mp/duration.hpp)
    EXPECT_THROW((void)sem.acquire(true, -1.0), mp::ValueError);
    EXPECT_THROW(ev.set_timeout(-1.0), mp::ValueError);
    EXPECT_FALSE(ev.timeout().has_value());
    ev.set();
    EXPECT_TRUE(ev.wait(0.05));
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    auto cond = m.Condition();
    EXPECT_THROW(cond.wait(0.01), mp::RuntimeError);  // not held
    EXPECT_THROW(cond.notify(), mp::RuntimeError);
    cond.acquire();
    EXPECT_FALSE(cond.wait(0.05));  // nobody notifies; the lock is held again after
    cond.notify_all();
    cond.release();
    auto barrier = m.Barrier(1);
    EXPECT_EQ(barrier.wait(), 0u);
    EXPECT_EQ(barrier.parties(), 1);
    auto b2 = m.Barrier(2);
    EXPECT_THROW(b2.wait(0.05), mp::BrokenBarrierError);
    EXPECT_TRUE(b2.broken());
    b2.reset();
    EXPECT_FALSE(b2.broken());
    b2.abort();
    EXPECT_THROW(b2.wait(), mp::BrokenBarrierError);
    auto q = m.Queue(2);
    q.put(1);
    q.put_nowait(std::string("two"));
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait(3), mp::queue::Full);
    EXPECT_THROW(q.put(3, true, 0.05), mp::queue::Full);
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_EQ(q.get<int>(), 1);
    EXPECT_EQ(q.get<std::string>(), "two");
    EXPECT_TRUE(q.empty());
    EXPECT_THROW(q.get_nowait<int>(), mp::queue::Empty);
    EXPECT_THROW(q.get<int>(true, 0.05), mp::queue::Empty);
    EXPECT_EQ(q.maxsize(), 2);
    auto jq = m.JoinableQueue();
    jq.put(1);
    EXPECT_FALSE(jq.join(0.05));
    jq.get<int>();
    jq.task_done();
    EXPECT_TRUE(jq.join(0.05));
    EXPECT_THROW(jq.task_done(), mp::ValueError);
}

TEST(Manager, ABlockedCallDoesNotHoldUpOtherThreads) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto q = m.Queue();
    auto d = m.dict<int, int>();
    std::thread blocked([q]() mutable { EXPECT_EQ(q.get<int>(true, 30.0), 7); });
    for (int i = 0; i < 100; ++i) d[i] = i;  // on another connection of this process
    EXPECT_EQ(d.size(), 100u);
    q.put(7);
    blocked.join();
}

TEST(Manager, ThreadsOfOneProcessShareTheManager) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto l = m.list<int>();
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([l, t]() mutable {
            for (int i = 0; i < 100; ++i) l.append(t);
        });
    for (auto& th : ts) th.join();
    EXPECT_EQ(l.size(), 400u);
}

TEST(Manager, EveryCallHasATimeoutForm) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto q = m.Queue();
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_THROW(q.with_timeout(0.2).get<int>(), mp::TimeoutError);  // get() itself has no limit
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 200ms);
    EXPECT_THROW(mp::with_timeout(q, 0.1).get<int>(), mp::TimeoutError);
    EXPECT_THROW(q.get<int>(true, 0.1), mp::queue::Empty);  // the method's own timeout
    q.put(5);
    EXPECT_EQ(q.with_timeout(5).get<int>(), 5);  // nothing was lost to the timed-out calls
    EXPECT_TRUE(q.empty());
    auto lock = m.Lock();
    lock.acquire();
    EXPECT_THROW(lock.with_timeout(0.1).acquire(), mp::TimeoutError);
    lock.release();
    EXPECT_TRUE(lock.with_timeout(5).acquire());  // the timed-out acquire took nothing
    lock.release();
    m.set_call_timeout(0.1);
    auto ev = m.Event();
    EXPECT_THROW(ev.wait(), mp::TimeoutError);
    EXPECT_FALSE(ev.wait(0.01));
    auto d = m.dict<int, int>({{1, 2}});
    EXPECT_EQ(d.with_timeout(5).at(1), 2);
    EXPECT_THROW(d.with_timeout(std::nan("")), mp::ValueError);
}

TEST(Manager, RegisteredTypeInOneProcess) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto c = m.create<counters::Counter>();
    EXPECT_EQ(c.call<&counters::Counter::add>(5), 5);
    EXPECT_EQ(c.call<&counters::Counter::get>(), 5);
    EXPECT_EQ(c.call<&counters::Counter::label>("n=", 1), "n=6");  // const char* and int convert
    EXPECT_EQ(c.call<&counters::Counter::history>(3), (std::vector<int>{0, 5, 10}));
    EXPECT_EQ(c.call_method<int>("add", 1), 6);  // by name, as Python's _callmethod
    EXPECT_THROW(c.call_method<int>("nope"), mp::AttributeError);
    EXPECT_THROW(c.call_method<int>("add", std::string("not an int")), mp::TypeError);
    try {
        c.call<&counters::Counter::fail>(std::string("why"));
        ADD_FAILURE() << "no exception";
    } catch (const mp::ValueError& e) {
        EXPECT_STREQ(e.what(), "why");
    }
    try {
        c.call<&counters::Counter::fail_other>();
        ADD_FAILURE() << "no exception";
    } catch (const mp::RemoteError& e) {
        EXPECT_EQ(e.type_name(), "std::out_of_range");
        EXPECT_EQ(e.message(), "custom out_of_range");
    }
    auto cp = m.create<counters::CounterProxy>();
    EXPECT_EQ(cp.add(2), 2);
    EXPECT_EQ(cp.get(), 2);
    auto acct = m.create<counters::Account>("ann", 10L);
    EXPECT_EQ(acct.call<&counters::Account::deposit>(5), 15);
    EXPECT_EQ(acct.call<&counters::Account::who>(), "ann");
    EXPECT_EQ(c.type_id(), "Counter");
}

TEST(Manager, ShutdownEndsTheServerAndProxiesSaySo) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto d = m.dict<int, int>();
    d[1] = 1;
    const mp::Address where = m.address();
    m.shutdown();
    if (where.family == mp::AddressFamily::unix_socket) {
        EXPECT_FALSE(std::filesystem::exists(where.path)) << where.path << " was left behind";
    }
    EXPECT_THROW(d.at(1), mp::ProcessError);
    EXPECT_THROW((m.dict<int, int>()), mp::ProcessError);
    m.shutdown();  // twice is harmless
    EXPECT_EQ(mp_test::count_children(), 0);
}

TEST(Manager, LifecycleErrors) {
    mp_test::time_limit(60);
    mp::SyncManager m;
    EXPECT_THROW(m.Queue(), mp::ProcessError);  // neither started nor connected
    m.start();
    EXPECT_THROW(m.start(), mp::ProcessError);
    EXPECT_THROW(m.connect(), mp::ProcessError);
    EXPECT_TRUE(m.started());
    EXPECT_EQ(m.authkey().size(), 64u);  // a random key
    m.shutdown();
    EXPECT_THROW(m.start(), mp::ProcessError);
    mp::SyncManager no_key(mp::Address::tcp("127.0.0.1", 1));
    EXPECT_THROW(no_key.connect(), mp::ValueError);
}

TEST(Manager, TcpServersBindLoopbackUnlessTold) {
    mp_test::time_limit(60);
    mp::SyncManager m(mp::Address::tcp("", 0), "key");
    mp::ManagerServer server = m.get_server();
    EXPECT_EQ(server.address().host, "127.0.0.1");
    EXPECT_NE(server.address().port, 0);
}

TEST(Manager, ServeForeverInThisProcessStopsWithClientsConnected) {
    mp_test::time_limit(60);
    for (const mp::Address& where : {mp::arbitrary_address(mp::default_family()), mp::Address::tcp("", 0)}) {
        mp::SyncManager m(where, "k");
        mp::ManagerServer server = m.get_server();
        std::atomic<bool> returned{false};
        std::thread serving([&] {
            server.serve_forever(false);
            returned = true;
        });
        mp::SyncManager client(server.address(), "k");
        client.connect();
        auto d = client.dict<int, int>({{1, 1}});
        auto q = client.Queue();
        std::thread blocked([q]() mutable { EXPECT_THROW(q.get<int>(), mp::ProcessError); });  // waits in the server
        EXPECT_EQ(d.at(1), 1);  // an idle connection, and one in a wait
        server.stop();
        serving.join();  // returns although both connections were open
        blocked.join();
        EXPECT_TRUE(returned.load());
        EXPECT_THROW(d.at(1), mp::ProcessError);
        if (where.family == mp::AddressFamily::unix_socket) {
            EXPECT_FALSE(std::filesystem::exists(server.address().path));
        }
    }
}

#if !defined(_WIN32)
namespace {
// Waits (bounded) for a raw fork child; its exit code, or -1 (then it is killed) when it hangs
// or dies by a signal.
int wait_forked(pid_t pid, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    int status = 0;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (r < 0) return -1;
        if (std::chrono::steady_clock::now() > end) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        std::this_thread::sleep_for(5ms);
    }
}
}  // namespace
#endif

// A fork child (os.fork in Python) of a process that owns a started manager and a server it
// serves itself holds copies of both; when the child destroys them (or exits through the
// statics' destructors), the parent's server goes on serving and its clients keep their
// connections, as CPython's finalizers run only in the process that made them.
TEST(Manager, AForkChildsCopyIsNotTheServer) {
#if defined(_WIN32)
    GTEST_SKIP() << "fork() is POSIX: a Windows child never holds a copy of its parent's objects";
#else
    mp_test::time_limit(60);
    mp::Manager m;
    auto d = m.dict<int, int>({{1, 1}});
    mp::SyncManager served(mp::arbitrary_address(mp::default_family()), "k");
    mp::ManagerServer server = served.get_server();
    mp::SyncManager client(server.address(), "k");
    client.connect();
    auto d2 = client.dict<int, int>({{2, 2}});
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        d = {};
        d2 = {};
        { mp::Manager gone = std::move(m); }
        { mp::SyncManager gone = std::move(client); }
        { mp::ManagerServer gone = std::move(server); }
        ::_exit(0);
    }
    EXPECT_EQ(wait_forked(pid, 30s), 0) << "the fork child did not end cleanly";
    // Both servers serve, with their objects and the connections they had.
    EXPECT_EQ(d.at(1), 1);
    EXPECT_EQ(d2.at(2), 2);
    EXPECT_EQ(m.number_of_objects(), 1u);
    EXPECT_EQ(client.number_of_objects(), 1u);
    mp::SyncManager another(server.address(), "k");
    another.connect(10.0);
    auto d3 = another.dict<int, int>({{3, 3}});
    EXPECT_EQ(d3.at(3), 3);
    if (m.address().family == mp::AddressFamily::unix_socket) {
        EXPECT_TRUE(std::filesystem::exists(m.address().path));
        EXPECT_TRUE(std::filesystem::exists(server.address().path));
    }
#endif
}

TEST(Manager, ReferenceCountsFreeObjects) {
    mp_test::time_limit(60);
    mp::Manager m;
    EXPECT_EQ(m.number_of_objects(), 0u);
    {
        auto d = m.dict<int, int>();
        auto copy = d;  // copies share one reference
        auto l = m.list<int>();
        EXPECT_EQ(m.number_of_objects(), 2u);
        d = mp::DictProxy<int, int>();
        EXPECT_EQ(m.number_of_objects(), 2u);  // `copy` still holds it
    }
    EXPECT_TRUE(objects_become(m, 0));
    // Nested: the outer list holds the inner dict after the inner proxy is gone.
    auto outer = m.list<mp::DictProxy<std::string, int>>();
    {
        auto inner = m.dict<std::string, int>({{"x", 1}});
        outer.append(inner);
    }
    EXPECT_TRUE(objects_become(m, 2));
    auto back = outer.at(0);
    EXPECT_EQ(back.at("x"), 1);
    back["y"] = 2;
    outer.clear();
    EXPECT_EQ(m.number_of_objects(), 2u);  // `back` holds it now
    back = {};
    EXPECT_TRUE(objects_become(m, 1));
    outer.append(m.dict<std::string, int>());
    EXPECT_TRUE(objects_become(m, 2));
    outer = {};  // freeing the list frees what it held
    EXPECT_TRUE(objects_become(m, 0)) << m.debug_info();
    // Published objects live under their name.
    {
        auto q = m.Queue();
        m.publish("jobs", q);
    }
    EXPECT_TRUE(objects_become(m, 1));
    EXPECT_EQ(m.published(), (std::vector<std::string>{"jobs"}));
    EXPECT_THROW(m.lookup<mp::EventProxy>("jobs"), mp::TypeError);
    EXPECT_THROW(m.lookup<mp::QueueProxy>("nothing"), mp::KeyError);
    m.lookup<mp::QueueProxy>("jobs").put(1);
    m.unpublish("jobs");
    EXPECT_TRUE(objects_become(m, 0));
}

TEST(Manager, ConnectFromThisProcessWithTheKey) {
    mp_test::time_limit(60);
    mp::Manager owner;
    auto d = owner.dict<std::string, int>({{"k", 1}});
    owner.publish("d", d);
    mp::SyncManager other(owner.address(), owner.authkey());
    other.connect();
    auto same = other.lookup<mp::DictProxy<std::string, int>>("d");
    same["k"] = 2;
    EXPECT_EQ(d.at("k"), 2);
    mp::SyncManager wrong(owner.address(), "not the key");
    EXPECT_THROW(wrong.connect(), mp::AuthenticationError);
}

// ---- hostile clients ----------------------------------------------------------------------------

namespace {

// The wire as a broken or hostile client writes it: a bare TCP socket.
void send_frame(mp::Socket& s, const std::string& m) {
    unsigned char h[4];
    for (int i = 0; i < 4; ++i) h[i] = static_cast<unsigned char>(m.size() >> (8 * i));
    // One write: a header and a body in two would wait for a delayed ACK (Nagle) each time.
    s.sendall(std::string(reinterpret_cast<const char*>(h), 4) + m);
}

std::string recv_exactly(mp::Socket& s, std::size_t n) {
    std::string out;
    while (out.size() < n) {
        const mp::bytes b = s.recv(n - out.size());
        if (b.empty()) throw mp::EOFError("closed");
        out.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    return out;
}

std::string recv_frame(mp::Socket& s) {
    const std::string h = recv_exactly(s, 4);
    std::size_t n = 0;
    for (int i = 0; i < 4; ++i) n |= std::size_t{static_cast<unsigned char>(h[static_cast<std::size_t>(i)])} << (8 * i);
    return recv_exactly(s, n);
}

// Runs the client's half of the handshake by hand (what mp::Client does), then sends `after`:
// any bytes at all. The last handshake frame and `after` go in one write, or Nagle would hold
// `after` back until the server's delayed ACK of that frame.
mp::Socket authenticated_socket(const mp::Address& a, const std::string& key, const std::string& after) {
    mp::Socket s(mp::AddressFamily::inet);
    s.settimeout(10.0);
    s.connect(a);
    const std::string challenge = recv_frame(s);
    const std::string message = challenge.substr(std::string("#CHALLENGE#").size());
    const auto d = mp::detail::hmac_sha256(key.data(), key.size(), message.data(), message.size());
    send_frame(s, "{sha256}" + std::string(reinterpret_cast<const char*>(d.data()), d.size()));
    if (recv_frame(s) != "#WELCOME#") throw mp::AuthenticationError("refused");
    send_frame(s, "#CHALLENGE#{sha256}" + std::string(40, 'n'));
    (void)recv_frame(s);  // the server's answer; we trust it
    s.sendall(std::string("\x09\0\0\0#WELCOME#", 13) + after);
    return s;
}

// Waits until the server closes the socket (it must, after garbage).
bool closed_by_server(mp::Socket& s) {
    try {
        for (;;)
            if (s.recv(4096).empty()) return true;
    } catch (const mp::TimeoutError&) {
        return false;
    } catch (const std::exception&) {
        return true;  // reset
    }
}

void hostile(const mp::Address& a, int kind) {
    try {
        mp::Socket s(mp::AddressFamily::inet);
        s.settimeout(10.0);
        s.connect(a);
        switch (kind) {
        case 0: break;                                                // connects and goes
        case 1: s.sendall(std::string("garbage, not a handshake answer")); break;
        case 2: s.sendall(std::string("\xff\xff\xff\xff\0\0\0\0\0\1\0\0", 12)); break;  // 2^40 bytes announced
        case 3: send_frame(s, std::string(300, 'x')); break;          // longer than a handshake message may be
        case 4: s.sendall(std::string("\x20\0\0\0{sha", 8)); break;  // truncated, then gone
        default: break;
        }
        if (kind == 1 || kind == 3) closed_by_server(s);
    } catch (const std::exception&) {  // the server may close first: that is the point
    }
}

}  // namespace

TEST(Manager, HostileClientsCostOnlyTheirConnection) {
    mp_test::time_limit(900);
    mp::SyncManager m(mp::Address::tcp("", 0), "the key");
    mp::ManagerServer server = m.get_server();
    const mp::Address a = server.address();
    // A client that connects and says nothing does not hold up the next one.
    mp::Socket silent(mp::AddressFamily::inet);
    silent.connect(a);
    {
        mp::SyncManager good(a, "the key");
        const auto t0 = std::chrono::steady_clock::now();
        good.connect(5.0);
        good.dict<int, int>()[1] = 1;
        EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "a silent client held up the server";
    }
    // 10,000 clients that never authenticate: they connect and go, send garbage, announce a
    // huge message, send more than a handshake message may be, or stop half way.
    const int n = mp_test::under_wine() ? 1000 : 10000;  // each connection is many wineserver calls
    std::atomic<int> done{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
        ts.emplace_back([&, t] {
            for (int i = t; i < n; i += 4) {
                hostile(a, i % 5);
                ++done;
            }
        });
    for (auto& th : ts) th.join();
    EXPECT_EQ(done.load(), n);
    // Clients that hold the key and then misbehave: each loses its connection, nothing more.
    const std::vector<std::string> after_auth = {
        std::string("\xff\xff\xff\xff\0\0\0\0\0\1\0\0", 12),  // 2^40 bytes announced
        std::string("\x00\x00\x00\x10", 4) + "short",                 // truncated, then gone
        std::string("\x05\x00\x00\x00", 4) + "\x07\x01\x02\x03\x04",    // a frame that is no request
        std::string("\x03\x00\x00\x00\x01\x00\x00", 7),               // a hello cut short
    };
    for (int i = 0; i < (mp_test::under_wine() ? 40 : 200); ++i) {
        try {
            mp::Socket s = authenticated_socket(a, "the key", after_auth[static_cast<std::size_t>(i) % after_auth.size()]);
            if (i % after_auth.size() != 1) {
                EXPECT_TRUE(closed_by_server(s)) << "case " << i % after_auth.size();
            }
        } catch (const mp::AuthenticationError&) {
            ADD_FAILURE() << "the right key was refused";
        }
    }
    silent.close();
    // The server still works for a good client, and holds nothing for the others.
    mp::SyncManager good(a, "the key");
    good.connect(10.0);
    auto d = good.dict<int, int>({{1, 2}});
    EXPECT_EQ(d.at(1), 2);
    auto q = good.Queue();
    q.put(1);
    EXPECT_EQ(q.get<int>(), 1);
    d = {};
    q = {};
    EXPECT_TRUE(objects_become(good, 0));
}

// ---- across processes, for each start method -----------------------------------------------------

class ManagerMethodTest : public mp_test::MethodTest {};

TEST_P(ManagerMethodTest, BankDepositReaches4000) {
    mp_test::time_limit(180);
    mp::Manager m(ctx());
    auto accounts = m.dict<std::string, int>({{"bank", 0}});
    auto lock = m.Lock();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(ctx().Process(deposit, accounts, lock, 10));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join(120);
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(accounts.at("bank"), 4000);
}

TEST_P(ManagerMethodTest, ProgressMonitorAndLogFromChildren) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto log = m.list<std::string>();
    auto progress = m.dict<int, int>();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(ctx().Process(report, log, progress, i));
    for (auto& p : ps) p.start();
    for (auto& p : ps) p.join(60);
    std::map<int, int> seen;
    for (auto& [k, v] : progress.items()) seen[k] = v;
    EXPECT_EQ(seen, (std::map<int, int>{{0, 100}, {1, 100}, {2, 100}}));
    EXPECT_EQ(log.size(), 3u);
}

TEST_P(ManagerMethodTest, TaskManagerPattern) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto tasks = m.list<int>({5, 10, 15, 20});
    auto results = m.dict<int, long long>();
    auto lock = m.Lock();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 2; ++i) ps.push_back(ctx().Process(task_worker, tasks, results, lock));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join(60);
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_EQ(results.size(), 4u);
    EXPECT_EQ(results.at(20), 2432902008176640000LL);
    EXPECT_EQ(tasks.size(), 0u);
}

TEST_P(ManagerMethodTest, ConditionMadeByTheManagerWithItsOwnLock) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    for (int with_lock = 0; with_lock < 2; ++with_lock) {
        auto lock = m.Lock();
        auto cond = with_lock ? m.Condition(lock) : m.Condition();
        auto ready = m.Value<int>(0);
        auto waiting = m.Event();
        mp::Process waiter = ctx().Process(wait_for_ready, cond, ready, waiting);
        waiter.start();
        ASSERT_TRUE(waiting.wait(60));  // the child holds the condition's lock, then waits in it
        {
            std::lock_guard<mp::ConditionProxy> g(cond);  // only once the child waits
            if (with_lock) {
                EXPECT_TRUE(lock.locked());  // the condition's lock is `lock`
            }
            ready.set(1);
            cond.notify_all();
        }
        waiter.join(60);
        EXPECT_EQ(waiter.exitcode(), 0);
    }
}

TEST_P(ManagerMethodTest, ParentAndChildUseOneProxyAtOnce) {
    mp_test::time_limit(120);
    // Under fork the child starts with a copy of the parent's connections; it must open its own,
    // or the two processes' requests would mix on one socket.
    mp::Manager m(ctx());
    auto l = m.list<int>();
    l.append(-1);  // the parent's connections are open before the fork
    mp::Process p = ctx().Process(hammer, l, 1000, 300);
    p.start();
    hammer(l, 0, 300);
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    const std::vector<int> all = l.copy();
    EXPECT_EQ(all.size(), 601u);
    int child = 0;
    for (int v : all) child += v >= 1000;
    EXPECT_EQ(child, 300);
}

TEST_P(ManagerMethodTest, RegisteredTypeUsedFromChildren) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto c = m.create<counters::CounterProxy>();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(ctx().Process(use_counter, c, 10));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join(60);
        EXPECT_EQ(p.exitcode(), 0) << "1x: the exception did not come back as it should";
    }
    EXPECT_EQ(c.get(), 30);
}

TEST_P(ManagerMethodTest, NestedProxiesWorkInChildren) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto outer = m.list<mp::DictProxy<std::string, int>>();
    outer.append(m.dict<std::string, int>({{"made by the parent", 7}}));
    mp::Process p = ctx().Process(use_nested, outer);
    p.start();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(outer.at(0).at("seen by the child"), 1);
}

TEST_P(ManagerMethodTest, ObjectsLiveWhileAnyProcessHoldsThem) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto d = m.dict<int, int>({{1, 1}});
    m.publish("d", d);
    auto have = m.Event();
    auto drop = m.Event();
    mp::Process p = ctx().Process(hold_then_drop, m.address(), m.authkey(), have, drop);
    p.start();
    ASSERT_TRUE(have.wait(60));
    m.unpublish("d");
    d = {};  // this process's reference goes
    EXPECT_EQ(m.number_of_objects(), 3u) << m.debug_info();  // the child holds the dict
    drop.set();
    EXPECT_TRUE(objects_become(m, 2)) << m.debug_info();
    p.join(60);
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(ManagerMethodTest, AKilledClientReleasesItsReferencesAndLocks) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto lock = m.Lock();
    m.publish("lock", lock);
    auto ready = m.Event();
    const std::size_t before = m.number_of_objects();
    mp::Process p = ctx().Process(doomed_client, m.address(), m.authkey(), ready);
    p.start();
    ASSERT_TRUE(ready.wait(60));
    EXPECT_EQ(m.number_of_objects(), before + 2);
    EXPECT_FALSE(lock.acquire(true, 0.05));  // the child holds it
    p.kill();
    p.join(60);
    EXPECT_TRUE(objects_become(m, before)) << m.debug_info();
    EXPECT_THROW((void)lock.acquire(true, 30), mp::OwnerDeadError);  // its holder died: we hold it now
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_TRUE(lock.acquire(false));  // and it works as before
    lock.release();
}

TEST_P(ManagerMethodTest, QueuesEventsBarriersSemaphoresAcrossProcesses) {
    mp_test::time_limit(180);
    mp::Manager m(ctx());
    auto q = m.JoinableQueue();
    auto seen = m.dict<int, int>();
    mp::Process c = ctx().Process(consume, q, seen);
    c.start();
    for (int i = 0; i < 50; ++i) q.put(i);
    q.put(-1);
    EXPECT_TRUE(q.join(60));
    c.join(60);
    EXPECT_EQ(c.exitcode(), 0);
    EXPECT_EQ(seen.size(), 50u);
    EXPECT_EQ(seen.at(7), 49);

    auto b = m.Barrier(3);
    auto order = m.list<int>();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 3; ++i) ps.push_back(ctx().Process(at_barrier, b, order, i));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join(60);
        EXPECT_EQ(p.exitcode(), 0);
    }
    const auto o = order.copy();
    ASSERT_EQ(o.size(), 6u);
    for (int k = 0; k < 3; ++k) EXPECT_LT(o[static_cast<std::size_t>(k)], 100) << "someone passed the barrier early";

    auto sem = m.Semaphore(2);
    auto inside = m.Value<int>(0), peak = m.Value<int>(0);
    auto guard = m.Lock();
    ps.clear();
    for (int i = 0; i < 4; ++i) ps.push_back(ctx().Process(limited, sem, inside, peak, guard));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join(60);
        EXPECT_EQ(p.exitcode(), 0);
    }
    EXPECT_LE(peak.get(), 2);
    EXPECT_GE(peak.get(), 1);
}

MP_INSTANTIATE_FOR_EACH_METHOD(ManagerMethodTest);

// ---- separate programs ------------------------------------------------------------------------

namespace {

namespace sp = mp::subprocess;

// Starts the peer program; its first line of output says where it serves.
sp::Popen peer(const std::vector<std::string>& args) {
    std::vector<std::string> all{mp_test::path_beside("mp_test_manager_peer")};
    all.insert(all.end(), args.begin(), args.end());
    return sp::Popen(all, sp::Options().std_out(sp::PIPE).std_err(sp::STDOUT).text());
}

std::string first_word_after(const std::string& line, const std::string& tag) {
    const auto at = line.find(tag);
    if (at == std::string::npos) return {};
    std::string rest = line.substr(at + tag.size());
    while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.pop_back();
    return rest;
}

bool exists_file(const std::string& path) {
    std::error_code ec;
    return std::filesystem::exists(path, ec);
}

// Reaps (bounded) the orphans that came to this process, the subreaper, until none is left.
bool orphans_reaped(std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
#if !defined(_WIN32)
        int status = 0;
        while (::waitpid(-1, &status, WNOHANG) > 0) {
        }
#endif
        if (mp_test::count_children() == 0) return true;
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
}

bool disappears(const std::string& path, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (exists_file(path)) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

}  // namespace

TEST(ManagerPrograms, TwoProgramsOverLoopbackTcp) {
    mp_test::time_limit(180);
    sp::Popen server = peer({"serve", "shared secret"});
    const std::string line = server.stdout_pipe().readline(60);
    const std::string port = first_word_after(line, "serving ");
    ASSERT_FALSE(port.empty()) << line;
    // Another program connects with the key, puts and gets.
    const sp::CompletedProcess ok = sp::run({mp_test::path_beside("mp_test_manager_peer"), "client", port, "shared secret"},
                                            sp::Options().capture_output().text().timeout(120));
    EXPECT_EQ(ok.returncode, 0) << ok.std_out << ok.std_err;
    EXPECT_NE(ok.std_out.find("got item 0;item 1;item 2; dict has 2 keys, made by 1"), std::string::npos) << ok.std_out;
    // A wrong key is refused.
    const sp::CompletedProcess bad = sp::run({mp_test::path_beside("mp_test_manager_peer"), "client", port, "wrong"},
                                             sp::Options().capture_output().text().timeout(120));
    EXPECT_EQ(bad.returncode, 3) << bad.std_out << bad.std_err;
    EXPECT_NE(bad.std_out.find("refused: AuthenticationError"), std::string::npos);
    // This program too, and then it stops the server.
    mp::SyncManager m(mp::Address::tcp("127.0.0.1", std::stoi(port)), "shared secret");
    m.connect();
    auto d = m.lookup<mp::DictProxy<std::string, int>>("dict");
    EXPECT_EQ(d.at("client"), 42);
    m.shutdown_server();
    EXPECT_EQ(server.wait(60), 0);
    EXPECT_NE(server.stdout_pipe().read(-1, 10).find("server done"), std::string::npos);
}

#if defined(_WIN32)
#define MP_SOCKET_FILES_ONLY() GTEST_SKIP() << "named pipes leave nothing in the file system"
#else
#define MP_SOCKET_FILES_ONLY() (void)0
#endif

TEST(ManagerPrograms, NoSocketFileAfterNormalEndsOrExceptions) {
    MP_SOCKET_FILES_ONLY();
    mp_test::time_limit(120);
    std::string path;
    try {
        mp::Manager m;
        path = m.address().path;
        ASSERT_TRUE(exists_file(path));
        throw std::runtime_error("unwinding");
    } catch (const std::runtime_error&) {
    }
    EXPECT_FALSE(exists_file(path)) << path;
    // A program that exits with its manager never destroyed: the exit handler ends the server
    // (SIGTERM), which removes its socket file.
    sp::Popen p = peer({"owner", "exit"});
    const std::string sock = first_word_after(p.stdout_pipe().readline(60), "socket ");
    ASSERT_FALSE(sock.empty());
    EXPECT_EQ(p.wait(60), 0);
    EXPECT_TRUE(disappears(sock, 10s)) << sock;
}

TEST(ManagerPrograms, NoSocketFileAfterSigintOrSigtermAsExit) {
    MP_SOCKET_FILES_ONLY();
    mp_test::time_limit(120);
    for (int sig : {mp::sig::INT, mp::sig::TERM}) {
        // A program that turns the signal into a normal end of main.
        sp::Popen owner = peer({"owner", "wait"});
        const std::string sock = first_word_after(owner.stdout_pipe().readline(60), "socket ");
        ASSERT_FALSE(sock.empty());
        ASSERT_TRUE(exists_file(sock));
        owner.send_signal(sig);
        EXPECT_EQ(owner.wait(60), 0) << "signal " << sig;
        EXPECT_TRUE(disappears(sock, 10s)) << sock << " after signal " << sig;
        // serve_forever ends on the signal itself.
        sp::Popen server = peer({"serve", "k", "unix"});
        const std::string path = first_word_after(server.stdout_pipe().readline(60), "serving ");
        ASSERT_TRUE(exists_file(path)) << path;
        server.send_signal(sig);
        EXPECT_EQ(server.wait(60), 0) << "signal " << sig;
        EXPECT_FALSE(exists_file(path)) << path << " after signal " << sig;
    }
}

TEST(ManagerPrograms, NoSocketFileAfterAKillBySignal) {
    MP_SOCKET_FILES_ONLY();
    mp_test::time_limit(120);
    // The owner of a started manager dies at once (its server dies with it: PR_SET_PDEATHSIG),
    // and the server's resource tracker removes the socket file.
    for (int sig : {mp::sig::INT, mp::sig::TERM, mp::sig::KILL}) {
        sp::Popen owner = peer({"owner", "raw"});
        const std::string sock = first_word_after(owner.stdout_pipe().readline(60), "socket ");
        ASSERT_TRUE(exists_file(sock));
        owner.send_signal(sig);
        owner.wait(60);
        EXPECT_TRUE(disappears(sock, 10s)) << sock << " after signal " << sig;
    }
    // A serving program killed outright.
    sp::Popen server = peer({"serve", "k", "unix"});
    const std::string path = first_word_after(server.stdout_pipe().readline(60), "serving ");
    ASSERT_TRUE(exists_file(path));
    server.kill();
    server.wait(60);
    EXPECT_TRUE(disappears(path, 10s)) << path;
    // The killed programs' trackers, orphans, came to this process (the subreaper) to be reaped.
    EXPECT_TRUE(orphans_reaped(10s));
}
