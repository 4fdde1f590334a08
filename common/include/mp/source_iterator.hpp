// mp/source_iterator.hpp - the iterator of mp's one-pass sources: what range-for over
// Pool::imap / imap_unordered, futures::as_completed, a subprocess's output pipe and a
// NamedPipe reader walks.
//
// Copies share one position in the source, as std::istreambuf_iterator's do: the item under
// the iterator is held by the source, not by the iterator. An item that was looked at (by *it,
// or by it == end, which waits for it) and not stepped past (++it) stays for the next reader:
//
//     auto it = pool.imap(f, items);
//     for (int v : it | std::views::take(3)) ...   // three results taken
//     std::optional<int> fourth = it.next();        // the fourth, not lost to take's last step
//
// end() is a default-constructed iterator, so begin() and end() have one type: C++17's
// algorithms and constructors from an iterator pair go on working, and for C++20 the iterator
// is semiregular, a std::input_iterator and its own std::sentinel_for (the source is a
// std::ranges::input_range and a common_range). Comparing with end waits for the next item,
// as it does for std::istream_iterator; the source's errors come out of that comparison.
// The iterator points at its source: moving or destroying the source ends its iterators.
#pragma once

#include <cstddef>
#include <iterator>
#include <string>
#include <utility>

#include "errors.hpp"

namespace mp {
namespace detail {

// What it++ gives: the item it pointed at (moved out of the source), so that *it++ is that
// item although every copy of `it` has moved on.
template <class T>
class PostIncremented {
public:
    explicit PostIncremented(T v) : v_(std::move(v)) {}
    const T& operator*() const { return v_; }
    const T* operator->() const { return &v_; }

private:
    T v_;
};

// Source has, for this class only (a friend):
//   T* source_peek();     waits for the next item and returns it, held by the source; nullptr
//                         when there are no more (also on every later call)
//   void source_drop();   steps past the next item (waits for it if it was not looked at)
template <class Source, class T>
class SourceIterator {
public:
    using iterator_concept = std::input_iterator_tag;
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;

    SourceIterator() = default;  // the end
    explicit SourceIterator(Source* s) noexcept : s_(s) {}

    reference operator*() const { return *item("dereferenced"); }
    pointer operator->() const { return item("dereferenced"); }
    SourceIterator& operator++() {
        if (s_) s_->source_drop();
        return *this;
    }
    PostIncremented<T> operator++(int) {
        PostIncremented<T> was(std::move(*item("incremented")));
        s_->source_drop();
        return was;
    }

    friend bool operator==(const SourceIterator& x, const SourceIterator& y) {
        const bool x_end = x.at_end(), y_end = y.at_end();
        return x_end == y_end && (x_end || x.s_ == y.s_);
    }
    friend bool operator!=(const SourceIterator& x, const SourceIterator& y) { return !(x == y); }

private:
    bool at_end() const { return !s_ || !s_->source_peek(); }
    T* item(const char* what) const {
        T* p = s_ ? s_->source_peek() : nullptr;
        if (!p) throw ValueError(std::string("mp: an iterator at the end of its items was ") + what);
        return p;
    }

    Source* s_ = nullptr;
};

}  // namespace detail
}  // namespace mp
