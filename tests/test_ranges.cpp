// tests/test_ranges.cpp - mp's iterables as C++20 consumers see them (this file is compiled as
// C++20, in its own program mp_tests_cpp20; the library and the other tests stay C++17): the
// concepts each one models, then views and range algorithms over a pool's imap and
// imap_unordered, a subprocess's output lines, a NamedPipe's lines, as_completed and a manager
// list. What range-for and C++17 code see is tested in the files of each concept.
#include <algorithm>
#include <iterator>
#include <ranges>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_util.hpp"

#if __cplusplus < 202002L
#error "tests/test_ranges.cpp is the C++20 consumer's test: build it with -std=c++20 (meson: cpp_std=c++20)"
#endif

// clang 14 cannot compile libstdc++ 12's views at all (take, filter, transform: even over a
// std::vector, view_interface<ref_view<...>> fails to instantiate); the concepts and the range
// algorithms it compiles. With such a pair only the views' parts of the tests are left out.
#if defined(__clang__) && defined(__GLIBCXX__) && __clang_major__ < 15
#define MP_TEST_VIEWS 0
#else
#define MP_TEST_VIEWS 1
#endif

namespace sp = mp::subprocess;
namespace fu = mp::futures;

// ---- the concepts ------------------------------------------------------------------------------

namespace {

// One pass, copies share a position: an input iterator, not a forward one; end() is the same
// type, so it is its own sentinel (semiregular) and the range is a common_range.
template <class Range, class Item>
constexpr bool one_pass_range() {
    using It = std::ranges::iterator_t<Range&>;
    static_assert(std::input_iterator<It>);
    static_assert(!std::forward_iterator<It>);
    static_assert(std::semiregular<It>);
    static_assert(std::sentinel_for<std::ranges::sentinel_t<Range&>, It>);
    static_assert(std::is_same_v<typename It::iterator_concept, std::input_iterator_tag>);
    static_assert(std::is_same_v<typename std::iterator_traits<It>::iterator_category, std::input_iterator_tag>);
    static_assert(std::is_same_v<std::iter_value_t<It>, Item>);
    static_assert(std::is_same_v<std::iter_reference_t<It>, const Item&>);
    static_assert(std::is_same_v<std::iter_difference_t<It>, std::ptrdiff_t>);
    static_assert(std::ranges::input_range<Range&>);
    static_assert(std::ranges::common_range<Range&>);
    static_assert(std::ranges::viewable_range<Range&>);
    static_assert(!std::ranges::sized_range<Range&>);
    return true;
}

static_assert(one_pass_range<mp::IMapIterator<int>, int>());
static_assert(one_pass_range<mp::IMapIterator<std::string>, std::string>());
static_assert(one_pass_range<sp::PipeReader, std::string>());
static_assert(one_pass_range<mp::NamedPipe, std::string>());
static_assert(one_pass_range<fu::AsCompleted<int>, fu::Future<int>>());
// pool.imap(...) | view: a temporary imap is moved into the view (owning_view).
static_assert(std::ranges::viewable_range<mp::IMapIterator<int>>);
static_assert(std::ranges::viewable_range<fu::AsCompleted<int>>);

// A proxy's snapshot: forward, borrowed (the iterators own the snapshot), not sized (size()
// asks the server now, not the snapshot).
template <class Proxy, class Item>
constexpr bool snapshot_range() {
    using It = std::ranges::iterator_t<Proxy&>;
    static_assert(std::forward_iterator<It>);
    static_assert(std::is_same_v<typename It::iterator_concept, std::forward_iterator_tag>);
    static_assert(std::is_same_v<std::iter_value_t<It>, Item>);
    static_assert(std::ranges::forward_range<Proxy&>);
    static_assert(std::ranges::forward_range<const Proxy&>);
    static_assert(std::ranges::common_range<Proxy&>);
    static_assert(std::ranges::borrowed_range<Proxy>);
    static_assert(!std::ranges::sized_range<Proxy&>);
    return true;
}

static_assert(snapshot_range<mp::ListProxy<int>, int>());
static_assert(snapshot_range<mp::DictProxy<std::string, int>, std::string>());
static_assert(snapshot_range<mp::SetProxy<int>, int>());
static_assert(snapshot_range<mp::ArrayProxy<double>, double>());

// ---- the tasks ---------------------------------------------------------------------------------

int square(int x) { return x * x; }
MP_TARGET(square);

std::vector<int> range(int n) {
    std::vector<int> v;
    for (int i = 0; i < n; ++i) v.push_back(i);
    return v;
}

const std::string& helper() {
    static const std::string path = mp_test::path_beside("mp_test_subprocess_child");
    return path;
}

}  // namespace

class RangesTest : public mp_test::MethodTest {
protected:
    mp::PoolOptions options() const { return mp::PoolOptions().context(ctx()); }
};

// Tests without a start method: no child of ours and no descriptor left after.
class Ranges : public mp_test::NoLeftoversTest {
protected:
    void SetUp() override {
        mp_test::time_limit(60);
        NoLeftoversTest::SetUp();
    }
};

// ---- imap --------------------------------------------------------------------------------------

// take(3) over an endless input with a buffersize: three results, the input read only as far
// as the buffer reaches, the fourth result still there for next(), and the pool closes and
// joins. Without views: ranges::find stops at a result, which stays for next().
TEST_P(RangesTest, ImapTakeThreeOfAnEndlessInput) {
    mp_test::time_limit(120);
    mp::Pool pool(2, options());
    mp_test::CountingRange found_in(-1);
    auto searched = pool.imap(square, found_in, 1, 4);
    const auto at = std::ranges::find(searched, 16);
    ASSERT_NE(at, searched.end());
    EXPECT_EQ(searched.next(60.0), 16) << "found, not stepped past: still there for next()";
    EXPECT_EQ(searched.next(60.0), 25);
    EXPECT_LE(found_in.read(), 6 + 4) << "at most buffersize chunks beyond the results taken";
#if MP_TEST_VIEWS
    mp_test::CountingRange endless(-1);
    auto it = pool.imap(square, endless, 1, 4);
    std::vector<int> got;
    for (int v : it | std::views::take(3)) got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 4}));
    EXPECT_LE(endless.read(), 3 + 4) << "at most buffersize chunks beyond the results taken";
    EXPECT_EQ(it.next(60.0), 9) << "the result after the third is not lost to take's last step";

    // A temporary imap moves into the view, with the transform after the take.
    mp_test::CountingRange other(-1);
    std::vector<int> plus_one;
    for (int v : pool.imap(square, other, 2, 2) | std::views::take(5) | std::views::transform([](int v) { return v + 1; }))
        plus_one.push_back(v);
    EXPECT_EQ(plus_one, (std::vector<int>{1, 2, 5, 10, 17}));
    EXPECT_LE(other.read(), 2 * (3 + 2));
#endif
    pool.close();  // the open chunks of the iterations finish; nothing more is fed
    EXPECT_TRUE(pool.join(60.0));
}

// imap_unordered through transform and filter, collected with a range algorithm and sorted:
// every result once. Then the C++17 way, a vector from the iterator pair.
TEST_P(RangesTest, ImapUnorderedThroughTransform) {
    mp_test::time_limit(120);
    mp::Pool pool(3, options());
#if MP_TEST_VIEWS
    auto unordered = pool.imap_unordered(square, range(60), 4);
    std::vector<std::string> got;
    std::ranges::copy(unordered | std::views::filter([](int v) { return v % 2 == 0; }) |
                          std::views::transform([](int v) { return std::to_string(v); }),
                      std::back_inserter(got));
    std::ranges::sort(got);
    std::vector<std::string> expect;
    for (int i = 0; i < 60; i += 2) expect.push_back(std::to_string(i * i));
    std::ranges::sort(expect);
    EXPECT_EQ(got, expect);
    EXPECT_EQ(unordered.next(60.0), std::nullopt);
#endif
    auto copied = pool.imap_unordered(square, range(20), 3);
    std::vector<int> squares;
    std::ranges::copy(copied, std::back_inserter(squares));
    std::ranges::sort(squares);
    ASSERT_EQ(squares.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(squares[static_cast<std::size_t>(i)], i * i);

    auto again = pool.imap_unordered(square, range(10));
    std::vector<int> all(again.begin(), again.end());
    std::ranges::sort(all);
    EXPECT_EQ(all, (std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81}));
    pool.close();
    EXPECT_TRUE(pool.join(60.0));
}

// ---- as_completed ------------------------------------------------------------------------------

TEST_P(RangesTest, AsCompletedWithForEach) {
    mp_test::time_limit(120);
    fu::ProcessPoolExecutor ex(2, options());
    std::vector<fu::Future<int>> fs;
    for (int i = 0; i < 6; ++i) fs.push_back(ex.submit(square, i));
    std::vector<int> got;
    std::ranges::for_each(fu::as_completed(fs, 60.0), [&](const fu::Future<int>& f) { got.push_back(f.result()); });
    std::ranges::sort(got);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 4, 9, 16, 25}));

    // A future looked at by a range algorithm and not stepped past stays for next().
    auto completed = fu::as_completed(fs, 60.0);
    const auto first = std::ranges::find_if(completed, [](const fu::Future<int>& f) { return f.result() >= 0; });
    ASSERT_NE(first, completed.end());
    const int seen = first->result();
    EXPECT_EQ(completed.next()->result(), seen);
    int rest = 0;
    std::ranges::for_each(completed, [&](const fu::Future<int>&) { ++rest; });
    EXPECT_EQ(rest, 5);
    ex.shutdown();
}

// ---- pipes -------------------------------------------------------------------------------------

// The lines of a child's stdout through filter; then take(2) and a readline that gets the line
// after them, and the rest as a vector from the iterator pair. Without views: ranges::find
// stops at a line, which stays for readline.
TEST_F(Ranges, SubprocessLinesThroughFilter) {
    sp::Popen f({helper(), "lines", "4", "0"}, sp::Options().std_out(sp::PIPE).text());
    const auto second = std::ranges::find(f.stdout_pipe(), std::string("line 2\n"));
    ASSERT_NE(second, f.stdout_pipe().end());
    EXPECT_EQ(f.stdout_pipe().readline(30), "line 2\n") << "found, not stepped past: still in the pipe";
    std::vector<std::string> after;
    std::ranges::copy(f.stdout_pipe(), std::back_inserter(after));
    EXPECT_EQ(after, (std::vector<std::string>{"line 3\n", "line 4\n"}));
    EXPECT_EQ(f.wait(30), 0);
#if MP_TEST_VIEWS
    sp::Popen p({helper(), "lines", "6", "0"}, sp::Options().std_out(sp::PIPE).text());
    std::vector<std::string> even;
    for (const std::string& line : p.stdout_pipe() | std::views::filter([](const std::string& l) { return (l[5] - '0') % 2 == 0; }))
        even.push_back(line);
    EXPECT_EQ(even, (std::vector<std::string>{"line 2\n", "line 4\n", "line 6\n"}));
    EXPECT_EQ(p.wait(30), 0);

    sp::Popen q({helper(), "lines", "5", "0"}, sp::Options().std_out(sp::PIPE).text());
    std::vector<std::string> head;
    for (const std::string& line : q.stdout_pipe() | std::views::take(2)) head.push_back(line);
    EXPECT_EQ(head, (std::vector<std::string>{"line 1\n", "line 2\n"}));
    EXPECT_EQ(q.stdout_pipe().readline(30), "line 3\n") << "take's last step must not read a line";
    std::vector<std::string> rest(q.stdout_pipe().begin(), q.stdout_pipe().end());
    EXPECT_EQ(rest, (std::vector<std::string>{"line 4\n", "line 5\n"}));
    EXPECT_EQ(q.wait(30), 0);
#endif
}

TEST_F(Ranges, NamedPipeLinesThroughTakeAndTransform) {
    const std::string name = "mptest-ranges-" + std::to_string(mp::getpid());
    mp::NamedPipe r = mp::NamedPipe::create(name, "r");
    std::thread writer([&] {
        mp::NamedPipe w = mp::NamedPipe::open(name, "w", 30);
        for (int i = 1; i <= 6; ++i) w.write("n" + std::to_string(i) + "\n");
    });
    r.accept(30);
    EXPECT_EQ(r.readline(), "n1\n");
#if MP_TEST_VIEWS
    std::vector<std::size_t> sizes;
    for (std::size_t n : r | std::views::take(3) | std::views::transform([](const std::string& l) { return l.size(); }))
        sizes.push_back(n);
    EXPECT_EQ(sizes, (std::vector<std::size_t>{3, 3, 3}));
#else
    for (int i = 2; i <= 4; ++i) EXPECT_EQ(r.readline(), "n" + std::to_string(i) + "\n");
#endif
    EXPECT_EQ(r.readline(), "n5\n") << "take's last step must not read a line";
    std::vector<std::string> rest;
    std::ranges::copy(r, std::back_inserter(rest));
    writer.join();
    EXPECT_EQ(rest, (std::vector<std::string>{"n6\n"}));
}

// ---- managers ----------------------------------------------------------------------------------

TEST_F(Ranges, ManagerListSnapshotWithFind) {
    mp::Manager m;
    auto l = m.list<int>({5, 8, 13, 21});
    const auto at = std::ranges::find(l, 13);
    ASSERT_NE(at, l.end());
    EXPECT_EQ(*std::next(at), 21);
    EXPECT_EQ(std::ranges::find(l, 4), l.end());
    l.append(34);
    // The iterator walks the snapshot it was made from, which it keeps alive.
    EXPECT_EQ(std::ranges::distance(at, l.end()), 2);
    EXPECT_EQ(std::ranges::count_if(l, [](int v) { return v % 2 == 0; }), 2);
    // A borrowed range: find on a temporary proxy gives an iterator, not ranges::dangling.
    const auto in_copy = std::ranges::find(mp::ListProxy<int>(l), 34);
    static_assert(std::is_same_v<std::remove_const_t<decltype(in_copy)>, mp::ListProxy<int>::iterator>);
    EXPECT_EQ(*in_copy, 34);
#if MP_TEST_VIEWS
    std::vector<int> odd;
    for (int v : l | std::views::filter([](int v) { return v % 2 != 0; })) odd.push_back(v);
    EXPECT_EQ(odd, (std::vector<int>{5, 13, 21}));
#endif
    m.shutdown();
}

MP_INSTANTIATE_FOR_EACH_METHOD(RangesTest);
