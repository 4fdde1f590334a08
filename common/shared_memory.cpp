// common/shared_memory.cpp - mp::SharedMemory over common/sys/shared_memory.hpp: name rules,
// unique names, Python's errors, the shared mapping that copies of the object hold, and the
// codec hook that passes a segment to a spawned child.
#include "mp/shared_memory.hpp"

#include <chrono>
#include <atomic>
#include <random>

#include "mp/codec.hpp"
#include "mp/errors.hpp"
#include "logging_internal.hpp"
#include "sys/os.hpp"
#include "sys/shared_memory.hpp"
#include "sys/tracker.hpp"

namespace mp {

struct SharedMemory::Impl {
    sys::Handle handle;
    void* addr = nullptr;
    std::size_t size = 0;
    std::string name;

    ~Impl() { unmap(); }
    void unmap() noexcept {
        if (addr) sys::shm_unmap(addr, size);
        addr = nullptr;
        handle.reset();
    }
};

namespace {

std::string normalise(const std::string& name) {
    if (sys::kShmSlashPrefix && !name.empty() && name[0] == '/') return name.substr(1);  // shm_open's spelling
    return name;
}

void check_name(const std::string& name, const std::string& given) {
    if (const char* why = sys::shm_name_problem(name))
        throw ValueError("SharedMemory: invalid name '" + given + "': " + why);
}

std::string unique_name() {
    thread_local std::mt19937_64 rng;
    thread_local int seeded_for = 0;
    const int pid = sys::current_pid();
    if (seeded_for != pid) {  // a fork child must not repeat its parent's sequence
        std::random_device rd;
        std::seed_seq seq{rd(), rd(), static_cast<unsigned>(pid),
                          static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count())};
        rng.seed(seq);
        seeded_for = pid;
    }
    static const char hex[] = "0123456789abcdef";
    std::string s = sys::shm_generated_prefix();
    std::uint64_t v = rng();
    for (int i = 0; i < 16; ++i, v >>= 4) s += hex[v & 15];
    return s;
}

void map_into(SharedMemory::Impl& impl, std::size_t size, const std::string& what) {
    std::size_t n = size;
    void* addr = nullptr;
    if (auto ec = sys::shm_map(impl.handle.get(), n, addr)) raise_os_error(ec, what);
    impl.addr = addr;
    impl.size = n;
}

}  // namespace

SharedMemory::SharedMemory() noexcept = default;

SharedMemory::SharedMemory(const std::string& name, bool create_new, long long size) {
    if (create_new) {
        if (size <= 0) throw ValueError("SharedMemory: 'size' must be a positive number different from zero");
        *this = create(static_cast<std::size_t>(size), name);
    } else {
        *this = attach(name);
    }
}

SharedMemory SharedMemory::create(std::size_t size, const std::string& name) {
    if (size == 0) throw ValueError("SharedMemory: 'size' must be a positive number different from zero");
    auto impl = std::make_shared<Impl>();
    const bool generated = name.empty();
    bool tracked = true;
    for (int attempt = 0;; ++attempt) {
        impl->name = generated ? unique_name() : normalise(name);
        if (!generated) check_name(impl->name, name);
        const std::error_code ec = sys::shm_create(impl->name, size, impl->handle, tracked);
        if (!ec) break;
        if (generated && ec == std::errc::file_exists && attempt < 100) continue;
        raise_os_error(ec, "SharedMemory: creating '" + impl->name + "'");
    }
    try {
        map_into(*impl, size, "SharedMemory: mapping '" + impl->name + "'");
    } catch (...) {
        impl->handle.reset();
        sys::shm_remove(impl->name);
        throw;
    }
    impl->size = size;  // the creator sees the size it asked for (a Windows view is page-rounded)
    if (!tracked) {
        static std::atomic<bool> warned{false};
        if (!warned.exchange(true))
            detail::log(detail::kLogWarning,
                        "mp: warning: the resource tracker could not be started; shared memory segments this "
                        "process creates will not be unlinked if it crashes");
    }
    SharedMemory shm;
    shm.impl_ = std::move(impl);
    return shm;
}

SharedMemory SharedMemory::attach(const std::string& name) {
    if (name.empty()) throw ValueError("SharedMemory: attaching needs a name ('name' is empty and 'create' is false)");
    auto impl = std::make_shared<Impl>();
    impl->name = normalise(name);
    check_name(impl->name, name);
    if (auto ec = sys::shm_attach(impl->name, impl->handle))
        raise_os_error(ec, "SharedMemory: attaching '" + impl->name + "'");
    map_into(*impl, 0, "SharedMemory: mapping '" + impl->name + "'");
    SharedMemory shm;
    shm.impl_ = std::move(impl);
    return shm;
}

std::byte* SharedMemory::data() const noexcept { return impl_ ? static_cast<std::byte*>(impl_->addr) : nullptr; }

std::size_t SharedMemory::size() const noexcept { return impl_ ? impl_->size : 0; }

ByteSpan SharedMemory::buf() const noexcept {
    if (!impl_ || !impl_->addr) return {};
    return {static_cast<std::byte*>(impl_->addr), impl_->size};
}

const std::string& SharedMemory::name() const noexcept {
    static const std::string none;
    return impl_ ? impl_->name : none;
}

bool SharedMemory::closed() const noexcept { return !impl_ || !impl_->addr; }

void SharedMemory::close() {
    if (impl_) impl_->unmap();
}

void SharedMemory::unlink() {
    if (!impl_) throw ValueError("SharedMemory: unlink() on an object that names no segment");
    if (auto ec = sys::shm_remove(impl_->name)) raise_os_error(ec, "SharedMemory: unlinking '" + impl_->name + "'");
}

void SharedMemory::mp_encode(Encoder& e) const {
    if (closed()) throw ValueError("SharedMemory: a closed segment cannot be passed to a process");
    e.write_handle(sys::handle_to_value(impl_->handle.get()));
    e.write(impl_->name);
    e.write(static_cast<std::uint64_t>(impl_->size));
}

void SharedMemory::mp_decode(Decoder& d) {
    auto impl = std::make_shared<Impl>();
    impl->handle.reset(sys::handle_from_value(d.read_handle()));
    d.read(impl->name);
    std::uint64_t size = 0;
    d.read(size);
    if (size == 0 || size > static_cast<std::uint64_t>(static_cast<std::size_t>(-1) / 2))
        throw DecodeError("SharedMemory: implausible segment size " + std::to_string(size), d.offset());
    map_into(*impl, static_cast<std::size_t>(size), "SharedMemory: mapping '" + impl->name + "' in the child");
    impl_ = std::move(impl);
}

int SharedMemory::tracker_pid() noexcept { return sys::tracker_pid(); }

void SharedMemory::stop_tracker() noexcept { sys::stop_tracker(); }

}  // namespace mp
