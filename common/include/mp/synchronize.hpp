// mp/synchronize.hpp - every synchronisation primitive of mp (Python's
// multiprocessing.synchronize, plus Value and Array): Lock, RLock, Semaphore,
// BoundedSemaphore, Event, Condition, Barrier, Value, Array. Each is shared between processes,
// passes to children as a Process argument, and reports a crashed partner instead of hanging
// where it can (see each header).
#pragma once

#include "barrier.hpp"
#include "condition.hpp"
#include "event.hpp"
#include "lock.hpp"
#include "semaphore.hpp"
#include "value.hpp"
