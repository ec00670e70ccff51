// Implementation of afc::guard (header-only because it is a template).
#pragma once

#include <exception>
#include <new>

#include <dnnl.hpp>

namespace afc {

template <typename F>
afc_status guard(const char *call, F &&body) {
  clear_error();
  try {
    body();
    return AFC_OK;
  } catch (const Error &e) {
    // A message about the caller's input stands alone; an internal one names the call.
    return set_error(e.status, e.status == AFC_ERR_INTERNAL ? std::string(call) + ": " + e.message : e.message);
  } catch (const dnnl::error &e) {
    return set_error(AFC_ERR_BACKEND, std::string(call) + ": oneDNN failed: " + e.what());
  } catch (const std::bad_alloc &) {
    return set_error(AFC_ERR_OUT_OF_MEMORY, std::string(call) + ": out of memory");
  } catch (const std::exception &e) {
    return set_error(AFC_ERR_INTERNAL, std::string(call) + ": " + e.what());
  } catch (...) {
    return set_error(AFC_ERR_INTERNAL, std::string(call) + ": unknown exception");
  }
}

}  // namespace afc
