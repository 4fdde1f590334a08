// mp/version.hpp - the version of these headers.
//
//     #if MP_VERSION >= 100   // 0.1.0 or later
//     std::puts(MP_VERSION_STRING);
//
// MP_VERSION is MAJOR * 10000 + MINOR * 100 + PATCH. meson.build checks at configure time that
// these lines agree with its project version, so the two cannot drift apart. The shared
// library's SONAME carries the ABI version: libmp.so.0.MINOR while MAJOR is 0 (every minor
// release may change the ABI), libmp.so.MAJOR from 1.0 on.
#pragma once

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0
#define MP_VERSION_STRING "0.1.0"

#define MP_VERSION (MP_VERSION_MAJOR * 10000 + MP_VERSION_MINOR * 100 + MP_VERSION_PATCH)
