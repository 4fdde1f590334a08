// The registry of type names behind the codec's type fingerprints (mp/codec.hpp): which types
// this program encodes as typed values, so that a receive of the wrong type can name what the
// peer sent. The peer is almost always the same program (a fork, spawn or forkserver child, a
// pool worker, an MPI rank), whose types registered themselves in the same way; a fingerprint
// nobody here registered is named by its number.
#include <algorithm>
#include <cstdio>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "mp/codec.hpp"

namespace mp {

namespace {

struct TypeNames {
    std::mutex lock;
    std::vector<std::pair<std::uint32_t, std::string (*)()>> entries;
};

// Never destroyed: a type may register during any static initialisation, and a late receive
// (a static destructor, another thread at exit) may still look one up.
TypeNames& type_names() {
    static TypeNames* names = new TypeNames;
    return *names;
}

std::string hex(std::uint32_t f) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(f));
    return buf;
}

}  // namespace

namespace codec_detail {

bool register_type_name(std::uint32_t fingerprint, std::string (*name)()) noexcept {
    try {
        TypeNames& t = type_names();
        std::lock_guard<std::mutex> hold(t.lock);
        for (const auto& e : t.entries)
            if (e.first == fingerprint && e.second == name) return true;
        t.entries.emplace_back(fingerprint, name);
        return true;
    } catch (...) {
        return false;  // out of memory at start-up: the type is only named by its number
    }
}

void throw_type_mismatch(std::uint32_t found, std::uint32_t expected, std::string (*expected_name)(), std::size_t at) {
    throw TypeError("mp: received " + type_name_of_fingerprint(found) + " where " + expected_name() +
                    " was expected (type fingerprints " + hex(found) + " and " + hex(expected) + ", at byte " +
                    std::to_string(at) + ")");
}

}  // namespace codec_detail

std::string type_name_of_fingerprint(std::uint32_t fingerprint) {
    std::vector<std::string (*)()> fns;
    {
        TypeNames& t = type_names();
        std::lock_guard<std::mutex> hold(t.lock);
        for (const auto& e : t.entries)
            if (e.first == fingerprint) fns.push_back(e.second);
    }
    if (fns.empty()) return "a type this program never encodes";
    // The same type registers once from each module that encodes it (the program and libmp),
    // and types of one shape share a fingerprint: one name each, the shortest first (int
    // before long long), in a fixed order.
    std::vector<std::string> names;
    for (auto* f : fns) names.push_back(f());
    std::sort(names.begin(), names.end(), [](const std::string& a, const std::string& b) {
        return a.size() != b.size() ? a.size() < b.size() : a < b;
    });
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::string out = names[0];
    if (names.size() > 1) {
        out += " (or ";
        for (std::size_t i = 1; i < names.size() && i <= 3; ++i) out += (i > 1 ? ", " : "") + names[i];
        if (names.size() > 4) out += ", ...";
        out += ": the same shape)";
    }
    return out;
}

}  // namespace mp
