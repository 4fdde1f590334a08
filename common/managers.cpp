// common/managers.cpp - managers (see mp/managers.hpp): the server that holds objects, and the
// client side of proxies: one ManagerClient per process per manager.
//
// Portable: written against Listener, Client, Connection, Process and mp::signals.
//
// The protocol. Every connection starts with the Listener's HMAC challenge (both ways, run on
// the connection's own thread, so that a client who connects and stalls delays nobody), then a
// hello naming its session. Each message is one Connection frame holding a Request; the
// server answers each with one Reply, except for the one-way decref and release. A process
// has one session per manager: one "anchor" connection that carries the session's reference
// traffic (and whose end is the end of the session: every reference and lock the session held
// is released), and a pool of call connections, one per thread that is in a call at the same
// time (a thread blocked in q.get() keeps one; the others take another).
//
// References. The server counts, for each object, the references held by sessions (one count
// per session and object: a process's proxies to one object share one Ref, which holds all of
// the session's count), by holds (an encoded proxy on its way to another process, released
// when the receiver adopts it or when the sender's session ends), and by the values stored in
// other objects (nested proxies: the request that stores a value names the objects inside it,
// Call::refs). A reply that hands out stored values grants the requesting session one
// reference per object inside them, so nothing is freed between the answer and the decoding.
// An object whose count reaches zero is freed, and what it contained is released in turn.
//
// The server keeps builtin objects as encoded bytes (it needs no C++ types: the proxies encode
// and decode), under one mutex: every builtin operation is atomic. Blocking operations wait on
// a condition variable of the object, in slices of 100 ms, looking between slices whether the
// client is still there and the server still running. Registered types' methods run under the
// object's own mutex, outside the server's.
#include "mp/managers.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <new>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "connection_internal.hpp"
#include "hmac_sha256.hpp"
#include "listener_internal.hpp"
#include "timeout.hpp"
#include "mp/connection.hpp"
#include "mp/lock.hpp"
#include "mp/signals.hpp"
#include "process_internal.hpp"
#include "sys/tracker.hpp"
#include "sys/os.hpp"
#include "sys/socket.hpp"

namespace mp {
namespace detail {

namespace {

using clock = std::chrono::steady_clock;

// Message kinds.
enum Kind : std::uint8_t {
    kMsgHello = 1,  // i: session, j: 1 anchor / 0 call connection; answer n: the manager's id
    kMsgCreate,     // name: type id; the creation arguments as in Call; answer n: the object id
    kMsgCall,       // id, op / name, the arguments
    kMsgIncref,     // refs: object ids; answer grants: those that still existed
    kMsgDecref,     // one-way; refs: (id, count) pairs
    kMsgHold,       // id; answer n: a hold token
    kMsgAdopt,      // i: hold token, id
    kMsgRelease,    // one-way; i: hold token
    kMsgShutdown,
    kMsgInfo,       // answer n: number of objects, value: one line per object
    kMsgPing,
    kMsgPublish,    // a: name, id: the object (the name holds a reference)
    kMsgUnpublish,  // a: name
    kMsgLookup,     // a: name; answer n: id, value: type id, grants: the reference (i 1, a "": the names)
};

enum Role : std::int64_t { kCallConnection = 0, kAnchor = 1 };

struct Request {
    std::uint8_t kind = 0;
    std::uint64_t id = 0;
    std::uint16_t op = 0;
    std::string name, a, b;
    std::int64_t i = 0, j = 0;
    std::vector<std::string> list;
    std::vector<std::uint64_t> refs;
    std::uint64_t thread = 0;
    std::int64_t wait_ms = -1;   // the operation's own timeout (queue::Empty, false ...)
    std::int64_t limit_ms = -1;  // the caller's call timeout (TimeoutError)
    MP_FIELDS(kind, id, op, name, a, b, i, j, list, refs, thread, wait_ms, limit_ms)
};

struct Reply {
    std::uint8_t status = 0;  // 0 fine, 1 an error (etype, error)
    std::string value;
    std::vector<std::string> list;
    std::int64_t n = 0;
    std::vector<std::uint64_t> grants;
    std::string etype, error;
    MP_FIELDS(status, value, list, n, grants, etype, error)
};

constexpr std::size_t kMaxRequest = std::size_t{256} << 20;  // 256 MiB
constexpr double kHandshakeMs = 10000;
constexpr auto kSlice = std::chrono::milliseconds(100);

std::int64_t to_ms(double seconds) {
    if (!(seconds >= 0)) return -1;
    const double ms = seconds * 1000.0;
    return ms > 1e12 ? -1 : static_cast<std::int64_t>(ms + 0.999);
}

std::uint64_t random_u64() {
    std::uint64_t v = 0;
    while (v == 0)
        if (auto ec = sys::random_bytes(&v, sizeof v)) raise_os_error(ec, "mp::Manager: random bytes");
    return v;
}

std::string random_key() {
    unsigned char raw[32];
    if (auto ec = sys::random_bytes(raw, sizeof raw)) raise_os_error(ec, "mp::Manager: an authentication key");
    return detail::to_hex(raw, sizeof raw);
}

// The address a client of this process uses to reach a server listening on `a` (a server on
// every interface is reached on loopback).
Address connectable(Address a) {
    if (a.family == AddressFamily::inet && (a.host.empty() || a.host == "0.0.0.0")) a.host = "127.0.0.1";
    if (a.family == AddressFamily::inet6 && (a.host.empty() || a.host == "::")) a.host = "::1";
    return a;
}

// The address a server listens on: TCP without a host is loopback, never every interface.
Address listening(Address a) {
    if (a.family == AddressFamily::inet && a.host.empty()) a.host = "127.0.0.1";
    if (a.family == AddressFamily::inet6 && a.host.empty()) a.host = "::1";
    return a;
}

std::string_view view_of(const bytes& b) { return std::string_view(reinterpret_cast<const char*>(b.data()), b.size()); }

// ---- the server's objects -------------------------------------------------------------------

struct Val {
    std::string bytes;
    std::vector<std::uint64_t> refs;  // managed objects inside the value (held by it)
};

// Keys (bytes) to values, in insertion order (Python's dict).
class OrderedMap {
public:
    using Node = std::pair<std::string, Val>;
    using List = std::list<Node>;
    using It = List::iterator;

    It end() { return items_.end(); }
    It find(std::string_view k) {
        auto f = index_.find(k);
        return f == index_.end() ? items_.end() : f->second;
    }
    bool has(std::string_view k) const { return index_.count(k) != 0; }
    // Inserts k at the end if it is not there; the element either way, and whether it is new.
    std::pair<It, bool> emplace(std::string_view k) {
        auto f = index_.find(k);
        if (f != index_.end()) return {f->second, false};
        items_.emplace_back(std::string(k), Val{});
        It it = std::prev(items_.end());
        index_.emplace(std::string_view(it->first), it);
        return {it, true};
    }
    void erase(It it) {
        index_.erase(std::string_view(it->first));
        items_.erase(it);
    }
    void clear() {
        index_.clear();
        items_.clear();
    }
    std::size_t size() const { return items_.size(); }
    List& items() { return items_; }
    const List& items() const { return items_; }

private:
    List items_;
    std::unordered_map<std::string_view, It> index_;
};

enum class ObjKind { dict, list, set, value, array, ns, queue, lock, condition, event, barrier, user };

struct Object {
    explicit Object(ObjKind k, std::string t) : kind(k), type(std::move(t)) {}
    virtual ~Object() = default;
    // The managed objects this one holds references to (freed with it).
    virtual void nested(std::vector<std::uint64_t>&) const {}
    ObjKind kind;
    std::string type;
    std::uint64_t refcount = 0;
    bool dead = false;
    std::condition_variable cv;  // with ServerState::mu
};

void add_refs(const Val& v, std::vector<std::uint64_t>& out) { out.insert(out.end(), v.refs.begin(), v.refs.end()); }

struct DictObj : Object {
    DictObj() : Object(ObjKind::dict, "dict") {}
    OrderedMap m;
    void nested(std::vector<std::uint64_t>& out) const override {
        for (const auto& kv : m.items()) add_refs(kv.second, out);
    }
};
struct ListObj : Object {
    ListObj() : Object(ObjKind::list, "list") {}
    std::vector<Val> v;
    std::int64_t version = 0;  // changed by every write (ListProxy::sort)
    void nested(std::vector<std::uint64_t>& out) const override {
        for (const auto& x : v) add_refs(x, out);
    }
};
struct SetObj : Object {
    SetObj() : Object(ObjKind::set, "set") {}
    OrderedMap m;  // the values are empty
};
struct ValueObj : Object {
    ValueObj() : Object(ObjKind::value, "Value") {}
    Val v;
    void nested(std::vector<std::uint64_t>& out) const override { add_refs(v, out); }
};
struct ArrayObj : Object {
    ArrayObj() : Object(ObjKind::array, "Array") {}
    std::vector<Val> v;
    void nested(std::vector<std::uint64_t>& out) const override {
        for (const auto& x : v) add_refs(x, out);
    }
};
struct NsObj : Object {
    NsObj() : Object(ObjKind::ns, "Namespace") {}
    OrderedMap m;
    void nested(std::vector<std::uint64_t>& out) const override {
        for (const auto& kv : m.items()) add_refs(kv.second, out);
    }
};
struct QueueObj : Object {
    explicit QueueObj(bool j) : Object(ObjKind::queue, j ? "JoinableQueue" : "Queue"), joinable(j) {}
    std::deque<Val> q;
    std::int64_t maxsize = 0;
    bool joinable;
    std::uint64_t unfinished = 0;
    void nested(std::vector<std::uint64_t>& out) const override {
        for (const auto& x : q) add_refs(x, out);
    }
};

// The caller of a lock operation: its session and its thread there.
struct Owner {
    std::uint64_t session = 0, thread = 0;
    bool operator==(const Owner& o) const { return session == o.session && thread == o.thread; }
};

enum class LockKind { lock, rlock, semaphore, bounded };

struct LockObj : Object {
    LockObj(LockKind k, std::string t) : Object(ObjKind::lock, std::move(t)), lk(k) {}
    LockKind lk;
    bool held = false;       // lock, rlock
    Owner owner;             // lock, rlock: the holder (the last acquirer, for a lock)
    std::int64_t count = 0;  // rlock: recursion depth; semaphores: the value
    std::int64_t max = 0;    // bounded semaphore
    bool owner_died = false; // the holder's session ended with it held (OwnerDeadError, once)
};

struct CondObj : Object {
    CondObj() : Object(ObjKind::condition, "Condition") {}
    std::uint64_t lock_id = 0;
    std::shared_ptr<LockObj> lock;
    struct Waiter {
        bool notified = false;
    };
    std::list<Waiter*> waiters;
    void nested(std::vector<std::uint64_t>& out) const override {
        if (lock_id) out.push_back(lock_id);
    }
};

struct EventObj : Object {
    EventObj() : Object(ObjKind::event, "Event") {}
    bool flag = false;
};

struct BarrierObj : Object {
    BarrierObj() : Object(ObjKind::barrier, "Barrier") {}
    std::int64_t parties = 1;
    std::int64_t timeout_ms = -1;
    std::uint64_t generation = 0;
    std::int64_t count = 0;
    bool broken = false;
    std::vector<std::uint64_t> reset_generations;  // generations whose waiters a reset broke
};

struct UserObj : Object {
    UserObj(const ManagedType* t, void* p) : Object(ObjKind::user, t->name), mt(t), ptr(p) {}
    ~UserObj() override { mt->destroy(ptr); }
    const ManagedType* mt;
    void* ptr;
    std::mutex call_mu;  // one method at a time
};

// ---- registered types -----------------------------------------------------------------------

struct TypeRegistry {
    std::mutex mu;
    std::unordered_map<std::string, std::unique_ptr<ManagedType>> types;
};
// Never destroyed: serving threads may look types up while the process exits.
TypeRegistry& type_registry() {
    static TypeRegistry* r = new TypeRegistry;
    return *r;
}
const ManagedType* find_type(const std::string& name) {
    TypeRegistry& r = type_registry();
    std::lock_guard<std::mutex> lk(r.mu);
    auto it = r.types.find(name);
    return it == r.types.end() ? nullptr : it->second.get();
}

// ---- the server ---------------------------------------------------------------------------

struct Session {
    std::unordered_map<std::uint64_t, std::uint64_t> refs;  // object -> references
    std::unordered_set<std::uint64_t> held_locks;
    std::unordered_set<std::uint64_t> holds;
};

struct Hold {
    std::uint64_t id = 0;
    std::uint64_t session = 0;
};

}  // namespace

struct ServerState {
    Listener listener;
    Address address;
    std::string key;
    std::uint64_t manager_id = 0;
    int owner_pid = 0;  // a fork child's copy of this state is not a server (no threads run it)

    std::mutex mu;  // everything below, and the state of every builtin object
    std::unordered_map<std::uint64_t, std::shared_ptr<Object>> objects;
    std::unordered_map<std::uint64_t, Session> sessions;
    std::unordered_map<std::uint64_t, Hold> holds;
    std::uint64_t next_id = 1;
    std::uint64_t next_hold = 1;

    std::map<std::string, std::uint64_t> published;  // names clients look objects up by

    std::atomic<bool> stop{false};
    std::mutex stop_mu;
    std::condition_variable stop_cv;
    std::thread acceptor;
    std::mutex threads_mu;  // the connections' threads (detached), counted
    std::condition_variable threads_cv;
    int threads = 0;
    bool finished = false;
    // Unix-socket connections read without a poll first (one system call fewer per request);
    // finish() wakes those reads by shutting the sockets' reading side. A thread takes its
    // socket out of this set before it closes it, so no number here is ever a reused one.
    std::mutex sockets_mu;
    std::unordered_set<std::uintptr_t> sockets;
};

namespace {

using Graveyard = std::vector<std::shared_ptr<Object>>;  // freed objects, destroyed after the lock

// Drops n references to id (with st.mu held); an object that reaches zero is freed, and the
// references it held are dropped in turn.
void decref(ServerState& st, std::uint64_t id, std::uint64_t n, Graveyard& dead) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> work{{id, n}};
    while (!work.empty()) {
        auto [oid, k] = work.back();
        work.pop_back();
        auto it = st.objects.find(oid);
        if (it == st.objects.end()) continue;
        Object& o = *it->second;
        o.refcount -= std::min(k, o.refcount);
        if (o.refcount != 0) continue;
        o.dead = true;
        o.cv.notify_all();
        std::vector<std::uint64_t> inner;
        o.nested(inner);
        for (std::uint64_t x : inner) work.emplace_back(x, 1);
        dead.push_back(std::move(it->second));
        st.objects.erase(it);
    }
}

void release_val(ServerState& st, const Val& v, Graveyard& dead) {
    for (std::uint64_t id : v.refs) decref(st, id, 1, dead);
}

// The references a stored value takes: the objects the request named for value number `index`
// that exist (one reference each, held by the value).
std::vector<std::uint64_t> take_refs(ServerState& st, const Request& q, std::uint64_t index) {
    std::vector<std::uint64_t> out;
    for (std::size_t k = 0; k + 1 < q.refs.size(); k += 2) {
        if (q.refs[k] != index) continue;
        auto it = st.objects.find(q.refs[k + 1]);
        if (it == st.objects.end()) continue;
        ++it->second->refcount;
        out.push_back(q.refs[k + 1]);
    }
    return out;
}

Val stored(ServerState& st, const Request& q, std::string bytes, std::uint64_t index) {
    Val v;
    v.bytes = std::move(bytes);
    if (!q.refs.empty()) v.refs = take_refs(st, q, index);
    return v;
}

void fail(Reply& r, const char* type, std::string why) {
    r.status = 1;
    r.etype = type;
    r.error = std::move(why);
}

// Python's index rules: negative counts from the end; outside is false.
bool normalise(std::int64_t& i, std::size_t size) {
    const auto n = static_cast<std::int64_t>(size);
    if (i < 0) i += n;
    return i >= 0 && i < n;
}
// A slice bound, clamped to [0, size].
std::size_t clamp_bound(std::int64_t i, std::size_t size) {
    const auto n = static_cast<std::int64_t>(size);
    if (i < 0) i += n;
    return static_cast<std::size_t>(i < 0 ? 0 : i > n ? n : i);
}

// One connection's view of the server.
struct Ctx {
    ServerState& st;
    Connection& conn;
    std::uint64_t session = 0;
    bool anchor = false;
    std::uint64_t thread = 0;
    Owner caller() const { return {session, thread}; }
    // What to undo if the answer cannot be delivered (the caller is gone).
    enum class Undo { none, requeue, unlock, unsem } undo = Undo::none;
    std::shared_ptr<Object> undo_obj;
    Val undo_val;
};

// The session's share of a value that leaves the server with this answer: one reference per
// object inside it, granted to the session.
void grant(Ctx& cx, const Val& v, Reply& r) {
    if (v.refs.empty() || cx.session == 0) return;
    auto s = cx.st.sessions.find(cx.session);
    if (s == cx.st.sessions.end()) return;
    for (std::uint64_t id : v.refs) {
        auto it = cx.st.objects.find(id);
        if (it == cx.st.objects.end()) continue;
        ++it->second->refcount;
        ++s->second.refs[id];
        r.grants.push_back(id);
    }
}

// A value removed from its object and handed out: its references pass to the session.
void give(Ctx& cx, Val& v, Reply& r, Graveyard& dead) {
    if (v.refs.empty()) return;
    auto s = cx.st.sessions.find(cx.session);
    if (cx.session == 0 || s == cx.st.sessions.end()) {
        release_val(cx.st, v, dead);
        return;
    }
    for (std::uint64_t id : v.refs) {
        ++s->second.refs[id];
        r.grants.push_back(id);
    }
}

// ---- waiting --------------------------------------------------------------------------------

struct Deadline {
    bool has = false;
    bool limit = false;  // the caller's call timeout comes first (TimeoutError, not the op's own)
    clock::time_point at;
    Deadline(std::int64_t wait_ms, std::int64_t limit_ms) {
        if (wait_ms >= 0 && (limit_ms < 0 || wait_ms <= limit_ms)) {
            has = true;
            at = clock::now() + std::chrono::milliseconds(wait_ms);
        } else if (limit_ms >= 0) {
            has = limit = true;
            at = clock::now() + std::chrono::milliseconds(limit_ms);
        }
    }
};

enum class Waited { ready, timeout, limit, gone, dead };

bool client_gone(Ctx& cx) {
    try {
        // A client in a call sends nothing more on its connection: something to read is its end.
        return cx.conn.poll(0.0);
    } catch (const std::exception&) {
        return true;
    }
}

// pred() may take what it waits for (a lock, a permit): it is called until it succeeds, and
// not again after.
template <class Pred>
Waited wait_until(Ctx& cx, std::unique_lock<std::mutex>& lk, Object& o, const Deadline& d, Pred pred) {
    for (;;) {
        if (pred()) return Waited::ready;
        // A stopping server frees the objects of the sessions whose connections it closed: the
        // stop is the answer then (the connection closes), not the object's end.
        if (cx.st.stop) return Waited::gone;
        if (o.dead) return Waited::dead;
        const auto now = clock::now();
        if (d.has && now >= d.at) return d.limit ? Waited::limit : Waited::timeout;
        auto until = now + kSlice;
        if (d.has && d.at < until) until = d.at;
        o.cv.wait_until(lk, until);
        if (pred()) return Waited::ready;
        if (client_gone(cx)) return Waited::gone;
    }
}

// What a wait that did not succeed answers: false (handled by the caller), or an error.
// Returns true when the connection must close without an answer.
bool wait_failed(Waited w, Reply& r) {
    switch (w) {
    case Waited::gone: return true;
    case Waited::dead: fail(r, "mp::ValueError", "mp::Manager: the object was freed while waiting"); return false;
    case Waited::limit: fail(r, "mp::TimeoutError", "mp::Manager: the call did not finish within its timeout"); return false;
    default: return false;
    }
}

// ---- locks ----------------------------------------------------------------------------------

bool try_take(LockObj& L, const Owner& who) {
    switch (L.lk) {
    case LockKind::lock:
        if (L.held) return false;
        L.held = true;
        L.owner = who;
        return true;
    case LockKind::rlock:
        if (L.held && !(L.owner == who)) return false;
        if (!L.held) {
            L.held = true;
            L.owner = who;
            L.count = 0;
        }
        ++L.count;
        return true;
    default:
        if (L.count <= 0) return false;
        --L.count;
        return true;
    }
}

void note_held(ServerState& st, std::uint64_t session, std::uint64_t lock_id, bool held) {
    auto s = st.sessions.find(session);
    if (s == st.sessions.end()) return;
    if (held)
        s->second.held_locks.insert(lock_id);
    else
        s->second.held_locks.erase(lock_id);
}

// Acquires L for the caller (blocking per q); r.n = 1 on success.
bool acquire(Ctx& cx, std::unique_lock<std::mutex>& lk, LockObj& L, std::uint64_t lock_id, const Request& q, Reply& r) {
    const Owner who = cx.caller();
    bool got = try_take(L, who);
    if (!got && q.i != 0) {
        const Waited w = wait_until(cx, lk, L, Deadline(q.wait_ms, q.limit_ms), [&] { return try_take(L, who); });
        if (w != Waited::ready && w != Waited::timeout) return wait_failed(w, r);
        got = w == Waited::ready;
    }
    r.n = got;
    if (!got) return false;
    if (L.lk == LockKind::lock || L.lk == LockKind::rlock) note_held(cx.st, cx.session, lock_id, true);
    if (L.owner_died && (L.lk == LockKind::lock || L.lk == LockKind::rlock)) {
        L.owner_died = false;
        fail(r, "mp::OwnerDeadError",
             "mp::Manager: the previous holder of this lock ended while holding it; you hold it now (the data it "
             "guards may be half-updated)");
    }
    cx.undo = (L.lk == LockKind::lock || L.lk == LockKind::rlock) ? Ctx::Undo::unlock : Ctx::Undo::unsem;
    return false;
}

// Releases L for the caller (n permits for semaphores).
void release(Ctx& cx, LockObj& L, std::uint64_t lock_id, std::int64_t n, Reply& r) {
    switch (L.lk) {
    case LockKind::lock:
        if (!L.held) return fail(r, "mp::RuntimeError", "release unlocked lock");
        note_held(cx.st, L.owner.session, lock_id, false);
        L.held = false;
        L.owner = {};
        break;
    case LockKind::rlock:
        if (!L.held || !(L.owner == cx.caller())) return fail(r, "mp::RuntimeError", "cannot release un-acquired lock");
        if (--L.count == 0) {
            L.held = false;
            L.owner = {};
            note_held(cx.st, cx.session, lock_id, false);
        }
        break;
    default:
        if (n < 1) return fail(r, "mp::ValueError", "n must be one or more");
        if (L.lk == LockKind::bounded && L.count + n > L.max) return fail(r, "mp::ValueError", "Semaphore released too many times");
        L.count += n;
        break;
    }
    L.cv.notify_all();
}

// A lock whose holder's session ended: free again, and the next acquirer is told.
void abandon(LockObj& L) {
    L.held = false;
    L.owner = {};
    L.count = 0;
    L.owner_died = true;
    L.cv.notify_all();
}

// ---- builtin operations -----------------------------------------------------------------------

// Each returns true when the connection must close without an answer.
using Lock = std::unique_lock<std::mutex>;

bool dict_op(Ctx& cx, Lock&, DictObj& d, const Request& q, Reply& r, Graveyard& dead) {
    ServerState& st = cx.st;
    switch (q.op) {
    case kDictGet: {
        auto it = d.m.find(q.a);
        if (it == d.m.end()) return fail(r, "mp::KeyError", "mp::DictProxy: no such key"), false;
        r.value = it->second.bytes;
        grant(cx, it->second, r);
        return false;
    }
    case kDictGetOpt: {
        auto it = d.m.find(q.a);
        if (it != d.m.end()) {
            r.list.push_back(it->second.bytes);
            grant(cx, it->second, r);
        }
        return false;
    }
    case kDictSet: {
        Val v = stored(st, q, q.b, 0);
        auto [it, fresh] = d.m.emplace(q.a);
        if (!fresh) release_val(st, it->second, dead);
        it->second = std::move(v);
        return false;
    }
    case kDictDel: {
        auto it = d.m.find(q.a);
        if (it == d.m.end()) return fail(r, "mp::KeyError", "mp::DictProxy::erase: no such key"), false;
        release_val(st, it->second, dead);
        d.m.erase(it);
        return false;
    }
    case kDictContains: r.n = d.m.has(q.a); return false;
    case kDictLen: r.n = static_cast<std::int64_t>(d.m.size()); return false;
    case kDictKeys:
        r.list.reserve(d.m.size());
        for (const auto& kv : d.m.items()) r.list.push_back(kv.first);
        return false;
    case kDictReversed:
        for (auto it = d.m.items().rbegin(); it != d.m.items().rend(); ++it) r.list.push_back(it->first);
        return false;
    case kDictValues:
        r.list.reserve(d.m.size());
        for (const auto& kv : d.m.items()) {
            r.list.push_back(kv.second.bytes);
            grant(cx, kv.second, r);
        }
        return false;
    case kDictItems:
        r.list.reserve(2 * d.m.size());
        for (const auto& kv : d.m.items()) {
            r.list.push_back(kv.first);
            r.list.push_back(kv.second.bytes);
            grant(cx, kv.second, r);
        }
        return false;
    case kDictClear:
        for (const auto& kv : d.m.items()) release_val(st, kv.second, dead);
        d.m.clear();
        return false;
    case kDictPop:
    case kDictPopOpt: {
        auto it = d.m.find(q.a);
        if (it == d.m.end()) {
            if (q.op == kDictPop) fail(r, "mp::KeyError", "mp::DictProxy::pop: no such key");
            return false;
        }
        give(cx, it->second, r, dead);
        if (q.op == kDictPop)
            r.value = std::move(it->second.bytes);
        else
            r.list.push_back(std::move(it->second.bytes));
        d.m.erase(it);
        return false;
    }
    case kDictPopItem: {
        if (d.m.size() == 0) return fail(r, "mp::KeyError", "popitem(): dictionary is empty"), false;
        auto it = std::prev(d.m.items().end());
        give(cx, it->second, r, dead);
        r.list.push_back(it->first);
        r.list.push_back(std::move(it->second.bytes));
        d.m.erase(it);
        return false;
    }
    case kDictSetDefault: {
        auto [it, fresh] = d.m.emplace(q.a);
        if (fresh) it->second = stored(st, q, q.b, 0);
        r.value = it->second.bytes;
        grant(cx, it->second, r);
        return false;
    }
    case kDictUpdate:
        for (std::size_t k = 0; k + 1 < q.list.size(); k += 2) {
            Val v = stored(st, q, q.list[k + 1], k + 1);
            auto [it, fresh] = d.m.emplace(q.list[k]);
            if (!fresh) release_val(st, it->second, dead);
            it->second = std::move(v);
        }
        return false;
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a dict");
    return false;
}

bool list_op(Ctx& cx, Lock&, ListObj& l, const Request& q, Reply& r, Graveyard& dead) {
    ServerState& st = cx.st;
    auto& v = l.v;
    std::int64_t i = q.i;
    const bool writes = q.op != kListGet && q.op != kListSlice && q.op != kListLen && q.op != kListIndex &&
                        q.op != kListCount && q.op != kListContains && q.op != kListAll && q.op != kListAllVersioned;
    if (writes) ++l.version;
    switch (q.op) {
    case kListGet:
        if (!normalise(i, v.size())) return fail(r, "mp::IndexError", "list index out of range"), false;
        r.value = v[static_cast<std::size_t>(i)].bytes;
        grant(cx, v[static_cast<std::size_t>(i)], r);
        return false;
    case kListSlice: {
        const std::size_t a = clamp_bound(q.i, v.size()), b = clamp_bound(q.j, v.size());
        for (std::size_t k = a; k < b; ++k) {
            r.list.push_back(v[k].bytes);
            grant(cx, v[k], r);
        }
        return false;
    }
    case kListSet: {
        if (!normalise(i, v.size())) return fail(r, "mp::IndexError", "list assignment index out of range"), false;
        Val x = stored(st, q, q.a, 0);
        release_val(st, v[static_cast<std::size_t>(i)], dead);
        v[static_cast<std::size_t>(i)] = std::move(x);
        return false;
    }
    case kListSetSlice: {
        const std::size_t a = clamp_bound(q.i, v.size());
        const std::size_t b = std::max(a, clamp_bound(q.j, v.size()));
        for (std::size_t k = a; k < b; ++k) release_val(st, v[k], dead);
        std::vector<Val> in;
        in.reserve(q.list.size());
        for (std::size_t k = 0; k < q.list.size(); ++k) in.push_back(stored(st, q, q.list[k], k));
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(a), v.begin() + static_cast<std::ptrdiff_t>(b));
        v.insert(v.begin() + static_cast<std::ptrdiff_t>(a), std::make_move_iterator(in.begin()), std::make_move_iterator(in.end()));
        return false;
    }
    case kListDel:
        if (!normalise(i, v.size())) return fail(r, "mp::IndexError", "list assignment index out of range"), false;
        release_val(st, v[static_cast<std::size_t>(i)], dead);
        v.erase(v.begin() + i);
        return false;
    case kListDelSlice: {
        const std::size_t a = clamp_bound(q.i, v.size());
        const std::size_t b = std::max(a, clamp_bound(q.j, v.size()));
        for (std::size_t k = a; k < b; ++k) release_val(st, v[k], dead);
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(a), v.begin() + static_cast<std::ptrdiff_t>(b));
        return false;
    }
    case kListLen: r.n = static_cast<std::int64_t>(v.size()); return false;
    case kListAppend: v.push_back(stored(st, q, q.a, 0)); return false;
    case kListExtend:
        v.reserve(v.size() + q.list.size());
        for (std::size_t k = 0; k < q.list.size(); ++k) v.push_back(stored(st, q, q.list[k], k));
        return false;
    case kListInsert: {
        const std::size_t at = clamp_bound(q.i, v.size());
        v.insert(v.begin() + static_cast<std::ptrdiff_t>(at), stored(st, q, q.a, 0));
        return false;
    }
    case kListPop:
        if (v.empty()) return fail(r, "mp::IndexError", "pop from empty list"), false;
        if (!normalise(i, v.size())) return fail(r, "mp::IndexError", "pop index out of range"), false;
        give(cx, v[static_cast<std::size_t>(i)], r, dead);
        r.value = std::move(v[static_cast<std::size_t>(i)].bytes);
        v.erase(v.begin() + i);
        return false;
    case kListRemove:
        for (auto it = v.begin(); it != v.end(); ++it)
            if (it->bytes == q.a) {
                release_val(st, *it, dead);
                v.erase(it);
                return false;
            }
        fail(r, "mp::ValueError", "list.remove(x): x not in list");
        return false;
    case kListIndex: {
        const std::size_t a = clamp_bound(q.i, v.size()), b = clamp_bound(q.j, v.size());
        for (std::size_t k = a; k < b; ++k)
            if (v[k].bytes == q.a) {
                r.n = static_cast<std::int64_t>(k);
                return false;
            }
        fail(r, "mp::ValueError", "list.index(x): x not in list");
        return false;
    }
    case kListCount:
        for (const auto& x : v) r.n += x.bytes == q.a;
        return false;
    case kListContains:
        for (const auto& x : v)
            if (x.bytes == q.a) {
                r.n = 1;
                break;
            }
        return false;
    case kListClear:
        for (const auto& x : v) release_val(st, x, dead);
        v.clear();
        return false;
    case kListReverse: std::reverse(v.begin(), v.end()); return false;
    case kListAll:
    case kListAllVersioned:
        r.list.reserve(v.size());
        for (const auto& x : v) {
            r.list.push_back(x.bytes);
            if (q.op == kListAll) grant(cx, x, r);
        }
        r.n = l.version;
        return false;
    case kListMulAssign: {
        if (q.i <= 0) {
            for (const auto& x : v) release_val(st, x, dead);
            v.clear();
            return false;
        }
        const std::size_t n0 = v.size();
        for (std::int64_t k = 1; k < q.i; ++k)
            for (std::size_t e = 0; e < n0; ++e) {
                Val c = v[e];
                for (std::uint64_t id : c.refs) {
                    auto it = st.objects.find(id);
                    if (it != st.objects.end()) ++it->second->refcount;
                }
                v.push_back(std::move(c));
            }
        return false;
    }
    case kListReplaceIfVersion: {
        // sort(): the same encodings in a new order, if nobody wrote in between (the version
        // read by kListAllVersioned is the one before this op's own increment).
        if (q.i + 1 != l.version || q.list.size() != v.size()) {
            --l.version;  // nothing changed
            r.n = 0;
            return false;
        }
        // Match each new position to an old element with the same bytes, keeping its refs.
        std::unordered_multimap<std::string_view, std::size_t> where;
        for (std::size_t k = 0; k < v.size(); ++k) where.emplace(v[k].bytes, k);
        std::vector<Val> out;
        out.reserve(v.size());
        std::vector<bool> used(v.size(), false);
        for (const auto& b : q.list) {
            auto range = where.equal_range(b);
            std::size_t pick = v.size();
            for (auto it = range.first; it != range.second; ++it)
                if (!used[it->second]) {
                    pick = it->second;
                    break;
                }
            if (pick == v.size()) {  // not a permutation of the list: refuse
                --l.version;
                fail(r, "mp::ValueError", "mp::ListProxy::sort: the new order is not a permutation of the list");
                return false;
            }
            used[pick] = true;
            out.push_back(Val{b, v[pick].refs});
        }
        v = std::move(out);
        r.n = 1;
        return false;
    }
    default: break;
    }
    if (writes) --l.version;
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a list");
    return false;
}

// The other operand of a set operation: the elements in q.list, or the set whose id is q.j.
std::vector<std::string_view> operand(ServerState& st, const Request& q, Reply& r, bool& ok) {
    std::vector<std::string_view> out;
    ok = true;
    if (q.j != 0) {
        auto it = st.objects.find(static_cast<std::uint64_t>(q.j));
        if (it == st.objects.end() || it->second->kind != ObjKind::set) {
            ok = false;
            fail(r, "mp::ValueError", "mp::SetProxy: the operand is not a set of this manager");
            return out;
        }
        for (const auto& kv : static_cast<SetObj&>(*it->second).m.items()) out.push_back(kv.first);
    } else {
        for (const auto& s : q.list) out.push_back(s);
    }
    return out;
}

bool set_op(Ctx& cx, Lock&, SetObj& s, const Request& q, Reply& r, Graveyard&) {
    ServerState& st = cx.st;
    switch (q.op) {
    case kSetAdd: s.m.emplace(q.a); return false;
    case kSetDiscard:
    case kSetRemove: {
        auto it = s.m.find(q.a);
        if (it == s.m.end()) {
            if (q.op == kSetRemove) fail(r, "mp::KeyError", "mp::SetProxy::remove: no such element");
            return false;
        }
        s.m.erase(it);
        return false;
    }
    case kSetPop: {
        if (s.m.size() == 0) return fail(r, "mp::KeyError", "pop from an empty set"), false;
        auto it = s.m.items().begin();
        r.value = it->first;
        s.m.erase(it);
        return false;
    }
    case kSetClear: s.m.clear(); return false;
    case kSetContains: r.n = s.m.has(q.a); return false;
    case kSetLen: r.n = static_cast<std::int64_t>(s.m.size()); return false;
    case kSetAll:
        for (const auto& kv : s.m.items()) r.list.push_back(kv.first);
        return false;
    default: break;
    }
    bool ok = true;
    const std::vector<std::string_view> other = operand(st, q, r, ok);
    if (!ok) return false;
    const std::unordered_set<std::string_view> oset(other.begin(), other.end());
    auto in_self = [&](std::string_view x) { return s.m.has(x); };
    switch (q.op) {
    case kSetUpdate:
        for (auto x : other) s.m.emplace(x);
        return false;
    case kSetIntersectionUpdate:
        for (auto it = s.m.items().begin(); it != s.m.items().end();) {
            auto next = std::next(it);
            if (!oset.count(it->first)) s.m.erase(it);
            it = next;
        }
        return false;
    case kSetDifferenceUpdate:
        for (auto x : other) {
            auto it = s.m.find(x);
            if (it != s.m.end()) s.m.erase(it);
        }
        return false;
    case kSetSymmetricDifferenceUpdate: {
        std::vector<std::string> add;
        std::unordered_set<std::string_view> seen;
        for (auto x : other) {
            if (!seen.insert(x).second) continue;
            auto it = s.m.find(x);
            if (it != s.m.end())
                s.m.erase(it);
            else
                add.emplace_back(x);
        }
        for (auto& x : add) s.m.emplace(x);
        return false;
    }
    case kSetUnion: {
        for (const auto& kv : s.m.items()) r.list.push_back(kv.first);
        std::unordered_set<std::string_view> seen;
        for (auto x : other)
            if (!in_self(x) && seen.insert(x).second) r.list.emplace_back(x);
        return false;
    }
    case kSetIntersection:
        for (const auto& kv : s.m.items())
            if (oset.count(kv.first)) r.list.push_back(kv.first);
        return false;
    case kSetDifference:
        for (const auto& kv : s.m.items())
            if (!oset.count(kv.first)) r.list.push_back(kv.first);
        return false;
    case kSetSymmetricDifference: {
        for (const auto& kv : s.m.items())
            if (!oset.count(kv.first)) r.list.push_back(kv.first);
        std::unordered_set<std::string_view> seen;
        for (auto x : other)
            if (!in_self(x) && seen.insert(x).second) r.list.emplace_back(x);
        return false;
    }
    case kSetIsDisjoint:
        r.n = 1;
        for (auto x : other)
            if (in_self(x)) r.n = 0;
        return false;
    case kSetIsSubset:
    case kSetIsProperSubset: {
        bool sub = true;
        for (const auto& kv : s.m.items())
            if (!oset.count(kv.first)) sub = false;
        r.n = sub && (q.op == kSetIsSubset || oset.size() > s.m.size());
        return false;
    }
    case kSetIsSuperset:
    case kSetIsProperSuperset: {
        bool sup = true;
        for (auto x : oset)
            if (!in_self(x)) sup = false;
        r.n = sup && (q.op == kSetIsSuperset || s.m.size() > oset.size());
        return false;
    }
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a set");
    return false;
}

bool value_op(Ctx& cx, Lock&, Object& o, const Request& q, Reply& r, Graveyard& dead) {
    ServerState& st = cx.st;
    if (o.kind == ObjKind::value) {
        auto& v = static_cast<ValueObj&>(o).v;
        if (q.op == kValueGet) {
            r.value = v.bytes;
            grant(cx, v, r);
            return false;
        }
        if (q.op == kValueSet) {
            Val x = stored(st, q, q.a, 0);
            release_val(st, v, dead);
            v = std::move(x);
            return false;
        }
    } else if (o.kind == ObjKind::array) {
        auto& v = static_cast<ArrayObj&>(o).v;
        std::int64_t i = q.i;
        switch (q.op) {
        case kArrayGet:
            if (!normalise(i, v.size())) return fail(r, "mp::IndexError", "array index out of range"), false;
            r.value = v[static_cast<std::size_t>(i)].bytes;
            grant(cx, v[static_cast<std::size_t>(i)], r);
            return false;
        case kArraySet: {
            if (!normalise(i, v.size())) return fail(r, "mp::IndexError", "array assignment index out of range"), false;
            Val x = stored(st, q, q.a, 0);
            release_val(st, v[static_cast<std::size_t>(i)], dead);
            v[static_cast<std::size_t>(i)] = std::move(x);
            return false;
        }
        case kArrayLen: r.n = static_cast<std::int64_t>(v.size()); return false;
        case kArrayAll:
            for (const auto& x : v) {
                r.list.push_back(x.bytes);
                grant(cx, x, r);
            }
            return false;
        default: break;
        }
    } else if (o.kind == ObjKind::ns) {
        auto& m = static_cast<NsObj&>(o).m;
        const std::string missing = "'Namespace' object has no attribute '" + q.a + "'";
        switch (q.op) {
        case kNsGet: {
            auto it = m.find(q.a);
            if (it == m.end()) return fail(r, "mp::AttributeError", missing), false;
            r.value = it->second.bytes;
            grant(cx, it->second, r);
            return false;
        }
        case kNsSet: {
            Val x = stored(st, q, q.b, 0);
            auto [it, fresh] = m.emplace(q.a);
            if (!fresh) release_val(st, it->second, dead);
            it->second = std::move(x);
            return false;
        }
        case kNsDel: {
            auto it = m.find(q.a);
            if (it == m.end()) return fail(r, "mp::AttributeError", missing), false;
            release_val(st, it->second, dead);
            m.erase(it);
            return false;
        }
        case kNsHas: r.n = m.has(q.a); return false;
        case kNsNames:
            for (const auto& kv : m.items()) r.list.push_back(kv.first);
            return false;
        default: break;
        }
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a " + o.type);
    return false;
}

bool queue_op(Ctx& cx, Lock& lk, QueueObj& Q, const Request& q, Reply& r, Graveyard& dead) {
    ServerState& st = cx.st;
    switch (q.op) {
    case kQueuePut: {
        auto room = [&] { return Q.maxsize <= 0 || static_cast<std::int64_t>(Q.q.size()) < Q.maxsize; };
        if (!room()) {
            if (q.i == 0) return fail(r, "mp::queue::Full", "mp::QueueProxy::put: the queue is full"), false;
            const Waited w = wait_until(cx, lk, Q, Deadline(q.wait_ms, q.limit_ms), room);
            if (w == Waited::timeout) return fail(r, "mp::queue::Full", "mp::QueueProxy::put: the queue is full"), false;
            if (w != Waited::ready) return wait_failed(w, r);
        }
        Q.q.push_back(stored(st, q, q.a, 0));
        if (Q.joinable) ++Q.unfinished;
        Q.cv.notify_all();
        return false;
    }
    case kQueueGet: {
        auto some = [&] { return !Q.q.empty(); };
        if (!some()) {
            if (q.i == 0) return fail(r, "mp::queue::Empty", "mp::QueueProxy::get: the queue is empty"), false;
            const Waited w = wait_until(cx, lk, Q, Deadline(q.wait_ms, q.limit_ms), some);
            if (w == Waited::timeout) return fail(r, "mp::queue::Empty", "mp::QueueProxy::get: the queue is empty"), false;
            if (w != Waited::ready) return wait_failed(w, r);
        }
        Val v = std::move(Q.q.front());
        Q.q.pop_front();
        give(cx, v, r, dead);
        r.value = v.bytes;
        cx.undo = Ctx::Undo::requeue;
        cx.undo_val = std::move(v);
        Q.cv.notify_all();
        return false;
    }
    case kQueueSize: r.n = static_cast<std::int64_t>(Q.q.size()); return false;
    case kQueueEmpty: r.n = Q.q.empty(); return false;
    case kQueueFull: r.n = Q.maxsize > 0 && static_cast<std::int64_t>(Q.q.size()) >= Q.maxsize; return false;
    case kQueueMaxsize: r.n = Q.maxsize; return false;
    case kQueueTaskDone:
        if (!Q.joinable) break;
        if (Q.unfinished == 0) return fail(r, "mp::ValueError", "task_done() called too many times"), false;
        if (--Q.unfinished == 0) Q.cv.notify_all();
        return false;
    case kQueueJoin: {
        if (!Q.joinable) break;
        const Waited w = wait_until(cx, lk, Q, Deadline(q.wait_ms, q.limit_ms), [&] { return Q.unfinished == 0; });
        if (w != Waited::ready && w != Waited::timeout) return wait_failed(w, r);
        r.n = w == Waited::ready;
        return false;
    }
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a " + Q.type);
    return false;
}

bool lock_op(Ctx& cx, Lock& lk, LockObj& L, std::uint64_t id, const Request& q, Reply& r) {
    switch (q.op) {
    case kAcquire: return acquire(cx, lk, L, id, q, r);
    case kRelease: release(cx, L, id, q.i, r); return false;
    case kLocked: r.n = (L.lk == LockKind::lock || L.lk == LockKind::rlock) ? L.held : L.count == 0; return false;
    case kSemValue: r.n = (L.lk == LockKind::semaphore || L.lk == LockKind::bounded) ? L.count : 0; return false;
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a " + L.type);
    return false;
}

// A condition's lock is noted as held under the condition's id (end_session finds it there).
bool cond_op(Ctx& cx, Lock& lk, CondObj& C, const Request& q, Reply& r) {
    LockObj& L = *C.lock;
    switch (q.op) {
    case kAcquire: return acquire(cx, lk, L, q.id, q, r);
    case kRelease: release(cx, L, q.id, 1, r); return false;
    case kLocked: r.n = L.held; return false;
    case kCondNotify:
    case kCondNotifyAll: {
        if (!L.held || !(L.owner == cx.caller())) return fail(r, "mp::RuntimeError", "cannot notify on un-acquired lock"), false;
        std::int64_t n = q.op == kCondNotifyAll ? -1 : q.i;
        while (!C.waiters.empty() && n != 0) {
            C.waiters.front()->notified = true;
            C.waiters.pop_front();
            if (n > 0) --n;
        }
        C.cv.notify_all();
        return false;
    }
    case kCondWait: {
        const Owner who = cx.caller();
        if (!L.held || !(L.owner == who)) return fail(r, "mp::RuntimeError", "cannot wait on un-acquired lock"), false;
        const std::int64_t depth = L.lk == LockKind::rlock ? L.count : 1;
        L.held = false;
        L.owner = {};
        L.count = 0;
        note_held(cx.st, cx.session, q.id, false);
        L.cv.notify_all();
        CondObj::Waiter w;
        C.waiters.push_back(&w);
        const Waited got = wait_until(cx, lk, C, Deadline(q.wait_ms, q.limit_ms), [&] { return w.notified; });
        if (!w.notified) C.waiters.remove(&w);
        if (got == Waited::gone) return true;
        // Take the lock back, however the wait ended (as Python's Condition.wait).
        const Deadline none(-1, -1);
        const Waited back = wait_until(cx, lk, L, none, [&] { return !L.held; });
        if (back != Waited::ready) return wait_failed(back, r);
        L.held = true;
        L.owner = who;
        L.count = L.lk == LockKind::rlock ? depth : 0;
        note_held(cx.st, cx.session, q.id, true);
        r.n = got == Waited::ready;
        if (got == Waited::dead || got == Waited::limit) wait_failed(got, r);
        cx.undo = Ctx::Undo::unlock;
        return false;
    }
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a Condition");
    return false;
}

bool event_op(Ctx& cx, Lock& lk, EventObj& E, const Request& q, Reply& r) {
    switch (q.op) {
    case kEventIsSet: r.n = E.flag; return false;
    case kEventSet:
        E.flag = true;
        E.cv.notify_all();
        return false;
    case kEventClear: E.flag = false; return false;
    case kEventWait: {
        const Waited w = wait_until(cx, lk, E, Deadline(q.wait_ms, q.limit_ms), [&] { return E.flag; });
        if (w != Waited::ready && w != Waited::timeout) return wait_failed(w, r);
        r.n = w == Waited::ready;
        return false;
    }
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of an Event");
    return false;
}

bool barrier_op(Ctx& cx, Lock& lk, BarrierObj& B, const Request& q, Reply& r) {
    switch (q.op) {
    case kBarrierWait: {
        if (B.broken) return fail(r, "mp::BrokenBarrierError", "the barrier is broken"), false;
        const std::uint64_t gen = B.generation;
        const std::int64_t index = B.count++;
        if (B.count == B.parties) {
            B.count = 0;
            ++B.generation;
            B.cv.notify_all();
            r.n = index;
            return false;
        }
        const std::int64_t wait_ms = q.wait_ms >= 0 ? q.wait_ms : B.timeout_ms;
        const Waited w = wait_until(cx, lk, B, Deadline(wait_ms, q.limit_ms), [&] { return B.generation != gen || B.broken; });
        const bool reset = std::find(B.reset_generations.begin(), B.reset_generations.end(), gen) != B.reset_generations.end();
        if (B.generation != gen && !reset) {
            r.n = index;
            return false;
        }
        if (w == Waited::ready || reset) return fail(r, "mp::BrokenBarrierError", "the barrier was broken while waiting"), false;
        // A waiter that gives up (timeout, or gone) breaks the barrier for the others, as Python's.
        if (B.generation == gen) {
            B.broken = true;
            --B.count;
            B.cv.notify_all();
        }
        if (w == Waited::timeout) return fail(r, "mp::BrokenBarrierError", "the barrier's wait timed out"), false;
        return wait_failed(w, r);
    }
    case kBarrierAbort:
        B.broken = true;
        B.cv.notify_all();
        return false;
    case kBarrierReset:
        if (B.count > 0) {
            B.reset_generations.push_back(B.generation);
            if (B.reset_generations.size() > 64) B.reset_generations.erase(B.reset_generations.begin());
            ++B.generation;
        }
        B.count = 0;
        B.broken = false;
        B.cv.notify_all();
        return false;
    case kBarrierParties: r.n = B.parties; return false;
    case kBarrierNWaiting: r.n = B.broken ? 0 : B.count; return false;
    case kBarrierBroken: r.n = B.broken; return false;
    default: break;
    }
    fail(r, "mp::ValueError", "mp::Manager: operation " + std::to_string(q.op) + " is not one of a Barrier");
    return false;
}

// A registered type's method, outside the server's lock.
void user_call(UserObj& u, const Request& q, Reply& r) {
    std::size_t m = 0;
    while (m < u.mt->method_names.size() && u.mt->method_names[m] != q.name) ++m;
    if (m == u.mt->method_names.size())
        return fail(r, "mp::AttributeError", "method '" + q.name + "' of " + u.mt->name + " is not exposed (not in its MP_MANAGED list)");
    std::lock_guard<std::mutex> one_at_a_time(u.call_mu);
    try {
        u.mt->methods[m](u.ptr, q.a, r.value);
    } catch (const DecodeError& e) {
        fail(r, "mp::TypeError", u.mt->name + "::" + q.name + ": the arguments do not match its parameters (" + e.what() + ")");
    } catch (const TypeError& e) {  // the arguments' type fingerprint is not the parameters'
        fail(r, "mp::TypeError", u.mt->name + "::" + q.name + ": the arguments do not match its parameters (" + e.what() + ")");
    } catch (const std::exception& e) {
        fail(r, "", e.what());
        r.etype = type_name(typeid(e).name());
    } catch (...) {
        fail(r, "unknown", u.mt->name + "::" + q.name + " threw something that is not a std::exception");
    }
}

// ---- creating ---------------------------------------------------------------------------------

// Builds the object a kCreate asks for. Without st.mu for a registered type (its factory is
// user code), with it for the rest; returns nullptr and fills r on error.
std::shared_ptr<Object> make_builtin(ServerState& st, const Request& q, Reply& r) {
    const std::string& t = q.name;
    auto values = [&](std::vector<Val>& out) {
        for (std::size_t k = 0; k < q.list.size(); ++k) out.push_back(stored(st, q, q.list[k], k));
    };
    if (t == "dict") {
        auto d = std::make_shared<DictObj>();
        for (std::size_t k = 0; k + 1 < q.list.size(); k += 2) {
            auto [it, fresh] = d->m.emplace(q.list[k]);
            Graveyard none;
            if (!fresh) release_val(st, it->second, none);
            it->second = stored(st, q, q.list[k + 1], k + 1);
        }
        return d;
    }
    if (t == "list") {
        auto l = std::make_shared<ListObj>();
        values(l->v);
        return l;
    }
    if (t == "set") {
        auto s = std::make_shared<SetObj>();
        for (const auto& e : q.list) s->m.emplace(e);
        return s;
    }
    if (t == "Value") {
        auto v = std::make_shared<ValueObj>();
        v->v = stored(st, q, q.a, 0);
        return v;
    }
    if (t == "Array") {
        auto a = std::make_shared<ArrayObj>();
        values(a->v);
        return a;
    }
    if (t == "Namespace") return std::make_shared<NsObj>();
    if (t == "Queue" || t == "JoinableQueue") {
        auto qo = std::make_shared<QueueObj>(t == "JoinableQueue");
        qo->maxsize = q.i;
        return qo;
    }
    if (t == "Lock") return std::make_shared<LockObj>(LockKind::lock, t);
    if (t == "RLock") return std::make_shared<LockObj>(LockKind::rlock, t);
    if (t == "Semaphore" || t == "BoundedSemaphore") {
        if (q.i < 0) return fail(r, "mp::ValueError", "semaphore initial value must be >= 0"), nullptr;
        auto s = std::make_shared<LockObj>(t == "Semaphore" ? LockKind::semaphore : LockKind::bounded, t);
        s->count = s->max = q.i;
        return s;
    }
    if (t == "Condition") {
        auto c = std::make_shared<CondObj>();
        if (q.j != 0) {
            auto it = st.objects.find(static_cast<std::uint64_t>(q.j));
            if (it == st.objects.end() || it->second->kind != ObjKind::lock ||
                (it->second->type != "Lock" && it->second->type != "RLock"))
                return fail(r, "mp::ValueError", "mp::SyncManager::Condition: the lock must be a Lock or RLock of this manager"), nullptr;
            c->lock = std::static_pointer_cast<LockObj>(it->second);
            c->lock_id = static_cast<std::uint64_t>(q.j);
            ++it->second->refcount;
        } else {
            c->lock = std::make_shared<LockObj>(LockKind::rlock, "RLock");  // the condition's alone
        }
        return c;
    }
    if (t == "Event") return std::make_shared<EventObj>();
    if (t == "Barrier") {
        if (q.i < 1) return fail(r, "mp::ValueError", "parties must be >= 1"), nullptr;
        auto b = std::make_shared<BarrierObj>();
        b->parties = q.i;
        b->timeout_ms = q.wait_ms;
        return b;
    }
    fail(r, "mp::ValueError", "mp::Manager: no type '" + t + "' is registered in the server (MP_MANAGED)");
    return nullptr;
}

std::string debug_text(ServerState& st) {
    std::vector<std::uint64_t> ids;
    for (const auto& kv : st.objects) ids.push_back(kv.first);
    std::sort(ids.begin(), ids.end());
    std::string out;
    for (std::uint64_t id : ids) {
        const Object& o = *st.objects[id];
        out += "  " + std::to_string(id) + ": " + o.type + " refcount=" + std::to_string(o.refcount) + "\n";
    }
    return out;
}

// ---- sessions -------------------------------------------------------------------------------

void end_session(ServerState& st, std::uint64_t sid) {
    Graveyard dead;
    std::lock_guard<std::mutex> lk(st.mu);
    auto node = st.sessions.extract(sid);
    if (node.empty()) return;
    Session& s = node.mapped();
    for (std::uint64_t lock_id : s.held_locks) {
        auto it = st.objects.find(lock_id);
        if (it == st.objects.end()) continue;
        LockObj* L = it->second->kind == ObjKind::lock        ? static_cast<LockObj*>(it->second.get())
                     : it->second->kind == ObjKind::condition ? static_cast<CondObj&>(*it->second).lock.get()
                                                              : nullptr;
        if (L && L->held && L->owner.session == sid) abandon(*L);
    }
    for (std::uint64_t h : s.holds) {
        auto it = st.holds.find(h);
        if (it == st.holds.end()) continue;
        const std::uint64_t id = it->second.id;
        st.holds.erase(it);
        decref(st, id, 1, dead);
    }
    for (const auto& [id, n] : s.refs) decref(st, id, n, dead);
}

// ---- one request ----------------------------------------------------------------------------

// Handles q into r. Returns false when no answer is to be sent (one-way messages), and sets
// `close` when the connection must end.
bool handle(Ctx& cx, const Request& q, Reply& r, bool& close) {
    ServerState& st = cx.st;
    Graveyard dead;  // destroyed after the lock below is released
    switch (q.kind) {
    case kMsgHello: {
        std::lock_guard<std::mutex> lk(st.mu);
        if (cx.session != 0) return fail(r, "mp::ValueError", "mp::Manager: hello twice"), true;
        cx.session = static_cast<std::uint64_t>(q.i);
        if (q.j == kAnchor) {
            if (cx.session == 0 || !st.sessions.emplace(cx.session, Session{}).second) {
                cx.session = 0;
                fail(r, "mp::ValueError", "mp::Manager: a session that exists already");
                close = true;
                return true;
            }
            cx.anchor = true;
        }
        r.n = static_cast<std::int64_t>(st.manager_id);
        return true;
    }
    case kMsgPing: return true;
    case kMsgShutdown: {
        std::lock_guard<std::mutex> lk(st.stop_mu);
        st.stop = true;
        st.stop_cv.notify_all();
        return true;
    }
    case kMsgPublish: {
        std::lock_guard<std::mutex> lk(st.mu);
        auto it = st.objects.find(q.id);
        if (it == st.objects.end()) return fail(r, "mp::ValueError", "mp::Manager: no shared object " + std::to_string(q.id)), true;
        ++it->second->refcount;  // held by the name
        auto [n, fresh] = st.published.emplace(q.a, q.id);
        if (!fresh) {
            decref(st, n->second, 1, dead);
            n->second = q.id;
        }
        return true;
    }
    case kMsgUnpublish: {
        std::lock_guard<std::mutex> lk(st.mu);
        auto n = st.published.find(q.a);
        if (n == st.published.end()) return fail(r, "mp::KeyError", "mp::Manager: nothing is published as '" + q.a + "'"), true;
        decref(st, n->second, 1, dead);
        st.published.erase(n);
        return true;
    }
    case kMsgLookup: {
        std::lock_guard<std::mutex> lk(st.mu);
        if (q.a.empty() && q.i == 1) {  // the names
            for (const auto& kv : st.published) r.list.push_back(kv.first);
            return true;
        }
        auto n = st.published.find(q.a);
        auto s = st.sessions.find(cx.session);
        if (n == st.published.end()) return fail(r, "mp::KeyError", "mp::Manager: nothing is published as '" + q.a + "'"), true;
        auto it = st.objects.find(n->second);
        if (s == st.sessions.end() || it == st.objects.end()) return fail(r, "mp::ProcessError", "mp::Manager: no session"), true;
        ++it->second->refcount;
        ++s->second.refs[n->second];
        r.grants.push_back(n->second);
        r.n = static_cast<std::int64_t>(n->second);
        r.value = it->second->type;
        return true;
    }
    case kMsgInfo: {
        std::lock_guard<std::mutex> lk(st.mu);
        r.n = static_cast<std::int64_t>(st.objects.size());
        r.value = debug_text(st);
        return true;
    }
    case kMsgCreate: {
        std::shared_ptr<Object> o;
        if (const ManagedType* mt = find_type(q.name)) {
            try {
                void* p = mt->create(q.a);
                o = std::make_shared<UserObj>(mt, p);
            } catch (const DecodeError& e) {
                fail(r, "mp::TypeError", "mp::BaseManager::create<" + q.name + ">: the arguments do not match the factory's (" + e.what() + ")");
                return true;
            } catch (const TypeError& e) {
                fail(r, "mp::TypeError", "mp::BaseManager::create<" + q.name + ">: the arguments do not match the factory's (" + e.what() + ")");
                return true;
            } catch (const std::exception& e) {
                fail(r, "", e.what());
                r.etype = type_name(typeid(e).name());
                return true;
            }
        }
        std::lock_guard<std::mutex> lk(st.mu);
        auto s = st.sessions.find(cx.session);
        if (s == st.sessions.end()) {
            fail(r, "mp::ProcessError", "mp::Manager: this connection has no session (its process's anchor is gone)");
            return true;
        }
        if (!o) o = make_builtin(st, q, r);
        if (!o) return true;
        const std::uint64_t id = st.next_id++;
        o->refcount = 1;
        st.objects.emplace(id, std::move(o));
        s->second.refs[id] += 1;
        r.n = static_cast<std::int64_t>(id);
        return true;
    }
    case kMsgIncref: {
        std::lock_guard<std::mutex> lk(st.mu);
        auto s = st.sessions.find(cx.session);
        if (s == st.sessions.end()) return fail(r, "mp::ProcessError", "mp::Manager: no session"), true;
        for (std::uint64_t id : q.refs) {
            auto it = st.objects.find(id);
            if (it == st.objects.end()) continue;
            ++it->second->refcount;
            ++s->second.refs[id];
            r.grants.push_back(id);
        }
        return true;
    }
    case kMsgDecref: {
        std::lock_guard<std::mutex> lk(st.mu);
        auto s = st.sessions.find(cx.session);
        if (s == st.sessions.end()) return false;
        for (std::size_t k = 0; k + 1 < q.refs.size(); k += 2) {
            auto it = s->second.refs.find(q.refs[k]);
            if (it == s->second.refs.end()) continue;
            const std::uint64_t n = std::min(q.refs[k + 1], it->second);  // never more than it holds
            if ((it->second -= n) == 0) s->second.refs.erase(it);
            decref(st, q.refs[k], n, dead);
        }
        return false;
    }
    case kMsgHold: {
        std::lock_guard<std::mutex> lk(st.mu);
        auto s = st.sessions.find(cx.session);
        auto it = st.objects.find(q.id);
        if (s == st.sessions.end()) return fail(r, "mp::ProcessError", "mp::Manager: no session"), true;
        if (it == st.objects.end()) return fail(r, "mp::ValueError", "mp::Manager: no shared object " + std::to_string(q.id)), true;
        const std::uint64_t token = st.next_hold++;
        ++it->second->refcount;
        st.holds.emplace(token, Hold{q.id, cx.session});
        s->second.holds.insert(token);
        r.n = static_cast<std::int64_t>(token);
        return true;
    }
    case kMsgAdopt:
    case kMsgRelease: {
        std::lock_guard<std::mutex> lk(st.mu);
        auto h = st.holds.find(static_cast<std::uint64_t>(q.i));
        bool had = false;
        if (h != st.holds.end() && h->second.id == q.id) {
            auto owner = st.sessions.find(h->second.session);
            if (owner != st.sessions.end()) owner->second.holds.erase(h->first);
            st.holds.erase(h);
            had = true;
        }
        if (q.kind == kMsgRelease) {
            if (had) decref(st, q.id, 1, dead);
            return false;
        }
        auto s = st.sessions.find(cx.session);
        auto it = st.objects.find(q.id);
        if (s == st.sessions.end() || it == st.objects.end()) {
            if (had) decref(st, q.id, 1, dead);
            fail(r, "mp::ValueError", "mp::Manager: shared object " + std::to_string(q.id) + " no longer exists");
            return true;
        }
        if (!had) ++it->second->refcount;  // the hold was gone (its sender ended): a reference of our own
        ++s->second.refs[q.id];
        return true;
    }
    case kMsgCall: break;
    default:
        fail(r, "mp::ValueError", "mp::Manager: unknown request kind " + std::to_string(q.kind));
        close = true;
        return true;
    }

    cx.thread = q.thread;
    std::unique_lock<std::mutex> lk(st.mu);
    auto it = st.objects.find(q.id);
    if (it == st.objects.end()) {
        fail(r, "mp::ValueError", "mp::Manager: no shared object " + std::to_string(q.id) + " (freed, or never made)");
        return true;
    }
    std::shared_ptr<Object> keep = it->second;  // alive through the op, even if freed meanwhile
    Object& o = *keep;
    if (q.op == kUserCall) {
        if (o.kind != ObjKind::user) return fail(r, "mp::ValueError", "mp::Manager: a method call on a builtin object"), true;
        lk.unlock();
        user_call(static_cast<UserObj&>(o), q, r);
        return true;
    }
    bool gone = false;
    switch (o.kind) {
    case ObjKind::dict: gone = dict_op(cx, lk, static_cast<DictObj&>(o), q, r, dead); break;
    case ObjKind::list: gone = list_op(cx, lk, static_cast<ListObj&>(o), q, r, dead); break;
    case ObjKind::set: gone = set_op(cx, lk, static_cast<SetObj&>(o), q, r, dead); break;
    case ObjKind::value:
    case ObjKind::array:
    case ObjKind::ns: gone = value_op(cx, lk, o, q, r, dead); break;
    case ObjKind::queue: gone = queue_op(cx, lk, static_cast<QueueObj&>(o), q, r, dead); break;
    case ObjKind::lock: gone = lock_op(cx, lk, static_cast<LockObj&>(o), q.id, q, r); break;
    case ObjKind::condition: gone = cond_op(cx, lk, static_cast<CondObj&>(o), q, r); break;
    case ObjKind::event: gone = event_op(cx, lk, static_cast<EventObj&>(o), q, r); break;
    case ObjKind::barrier: gone = barrier_op(cx, lk, static_cast<BarrierObj&>(o), q, r); break;
    case ObjKind::user: fail(r, "mp::ValueError", "mp::Manager: a builtin operation on a registered type's object"); break;
    }
    if (cx.undo != Ctx::Undo::none) cx.undo_obj = keep;
    if (gone) close = true;
    return !gone;
}

// The answer could not be delivered: what the operation took goes back.
void undo(Ctx& cx) {
    if (cx.undo == Ctx::Undo::none || !cx.undo_obj) return;
    ServerState& st = cx.st;
    std::lock_guard<std::mutex> lk(st.mu);
    Object& o = *cx.undo_obj;
    if (o.dead) return;
    switch (cx.undo) {
    case Ctx::Undo::requeue: {
        auto& Q = static_cast<QueueObj&>(o);
        // The references went to the session with the answer: they come back to the item.
        auto s = st.sessions.find(cx.session);
        if (s != st.sessions.end())
            for (std::uint64_t id : cx.undo_val.refs) {
                auto r = s->second.refs.find(id);
                if (r != s->second.refs.end() && --r->second == 0) s->second.refs.erase(r);
            }
        Q.q.push_front(std::move(cx.undo_val));
        Q.cv.notify_all();
        break;
    }
    case Ctx::Undo::unlock: {
        LockObj* L = o.kind == ObjKind::condition ? static_cast<CondObj&>(o).lock.get() : &static_cast<LockObj&>(o);
        if (L->held && L->owner == cx.caller() && (L->lk != LockKind::rlock || --L->count == 0)) {
            L->held = false;
            L->owner = {};
            L->count = 0;
            L->cv.notify_all();
        }
        break;
    }
    case Ctx::Undo::unsem: {
        auto& L = static_cast<LockObj&>(o);
        ++L.count;
        L.cv.notify_all();
        break;
    }
    default: break;
    }
}

class ThreadCount {
public:
    explicit ThreadCount(ServerState& st) : st_(st) {}
    ~ThreadCount() {
        std::lock_guard<std::mutex> lk(st_.threads_mu);
        --st_.threads;
        st_.threads_cv.notify_all();
    }

private:
    ServerState& st_;
};

void serve_connection(std::shared_ptr<ServerState> sp, sys::PipeEnd end) {
    ServerState& st = *sp;
    ThreadCount counted(st);
    Connection conn;
    try {
        conn = ListenerAccess::authenticate(std::move(end), st.key, kHandshakeMs);
    } catch (const std::exception&) {
        return;  // a stranger, garbage, or silence: only this connection is lost
    }
    Ctx cx{st, conn, 0, false, 0, Ctx::Undo::none, nullptr, Val{}};
    // A Unix socket (POSIX only) is read at once, and woken by finish(); other ends (TCP, the
    // named pipes of Windows) look for the stop between polls of a slice.
    bool blocking_reads = false;
    if (st.address.family == AddressFamily::unix_socket) {
        std::lock_guard<std::mutex> lk(st.sockets_mu);
        if (!st.stop) {
            st.sockets.insert(conn.native_handle());
            blocking_reads = true;
        }
    }
    Request q;
    std::string out;
    for (;;) {
        if (st.stop) break;
        if (!blocking_reads) {
            try {
                if (!conn.poll(std::chrono::duration<double>(kSlice).count())) continue;
            } catch (const std::exception&) {
                break;
            }
        }
        bytes msg;
        try {
            msg = conn.recv_bytes(kMaxRequest);
            decode_message_into(view_of(msg), q);
        } catch (const std::exception&) {
            break;  // end of file, oversized, truncated or garbage: the connection goes
        }
        if (cx.session == 0 && q.kind != kMsgHello && q.kind != kMsgPing && q.kind != kMsgInfo && q.kind != kMsgShutdown) break;
        Reply r;
        bool close = false;
        cx.undo = Ctx::Undo::none;
        cx.undo_obj.reset();
        bool answer = false;
        try {
            answer = handle(cx, q, r, close);
        } catch (const std::exception& e) {  // out of memory, a decode error inside an operation
            r = Reply{};
            fail(r, "mp::ValueError", std::string("mp::Manager: the request failed: ") + e.what());
            answer = true;
        }
        if (answer) {
            out.clear();
            try {
                encode_message_to(out, r);
                conn.send_bytes(out.data(), out.size(), 60.0);
            } catch (const std::exception&) {
                undo(cx);
                break;
            }
        }
        if (close || (q.kind == kMsgShutdown)) break;
    }
    if (blocking_reads) {
        std::lock_guard<std::mutex> lk(st.sockets_mu);
        st.sockets.erase(conn.native_handle());
    }
    conn.close();
    if (cx.anchor) end_session(st, cx.session);
}

// The process-wide table of managers this process knows, by manager id: the address to reach
// each and its key (for proxies that arrive without one), and the live client.
struct Known {
    Address address;
    std::string key;
    std::weak_ptr<ManagerClient> client;
};

std::mutex& known_mu() {
    static std::mutex* m = new std::mutex;
    return *m;
}
std::unordered_map<std::uint64_t, Known>& known() {
    static auto* k = new std::unordered_map<std::uint64_t, Known>;
    return *k;
}
void remember(std::uint64_t manager_id, const Address& a, const std::string& key) {
    std::lock_guard<std::mutex> lk(known_mu());
    Known& k = known()[manager_id];
    if (k.key.empty()) {
        k.address = a;
        k.key = key;
    }
}

}  // namespace

void drop_inherited_connections();

// ---- serving --------------------------------------------------------------------------------

std::shared_ptr<ServerState> make_server_state(const Address& where, const std::string& key) {
    auto st = std::make_shared<ServerState>();
    // The Listener authenticates nothing itself: each connection's thread runs the handshake.
    st->listener = Listener(listening(where), std::string(), 128);
    st->address = st->listener.address();
    st->key = key;
    st->manager_id = random_u64();
    st->owner_pid = mp::getpid();
    remember(st->manager_id, connectable(st->address), key);
    return st;
}

void request_stop(ServerState& st) {
    std::lock_guard<std::mutex> lk(st.stop_mu);
    st.stop = true;
    st.stop_cv.notify_all();
}

// Accepts clients until the server stops, each on a thread of its own (CPython's accepter).
void accept_loop(const std::shared_ptr<ServerState>& st) {
    while (!st->stop) {
        try {
            sys::PipeEnd end = ListenerAccess::accept_end(st->listener, std::chrono::duration<double, std::milli>(kSlice).count());
            {
                std::lock_guard<std::mutex> lk(st->threads_mu);
                ++st->threads;
            }
            try {
                std::thread(serve_connection, st, std::move(end)).detach();
            } catch (const std::exception&) {  // no thread to be had: that client is refused
                std::lock_guard<std::mutex> lk(st->threads_mu);
                --st->threads;
            }
        } catch (const TimeoutError&) {
        } catch (const std::exception&) {
            // Out of descriptors, a connection that died in the backlog ...: go on (as Python's
            // server does); the pause keeps a lasting error from spinning.
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
}

// A Connection's native_handle() as the platform layer's handle type (an int on POSIX).
template <class H = sys::native_handle>
H to_native(std::uintptr_t v) {
    if constexpr (std::is_pointer_v<H>) {
        return reinterpret_cast<H>(v);
    } else {
        return static_cast<H>(v);
    }
}

void start_accepting(const std::shared_ptr<ServerState>& st) {
    st->acceptor = std::thread([st] { accept_loop(st); });
}

// After a stop: no more clients (the socket file goes), and up to 2 s for the connections'
// threads, which see the stop within a slice, to close.
void finish(ServerState& st) {
    if (st.owner_pid != mp::getpid()) {
        // A fork child's copy: the server is the parent's. Its sockets are the parent's too (a
        // shutdown here would cut the parent's clients off), and its acceptor names a thread
        // that does not run here: neither joined nor destroyed (std::terminate), but left.
        if (st.acceptor.joinable()) new std::thread(std::move(st.acceptor));
        return;
    }
    request_stop(st);
    if (st.acceptor.joinable()) st.acceptor.join();
    if (st.finished) return;
    st.finished = true;
    {
        std::lock_guard<std::mutex> lk(st.sockets_mu);
        for (std::uintptr_t fd : st.sockets) (void)sys::socket_shutdown(to_native(fd), 0);
    }
    st.listener.close();
    std::unique_lock<std::mutex> lk(st.threads_mu);
    st.threads_cv.wait_for(lk, std::chrono::seconds(2), [&] { return st.threads == 0; });
}

// The signals that stop a server. mode 1: the server process of start() (SIGINT ignored, as
// CPython's; SIGTERM ends it cleanly); 2: serve_forever with stop_on_signals (SIGINT and
// SIGTERM end it). The handlers run in wait_for_stop's dispatch; `target` is the server they
// stop, which may be set after this (a signal that comes first is recorded, not lost).
void install_stop_signals(const std::shared_ptr<std::weak_ptr<ServerState>>& target, int mode) {
    if (mode == 1) signals::ignore(sig::INT);
    auto stopper = [target](int) {
        if (auto s = target->lock()) request_stop(*s);
    };
    if (mode == 2) signals::handle(sig::INT, stopper);
    signals::handle(sig::TERM, stopper);
}

// Waits until the server is asked to stop (mode 0: no signals; else see above).
void wait_for_stop(const std::shared_ptr<ServerState>& st, int mode) {
    if (mode == 0) {
        std::unique_lock<std::mutex> lk(st->stop_mu);
        st->stop_cv.wait(lk, [&] { return st->stop.load(); });
        return;
    }
    while (!st->stop) signals::dispatch(std::chrono::duration<double>(kSlice).count());
    if (mode == 2) signals::restore(sig::INT);
    signals::restore(sig::TERM);
}

int manager_server_process(Connection report, Address where, std::string key) {
    // A fork of a process that was a client of other managers holds copies of its connections:
    // they go, or those servers would not see that process end.
    drop_inherited_connections();
    // Before the socket file exists: a SIGTERM from then on ends the server cleanly.
    auto target = std::make_shared<std::weak_ptr<ServerState>>();
    install_stop_signals(target, 1);
    std::shared_ptr<ServerState> st;
    try {
        st = make_server_state(where, key);
    } catch (const std::exception& e) {
        report.send(std::string("E") + type_name(typeid(e).name()) + ": " + e.what());
        return 1;
    }
    *target = st;
    start_accepting(st);
    report.send(std::string("A") + encode(st->address));
    report.close();
    wait_for_stop(st, 1);
    finish(*st);
    // Other threads may still be inside a request: end here, without the exit-time destructors
    // they could run into. The socket file is already gone; so goes the tracker that watched it.
    sys::stop_tracker();
    std::fflush(nullptr);
    std::_Exit(0);
}
MP_TARGET(manager_server_process);

// ---- the client side ------------------------------------------------------------------------

namespace {

std::atomic<unsigned> g_fork_generation{0};
std::atomic<std::uint64_t> g_thread_counter{0};

std::uint64_t this_thread_ordinal() {
    thread_local const std::uint64_t t = ++g_thread_counter;
    return t;
}

thread_local RefFrame* t_frame = nullptr;

}  // namespace

CollectRefs::CollectRefs(std::uint64_t manager_id, std::vector<std::uint64_t>& out, std::uint64_t index) noexcept
    : frame_{manager_id, &out, index, t_frame} {
    t_frame = &frame_;
}
CollectRefs::~CollectRefs() { t_frame = frame_.saved; }

struct Ref {
    std::shared_ptr<ManagerClient> client;
    std::uint64_t id = 0;
    std::string kind;
    ~Ref();
};

class ManagerClient : public std::enable_shared_from_this<ManagerClient> {
public:
    ManagerClient(Address a, std::string key) : address_(connectable(std::move(a))), key_(std::move(key)), gen_(g_fork_generation) {}
    ~ManagerClient() = default;

    const Address& address() const { return address_; }
    const std::string& key() const { return key_; }
    std::atomic<double> default_timeout{-1};
    std::atomic<std::uint64_t> expected_manager_id{0};  // from a proxy's token: the server must be that one

    // Connects now (the anchor), so that errors show: BaseManager::connect.
    void connect_now(double timeout) {
        std::lock_guard<std::mutex> lk(mu_);
        check_usable_locked();
        ensure_session_locked(timeout, true);
    }

    std::uint64_t manager_id() {
        std::lock_guard<std::mutex> lk(mu_);
        check_usable_locked();
        ensure_session_locked(-1, false);
        return manager_id_;
    }

    // One request on a call connection of this thread's taking.
    Reply request(Request& q, double timeout, bool blocking) {
        Connection c;
        {
            std::lock_guard<std::mutex> lk(mu_);
            check_usable_locked();
            ensure_session_locked(timeout, false);
            if (!pool_.empty()) {
                c = std::move(pool_.back());
                pool_.pop_back();
            }
        }
        const unsigned gen = gen_;
        const double reply_wait = timeout < 0 ? -1 : blocking ? timeout + std::max(0.5, timeout / 4) : timeout;
        try {
            if (c.closed()) c = open(kCallConnection, timeout);
            q.thread = this_thread_ordinal();
            q.limit_ms = blocking ? to_ms(timeout) : -1;
            thread_local std::string buf;
            buf.clear();
            encode_message_to(buf, q);
            if (timeout < 0)
                c.send_bytes(buf.data(), buf.size());
            else
                c.send_bytes(buf.data(), buf.size(), timeout);
            if (reply_wait >= 0 && !c.poll(reply_wait))
                throw TimeoutError("mp::Manager: the server did not answer within " + std::to_string(timeout) + " s");
            const bytes msg = c.recv_bytes();
            Reply r = decode_message<Reply>(view_of(msg));
            std::lock_guard<std::mutex> lk(mu_);
            if (gen == gen_ && !down_ && pool_.size() < 64) pool_.push_back(std::move(c));
            return r;
        } catch (const AuthenticationError&) {
            throw;
        } catch (const TimeoutError&) {
            throw;  // the connection is dropped: its answer may still come
        } catch (const std::exception& e) {
            throw ProcessError(std::string("mp::Manager: the manager's server is gone (shut down or died): ") + e.what());
        }
    }

    // Reference bookkeeping ---------------------------------------------------------------
    void add_grants(const std::vector<std::uint64_t>& ids) {
        std::lock_guard<std::mutex> lk(mu_);
        for (std::uint64_t id : ids) {
            Entry& e = table_[id];
            ++e.server;
            ++e.pending;
        }
    }
    void settle(const std::vector<std::uint64_t>& ids) {
        std::lock_guard<std::mutex> lk(mu_);
        if (gen_ != g_fork_generation) return;  // the grants were our parent's
        for (std::uint64_t id : ids) {
            auto it = table_.find(id);
            if (it == table_.end()) continue;
            if (it->second.pending) --it->second.pending;
            drop_if_unused_locked(it);
        }
    }
    // The Ref of a newly made object (the server gave this session one reference).
    RefPtr adopt_created(std::uint64_t id, const std::string& kind) {
        auto r = std::make_shared<Ref>();
        r->client = shared_from_this();
        r->id = id;
        r->kind = kind;
        std::lock_guard<std::mutex> lk(mu_);
        Entry& e = table_[id];
        ++e.server;
        e.ref = r;
        return r;
    }
    // The Ref for a proxy decoded in this process.
    RefPtr ref_for(std::uint64_t id, const std::string& kind, std::uint64_t hold) {
        std::lock_guard<std::mutex> lk(mu_);
        check_usable_locked();
        Entry& e = table_[id];
        if (auto r = e.ref.lock()) {
            if (hold) release_hold_locked(hold, id);
            return r;
        }
        auto r = std::make_shared<Ref>();
        r->client = shared_from_this();
        r->id = id;
        r->kind = kind;
        if (e.server > 0 || e.pending > 0) {
            if (hold) release_hold_locked(hold, id);
        } else {
            ensure_session_locked(-1, false);
            Request q;
            q.id = id;
            if (hold) {
                q.kind = kMsgAdopt;
                q.i = static_cast<std::int64_t>(hold);
            } else {
                q.kind = kMsgIncref;
                q.refs.push_back(id);
            }
            const Reply a = anchor_call_locked(q);
            if (a.status != 0) throw ValueError(a.error);
            if (!hold && a.grants.empty())
                throw ValueError("mp::Manager: shared object " + std::to_string(id) + " no longer exists");
            e.server += 1;
        }
        e.ref = r;
        return r;
    }
    // A hold for a proxy about to travel elsewhere.
    std::uint64_t make_hold(std::uint64_t id) {
        std::lock_guard<std::mutex> lk(mu_);
        check_usable_locked();
        ensure_session_locked(-1, false);
        Request q;
        q.kind = kMsgHold;
        q.id = id;
        const Reply a = anchor_call_locked(q);
        if (a.status != 0) throw ValueError(a.error);
        return static_cast<std::uint64_t>(a.n);
    }
    void release(std::uint64_t id) noexcept {
        try {
            std::lock_guard<std::mutex> lk(mu_);
            if (gen_ != g_fork_generation) after_fork_locked();
            auto it = table_.find(id);
            if (it != table_.end()) drop_if_unused_locked(it);
        } catch (...) {  // a destructor: the server will free it when this process's session ends
        }
    }

    // Management requests on a connection of their own.
    Reply control(std::uint8_t kind, double timeout) {
        Request q;
        q.kind = kind;
        return request(q, timeout, false);
    }
    void shutdown_server() {
        try {
            Connection c = Client(address_, key_, 10.0);
            Request q;
            q.kind = kMsgShutdown;
            c.send(q);
            if (c.poll(10.0)) (void)c.recv_bytes();
        } catch (const std::exception&) {  // gone already
        }
    }
    void mark_down() {
        std::lock_guard<std::mutex> lk(mu_);
        down_ = true;
        anchor_ = Connection();
        pool_.clear();
    }
    bool down() {
        std::lock_guard<std::mutex> lk(mu_);
        return down_;
    }
    void renew_lock_after_fork() { new (&mu_) std::mutex; }
    void drop_connections() {
        std::lock_guard<std::mutex> lk(mu_);
        if (gen_ != g_fork_generation) after_fork_locked();
    }

private:
    struct Entry {
        std::weak_ptr<Ref> ref;
        std::uint64_t server = 0;   // references the server holds for our session
        std::uint64_t pending = 0;  // of them, granted by answers still being decoded
    };

    void check_usable_locked() {
        if (gen_ != g_fork_generation) after_fork_locked();
        if (down_) throw ProcessError("mp::Manager: the manager has been shut down");
    }

    // A fork child: the connections are our parent's (their copies close here, the parent's
    // stay), and so is the session; a new one is made at the next use, taking references to
    // every object this process holds proxies to.
    void after_fork_locked() {
        gen_ = g_fork_generation;
        anchor_ = Connection();
        pool_.clear();
        session_ = 0;
        for (auto it = table_.begin(); it != table_.end();) {
            it->second.server = it->second.pending = 0;
            if (it->second.ref.expired())
                it = table_.erase(it);
            else
                ++it;
        }
        reincref_ = true;
    }

    void drop_if_unused_locked(std::unordered_map<std::uint64_t, Entry>::iterator it) {
        Entry& e = it->second;
        if (!e.ref.expired() || e.pending) return;
        if (e.server && !anchor_.closed() && !down_) {
            Request q;
            q.kind = kMsgDecref;
            q.refs = {it->first, e.server};
            send_anchor_locked(q);
        }
        table_.erase(it);
    }

    void release_hold_locked(std::uint64_t hold, std::uint64_t id) {
        if (anchor_.closed() || down_) return;
        Request q;
        q.kind = kMsgRelease;
        q.i = static_cast<std::int64_t>(hold);
        q.id = id;
        send_anchor_locked(q);
    }

    void send_anchor_locked(const Request& q) {
        try {
            std::string buf;
            encode_message_to(buf, q);
            anchor_.send_bytes(buf.data(), buf.size(), 5.0);
        } catch (const std::exception&) {
            anchor_ = Connection();
            lost_ = true;
        }
    }

    Reply anchor_call_locked(const Request& q) {
        try {
            std::string buf;
            encode_message_to(buf, q);
            anchor_.send_bytes(buf.data(), buf.size(), 30.0);
            if (!anchor_.poll(30.0)) throw TimeoutError("no answer within 30 s");
            const bytes msg = anchor_.recv_bytes();
            return decode_message<Reply>(view_of(msg));
        } catch (const std::exception& e) {
            anchor_ = Connection();
            lost_ = true;
            throw ProcessError(std::string("mp::Manager: the manager's server is gone (shut down or died): ") + e.what());
        }
    }

    Connection open(std::int64_t role, double timeout) {
        std::uint64_t session;
        {
            std::lock_guard<std::mutex> lk(mu_);
            session = session_;
        }
        return open_with(role, session, timeout);
    }

    Connection open_with(std::int64_t role, std::uint64_t session, double timeout) {
        Connection c = Client(address_, key_, timeout < 0 ? 30.0 : timeout);
        Request q;
        q.kind = kMsgHello;
        q.i = static_cast<std::int64_t>(session);
        q.j = role;
        c.send(q);
        if (!c.poll(timeout < 0 ? 30.0 : timeout)) throw TimeoutError("mp::Manager: the server did not answer the hello");
        const bytes msg = c.recv_bytes();
        const Reply r = decode_message<Reply>(view_of(msg));
        if (r.status != 0) throw ProcessError("mp::Manager: the server refused the connection: " + r.error);
        const auto mid = static_cast<std::uint64_t>(r.n);
        const std::uint64_t expected = expected_manager_id;
        if (expected && mid != expected)
            throw ProcessError("mp::Manager: the server at " + address_.to_string() +
                               " is not the manager this proxy belongs to (was it restarted?)");
        manager_id_seen_ = mid;
        return c;
    }

    // Makes this process's session (the anchor) if there is none yet.
    void ensure_session_locked(double timeout, bool rethrow_raw) {
        if (!anchor_.closed()) return;
        if (lost_) throw ProcessError("mp::Manager: the connection to the manager's server was lost (it shut down or died)");
        const std::uint64_t s = random_u64();
        try {
            anchor_ = open_with(kAnchor, s, timeout);
        } catch (const AuthenticationError&) {
            throw;
        } catch (const TimeoutError&) {
            throw;
        } catch (const ProcessError&) {
            throw;
        } catch (const std::exception& e) {
            if (rethrow_raw) throw;
            throw ProcessError(std::string("mp::Manager: cannot reach the manager's server: ") + e.what());
        }
        session_ = s;
        manager_id_ = manager_id_seen_;
        remember(manager_id_, address_, key_);
        {
            std::lock_guard<std::mutex> klk(known_mu());
            known()[manager_id_].client = weak_from_this();
        }
        if (reincref_) {
            reincref_ = false;
            Request q;
            q.kind = kMsgIncref;
            for (auto& kv : table_)
                if (!kv.second.ref.expired()) q.refs.push_back(kv.first);
            if (!q.refs.empty()) {
                const Reply a = anchor_call_locked(q);
                for (std::uint64_t id : a.grants) table_[id].server += 1;
            }
        }
    }

    std::mutex mu_;
    Address address_;
    std::string key_;
    unsigned gen_;
    std::uint64_t session_ = 0;
    std::uint64_t manager_id_ = 0;
    std::uint64_t manager_id_seen_ = 0;
    Connection anchor_;
    std::vector<Connection> pool_;
    std::unordered_map<std::uint64_t, Entry> table_;
    bool down_ = false;
    bool lost_ = false;      // the anchor broke: the session (and its references) is gone
    bool reincref_ = false;  // a fork child that must take its own references
};

Ref::~Ref() {
    if (client) client->release(id);
}

namespace {

// One client per manager per process, however many proxies arrive. The registry and the
// clients' locks are made new in a fork child: another thread of the parent may have held one
// of them at the fork, and nobody would ever release the child's copy.
std::mutex& clients_mu() {
    static std::mutex* m = new std::mutex;
    return *m;
}
std::map<std::string, std::weak_ptr<ManagerClient>>& clients() {
    static auto* c = new std::map<std::string, std::weak_ptr<ManagerClient>>;
    return *c;
}

void after_fork_in_child() {
    new (&clients_mu()) std::mutex;
    new (&known_mu()) std::mutex;
    ++g_fork_generation;
    for (auto& entry : clients())
        if (auto c = entry.second.lock()) c->renew_lock_after_fork();
}

std::shared_ptr<ManagerClient> client_for(const Address& a, const std::string& key) {
    static const bool hooked = [] {
        sys::at_fork_in_child(after_fork_in_child);
        return true;
    }();
    (void)hooked;
    std::lock_guard<std::mutex> lk(clients_mu());
    const Address where = connectable(a);
    std::weak_ptr<ManagerClient>& slot = clients()[where.to_string() + '\n' + key];
    std::shared_ptr<ManagerClient> c = slot.lock();
    if (!c) {
        c = std::make_shared<ManagerClient>(where, key);
        slot = c;
    }
    return c;
}

}  // namespace

// In a fork child (a manager's server): every client's connections are its parent's.
void drop_inherited_connections() {
    std::vector<std::shared_ptr<ManagerClient>> all;
    {
        std::lock_guard<std::mutex> lk(clients_mu());
        for (auto& entry : clients())
            if (auto c = entry.second.lock()) all.push_back(std::move(c));
    }
    for (auto& c : all) c->drop_connections();
}

namespace {

// The client for a proxy's token: the live one for that manager, else one by the token's
// address and key (or a key this process knows for that manager).
std::shared_ptr<ManagerClient> client_for_token(std::uint64_t manager_id, const Address& a, const std::string& key) {
    Address where = a;
    std::string k = key;
    {
        std::lock_guard<std::mutex> lk(known_mu());
        auto it = known().find(manager_id);
        if (it != known().end()) {
            if (auto c = it->second.client.lock()) return c;
            if (k.empty()) {
                k = it->second.key;
                where = it->second.address;
            }
        }
    }
    if (k.empty())
        throw AuthenticationError("mp::Manager: a proxy of the manager at " + a.to_string() +
                                  " arrived without its authkey, and this process has not connected to that manager");
    auto c = client_for(where, k);
    c->expected_manager_id = manager_id;
    return c;
}

}  // namespace

[[noreturn]] void throw_remote(const std::string& type, const std::string& msg);

// Whether type id `kind` is one of `kinds` ("Lock|RLock|..."; empty: any).
bool kind_matches(const char* kinds, const std::string& kind) {
    if (kinds == nullptr || *kinds == '\0') return true;
    for (const char* p = kinds; *p;) {
        const char* bar = std::strchr(p, '|');
        const std::size_t n = bar ? static_cast<std::size_t>(bar - p) : std::strlen(p);
        if (kind.size() == n && kind.compare(0, n, p, n) == 0) return true;
        p = bar ? bar + 1 : p + n;
    }
    return false;
}

// ---- Result, ProxyBase ------------------------------------------------------------------------

Result::~Result() {
    if (client_ && !grants_.empty()) client_->settle(grants_);
}

std::uint64_t ProxyBase::id() const {
    if (!ref_) throw ValueError("mp::Manager proxy: this proxy refers to no object");
    return ref_->id;
}
std::string ProxyBase::type_id() const {
    if (!ref_) throw ValueError("mp::Manager proxy: this proxy refers to no object");
    return ref_->kind;
}
Address ProxyBase::address() const {
    if (!ref_) throw ValueError("mp::Manager proxy: this proxy refers to no object");
    return ref_->client->address();
}
double call_wait(const std::optional<double>& seconds, const char* api) {
    if (!seconds) return -1;
    check_timeout(*seconds, api);
    return *seconds;
}

void ProxyBase::set_timeout(std::optional<double> seconds) { timeout_ = call_wait(seconds, "mp::Manager proxy: set_timeout"); }
std::uint64_t ProxyBase::manager_id() const { return ref_ ? ref_->client->manager_id() : 0; }

Result ProxyBase::invoke(Call& c) const {
    if (!ref_) throw ValueError("mp::Manager proxy: this proxy refers to no object (default-constructed or moved from)");
    ManagerClient& client = *ref_->client;
    Request q;
    q.kind = kMsgCall;
    q.id = ref_->id;
    q.op = c.op;
    q.name = std::move(c.name);
    q.a = std::move(c.a);
    q.b = std::move(c.b);
    q.i = c.i;
    q.j = c.j;
    q.list = std::move(c.list);
    q.refs = std::move(c.refs);
    q.wait_ms = to_ms(c.wait);
    const double timeout = timeout_ >= -1 ? timeout_ : client.default_timeout.load();
    Reply r = client.request(q, timeout, c.blocking);
    Result out;
    if (!r.grants.empty()) {
        client.add_grants(r.grants);
        out.client_ = ref_->client;
        out.grants_ = std::move(r.grants);
    }
    if (r.status != 0) throw_remote(r.etype, r.error);
    out.value = std::move(r.value);
    out.list = std::move(r.list);
    out.n = r.n;
    return out;
}

void ProxyBase::mp_encode(Encoder& e) const {
    if (!ref_) throw ValueError("mp::Manager proxy: this proxy refers to no object");
    ManagerClient& c = *ref_->client;
    const std::uint64_t mid = c.manager_id();
    std::uint64_t hold = 0;
    std::string key;
    RefFrame* f = t_frame;
    if (f && f->manager_id == mid) {
        // Stored in its own manager: the request names the object, the server holds it for the
        // value, and whoever reads it back is a client of that manager already.
        f->out->push_back(f->index);
        f->out->push_back(ref_->id);
    } else {
        hold = c.make_hold(ref_->id);
        key = c.key();
    }
    e.write(mid);
    e.write(c.address());
    e.write(key);
    e.write(ref_->id);
    e.write(ref_->kind);
    e.write(hold);
}

void ProxyBase::mp_decode(Decoder& d) {
    const auto mid = d.read<std::uint64_t>();
    const auto a = d.read<Address>();
    const auto key = d.read<std::string>();
    const auto id = d.read<std::uint64_t>();
    const auto kind = d.read<std::string>();
    const auto hold = d.read<std::uint64_t>();
    if (!kind_matches(kinds_, kind)) throw DecodeError("mp::Manager proxy: a proxy to a " + kind + " cannot be decoded as a proxy to a " + kinds_, d.offset());
    auto c = client_for_token(mid, a, key);
    ref_ = c->ref_for(id, kind, hold);
}

[[noreturn]] void throw_remote(const std::string& type, const std::string& msg) {
    const std::string t = type.compare(0, 4, "mp::") == 0 ? type.substr(4) : type;
    if (t == "KeyError") throw KeyError(msg);
    if (t == "IndexError") throw IndexError(msg);
    if (t == "LookupError") throw LookupError(msg);
    if (t == "ValueError") throw ValueError(msg);
    if (t == "TypeError") throw TypeError(msg);
    if (t == "RuntimeError") throw RuntimeError(msg);
    if (t == "NotImplementedError") throw NotImplementedError(msg);
    if (t == "AttributeError") throw AttributeError(msg);
    if (t == "TimeoutError") throw TimeoutError(msg);
    if (t == "ProcessError") throw ProcessError(msg);
    if (t == "AuthenticationError") throw AuthenticationError(msg);
    if (t == "EOFError") throw EOFError(msg);
    if (t == "queue::Empty") throw queue::Empty(msg);
    if (t == "queue::Full") throw queue::Full(msg);
    if (t == "OwnerDeadError") throw OwnerDeadError(msg);
    if (t == "BrokenBarrierError") throw BrokenBarrierError(msg);
    throw RemoteError(type, msg);
}

// ---- registered types -------------------------------------------------------------------------

void register_managed_type(ManagedType t) {
    TypeRegistry& r = type_registry();
    std::lock_guard<std::mutex> lk(r.mu);
    // One MP_MANAGED line in a header, seen by several translation units, registers once.
    std::string name = t.name;
    r.types.emplace(std::move(name), std::make_unique<ManagedType>(std::move(t)));
}

std::vector<std::string> split_method_names(const char* list) {
    std::vector<std::string> out;
    std::string cur;
    for (const char* p = list;; ++p) {
        if (*p == ',' || *p == '\0') {
            out.push_back(cur);
            cur.clear();
            if (*p == '\0') break;
        } else if (*p != ' ' && *p != '\t' && *p != '\n') {
            cur += *p;
        }
    }
    return out;
}

}  // namespace detail

// ---- ManagerServer --------------------------------------------------------------------------

ManagerServer::ManagerServer(ManagerServer&&) noexcept = default;
ManagerServer& ManagerServer::operator=(ManagerServer&& o) noexcept {
    if (this != &o) {
        if (s_) detail::finish(*s_);
        s_ = std::move(o.s_);
    }
    return *this;
}
ManagerServer::~ManagerServer() {
    if (s_) detail::finish(*s_);
}

void ManagerServer::serve_forever(bool stop_on_signals) {
    if (!s_) throw ValueError("mp::ManagerServer: this server object is empty (moved from)");
    if (s_->finished) throw ProcessError("mp::ManagerServer::serve_forever: this server has stopped");
    if (stop_on_signals) detail::install_stop_signals(std::make_shared<std::weak_ptr<detail::ServerState>>(s_), 2);
    detail::wait_for_stop(s_, stop_on_signals ? 2 : 0);
    detail::finish(*s_);
}

void ManagerServer::stop() {
    if (s_) detail::request_stop(*s_);
}

Address ManagerServer::address() const {
    if (!s_) throw ValueError("mp::ManagerServer: this server object is empty (moved from)");
    return s_->address;
}

// ---- BaseManager ------------------------------------------------------------------------------

namespace detail {

struct ManagerState {
    enum class Phase { initial, started, connected, shut_down };
    Address address;
    bool address_given = false;
    std::string key;
    std::string method;  // the context's start method
    Phase phase = Phase::initial;
    Process server;
    std::shared_ptr<ManagerClient> client;
    double call_timeout = -1;
    int owner_pid = 0;  // the process that started the server: only it shuts it down
};

}  // namespace detail

using detail::ManagerState;
using Phase = detail::ManagerState::Phase;

BaseManager::BaseManager() : BaseManager(get_context()) {}

BaseManager::BaseManager(const Context& ctx) : s_(std::make_unique<ManagerState>()) {
    s_->method = ctx.get_start_method();
}

BaseManager::BaseManager(const Address& address, std::string authkey) : BaseManager(address, std::move(authkey), get_context()) {}

BaseManager::BaseManager(const Address& address, std::string authkey, const Context& ctx) : BaseManager(ctx) {
    s_->address = address;
    s_->address_given = true;
    s_->key = std::move(authkey);
}

BaseManager::BaseManager(BaseManager&&) noexcept = default;
BaseManager& BaseManager::operator=(BaseManager&& o) noexcept {
    if (this != &o) {
        try {
            shutdown();
        } catch (...) {
        }
        s_ = std::move(o.s_);
    }
    return *this;
}

BaseManager::~BaseManager() {
    if (!s_) return;
    try {
        shutdown();
    } catch (...) {
    }
}

namespace {
void check_initial(const ManagerState& s, const char* what) {
    if (s.phase == Phase::started) throw ProcessError(std::string(what) + ": the manager is started already");
    if (s.phase == Phase::connected) throw ProcessError(std::string(what) + ": the manager is connected already");
    if (s.phase == Phase::shut_down) throw ProcessError(std::string(what) + ": the manager has shut down");
}
ManagerState& state_of(const std::unique_ptr<ManagerState>& s) {
    if (!s) throw ValueError("mp::BaseManager: moved from");
    return *s;
}
}  // namespace

void BaseManager::start() {
    ManagerState& s = state_of(s_);
    check_initial(s, "mp::BaseManager::start");
    if (s.key.empty()) s.key = detail::random_key();
    const Address where = s.address_given ? s.address : arbitrary_address(default_family());
    auto [from_server, to_parent] = Pipe(false);
    const Context& ctx = get_context(s.method);
    s.server = ctx.Process(detail::manager_server_process, to_parent, where, s.key);
    s.server.set_name("SyncManager-" + std::to_string(mp::getpid()));
    s.server.set_daemon(true);  // it must not outlive us
    s.server.start();
    to_parent.close();
    std::string report;
    try {
        if (!from_server.poll(60.0)) throw ProcessError("mp::BaseManager::start: the server process did not start within 60 s");
        report = from_server.recv<std::string>();
    } catch (const EOFError&) {
        s.server.join(5.0);
        throw ProcessError("mp::BaseManager::start: the server process ended before it listened (exit code " +
                           std::to_string(s.server.exitcode().value_or(-1)) + ")");
    } catch (...) {
        s.server.kill();
        s.server.join();
        throw;
    }
    if (report.empty() || report[0] != 'A') {
        s.server.join(5.0);
        throw ProcessError("mp::BaseManager::start: the server could not listen on " + where.to_string() + ": " +
                           (report.empty() ? std::string("no reason given") : report.substr(1)));
    }
    s.address = decode<Address>(std::string_view(report).substr(1));
    s.client = detail::client_for(s.address, s.key);
    s.client->default_timeout = s.call_timeout;
    s.owner_pid = mp::getpid();
    s.phase = Phase::started;
}

void BaseManager::connect(double timeout) {
    ManagerState& s = state_of(s_);
    check_initial(s, "mp::BaseManager::connect");
    if (!s.address_given) throw ValueError("mp::BaseManager::connect: give the server's address");
    if (s.key.empty()) throw ValueError("mp::BaseManager::connect: give the server's authkey");
    auto c = detail::client_for(s.address, s.key);
    c->connect_now(timeout);
    c->default_timeout = s.call_timeout;
    s.client = std::move(c);
    s.phase = Phase::connected;
}

ManagerServer BaseManager::get_server() {
    ManagerState& s = state_of(s_);
    check_initial(s, "mp::BaseManager::get_server");
    if (s.key.empty()) s.key = detail::random_key();
    const Address where = s.address_given ? s.address : arbitrary_address(default_family());
    auto st = detail::make_server_state(where, s.key);
    detail::start_accepting(st);
    s.address = st->address;
    s.address_given = true;
    return ManagerServer(std::move(st));
}

void BaseManager::shutdown(double timeout) {
    if (!s_) return;
    ManagerState& s = *s_;
    if (s.phase == Phase::connected) {
        s.client.reset();  // the proxies keep the connection while they live
        s.phase = Phase::shut_down;
        return;
    }
    if (s.phase != Phase::started) return;
    s.phase = Phase::shut_down;
    if (s.owner_pid != mp::getpid()) {  // a fork child's copy of the manager: the server is not ours
        s.client.reset();
        return;
    }
    s.client->shutdown_server();
    s.client->mark_down();
    s.server.join(timeout);
    if (s.server.is_alive()) {
        s.server.kill();
        s.server.join();
    }
    // A server killed (or dead) before it removed its socket file leaves it: remove it here.
    if (s.address.family == AddressFamily::unix_socket) std::remove(s.address.path.c_str());
}

void BaseManager::shutdown_server() {
    ManagerState& s = state_of(s_);
    if (!s.client) throw ProcessError("mp::BaseManager::shutdown_server: not started or connected");
    s.client->shutdown_server();
}

Address BaseManager::address() const { return state_of(s_).address; }
const std::string& BaseManager::authkey() const { return state_of(s_).key; }
bool BaseManager::started() const noexcept {
    return s_ && (s_->phase == Phase::started || s_->phase == Phase::connected);
}

void BaseManager::set_call_timeout(std::optional<double> seconds) {
    ManagerState& s = state_of(s_);
    s.call_timeout = detail::call_wait(seconds, "mp::BaseManager::set_call_timeout");
    if (s.client) s.client->default_timeout = s.call_timeout;
}

namespace {
std::shared_ptr<detail::ManagerClient> live_client(const std::unique_ptr<ManagerState>& sp, const char* what) {
    ManagerState& s = state_of(sp);
    if (s.phase == Phase::shut_down) throw ProcessError(std::string(what) + ": the manager has been shut down");
    if (!s.client) throw ProcessError(std::string(what) + ": the manager is neither started nor connected");
    return s.client;
}
}  // namespace

std::uint64_t BaseManager::manager_id() { return live_client(s_, "mp::BaseManager")->manager_id(); }

detail::RefPtr BaseManager::create_builtin(const char* type_id, detail::Call& c) {
    auto client = live_client(s_, "mp::BaseManager::create");
    detail::Request q;
    q.kind = detail::kMsgCreate;
    q.name = type_id ? std::string(type_id) : std::move(c.name);
    q.a = std::move(c.a);
    q.i = c.i;
    q.j = c.j;
    q.list = std::move(c.list);
    q.refs = std::move(c.refs);
    q.wait_ms = detail::to_ms(c.wait);
    detail::Reply r = client->request(q, client->default_timeout, false);
    if (r.status != 0) detail::throw_remote(r.etype, r.error);
    return client->adopt_created(static_cast<std::uint64_t>(r.n), q.name);
}

void BaseManager::publish(const std::string& name, const detail::ProxyBase& p) {
    auto client = live_client(s_, "mp::BaseManager::publish");
    if (!p.valid()) throw ValueError("mp::BaseManager::publish: the proxy refers to no object");
    if (manager_id_of(p) != client->manager_id()) throw ValueError("mp::BaseManager::publish: the proxy belongs to another manager");
    detail::Request q;
    q.kind = detail::kMsgPublish;
    q.a = name;
    q.id = p.id();
    detail::Reply r = client->request(q, client->default_timeout, false);
    if (r.status != 0) detail::throw_remote(r.etype, r.error);
}

void BaseManager::unpublish(const std::string& name) {
    auto client = live_client(s_, "mp::BaseManager::unpublish");
    detail::Request q;
    q.kind = detail::kMsgUnpublish;
    q.a = name;
    detail::Reply r = client->request(q, client->default_timeout, false);
    if (r.status != 0) detail::throw_remote(r.etype, r.error);
}

std::vector<std::string> BaseManager::published() {
    auto client = live_client(s_, "mp::BaseManager::published");
    detail::Request q;
    q.kind = detail::kMsgLookup;
    q.i = 1;
    detail::Reply r = client->request(q, client->default_timeout, false);
    if (r.status != 0) detail::throw_remote(r.etype, r.error);
    return std::move(r.list);
}

detail::RefPtr BaseManager::lookup_ref(const std::string& name, const char* kinds) {
    auto client = live_client(s_, "mp::BaseManager::lookup");
    detail::Request q;
    q.kind = detail::kMsgLookup;
    q.a = name;
    detail::Reply r = client->request(q, client->default_timeout, false);
    if (r.status != 0) detail::throw_remote(r.etype, r.error);
    client->add_grants(r.grants);
    detail::Result settle;  // gives the grant back unless the Ref below takes it
    settle.client_ = client;
    settle.grants_ = r.grants;
    if (!detail::kind_matches(kinds, r.value))
        throw TypeError("mp::BaseManager::lookup: '" + name + "' is a " + r.value + ", not a " + kinds);
    return client->ref_for(static_cast<std::uint64_t>(r.n), r.value, 0);
}

std::size_t BaseManager::number_of_objects() {
    auto client = live_client(s_, "mp::BaseManager::number_of_objects");
    return static_cast<std::size_t>(client->control(detail::kMsgInfo, client->default_timeout).n);
}

std::string BaseManager::debug_info() {
    auto client = live_client(s_, "mp::BaseManager::debug_info");
    return client->control(detail::kMsgInfo, client->default_timeout).value;
}

// ---- SyncManager, Manager ---------------------------------------------------------------------

NamespaceProxy SyncManager::Namespace() {
    detail::Call c;
    return NamespaceProxy(create_builtin("Namespace", c));
}
QueueProxy SyncManager::Queue(long maxsize) {
    detail::Call c;
    c.i = maxsize;
    return QueueProxy(create_builtin("Queue", c));
}
JoinableQueueProxy SyncManager::JoinableQueue(long maxsize) {
    detail::Call c;
    c.i = maxsize;
    return JoinableQueueProxy(create_builtin("JoinableQueue", c));
}
AcquirerProxy SyncManager::Lock() {
    detail::Call c;
    return AcquirerProxy(create_builtin("Lock", c));
}
AcquirerProxy SyncManager::RLock() {
    detail::Call c;
    return AcquirerProxy(create_builtin("RLock", c));
}
AcquirerProxy SyncManager::Semaphore(int value) {
    detail::Call c;
    c.i = value;
    return AcquirerProxy(create_builtin("Semaphore", c));
}
AcquirerProxy SyncManager::BoundedSemaphore(int value) {
    detail::Call c;
    c.i = value;
    return AcquirerProxy(create_builtin("BoundedSemaphore", c));
}
ConditionProxy SyncManager::Condition() {
    detail::Call c;
    return ConditionProxy(create_builtin("Condition", c));
}
ConditionProxy SyncManager::Condition(const AcquirerProxy& lock) {
    if (!lock.valid()) throw ValueError("mp::SyncManager::Condition: the lock proxy refers to no object");
    if (manager_id_of(lock) != manager_id() || (lock.type_id() != "Lock" && lock.type_id() != "RLock"))
        throw ValueError("mp::SyncManager::Condition: the lock must be a Lock or RLock of this manager");
    detail::Call c;
    c.j = static_cast<std::int64_t>(lock.id());
    return ConditionProxy(create_builtin("Condition", c));
}
EventProxy SyncManager::Event() {
    detail::Call c;
    return EventProxy(create_builtin("Event", c));
}
BarrierProxy SyncManager::Barrier(int parties, std::optional<double> timeout) {
    detail::Call c;
    c.i = parties;
    c.wait = detail::call_wait(timeout, "mp::SyncManager::Barrier");
    return BarrierProxy(create_builtin("Barrier", c));
}

Manager::Manager() : Manager(get_context()) {}
Manager::Manager(const Context& ctx) : SyncManager(ctx) { start(); }
Manager::Manager(const Address& address, std::string authkey, const Context& ctx)
    : SyncManager(address, std::move(authkey), ctx) {
    start();
}

}  // namespace mp
