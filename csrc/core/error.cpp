#include "core/error.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>

namespace afc {

namespace {
thread_local std::string last_error;
thread_local bool has_error = false;
}  // namespace

void fail_at(const char *file, int line, afc_status status, const char *fmt, ...) {
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (status != AFC_ERR_INTERNAL) throw Error{status, buf};
  // An internal error is a bug of ours: the place helps its report.
  const char *base = strrchr(file, '/');
  char where[256];
  snprintf(where, sizeof where, " (%s:%d)", base ? base + 1 : file, line);
  throw Error{status, std::string(buf) + where};
}

afc_status set_error(afc_status status, const std::string &message) {
  last_error = message;
  has_error = true;
  return status;
}

void clear_error() {
  has_error = false;
  last_error.clear();
}

afc_status ErrorSlot::keep(afc_status status) {
  const char *detail = afc_last_error();
  text = status == AFC_OK ? "" : detail ? detail : afc_status_string(status);
  return status;
}

void ErrorSlot::copy_to(char *buf, int64_t capacity, int64_t *needed) const {
  AFC_CHECK(needed != nullptr && capacity >= 0 && (buf != nullptr || capacity == 0), AFC_ERR_INVALID_ARGUMENT,
            "needed is NULL or buffer of %lld bytes is invalid", (long long)capacity);
  if (capacity > 0) {
    const size_t n = std::min<size_t>(text.size(), (size_t)capacity - 1);
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  *needed = (int64_t)text.size() + 1;
}

}  // namespace afc

extern "C" {

AFC_API uint32_t afc_abi_version(void) { return AFC_ABI_VERSION; }

AFC_API uint32_t afc_echo_u32(uint32_t value) { return value; }
AFC_API uint64_t afc_echo_u64(uint64_t value) { return value; }
AFC_API int64_t afc_echo_i64(int64_t value) { return value; }

AFC_API const char *afc_status_string(afc_status status) {
  switch (status) {
    case AFC_OK: return "ok";
    case AFC_ERR_INVALID_ARGUMENT: return "invalid argument";
    case AFC_ERR_NOT_FOUND: return "not found";
    case AFC_ERR_SHAPE: return "shape mismatch";
    case AFC_ERR_OUT_OF_MEMORY: return "out of memory";
    case AFC_ERR_IO: return "input/output error";
    case AFC_ERR_FORMAT: return "malformed data";
    case AFC_ERR_UNSUPPORTED: return "unsupported";
    case AFC_ERR_BACKEND: return "backend failure";
    case AFC_ERR_TIMEOUT: return "timed out";
    case AFC_ERR_NUMERIC: return "non-finite values";
    case AFC_ERR_STATE: return "invalid state";
    case AFC_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
  }
}

AFC_API const char *afc_last_error(void) { return afc::has_error ? afc::last_error.c_str() : nullptr; }

}  // extern "C"
