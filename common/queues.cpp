// common/queues.cpp - mp::Queue, JoinableQueue: records in the shared ring of sys/ring.hpp,
// chunking of big items, timeouts, and repair after a process died holding a lock.
//
// Record format in the ring (host byte order: both ends are the same program on one machine):
//   u32 length of this chunk's payload, u32 flags, then the payload; records wrap around the
//   end of the data area byte by byte. flags: kFirst (the item's first chunk), kLast (its last;
//   a small item is one record with both), kAbort (length 0: the item being streamed was
//   abandoned - by a timed-out put or a dead producer - and its chunks so far are dropped).
// A consumer that is between items discards any record that is not a first chunk: those are
// the remains of an item whose consumer died, or abort marks.
#include "mp/queues.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "sys/ring.hpp"

namespace mp {

// close() only raises the flag: another thread of this process may be inside put or get on
// the mapping, which goes with the last copy of the Queue here.
struct Queue::State {
    std::unique_ptr<sys::Ring> ring;
    std::atomic<bool> closed{false};
};

namespace {

using Clock = std::chrono::steady_clock;
using sys::RingCond;
using sys::RingLock;

constexpr std::uint32_t kFirst = 1, kLast = 2, kAbort = 4;
constexpr std::uint64_t kHeader = 8;
constexpr std::size_t kMinRing = 4096;
// A consumer waiting for the next chunk of an item looks this often whether the producer died.
constexpr auto kProducerCheck = std::chrono::milliseconds(100);

[[noreturn]] void raise(std::error_code ec, const char* what) { raise_os_error(ec, std::string("mp::Queue::") + what); }

sys::RingDeadline deadline_for(bool block, const std::optional<double>& timeout, const char* what) {
    if (!block) return Clock::now();
    if (!timeout) return std::nullopt;
    if (!(*timeout >= 0)) throw ValueError(std::string("mp::Queue::") + what + ": timeout must be a non-negative number");
    if (*timeout > 1e9) return std::nullopt;  // decades: the same as no limit
    return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*timeout));
}

bool expired(const sys::RingDeadline& d) { return d && Clock::now() >= *d; }

// ---- updates that survive a death half way (sys::RingState::redo) -------------------------

sys::RingUpdate snapshot(const sys::RingState& s) {
    return {s.head, s.tail, s.items, s.unfinished, s.w_start, s.w_partial, s.r_partial};
}

void apply(sys::RingState& s, const sys::RingUpdate& u) {
    s.head = u.head;
    s.tail = u.tail;
    s.items = u.items;
    s.unfinished = u.unfinished;
    s.w_start = u.w_start;
    s.w_partial = u.w_partial;
    s.r_partial = u.r_partial;
}

// The fences order the stores as written, for the compiler and the CPU: a process killed at
// any point has made exactly a prefix of them.
void commit(sys::RingState& s, const sys::RingUpdate& u) {
    s.redo = u;
    std::atomic_thread_fence(std::memory_order_release);
    s.redo_valid = 1;
    std::atomic_thread_fence(std::memory_order_release);
    apply(s, u);
    std::atomic_thread_fence(std::memory_order_release);
    s.redo_valid = 0;
}

// By the next holder of the ring lock after its owner died: finishes the update it left.
void recover(sys::RingState& s) {
    if (!s.redo_valid) return;
    apply(s, s.redo);
    std::atomic_thread_fence(std::memory_order_release);
    s.redo_valid = 0;
}

// Holds the ring lock; the ring lock is held only for copies, so it is always waited for
// without a limit. An owner that died holding it leaves at most one update half applied,
// which is finished here (the record bytes it was copying are not yet published).
class RingGuard {
public:
    RingGuard(sys::Ring& r, const char* what) : r_(r), what_(what) {
        bool acquired = false, died = false;
        if (auto ec = sys::ring_lock(r_, RingLock::ring, std::nullopt, acquired, died)) raise(ec, what_);
        if (died) recover(*r_.state);
    }
    ~RingGuard() {
        if (held_) sys::ring_unlock(r_, RingLock::ring);
    }
    RingGuard(const RingGuard&) = delete;
    RingGuard& operator=(const RingGuard&) = delete;
    // Returns false at the deadline.
    bool wait(RingCond c, const sys::RingDeadline& d) {
        bool died = false;
        if (auto ec = sys::ring_wait(r_, c, d, died)) {
            held_ = false;  // on an error the platform layer does not hold it
            raise(ec, what_);
        }
        if (died) recover(*r_.state);
        return !expired(d);
    }
    void notify(RingCond c) {
        if (auto ec = sys::ring_notify_all(r_, c)) raise(ec, what_);
    }

private:
    sys::Ring& r_;
    const char* what_;
    bool held_ = true;
};

// Holds the writer or reader lock.
class SideGuard {
public:
    SideGuard(sys::Ring& r, RingLock which) : r_(r), which_(which) {}
    ~SideGuard() {
        if (held_) sys::ring_unlock(r_, which_);
    }
    SideGuard(const SideGuard&) = delete;
    SideGuard& operator=(const SideGuard&) = delete;
    // false at the deadline; owner_died as sys::ring_lock.
    bool lock(const sys::RingDeadline& d, bool& owner_died, const char* what) {
        // A kernel wait may end a little before the deadline by this clock: try again until
        // it has really passed, so that a timeout is never early.
        do {
            if (auto ec = sys::ring_lock(r_, which_, d, held_, owner_died)) raise(ec, what);
        } while (!held_ && !expired(d));
        return held_;
    }

private:
    sys::Ring& r_;
    RingLock which_;
    bool held_ = false;
};

std::uint64_t free_bytes(const sys::RingState& s) { return s.capacity - (s.tail - s.head); }

void copy_in(sys::Ring& r, std::uint64_t pos, const void* src, std::size_t n) {
    const std::uint64_t cap = r.state->capacity;
    const auto off = static_cast<std::size_t>(pos % cap);
    const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap - off));
    std::memcpy(r.data + off, src, first);
    if (n > first) std::memcpy(r.data, static_cast<const char*>(src) + first, n - first);
}

void copy_out(sys::Ring& r, std::uint64_t pos, void* dst, std::size_t n) {
    const std::uint64_t cap = r.state->capacity;
    const auto off = static_cast<std::size_t>(pos % cap);
    const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap - off));
    std::memcpy(dst, r.data + off, first);
    if (n > first) std::memcpy(static_cast<char*>(dst) + first, r.data, n - first);
}

// Writes one record at the tail, then publishes it with its counts in one update.
void write_record(sys::Ring& r, std::uint32_t flags, const char* payload, std::uint32_t n) {
    sys::RingState& s = *r.state;
    std::uint32_t h[2] = {n, flags};
    copy_in(r, s.tail, h, sizeof h);
    if (n) copy_in(r, s.tail + kHeader, payload, n);
    sys::RingUpdate u = snapshot(s);
    if (flags & kFirst) {
        ++u.items;
        u.w_start = s.tail;
    }
    if (flags & kLast) ++u.unfinished;
    u.w_partial = (flags & kFirst) && !(flags & kLast) ? 1 : (flags & (kLast | kAbort)) ? 0 : s.w_partial;
    u.tail += kHeader + n;
    commit(s, u);
}

struct RecordHeader {
    std::uint32_t length;
    std::uint32_t flags;
};

RecordHeader peek(sys::Ring& r) {
    std::uint32_t h[2];
    copy_out(r, r.state->head, h, sizeof h);
    return {h[0], h[1]};
}

// Between items: drops records that do not begin an item (the rest of an item whose consumer
// died, abort marks). Returns true when the head record now begins an item. The last chunk of
// an item whose consumer died was counted as unfinished when it was put; nobody received the
// item, so nobody will call task_done for it: it is taken off the count here.
bool skip_orphans(sys::Ring& r, RingGuard& g) {
    sys::RingState& s = *r.state;
    bool dropped = false, all_done = false;
    while (s.head != s.tail) {
        const RecordHeader h = peek(r);
        if (h.flags & kFirst) break;
        sys::RingUpdate u = snapshot(s);
        u.head += kHeader + h.length;
        if ((h.flags & kLast) && u.unfinished > 0) all_done = --u.unfinished == 0;
        commit(s, u);
        dropped = true;
    }
    if (dropped) g.notify(RingCond::not_full);
    if (all_done) g.notify(RingCond::all_done);
    return s.head != s.tail;
}

// Takes the record at the head (the caller checked there is one), appending its payload.
RecordHeader take_record(sys::Ring& r, std::string& out) {
    sys::RingState& s = *r.state;
    const RecordHeader h = peek(r);
    const std::size_t at = out.size();
    out.resize(at + h.length);
    if (h.length) copy_out(r, s.head + kHeader, &out[at], h.length);
    sys::RingUpdate u = snapshot(s);
    if (h.flags & kFirst) --u.items;
    u.r_partial = (h.flags & kFirst) && !(h.flags & kLast) ? 1 : (h.flags & kLast) ? 0 : s.r_partial;
    u.head += kHeader + h.length;
    commit(s, u);
    return h;
}

// With the ring and writer locks held, after the writer lock's owner died (or a put gave up):
// removes the item it left half written. If no consumer has taken its first chunk, its chunks
// are the last records in the ring and the tail moves back over them; otherwise an abort mark
// tells that consumer to drop the part it has (a partial writer always keeps room for it).
void abort_partial_item(sys::Ring& r, RingGuard& g) {
    sys::RingState& s = *r.state;
    if (!s.w_partial) return;
    if (s.head <= s.w_start) {
        sys::RingUpdate u = snapshot(s);
        u.tail = s.w_start;
        --u.items;
        u.w_partial = 0;
        commit(s, u);
        g.notify(RingCond::not_full);
        return;
    }
    write_record(r, kAbort, nullptr, 0);
    g.notify(RingCond::not_empty);
}

bool room_for_item(const sys::RingState& s) { return s.maxsize <= 0 || s.items < static_cast<std::uint64_t>(s.maxsize); }

}  // namespace

// ---- Queue -------------------------------------------------------------------------------------

Queue::Queue(long maxsize, std::size_t ring_bytes) : s_(std::make_shared<State>()) {
    if (ring_bytes < kMinRing)
        throw ValueError("mp::Queue: ring_bytes must be at least " + std::to_string(kMinRing) + ", not " +
                         std::to_string(ring_bytes));
    auto ring = std::make_unique<sys::Ring>();
    if (auto ec = sys::ring_create(ring_bytes, *ring)) raise(ec, "Queue");
    ring->state->maxsize = maxsize;
    s_->ring = std::move(ring);
}

static sys::Ring& checked(const std::shared_ptr<Queue::State>& s) {
    if (!s || !s->ring || s->closed.load(std::memory_order_relaxed)) throw ValueError("mp::Queue: Queue is closed");
    return *s->ring;
}

void Queue::put_encoded(const std::string& item, bool block, std::optional<double> timeout) {
    sys::Ring& r = checked(s_);
    const sys::RingDeadline deadline = deadline_for(block, timeout, "put");
    const std::uint64_t n = item.size();
    const std::uint64_t cap = r.state->capacity;
    // The largest record that can ever be written whole, keeping room for an abort mark.
    const bool one_record = n + kHeader <= cap - kHeader && n <= 0xffffffffu;

    if (one_record) {  // fast path: room now and no chunked item in progress
        RingGuard g(r, "put");
        sys::RingState& s = *r.state;
        if (!s.w_partial && room_for_item(s) && free_bytes(s) >= n + kHeader) {
            write_record(r, kFirst | kLast, item.data(), static_cast<std::uint32_t>(n));
            g.notify(RingCond::not_empty);
            return;
        }
    }

    SideGuard writer(r, RingLock::writer);
    bool died = false;
    if (!writer.lock(deadline, died, "put")) throw queue::Full("mp::Queue::put: the queue is full");
    RingGuard g(r, "put");
    sys::RingState& s = *r.state;
    if (died) abort_partial_item(r, g);
    while (!room_for_item(s)) {
        if (!g.wait(RingCond::not_full, deadline)) throw queue::Full("mp::Queue::put: the queue is full");
    }
    std::uint64_t done = 0;
    bool first = true;
    for (;;) {
        const std::uint64_t left = n - done;
        const std::uint64_t avail = free_bytes(s);
        if (left + kHeader <= avail && left <= 0xffffffffu && (!first || one_record)) {
            write_record(r, (first ? kFirst : 0) | kLast, item.data() + done, static_cast<std::uint32_t>(left));
            g.notify(RingCond::not_empty);
            return;
        }
        // A chunk when a good part of the ring is free (so chunks are not tiny), always leaving
        // room for an abort mark. A small item waits until it fits whole.
        if (!one_record && avail >= std::max<std::uint64_t>(cap / 4, 2 * kHeader + 1)) {
            const std::uint64_t chunk = std::min<std::uint64_t>({left, avail - 2 * kHeader, 0xffffffffu});
            write_record(r, first ? kFirst : 0, item.data() + done, static_cast<std::uint32_t>(chunk));
            g.notify(RingCond::not_empty);
            done += chunk;
            first = false;
            continue;
        }
        if (!g.wait(RingCond::not_full, deadline)) {
            if (!first) abort_partial_item(r, g);  // nothing was put
            throw queue::Full("mp::Queue::put: the queue is full");
        }
    }
}

void Queue::get_encoded(std::string& out, bool block, std::optional<double> timeout) {
    sys::Ring& r = checked(s_);
    const sys::RingDeadline deadline = deadline_for(block, timeout, "get");
    out.clear();

    {  // fast path: a whole small item at the head and no chunked item being read
        RingGuard g(r, "get");
        sys::RingState& s = *r.state;
        if (!s.r_partial && skip_orphans(r, g)) {
            const RecordHeader h = peek(r);
            if (h.flags & kLast) {
                take_record(r, out);
                g.notify(RingCond::not_full);
                return;
            }
        }
    }

    SideGuard reader(r, RingLock::reader);
    bool died = false;
    if (!reader.lock(deadline, died, "get")) throw queue::Empty("mp::Queue::get: the queue is empty");
    RingGuard g(r, "get");
    sys::RingState& s = *r.state;
    if (died) s.r_partial = 0;  // its consumer died: the rest of that item is skipped below
    bool started = false;
    for (;;) {
        if (!started) skip_orphans(r, g);
        if (s.head != s.tail) {
            const RecordHeader h = peek(r);
            if (started && (h.flags & (kAbort | kFirst))) {
                // The producer gave up on (or died in) the item begun: drop what arrived.
                sys::RingUpdate u = snapshot(s);
                if (h.flags & kAbort) u.head += kHeader + h.length;
                u.r_partial = 0;
                commit(s, u);
                out.clear();
                started = false;
                g.notify(RingCond::not_full);
                continue;
            }
            take_record(r, out);
            g.notify(RingCond::not_full);
            if (h.flags & kLast) return;
            started = true;
            continue;
        }
        if (!started) {
            if (!g.wait(RingCond::not_empty, deadline)) throw queue::Empty("mp::Queue::get: the queue is empty");
            continue;
        }
        // Half an item is here: the producer still holds the writer lock, unless it died.
        g.wait(RingCond::not_empty, Clock::now() + kProducerCheck);
        if (s.head == s.tail) {
            SideGuard writer(r, RingLock::writer);
            bool writer_died = false;
            if (writer.lock(Clock::now(), writer_died, "get")) {
                abort_partial_item(r, g);  // an abort mark, if the producer's state says so
                // Nobody holds the writer lock, so nobody can send the rest of this item,
                // whatever state its producer left: drop the part taken.
                if (s.head == s.tail) {
                    s.r_partial = 0;
                    out.clear();
                    started = false;
                }
            }
        }
    }
}

std::size_t Queue::qsize() const {
    sys::Ring& r = checked(s_);
    RingGuard g(r, "qsize");
    return static_cast<std::size_t>(r.state->items);
}

bool Queue::empty() const { return qsize() == 0; }

bool Queue::full() const {
    sys::Ring& r = checked(s_);
    RingGuard g(r, "full");
    return !room_for_item(*r.state);
}

long Queue::maxsize() const {
    sys::Ring& r = checked(s_);
    return static_cast<long>(r.state->maxsize);
}

void Queue::close() {
    if (s_) s_->closed.store(true);
}

bool Queue::closed() const noexcept { return !s_ || !s_->ring || s_->closed.load(std::memory_order_relaxed); }

void Queue::mp_encode(Encoder& e) const {
    sys::Ring& r = checked(s_);
    std::vector<sys::native_handle> hs;
    sys::ring_handles(r, hs);
    e.write_varint(hs.size());
    for (auto h : hs) e.write_handle(sys::handle_to_value(h));
}

void Queue::mp_decode(Decoder& d) {
    const std::size_t at = d.offset();
    const std::uint64_t n = d.read_varint();
    if (n == 0 || n > 16) throw DecodeError("mp::Queue: bad handle count " + std::to_string(n), at);
    std::vector<sys::Handle> hs;
    for (std::uint64_t i = 0; i < n; ++i) hs.emplace_back(sys::handle_from_value(d.read_handle()));
    auto ring = std::make_unique<sys::Ring>();
    if (auto ec = sys::ring_open(hs, *ring)) raise(ec, "Queue (received from the parent)");
    auto s = std::make_shared<State>();
    s->ring = std::move(ring);
    s_ = std::move(s);
}

// ---- JoinableQueue -----------------------------------------------------------------------------

void JoinableQueue::task_done() {
    sys::Ring& r = checked(s_);
    RingGuard g(r, "task_done");
    sys::RingState& s = *r.state;
    if (s.unfinished == 0) throw ValueError("mp::JoinableQueue::task_done: called too many times");
    if (--s.unfinished == 0) g.notify(RingCond::all_done);
}

static bool join_until(const std::shared_ptr<Queue::State>& state, const sys::RingDeadline& deadline) {
    sys::Ring& r = checked(state);
    RingGuard g(r, "join");
    while (r.state->unfinished != 0) {
        if (!g.wait(RingCond::all_done, deadline)) return r.state->unfinished == 0;
    }
    return true;
}

void JoinableQueue::join() { join_until(s_, std::nullopt); }

bool JoinableQueue::join(double timeout_seconds) {
    return join_until(s_, deadline_for(true, timeout_seconds, "join"));
}

}  // namespace mp
