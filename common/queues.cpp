// common/queues.cpp - mp::Queue, JoinableQueue: a ring of records in shared memory, chunking of
// big items, timeouts, and repair after a process died holding a lock.
//
// The ring is one shared object like a Lock (common/sync_state.hpp): three of the platform's
// crash-safe mutexes (the ring lock, held only for a copy; the writer and reader locks, held
// by one producer or consumer through an item that travels in chunks), three of its condition
// variables (not empty, not full, all done), and the payload: the RingState below, then the
// data area. How the platform waits and finds a dead owner is posix/ and win32/
// synchronize.cpp; what is here is the same on both systems.
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

#include "sync_state.hpp"
#include "timeout.hpp"

namespace mp {

namespace {

using sys::Deadline;

// The positions and counts that one step changes together (see RingState::redo).
struct RingUpdate {
    std::uint64_t head, tail, items, unfinished, w_start;
    std::uint32_t w_partial, r_partial;
};

// The portable part of the mapping, read and written only with the ring lock held. Byte
// positions count up for ever (head <= tail, tail - head <= capacity); the offset in the data
// area is position % capacity. Nothing here is a pointer: each process maps the view at its
// own address.
struct RingState {
    std::uint64_t capacity;     // bytes of data area
    std::uint64_t head;         // next byte a consumer reads
    std::uint64_t tail;         // next byte a producer writes (published last)
    std::uint64_t items;        // items whose first chunk is in the ring and not yet taken
    std::uint64_t unfinished;   // JoinableQueue: items put and not yet task_done
    std::int64_t maxsize;       // <= 0: no item limit (the ring's bytes still limit)
    std::uint64_t w_start;      // where the item being written in chunks began
    std::uint32_t w_partial;    // a producer has written the first chunk of an item, not the last
    std::uint32_t r_partial;    // a consumer has taken the first chunk of an item, not the last
    // A redo record: a step that changes several of the fields above writes their new values
    // here, raises redo_valid, applies them, and lowers it. A process killed between any two
    // of those stores leaves either the old state (flag down) or an update the next holder of
    // the ring lock applies again (flag up): the counts never drift.
    std::atomic<std::uint32_t> redo_valid;
    RingUpdate redo;
};
constexpr std::size_t kStateBytes = (sizeof(RingState) + 63) & ~std::size_t{63};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free, "the redo flag lives in memory shared by processes");

// The ring's mutexes and condition variables, by slot.
enum RingLock : std::size_t { kRingLock = 0, kWriterLock = 1, kReaderLock = 2 };
enum RingCond : std::size_t { kNotEmpty = 0, kNotFull = 1, kAllDone = 2 };

// One process's view of a ring.
struct Ring {
    std::shared_ptr<detail::SyncState> sync;
    RingState* state = nullptr;
    unsigned char* data = nullptr;
};

}  // namespace

// close() only raises the flag: another thread of this process may be inside put or get on
// the mapping, which goes with the last copy of the Queue here.
struct Queue::State {
    Ring ring;
    std::atomic<bool> closed{false};
};

namespace {


constexpr std::uint32_t kFirst = 1, kLast = 2, kAbort = 4;
constexpr std::uint64_t kHeader = 8;
constexpr std::size_t kMinRing = 4096;
// A consumer waiting for the next chunk of an item looks this often whether the producer died.
constexpr auto kProducerCheck = std::chrono::milliseconds(100);

[[noreturn]] void raise(std::error_code ec, const char* what) { raise_os_error(ec, std::string("mp::Queue::") + what); }

Deadline deadline_for(bool block, const std::optional<double>& timeout, const char* what) {
    if (!block) return Deadline::now();
    if (timeout && !(*timeout >= 0))
        throw ValueError(std::string("mp::Queue::") + what + ": timeout must be a non-negative number");
    return detail::deadline_in_seconds(timeout, "mp::Queue");
}

// ---- updates that survive a death half way (RingState::redo) -------------------------

RingUpdate snapshot(const RingState& s) {
    return {s.head, s.tail, s.items, s.unfinished, s.w_start, s.w_partial, s.r_partial};
}

void apply(RingState& s, const RingUpdate& u) {
    s.head = u.head;
    s.tail = u.tail;
    s.items = u.items;
    s.unfinished = u.unfinished;
    s.w_start = u.w_start;
    s.w_partial = u.w_partial;
    s.r_partial = u.r_partial;
}

// The flag's own orderings keep the stores in the order written, for the compiler and the CPU,
// so that a process killed at any point has made exactly a prefix of them: raising it is a
// read-modify-write with acquire and release (the record before it, the update after it),
// lowering it a release (the update before it). (Not fences: ThreadSanitizer cannot follow
// those, and GCC refuses them under it.)
void commit(RingState& s, const RingUpdate& u) {
    s.redo = u;
    s.redo_valid.exchange(1, std::memory_order_acq_rel);
    apply(s, u);
    s.redo_valid.store(0, std::memory_order_release);
}

// By the next holder of the ring lock after its owner died: finishes the update it left.
void recover(RingState& s) {
    if (!s.redo_valid.load(std::memory_order_acquire)) return;
    apply(s, s.redo);
    s.redo_valid.store(0, std::memory_order_release);
}

// Holds the ring lock; the ring lock is held only for copies, so it is always waited for
// without a limit. An owner that died holding it leaves at most one update half applied,
// which is finished here (the record bytes it was copying are not yet published).
class RingGuard {
public:
    RingGuard(Ring& r, const char* what) : r_(r), what_(what) {
        sys::LockStatus st;
        if (auto ec = sys::mutex_lock(mutex(kRingLock), Deadline::never(), st)) raise(ec, what_);
        if (st == sys::LockStatus::owner_dead) repair();
    }
    ~RingGuard() {
        if (held_) sys::mutex_unlock(mutex(kRingLock));
    }
    RingGuard(const RingGuard&) = delete;
    RingGuard& operator=(const RingGuard&) = delete;
    // Waits for a notify on c; false once the deadline has passed.
    bool wait(RingCond c, const Deadline& d) {
        sys::LockStatus st;
        if (auto ec = sys::cond_wait(r_.sync->conds[c], mutex(kRingLock), d, st)) {
            held_ = false;  // on an error the platform layer does not hold it
            raise(ec, what_);
        }
        if (st == sys::LockStatus::owner_dead) repair();
        return !d.passed();
    }
    void notify(RingCond c) {
        if (auto ec = sys::cond_notify(r_.sync->conds[c], ~0u)) raise(ec, what_);
    }

private:
    sys::Mutex& mutex(RingLock which) { return r_.sync->mutexes[which]; }
    void repair() {
        recover(*r_.state);
        sys::mutex_consistent(mutex(kRingLock));
    }
    Ring& r_;
    const char* what_;
    bool held_ = true;
};

// Holds the writer or reader lock.
class SideGuard {
public:
    SideGuard(Ring& r, RingLock which) : m_(r.sync->mutexes[which]) {}
    ~SideGuard() {
        if (held_) sys::mutex_unlock(m_);
    }
    SideGuard(const SideGuard&) = delete;
    SideGuard& operator=(const SideGuard&) = delete;
    // false at the deadline. owner_died: its previous holder died holding it; the lock is
    // held, and the caller repairs what that holder left half done.
    bool lock(const Deadline& d, bool& owner_died, const char* what) {
        sys::LockStatus st;
        if (auto ec = sys::mutex_lock(m_, d, st)) raise(ec, what);
        held_ = st != sys::LockStatus::timed_out;
        owner_died = st == sys::LockStatus::owner_dead;
        if (owner_died) sys::mutex_consistent(m_);
        return held_;
    }

private:
    sys::Mutex& m_;
    bool held_ = false;
};

std::uint64_t free_bytes(const RingState& s) { return s.capacity - (s.tail - s.head); }

void copy_in(Ring& r, std::uint64_t pos, const void* src, std::size_t n) {
    const std::uint64_t cap = r.state->capacity;
    const auto off = static_cast<std::size_t>(pos % cap);
    const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap - off));
    std::memcpy(r.data + off, src, first);
    if (n > first) std::memcpy(r.data, static_cast<const char*>(src) + first, n - first);
}

void copy_out(Ring& r, std::uint64_t pos, void* dst, std::size_t n) {
    const std::uint64_t cap = r.state->capacity;
    const auto off = static_cast<std::size_t>(pos % cap);
    const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(cap - off));
    std::memcpy(dst, r.data + off, first);
    if (n > first) std::memcpy(static_cast<char*>(dst) + first, r.data, n - first);
}

// Writes one record at the tail, then publishes it with its counts in one update.
void write_record(Ring& r, std::uint32_t flags, const char* payload, std::uint32_t n) {
    RingState& s = *r.state;
    std::uint32_t h[2] = {n, flags};
    copy_in(r, s.tail, h, sizeof h);
    if (n) copy_in(r, s.tail + kHeader, payload, n);
    RingUpdate u = snapshot(s);
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

RecordHeader peek(Ring& r) {
    std::uint32_t h[2];
    copy_out(r, r.state->head, h, sizeof h);
    return {h[0], h[1]};
}

// Between items: drops records that do not begin an item (the rest of an item whose consumer
// died, abort marks). Returns true when the head record now begins an item. The last chunk of
// an item whose consumer died was counted as unfinished when it was put; nobody received the
// item, so nobody will call task_done for it: it is taken off the count here.
bool skip_orphans(Ring& r, RingGuard& g) {
    RingState& s = *r.state;
    bool dropped = false, all_done = false;
    while (s.head != s.tail) {
        const RecordHeader h = peek(r);
        if (h.flags & kFirst) break;
        RingUpdate u = snapshot(s);
        u.head += kHeader + h.length;
        if ((h.flags & kLast) && u.unfinished > 0) all_done = --u.unfinished == 0;
        commit(s, u);
        dropped = true;
    }
    if (dropped) g.notify(kNotFull);
    if (all_done) g.notify(kAllDone);
    return s.head != s.tail;
}

// Takes the record at the head (the caller checked there is one), appending its payload.
RecordHeader take_record(Ring& r, std::string& out) {
    RingState& s = *r.state;
    const RecordHeader h = peek(r);
    const std::size_t at = out.size();
    out.resize(at + h.length);
    if (h.length) copy_out(r, s.head + kHeader, &out[at], h.length);
    RingUpdate u = snapshot(s);
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
void abort_partial_item(Ring& r, RingGuard& g) {
    RingState& s = *r.state;
    if (!s.w_partial) return;
    if (s.head <= s.w_start) {
        RingUpdate u = snapshot(s);
        u.tail = s.w_start;
        --u.items;
        u.w_partial = 0;
        commit(s, u);
        g.notify(kNotFull);
        return;
    }
    write_record(r, kAbort, nullptr, 0);
    g.notify(kNotEmpty);
}

bool room_for_item(const RingState& s) { return s.maxsize <= 0 || s.items < static_cast<std::uint64_t>(s.maxsize); }

}  // namespace

// ---- Queue -------------------------------------------------------------------------------------

// Points the view at the payload of a shared object made (or received) for a ring.
static Ring view_of(std::shared_ptr<detail::SyncState> sync) {
    Ring r;
    r.state = static_cast<RingState*>(sync->payload);
    r.data = static_cast<unsigned char*>(sync->payload) + kStateBytes;
    r.sync = std::move(sync);
    return r;
}

Queue::Queue(long maxsize, std::size_t ring_bytes) : s_(std::make_shared<State>()) {
    if (ring_bytes < kMinRing)
        throw ValueError("mp::Queue: ring_bytes must be at least " + std::to_string(kMinRing) + ", not " +
                         std::to_string(ring_bytes));
    // Three locks, three condition variables; a fresh region is zero-filled.
    s_->ring = view_of(detail::create_sync_state(detail::kQueue, 3, 3, kStateBytes + ring_bytes));
    s_->ring.state->capacity = ring_bytes;
    s_->ring.state->maxsize = maxsize;
}

static Ring& checked(const std::shared_ptr<Queue::State>& s) {
    if (!s || !s->ring.sync || s->closed.load(std::memory_order_relaxed)) throw ValueError("mp::Queue: Queue is closed");
    return s->ring;
}

// The put itself, for both forms: false when the queue stayed full until the deadline (the
// routine failure, reported without an exception); an OS failure of the ring's locks throws.
static bool put_item(Ring& r, const std::string& item, const Deadline& deadline) {
    const std::uint64_t n = item.size();
    const std::uint64_t cap = r.state->capacity;
    // The largest record that can ever be written whole, keeping room for an abort mark.
    const bool one_record = n + kHeader <= cap - kHeader && n <= 0xffffffffu;

    if (one_record) {  // fast path: room now and no chunked item in progress
        RingGuard g(r, "put");
        RingState& s = *r.state;
        if (!s.w_partial && room_for_item(s) && free_bytes(s) >= n + kHeader) {
            write_record(r, kFirst | kLast, item.data(), static_cast<std::uint32_t>(n));
            g.notify(kNotEmpty);
            return true;
        }
    }

    SideGuard writer(r, kWriterLock);
    bool died = false;
    if (!writer.lock(deadline, died, "put")) return false;
    RingGuard g(r, "put");
    RingState& s = *r.state;
    if (died) abort_partial_item(r, g);
    while (!room_for_item(s)) {
        if (!g.wait(kNotFull, deadline)) return false;
    }
    std::uint64_t done = 0;
    bool first = true;
    for (;;) {
        const std::uint64_t left = n - done;
        const std::uint64_t avail = free_bytes(s);
        if (left + kHeader <= avail && left <= 0xffffffffu && (!first || one_record)) {
            write_record(r, (first ? kFirst : 0) | kLast, item.data() + done, static_cast<std::uint32_t>(left));
            g.notify(kNotEmpty);
            return true;
        }
        // A chunk when a good part of the ring is free (so chunks are not tiny), always leaving
        // room for an abort mark. A small item waits until it fits whole.
        if (!one_record && avail >= std::max<std::uint64_t>(cap / 4, 2 * kHeader + 1)) {
            const std::uint64_t chunk = std::min<std::uint64_t>({left, avail - 2 * kHeader, 0xffffffffu});
            write_record(r, first ? kFirst : 0, item.data() + done, static_cast<std::uint32_t>(chunk));
            g.notify(kNotEmpty);
            done += chunk;
            first = false;
            continue;
        }
        if (!g.wait(kNotFull, deadline)) {
            if (!first) abort_partial_item(r, g);  // nothing was put
            return false;
        }
    }
}

void Queue::put_encoded(const std::string& item, bool block, std::optional<double> timeout) {
    Ring& r = checked(s_);
    if (!put_item(r, item, deadline_for(block, timeout, "put"))) throw queue::Full("mp::Queue::put: the queue is full");
}

void Queue::put_encoded(const std::string& item, bool block, std::optional<double> timeout, std::error_code& ec) {
    Ring& r = checked(s_);
    const Deadline deadline = deadline_for(block, timeout, "put");
    ec.clear();
    try {
        if (!put_item(r, item, deadline)) ec = errc::queue_full;
    } catch (const OSError& e) {  // a broken lock: not routine, and not worth a path of its own
        ec = e.code();
    }
}

// The get itself, for both forms: false when nothing came before the deadline (out is then
// empty); an OS failure of the ring's locks throws.
static bool get_item(Ring& r, std::string& out, const Deadline& deadline) {
    out.clear();

    {  // fast path: a whole small item at the head and no chunked item being read
        RingGuard g(r, "get");
        RingState& s = *r.state;
        if (!s.r_partial && skip_orphans(r, g)) {
            const RecordHeader h = peek(r);
            if (h.flags & kLast) {
                take_record(r, out);
                g.notify(kNotFull);
                return true;
            }
        }
    }

    SideGuard reader(r, kReaderLock);
    bool died = false;
    if (!reader.lock(deadline, died, "get")) return false;
    RingGuard g(r, "get");
    RingState& s = *r.state;
    if (died) s.r_partial = 0;  // its consumer died: the rest of that item is skipped below
    bool started = false;
    for (;;) {
        if (!started) skip_orphans(r, g);
        if (s.head != s.tail) {
            const RecordHeader h = peek(r);
            if (started && (h.flags & (kAbort | kFirst))) {
                // The producer gave up on (or died in) the item begun: drop what arrived.
                RingUpdate u = snapshot(s);
                if (h.flags & kAbort) u.head += kHeader + h.length;
                u.r_partial = 0;
                commit(s, u);
                out.clear();
                started = false;
                g.notify(kNotFull);
                continue;
            }
            take_record(r, out);
            g.notify(kNotFull);
            if (h.flags & kLast) return true;
            started = true;
            continue;
        }
        if (!started) {
            if (!g.wait(kNotEmpty, deadline)) return false;
            continue;
        }
        // Half an item is here: the producer still holds the writer lock, unless it died.
        g.wait(kNotEmpty, Deadline::after(kProducerCheck));
        if (s.head == s.tail) {
            SideGuard writer(r, kWriterLock);
            bool writer_died = false;
            if (writer.lock(Deadline::now(), writer_died, "get")) {
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

void Queue::get_encoded(std::string& out, bool block, std::optional<double> timeout) {
    Ring& r = checked(s_);
    if (!get_item(r, out, deadline_for(block, timeout, "get"))) throw queue::Empty("mp::Queue::get: the queue is empty");
}

void Queue::get_encoded(std::string& out, bool block, std::optional<double> timeout, std::error_code& ec) {
    Ring& r = checked(s_);
    const Deadline deadline = deadline_for(block, timeout, "get");
    ec.clear();
    try {
        if (!get_item(r, out, deadline)) ec = errc::queue_empty;
    } catch (const OSError& e) {
        out.clear();
        ec = e.code();
    }
}

std::size_t Queue::qsize() const {
    Ring& r = checked(s_);
    RingGuard g(r, "qsize");
    return static_cast<std::size_t>(r.state->items);
}

bool Queue::empty() const { return qsize() == 0; }

bool Queue::full() const {
    Ring& r = checked(s_);
    RingGuard g(r, "full");
    return !room_for_item(*r.state);
}

long Queue::maxsize() const {
    Ring& r = checked(s_);
    return static_cast<long>(r.state->maxsize);
}

void Queue::close() {
    if (s_) s_->closed.store(true);
}

bool Queue::closed() const noexcept { return !s_ || !s_->ring.sync || s_->closed.load(std::memory_order_relaxed); }

void Queue::mp_encode(Encoder& e) const { detail::encode_sync_state(checked(s_).sync, e); }

void Queue::mp_decode(Decoder& d) {
    const std::size_t at = d.offset();
    auto sync = detail::decode_sync_state(d, detail::kQueue);
    if (sync->mutexes.size() != 3 || sync->conds.size() != 3 || sync->payload_size <= kStateBytes ||
        static_cast<RingState*>(sync->payload)->capacity != sync->payload_size - kStateBytes)
        throw DecodeError("mp::Queue: the shared memory received is not a queue's ring", at);
    auto s = std::make_shared<State>();
    s->ring = view_of(std::move(sync));
    s_ = std::move(s);
}

// ---- JoinableQueue -----------------------------------------------------------------------------

void JoinableQueue::task_done() {
    Ring& r = checked(s_);
    RingGuard g(r, "task_done");
    RingState& s = *r.state;
    if (s.unfinished == 0) throw ValueError("mp::JoinableQueue::task_done: called too many times");
    if (--s.unfinished == 0) g.notify(kAllDone);
}

static bool join_until(const std::shared_ptr<Queue::State>& state, const Deadline& deadline) {
    Ring& r = checked(state);
    RingGuard g(r, "join");
    while (r.state->unfinished != 0) {
        if (!g.wait(kAllDone, deadline)) return r.state->unfinished == 0;
    }
    return true;
}

void JoinableQueue::join() { join_until(s_, Deadline::never()); }

bool JoinableQueue::join(std::optional<double> timeout_seconds) {
    return join_until(s_, deadline_for(true, timeout_seconds, "join"));
}

}  // namespace mp
