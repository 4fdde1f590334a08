// mp/managers.hpp - mp::Manager, the C++ counterpart of multiprocessing.Manager(): a server
// process that holds shared containers, and proxies through which any process uses them.
//
//     mp::Manager manager;                                    // starts the server process
//     auto accounts = manager.dict<std::string, int>();      // a DictProxy
//     auto log = manager.list<std::string>();                 // a ListProxy
//     mp::Lock lock = manager.Lock();
//     mp::Process p = ctx.Process(deposit, accounts, lock);   // proxies are Process arguments
//     ...
//     { std::lock_guard<mp::Lock> g(lock); accounts.set("bank", accounts.at("bank") + 100); }
//
// How it works: the server is an mp::Process running a Listener (a Unix socket on POSIX, a
// named pipe on Windows) with a random authkey; it keeps each container as encoded bytes (so
// it needs no types: the proxy in each process encodes and decodes), and serves each client
// connection on its own thread, one request at a time. A proxy that crosses to a child
// (fork or spawn) carries the address, the key and the object's id; each process opens its own
// connection on first use (a fork child never shares its parent's: two processes writing on
// one socket would mix their requests).
//
// Every single operation is atomic (the server applies it under one lock); a read followed by
// a write is not, exactly as in Python: `d.set(k, d.at(k) + 1)` needs a lock around it, which
// is what the tutorial's bank deposit shows. Missing keys and indexes are KeyError and
// IndexError; negative list indexes count from the end, as in Python.
//
// Manager.Lock(), RLock(), Semaphore(), Event(), Condition(), Barrier() and Queue() return
// mp's own process-shared objects (they work between processes without a server round trip,
// and they survive a crashed owner; see mp/lock.hpp), where Python returns proxies to
// threading objects inside the server. Containers live until the manager shuts down (there is
// no reference counting of proxies); shutdown() or the destructor ends the server, after which
// proxies raise.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "listener.hpp"
#include "process.hpp"
#include "queues.hpp"
#include "synchronize.hpp"

namespace mp {

class Manager;

namespace detail {

// One process's connection to one manager server, shared by the proxies that use it.
class ManagerClient;

// What every proxy holds: which server, which object.
class ProxyBase {
public:
    ProxyBase() = default;
    void mp_encode(Encoder& e) const;
    void mp_decode(Decoder& d);

protected:
    ProxyBase(std::shared_ptr<ManagerClient> c, std::uint64_t id) : client_(std::move(c)), id_(id) {}
    // One request to the server; the answer's value (encoded), or the server's error thrown.
    std::string call(std::uint8_t op, const std::string& a = {}, const std::string& b = {}, std::int64_t i = 0) const;
    std::vector<std::string> call_list(std::uint8_t op, const std::string& a = {}) const;

    std::shared_ptr<ManagerClient> client_;
    std::uint64_t id_ = 0;
    friend class mp::Manager;
};

enum ManagerOp : std::uint8_t {
    kDictGet = 1,
    kDictSet,
    kDictDel,
    kDictContains,
    kDictLen,
    kDictKeys,
    kDictValues,
    kDictItems,
    kDictClear,
    kDictPop,
    kDictSetDefault,
    kListAppend,
    kListGet,
    kListSet,
    kListLen,
    kListPop,
    kListInsert,
    kListAll,
    kListClear,
    kListExtend,
    kValueGet,
    kValueSet,
    kDictUpdate,
};

template <class T>
std::string enc(const T& v) {
    std::string s;
    encode_to(s, v);
    return s;
}

}  // namespace detail

// A dict in the manager's server (Python's DictProxy), keys K and values V.
template <class K, class V>
class DictProxy : public detail::ProxyBase {
    static_assert(is_encodable_v<K> && is_encodable_v<V>, "mp::DictProxy: keys and values must be types the codec can encode");

public:
    DictProxy() = default;

    // d[k]: KeyError when k is not there.
    V at(const K& k) const { return decode<V>(call(detail::kDictGet, detail::enc(k))); }
    // d.get(k, default)
    V get(const K& k, const V& dflt) const {
        const std::string r = call(detail::kDictGet, detail::enc(k), {}, 1);
        return r.empty() ? dflt : decode<V>(r.substr(1));
    }
    std::optional<V> get(const K& k) const {
        const std::string r = call(detail::kDictGet, detail::enc(k), {}, 1);
        if (r.empty()) return std::nullopt;
        return decode<V>(r.substr(1));
    }
    void set(const K& k, const V& v) { call(detail::kDictSet, detail::enc(k), detail::enc(v)); }
    // del d[k]: KeyError when k is not there.
    void erase(const K& k) { call(detail::kDictDel, detail::enc(k)); }
    bool contains(const K& k) const { return call(detail::kDictContains, detail::enc(k)) == "1"; }
    std::size_t size() const { return static_cast<std::size_t>(decode<std::uint64_t>(call(detail::kDictLen))); }
    V pop(const K& k) { return decode<V>(call(detail::kDictPop, detail::enc(k))); }
    // The value at k, after putting dflt there if k was missing (one atomic step).
    V setdefault(const K& k, const V& dflt) { return decode<V>(call(detail::kDictSetDefault, detail::enc(k), detail::enc(dflt))); }
    void clear() { call(detail::kDictClear); }
    // One atomic step, as Python's d.update(m).
    void update(const std::map<K, V>& m) {
        std::vector<std::string> kv;
        for (const auto& [k, v] : m) {
            kv.push_back(detail::enc(k));
            kv.push_back(detail::enc(v));
        }
        call(detail::kDictUpdate, detail::enc(kv));
    }
    std::vector<K> keys() const { return decoded<K>(call_list(detail::kDictKeys)); }
    std::vector<V> values() const { return decoded<V>(call_list(detail::kDictValues)); }
    // A snapshot of the whole dict (Python's d.copy(), dict(d)). keys() and values() come in
    // insertion order, as Python's do.
    std::map<K, V> copy() const {
        std::vector<std::string> kv = call_list(detail::kDictItems);
        std::map<K, V> out;
        for (std::size_t i = 0; i + 1 < kv.size(); i += 2) out.emplace(decode<K>(kv[i]), decode<V>(kv[i + 1]));
        return out;
    }

private:
    DictProxy(std::shared_ptr<detail::ManagerClient> c, std::uint64_t id) : ProxyBase(std::move(c), id) {}
    template <class T>
    static std::vector<T> decoded(const std::vector<std::string>& raw) {
        std::vector<T> out;
        out.reserve(raw.size());
        for (const auto& r : raw) out.push_back(decode<T>(r));
        return out;
    }
    friend class Manager;
};

// A list in the manager's server (Python's ListProxy).
template <class T>
class ListProxy : public detail::ProxyBase {
    static_assert(is_encodable_v<T>, "mp::ListProxy: the items must be a type the codec can encode");

public:
    ListProxy() = default;

    void append(const T& v) { call(detail::kListAppend, detail::enc(v)); }
    // One atomic step, as Python's l.extend(vs).
    void extend(const std::vector<T>& vs) {
        std::vector<std::string> items;
        for (const T& v : vs) items.push_back(detail::enc(v));
        call(detail::kListExtend, detail::enc(items));
    }
    // l[i], negative i from the end: IndexError outside.
    T at(std::int64_t i) const { return decode<T>(call(detail::kListGet, {}, {}, i)); }
    void set(std::int64_t i, const T& v) { call(detail::kListSet, detail::enc(v), {}, i); }
    std::size_t size() const { return static_cast<std::size_t>(decode<std::uint64_t>(call(detail::kListLen))); }
    // l.pop(i), the last by default: IndexError on an empty list.
    T pop(std::int64_t i = -1) { return decode<T>(call(detail::kListPop, {}, {}, i)); }
    void insert(std::int64_t i, const T& v) { call(detail::kListInsert, detail::enc(v), {}, i); }
    void clear() { call(detail::kListClear); }
    // A snapshot of the whole list (Python's list(l), l[:]).
    std::vector<T> copy() const {
        std::vector<T> out;
        for (const auto& r : call_list(detail::kListAll)) out.push_back(decode<T>(r));
        return out;
    }

private:
    ListProxy(std::shared_ptr<detail::ManagerClient> c, std::uint64_t id) : ProxyBase(std::move(c), id) {}
    friend class Manager;
};

// A single value in the manager's server (Python's manager.Value(typecode, v); .value).
template <class T>
class ValueProxy : public detail::ProxyBase {
    static_assert(is_encodable_v<T>, "mp::ValueProxy: the value must be a type the codec can encode");

public:
    ValueProxy() = default;
    T get() const { return decode<T>(call(detail::kValueGet)); }
    void set(const T& v) { call(detail::kValueSet, detail::enc(v)); }

private:
    ValueProxy(std::shared_ptr<detail::ManagerClient> c, std::uint64_t id) : ProxyBase(std::move(c), id) {}
    friend class Manager;
};

class Manager {
public:
    // Starts the server with ctx's start method (the default one if none is given).
    Manager();
    explicit Manager(const Context& ctx);
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;
    Manager(Manager&&) noexcept;
    Manager& operator=(Manager&&) noexcept;
    ~Manager();

    template <class K, class V>
    DictProxy<K, V> dict(const std::map<K, V>& initial = {}) {
        DictProxy<K, V> d(client(), create(0));
        d.update(initial);
        return d;
    }
    template <class T>
    ListProxy<T> list(const std::vector<T>& initial = {}) {
        ListProxy<T> l(client(), create(1));
        l.extend(initial);
        return l;
    }
    template <class T>
    ValueProxy<T> Value(const T& initial) {
        ValueProxy<T> v(client(), create(2));
        v.set(initial);
        return v;
    }

    // mp's own process-shared objects (see the top of this file).
    mp::Lock Lock() const { return mp::Lock(); }
    mp::RLock RLock() const { return mp::RLock(); }
    mp::Semaphore Semaphore(int value = 1) const { return mp::Semaphore(value); }
    mp::BoundedSemaphore BoundedSemaphore(int value = 1) const { return mp::BoundedSemaphore(value); }
    mp::Event Event() const { return mp::Event(); }
    mp::Condition Condition() const { return mp::Condition(); }
    mp::Barrier Barrier(int parties) const { return mp::Barrier(parties); }
    mp::Queue Queue(long maxsize = 0) const { return mp::Queue(maxsize); }

    // Ends the server (waiting at most `timeout` seconds before it is killed). Proxies raise
    // afterwards. Twice is harmless.
    void shutdown(double timeout = 5.0);
    // The server's address (its Listener's).
    Address address() const;

private:
    std::shared_ptr<detail::ManagerClient> client() const;
    std::uint64_t create(std::uint8_t kind);
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace mp
