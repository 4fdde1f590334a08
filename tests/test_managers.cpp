// tests/test_managers.cpp - mp::Manager: dict, list and value proxies in one process and
// across processes under every start method (the tutorials' bank deposit reaching 4000),
// Python's errors for missing keys and indexes, and shutdown.
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.hpp"

namespace {

int deposit(mp::DictProxy<std::string, int> accounts, mp::Lock lock, int times) {
    for (int i = 0; i < times; ++i) {
        std::lock_guard<mp::Lock> g(lock);
        accounts.set("bank", accounts.at("bank") + 100);
    }
    return 0;
}
MP_TARGET(deposit);

int report(mp::ListProxy<std::string> log, mp::DictProxy<int, int> progress, int id) {
    for (int step = 1; step <= 5; ++step) progress.set(id, step * 20);
    log.append("worker " + std::to_string(id) + " done");
    return 0;
}
MP_TARGET(report);

int hammer(mp::ListProxy<int> l, int base, int n) {
    for (int i = 0; i < n; ++i) l.append(base + i);
    return 0;
}
MP_TARGET(hammer);

}  // namespace

TEST(Manager, DictOperationsAndErrors) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto d = m.dict<std::string, int>({{"a", 1}});
    d.set("c", 3);
    d.set("b", 2);
    EXPECT_EQ(d.at("a"), 1);
    EXPECT_EQ(d.size(), 3u);
    EXPECT_TRUE(d.contains("b"));
    EXPECT_FALSE(d.contains("z"));
    EXPECT_THROW(d.at("z"), mp::KeyError);
    EXPECT_EQ(d.get("z", -1), -1);
    EXPECT_EQ(d.get("z"), std::nullopt);
    EXPECT_EQ(d.get("c"), 3);
    EXPECT_EQ(d.keys(), (std::vector<std::string>{"a", "c", "b"}));  // insertion order
    EXPECT_EQ(d.values(), (std::vector<int>{1, 3, 2}));
    d.set("a", 10);  // a new value keeps its place
    EXPECT_EQ(d.keys().front(), "a");
    EXPECT_EQ(d.setdefault("a", 99), 10);
    EXPECT_EQ(d.setdefault("n", 5), 5);
    EXPECT_EQ(d.pop("n"), 5);
    EXPECT_THROW(d.pop("n"), mp::KeyError);
    d.erase("c");
    EXPECT_THROW(d.erase("c"), mp::KeyError);
    EXPECT_EQ(d.copy(), (std::map<std::string, int>{{"a", 10}, {"b", 2}}));
    d.clear();
    EXPECT_EQ(d.size(), 0u);
}

TEST(Manager, ListAndValueOperationsAndErrors) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto l = m.list<int>({1, 2});
    l.append(3);
    l.extend({4, 5});
    EXPECT_EQ(l.size(), 5u);
    EXPECT_EQ(l.at(0), 1);
    EXPECT_EQ(l.at(-1), 5);
    EXPECT_THROW(l.at(5), mp::IndexError);
    EXPECT_THROW(l.at(-6), mp::IndexError);
    l.set(-2, 40);
    EXPECT_THROW(l.set(9, 0), mp::IndexError);
    EXPECT_EQ(l.pop(), 5);
    EXPECT_EQ(l.pop(0), 1);
    l.insert(0, 0);
    l.insert(100, 99);  // past the end: appended, as in Python
    l.insert(-100, -1);
    EXPECT_EQ(l.copy(), (std::vector<int>{-1, 0, 2, 3, 40, 99}));
    l.clear();
    EXPECT_THROW(l.pop(), mp::IndexError);
    auto v = m.Value<double>(1.5);
    EXPECT_EQ(v.get(), 1.5);
    v.set(2.25);
    EXPECT_EQ(v.get(), 2.25);
    auto s = m.Value<std::string>("text");
    EXPECT_EQ(s.get(), "text");
}

TEST(Manager, ThreadsOfOneProcessShareTheConnection) {
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

TEST(Manager, ShutdownEndsTheServerAndProxiesSaySo) {
    mp_test::time_limit(60);
    mp::Manager m;
    auto d = m.dict<int, int>();
    d.set(1, 1);
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

class ManagerMethodTest : public mp_test::MethodTest {};

TEST_P(ManagerMethodTest, BankDepositReaches4000) {
    mp_test::time_limit(120);
    mp::Manager m(ctx());
    auto accounts = m.dict<std::string, int>({{"bank", 0}});
    mp::Lock lock = m.Lock();
    std::vector<mp::Process> ps;
    for (int i = 0; i < 4; ++i) ps.push_back(ctx().Process(deposit, accounts, lock, 10));
    for (auto& p : ps) p.start();
    for (auto& p : ps) {
        p.join(60);
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
    EXPECT_EQ(progress.copy(), (std::map<int, int>{{0, 100}, {1, 100}, {2, 100}}));
    EXPECT_EQ(log.size(), 3u);
}

TEST_P(ManagerMethodTest, ParentAndChildUseOneProxyAtOnce) {
    mp_test::time_limit(120);
    // Under fork the child starts with a copy of the parent's connection; it must open its own,
    // or the two processes' requests would mix on one socket.
    mp::Manager m(ctx());
    auto l = m.list<int>();
    l.append(-1);  // the parent's connection is open before the fork
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

MP_INSTANTIATE_FOR_EACH_METHOD(ManagerMethodTest);
