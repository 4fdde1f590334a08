// mp/mp.hpp - everything in one include.
#pragma once

#include "codec.hpp"
#include "connection.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "listener.hpp"
#include "managed.hpp"
#include "named_pipe.hpp"
#include "os.hpp"
#include "process.hpp"
#include "queues.hpp"
#include "shared_memory.hpp"
#include "wait.hpp"
#include "signals.hpp"
#include "synchronize.hpp"
#include "socket.hpp"
#include "subprocess.hpp"
