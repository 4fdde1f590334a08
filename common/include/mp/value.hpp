// mp/value.hpp - mp::Value<T> and mp::Array<T> (Python's multiprocessing.Value and Array):
// plain data in memory shared between processes, with a lock beside it.
//
//     mp::Value<int> counter(0);                  // Value('i', 0): with its own RLock
//     {
//         std::lock_guard<mp::RLock> g(counter.get_lock());
//         counter = counter.value() + 1;         // a read-modify-write needs the lock held
//     }
//     mp::Value<double> raw(0.0, false);          // RawValue: no lock; get_lock() throws
//     mp::Value<int, mp::Lock> v(0, mp::Lock());  // with a lock of your choosing
//     mp::Array<int> a({1, 2, 3});  a[0] = 7;  a.size();  a.data();   // Array('i', [1,2,3])
//     mp::Array<char> buf(64);                    // Array('c', 64): zero-filled
//     ctx.Process(worker, counter, a).start();    // fork inherits, spawn passes the memory
//
// T must be trivially copyable (ints, doubles, PODs): the bytes are shared as they are, so a
// pointer or std::string inside would mean nothing in another process. value() and set() each
// take the lock (as CPython's synchronized wrapper does), so one read or one write is whole;
// a read-modify-write (+= 1) needs get_lock() held around it. Array's operator[] and data()
// give the memory itself, unlocked: hold get_lock() for anything that must be consistent.
// Without a lock (the `false` forms) get_lock() throws RuntimeError, as a RawValue has none.
// Copies share the memory, as Python references do; it goes with the last copy in the last
// process.
#pragma once

#include <cstddef>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>

#include "codec.hpp"
#include "errors.hpp"
#include "lock.hpp"

namespace mp {
namespace detail {

// Zero-filled shared bytes (the memory of a Value or Array).
class SharedBlock {
public:
    SharedBlock() = default;
    explicit SharedBlock(std::size_t bytes);
    // Inline: a locked increment reads it twice, and a call into the library costs more than
    // the copy of an int.
    void* data() const noexcept { return data_; }
    std::size_t size() const noexcept { return size_; }
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

private:
    std::shared_ptr<SyncState> s_;
    void* data_ = nullptr;  // into the mapping s_ keeps alive
    std::size_t size_ = 0;
};

[[noreturn]] void throw_no_lock(const char* what);

// The block and the optional lock that Value and Array share.
template <class L>
class Synchronized {
public:
    L& get_lock() {
        if (!lock_) throw_no_lock(name_);
        return *lock_;
    }
    void mp_encode(Encoder& e) const {
        block_.mp_encode(e);
        e.write(lock_.has_value());
        if (lock_) lock_->mp_encode(e);
    }
    void mp_decode(Decoder& d) {
        block_.mp_decode(d);
        if (d.read<bool>()) {
            lock_.emplace();
            lock_->mp_decode(d);
        } else {
            lock_.reset();
        }
    }

protected:
    Synchronized(std::size_t bytes, std::optional<L> lock, const char* name)
        : block_(bytes), lock_(std::move(lock)), name_(name) {}
    SharedBlock block_;
    std::optional<L> lock_;
    const char* name_;
};

}  // namespace detail

template <class T, class L = RLock>
class Value : public detail::Synchronized<L> {
    static_assert(std::is_trivially_copyable_v<T>, "mp::Value<T>: T must be trivially copyable (its bytes are shared as they are)");
    using Base = detail::Synchronized<L>;

public:
    Value() : Value(T{}) {}
    explicit Value(const T& v, bool lock = true) : Base(sizeof(T), lock ? std::optional<L>(L()) : std::nullopt, "mp::Value") {
        std::memcpy(ptr(), &v, sizeof(T));
    }
    Value(const T& v, L lock) : Base(sizeof(T), std::move(lock), "mp::Value") { std::memcpy(ptr(), &v, sizeof(T)); }

    T value() const {
        T out;
        with_lock([&] { std::memcpy(&out, ptr(), sizeof(T)); });
        return out;
    }
    void set(const T& v) {
        with_lock([&] { std::memcpy(ptr(), &v, sizeof(T)); });
    }
    Value& operator=(const T& v) {
        set(v);
        return *this;
    }
    // The shared object itself, unlocked (CPython's get_obj()).
    T& get_obj() const noexcept { return *ptr(); }

    void mp_decode(Decoder& d) {
        Base::mp_decode(d);
        if (this->block_.size() < sizeof(T))
            throw DecodeError("mp::Value: the shared memory received is smaller than the value's type", d.offset());
    }

private:
    T* ptr() const noexcept { return static_cast<T*>(this->block_.data()); }
    template <class F>
    void with_lock(F f) const {
        if (this->lock_) {
            auto& l = const_cast<L&>(*this->lock_);
            std::lock_guard<L> g(l);
            f();
        } else {
            f();
        }
    }
};

template <class T, class L = RLock>
class Array : public detail::Synchronized<L> {
    static_assert(std::is_trivially_copyable_v<T>, "mp::Array<T>: T must be trivially copyable (its bytes are shared as they are)");
    using Base = detail::Synchronized<L>;

public:
    Array() : Array(0) {}
    explicit Array(std::size_t n, bool lock = true)
        : Base(n * sizeof(T), lock ? std::optional<L>(L()) : std::nullopt, "mp::Array"), n_(n) {
        for (std::size_t i = 0; i < n; ++i) new (data() + i) T{};
    }
    Array(std::size_t n, L lock) : Base(n * sizeof(T), std::move(lock), "mp::Array"), n_(n) {
        for (std::size_t i = 0; i < n; ++i) new (data() + i) T{};
    }
    Array(std::initializer_list<T> init, bool lock = true) : Array(init.size(), lock) {
        std::size_t i = 0;
        for (const T& v : init) data()[i++] = v;
    }

    std::size_t size() const noexcept { return n_; }
    T* data() const noexcept { return static_cast<T*>(this->block_.data()); }
    T& operator[](std::size_t i) const noexcept { return data()[i]; }
    T* begin() const noexcept { return data(); }
    T* end() const noexcept { return data() + n_; }

    void mp_encode(Encoder& e) const {
        e.write(static_cast<std::uint64_t>(n_));
        Base::mp_encode(e);
    }
    void mp_decode(Decoder& d) {
        const auto n = d.read<std::uint64_t>();
        Base::mp_decode(d);
        if (n > this->block_.size() / sizeof(T))
            throw DecodeError("mp::Array: element count larger than the shared memory", d.offset());
        n_ = static_cast<std::size_t>(n);
    }

private:
    std::size_t n_ = 0;
};

}  // namespace mp
