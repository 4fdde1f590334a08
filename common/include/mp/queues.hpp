// mp/queues.hpp - mp::Queue, mp::SimpleQueue and mp::JoinableQueue (Python's
// multiprocessing.Queue family), with mp::queue::Empty and mp::queue::Full.
//
//     mp::Queue q;                         // or mp::Queue q(2): at most 2 items queued
//     q.put(std::pair<int, std::string>{1, "one"});
//     auto [n, s] = q.get<std::pair<int, std::string>>();
//     q.put(x, true, 0.5);  q.get<T>(true, 0.5);  q.get<T>(std::chrono::milliseconds(500));
//     q.put_nowait(x);      q.get_nowait<T>();    // queue::Full / queue::Empty
//     std::optional<T> v = q.get_nowait<T>(ec);  // or ec == mp::errc::queue_empty, no throw
//     mp::Process p = ctx.Process(worker, q);     // pass it to children as an argument
//
// Design: a ring of length-prefixed records in one shared mapping, not a pipe. CPython's Queue
// pickles the item, hands it to a feeder thread, and the thread writes it to a pipe; a get is a
// lock plus a pipe read. One system call (or more) per item caps that design at the pipe's rate
// (here about 13x CPython for small items). Here a put encodes the item (mp/codec.hpp) in the
// caller, takes the ring's lock, copies the record into the mapping and publishes it; a get
// copies it out. On POSIX the lock is a robust pshared pthread mutex inside the mapping and a
// wait is a futex on a counter there, so an uncontended put or get is a few atomic
// instructions and two copies, and the kernel is entered only to sleep or to wake a sleeper
// (waiter counts say when). On Windows the lock and waits are kernel mutexes and semaphores
// (see win32/ring.cpp): correct and crash-safe, one kernel call per lock. Measured (bench/run
// queue., 2-vCPU VM, everything pinned to one CPU, (int, 64 B) items): 0.2 us per item for 1
// producer -> 1 consumer and for 2 -> 2, about 40x CPython's mp.Queue and half the time of a
// bare pipe carrying the same 68-byte records one write each.
//
// What it guarantees, beyond CPython:
// - No feeder thread. put() returns once the item is in shared memory, so a process that has
//   put items can exit at once and nothing is lost; join_thread() and cancel_join_thread() have
//   nothing to do and do not exist. The flip side: put() blocks when the ring is full, even with
//   maxsize 0 (no item limit), until consumers make room; Queue(maxsize, ring_bytes) sizes the
//   ring (default 4 MiB; memory pages are only touched as the ring fills).
// - An item that fails to encode raises in put() before anything is written; the queue stays
//   usable. No item is dropped silently.
// - Items of any size (64 MiB and more) pass through a smaller ring: an item that does not fit
//   in one record is streamed in chunks while the producer holds the ring's writer lock (so big
//   items never interleave), and the consumer that takes its first chunk holds the reader lock
//   until the last. A put whose timeout expires half way writes an abort mark and raises Full:
//   the consumer drops the half it has and nothing was put. (Such a put_nowait usually fails:
//   it needs the whole item to fit at once.) A get that has taken a first chunk waits for the
//   rest past its own timeout: the producer is writing it (or will abort it).
// - Crash safety. A process killed while holding one of the ring's locks does not block the
//   others: the next locker gets EOWNERDEAD (POSIX robust mutex) / WAIT_ABANDONED (Windows)
//   and repairs. A record's bytes are copied first, then published together with the counts
//   it changes (write position, item and unfinished counts, partial-item marks) through a redo
//   record in the mapping: a process killed at any instruction has put / taken the whole record
//   or none of it, and the next holder of the lock finishes an update it left half applied, so
//   qsize(), full() and JoinableQueue's count stay exact. A producer killed half way through a
//   chunked item: the item is dropped (an abort mark is written by whoever notices; it was never
//   put - the put did not return). A consumer killed half way through one: the rest of that item is
//   skipped (it was being delivered to the process that died), and JoinableQueue stops counting
//   it as unfinished (nobody received it to call task_done). A process killed while waiting
//   leaves only a stale waiter count (it costs an unneeded wakeup call, nothing more). Tested by
//   killing producers and consumers at random points.
//
// get<T>() of an item put as another type throws TypeError naming both (each item carries its
// type's fingerprint, mp/codec.hpp), and of an item that does not decode as T DecodeError; in
// both cases the item is consumed.
// qsize() is the number of items whose first byte is in the ring and that no consumer has
// started: exact when nothing is in flight, best effort while other processes put and get (as
// in CPython, where it is "approximate"). close() ends this process's use of the queue (every
// copy of this object in this process): later put/get are ValueError "Queue is closed". A put
// or get already waiting in another thread is not interrupted; the mapping stays until the
// last copy of the object here is destroyed, so such a thread never touches freed memory.
// Negative timeouts are ValueError. Copies share (shared_ptr pimpl); under fork a child inherits
// the mapping, under spawn the Queue encodes its handle(s) (one memfd on POSIX, seven handles
// on Windows) through the codec's HandleList.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "codec.hpp"
#include "duration.hpp"
#include "errors.hpp"

namespace mp {

namespace queue {
// Python's queue.Empty and queue.Full.
class Empty : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
class Full : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};
}  // namespace queue

class Queue {
public:
    static constexpr std::size_t default_ring_bytes = std::size_t{4} << 20;

    // maxsize <= 0: no limit on the number of items (the ring's bytes still bound what waits).
    explicit Queue(long maxsize = 0, std::size_t ring_bytes = default_ring_bytes);

    template <class T>
    void put(const T& item, bool block = true, std::optional<double> timeout = std::nullopt) {
        std::string buf;
        encode_message_to(buf, item);  // throws here, before the queue is touched
        put_encoded(buf, block, timeout);
    }
    template <class T, class Rep, class Period>
    void put(const T& item, std::chrono::duration<Rep, Period> timeout) {
        put(item, true, mp::detail::nonnegative_seconds(timeout));
    }
    template <class T>
    void put_nowait(const T& item) {
        put(item, false);
    }

    template <class T>
    T get(bool block = true, std::optional<double> timeout = std::nullopt) {
        std::string buf;
        get_encoded(buf, block, timeout);
        return decode_message<T>(buf);
    }
    template <class T, class Rep, class Period>
    T get(std::chrono::duration<Rep, Period> timeout) {
        return get<T>(true, mp::detail::nonnegative_seconds(timeout));
    }
    template <class T>
    T get_nowait() {
        return get<T>(false);
    }

    // The std::error_code forms (mp/errors.hpp): where the forms above raise queue::Full or
    // queue::Empty, these set ec to mp::errc::queue_full or mp::errc::queue_empty (and get
    // returns std::nullopt), without an exception being thrown on the way; the code of an
    // OSError goes into ec too. ec is cleared on success. Still thrown: ValueError (a closed
    // queue, a negative timeout), what encoding the item raises (before the queue is touched),
    // and for get TypeError and DecodeError (an item that is not a T; it is consumed).
    //     std::error_code ec;
    //     while (auto job = q.get<Job>(true, 0.1, ec)) run(*job);   // ec == mp::errc::queue_empty
    template <class T>
    void put(const T& item, bool block, std::optional<double> timeout, std::error_code& ec) {
        std::string buf;
        encode_message_to(buf, item);
        put_encoded(buf, block, timeout, ec);
    }
    template <class T, class Rep, class Period>
    void put(const T& item, std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        put(item, true, mp::detail::nonnegative_seconds(timeout), ec);
    }
    template <class T>
    void put_nowait(const T& item, std::error_code& ec) {
        put(item, false, std::nullopt, ec);
    }
    template <class T>
    std::optional<T> get(bool block, std::optional<double> timeout, std::error_code& ec) {
        std::string buf;
        get_encoded(buf, block, timeout, ec);
        if (ec) return std::nullopt;
        return decode_message<T>(buf);
    }
    template <class T, class Rep, class Period>
    std::optional<T> get(std::chrono::duration<Rep, Period> timeout, std::error_code& ec) {
        return get<T>(true, mp::detail::nonnegative_seconds(timeout), ec);
    }
    template <class T>
    std::optional<T> get_nowait(std::error_code& ec) {
        return get<T>(false, std::nullopt, ec);
    }

    // The encoded bytes of one item, as put() writes them (for callers that decode themselves:
    // a typed message, mp::decode_message). The ec forms as above; get_encoded leaves out
    // empty when it sets ec.
    void put_encoded(const std::string& item, bool block = true, std::optional<double> timeout = std::nullopt);
    void get_encoded(std::string& out, bool block = true, std::optional<double> timeout = std::nullopt);
    void put_encoded(const std::string& item, bool block, std::optional<double> timeout, std::error_code& ec);
    void get_encoded(std::string& out, bool block, std::optional<double> timeout, std::error_code& ec);

    std::size_t qsize() const;
    bool empty() const;
    bool full() const;
    long maxsize() const;
    void close();
    bool closed() const noexcept;

    // Passing to a spawned child (see mp/codec.hpp).
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

    struct State;

protected:
    std::shared_ptr<State> s_;
};

// A Queue that counts unfinished tasks: every put adds one, task_done() removes one, join()
// waits until none is left.
class JoinableQueue : public Queue {
public:
    explicit JoinableQueue(long maxsize = 0, std::size_t ring_bytes = default_ring_bytes)
        : Queue(maxsize, ring_bytes) {}
    // ValueError when called more times than items were put.
    void task_done();
    void join();
    // false when the timeout expired first.
    [[nodiscard]] bool join(std::optional<double> timeout_seconds);
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) {
        return join(mp::detail::nonnegative_seconds(timeout));
    }
};

// Python's SimpleQueue: put, get, empty, close; no limit, no timeouts. (So it has no
// std::error_code forms: its put and get wait for as long as it takes and have no routine
// failure; use a Queue for get_nowait and timeouts.)
class SimpleQueue {
public:
    explicit SimpleQueue(std::size_t ring_bytes = Queue::default_ring_bytes) : q_(0, ring_bytes) {}
    template <class T>
    void put(const T& item) {
        q_.put(item);
    }
    template <class T>
    T get() {
        return q_.get<T>();
    }
    bool empty() const { return q_.empty(); }
    void close() { q_.close(); }
    bool closed() const noexcept { return q_.closed(); }

    void mp_encode(Encoder& e) const { q_.mp_encode(e); }
    void mp_decode(Decoder& d) { q_.mp_decode(d); }

private:
    Queue q_;
};

}  // namespace mp
