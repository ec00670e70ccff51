// The context: backend choice, thread count and the oneDNN engine/stream every CPU object
// shares. Objects keep a pointer to their context; the context outlives them.
#pragma once

#include <dnnl.hpp>

#include "arcface.h"

struct afc_context {
  int32_t backend = AFC_BACKEND_CPU;
  int32_t threads = 1;
  dnnl::engine engine;
  dnnl::stream stream;
};

namespace afc {
// Applies the context's thread count to OpenMP/OpenBLAS on the calling thread: every long
// call starts with it because FFI calls may arrive on any thread.
void enter(const afc_context *ctx);
}  // namespace afc
