// common/managers.cpp - mp::Manager: the server process that keeps shared containers, and the
// client side of its proxies (see mp/managers.hpp).
//
// Portable: written against Process, Pipe, Listener and Client. The server keeps every
// container as encoded bytes and never needs its type; it serves each connection on a thread
// of its own and applies each request under one lock, so every single operation is atomic.
#include "mp/managers.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <mutex>
#include <new>
#include <thread>
#include <unordered_map>

#include "mp/connection.hpp"
#include "process_internal.hpp"
#include "sys/os.hpp"
#include "sys/socket.hpp"

namespace mp {
namespace detail {

namespace {

enum : std::uint8_t { kCreate = 100, kShutdown = 101 };
enum : std::uint8_t { kFine = 0, kKeyError, kIndexError, kValueError };

struct Request {
    std::uint8_t op = 0;
    std::uint64_t id = 0;
    std::string a, b;
    std::int64_t i = 0;
    MP_FIELDS(op, id, a, b, i)
};

struct Reply {
    std::uint8_t status = kFine;
    std::string value;
    std::vector<std::string> list;
    std::string error;
    MP_FIELDS(status, value, list, error)
};

// ---- the server ---------------------------------------------------------------------------

struct Store {
    struct Entry {
        std::string value;
        std::uint64_t seq;  // insertion order, for keys() as Python gives them
    };
    struct Object {
        std::uint8_t kind = 0;  // 0 dict, 1 list, 2 value
        std::map<std::string, Entry> dict;
        std::uint64_t next_seq = 0;
        std::vector<std::string> list;
        std::string value;
    };
    std::mutex mu;
    std::unordered_map<std::uint64_t, Object> objects;
    std::uint64_t next_id = 1;
};

Reply error_reply(std::uint8_t status, std::string why) {
    Reply r;
    r.status = status;
    r.error = std::move(why);
    return r;
}

Reply encoded(std::uint64_t n) {
    Reply r;
    encode_to(r.value, n);
    return r;
}

// Python's index rules: negative counts from the end; outside is IndexError (or, for insert,
// the nearest end).
bool normalise(std::int64_t& i, std::size_t size, bool clamp) {
    const auto n = static_cast<std::int64_t>(size);
    if (i < 0) i += n;
    if (clamp) {
        i = i < 0 ? 0 : i > n ? n : i;
        return true;
    }
    return i >= 0 && i < n;
}

std::vector<const std::pair<const std::string, Store::Entry>*> in_order(const Store::Object& o) {
    std::vector<const std::pair<const std::string, Store::Entry>*> v;
    v.reserve(o.dict.size());
    for (const auto& kv : o.dict) v.push_back(&kv);
    std::sort(v.begin(), v.end(), [](const auto* x, const auto* y) { return x->second.seq < y->second.seq; });
    return v;
}

Reply handle(Store& s, const Request& q) {
    std::lock_guard<std::mutex> lk(s.mu);
    if (q.op == kCreate) {
        const std::uint64_t id = s.next_id++;
        s.objects[id].kind = static_cast<std::uint8_t>(q.i);
        return encoded(id);
    }
    auto it = s.objects.find(q.id);
    if (it == s.objects.end()) return error_reply(kValueError, "mp::Manager: no shared object " + std::to_string(q.id));
    Store::Object& o = it->second;
    const bool is_dict = (q.op >= kDictGet && q.op <= kDictSetDefault) || q.op == kDictUpdate;
    const bool is_list = (q.op >= kListAppend && q.op <= kListClear) || q.op == kListExtend;
    if ((is_dict && o.kind != 0) || (is_list && o.kind != 1) || (!is_dict && !is_list && o.kind != 2))
        return error_reply(kValueError, "mp::Manager: shared object " + std::to_string(q.id) + " is of another kind");
    Reply r;
    switch (q.op) {
    case kDictGet: {
        auto e = o.dict.find(q.a);
        if (q.i == 1) {  // get(k, default): "" for missing, else a mark and the value
            if (e != o.dict.end()) r.value = "\1" + e->second.value;
            return r;
        }
        if (e == o.dict.end()) return error_reply(kKeyError, "mp::DictProxy: no such key");
        r.value = e->second.value;
        return r;
    }
    case kDictSet: {
        auto e = o.dict.find(q.a);
        if (e != o.dict.end())
            e->second.value = q.b;
        else
            o.dict.emplace(q.a, Store::Entry{q.b, o.next_seq++});
        return r;
    }
    case kDictDel:
        if (o.dict.erase(q.a) == 0) return error_reply(kKeyError, "mp::DictProxy::erase: no such key");
        return r;
    case kDictContains: r.value = o.dict.count(q.a) ? "1" : "0"; return r;
    case kDictLen: return encoded(o.dict.size());
    case kDictKeys:
        for (const auto* kv : in_order(o)) r.list.push_back(kv->first);
        return r;
    case kDictValues:
        for (const auto* kv : in_order(o)) r.list.push_back(kv->second.value);
        return r;
    case kDictItems:
        for (const auto* kv : in_order(o)) {
            r.list.push_back(kv->first);
            r.list.push_back(kv->second.value);
        }
        return r;
    case kDictClear: o.dict.clear(); return r;
    case kDictPop: {
        auto e = o.dict.find(q.a);
        if (e == o.dict.end()) return error_reply(kKeyError, "mp::DictProxy::pop: no such key");
        r.value = std::move(e->second.value);
        o.dict.erase(e);
        return r;
    }
    case kDictSetDefault: {
        auto e = o.dict.find(q.a);
        if (e == o.dict.end()) e = o.dict.emplace(q.a, Store::Entry{q.b, o.next_seq++}).first;
        r.value = e->second.value;
        return r;
    }
    case kListAppend: o.list.push_back(q.a); return r;
    case kListGet: {
        std::int64_t i = q.i;
        if (!normalise(i, o.list.size(), false)) return error_reply(kIndexError, "mp::ListProxy: list index out of range");
        r.value = o.list[static_cast<std::size_t>(i)];
        return r;
    }
    case kListSet: {
        std::int64_t i = q.i;
        if (!normalise(i, o.list.size(), false))
            return error_reply(kIndexError, "mp::ListProxy: list assignment index out of range");
        o.list[static_cast<std::size_t>(i)] = q.a;
        return r;
    }
    case kListLen: return encoded(o.list.size());
    case kListPop: {
        if (o.list.empty()) return error_reply(kIndexError, "mp::ListProxy::pop: pop from empty list");
        std::int64_t i = q.i;
        if (!normalise(i, o.list.size(), false)) return error_reply(kIndexError, "mp::ListProxy::pop: pop index out of range");
        r.value = std::move(o.list[static_cast<std::size_t>(i)]);
        o.list.erase(o.list.begin() + i);
        return r;
    }
    case kListInsert: {
        std::int64_t i = q.i;
        normalise(i, o.list.size(), true);
        o.list.insert(o.list.begin() + i, q.a);
        return r;
    }
    case kListAll: r.list = o.list; return r;
    case kListClear: o.list.clear(); return r;
    case kListExtend: {
        auto items = decode<std::vector<std::string>>(q.a);
        o.list.insert(o.list.end(), std::make_move_iterator(items.begin()), std::make_move_iterator(items.end()));
        return r;
    }
    case kDictUpdate: {
        auto kv = decode<std::vector<std::string>>(q.a);
        for (std::size_t k = 0; k + 1 < kv.size(); k += 2) {
            auto e = o.dict.find(kv[k]);
            if (e != o.dict.end())
                e->second.value = std::move(kv[k + 1]);
            else
                o.dict.emplace(std::move(kv[k]), Store::Entry{std::move(kv[k + 1]), o.next_seq++});
        }
        return r;
    }
    case kValueGet: r.value = o.value; return r;
    case kValueSet: o.value = q.a; return r;
    default: return error_reply(kValueError, "mp::Manager: unknown request " + std::to_string(q.op));
    }
}

// The server's own socket file (POSIX), removed before the quick exit below, which skips the
// Listener's destructor.
std::string g_socket_path;

void serve(Store& s, Connection c, std::atomic<bool>& stop) {
    for (;;) {
        Request q;
        try {
            q = c.recv<Request>();
        } catch (const std::exception&) {
            return;  // the client's process ended (or sent garbage): its connection goes
        }
        if (q.op == kShutdown) {
            stop = true;
            try {
                c.send(Reply{});
            } catch (const std::exception&) {
            }
            // The answer is out; nothing else in this process needs an orderly end (no
            // children, no buffered output), and the accepting thread may wait 100 ms more.
            if (!g_socket_path.empty()) std::remove(g_socket_path.c_str());
            std::_Exit(0);
        }
        try {
            c.send(handle(s, q));
        } catch (const std::exception&) {
            return;
        }
    }
}

std::string random_key() {
    unsigned char raw[32];
    if (auto ec = sys::random_bytes(raw, sizeof raw)) raise_os_error(ec, "mp::Manager: an authentication key");
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += digits[c >> 4];
        out += digits[c & 15];
    }
    return out;
}

}  // namespace

int manager_server(Connection report, std::string authkey) {
    Listener listener(default_family(), authkey);
    if (listener.address().family == AddressFamily::unix_socket) g_socket_path = listener.address().path;
    report.send(listener.address());
    report.close();
    // Never freed: the serving threads are detached and may still run while the process ends.
    auto* store = new Store;
    auto* stop = new std::atomic<bool>(false);
    while (!*stop) {
        try {
            Connection c = listener.accept(0.1);
            // Detached: the process ends soon after it answers a shutdown, and its other
            // connections end with it.
            std::thread(serve, std::ref(*store), std::move(c), std::ref(*stop)).detach();
        } catch (const TimeoutError&) {
        } catch (const AuthenticationError&) {  // a stranger without the key: refused, go on
        } catch (const std::exception&) {
            // Out of descriptors, a connection that died in the backlog...: Python's server
            // goes on too; the pause keeps a lasting error from spinning.
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
    }
    return 0;
}
MP_TARGET(manager_server);

// ---- the client side ----------------------------------------------------------------------

class ManagerClient {
public:
    ManagerClient(Address address, std::string authkey) : address_(std::move(address)), authkey_(std::move(authkey)) {}

    Reply request(const Request& q) {
        std::lock_guard<std::mutex> lk(mu_);
        if (down_) throw ProcessError("mp::Manager: the manager has been shut down");
        try {
            // A fork child has a copy of its parent's connection: it must not use it.
            if (conn_.closed() || pid_ != mp::getpid()) {
                conn_ = Client(address_, authkey_, 30.0);
                pid_ = mp::getpid();
            }
            conn_.send(q);
            return conn_.recv<Reply>();
        } catch (const AuthenticationError&) {
            throw;
        } catch (const TimeoutError& e) {
            throw ProcessError(std::string("mp::Manager: the manager's server did not answer: ") + e.what());
        } catch (const OSError& e) {
            conn_ = Connection();
            throw ProcessError(std::string("mp::Manager: the manager's server is gone (shut down or died): ") + e.what());
        } catch (const EOFError& e) {
            conn_ = Connection();
            throw ProcessError(std::string("mp::Manager: the manager's server is gone (shut down or died): ") + e.what());
        }
    }
    // In a fork child only (see client_for).
    void renew_lock_after_fork() { new (&mu_) std::mutex; }
    void mark_down() {
        std::lock_guard<std::mutex> lk(mu_);
        down_ = true;
        conn_ = Connection();
    }
    const Address& address() const { return address_; }
    const std::string& authkey() const { return authkey_; }

private:
    std::mutex mu_;
    Connection conn_;
    int pid_ = 0;
    bool down_ = false;
    Address address_;
    std::string authkey_;
};

namespace {

// One client per manager per process, however many proxies arrive (spawn decodes each). The
// registry and the clients' locks are made new in a fork child: another thread of the parent
// may have held one of them at the fork, and nobody would ever release the child's copy
// (Python's ForkAwareThreadLock does the same).
std::mutex g_clients_mu;
std::map<std::string, std::weak_ptr<ManagerClient>> g_clients;

void renew_locks_after_fork() {
    new (&g_clients_mu) std::mutex;
    for (auto& entry : g_clients)
        if (auto c = entry.second.lock()) c->renew_lock_after_fork();
}

std::shared_ptr<ManagerClient> client_for(const Address& a, const std::string& key) {
    static const bool hooked = [] {
        sys::at_fork_in_child(renew_locks_after_fork);
        return true;
    }();
    (void)hooked;
    std::lock_guard<std::mutex> lk(g_clients_mu);
    std::weak_ptr<ManagerClient>& slot = g_clients[a.to_string() + '\n' + key];
    std::shared_ptr<ManagerClient> c = slot.lock();
    if (!c) {
        c = std::make_shared<ManagerClient>(a, key);
        slot = c;
    }
    return c;
}

}  // namespace

// ---- proxies ----------------------------------------------------------------------------------

std::string ProxyBase::call(std::uint8_t op, const std::string& a, const std::string& b, std::int64_t i) const {
    if (!client_) throw ValueError("mp::Manager proxy: this proxy belongs to no manager");
    Request q;
    q.op = op;
    q.id = id_;
    q.a = a;
    q.b = b;
    q.i = i;
    Reply r = client_->request(q);
    switch (r.status) {
    case kFine: return std::move(r.value);
    case kKeyError: throw KeyError(r.error);
    case kIndexError: throw IndexError(r.error);
    default: throw ValueError(r.error);
    }
}

std::vector<std::string> ProxyBase::call_list(std::uint8_t op, const std::string& a) const {
    if (!client_) throw ValueError("mp::Manager proxy: this proxy belongs to no manager");
    Request q;
    q.op = op;
    q.id = id_;
    q.a = a;
    Reply r = client_->request(q);
    if (r.status != kFine) throw ValueError(r.error);
    return std::move(r.list);
}

void ProxyBase::mp_encode(Encoder& e) const {
    if (!client_) throw ValueError("mp::Manager proxy: this proxy belongs to no manager");
    e.write(client_->address());
    e.write(client_->authkey());
    e.write(id_);
}

void ProxyBase::mp_decode(Decoder& d) {
    const auto a = d.read<Address>();
    const auto key = d.read<std::string>();
    id_ = d.read<std::uint64_t>();
    client_ = client_for(a, key);
}

}  // namespace detail

// ---- Manager ----------------------------------------------------------------------------------

struct Manager::State {
    Process server;
    std::shared_ptr<detail::ManagerClient> client;
    bool down = false;
};

Manager::Manager() : Manager(get_context()) {}

Manager::Manager(const Context& ctx) : s_(std::make_unique<State>()) {
    const std::string key = detail::random_key();
    auto [from_server, to_parent] = Pipe(false);
    s_->server = ctx.Process(detail::manager_server, to_parent, key);
    s_->server.set_name("SyncManager-" + std::to_string(mp::getpid()));
    s_->server.set_daemon(true);  // it must not outlive us, even if we are killed
    s_->server.start();
    to_parent.close();
    Address address;
    try {
        if (!from_server.poll(60.0)) throw ProcessError("mp::Manager: the server process did not start within 60 s");
        address = from_server.recv<Address>();
    } catch (const EOFError&) {
        s_->server.join(5.0);
        throw ProcessError("mp::Manager: the server process ended before it listened (exit code " +
                           std::to_string(s_->server.exitcode().value_or(-1)) + ")");
    } catch (...) {
        s_->server.kill();
        s_->server.join();
        throw;
    }
    s_->client = detail::client_for(address, key);
}

Manager::Manager(Manager&&) noexcept = default;
Manager& Manager::operator=(Manager&&) noexcept = default;

Manager::~Manager() {
    if (!s_) return;
    try {
        shutdown();
    } catch (...) {
    }
}

std::shared_ptr<detail::ManagerClient> Manager::client() const {
    if (!s_ || s_->down) throw ProcessError("mp::Manager: the manager has been shut down");
    return s_->client;
}

std::uint64_t Manager::create(std::uint8_t kind) {
    detail::Request q;
    q.op = detail::kCreate;
    q.i = kind;
    detail::Reply r = client()->request(q);
    if (r.status != detail::kFine) throw ValueError(r.error);
    return decode<std::uint64_t>(r.value);
}

void Manager::shutdown(double timeout) {
    if (!s_ || s_->down) return;
    s_->down = true;
    try {
        detail::Request q;
        q.op = detail::kShutdown;
        s_->client->request(q);
    } catch (const std::exception&) {  // already gone: joined below either way
    }
    s_->client->mark_down();
    s_->server.join(timeout);
    if (s_->server.is_alive()) {
        s_->server.kill();
        s_->server.join();
    }
    // A server killed (or dead) before it removed its socket file leaves it: remove it here.
    const Address& a = s_->client->address();
    if (a.family == AddressFamily::unix_socket) std::remove(a.path.c_str());
}

Address Manager::address() const { return client()->address(); }

}  // namespace mp
