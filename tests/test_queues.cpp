// tests/test_queues.cpp - mp::Queue, SimpleQueue, JoinableQueue: round trips, timeouts, limits,
// many producers and consumers, prompt producer exit, encode failures, task accounting, big
// items, and processes killed while waiting or while half way through an item.
#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "test_util.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using mp_test::under_wine;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

mp::bytes make_bytes(std::size_t n, unsigned seed) {
    mp::bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::byte>((i * 131 + seed + (i >> 13)) & 0xff);
    return b;
}

std::uint64_t checksum(const mp::bytes& b) {
    std::uint64_t h = 1469598103934665603ull;
    for (std::size_t i = 0; i < b.size(); i += 97) h = (h ^ static_cast<std::uint64_t>(b[i])) * 1099511628211ull;
    return h ^ b.size();
}

struct Point {
    int x = 0;
    double y = 0;
    std::string label;
    MP_FIELDS(x, y, label)
    bool operator==(const Point& o) const { return x == o.x && y == o.y && label == o.label; }
};

// A type whose encoding fails half way (after it has written some bytes).
struct Unencodable {
    int n = 0;
    void mp_encode(mp::Encoder& e) const {
        e.write(n);
        throw mp::ValueError("Unencodable: refuses to be encoded");
    }
    void mp_decode(mp::Decoder& d) { d.read(n); }
};

// ---- child targets --------------------------------------------------------------------------

// Moves `count` items from in to out unchanged (whatever their type).
int relay(mp::Queue in, mp::Queue out, int count) {
    std::string buf;
    for (int i = 0; i < count; ++i) {
        in.get_encoded(buf);
        out.put_encoded(buf);
    }
    return 0;
}
MP_TARGET(relay);

// Takes one item after a delay.
int take_one_later(mp::Queue q, int delay_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    return q.get<int>() == 1 ? 0 : 1;
}
MP_TARGET(take_one_later);

int produce(mp::Queue q, int id, int count) {
    for (int i = 0; i < count; ++i) q.put(std::pair<int, int>{id, i});
    return 0;
}
MP_TARGET(produce);

// Reads (producer, seq) pairs until (-1, -1); reports what it got, per producer, in order.
int consume(mp::Queue q, mp::Queue report, int producers) {
    std::vector<std::vector<int>> got(static_cast<std::size_t>(producers));
    for (;;) {
        const auto [id, seq] = q.get<std::pair<int, int>>();
        if (id < 0) break;
        got.at(static_cast<std::size_t>(id)).push_back(seq);
    }
    report.put(got);
    return 0;
}
MP_TARGET(consume);

// Puts valid items with unencodable ones between them; exit code 0 when every bad put threw.
int produce_with_bad(mp::Queue q, int count) {
    int threw = 0;
    for (int i = 0; i < count; ++i) {
        q.put(i);
        try {
            q.put(Unencodable{i});
        } catch (const mp::ValueError&) {
            ++threw;
        }
        try {
            q.put(q);  // a Queue holds handles: it cannot travel inside an item
        } catch (const mp::TypeError&) {
            ++threw;
        }
    }
    q.put(-1);
    return threw == 2 * count ? 0 : 1;
}
MP_TARGET(produce_with_bad);

int work_tasks(mp::JoinableQueue q, int count) {
    for (int i = 0; i < count; ++i) {
        (void)q.get<std::string>();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        q.task_done();
    }
    return 0;
}
MP_TARGET(work_tasks);

// Says it is ready, then blocks in get.
int block_in_get(mp::Queue q, mp::Queue ready) {
    ready.put(1);
    return q.get<int>() == 42 ? 0 : 1;
}
MP_TARGET(block_in_get);

// Says it is ready, then puts an item far larger than the ring, which nobody reads.
int put_big_unread(mp::Queue q, mp::Queue ready, std::uint64_t size) {
    ready.put(1);
    q.put(make_bytes(static_cast<std::size_t>(size), 1));
    return 0;
}
MP_TARGET(put_big_unread);

// Takes one big item and reports its checksum.
int checksum_one(mp::Queue q, mp::Queue report) {
    report.put(checksum(q.get<mp::bytes>()));
    return 0;
}
MP_TARGET(checksum_one);

// Puts small and big (several times the ring) items for ever.
int churn_put(mp::Queue q) {
    const mp::bytes big = make_bytes(200 * 1024, 2);
    for (int i = 0;; ++i) {
        if (i % 8 == 0) q.put(big);
        else q.put(i);
    }
}
MP_TARGET(churn_put);

// Gets items of either kind for ever.
int churn_get(mp::Queue q) {
    std::string buf;
    for (;;) q.get_encoded(buf);
}
MP_TARGET(churn_get);

// Puts 0, 1, ... with put_nowait(item, ec) until the queue reports that it is full; then
// reports how many went in, and whether what stopped it was mp::errc::queue_full.
int fill_until_full(mp::Queue q, mp::Queue report) {
    std::error_code ec;
    int n = 0;
    while (n < 1000) {
        q.put_nowait(n, ec);
        if (ec) break;
        ++n;
    }
    report.put(n);
    report.put(ec == mp::errc::queue_full ? 1 : 0);
    return 0;
}
MP_TARGET(fill_until_full);

// Waits for one int with get(block, timeout, ec), after saying it waits; exits with it, or
// with 100 + the code when the get failed.
int get_one_with_ec(mp::Queue q, mp::Queue ready) {
    ready.put(1);
    std::error_code ec = make_error_code(mp::errc::queue_full);  // to be cleared
    const std::optional<int> v = q.get<int>(true, 60.0, ec);
    return v && !ec ? *v : 100 + ec.value();
}
MP_TARGET(get_one_with_ec);

class QueueMethodTest : public mp_test::MethodTest {};

}  // namespace

// ---- in one process ---------------------------------------------------------------------------

TEST(Queue, EmptyFullQsizeAndLimits) {
    mp::Queue q(2);
    EXPECT_EQ(q.maxsize(), 2);
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    EXPECT_EQ(q.qsize(), 0u);
    EXPECT_THROW(q.get_nowait<int>(), mp::queue::Empty);
    q.put_nowait(1);
    q.put(2, false);
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait(3), mp::queue::Full);
    EXPECT_EQ(q.get_nowait<int>(), 1);
    EXPECT_FALSE(q.full());
    q.put(3);
    EXPECT_EQ(q.get<int>(), 2);
    EXPECT_EQ(q.get<int>(std::chrono::milliseconds(10)), 3);
    EXPECT_TRUE(q.empty());
    EXPECT_THROW(q.put(1, true, -1.0), mp::ValueError);
    EXPECT_THROW(q.get<int>(true, -0.5), mp::ValueError);
    EXPECT_THROW(mp::Queue(0, 100), mp::ValueError);  // ring too small
}

TEST(Queue, TimeoutsNeverReturnEarly) {
    mp::Queue q(1);
    auto t0 = Clock::now();
    EXPECT_THROW(q.get<int>(true, 0.2), mp::queue::Empty);
    EXPECT_GE(seconds_since(t0), 0.2);
    t0 = Clock::now();
    EXPECT_THROW(q.get<int>(std::chrono::milliseconds(150)), mp::queue::Empty);
    EXPECT_GE(seconds_since(t0), 0.15);
    EXPECT_THROW(q.get<int>(std::chrono::milliseconds(-1)), mp::queue::Empty);  // no time left
    q.put(1);
    t0 = Clock::now();
    EXPECT_THROW(q.put(2, true, 0.2), mp::queue::Full);
    EXPECT_GE(seconds_since(t0), 0.2);
    t0 = Clock::now();
    EXPECT_THROW(q.put(2, std::chrono::milliseconds(150)), mp::queue::Full);
    EXPECT_GE(seconds_since(t0), 0.15);
    EXPECT_THROW(q.put(2, std::chrono::seconds(-1)), mp::queue::Full);
    EXPECT_EQ(q.get<int>(), 1);  // a put that timed out put nothing
    EXPECT_THROW(q.get_nowait<int>(), mp::queue::Empty);
}

TEST(Queue, CloseThenValueError) {
    mp::Queue q;
    mp::Queue copy = q;
    q.put(1);
    q.close();
    EXPECT_TRUE(copy.closed());  // copies share
    try {
        copy.put(2);
        ADD_FAILURE() << "put after close did not throw";
    } catch (const mp::ValueError& e) {
        EXPECT_NE(std::string(e.what()).find("Queue is closed"), std::string::npos) << e.what();
    }
    EXPECT_THROW(q.get<int>(), mp::ValueError);
    EXPECT_THROW(q.qsize(), mp::ValueError);
    q.close();  // twice is fine
}

TEST(Queue, DecodeErrorConsumesTheItem) {
    mp::Queue q;
    q.put(70000);  // does not fit the type it is taken as
    q.put(7);
    EXPECT_THROW(q.get<std::int16_t>(), mp::DecodeError);
    EXPECT_EQ(q.get<int>(), 7);
}

// Every item carries its type's fingerprint: taking it as another type is a TypeError naming
// both, never a wrong value; the item is consumed and the queue goes on.
TEST(Queue, WrongTypeIsTypeErrorAndConsumesTheItem) {
    mp::Queue q;
    q.put(std::string("not an int"));
    q.put(300);
    q.put(Point{1, 0.5, "p"});
    q.put(std::vector<Point>{});
    q.put(7);
    const auto type_error_of = [](auto get) -> std::string {
        try {
            get();
        } catch (const mp::TypeError& e) {
            return e.what();
        }
        ADD_FAILURE() << "no TypeError";
        return "";
    };
    std::string what = type_error_of([&] { (void)q.get<int>(); });
    EXPECT_NE(what.find("received std::string"), std::string::npos) << what;
    EXPECT_NE(what.find("where int was expected"), std::string::npos) << what;
    what = type_error_of([&] { (void)q.get<unsigned>(); });
    EXPECT_EQ(what.rfind("mp: received int", 0), 0u) << what;
    EXPECT_NE(what.find("where unsigned int was expected"), std::string::npos) << what;
    what = type_error_of([&] { (void)q.get<std::pair<int, std::string>>(); });
    EXPECT_NE(what.find("Point"), std::string::npos) << what;
    EXPECT_NE(what.find("where std::pair<int, std::string> was expected"), std::string::npos) << what;
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_EQ((q.get<std::deque<std::tuple<long, double, std::string>>>().size()), 0u);  // the same shape
    EXPECT_EQ(q.get_nowait<long>(), 7L);
    EXPECT_TRUE(q.empty());
}

TEST(Queue, ItemsLargerThanTheRingInOneProcess) {
    mp_test::time_limit(60);
    mp::Queue q(0, 64 * 1024);
    // A producer thread streams while this thread reads: the item is 40x the ring.
    const mp::bytes big = make_bytes(std::size_t{10} << 20, 3);
    std::thread producer([&] {
        q.put(big);
        q.put(std::string("after"));
    });
    EXPECT_EQ(q.get<mp::bytes>(), big);
    EXPECT_EQ(q.get<std::string>(), "after");
    producer.join();
    // A big put that times out puts nothing, and the queue stays usable.
    EXPECT_THROW(q.put(big, true, 0.1), mp::queue::Full);
    EXPECT_THROW(q.get_nowait<int>(), mp::queue::Empty);
    q.put(5);
    EXPECT_EQ(q.get<int>(), 5);
}

// The std::error_code forms: Empty and Full come back as mp::errc codes, without a throw, and
// success clears an ec that was set before the call.
TEST(Queue, ErrorCodeFormsReportEmptyAndFull) {
    mp::Queue q(2);
    std::error_code ec = std::make_error_code(std::errc::io_error);
    EXPECT_EQ(q.get_nowait<int>(ec), std::nullopt);
    EXPECT_EQ(ec, mp::errc::queue_empty);
    EXPECT_EQ(&ec.category(), &mp::error_category());
    EXPECT_EQ(ec.message(), "the queue is empty");
    EXPECT_EQ(q.get<int>(true, 0.05, ec), std::nullopt);
    EXPECT_EQ(ec, mp::errc::queue_empty);
    EXPECT_EQ(q.get<int>(std::chrono::milliseconds(20), ec), std::nullopt);
    EXPECT_EQ(ec, mp::errc::queue_empty);
    EXPECT_EQ(q.get<int>(std::chrono::milliseconds(-5), ec), std::nullopt);  // no time left
    EXPECT_EQ(ec, mp::errc::queue_empty);

    q.put_nowait(1, ec);
    EXPECT_FALSE(ec) << ec.message();
    ec = mp::errc::end_of_file;
    q.put(2, true, 1.0, ec);
    EXPECT_FALSE(ec) << "a put that succeeds clears ec";
    q.put_nowait(3, ec);
    EXPECT_EQ(ec, mp::errc::queue_full);
    EXPECT_EQ(ec.message(), "the queue is full");
    q.put(3, true, 0.05, ec);
    EXPECT_EQ(ec, mp::errc::queue_full);
    q.put(3, std::chrono::milliseconds(20), ec);
    EXPECT_EQ(ec, mp::errc::queue_full);
    EXPECT_EQ(q.qsize(), 2u) << "a put that reported queue_full put nothing";

    ec = mp::errc::queue_full;
    EXPECT_EQ(q.get_nowait<int>(ec), 1);
    EXPECT_FALSE(ec) << "a get that succeeds clears ec";
    ec = mp::errc::queue_full;
    EXPECT_EQ(q.get<int>(std::chrono::seconds(1), ec), 2);
    EXPECT_FALSE(ec);
    std::string raw;
    q.put_encoded(mp::encode_message(5), false, std::nullopt, ec);
    EXPECT_FALSE(ec);
    q.get_encoded(raw, false, std::nullopt, ec);
    EXPECT_FALSE(ec);
    EXPECT_EQ(mp::decode_message<int>(raw), 5);
    q.get_encoded(raw, false, std::nullopt, ec);
    EXPECT_EQ(ec, mp::errc::queue_empty);
    EXPECT_TRUE(raw.empty());

    // The throwing forms are unchanged.
    EXPECT_THROW(q.get_nowait<int>(), mp::queue::Empty);
    q.put(1);
    q.put(2);
    EXPECT_THROW(q.put_nowait(3), mp::queue::Full);

    // A JoinableQueue has them too.
    mp::JoinableQueue jq(1);
    jq.put_nowait(std::string("t"), ec);
    EXPECT_FALSE(ec);
    jq.put_nowait(std::string("u"), ec);
    EXPECT_EQ(ec, mp::errc::queue_full);
    EXPECT_EQ(jq.get_nowait<std::string>(ec), "t");
    EXPECT_FALSE(ec);
    jq.task_done();
    EXPECT_TRUE(jq.join(0.0));
}

// A big item that cannot go in before its timeout (it travels in chunks) is queue_full and
// puts nothing, as the throwing form's queue::Full.
TEST(Queue, ErrorCodeFormOfABigPutThatTimesOut) {
    mp_test::time_limit(60);
    mp::Queue q(0, 64 * 1024);
    const mp::bytes big = make_bytes(std::size_t{1} << 20, 4);
    std::error_code ec;
    q.put(big, true, 0.1, ec);
    EXPECT_EQ(ec, mp::errc::queue_full);
    EXPECT_EQ(q.get_nowait<mp::bytes>(ec), std::nullopt);
    EXPECT_EQ(ec, mp::errc::queue_empty);
    std::thread producer([&] {
        std::error_code pec = mp::errc::queue_empty;
        q.put(big, true, 60.0, pec);
        EXPECT_FALSE(pec) << pec.message();
    });
    EXPECT_EQ(q.get<mp::bytes>(true, 60.0, ec), big);
    EXPECT_FALSE(ec) << ec.message();
    producer.join();
}

// What is a bug, not a routine failure, still throws from the std::error_code forms.
TEST(Queue, ErrorCodeFormsStillThrowForBugs) {
    mp::Queue q;
    std::error_code ec;
    EXPECT_THROW(q.get<int>(true, -1.0, ec), mp::ValueError);
    EXPECT_THROW(q.put(1, true, -1.0, ec), mp::ValueError);
    q.put(std::string("not an int"));
    q.put(70000);
    EXPECT_THROW((void)q.get_nowait<int>(ec), mp::TypeError);
    EXPECT_THROW((void)q.get_nowait<std::int16_t>(ec), mp::DecodeError);
    EXPECT_TRUE(q.empty()) << "both items were consumed, as by the throwing form";
    q.close();
    EXPECT_THROW(q.put_nowait(1, ec), mp::ValueError);
    EXPECT_THROW((void)q.get_nowait<int>(ec), mp::ValueError);
}

TEST(Queue, SimpleQueueAndJoinableQueueInOneProcess) {
    mp::SimpleQueue sq;
    EXPECT_TRUE(sq.empty());
    sq.put(std::string("x"));
    EXPECT_FALSE(sq.empty());
    EXPECT_EQ(sq.get<std::string>(), "x");
    sq.close();
    EXPECT_THROW(sq.put(1), mp::ValueError);

    mp::JoinableQueue jq;
    EXPECT_TRUE(jq.join(0.0));
    jq.put(1);
    jq.put(2);
    EXPECT_FALSE(jq.join(0.05));
    jq.get<int>();
    jq.task_done();
    jq.get<int>();
    jq.task_done();
    EXPECT_TRUE(jq.join(1.0));
    jq.join();
    EXPECT_THROW(jq.task_done(), mp::ValueError);
}

// ---- across processes -----------------------------------------------------------------------

TEST_P(QueueMethodTest, RoundTripManyTypesThroughChild) {
    mp_test::time_limit(60);
    mp::Queue to_child, from_child;
    const mp::bytes big = make_bytes(std::size_t{16} << 20, 9);
    mp::Process p = ctx().Process(relay, to_child, from_child, 9);
    p.start();
    to_child.put(42);
    to_child.put(std::string("hello"));
    to_child.put(std::string());
    to_child.put(std::vector<int>{1, -2, 3});
    to_child.put(Point{3, 2.5, "p"});
    to_child.put(std::map<std::string, std::vector<double>>{{"a", {1.5}}, {"b", {}}});
    to_child.put(std::variant<int, std::string>(std::string("v")));
    to_child.put(std::optional<int>{});
    to_child.put(big);
    EXPECT_EQ(from_child.get<int>(), 42);
    EXPECT_EQ(from_child.get<std::string>(), "hello");
    EXPECT_EQ(from_child.get<std::string>(), "");
    EXPECT_EQ(from_child.get<std::vector<int>>(), (std::vector<int>{1, -2, 3}));
    EXPECT_EQ(from_child.get<Point>(), (Point{3, 2.5, "p"}));
    EXPECT_EQ((from_child.get<std::map<std::string, std::vector<double>>>()),
              (std::map<std::string, std::vector<double>>{{"a", {1.5}}, {"b", {}}}));
    EXPECT_EQ((from_child.get<std::variant<int, std::string>>()), (std::variant<int, std::string>(std::string("v"))));
    EXPECT_EQ(from_child.get<std::optional<int>>(), std::nullopt);
    EXPECT_EQ(from_child.get<mp::bytes>(), big);
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(QueueMethodTest, Item64MiBThroughSmallRing) {
    mp_test::time_limit(120);
    mp::Queue q(0, 1 << 20), report;
    mp::Process p = ctx().Process(checksum_one, q, report);
    p.start();
    const mp::bytes big = make_bytes(std::size_t{64} << 20, 5);
    q.put(big);
    EXPECT_EQ(report.get<std::uint64_t>(true, 60.0), checksum(big));
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
}

TEST_P(QueueMethodTest, BlockedPutReleasedByGetInChild) {
    mp_test::time_limit(30);
    mp::Queue q(2);
    q.put(1);
    q.put(2);
    EXPECT_THROW(q.put_nowait(3), mp::queue::Full);
    mp::Process p = ctx().Process(take_one_later, q, 200);
    p.start();
    q.put(3, true, 20.0);  // blocks until the child has taken one
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(q.get<int>(), 2);
    EXPECT_EQ(q.get<int>(), 3);
}

TEST_P(QueueMethodTest, FourProducersTwoConsumersNothingLostOrDuplicated) {
    mp_test::time_limit(240);
    const int per = under_wine() ? 2000 : 100000;
    const int producers = 4, consumers = 2;
    mp::Queue q(0, 256 * 1024), report;
    std::vector<mp::Process> procs;
    for (int c = 0; c < consumers; ++c) procs.push_back(ctx().Process(consume, q, report, producers));
    for (int i = 0; i < producers; ++i) procs.push_back(ctx().Process(produce, q, i, per));
    for (auto& p : procs) p.start();
    for (int i = consumers; i < consumers + producers; ++i) {
        procs[static_cast<std::size_t>(i)].join();
        EXPECT_EQ(procs[static_cast<std::size_t>(i)].exitcode(), 0);
    }
    for (int c = 0; c < consumers; ++c) q.put(std::pair<int, int>{-1, -1});
    std::vector<std::vector<int>> all(producers);
    for (int c = 0; c < consumers; ++c) {
        const auto got = report.get<std::vector<std::vector<int>>>(true, 60.0);
        ASSERT_EQ(got.size(), static_cast<std::size_t>(producers));
        for (int i = 0; i < producers; ++i) {
            const auto& v = got[static_cast<std::size_t>(i)];
            EXPECT_TRUE(std::is_sorted(v.begin(), v.end())) << "producer " << i << " out of order";
            all[static_cast<std::size_t>(i)].insert(all[static_cast<std::size_t>(i)].end(), v.begin(), v.end());
        }
    }
    for (int c = 0; c < consumers; ++c) {
        procs[static_cast<std::size_t>(c)].join();
        EXPECT_EQ(procs[static_cast<std::size_t>(c)].exitcode(), 0);
    }
    for (int i = 0; i < producers; ++i) {
        auto& v = all[static_cast<std::size_t>(i)];
        std::sort(v.begin(), v.end());
        ASSERT_EQ(v.size(), static_cast<std::size_t>(per)) << "producer " << i;
        for (int k = 0; k < per; ++k) ASSERT_EQ(v[static_cast<std::size_t>(k)], k) << "producer " << i;
    }
    EXPECT_TRUE(q.empty());
}

TEST_P(QueueMethodTest, ProducerExitsAtOnceBeforeAnythingIsRead) {
    mp_test::time_limit(30);
    mp::Queue q;
    const int n = under_wine() ? 1000 : 20000;
    mp::Process p = ctx().Process(produce, q, 7, n);
    p.start();
    p.join(10.0);  // nobody has read: with a feeder thread this could hang
    ASSERT_FALSE(p.is_alive());
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_EQ(q.qsize(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) ASSERT_EQ((q.get<std::pair<int, int>>()), (std::pair<int, int>{7, i}));
    EXPECT_TRUE(q.empty());
}

TEST_P(QueueMethodTest, UnencodableItemRaisesInPutAndOthersArriveInOrder) {
    mp_test::time_limit(30);
    mp::Queue q;
    mp::Process p = ctx().Process(produce_with_bad, q, 50);
    p.start();
    for (int i = 0; i < 50; ++i) ASSERT_EQ(q.get<int>(true, 20.0), i);
    EXPECT_EQ(q.get<int>(true, 20.0), -1);
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_TRUE(q.empty());
}

TEST_P(QueueMethodTest, JoinableQueueAcrossProcesses) {
    mp_test::time_limit(30);
    mp::JoinableQueue q;
    for (int i = 0; i < 5; ++i) q.put(std::string("task ") + std::to_string(i));
    EXPECT_FALSE(q.join(0.05));
    mp::Process p = ctx().Process(work_tasks, q, 5);
    p.start();
    EXPECT_TRUE(q.join(20.0));
    p.join();
    EXPECT_EQ(p.exitcode(), 0);
    EXPECT_THROW(q.task_done(), mp::ValueError);
}

TEST_P(QueueMethodTest, ProcessKilledWhileBlockedInGetLeavesQueueUsable) {
    mp_test::time_limit(60);
    mp::Queue q, ready;
    mp::Process victim = ctx().Process(block_in_get, q, ready);
    victim.start();
    ASSERT_EQ(ready.get<int>(true, 20.0), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // into its wait
    victim.kill();
    victim.join();
    EXPECT_NE(victim.exitcode(), 0);
    // Another consumer, blocked in turn, is woken by the next put.
    mp::Process next = ctx().Process(block_in_get, q, ready);
    next.start();
    ASSERT_EQ(ready.get<int>(true, 20.0), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    q.put(42);
    next.join(20.0);
    ASSERT_FALSE(next.is_alive());
    EXPECT_EQ(next.exitcode(), 0);
    q.put(5);
    EXPECT_EQ(q.get<int>(true, 5.0), 5);
}

TEST_P(QueueMethodTest, ProducerKilledHalfWayThroughABigItemDropsOnlyThatItem) {
    mp_test::time_limit(60);
    mp::Queue q(0, 64 * 1024), ready;
    mp::Process victim = ctx().Process(put_big_unread, q, ready, std::uint64_t{1} << 20);
    victim.start();
    ASSERT_EQ(ready.get<int>(true, 20.0), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // it has filled the ring and waits
    victim.kill();
    victim.join();
    // The first chunks are in the ring, the producer's lock is abandoned: the next put repairs.
    q.put(std::string("next"));
    EXPECT_EQ(q.get<std::string>(true, 10.0), "next");
    EXPECT_TRUE(q.empty());
}

TEST_P(QueueMethodTest, ConsumerWaitingForTheRestOfAnItemSeesItsProducerDie) {
    mp_test::time_limit(60);
    mp::Queue q(0, 64 * 1024), ready;
    mp::Process victim = ctx().Process(put_big_unread, q, ready, std::uint64_t{1} << 20);
    victim.start();
    ASSERT_EQ(ready.get<int>(true, 20.0), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    victim.kill();
    victim.join();
    // This get takes the first chunks, then finds the producer gone: the item is dropped and
    // the get goes on waiting for a whole one.
    EXPECT_THROW(q.get<mp::bytes>(true, 0.5), mp::queue::Empty);
    q.put(std::string("whole"));
    EXPECT_EQ(q.get<std::string>(true, 10.0), "whole");
}

TEST_P(QueueMethodTest, ProcessesKilledAtRandomPointsLeaveQueueUsable) {
    // A producer and a consumer of small and chunked items, both killed at a random moment:
    // inside the ring lock, between chunks, or waiting. Whatever they held, the queue must go
    // on: a new item put after them arrives (after whatever whole items they left).
    mp_test::time_limit(120);
    std::mt19937 rng(12345);
    const int rounds = under_wine() ? 4 : 12;
    for (int round = 0; round < rounds; ++round) {
        mp::Queue q(0, 64 * 1024);
        mp::Process prod = ctx().Process(churn_put, q);
        mp::Process cons = ctx().Process(churn_get, q);
        prod.start();
        cons.start();
        std::this_thread::sleep_for(std::chrono::milliseconds((under_wine() ? 300 : 20) + rng() % 40));
        prod.kill();
        std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 3));
        cons.kill();
        prod.join();
        cons.join();
        // The ring may be full: put the marker from a thread while this one drains.
        std::thread marker([&] { q.put(std::string("marker"), true, 30.0); });
        bool found = false;
        std::string buf;
        for (int i = 0; i < 100000 && !found; ++i) {
            q.get_encoded(buf, true, 30.0);
            found = buf == mp::encode_message(std::string("marker"));
        }
        marker.join();
        EXPECT_TRUE(found) << "round " << round;
        EXPECT_TRUE(q.empty()) << "round " << round;
        q.put(1);
        EXPECT_EQ(q.get<int>(true, 5.0), 1);
    }
}

// The std::error_code forms across processes: a child fills a queue until it is told
// queue_full, the parent drains it until it is told queue_empty; a child blocked in a timed
// get(..., ec) receives the parent's item with ec cleared.
TEST_P(QueueMethodTest, ErrorCodeFormsAcrossProcesses) {
    mp_test::time_limit(60);
    mp::Queue q(3), report;
    mp::Process filler = ctx().Process(fill_until_full, q, report);
    filler.start();
    EXPECT_EQ(report.get<int>(true, 30.0), 3);
    EXPECT_EQ(report.get<int>(true, 30.0), 1) << "the child's put_nowait did not report mp::errc::queue_full";
    filler.join();
    EXPECT_EQ(filler.exitcode(), 0);
    std::error_code ec;
    q.put_nowait(99, ec);
    EXPECT_EQ(ec, mp::errc::queue_full);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(q.get_nowait<int>(ec), i);
        EXPECT_FALSE(ec);
    }
    EXPECT_EQ(q.get_nowait<int>(ec), std::nullopt);
    EXPECT_EQ(ec, mp::errc::queue_empty);

    mp::Queue ready;
    mp::Process getter = ctx().Process(get_one_with_ec, q, ready);
    getter.start();
    ASSERT_EQ(ready.get<int>(true, 30.0), 1);
    q.put(7, true, 30.0, ec);
    EXPECT_FALSE(ec);
    getter.join(30.0);
    ASSERT_FALSE(getter.is_alive());
    EXPECT_EQ(getter.exitcode(), 7);
}

MP_INSTANTIATE_FOR_EACH_METHOD(QueueMethodTest);
