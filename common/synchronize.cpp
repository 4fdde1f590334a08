// common/synchronize.cpp - Lock, RLock, Semaphore, Event, Condition, Barrier and the shared
// block of Value/Array, written against the sys/synchronize.hpp contract (a shared region, a
// mutex that reports a dead owner, a condition variable), the way CPython's threading module
// builds its primitives on one lock.
//
// Each object is one SharedRegion laid out as
//   [header 64 B: magic, kind, mutex count, cond count][mutex slots][cond slots][payload]
// and passes to a spawned child as the region's handle, its size, and on Windows the kernel
// handles of its mutexes and conds. Nothing in the region is a pointer.
//
// The internal mutex of Semaphore, Event, Condition and Barrier is held only for a few
// loads and stores. If a process dies holding it, the next one gets owner_dead, marks it
// consistent and goes on: each update there is a single store, so the state is whole.
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "mp/synchronize.hpp"
#include "sync_state.hpp"
#include "sys/synchronize.hpp"
#include "timeout.hpp"

namespace mp {
namespace detail {

using sys::Deadline;

namespace {

constexpr std::uint32_t kMagic = 0x6d707379;  // "mpsy"
constexpr std::size_t kHeader = 64;

struct Header {
    std::uint32_t magic;
    std::uint8_t kind, n_mutex, n_cond, pad;
    std::uint64_t payload_size;
};

std::size_t layout_size(std::size_t n_mutex, std::size_t n_cond, std::uint64_t payload) {
    return kHeader + n_mutex * sys::mutex_bytes + n_cond * sys::cond_bytes + static_cast<std::size_t>(payload);
}

// Points the slots and the payload into the mapped region.
void place(SyncState& s) {
    auto* base = static_cast<unsigned char*>(s.region.addr);
    std::size_t off = kHeader;
    for (auto& m : s.mutexes) {
        m.mem = base + off;
        off += sys::mutex_bytes;
    }
    for (auto& c : s.conds) {
        c.mem = base + off;
        off += sys::cond_bytes;
    }
    s.payload = base + off;
}

// A slot's kernel object, where the OS has one beside the memory: a flag, then the handle.
void encode_kernel(Encoder& e, const sys::Handle& h) {
    e.write(h.valid());
    if (h) e.write_handle(sys::handle_to_value(h.get()));
}
void decode_kernel(Decoder& d, sys::Handle& h) {
    if (d.read<bool>()) h.reset(sys::handle_from_value(d.read_handle()));
}

}  // namespace

const char* sync_kind_name(std::uint8_t k) {
    switch (k) {
    case kLock: return "mp::Lock";
    case kRLock: return "mp::RLock";
    case kSemaphore: return "mp::Semaphore";
    case kEvent: return "mp::Event";
    case kCondition: return "mp::Condition";
    case kBarrier: return "mp::Barrier";
    case kQueue: return "mp::Queue";
    default: return "mp::Value/Array";
    }
}

std::shared_ptr<SyncState> create_sync_state(SyncKind kind, std::size_t n_mutex, std::size_t n_cond, std::size_t payload) {
    auto s = std::make_shared<SyncState>();
    s->kind = kind;
    s->mutexes.resize(n_mutex);
    s->conds.resize(n_cond);
    s->payload_size = payload;
    const std::string what = sync_kind_name(kind);
    if (auto ec = sys::region_create(layout_size(n_mutex, n_cond, payload), s->region)) raise_os_error(ec, what + ": shared memory");
    place(*s);
    for (auto& m : s->mutexes)
        if (auto ec = sys::mutex_init(m)) raise_os_error(ec, what + ": mutex");
    for (auto& c : s->conds)
        if (auto ec = sys::cond_init(c)) raise_os_error(ec, what + ": condition variable");
    *static_cast<Header*>(s->region.addr) =
        Header{kMagic, kind, static_cast<std::uint8_t>(n_mutex), static_cast<std::uint8_t>(n_cond), 0, payload};
    return s;
}

void encode_sync_state(const std::shared_ptr<SyncState>& s, Encoder& e) {
    e.write_handle(sys::handle_to_value(s->region.h.get()));
    e.write(static_cast<std::uint64_t>(s->region.size));
    for (auto& m : s->mutexes) encode_kernel(e, m.kernel);
    for (auto& c : s->conds) encode_kernel(e, c.kernel);
}

std::shared_ptr<SyncState> decode_sync_state(Decoder& d, SyncKind kind) {
    auto s = std::make_shared<SyncState>();
    s->kind = kind;
    const std::string what = sync_kind_name(kind);
    s->region.h.reset(sys::handle_from_value(d.read_handle()));
    const auto size = d.read<std::uint64_t>();
    if (size < kHeader || size > (std::uint64_t{1} << 40)) throw DecodeError(what + ": bad shared memory size", d.offset());
    if (auto ec = sys::region_map(s->region, static_cast<std::size_t>(size)))
        raise_os_error(ec, what + ": mapping the shared memory received");
    const Header& h = *static_cast<const Header*>(s->region.addr);
    if (h.magic != kMagic || h.kind != kind)
        throw DecodeError("expected an " + what + ", received " + (h.magic == kMagic ? sync_kind_name(h.kind) : "something else"),
                          d.offset());
    if (h.payload_size > size || layout_size(h.n_mutex, h.n_cond, h.payload_size) != size)
        throw DecodeError(what + ": inconsistent shared memory layout", d.offset());
    s->mutexes.resize(h.n_mutex);
    s->conds.resize(h.n_cond);
    s->payload_size = h.payload_size;
    for (auto& m : s->mutexes) decode_kernel(d, m.kernel);
    for (auto& c : s->conds) decode_kernel(d, c.kernel);
    place(*s);
    return s;
}

namespace {

// The internal mutex (slot 0) of Semaphore, Event, Condition, Barrier: held briefly, so it is
// taken without limit, and a dead holder is simply forgiven (see the top of this file). A
// thread that already holds it re-enters: a Barrier's action runs holding it, and may call
// n_waiting(), broken(), abort() or reset() (as it may in Python).
class Internal {
public:
    Internal(SyncState& s, const char* what) : s_(s) {
        if (sys::mutex_held_by_caller(s.mutexes[0])) {
            reentered_ = true;
            return;
        }
        sys::LockStatus st;
        if (auto ec = sys::mutex_lock(s.mutexes[0], Deadline::never(), st)) raise_os_error(ec, what);
        if (st == sys::LockStatus::owner_dead) sys::mutex_consistent(s.mutexes[0]);
    }
    ~Internal() {
        if (!reentered_) sys::mutex_unlock(s_.mutexes[0]);
    }
    Internal(const Internal&) = delete;
    Internal& operator=(const Internal&) = delete;
    bool reentered() const { return reentered_; }

    // Waits on cond `i` until notified (true) or the deadline (false).
    bool wait(std::size_t i, const Deadline& deadline, const char* what) {
        sys::LockStatus st;
        if (auto ec = sys::cond_wait(s_.conds[i], s_.mutexes[0], deadline, st)) raise_os_error(ec, what);
        if (st == sys::LockStatus::owner_dead) sys::mutex_consistent(s_.mutexes[0]);
        return st != sys::LockStatus::timed_out;
    }
    void notify(std::size_t i, unsigned n, const char* what) {
        if (auto ec = sys::cond_notify(s_.conds[i], n)) raise_os_error(ec, what);
    }

private:
    SyncState& s_;
    bool reentered_ = false;
};

// ---- Lock / RLock ----------------------------------------------------------------------

enum : std::uint32_t { kPendingConsistent = 1, kUnrecoverable = 2 };

[[noreturn]] MP_COLD void throw_unrecoverable(const char* name) {
    throw OSError(std::make_error_code(std::errc::state_not_recoverable),
                  std::string(name) +
                      ": the lock is broken for good: its owner died holding it, and the next owner released it "
                      "without make_consistent()");
}

[[noreturn]] MP_COLD void throw_owner_dead(const char* name) {
    throw OwnerDeadError(std::string(name) +
                         ": the previous owner died holding the lock; this thread now holds it. Repair the "
                         "data it guards, then call make_consistent() (releasing it without that breaks the "
                         "lock for good)");
}

[[noreturn]] MP_COLD void throw_release_error(const char* name, bool recursive, std::uint64_t owner) {
    if (!recursive && owner == 0) throw ValueError("mp::Lock::release: semaphore or lock released too many times");
    throw RuntimeError(std::string(name) + "::release: cannot release un-acquired lock" +
                       (owner ? " (another thread or process holds it)" : ""));
}

}  // namespace

std::uint64_t thread_token_slow() noexcept { return sys::thread_token(); }

LockBase::LockBase(bool recursive)
    : s_(create_sync_state(recursive ? kRLock : kLock, 1, 0, sizeof(LockShared))), recursive_(recursive) {
    bind();
}

void LockBase::bind() {
    w_ = &s_->data<LockShared>();
    m_ = &s_->mutexes[0];
}

double LockBase::bad_timeout(double timeout) const {
    check_timeout(timeout, (std::string(name()) + "::acquire").c_str());
    throw ValueError(std::string(name()) + "::acquire: the timeout must be >= 0");  // not reached
}

bool LockBase::acquire_held(bool block, const std::optional<double>& timeout) {
    const Deadline deadline = deadline_for_block(block, timeout, name());
    // Python would wait on itself; mp keeps the observable outcome without the hang.
    if (deadline.is_never())
        throw RuntimeError(std::string(name()) +
                           "::acquire: this thread already holds the lock; waiting for it without a timeout "
                           "would deadlock (use an RLock to re-enter)");
    // A sleep may end a timer tick early (Windows): it is over when the clock says so.
    while (!deadline.passed()) std::this_thread::sleep_until(deadline.time_point());
    return false;
}

bool LockBase::acquire_free(std::uint64_t me, double ms, std::error_code* ec) {
    // The uncontended path: one compare-and-swap, then one load of a line it just brought
    // into the cache (the flags stand for an unrecoverable lock or a pending repair).
    const bool taken = sys::mutex_try_uncontended(*m_);
    LockShared& d = *w_;
    if (MP_LIKELY(taken && d.flags.load(std::memory_order_relaxed) == 0)) {
        d.owner.store(me, std::memory_order_relaxed);
        d.count.store(1, std::memory_order_relaxed);
        return true;
    }
    return acquire_slow(me, ms, taken, ec);
}

// One implementation for both forms: with ec == nullptr a failure is thrown, else it is
// reported in *ec (and a dead owner still leaves the lock held).
bool LockBase::acquire_slow(std::uint64_t me, double ms, bool taken, std::error_code* ec) {
    const Deadline deadline = deadline_in_ms(ms, name());
    LockShared& d = *w_;
    sys::LockStatus st = sys::LockStatus::acquired;
    if (!taken) {
        if (auto e = sys::mutex_lock(*m_, deadline, st)) {
            if (!ec) raise_os_error(e, std::string(name()) + "::acquire");
            *ec = e;
            return false;
        }
        if (st == sys::LockStatus::timed_out) return false;
    }
    // The mutex has no broken state of its own: mp's flag stands for it.
    if (d.flags.load(std::memory_order_relaxed) & kUnrecoverable) {
        sys::mutex_unlock(*m_);
        if (!ec) throw_unrecoverable(name());
        *ec = std::make_error_code(std::errc::state_not_recoverable);
        return false;
    }
    d.owner.store(me, std::memory_order_relaxed);
    d.count.store(1, std::memory_order_relaxed);
    if (st == sys::LockStatus::owner_dead) {
        d.flags.fetch_or(kPendingConsistent);
        if (!ec) throw_owner_dead(name());
        *ec = std::make_error_code(std::errc::owner_dead);
    }
    return true;
}

void LockBase::release_last(std::uint64_t me) {
    LockShared& d = *w_;
    const std::uint64_t owner = d.owner.load(std::memory_order_relaxed);
    if (owner != me) throw_release_error(name(), recursive_, owner);
    d.count.store(0, std::memory_order_relaxed);
    d.owner.store(0, std::memory_order_relaxed);
    if (MP_UNLIKELY(d.flags.load(std::memory_order_relaxed) & kPendingConsistent)) d.flags.store(kUnrecoverable);
    if (MP_UNLIKELY(!sys::mutex_unlock_uncontended(*m_))) release_slow();
}

void LockBase::release_slow() {
    if (auto ec = sys::mutex_unlock(*m_)) raise_os_error(ec, std::string(name()) + "::release");
}

void LockBase::make_consistent() {
    LockShared& d = *w_;
    if (d.owner.load(std::memory_order_relaxed) != thread_token())
        throw RuntimeError(std::string(name()) + "::make_consistent: this thread does not hold the lock");
    if (!(d.flags.load() & kPendingConsistent)) return;
    if (auto ec = sys::mutex_consistent(*m_)) raise_os_error(ec, std::string(name()) + "::make_consistent");
    d.flags.fetch_and(~std::uint32_t{kPendingConsistent});
}

void LockBase::mp_encode(Encoder& e) const { encode_sync_state(s_, e); }
void LockBase::mp_decode(Decoder& d) {
    s_ = decode_sync_state(d, recursive_ ? kRLock : kLock);
    bind();
}

// ---- SharedBlock -------------------------------------------------------------------------

SharedBlock::SharedBlock(std::size_t bytes) : s_(create_sync_state(kBlock, 0, 0, bytes)), data_(s_->payload), size_(bytes) {}
void SharedBlock::mp_encode(Encoder& e) const {
    if (!s_) throw ValueError("mp::Value/Array: empty");
    encode_sync_state(s_, e);
}
void SharedBlock::mp_decode(Decoder& d) {
    s_ = decode_sync_state(d, kBlock);
    data_ = s_->payload;
    size_ = static_cast<std::size_t>(s_->payload_size);
}

void throw_no_lock(const char* what) {
    throw RuntimeError(std::string(what) + "::get_lock: this object was made without a lock (lock = false, "
                                           "Python's RawValue/RawArray)");
}

}  // namespace detail

using detail::Internal;
using detail::SyncState;

// ---- Semaphore -------------------------------------------------------------------------

namespace {
struct SemData {
    std::int64_t value;
    std::int64_t max;  // -1: unbounded
};
}  // namespace

Semaphore::Semaphore(int value, int max) {
    if (value < 0) throw ValueError("mp::Semaphore: initial value must be >= 0, not " + std::to_string(value));
    s_ = detail::create_sync_state(detail::kSemaphore, 1, 1, sizeof(SemData));
    s_->data<SemData>() = SemData{value, max};
}

bool Semaphore::acquire(bool block, std::optional<double> timeout) {
    const auto deadline = detail::deadline_for_block(block, timeout, "mp::Semaphore::acquire");
    Internal g(*s_, "mp::Semaphore::acquire");
    auto& d = s_->data<SemData>();
    while (d.value == 0) {
        if (deadline.passed()) return false;
        g.wait(0, deadline, "mp::Semaphore::acquire");
    }
    --d.value;
    return true;
}

void Semaphore::release(int n) {
    if (n < 1) throw ValueError("mp::Semaphore::release: n must be one or more");
    Internal g(*s_, "mp::Semaphore::release");
    auto& d = s_->data<SemData>();
    if (d.max >= 0 && d.value + n > d.max) throw ValueError("mp::BoundedSemaphore::release: semaphore or lock released too many times");
    d.value += n;
    g.notify(0, static_cast<unsigned>(n), "mp::Semaphore::release");
}

int Semaphore::get_value() const {
    Internal g(*s_, "mp::Semaphore::get_value");
    return static_cast<int>(s_->data<SemData>().value);
}

void Semaphore::mp_encode(Encoder& e) const { detail::encode_sync_state(s_, e); }
void Semaphore::mp_decode(Decoder& d) { s_ = detail::decode_sync_state(d, detail::kSemaphore); }

// ---- Event -------------------------------------------------------------------------------

namespace {
struct EventData {
    std::uint32_t flag;
};
}  // namespace

Event::Event() : s_(detail::create_sync_state(detail::kEvent, 1, 1, sizeof(EventData))) {}

bool Event::is_set() const {
    Internal g(*s_, "mp::Event::is_set");
    return s_->data<EventData>().flag != 0;
}

void Event::set() {
    Internal g(*s_, "mp::Event::set");
    s_->data<EventData>().flag = 1;
    g.notify(0, ~0u, "mp::Event::set");
}

void Event::clear() {
    Internal g(*s_, "mp::Event::clear");
    s_->data<EventData>().flag = 0;
}

bool Event::wait(std::optional<double> timeout) {
    const auto deadline = detail::deadline_in_seconds(timeout, "mp::Event::wait");
    Internal g(*s_, "mp::Event::wait");
    auto& d = s_->data<EventData>();
    while (!d.flag) {
        if (deadline.passed()) break;
        g.wait(0, deadline, "mp::Event::wait");
    }
    return d.flag != 0;
}

void Event::mp_encode(Encoder& e) const { detail::encode_sync_state(s_, e); }
void Event::mp_decode(Decoder& d) { s_ = detail::decode_sync_state(d, detail::kEvent); }

// ---- Condition ---------------------------------------------------------------------------

Condition::Condition(const detail::LockBase& lock) : lock_(lock), s_(detail::create_sync_state(detail::kCondition, 0, 1, 0)) {}
Condition::Condition(const Lock& lock) : Condition(static_cast<const detail::LockBase&>(lock)) {}
Condition::Condition(const RLock& lock) : Condition(static_cast<const detail::LockBase&>(lock)) {}

bool Condition::wait(std::optional<double> timeout) {
    auto& d = *lock_.w_;
    const std::uint64_t me = detail::thread_token();
    if (d.owner.load(std::memory_order_relaxed) != me) throw RuntimeError("mp::Condition::wait: cannot wait on un-acquired lock");
    const sys::Deadline deadline = detail::deadline_in_seconds(timeout, "mp::Condition::wait");  // may throw: before the release
    // The whole RLock is released for the wait and its depth restored afterwards.
    const std::uint32_t depth = d.count.load(std::memory_order_relaxed);
    d.owner.store(0, std::memory_order_relaxed);
    d.count.store(0, std::memory_order_relaxed);
    sys::LockStatus st;
    const auto ec = sys::cond_wait(s_->conds[0], *lock_.m_, deadline, st);
    d.owner.store(me, std::memory_order_relaxed);
    d.count.store(depth, std::memory_order_relaxed);
    if (ec) raise_os_error(ec, "mp::Condition::wait");
    if (st == sys::LockStatus::owner_dead) {
        d.flags.fetch_or(detail::kPendingConsistent);
        throw OwnerDeadError(
            "mp::Condition::wait: the lock's owner died holding it; this thread now holds it. Repair the "
            "data it guards, then call make_consistent() on the lock");
    }
    return st != sys::LockStatus::timed_out;
}

void Condition::notify(unsigned n) {
    if (!lock_.is_owned()) throw RuntimeError("mp::Condition::notify: cannot notify on un-acquired lock");
    if (auto ec = sys::cond_notify(s_->conds[0], n)) raise_os_error(ec, "mp::Condition::notify");
}

void Condition::notify_all() { notify(~0u); }

void Condition::mp_encode(Encoder& e) const {
    detail::encode_sync_state(s_, e);
    e.write(lock_.recursive_);
    lock_.mp_encode(e);
}

void Condition::mp_decode(Decoder& d) {
    s_ = detail::decode_sync_state(d, detail::kCondition);
    lock_.recursive_ = d.read<bool>();
    lock_.mp_decode(d);
}

// ---- Barrier -----------------------------------------------------------------------------

namespace {
struct BarrierData {
    std::int64_t parties;
    std::int64_t count;       // arrivals in the current generation
    std::uint64_t generation;
    std::uint64_t broken_bits;  // bit g % 64: generation g ended broken (reset) rather than released
    std::uint32_t broken;
};
void set_outcome(BarrierData& d, std::uint64_t gen, bool broken) {
    const std::uint64_t bit = std::uint64_t{1} << (gen % 64);
    d.broken_bits = broken ? (d.broken_bits | bit) : (d.broken_bits & ~bit);
}
}  // namespace

Barrier::Barrier(int parties, std::function<void()> action, std::optional<double> default_timeout)
    : action_(std::move(action)) {
    if (parties < 1) throw ValueError("mp::Barrier: parties must be > 0, not " + std::to_string(parties));
    s_ = detail::create_sync_state(detail::kBarrier, 1, 1, sizeof(BarrierData) + sizeof(double));
    s_->data<BarrierData>() = BarrierData{parties, 0, 0, 0, 0};
    if (default_timeout) detail::check_timeout(*default_timeout, "mp::Barrier");
    const double timeout = default_timeout ? *default_timeout : -1.0;  // in shared memory: -1 for none
    std::memcpy(static_cast<char*>(s_->payload) + sizeof(BarrierData), &timeout, sizeof timeout);
}

std::size_t Barrier::wait(std::optional<double> timeout) {
    if (!timeout) {
        double shared_default = -1;
        std::memcpy(&shared_default, static_cast<char*>(s_->payload) + sizeof(BarrierData), sizeof shared_default);
        if (shared_default >= 0) timeout = shared_default;
    }
    const auto deadline = detail::deadline_in_seconds(timeout, "mp::Barrier::wait");
    Internal g(*s_, "mp::Barrier::wait");
    if (g.reentered()) throw RuntimeError("mp::Barrier::wait: called from the barrier's own action (a certain deadlock)");
    auto& d = s_->data<BarrierData>();
    if (d.broken) throw BrokenBarrierError("mp::Barrier::wait: the barrier is broken");
    const std::uint64_t gen = d.generation;
    const auto index = static_cast<std::size_t>(d.count++);
    if (d.count == d.parties) {
        if (action_) {
            try {
                action_();
            } catch (...) {
                d.broken = 1;
                d.count = 0;
                g.notify(0, ~0u, "mp::Barrier::wait");
                throw;
            }
            if (d.broken || d.generation != gen) {  // the action called abort() or reset()
                d.count = 0;
                g.notify(0, ~0u, "mp::Barrier::wait");
                throw BrokenBarrierError("mp::Barrier::wait: the barrier was aborted or reset by its action");
            }
        }
        d.count = 0;
        set_outcome(d, gen, false);
        ++d.generation;
        g.notify(0, ~0u, "mp::Barrier::wait");
        return index;
    }
    for (;;) {
        const bool timed_out = deadline.passed() || !g.wait(0, deadline, "mp::Barrier::wait");
        if (d.generation != gen) {
            if (d.broken_bits & (std::uint64_t{1} << (gen % 64)))
                throw BrokenBarrierError("mp::Barrier::wait: the barrier was reset while waiting");
            return index;
        }
        if (d.broken) {
            --d.count;
            throw BrokenBarrierError("mp::Barrier::wait: the barrier was broken (aborted, timed out or its action failed)");
        }
        if (timed_out && deadline.passed()) {
            d.broken = 1;
            --d.count;
            g.notify(0, ~0u, "mp::Barrier::wait");
            throw BrokenBarrierError("mp::Barrier::wait: timed out waiting for the other parties; the barrier is now broken");
        }
    }
}

void Barrier::reset() {
    Internal g(*s_, "mp::Barrier::reset");
    auto& d = s_->data<BarrierData>();
    if (d.count > 0 || d.broken) {
        set_outcome(d, d.generation, true);
        ++d.generation;
    }
    d.count = 0;
    d.broken = 0;
    g.notify(0, ~0u, "mp::Barrier::reset");
}

void Barrier::abort() {
    Internal g(*s_, "mp::Barrier::abort");
    s_->data<BarrierData>().broken = 1;
    g.notify(0, ~0u, "mp::Barrier::abort");
}

int Barrier::parties() const { return static_cast<int>(s_->data<BarrierData>().parties); }

int Barrier::n_waiting() const {
    Internal g(*s_, "mp::Barrier::n_waiting");
    const auto& d = s_->data<BarrierData>();
    return d.broken ? 0 : static_cast<int>(d.count);
}

bool Barrier::broken() const {
    Internal g(*s_, "mp::Barrier::broken");
    return s_->data<BarrierData>().broken != 0;
}

void Barrier::mp_encode(Encoder& e) const { detail::encode_sync_state(s_, e); }
void Barrier::mp_decode(Decoder& d) { s_ = detail::decode_sync_state(d, detail::kBarrier); }

}  // namespace mp
