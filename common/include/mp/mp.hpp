// mp/mp.hpp - everything in one include.
#pragma once

#include "codec.hpp"
#include "connection.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "listener.hpp"
#include "managed.hpp"
#include "os.hpp"
#include "process.hpp"
#include "shared_memory.hpp"
#include "socket.hpp"
