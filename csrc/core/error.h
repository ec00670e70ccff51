// Internal error handling: a thread-local detail string behind afc_last_error(), an
// exception type that carries a status, and the guard every exported function uses so that
// no C++ exception ever crosses the C boundary.
#pragma once

#include <cstdint>
#include <string>

#include "arcface.h"

namespace afc {

// Thrown inside the library; turned into a status + detail by AFC_GUARD.
struct Error {
  afc_status status;
  std::string message;
};

// Formats a message printf-style and throws Error{status, message}; AFC_ERR_INTERNAL
// messages end with " (<file>:<line>)".
[[noreturn]] void fail_at(const char *file, int line, afc_status status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Records a failure for afc_last_error() and returns its status.
afc_status set_error(afc_status status, const std::string &message);
// Clears the detail: called on entry to every exported function.
void clear_error();

// The detail of the last failed call on one object. A nonblocking FFI call runs on a worker
// thread, whose thread-local afc_last_error() the caller cannot read; the object keeps a copy
// that afc_<object>_error() hands out.
struct ErrorSlot {
  std::string text;
  // Records the current thread's detail when `status` is an error (clears it on success).
  afc_status keep(afc_status status);
  // Copies the text like afc_model_describe: at most `capacity` bytes with the NUL.
  void copy_to(char *buf, int64_t capacity, int64_t *needed) const;
};

// Runs `body` (a lambda returning void) and converts any exception into a status.
template <typename F>
afc_status guard(const char *call, F &&body);

}  // namespace afc

#define AFC_FAIL(status, ...) ::afc::fail_at(__FILE__, __LINE__, status, __VA_ARGS__)
#define AFC_CHECK(cond, status, ...) \
  do {                               \
    if (!(cond)) AFC_FAIL(status, __VA_ARGS__); \
  } while (0)
// Use as: return AFC_GUARD({ ... });  The call name is the enclosing function.
#define AFC_GUARD(...) ::afc::guard(__func__, [&]() __VA_ARGS__)

#include "core/error_guard.inl"
