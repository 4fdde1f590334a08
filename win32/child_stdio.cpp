// win32/child_stdio.cpp - a child's standard streams on Windows: named-pipe pairs and
// overlapped transfers waited for together.
//
// A child's stdin, stdout or stderr that we talk to is a uniquely named pipe pair
// (make_named_pair, win32/connection.cpp): our end is the overlapped server, the child's a
// synchronous client, because a C runtime reads and writes its standard handles without an
// OVERLAPPED, which an overlapped handle does not allow. Overlapped-ness belongs to each
// handle, so one pipe can have one of each (an anonymous CreatePipe pipe cannot: both of its
// ends are synchronous, and ours could not wait with a timeout).
// communicate's pipe_exchange keeps one overlapped transfer in flight per pipe (stdin, stdout,
// stderr), each on its end's own event, and waits for the first to finish, or for the
// process, in one WaitForMultipleObjects; what is still in flight when it returns is cancelled
// with CancelIoEx, keeping the bytes it had moved. A closed peer is ERROR_BROKEN_PIPE /
// ERROR_NO_DATA, never a signal.
// POSIX differs: plain pipe(2)s (ours non-blocking when we write), and one poll() loop over
// the three pipes and the child's pidfd. The ends' own reads and writes are
// win32/connection.cpp's; DEVNULL is open_null_device (win32/handle.cpp).
#include "../common/sys/child_stdio.hpp"

#include <windows.h>

#include <new>

#include "../common/sys/error.hpp"

namespace mp::sys {

std::error_code make_child_pipe(bool parent_reads, PipeEnd& parent, Handle& child) noexcept {
    return make_named_pair(parent_reads ? PairFlow::to_server : PairFlow::to_client, false, parent.h, child);
}

// Nothing to change: the next child's plain ReadFile/WriteFile on our overlapped end waits for
// its own transfer (see the contract), and we hold no transfer of our own on it.
std::error_code ready_end_for_child(PipeEnd&) noexcept { return {}; }

namespace {

constexpr DWORD kExchangeChunk = 64 * 1024;

bool is_peer_gone(DWORD e) noexcept {
    return e == ERROR_BROKEN_PIPE || e == ERROR_NO_DATA || e == ERROR_PIPE_NOT_CONNECTED;
}

// One overlapped ReadFile or WriteFile of pipe_exchange, possibly still in flight.
struct Transfer {
    OVERLAPPED ov{};
    bool pending = false;
};

// Puts what a finished (or cancelled) transfer moved where it belongs. A peer that has gone
// ends that stream; any other failure is the caller's error.
std::error_code account(PipeExchange& x, int slot, BOOL ok, DWORD moved) noexcept {
    const DWORD e = ok ? 0 : GetLastError();
    if (slot < 0) {
        x.sent += moved;
        if (x.sent == x.size || (!ok && is_peer_gone(e))) {
            close_end(*x.input);  // the child may be waiting for end of file
            x.input = nullptr;
        }
    } else {
        if (moved) append_captured(*x.sink[slot], x.scratch.get() + static_cast<std::size_t>(slot) * kExchangeChunk, moved);
        if (!ok && is_peer_gone(e)) x.output[slot] = nullptr;  // end of file
    }
    if (!ok && !is_peer_gone(e) && e != ERROR_OPERATION_ABORTED && e != ERROR_MORE_DATA)
        return os_error(e);
    return {};
}

}  // namespace

std::error_code pipe_exchange(PipeExchange& x, native_handle watch, const Deadline& deadline, bool& watch_ready) noexcept try {
    watch_ready = false;
    if (!x.scratch) x.scratch.reset(new char[2 * kExchangeChunk]);
    // Slot -1 is stdin, 0 and 1 the outputs. Each end waits on its own event.
    Transfer in, out[2];
    auto end_of = [&](int slot) -> PipeEnd* { return slot < 0 ? x.input : x.output[slot]; };
    auto transfer_of = [&](int slot) -> Transfer& { return slot < 0 ? in : out[slot]; };
    // Whatever is still in flight when we leave is cancelled, and what it moved is kept.
    auto settle = [&]() -> std::error_code {
        std::error_code first;
        for (int slot = -1; slot < 2; ++slot) {
            Transfer& t = transfer_of(slot);
            if (!t.pending) continue;
            PipeEnd* end = end_of(slot);
            CancelIoEx(end->h.get(), &t.ov);
            DWORD moved = 0;
            const BOOL ok = GetOverlappedResult(end->h.get(), &t.ov, &moved, TRUE);
            t.pending = false;
            if (auto ec = account(x, slot, ok, moved); ec && !first) first = ec;
        }
        return first;
    };
    if (x.input && x.sent == x.size) account(x, -1, TRUE, 0);
    for (;;) {
        // Start what is not running; a transfer that completes at once is counted and started
        // again, until one has to wait. A few rounds at most, so that a peer that always has
        // more cannot keep us from looking at the watch and the clock.
        bool busy = false;
        for (int slot = -1; slot < 2; ++slot) {
            Transfer& t = transfer_of(slot);
            for (int round = 0; end_of(slot) && !t.pending; ++round) {
                if (round == 16) {
                    busy = true;
                    break;
                }
                PipeEnd* end = end_of(slot);
                native_handle ev = nullptr;
                if (auto ec = end_event(*end, slot < 0, ev)) {
                    settle();
                    return ec;
                }
                t.ov = OVERLAPPED{};
                t.ov.hEvent = ev;
                BOOL ok;
                if (slot < 0) {
                    const std::size_t rest = x.size - x.sent;
                    ok = WriteFile(end->h.get(), const_cast<char*>(x.data + x.sent),
                                   rest > kExchangeChunk ? kExchangeChunk : static_cast<DWORD>(rest), nullptr, &t.ov);
                } else {
                    ok = ReadFile(end->h.get(), x.scratch.get() + static_cast<std::size_t>(slot) * kExchangeChunk,
                                  kExchangeChunk, nullptr, &t.ov);
                }
                if (!ok && GetLastError() == ERROR_IO_PENDING) {
                    t.pending = true;
                    break;
                }
                DWORD moved = 0;
                if (ok) ok = GetOverlappedResult(end->h.get(), &t.ov, &moved, TRUE);
                if (auto ec = account(x, slot, ok, moved)) {
                    settle();
                    return ec;
                }
            }
        }
        if (!x.input && !x.output[0] && !x.output[1]) return {};
        // The watch first: WaitForMultipleObjects reports the lowest ready index, and once the
        // child has ended the caller's drain takes over from here.
        HANDLE hs[4];
        int slots[4];
        DWORD n = 0;
        if (watch) hs[n++] = watch;
        for (int slot = -1; slot < 2; ++slot) {
            if (!transfer_of(slot).pending) continue;
            slots[n] = slot;
            hs[n++] = transfer_of(slot).ov.hEvent;
        }
        std::size_t index = n;
        if (n) {
            if (auto ec = wait_objects(hs, n, busy ? Deadline::now() : deadline, index)) {
                settle();
                return ec;
            }
        }
        if (index == n) {
            if (!deadline.passed()) continue;  // busy: another round
            return settle();
        }
        if (watch && index == 0) {
            watch_ready = true;
            return settle();
        }
        const int slot = slots[index];
        Transfer& t = transfer_of(slot);
        DWORD moved = 0;
        const BOOL ok = GetOverlappedResult(end_of(slot)->h.get(), &t.ov, &moved, FALSE);
        t.pending = false;
        if (auto ec = account(x, slot, ok, moved)) {
            settle();
            return ec;
        }
    }
} catch (const std::bad_alloc&) {
    return std::make_error_code(std::errc::not_enough_memory);
}

}  // namespace mp::sys
