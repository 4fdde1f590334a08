// mp/managers.hpp - the C++ counterpart of multiprocessing.managers: a server that holds objects,
// and proxies through which other processes, other programs and other hosts use them.
//
//     mp::Manager m;                                     // a started SyncManager (server process)
//     auto accounts = m.dict<std::string, int>();        // DictProxy
//     auto lock = m.Lock();                              // AcquirerProxy: a lock in the server
//     mp::Process p = ctx.Process(deposit, accounts, lock);   // proxies are Process arguments
//     { std::lock_guard<mp::AcquirerProxy> g(lock); accounts["bank"] = accounts["bank"] + 100; }
//
//     // Another program, maybe on another host (CPython's "Using a remote manager"):
//     mp::SyncManager server(mp::Address::tcp("0.0.0.0", 50000), "abracadabra");
//     server.get_server().serve_forever();                          // program 1
//     mp::SyncManager client(mp::Address::tcp("server-host", 50000), "abracadabra");
//     client.connect();                                             // program 2
//     auto q = client.Queue();  ... or objects the server program made and published
//
// Which object to use: mp has two kinds of shared objects, and they are not interchangeable.
//   mp::Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event, Barrier, Queue,
//   JoinableQueue, Value, Array, SharedMemory (mp/synchronize.hpp, queues.hpp, value.hpp, ...)
//       live in shared memory of this machine. Fast (a lock is ~10 ns, a queue item ~0.2 us),
//       and they survive a killed holder (OwnerDeadError). They reach only the processes that
//       receive them as Process arguments (or inherit them by fork): the processes of your own
//       program on this machine. Use them whenever that is enough.
//   manager.Lock(), RLock(), Semaphore(), BoundedSemaphore(), Condition(), Event(), Barrier(),
//   Queue(), JoinableQueue(), Value(), Array(), dict(), list(), set(), Namespace()
//       live in the manager's server and are used through proxies, one request per call
//       (~10 us on one machine, a network round trip from another). They work for every
//       client of the manager: children under any start method, other programs that connect(),
//       other hosts over TCP. Use them when processes you did not start (or that run elsewhere)
//       must share the object, or for containers (dict, list, set, Namespace), which have no
//       shared-memory form.
//
// Servers and clients (Python's BaseManager):
//   start()                       runs the server in a new process (the manager's start method;
//                                 that process ends with shutdown(), the destructor, or this
//                                 process: it is a daemon)
//   get_server().serve_forever()  serves from the calling thread, until a client calls
//                                 shutdown_server(), another thread calls stop(), or (by
//                                 default) SIGINT / SIGTERM arrive; then it returns
//   connect()                     uses a server that runs elsewhere (address and authkey given)
//   The manager object is the scope guard: destroying a started manager shuts its server down;
//   destroying a connected one closes this process's connections (the server goes on).
//
// Security (as CPython's docs say): every connection to a manager runs the HMAC-SHA256
// challenge of mp::Listener with the manager's authkey, both ways, before any request is read;
// the authkey is the only protection, and a client that holds it is trusted completely (it can
// read and change every object, call every registered method, and stop the server). A TCP
// manager binds to loopback unless you give another address ("" and port 0 mean 127.0.0.1 and
// a free port; use "0.0.0.0" to listen on every interface, and then keep the key secret and
// the network trusted: the traffic is authenticated, not encrypted). A started manager without
// a key gets a random one (32 bytes); connect() needs the key. A proxy that is encoded for
// anywhere but its own manager (a Process argument, a mp::Queue item, a Pipe message, a pool
// task) carries the key with it, so that the receiver can use it: treat an encoded proxy like the
// key. The server refuses bad input at the cost of that connection alone: a client that sends
// garbage, oversized or truncated requests, or dies in the middle of one, loses its connection
// and its references, and the server goes on; a client that connects and says nothing is
// dropped after the handshake limit (10 s) without holding up anyone else.
//
// Proxies (DictProxy, ListProxy, ...) feel like Python's: d[k] reads and d[k] = v writes (an
// element proxy), items()/keys()/values() come in insertion order, iteration walks a snapshot,
// and the methods CPython 3.14's proxies expose are there. Each call is one request and is
// atomic; a read followed by a write is two (d[k] = d[k] + 1 needs a lock around it, exactly as
// in Python). Keys, set elements and list items compare by their encoding (mp/codec.hpp), so
// -0.0 and 0.0 are different keys. Errors come back with their Python names: KeyError,
// IndexError, ValueError, queue::Empty/Full, BrokenBarrierError ...; an exception thrown by a
// registered type's method comes back as that mp exception type when it is one of mp's
// (mp/errors.hpp), else as RemoteError with its type name and message. A server that is gone
// is ProcessError. Every call has a timeout form: p.with_timeout(seconds).method(...) (or
// mp::with_timeout(p, s)) bounds the whole call, TimeoutError after it, and
// manager.set_call_timeout(s) sets a default for the proxies of that manager in this process;
// blocking methods (get, acquire, wait, join) also take their own timeouts, as in Python.
//
// Threads: proxies, their copies and the manager's factories (dict(), Queue(), create<T>() ...)
// may be used from any number of threads at once; a thread blocked in a call (q.get()) holds
// up no other. start(), connect(), get_server(), shutdown() and moving the manager belong to
// the thread that owns the manager object. ManagerServer::stop() may come from any thread.
//
// Lifetime: objects are reference-counted across processes. A proxy holds a reference; copies
// of a proxy in one process share it; a proxy sent to another process (or stored in a managed
// container: nested proxies) takes its own. An object is freed when the last reference to it
// in any process is gone (manager.number_of_objects() counts them), and a process that ends,
// or dies, releases all of its references (the server sees its connection close). A cycle
// (a list that contains a proxy to itself) lives until the server ends.
//
// Your own types (Python's register(typeid, callable, exposed=...)):
//     struct Counter { int n = 0; int add(int k) { return n += k; } int get() const { return n; } };
//     MP_MANAGED(Counter, add, get);      // at namespace scope, in Counter's namespace
//     auto c = manager.create<Counter>(); // Proxy<Counter>; c.call<&Counter::add>(5) == 5
// The server program and every client must contain the same MP_MANAGED line (the type id is
// its first argument as written). Calls are checked at compile time: the method must be in the
// list, the arguments must convert to its parameters, and parameters and result must be
// encodable. MP_MANAGED_FACTORY(T, make_t, methods...) makes objects with make_t(args...)
// (its parameters are create's), as Python's callable. Calls to one object run one at a time.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "barrier.hpp"
#include "codec.hpp"
#include "context.hpp"
#include "duration.hpp"
#include "errors.hpp"
#include "listener.hpp"
#include "pool.hpp"
#include "portability.hpp"
#include "queues.hpp"

namespace mp {

class BaseManager;
class SyncManager;
class Manager;
class ManagerServer;

// A name that an object does not have (Python's AttributeError), e.g. a Namespace attribute.
class AttributeError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {

class ManagerClient;
struct Ref;  // one process's reference to one object of one manager (managers.cpp)
using RefPtr = std::shared_ptr<Ref>;

// The builtin operations; user types' methods go by name (kUserCall).
enum Op : std::uint16_t {
    kOpNone = 0,
    // dict
    kDictGet, kDictGetOpt, kDictSet, kDictDel, kDictContains, kDictLen, kDictKeys, kDictValues,
    kDictItems, kDictReversed, kDictClear, kDictPop, kDictPopOpt, kDictPopItem, kDictSetDefault,
    kDictUpdate,
    // list
    kListGet, kListSlice, kListSet, kListSetSlice, kListDel, kListDelSlice, kListLen, kListAppend,
    kListExtend, kListInsert, kListPop, kListRemove, kListIndex, kListCount, kListContains,
    kListClear, kListReverse, kListAll, kListMulAssign, kListAllVersioned, kListReplaceIfVersion,
    // set
    kSetAdd, kSetDiscard, kSetRemove, kSetPop, kSetClear, kSetContains, kSetLen, kSetAll,
    kSetUpdate, kSetIntersectionUpdate, kSetDifferenceUpdate, kSetSymmetricDifferenceUpdate,
    kSetUnion, kSetIntersection, kSetDifference, kSetSymmetricDifference, kSetIsDisjoint,
    kSetIsSubset, kSetIsSuperset, kSetIsProperSubset, kSetIsProperSuperset,
    // Value, Array, Namespace
    kValueGet, kValueSet, kArrayGet, kArraySet, kArrayLen, kArrayAll,
    kNsGet, kNsSet, kNsDel, kNsHas, kNsNames,
    // Queue, JoinableQueue
    kQueuePut, kQueueGet, kQueueSize, kQueueEmpty, kQueueFull, kQueueTaskDone, kQueueJoin,
    kQueueMaxsize,
    // Lock, RLock, Semaphore, BoundedSemaphore, Condition
    kAcquire, kRelease, kLocked, kSemValue, kCondWait, kCondNotify, kCondNotifyAll,
    // Event, Barrier
    kEventIsSet, kEventSet, kEventClear, kEventWait,
    kBarrierWait, kBarrierAbort, kBarrierReset, kBarrierParties, kBarrierNWaiting, kBarrierBroken,
    // a registered type's method
    kUserCall,
};

// One request as a proxy builds it. The values the server may keep (the single value a/b of a
// set-like op, or the elements of list) are numbered in that order; refs lists the managed
// objects (of this manager) that each value contains, as (value number, object id) pairs.
struct Call {
    std::uint16_t op = kOpNone;
    std::string name;
    std::string a, b;
    std::int64_t i = 0, j = 0;
    std::vector<std::string> list;
    std::vector<std::uint64_t> refs;
    double wait = -1;       // seconds a blocking op may wait in the server (< 0: no limit)
    bool blocking = false;  // the op may wait in the server
};

// A public timeout (mp/duration.hpp: std::nullopt for no limit, a negative one a ValueError
// naming `api`) as Call::wait's seconds.
double call_wait(const std::optional<double>& seconds, const char* api);

// An answer. References that arrived inside its values (nested proxies) are held for this
// process until it is destroyed; a proxy decoded from the values in the meantime takes them.
class Result {
public:
    Result() = default;
    Result(Result&& o) noexcept = default;
    Result& operator=(Result&& o) noexcept = default;
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result();

    std::string value;
    std::vector<std::string> list;
    std::int64_t n = 0;

    std::shared_ptr<ManagerClient> client_;
    std::vector<std::uint64_t> grants_;
};

// While one lives on a thread, proxies of manager `manager_id` encoded there write no hold
// (the request they travel in names them in Call::refs instead, under value number `index`).
struct RefFrame {
    std::uint64_t manager_id;
    std::vector<std::uint64_t>* out;
    std::uint64_t index;
    RefFrame* saved;
};
class CollectRefs {
public:
    CollectRefs(std::uint64_t manager_id, std::vector<std::uint64_t>& out, std::uint64_t index) noexcept;
    ~CollectRefs();
    CollectRefs(const CollectRefs&) = delete;
    CollectRefs& operator=(const CollectRefs&) = delete;

private:
    RefFrame frame_;
};

class ProxyBase {
public:
    ProxyBase() = default;

    // Whether this proxy refers to an object (a default-constructed one does not).
    bool valid() const noexcept { return static_cast<bool>(ref_); }
    explicit operator bool() const noexcept { return valid(); }
    // The object's id in its server, its type id ("dict", "Counter" ...) and the server's address.
    std::uint64_t id() const;
    std::string type_id() const;
    Address address() const;

    // Bounds every call made through this copy of the proxy: TimeoutError when the server has not
    // answered within `seconds` (std::nullopt: no limit; until set, the manager's
    // set_call_timeout applies).
    void set_timeout(std::optional<double> seconds);
    // What set_timeout set; std::nullopt also when it was never called.
    std::optional<double> timeout() const noexcept {
        return timeout_ >= 0 ? std::optional<double>(timeout_) : std::nullopt;
    }

    // The codec hooks: a proxy can be a Process argument, a queue item, a value in a managed
    // container (a nested proxy), a registered method's argument or result.
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

protected:
    explicit ProxyBase(const char* kinds) : kinds_(kinds) {}
    ProxyBase(const char* kinds, RefPtr r) : ref_(std::move(r)), kinds_(kinds) {}

    // One request to the server: the answer, or the server's error thrown as its type.
    Result invoke(Call& c) const;
    std::uint64_t manager_id() const;

    // Encodes v for the server to keep, as value number `index` of c.
    template <class T>
    std::string keep(const T& v, Call& c, std::uint64_t index) const {
        std::string s;
        if (ref_) {
            CollectRefs col(manager_id(), c.refs, index);
            encode_message_to(s, v);
        } else {
            encode_message_to(s, v);
        }
        return s;
    }
    template <class T>
    static std::string enc(const T& v) {
        std::string s;
        encode_message_to(s, v);
        return s;
    }
    template <class T>
    static std::vector<T> decoded(const std::vector<std::string>& raw) {
        std::vector<T> out;
        out.reserve(raw.size());
        for (const auto& r : raw) out.push_back(decode_message<T>(r));
        return out;
    }

    RefPtr ref_;
    const char* kinds_ = "";  // the type ids this proxy class may refer to, '|' between them
    double timeout_ = -2;     // -2: the manager's default

    friend class mp::BaseManager;
};

// Gives each builtin proxy class with_timeout() returning its own type.
template <class Derived>
class ProxyOf : public ProxyBase {
public:
    using ProxyBase::ProxyBase;
    // A copy of this proxy whose calls are bounded by `seconds` (TimeoutError).
    Derived with_timeout(std::optional<double> seconds) const {
        Derived d(static_cast<const Derived&>(*this));
        d.set_timeout(seconds);
        return d;
    }
    template <class Rep, class Period>
    Derived with_timeout(std::chrono::duration<Rep, Period> t) const {
        return with_timeout(std::optional<double>(mp::detail::nonnegative_seconds(t)));
    }
};

// A snapshot iterator: what range-for over a proxy walks (Python's list(d), list(l)). Each
// begin() takes a new snapshot, which the iterators share and keep alive: for C++20 a
// std::forward_iterator, and the proxy a forward_range and borrowed_range (see the end of
// this file).
template <class T>
class SnapshotIterator {
public:
    using iterator_concept = std::forward_iterator_tag;
    using iterator_category = std::forward_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using pointer = const T*;
    using reference = const T&;

    SnapshotIterator() = default;
    explicit SnapshotIterator(std::shared_ptr<const std::vector<T>> v) : v_(std::move(v)) {}
    reference operator*() const { return (*v_)[i_]; }
    pointer operator->() const { return &(*v_)[i_]; }
    SnapshotIterator& operator++() {
        ++i_;
        return *this;
    }
    SnapshotIterator operator++(int) {
        SnapshotIterator t = *this;
        ++i_;
        return t;
    }
    friend bool operator==(const SnapshotIterator& x, const SnapshotIterator& y) { return x.at_end() == y.at_end() && (x.at_end() || (x.v_ == y.v_ && x.i_ == y.i_)); }
    friend bool operator!=(const SnapshotIterator& x, const SnapshotIterator& y) { return !(x == y); }

private:
    bool at_end() const { return !v_ || i_ >= v_->size(); }
    std::shared_ptr<const std::vector<T>> v_;
    std::size_t i_ = 0;
};

template <class T>
inline constexpr bool is_proxy_v = std::is_base_of_v<ProxyBase, T>;

}  // namespace detail

// p with its calls bounded by `seconds` (any proxy type, your own proxy classes included).
template <class P, class = std::enable_if_t<detail::is_proxy_v<P>>>
P with_timeout(P p, std::optional<double> seconds) {
    p.set_timeout(seconds);
    return p;
}

// Items in insertion order: what copy(), items() and d | other give (std::map would sort them).
template <class K, class V>
using Items = std::vector<std::pair<K, V>>;

template <class K, class V>
class DictProxy;
template <class T>
class ListProxy;

// d[k]: reads with a conversion to V (KeyError when k is missing), writes with =. Each use is one
// request; d[k] += x is a read and a write (two requests, as in Python).
template <class K, class V>
class DictItem {
public:
    DictItem(DictProxy<K, V> d, K k) : d_(std::move(d)), k_(std::move(k)) {}
    operator V() const { return d_.at(k_); }
    V get() const { return d_.at(k_); }
    DictItem& operator=(const V& v) {
        d_.set(k_, v);
        return *this;
    }
    DictItem& operator=(const DictItem& o) { return *this = o.get(); }
    template <class X>
    DictItem& operator+=(const X& x) { return *this = static_cast<V>(get() + x); }
    template <class X>
    DictItem& operator-=(const X& x) { return *this = static_cast<V>(get() - x); }

private:
    DictProxy<K, V> d_;
    K k_;
};

// A dict in the server (Python's DictProxy), keys K, values V, in insertion order.
template <class K, class V>
class DictProxy : public detail::ProxyOf<DictProxy<K, V>> {
    static_assert(is_encodable_v<K> && is_encodable_v<V>, "mp::DictProxy: keys and values must be types the codec can encode");
    using Base = detail::ProxyOf<DictProxy<K, V>>;
    using Base::enc;
    using Base::invoke;
    using Base::keep;
    using Call = detail::Call;

public:
    using key_type = K;
    using mapped_type = V;
    using iterator = detail::SnapshotIterator<K>;

    DictProxy() : Base("dict") {}
    explicit DictProxy(detail::RefPtr r) : Base("dict", std::move(r)) {}

    // d[k] (an element proxy), d.at(k): KeyError when k is missing.
    DictItem<K, V> operator[](const K& k) const { return DictItem<K, V>(*this, k); }
    V at(const K& k) const { return decode_message<V>(one(detail::kDictGet, k).value); }
    std::optional<V> get(const K& k) const {
        detail::Result r = one(detail::kDictGetOpt, k);
        if (r.list.empty()) return std::nullopt;
        return decode_message<V>(r.list[0]);
    }
    V get(const K& k, const V& dflt) const {
        std::optional<V> v = get(k);
        return v ? std::move(*v) : dflt;
    }
    // d[k] = v
    void set(const K& k, const V& v) {
        Call c;
        c.op = detail::kDictSet;
        c.a = enc(k);
        c.b = keep(v, c, 0);
        invoke(c);
    }
    // del d[k]: KeyError when k is missing.
    void erase(const K& k) { one(detail::kDictDel, k); }
    bool contains(const K& k) const { return one(detail::kDictContains, k).n != 0; }
    std::size_t size() const { return static_cast<std::size_t>(simple(detail::kDictLen).n); }
    std::size_t len() const { return size(); }
    bool empty() const { return size() == 0; }
    // d.pop(k): KeyError when missing; d.pop(k, default).
    V pop(const K& k) { return decode_message<V>(one(detail::kDictPop, k).value); }
    V pop(const K& k, const V& dflt) {
        detail::Result r = one(detail::kDictPopOpt, k);
        return r.list.empty() ? dflt : decode_message<V>(r.list[0]);
    }
    // The last item inserted, removed: KeyError when the dict is empty.
    std::pair<K, V> popitem() {
        detail::Result r = simple(detail::kDictPopItem);
        return {decode_message<K>(r.list.at(0)), decode_message<V>(r.list.at(1))};
    }
    // The value at k, after putting dflt there if k was missing (one atomic step).
    V setdefault(const K& k, const V& dflt) {
        Call c;
        c.op = detail::kDictSetDefault;
        c.a = enc(k);
        c.b = keep(dflt, c, 0);
        return decode_message<V>(invoke(c).value);
    }
    void clear() { simple(detail::kDictClear); }
    // d.update(other): one atomic step. Any range of pairs (std::map, Items, another proxy's
    // items()...), applied in its order.
    template <class Range>
    void update(const Range& pairs) {
        Call c;
        c.op = detail::kDictUpdate;
        for (const auto& [k, v] : pairs) {
            c.list.push_back(enc(static_cast<const K&>(k)));
            c.list.push_back(keep(static_cast<const V&>(v), c, c.list.size()));
        }
        invoke(c);
    }
    void update(std::initializer_list<std::pair<K, V>> pairs) { update<std::initializer_list<std::pair<K, V>>>(pairs); }
    void update(const DictProxy& other) { update(other.items()); }
    template <class Range>
    DictProxy& operator|=(const Range& pairs) {
        update(pairs);
        return *this;
    }
    // d | other: a new dict (not a proxy) with d's items, then other's.
    template <class Range>
    Items<K, V> operator|(const Range& other) const {
        Items<K, V> out = items();
        merge(out, other);
        return out;
    }
    Items<K, V> operator|(const DictProxy& other) const { return *this | other.items(); }

    // Insertion order, as Python's dicts keep it (each is one snapshot).
    std::vector<K> keys() const { return Base::template decoded<K>(simple(detail::kDictKeys).list); }
    std::vector<V> values() const { return Base::template decoded<V>(simple(detail::kDictValues).list); }
    Items<K, V> items() const {
        detail::Result r = simple(detail::kDictItems);
        Items<K, V> out;
        out.reserve(r.list.size() / 2);
        for (std::size_t i = 0; i + 1 < r.list.size(); i += 2) out.emplace_back(decode_message<K>(r.list[i]), decode_message<V>(r.list[i + 1]));
        return out;
    }
    // Python's d.copy() and dict(d): the items, in order.
    Items<K, V> copy() const { return items(); }
    // reversed(d): the keys, last inserted first.
    std::vector<K> reversed() const { return Base::template decoded<K>(simple(detail::kDictReversed).list); }
    // dict.fromkeys(keys, value): a new dict (not a proxy), as Python's classmethod.
    template <class Range>
    static Items<K, V> fromkeys(const Range& keys, const V& value = V{}) {
        Items<K, V> out;
        for (const auto& k : keys) merge_one(out, K(k), value);
        return out;
    }

    // Range-for walks a snapshot of the keys.
    iterator begin() const { return iterator(std::make_shared<const std::vector<K>>(keys())); }
    iterator end() const { return iterator(); }

private:
    detail::Result one(std::uint16_t op, const K& k) const {
        Call c;
        c.op = op;
        c.a = enc(k);
        return invoke(c);
    }
    detail::Result simple(std::uint16_t op) const {
        Call c;
        c.op = op;
        return invoke(c);
    }
    static void merge_one(Items<K, V>& out, K k, V v) {
        const std::string ek = enc(k);
        for (auto& kv : out)
            if (enc(kv.first) == ek) {
                kv.second = std::move(v);
                return;
            }
        out.emplace_back(std::move(k), std::move(v));
    }
    template <class Range>
    static void merge(Items<K, V>& out, const Range& other) {
        for (const auto& [k, v] : other) merge_one(out, K(k), V(v));
    }
};

// other | d for a plain container on the left.
template <class K, class V>
Items<K, V> operator|(const Items<K, V>& left, const DictProxy<K, V>& d) {
    Items<K, V> out = left;
    for (auto& kv : d.items()) {
        bool found = false;
        for (auto& o : out)
            if (encode(o.first) == encode(kv.first)) {
                o.second = kv.second;
                found = true;
                break;
            }
        if (!found) out.push_back(std::move(kv));
    }
    return out;
}

// l[i]: reads with a conversion to T, writes with = (IndexError outside; negative i counts
// from the end).
template <class T>
class ListItem {
public:
    ListItem(ListProxy<T> l, std::int64_t i) : l_(std::move(l)), i_(i) {}
    operator T() const { return l_.at(i_); }
    T get() const { return l_.at(i_); }
    ListItem& operator=(const T& v) {
        l_.set(i_, v);
        return *this;
    }
    ListItem& operator=(const ListItem& o) { return *this = o.get(); }
    template <class X>
    ListItem& operator+=(const X& x) { return *this = static_cast<T>(get() + x); }
    template <class X>
    ListItem& operator-=(const X& x) { return *this = static_cast<T>(get() - x); }

private:
    ListProxy<T> l_;
    std::int64_t i_;
};

// A list in the server (Python's ListProxy). Indexes follow Python: negative counts from the
// end; slices [start, stop) are clamped to the list.
template <class T>
class ListProxy : public detail::ProxyOf<ListProxy<T>> {
    static_assert(is_encodable_v<T>, "mp::ListProxy: the items must be a type the codec can encode");
    using Base = detail::ProxyOf<ListProxy<T>>;
    using Base::enc;
    using Base::invoke;
    using Base::keep;
    using Call = detail::Call;

public:
    using value_type = T;
    using iterator = detail::SnapshotIterator<T>;
    static constexpr std::int64_t npos = std::numeric_limits<std::int64_t>::max();

    ListProxy() : Base("list") {}
    explicit ListProxy(detail::RefPtr r) : Base("list", std::move(r)) {}

    ListItem<T> operator[](std::int64_t i) const { return ListItem<T>(*this, i); }
    T at(std::int64_t i) const { return decode_message<T>(index_op(detail::kListGet, i).value); }
    void set(std::int64_t i, const T& v) {
        Call c;
        c.op = detail::kListSet;
        c.i = i;
        c.a = keep(v, c, 0);
        invoke(c);
    }
    // del l[i]
    void erase(std::int64_t i) { index_op(detail::kListDel, i); }
    // l[start:stop], l[start:stop] = values, del l[start:stop]
    std::vector<T> slice(std::int64_t start, std::int64_t stop = npos) const {
        return Base::template decoded<T>(range_op(detail::kListSlice, start, stop).list);
    }
    void set_slice(std::int64_t start, std::int64_t stop, const std::vector<T>& values) {
        Call c;
        c.op = detail::kListSetSlice;
        c.i = start;
        c.j = stop;
        for (const T& v : values) c.list.push_back(keep(v, c, c.list.size()));
        invoke(c);
    }
    void erase_slice(std::int64_t start, std::int64_t stop = npos) { range_op(detail::kListDelSlice, start, stop); }

    std::size_t size() const { return static_cast<std::size_t>(simple(detail::kListLen).n); }
    std::size_t len() const { return size(); }
    bool empty() const { return size() == 0; }
    void append(const T& v) {
        Call c;
        c.op = detail::kListAppend;
        c.a = keep(v, c, 0);
        invoke(c);
    }
    // One atomic step, as Python's l.extend(vs) (any range of T).
    template <class Range = std::vector<T>>
    void extend(const Range& vs) {
        Call c;
        c.op = detail::kListExtend;
        for (const auto& v : vs) c.list.push_back(keep(static_cast<const T&>(v), c, c.list.size()));
        invoke(c);
    }
    void extend(std::initializer_list<T> vs) { extend<std::initializer_list<T>>(vs); }
    void insert(std::int64_t i, const T& v) {
        Call c;
        c.op = detail::kListInsert;
        c.i = i;
        c.a = keep(v, c, 0);
        invoke(c);
    }
    // l.pop(i), the last by default: IndexError on an empty list or outside it.
    T pop(std::int64_t i = -1) { return decode_message<T>(index_op(detail::kListPop, i).value); }
    // The first item equal to v, removed: ValueError when there is none.
    void remove(const T& v) { value_op(detail::kListRemove, v); }
    // The index of the first item equal to v in [start, stop): ValueError when there is none.
    std::size_t index(const T& v, std::int64_t start = 0, std::int64_t stop = npos) const {
        Call c;
        c.op = detail::kListIndex;
        c.a = enc(v);
        c.i = start;
        c.j = stop;
        return static_cast<std::size_t>(invoke(c).n);
    }
    std::size_t count(const T& v) const { return static_cast<std::size_t>(value_op(detail::kListCount, v).n); }
    bool contains(const T& v) const { return value_op(detail::kListContains, v).n != 0; }
    void clear() { simple(detail::kListClear); }
    void reverse() { simple(detail::kListReverse); }
    // Sorts in place with comp (std::less by default). The server cannot compare C++ values, so
    // this reads the list, sorts it here, and writes it back only if nobody changed the list in
    // between (else it reads again): the effect is one atomic step, as Python's l.sort().
    template <class Compare = std::less<T>>
    void sort(Compare comp = Compare{}, bool reverse_order = false) {
        for (;;) {
            Call c;
            c.op = detail::kListAllVersioned;
            detail::Result r = invoke(c);
            std::vector<std::pair<T, std::size_t>> items;
            items.reserve(r.list.size());
            for (std::size_t k = 0; k < r.list.size(); ++k) items.emplace_back(decode_message<T>(r.list[k]), k);
            std::stable_sort(items.begin(), items.end(), [&](const auto& x, const auto& y) {
                return reverse_order ? comp(y.first, x.first) : comp(x.first, y.first);
            });
            Call w;
            w.op = detail::kListReplaceIfVersion;
            w.i = r.n;
            // The original encodings move: nested proxies keep their references on the server.
            for (auto& it : items) w.list.push_back(std::move(r.list[it.second]));
            w.j = 1;  // "the values are the list's own, in a new order"
            if (invoke(w).n != 0) return;
        }
    }
    std::vector<T> copy() const { return Base::template decoded<T>(simple(detail::kListAll).list); }
    // reversed(l): the items, last first.
    std::vector<T> reversed() const {
        std::vector<T> v = copy();
        return std::vector<T>(v.rbegin(), v.rend());
    }
    // l + other, l * n: new lists (not proxies), as Python's.
    template <class Range>
    std::vector<T> operator+(const Range& other) const {
        std::vector<T> v = copy();
        v.insert(v.end(), std::begin(other), std::end(other));
        return v;
    }
    std::vector<T> operator*(std::int64_t n) const {
        const std::vector<T> v = copy();
        std::vector<T> out;
        for (std::int64_t k = 0; k < n; ++k) out.insert(out.end(), v.begin(), v.end());
        return out;
    }
    template <class Range>
    ListProxy& operator+=(const Range& other) {
        extend(other);
        return *this;
    }
    // l *= n, in place (one atomic step).
    ListProxy& operator*=(std::int64_t n) {
        Call c;
        c.op = detail::kListMulAssign;
        c.i = n;
        invoke(c);
        return *this;
    }

    iterator begin() const { return iterator(std::make_shared<const std::vector<T>>(copy())); }
    iterator end() const { return iterator(); }

private:
    detail::Result simple(std::uint16_t op) const {
        Call c;
        c.op = op;
        return invoke(c);
    }
    detail::Result index_op(std::uint16_t op, std::int64_t i) const {
        Call c;
        c.op = op;
        c.i = i;
        return invoke(c);
    }
    detail::Result range_op(std::uint16_t op, std::int64_t i, std::int64_t j) const {
        Call c;
        c.op = op;
        c.i = i;
        c.j = j;
        return invoke(c);
    }
    detail::Result value_op(std::uint16_t op, const T& v) const {
        Call c;
        c.op = op;
        c.a = enc(v);
        return invoke(c);
    }
};

// A set in the server (Python's SetProxy, CPython 3.14). Elements compare by their encoding;
// results that are sets come back as vectors (in the server's insertion order). Operands are
// any range of T, or another SetProxy of the same manager (then read in the server, in the
// same atomic step).
template <class T>
class SetProxy : public detail::ProxyOf<SetProxy<T>> {
    static_assert(is_encodable_v<T>, "mp::SetProxy: the elements must be a type the codec can encode");
    using Base = detail::ProxyOf<SetProxy<T>>;
    using Base::enc;
    using Base::invoke;
    using Call = detail::Call;

public:
    using value_type = T;
    using iterator = detail::SnapshotIterator<T>;

    SetProxy() : Base("set") {}
    explicit SetProxy(detail::RefPtr r) : Base("set", std::move(r)) {}

    void add(const T& v) { value_op(detail::kSetAdd, v); }
    void discard(const T& v) { value_op(detail::kSetDiscard, v); }
    // KeyError when v is not there.
    void remove(const T& v) { value_op(detail::kSetRemove, v); }
    // Some element, removed: KeyError when the set is empty.
    T pop() { return decode_message<T>(simple(detail::kSetPop).value); }
    void clear() { simple(detail::kSetClear); }
    bool contains(const T& v) const { return value_op(detail::kSetContains, v).n != 0; }
    std::size_t size() const { return static_cast<std::size_t>(simple(detail::kSetLen).n); }
    std::size_t len() const { return size(); }
    bool empty() const { return size() == 0; }
    std::vector<T> copy() const { return Base::template decoded<T>(simple(detail::kSetAll).list); }

    template <class Operand>
    void update(const Operand& o) { operand_op(detail::kSetUpdate, o); }
    template <class Operand>
    void intersection_update(const Operand& o) { operand_op(detail::kSetIntersectionUpdate, o); }
    template <class Operand>
    void difference_update(const Operand& o) { operand_op(detail::kSetDifferenceUpdate, o); }
    template <class Operand>
    void symmetric_difference_update(const Operand& o) { operand_op(detail::kSetSymmetricDifferenceUpdate, o); }
    template <class Operand>
    std::vector<T> set_union(const Operand& o) const { return Base::template decoded<T>(operand_op(detail::kSetUnion, o).list); }
    template <class Operand>
    std::vector<T> intersection(const Operand& o) const { return Base::template decoded<T>(operand_op(detail::kSetIntersection, o).list); }
    template <class Operand>
    std::vector<T> difference(const Operand& o) const { return Base::template decoded<T>(operand_op(detail::kSetDifference, o).list); }
    template <class Operand>
    std::vector<T> symmetric_difference(const Operand& o) const { return Base::template decoded<T>(operand_op(detail::kSetSymmetricDifference, o).list); }
    template <class Operand>
    bool isdisjoint(const Operand& o) const { return operand_op(detail::kSetIsDisjoint, o).n != 0; }
    template <class Operand>
    bool issubset(const Operand& o) const { return operand_op(detail::kSetIsSubset, o).n != 0; }
    template <class Operand>
    bool issuperset(const Operand& o) const { return operand_op(detail::kSetIsSuperset, o).n != 0; }

    // s | o, s & o, s - o, s ^ o (new sets, as vectors); s |= o ... in place; s <= o, s < o ...
    template <class Operand>
    std::vector<T> operator|(const Operand& o) const { return set_union(o); }
    template <class Operand>
    std::vector<T> operator&(const Operand& o) const { return intersection(o); }
    template <class Operand>
    std::vector<T> operator-(const Operand& o) const { return difference(o); }
    template <class Operand>
    std::vector<T> operator^(const Operand& o) const { return symmetric_difference(o); }
    template <class Operand>
    SetProxy& operator|=(const Operand& o) { update(o); return *this; }
    template <class Operand>
    SetProxy& operator&=(const Operand& o) { intersection_update(o); return *this; }
    template <class Operand>
    SetProxy& operator-=(const Operand& o) { difference_update(o); return *this; }
    template <class Operand>
    SetProxy& operator^=(const Operand& o) { symmetric_difference_update(o); return *this; }
    template <class Operand>
    bool operator<=(const Operand& o) const { return issubset(o); }
    template <class Operand>
    bool operator>=(const Operand& o) const { return issuperset(o); }
    template <class Operand>
    bool operator<(const Operand& o) const { return operand_op(detail::kSetIsProperSubset, o).n != 0; }
    template <class Operand>
    bool operator>(const Operand& o) const { return operand_op(detail::kSetIsProperSuperset, o).n != 0; }

    iterator begin() const { return iterator(std::make_shared<const std::vector<T>>(copy())); }
    iterator end() const { return iterator(); }

private:
    detail::Result simple(std::uint16_t op) const {
        Call c;
        c.op = op;
        return invoke(c);
    }
    detail::Result value_op(std::uint16_t op, const T& v) const {
        Call c;
        c.op = op;
        c.a = enc(v);
        return invoke(c);
    }
    template <class Operand>
    detail::Result operand_op(std::uint16_t op, const Operand& o) const {
        Call c;
        c.op = op;
        if constexpr (std::is_base_of_v<detail::ProxyBase, Operand>) {
            static_assert(std::is_same_v<Operand, SetProxy>, "mp::SetProxy: an operand proxy must be a SetProxy of the same element type");
            if (!o.valid()) throw ValueError("mp::SetProxy: the operand proxy refers to no object");
            if (o.manager_id() != this->manager_id()) throw ValueError("mp::SetProxy: the operand set belongs to another manager");
            c.j = static_cast<std::int64_t>(o.id());  // read in the server, in the same step
        } else {
            for (const auto& v : o) c.list.push_back(enc(static_cast<const T&>(v)));
        }
        return invoke(c);
    }
};

// One value in the server (Python's manager.Value(typecode, value); .value).
template <class T>
class ValueProxy : public detail::ProxyOf<ValueProxy<T>> {
    static_assert(is_encodable_v<T>, "mp::ValueProxy: the value must be a type the codec can encode");
    using Base = detail::ProxyOf<ValueProxy<T>>;
    using Base::invoke;
    using Base::keep;

public:
    ValueProxy() : Base("Value") {}
    explicit ValueProxy(detail::RefPtr r) : Base("Value", std::move(r)) {}
    T get() const {
        detail::Call c;
        c.op = detail::kValueGet;
        return decode_message<T>(invoke(c).value);
    }
    void set(const T& v) {
        detail::Call c;
        c.op = detail::kValueSet;
        c.a = keep(v, c, 0);
        invoke(c);
    }
    T value() const { return get(); }
    void value(const T& v) { set(v); }
};

template <class T>
class ArrayProxy;

template <class T>
class ArrayItem {
public:
    ArrayItem(ArrayProxy<T> a, std::int64_t i) : a_(std::move(a)), i_(i) {}
    operator T() const { return a_.at(i_); }
    T get() const { return a_.at(i_); }
    ArrayItem& operator=(const T& v) {
        a_.set(i_, v);
        return *this;
    }
    ArrayItem& operator=(const ArrayItem& o) { return *this = o.get(); }
    template <class X>
    ArrayItem& operator+=(const X& x) { return *this = static_cast<T>(get() + x); }

private:
    ArrayProxy<T> a_;
    std::int64_t i_;
};

// A fixed-length array in the server (Python's manager.Array(typecode, sequence)).
template <class T>
class ArrayProxy : public detail::ProxyOf<ArrayProxy<T>> {
    static_assert(is_encodable_v<T>, "mp::ArrayProxy: the items must be a type the codec can encode");
    using Base = detail::ProxyOf<ArrayProxy<T>>;
    using Base::invoke;
    using Base::keep;

public:
    using iterator = detail::SnapshotIterator<T>;
    ArrayProxy() : Base("Array") {}
    explicit ArrayProxy(detail::RefPtr r) : Base("Array", std::move(r)) {}

    ArrayItem<T> operator[](std::int64_t i) const { return ArrayItem<T>(*this, i); }
    T at(std::int64_t i) const {
        detail::Call c;
        c.op = detail::kArrayGet;
        c.i = i;
        return decode_message<T>(invoke(c).value);
    }
    void set(std::int64_t i, const T& v) {
        detail::Call c;
        c.op = detail::kArraySet;
        c.i = i;
        c.a = keep(v, c, 0);
        invoke(c);
    }
    std::size_t size() const {
        detail::Call c;
        c.op = detail::kArrayLen;
        return static_cast<std::size_t>(invoke(c).n);
    }
    std::size_t len() const { return size(); }
    std::vector<T> copy() const {
        detail::Call c;
        c.op = detail::kArrayAll;
        return Base::template decoded<T>(invoke(c).list);
    }
    iterator begin() const { return iterator(std::make_shared<const std::vector<T>>(copy())); }
    iterator end() const { return iterator(); }
};

class NamespaceAttr;

// A Namespace in the server (Python's manager.Namespace()): named attributes of any encodable
// type. Reading one with another type than it was written with is DecodeError.
class NamespaceProxy : public detail::ProxyOf<NamespaceProxy> {
    using Base = detail::ProxyOf<NamespaceProxy>;

public:
    NamespaceProxy() : Base("Namespace") {}
    explicit NamespaceProxy(detail::RefPtr r) : Base("Namespace", std::move(r)) {}

    // ns.x: AttributeError when there is no such attribute.
    template <class T>
    T get(const std::string& name) const {
        return decode_message<T>(named(detail::kNsGet, name).value);
    }
    template <class T>
    std::optional<T> get_opt(const std::string& name) const {
        if (!has(name)) return std::nullopt;
        return get<T>(name);
    }
    // ns.x = v
    template <class T>
    void set(const std::string& name, const T& v) const {
        static_assert(is_encodable_v<T>, "mp::NamespaceProxy: the value must be a type the codec can encode");
        detail::Call c;
        c.op = detail::kNsSet;
        c.a = name;
        c.b = keep(v, c, 0);
        invoke(c);
    }
    // del ns.x: AttributeError when there is no such attribute.
    void erase(const std::string& name) const { named(detail::kNsDel, name); }
    bool has(const std::string& name) const { return named(detail::kNsHas, name).n != 0; }
    // The attribute names, in the order they were first set (what Python's repr lists).
    std::vector<std::string> names() const {
        detail::Call c;
        c.op = detail::kNsNames;
        return invoke(c).list;
    }
    // ns["x"] = v; T x = ns["x"];
    NamespaceAttr operator[](const std::string& name) const;

private:
    detail::Result named(std::uint16_t op, const std::string& name) const {
        detail::Call c;
        c.op = op;
        c.a = name;
        return invoke(c);
    }
};

// ns["x"]: reads with a conversion to the type asked for, writes with = (any encodable type).
class NamespaceAttr {
public:
    NamespaceAttr(NamespaceProxy ns, std::string name) : ns_(std::move(ns)), name_(std::move(name)) {}
    template <class T>
    operator T() const {
        return ns_.get<T>(name_);
    }
    template <class T>
    T get() const {
        return ns_.get<T>(name_);
    }
    template <class T>
    NamespaceAttr& operator=(const T& v) {
        ns_.set(name_, v);
        return *this;
    }

private:
    NamespaceProxy ns_;
    std::string name_;
};

inline NamespaceAttr NamespaceProxy::operator[](const std::string& name) const { return NamespaceAttr(*this, name); }

// A queue in the server (Python's manager.Queue()): items of any encodable type, as mp::Queue.
// put blocks while the queue holds maxsize items (maxsize 0: no limit); get blocks while it is
// empty; timeouts give queue::Full / queue::Empty.
class QueueProxy : public detail::ProxyOf<QueueProxy> {
    using Base = detail::ProxyOf<QueueProxy>;

public:
    QueueProxy() : Base("Queue|JoinableQueue") {}
    explicit QueueProxy(detail::RefPtr r) : Base("Queue|JoinableQueue", std::move(r)) {}

    template <class T>
    void put(const T& item, bool block = true, std::optional<double> timeout = std::nullopt) {
        static_assert(is_encodable_v<T>, "mp::QueueProxy::put: the item must be a type the codec can encode");
        detail::Call c;
        c.op = detail::kQueuePut;
        c.a = keep(item, c, 0);
        c.i = block;
        c.wait = block ? detail::call_wait(timeout, "mp::QueueProxy::put") : 0.0;
        c.blocking = block;
        invoke(c);
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
        detail::Call c;
        c.op = detail::kQueueGet;
        c.i = block;
        c.wait = block ? detail::call_wait(timeout, "mp::QueueProxy::get") : 0.0;
        c.blocking = block;
        return decode_message<T>(invoke(c).value);
    }
    template <class T, class Rep, class Period>
    T get(std::chrono::duration<Rep, Period> timeout) {
        return get<T>(true, mp::detail::nonnegative_seconds(timeout));
    }
    template <class T>
    T get_nowait() {
        return get<T>(false);
    }
    std::size_t qsize() const { return static_cast<std::size_t>(simple(detail::kQueueSize).n); }
    bool empty() const { return simple(detail::kQueueEmpty).n != 0; }
    bool full() const { return simple(detail::kQueueFull).n != 0; }
    long maxsize() const { return static_cast<long>(simple(detail::kQueueMaxsize).n); }

protected:
    QueueProxy(const char* kinds, detail::RefPtr r) : Base(kinds, std::move(r)) {}
    explicit QueueProxy(const char* kinds) : Base(kinds) {}
    detail::Result simple(std::uint16_t op, double wait = -1, bool blocking = false) const {
        detail::Call c;
        c.op = op;
        c.wait = wait;
        c.blocking = blocking;
        return invoke(c);
    }
};

// manager.JoinableQueue(): a QueueProxy with task_done() and join().
class JoinableQueueProxy : public QueueProxy {
public:
    JoinableQueueProxy() : QueueProxy("JoinableQueue") {}
    explicit JoinableQueueProxy(detail::RefPtr r) : QueueProxy("JoinableQueue", std::move(r)) {}
    // ValueError when called more often than items were put.
    void task_done() { simple(detail::kQueueTaskDone); }
    // Waits until every item put has been marked done; false when `timeout_seconds` ran out.
    void join() { simple(detail::kQueueJoin, -1, true); }
    [[nodiscard]] bool join(std::optional<double> timeout_seconds) {
        return simple(detail::kQueueJoin, detail::call_wait(timeout_seconds, "mp::JoinableQueueProxy::join"), true).n != 0;
    }
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) { return join(mp::detail::nonnegative_seconds(timeout)); }
    JoinableQueueProxy with_timeout(std::optional<double> seconds) const {
        JoinableQueueProxy q(*this);
        q.set_timeout(seconds);
        return q;
    }
};

// manager.Lock(), RLock(), Semaphore(n), BoundedSemaphore(n): Python's AcquirerProxy. Usable with
// std::lock_guard / std::unique_lock (lock, unlock, try_lock). A Lock may be released by any
// thread or process (Python's threading.Lock); an RLock only by its owner (RuntimeError).
// A holder that dies (its process ends with the lock held) releases it, and the next acquire
// throws OwnerDeadError while holding the lock (the guarded data may be half-updated), once.
class AcquirerProxy : public detail::ProxyOf<AcquirerProxy> {
    using Base = detail::ProxyOf<AcquirerProxy>;

public:
    AcquirerProxy() : Base("Lock|RLock|Semaphore|BoundedSemaphore") {}
    explicit AcquirerProxy(detail::RefPtr r) : Base("Lock|RLock|Semaphore|BoundedSemaphore", std::move(r)) {}

    // As mp::Lock's: acquire() is always true, the forms that may fail are [[nodiscard]].
    bool acquire() { return acquire(true, std::nullopt); }
    [[nodiscard]] bool acquire(bool block, std::optional<double> timeout = std::nullopt) {
        detail::Call c;
        c.op = detail::kAcquire;
        c.i = block;
        c.wait = block ? detail::call_wait(timeout, "mp::AcquirerProxy::acquire") : 0.0;
        c.blocking = block;
        return invoke(c).n != 0;
    }
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return acquire(true, std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    // Semaphores: release(n) adds n; BoundedSemaphore refuses to pass its initial value
    // (ValueError). Locks: RuntimeError when not locked (RLock: not owned by the caller).
    void release(int n = 1) {
        detail::Call c;
        c.op = detail::kRelease;
        c.i = n;
        invoke(c);
    }
    bool locked() const {
        detail::Call c;
        c.op = detail::kLocked;
        return invoke(c).n != 0;
    }
    // Semaphores: the current value.
    int get_value() const {
        detail::Call c;
        c.op = detail::kSemValue;
        return static_cast<int>(invoke(c).n);
    }
    void lock() { acquire(); }
    [[nodiscard]] bool try_lock() { return acquire(false); }
    void unlock() { release(); }
    template <class Rep, class Period>
    [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
        return acquire(timeout);
    }

protected:
    AcquirerProxy(const char* kinds, detail::RefPtr r) : Base(kinds, std::move(r)) {}
    explicit AcquirerProxy(const char* kinds) : Base(kinds) {}
};

// manager.Condition() (its own RLock) or manager.Condition(lock) (an AcquirerProxy of a Lock or
// RLock of the same manager): Python's ConditionProxy.
class ConditionProxy : public AcquirerProxy {
public:
    ConditionProxy() : AcquirerProxy("Condition") {}
    explicit ConditionProxy(detail::RefPtr r) : AcquirerProxy("Condition", std::move(r)) {}

    // Releases the lock (which the caller must hold: RuntimeError), waits for a notify or the
    // timeout, and takes the lock again; false when the time ran out.
    bool wait(std::optional<double> timeout = std::nullopt) {
        detail::Call c;
        c.op = detail::kCondWait;
        c.wait = detail::call_wait(timeout, "mp::ConditionProxy::wait");
        c.blocking = true;
        return invoke(c).n != 0;
    }
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }
    // Waits until pred() is true (evaluated here, with the lock held), at most `timeout`
    // seconds in all; returns the last value of pred(), as Python's wait_for.
    template <class Pred>
    [[nodiscard]] bool wait_for(Pred pred, std::optional<double> timeout = std::nullopt) {
        using clock = std::chrono::steady_clock;
        if (timeout && *timeout > 1e9) timeout.reset();  // decades: no limit (and no overflow of the clock below)
        if (timeout) detail::call_wait(timeout, "mp::ConditionProxy::wait_for");  // a negative one: ValueError
        bool result = static_cast<bool>(pred());
        const auto end = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(timeout ? *timeout : 0));
        while (!result) {
            std::optional<double> left;
            if (timeout) {
                left = std::chrono::duration<double>(end - clock::now()).count();
                if (*left <= 0) break;
            }
            wait(left);
            result = static_cast<bool>(pred());
        }
        return result;
    }
    void notify(int n = 1) {
        detail::Call c;
        c.op = detail::kCondNotify;
        c.i = n;
        invoke(c);
    }
    void notify_all() {
        detail::Call c;
        c.op = detail::kCondNotifyAll;
        invoke(c);
    }
    ConditionProxy with_timeout(std::optional<double> seconds) const {
        ConditionProxy p(*this);
        p.set_timeout(seconds);
        return p;
    }
};

// manager.Event(): Python's EventProxy.
class EventProxy : public detail::ProxyOf<EventProxy> {
    using Base = detail::ProxyOf<EventProxy>;

public:
    EventProxy() : Base("Event") {}
    explicit EventProxy(detail::RefPtr r) : Base("Event", std::move(r)) {}
    bool is_set() const { return simple(detail::kEventIsSet).n != 0; }
    void set() { simple(detail::kEventSet); }
    void clear() { simple(detail::kEventClear); }
    // True once the flag is set; false when `timeout` seconds ran out first. As mp::Event's:
    // wait() is always true, the timed forms are [[nodiscard]].
    bool wait() { return wait(std::nullopt); }
    [[nodiscard]] bool wait(std::optional<double> timeout) {
        detail::Call c;
        c.op = detail::kEventWait;
        c.wait = detail::call_wait(timeout, "mp::EventProxy::wait");
        c.blocking = true;
        return invoke(c).n != 0;
    }
    template <class Rep, class Period>
    [[nodiscard]] bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait(std::optional<double>(mp::detail::nonnegative_seconds(timeout)));
    }

private:
    detail::Result simple(std::uint16_t op) const {
        detail::Call c;
        c.op = op;
        return invoke(c);
    }
};

// manager.Barrier(parties, timeout): Python's BarrierProxy. wait() returns the arrival index
// (0 for the first, parties - 1 for the last); a timeout, abort(), reset() during a wait or a
// waiter that dies break it: BrokenBarrierError. There is no action: a C++ function cannot
// travel to the server (run it in the process whose wait() returned 0).
class BarrierProxy : public detail::ProxyOf<BarrierProxy> {
    using Base = detail::ProxyOf<BarrierProxy>;

public:
    BarrierProxy() : Base("Barrier") {}
    explicit BarrierProxy(detail::RefPtr r) : Base("Barrier", std::move(r)) {}
    // std::nullopt: the barrier's default (its constructor's), or no limit.
    std::size_t wait(std::optional<double> timeout = std::nullopt) {
        detail::Call c;
        c.op = detail::kBarrierWait;
        c.wait = detail::call_wait(timeout, "mp::BarrierProxy::wait");
        c.blocking = true;
        return static_cast<std::size_t>(invoke(c).n);
    }
    void abort() { simple(detail::kBarrierAbort); }
    void reset() { simple(detail::kBarrierReset); }
    int parties() const { return static_cast<int>(simple(detail::kBarrierParties).n); }
    int n_waiting() const { return static_cast<int>(simple(detail::kBarrierNWaiting).n); }
    bool broken() const { return simple(detail::kBarrierBroken).n != 0; }

private:
    detail::Result simple(std::uint16_t op) const {
        detail::Call c;
        c.op = op;
        return invoke(c);
    }
};

// ---- your own types ---------------------------------------------------------------------------

namespace detail {

template <class M>
struct member_fn {
    static constexpr bool ok = false;
};
#define MP_DETAIL_MEMBER_FN(QUALS, IS_CONST)                         \
    template <class R, class C, class... P>                          \
    struct member_fn<R (C::*)(P...) QUALS> {                         \
        static constexpr bool ok = true;                             \
        static constexpr bool is_const = IS_CONST;                   \
        using result = R;                                            \
        using cls = C;                                               \
        using params = std::tuple<P...>;                             \
        using values = std::tuple<std::decay_t<P>...>;               \
    };
MP_DETAIL_MEMBER_FN(, false)
MP_DETAIL_MEMBER_FN(const, true)
MP_DETAIL_MEMBER_FN(noexcept, false)
MP_DETAIL_MEMBER_FN(const noexcept, true)
#undef MP_DETAIL_MEMBER_FN

template <class F>
struct factory_fn {
    static constexpr bool ok = false;
};
template <class R, class... P>
struct factory_fn<R (*)(P...)> {
    static constexpr bool ok = true;
    using result = R;
    using values = std::tuple<std::decay_t<P>...>;
};
template <class R, class... P>
struct factory_fn<R (*)(P...) noexcept> : factory_fn<R (*)(P...)> {};
template <>
struct factory_fn<std::nullptr_t> {
    static constexpr bool ok = true;
    using result = void;
    using values = std::tuple<>;
};

template <class P>
inline constexpr bool is_writable_ref_v = std::is_lvalue_reference_v<P> && !std::is_const_v<std::remove_reference_t<P>>;
template <class Tuple>
struct no_writable_refs;
template <class... P>
struct no_writable_refs<std::tuple<P...>> : std::bool_constant<(!is_writable_ref_v<P> && ...)> {};

template <auto M>
struct MethodTag {};

template <class T, auto Factory, auto... Methods>
struct ManagedInfo {
    const char* type_name;
    const char* method_names;  // "add, get, fail": the macro's stringized list
};

// The fallback found when T has no MP_MANAGED line.
struct NotManaged {};
NotManaged mp_managed_info(...);

template <class T>
using info_of = decltype(mp_managed_info(static_cast<T*>(nullptr)));
template <class T>
inline constexpr bool is_managed_v = !std::is_same_v<info_of<T>, NotManaged>;

template <auto M, class Info>
struct method_index;
template <auto M, class T, auto F, auto... Ms>
struct method_index<M, ManagedInfo<T, F, Ms...>> {
    static constexpr std::size_t find() {
        constexpr bool same[] = {std::is_same_v<MethodTag<M>, MethodTag<Ms>>..., false};
        for (std::size_t i = 0; i < sizeof...(Ms); ++i)
            if (same[i]) return i;
        return sizeof...(Ms);
    }
    static constexpr std::size_t value = find();
    static constexpr bool found = value < sizeof...(Ms);
};

// The server's side of one registered type, type-erased.
struct ManagedType {
    std::string name;
    void* (*create)(const std::string& args) = nullptr;
    void (*destroy)(void*) noexcept = nullptr;
    std::vector<std::string> method_names;
    std::vector<void (*)(void* obj, const std::string& args, std::string& out)> methods;
};
void register_managed_type(ManagedType t);
std::vector<std::string> split_method_names(const char* list);

template <class T, auto M>
void invoke_method(void* obj, const std::string& args, std::string& out) {
    using Tr = member_fn<decltype(M)>;
    typename Tr::values a;
    decode_message_into(args, a);
    T& self = *static_cast<T*>(obj);
    if constexpr (std::is_void_v<typename Tr::result>) {
        std::apply([&](auto&... x) { (self.*M)(std::move(x)...); }, a);
    } else {
        encode_message_to(out, std::apply([&](auto&... x) -> std::decay_t<typename Tr::result> { return (self.*M)(std::move(x)...); }, a));
    }
}

template <class T, auto F>
void* construct(const std::string& args) {
    using Tr = factory_fn<decltype(F)>;
    typename Tr::values a;
    decode_message_into(args, a);
    if constexpr (std::is_same_v<decltype(F), std::nullptr_t>) {
        return new T();
    } else if constexpr (std::is_same_v<typename Tr::result, std::unique_ptr<T>>) {
        return std::apply(F, std::move(a)).release();
    } else {
        return new T(std::apply(F, std::move(a)));
    }
}

template <class T>
void destroy(void* p) noexcept {
    delete static_cast<T*>(p);
}

template <class T, auto M>
constexpr bool check_method() {
    using Tr = member_fn<decltype(M)>;
    static_assert(Tr::ok, "MP_MANAGED: each name must be a member function of the type (not overloaded, not static)");
    if constexpr (Tr::ok) {
        static_assert(std::is_base_of_v<typename Tr::cls, T>, "MP_MANAGED: a method of another class");
        static_assert(no_writable_refs<typename Tr::params>::value,
                      "MP_MANAGED: a method a proxy calls cannot take a non-const reference (the change "
                      "would stay in the server); return the result instead");
        static_assert(is_encodable_v<typename Tr::values>,
                      "MP_MANAGED: every parameter of a method must be a type the codec can encode");
        static_assert(std::is_void_v<typename Tr::result> || is_encodable_v<std::decay_t<typename Tr::result>>,
                      "MP_MANAGED: a method's result must be void or a type the codec can encode");
    }
    return true;
}

template <class T, auto F, auto... Ms>
bool register_managed(const ManagedInfo<T, F, Ms...>& info) {
    static_assert(sizeof...(Ms) > 0, "MP_MANAGED: name at least one method a proxy may call");
    static_assert((check_method<T, Ms>() && ...));
    using Fr = factory_fn<decltype(F)>;
    static_assert(Fr::ok, "MP_MANAGED_FACTORY: the factory must be the name of a function");
    if constexpr (std::is_same_v<decltype(F), std::nullptr_t>) {
        static_assert(std::is_default_constructible_v<T>,
                      "MP_MANAGED: the type needs a default constructor, or use MP_MANAGED_FACTORY(T, make_t, ...)");
    } else {
        static_assert(std::is_same_v<typename Fr::result, T> || std::is_same_v<typename Fr::result, std::unique_ptr<T>>,
                      "MP_MANAGED_FACTORY: the factory must return the type (or a std::unique_ptr to it)");
        static_assert(is_encodable_v<typename Fr::values>,
                      "MP_MANAGED_FACTORY: every parameter of the factory must be a type the codec can encode");
    }
    ManagedType t;
    t.name = info.type_name;
    t.create = &construct<T, F>;
    t.destroy = &destroy<T>;
    t.method_names = split_method_names(info.method_names);
    t.methods = {&invoke_method<T, Ms>...};
    register_managed_type(std::move(t));
    return true;
}

// The name of method M of T, as MP_MANAGED lists it (what travels to the server).
template <class T, auto M>
const std::string& method_name() {
    static const std::string name =
        split_method_names(mp_managed_info(static_cast<T*>(nullptr)).method_names).at(method_index<M, info_of<T>>::value);
    return name;
}

}  // namespace detail

// A proxy to an object of a type registered with MP_MANAGED (Python's AutoProxy / BaseProxy
// with _callmethod). Derive from it to give the methods names of their own:
//     struct CounterProxy : mp::Proxy<Counter> {
//         using Proxy::Proxy;
//         int add(int k) { return call<&Counter::add>(k); }
//     };
//     CounterProxy c = manager.create<CounterProxy>();
template <class T>
class Proxy : public detail::ProxyOf<Proxy<T>> {
    static_assert(detail::is_managed_v<T>,
                  "mp::Proxy<T>: T is not registered; write MP_MANAGED(T, methods...) at namespace scope in T's namespace");
    using Base = detail::ProxyOf<Proxy<T>>;
    using Info = detail::info_of<T>;

public:
    using object_type = T;

    Proxy() : Base(type_id_of()) {}
    explicit Proxy(detail::RefPtr r) : Base(type_id_of(), std::move(r)) {}

    // Calls method M in the server: checked at compile time against MP_MANAGED's list and M's
    // signature. An exception thrown there is thrown here (see the top of this file).
    template <auto M, class... A>
    auto call(A&&... args) const {
        using Tr = detail::member_fn<decltype(M)>;
        static_assert(Tr::ok, "mp::Proxy::call<&T::method>: give a pointer to a member function");
        static_assert(detail::method_index<M, Info>::found,
                      "mp::Proxy::call: this method is not exposed: add it to the type's MP_MANAGED(...) list");
        static_assert(sizeof...(A) == std::tuple_size_v<typename Tr::values>, "mp::Proxy::call: wrong number of arguments");
        typename Tr::values values(std::forward<A>(args)...);
        detail::Call c;
        c.op = detail::kUserCall;
        c.name = detail::method_name<T, M>();
        c.a = this->keep(values, c, 0);
        c.blocking = true;  // a method may take its time
        detail::Result r = this->invoke(c);
        using R = std::decay_t<typename Tr::result>;
        if constexpr (std::is_void_v<typename Tr::result>) {
            return;
        } else {
            return decode_message<R>(r.value);
        }
    }
    // Calls a method by name with arguments of the types given (Python's _callmethod). The server
    // decodes them as the method's parameters: a mismatch is TypeError, an unknown name
    // AttributeError.
    template <class R = void, class... A>
    R call_method(const std::string& name, const A&... args) const {
        std::tuple<std::decay_t<A>...> values(args...);
        detail::Call c;
        c.op = detail::kUserCall;
        c.name = name;
        c.a = this->keep(values, c, 0);
        c.blocking = true;
        detail::Result r = this->invoke(c);
        if constexpr (std::is_void_v<R>) {
            return;
        } else {
            return decode_message<R>(r.value);
        }
    }

private:
    static Info info() { return mp_managed_info(static_cast<T*>(nullptr)); }
    static const char* type_id_of() { return info().type_name; }
};

// ---- servers and managers -------------------------------------------------------------------

namespace detail {
struct ServerState;
struct ManagerState;
}  // namespace detail

// A manager's server in this process (Python's Server, from BaseManager::get_server()). It
// listens from the moment it is made.
class ManagerServer {
public:
    ManagerServer() = default;
    ManagerServer(ManagerServer&&) noexcept;
    ManagerServer& operator=(ManagerServer&&) noexcept;
    ~ManagerServer();

    // Serves on this thread until a client calls shutdown_server(), stop() is called (from
    // another thread), or, when stop_on_signals, SIGINT or SIGTERM arrives (mp::signals handles
    // them while this runs, and restores their default action after). Then it stops listening
    // (the socket file goes), waits up to 2 s for the connections' threads to end (each one
    // refuses its next request), and returns.
    void serve_forever(bool stop_on_signals = true);
    void stop();
    Address address() const;

private:
    friend class BaseManager;
    explicit ManagerServer(std::shared_ptr<detail::ServerState> s) : s_(std::move(s)) {}
    std::shared_ptr<detail::ServerState> s_;
};

// Python's multiprocessing.managers.BaseManager: serves the types registered with MP_MANAGED
// and the builtin ones (SyncManager names them).
class BaseManager {
public:
    // An arbitrary address of the default family (a Unix socket on POSIX, a named pipe on
    // Windows) and a random authkey; the default start method.
    BaseManager();
    explicit BaseManager(const Context& ctx);
    // address: where to listen (start, get_server) or connect (connect). TCP with host "" binds
    // 127.0.0.1; port 0 takes a free port. authkey: empty is a random key for start/get_server,
    // and a ValueError for connect.
    explicit BaseManager(const Address& address, std::string authkey = {});
    BaseManager(const Address& address, std::string authkey, const Context& ctx);
    BaseManager(BaseManager&&) noexcept;
    BaseManager& operator=(BaseManager&&) noexcept;
    BaseManager(const BaseManager&) = delete;
    BaseManager& operator=(const BaseManager&) = delete;
    ~BaseManager();

    // Starts the server in a new process (ProcessError if started, connected or shut down).
    void start();
    // Connects to a server that runs elsewhere; `timeout` bounds the connection and handshake.
    // AuthenticationError for a wrong key, ConnectionRefusedError / FileNotFoundError when
    // nothing listens.
    void connect(double timeout = 30.0);
    // The server, to run in this process (Python's get_server()).
    ManagerServer get_server();
    // A started manager: asks the server to end, waits up to `timeout` seconds, then kills it.
    // A connected one: closes this process's connections (the server goes on). Proxies raise
    // ProcessError afterwards. Twice is harmless.
    void shutdown(double timeout = 1.0);
    // Asks the server, wherever it runs, to end (any client with the key may: CPython's server
    // does the same).
    void shutdown_server();

    Address address() const;
    const std::string& authkey() const;
    bool started() const noexcept;  // start() or connect() succeeded and shutdown() was not called

    // A new object of a type registered with MP_MANAGED (made with its factory's arguments):
    // create<Counter>(...) gives a Proxy<Counter>; create<CounterProxy>(...), for a class
    // derived from Proxy<Counter>, gives that class.
    template <class P, class... A>
    auto create(A&&... args) {
        if constexpr (detail::is_proxy_v<P>) {
            using T = typename P::object_type;
            return P(make_managed<T>(std::forward<A>(args)...));
        } else {
            return Proxy<P>(make_managed<P>(std::forward<A>(args)...));
        }
    }

    // Named objects, the C++ form of CPython's register("get_queue", callable=lambda: queue):
    // publish() keeps p's object in the server under `name` (replacing what was there) until
    // unpublish() or the server's end, and any client may then lookup<QueueProxy>("jobs")
    // (KeyError when nothing has that name, TypeError when it is of another type).
    void publish(const std::string& name, const detail::ProxyBase& p);
    template <class P>
    P lookup(const std::string& name) {
        static_assert(detail::is_proxy_v<P>, "mp::BaseManager::lookup<P>: P is a proxy type (QueueProxy, DictProxy<K, V> ...)");
        P p;
        detail::ProxyBase& base = p;
        base.ref_ = lookup_ref(name, base.kinds_);
        return p;
    }
    void unpublish(const std::string& name);
    std::vector<std::string> published();

    // The default call timeout of this manager's proxies in this process (< 0: none).
    void set_call_timeout(std::optional<double> seconds);

    // How many objects the server holds (Python's _number_of_objects), and one line per object.
    std::size_t number_of_objects();
    std::string debug_info();

protected:
    // A new builtin object ("dict", "Queue" ...) whose creation arguments are in c.
    detail::RefPtr create_builtin(const char* type_id, detail::Call& c);
    std::uint64_t manager_id();
    static std::uint64_t manager_id_of(const detail::ProxyBase& p) { return p.manager_id(); }
    detail::RefPtr lookup_ref(const std::string& name, const char* kinds);

private:
    template <class T, class... A>
    detail::RefPtr make_managed(A&&... args) {
        static_assert(detail::is_managed_v<T>, "mp::BaseManager::create<T>: T is not registered; write MP_MANAGED(T, methods...)");
        using Info = detail::info_of<T>;
        const Info info = mp_managed_info(static_cast<T*>(nullptr));
        using Values = typename factory_values<Info>::type;
        static_assert(sizeof...(A) == std::tuple_size_v<Values>,
                      "mp::BaseManager::create: the arguments must be those of the type's factory (none for MP_MANAGED)");
        Values values(std::forward<A>(args)...);
        detail::Call c;
        c.name = info.type_name;
        {
            detail::CollectRefs col(manager_id(), c.refs, 0);
            encode_message_to(c.a, values);
        }
        return create_builtin(nullptr, c);
    }
    template <class Info>
    struct factory_values;
    template <class T, auto F, auto... Ms>
    struct factory_values<detail::ManagedInfo<T, F, Ms...>> {
        using type = typename detail::factory_fn<decltype(F)>::values;
    };

    std::unique_ptr<detail::ManagerState> s_;
};

// Python's SyncManager: a BaseManager whose builtin types have typed factories. It does not start
// by itself (start(), connect() or get_server()); mp::Manager is one that does.
class SyncManager : public BaseManager {
public:
    using BaseManager::BaseManager;

    template <class K, class V>
    DictProxy<K, V> dict() {
        return dict<K, V>(Items<K, V>());
    }
    template <class K, class V>
    DictProxy<K, V> dict(const std::map<K, V>& initial) {
        return dict<K, V>(Items<K, V>(initial.begin(), initial.end()));
    }
    template <class K, class V>
    DictProxy<K, V> dict(std::initializer_list<std::pair<K, V>> initial) {
        return dict<K, V>(Items<K, V>(initial.begin(), initial.end()));
    }
    template <class K, class V>
    DictProxy<K, V> dict(const Items<K, V>& initial) {
        detail::Call c;
        for (const auto& [k, v] : initial) {
            c.list.push_back(encode_message(k));
            c.list.push_back(keep(v, c, c.list.size()));
        }
        return DictProxy<K, V>(create_builtin("dict", c));
    }
    template <class T>
    ListProxy<T> list(const std::vector<T>& initial = {}) {
        detail::Call c;
        for (const T& v : initial) c.list.push_back(keep(v, c, c.list.size()));
        return ListProxy<T>(create_builtin("list", c));
    }
    template <class T>
    SetProxy<T> set(const std::vector<T>& initial = {}) {
        detail::Call c;
        for (const T& v : initial) c.list.push_back(encode_message(v));
        return SetProxy<T>(create_builtin("set", c));
    }
    template <class T>
    ValueProxy<T> Value(const T& initial = T{}) {
        detail::Call c;
        c.a = keep(initial, c, 0);
        return ValueProxy<T>(create_builtin("Value", c));
    }
    // An array of n default values, or of the values given.
    template <class T>
    ArrayProxy<T> Array(std::size_t n) {
        return Array<T>(std::vector<T>(n));
    }
    template <class T>
    ArrayProxy<T> Array(const std::vector<T>& values) {
        detail::Call c;
        for (const T& v : values) c.list.push_back(keep(v, c, c.list.size()));
        return ArrayProxy<T>(create_builtin("Array", c));
    }
    NamespaceProxy Namespace();
    QueueProxy Queue(long maxsize = 0);
    JoinableQueueProxy JoinableQueue(long maxsize = 0);
    AcquirerProxy Lock();
    AcquirerProxy RLock();
    AcquirerProxy Semaphore(int value = 1);
    AcquirerProxy BoundedSemaphore(int value = 1);
    // With its own RLock, or with `lock` (a Lock or RLock of this manager), as Python's.
    ConditionProxy Condition();
    ConditionProxy Condition(const AcquirerProxy& lock);
    EventProxy Event();
    // timeout: the default for wait() (< 0: none).
    BarrierProxy Barrier(int parties, std::optional<double> timeout = std::nullopt);

private:
    template <class T>
    std::string keep(const T& v, detail::Call& c, std::uint64_t index) {
        std::string s;
        detail::CollectRefs col(manager_id(), c.refs, index);
        encode_message_to(s, v);
        return s;
    }
};

// multiprocessing.Manager(): a SyncManager started at once (with ctx's start method, or the
// default one), shut down by its destructor.
class Manager : public SyncManager {
public:
    Manager();
    explicit Manager(const Context& ctx);
    Manager(const Address& address, std::string authkey, const Context& ctx);
};

}  // namespace mp

// ---- registration macros ---------------------------------------------------------------------

// MP_MANAGED(Type, method, method...): registers Type for managers, made with its default
// constructor; MP_MANAGED_FACTORY(Type, factory, method...): made by factory(args...), a
// function returning Type (or std::unique_ptr<Type>). At namespace scope, in Type's namespace;
// up to 32 methods; methods may not be overloaded.
#define MP_MANAGED(T, ...) MP_DETAIL_MANAGED(T, nullptr, __VA_ARGS__)
#define MP_MANAGED_FACTORY(T, F, ...) MP_DETAIL_MANAGED(T, &F, __VA_ARGS__)

#define MP_DETAIL_MANAGED(T, F, ...)                                                                   \
    [[maybe_unused]] inline ::mp::detail::ManagedInfo<T, F, MP_DETAIL_MEMBERS(T, __VA_ARGS__)> mp_managed_info(T*) { \
        return {#T, #__VA_ARGS__};                                                                     \
    }                                                                                                  \
    [[maybe_unused]] static const bool MP_DETAIL_CONCAT(mp_managed_registered_, MP_UNIQUE_LINE_ID) =         \
        ::mp::detail::register_managed(mp_managed_info(static_cast<T*>(nullptr)))

#define MP_DETAIL_NARGS(...)                                                                          \
    MP_DETAIL_NARGS_(__VA_ARGS__, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, \
                     14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define MP_DETAIL_NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, _17, _18, \
                         _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, _32, N, ...)  \
    N
#define MP_DETAIL_MEMBERS(T, ...) MP_DETAIL_CONCAT(MP_DETAIL_M_, MP_DETAIL_NARGS(__VA_ARGS__))(T, __VA_ARGS__)
#define MP_DETAIL_M_1(T, a) &T::a
#define MP_DETAIL_M_2(T, a, ...) &T::a, MP_DETAIL_M_1(T, __VA_ARGS__)
#define MP_DETAIL_M_3(T, a, ...) &T::a, MP_DETAIL_M_2(T, __VA_ARGS__)
#define MP_DETAIL_M_4(T, a, ...) &T::a, MP_DETAIL_M_3(T, __VA_ARGS__)
#define MP_DETAIL_M_5(T, a, ...) &T::a, MP_DETAIL_M_4(T, __VA_ARGS__)
#define MP_DETAIL_M_6(T, a, ...) &T::a, MP_DETAIL_M_5(T, __VA_ARGS__)
#define MP_DETAIL_M_7(T, a, ...) &T::a, MP_DETAIL_M_6(T, __VA_ARGS__)
#define MP_DETAIL_M_8(T, a, ...) &T::a, MP_DETAIL_M_7(T, __VA_ARGS__)
#define MP_DETAIL_M_9(T, a, ...) &T::a, MP_DETAIL_M_8(T, __VA_ARGS__)
#define MP_DETAIL_M_10(T, a, ...) &T::a, MP_DETAIL_M_9(T, __VA_ARGS__)
#define MP_DETAIL_M_11(T, a, ...) &T::a, MP_DETAIL_M_10(T, __VA_ARGS__)
#define MP_DETAIL_M_12(T, a, ...) &T::a, MP_DETAIL_M_11(T, __VA_ARGS__)
#define MP_DETAIL_M_13(T, a, ...) &T::a, MP_DETAIL_M_12(T, __VA_ARGS__)
#define MP_DETAIL_M_14(T, a, ...) &T::a, MP_DETAIL_M_13(T, __VA_ARGS__)
#define MP_DETAIL_M_15(T, a, ...) &T::a, MP_DETAIL_M_14(T, __VA_ARGS__)
#define MP_DETAIL_M_16(T, a, ...) &T::a, MP_DETAIL_M_15(T, __VA_ARGS__)
#define MP_DETAIL_M_17(T, a, ...) &T::a, MP_DETAIL_M_16(T, __VA_ARGS__)
#define MP_DETAIL_M_18(T, a, ...) &T::a, MP_DETAIL_M_17(T, __VA_ARGS__)
#define MP_DETAIL_M_19(T, a, ...) &T::a, MP_DETAIL_M_18(T, __VA_ARGS__)
#define MP_DETAIL_M_20(T, a, ...) &T::a, MP_DETAIL_M_19(T, __VA_ARGS__)
#define MP_DETAIL_M_21(T, a, ...) &T::a, MP_DETAIL_M_20(T, __VA_ARGS__)
#define MP_DETAIL_M_22(T, a, ...) &T::a, MP_DETAIL_M_21(T, __VA_ARGS__)
#define MP_DETAIL_M_23(T, a, ...) &T::a, MP_DETAIL_M_22(T, __VA_ARGS__)
#define MP_DETAIL_M_24(T, a, ...) &T::a, MP_DETAIL_M_23(T, __VA_ARGS__)
#define MP_DETAIL_M_25(T, a, ...) &T::a, MP_DETAIL_M_24(T, __VA_ARGS__)
#define MP_DETAIL_M_26(T, a, ...) &T::a, MP_DETAIL_M_25(T, __VA_ARGS__)
#define MP_DETAIL_M_27(T, a, ...) &T::a, MP_DETAIL_M_26(T, __VA_ARGS__)
#define MP_DETAIL_M_28(T, a, ...) &T::a, MP_DETAIL_M_27(T, __VA_ARGS__)
#define MP_DETAIL_M_29(T, a, ...) &T::a, MP_DETAIL_M_28(T, __VA_ARGS__)
#define MP_DETAIL_M_30(T, a, ...) &T::a, MP_DETAIL_M_29(T, __VA_ARGS__)
#define MP_DETAIL_M_31(T, a, ...) &T::a, MP_DETAIL_M_30(T, __VA_ARGS__)
#define MP_DETAIL_M_32(T, a, ...) &T::a, MP_DETAIL_M_31(T, __VA_ARGS__)

// C++20 ranges (standard C++17 does not see this). A proxy's iterators own their snapshot, so
// they stay valid after the proxy is gone (a borrowed_range: std::ranges::find on a temporary
// proxy gives an iterator, not std::ranges::dangling). A proxy's size() asks the server now,
// which need not be the size of the snapshot a later begin() takes (another process may have
// changed the container in between): the views must not take it as the snapshot's size, so
// the proxies are not sized_ranges (size() itself is unchanged).
#if __cplusplus >= 202002L
#include <ranges>
template <class K, class V>
inline constexpr bool std::ranges::enable_borrowed_range<mp::DictProxy<K, V>> = true;
template <class T>
inline constexpr bool std::ranges::enable_borrowed_range<mp::ListProxy<T>> = true;
template <class T>
inline constexpr bool std::ranges::enable_borrowed_range<mp::SetProxy<T>> = true;
template <class T>
inline constexpr bool std::ranges::enable_borrowed_range<mp::ArrayProxy<T>> = true;
template <class K, class V>
inline constexpr bool std::ranges::disable_sized_range<mp::DictProxy<K, V>> = true;
template <class T>
inline constexpr bool std::ranges::disable_sized_range<mp::ListProxy<T>> = true;
template <class T>
inline constexpr bool std::ranges::disable_sized_range<mp::SetProxy<T>> = true;
template <class T>
inline constexpr bool std::ranges::disable_sized_range<mp::ArrayProxy<T>> = true;
#endif
