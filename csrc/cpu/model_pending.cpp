// Placeholder definitions of the model functions until the CPU backbone lands; every call
// reports AFC_ERR_UNSUPPORTED. Deleted by the backbone implementation.
#include "core/error.h"

extern "C" {
afc_status afc_model_create(afc_context_t *, const char *, int32_t, float, int32_t, afc_model_t **) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
void afc_model_destroy(afc_model_t *) {}
afc_status afc_model_describe(const afc_model_t *, char *, int64_t, int64_t *) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
afc_status afc_model_tensor_read(const afc_model_t *, const char *, float *, int64_t) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
afc_status afc_model_tensor_write(afc_model_t *, const char *, const float *, int64_t) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
afc_status afc_model_grad_read(const afc_model_t *, const char *, float *, int64_t) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
afc_status afc_model_forward(afc_model_t *, const float *, int64_t, int32_t, float *) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
afc_status afc_model_backward(afc_model_t *, const float *, int64_t, float *, int32_t) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
afc_status afc_model_zero_grad(afc_model_t *) {
  return AFC_GUARD({ AFC_FAIL(AFC_ERR_UNSUPPORTED, "backbones are not built yet"); });
}
}
