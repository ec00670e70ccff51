// The public communicator functions: argument checks, then the Comm interface.
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "dist/comm.h"
#include "dist/grad_reduce.h"

namespace {

void check_comm(const afc_comm_t *comm) {
  AFC_CHECK(comm && comm->impl, AFC_ERR_INVALID_ARGUMENT, "comm is NULL");
}

void check_buffer(const void *data, int64_t count, const char *name) {
  AFC_CHECK(count >= 0, AFC_ERR_INVALID_ARGUMENT, "%s count %lld is negative", name, (long long)count);
  AFC_CHECK(data || count == 0, AFC_ERR_INVALID_ARGUMENT, "%s is NULL but its count is %lld", name,
            (long long)count);
}

void check_dtype(int32_t dtype) {
  AFC_CHECK(dtype == AFC_DTYPE_F32 || dtype == AFC_DTYPE_I64, AFC_ERR_INVALID_ARGUMENT,
            "dtype %d is unknown: expected 0 (AFC_DTYPE_F32) or 1 (AFC_DTYPE_I64)", dtype);
}

bool valid_run_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 128) return false;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
  }
  return strcmp(id, ".") != 0 && strcmp(id, "..") != 0;
}

// Keeps the detail of a failure on the handle for afc_comm_error().
afc_status remember(afc_comm_t *comm, afc_status status) {
  if (comm) {
    const char *detail = afc_last_error();
    comm->last_error = status == AFC_OK ? "" : detail ? detail : afc_status_string(status);
  }
  return status;
}

}  // namespace

extern "C" {

AFC_API afc_status afc_comm_create(const char *store, const char *run_id, int32_t rank, int32_t world_size,
                                   int64_t timeout_ms, const char *address, afc_comm_t **out) {
  return AFC_GUARD({
    AFC_CHECK(out != nullptr, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    AFC_CHECK(world_size >= 1, AFC_ERR_INVALID_ARGUMENT, "world_size %d is not positive", world_size);
    AFC_CHECK(rank >= 0 && rank < world_size, AFC_ERR_INVALID_ARGUMENT,
              "rank %d is outside 0..%d (world_size %d)", rank, world_size - 1, world_size);
    AFC_CHECK(timeout_ms > 0, AFC_ERR_INVALID_ARGUMENT, "timeout_ms %lld is not positive",
              (long long)timeout_ms);
    auto comm = std::make_unique<afc_comm>();
    if (world_size == 1) {
      comm->impl = afc::make_local_comm();
    } else {
      AFC_CHECK(store && *store, AFC_ERR_INVALID_ARGUMENT,
                "store is empty: a world of %d processes needs a directory or redis://host:port", world_size);
      AFC_CHECK(run_id && valid_run_id(run_id), AFC_ERR_INVALID_ARGUMENT,
                "run id \"%s\" is invalid: expected 1 to 128 letters, digits, '.', '_' or '-'",
                run_id ? run_id : "(null)");
      comm->impl = afc::make_gloo_comm(store, run_id, rank, world_size, timeout_ms, address);
    }
    comm->untimed = comm->impl.get();
    comm->impl = afc::make_timed_comm(std::move(comm->impl), &comm->nanoseconds, &comm->reducing);
    *out = comm.release();
  });
}

AFC_API void afc_comm_destroy(afc_comm_t *comm) { delete comm; }

AFC_API afc_status afc_comm_seconds(const afc_comm_t *comm, double *out) {
  return AFC_GUARD({
    check_comm(comm);
    AFC_CHECK(out, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    *out = (double)comm->nanoseconds.load() * 1e-9;
  });
}

AFC_API afc_status afc_comm_rank(const afc_comm_t *comm, int32_t *out) {
  return AFC_GUARD({
    check_comm(comm);
    AFC_CHECK(out, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    *out = comm->impl->rank();
  });
}

AFC_API afc_status afc_comm_size(const afc_comm_t *comm, int32_t *out) {
  return AFC_GUARD({
    check_comm(comm);
    AFC_CHECK(out, AFC_ERR_INVALID_ARGUMENT, "out is NULL");
    *out = comm->impl->world_size();
  });
}

AFC_API afc_status afc_comm_error(const afc_comm_t *comm, char *buf, int64_t capacity, int64_t *needed) {
  return AFC_GUARD({
    check_comm(comm);
    check_buffer(buf, capacity, "buf");
    AFC_CHECK(needed, AFC_ERR_INVALID_ARGUMENT, "needed is NULL");
    const std::string &text = comm->last_error;
    *needed = static_cast<int64_t>(text.size()) + 1;
    if (capacity > 0) {
      size_t n = std::min<size_t>(text.size(), static_cast<size_t>(capacity - 1));
      std::memcpy(buf, text.data(), n);
      buf[n] = 0;
    }
  });
}

AFC_API afc_status afc_comm_all_reduce(afc_comm_t *comm, int32_t dtype, void *data, int64_t count,
                                       int32_t op) {
  return remember(comm, AFC_GUARD({
    check_comm(comm);
    check_dtype(dtype);
    check_buffer(data, count, "data");
    AFC_CHECK(op == AFC_REDUCE_SUM || op == AFC_REDUCE_MAX, AFC_ERR_INVALID_ARGUMENT,
              "op %d is unknown: expected 0 (AFC_REDUCE_SUM) or 1 (AFC_REDUCE_MAX)", op);
    auto rop = op == AFC_REDUCE_SUM ? afc::ReduceOp::Sum : afc::ReduceOp::Max;
    if (dtype == AFC_DTYPE_F32)
      comm->impl->all_reduce(static_cast<float *>(data), count, rop);
    else
      comm->impl->all_reduce(static_cast<int64_t *>(data), count, rop);
  }));
}

AFC_API afc_status afc_comm_all_gather(afc_comm_t *comm, int32_t dtype, const void *in, int64_t count,
                                       void *out, int64_t out_count) {
  return remember(comm, AFC_GUARD({
    check_comm(comm);
    check_dtype(dtype);
    check_buffer(in, count, "in");
    check_buffer(out, out_count, "out");
    int64_t w = comm->impl->world_size();
    AFC_CHECK(out_count == w * count, AFC_ERR_SHAPE,
              "out_count %lld is not size·count = %lld·%lld = %lld", (long long)out_count, (long long)w,
              (long long)count, (long long)(w * count));
    if (dtype == AFC_DTYPE_F32)
      comm->impl->all_gather(static_cast<const float *>(in), count, static_cast<float *>(out));
    else
      comm->impl->all_gather(static_cast<const int64_t *>(in), count, static_cast<int64_t *>(out));
  }));
}

AFC_API afc_status afc_comm_all_gather_v(afc_comm_t *comm, int32_t dtype, const void *in, int64_t count,
                                         const int64_t *counts, int64_t num_counts, void *out,
                                         int64_t out_count) {
  return remember(comm, AFC_GUARD({
    check_comm(comm);
    check_dtype(dtype);
    check_buffer(in, count, "in");
    check_buffer(out, out_count, "out");
    int64_t w = comm->impl->world_size();
    AFC_CHECK(counts && num_counts == w, AFC_ERR_SHAPE, "num_counts %lld is not the world size %lld",
              (long long)num_counts, (long long)w);
    int64_t total = 0;
    for (int64_t r = 0; r < w; r++) {
      AFC_CHECK(counts[r] >= 0, AFC_ERR_INVALID_ARGUMENT, "counts[%lld] = %lld is negative", (long long)r,
                (long long)counts[r]);
      total += counts[r];
    }
    int r = comm->impl->rank();
    AFC_CHECK(counts[r] == count, AFC_ERR_SHAPE, "counts[%d] = %lld differs from this rank's count %lld", r,
              (long long)counts[r], (long long)count);
    AFC_CHECK(out_count == total, AFC_ERR_SHAPE, "out_count %lld is not the sum of counts %lld",
              (long long)out_count, (long long)total);
    if (dtype == AFC_DTYPE_F32)
      comm->impl->all_gather_v(static_cast<const float *>(in), counts, static_cast<float *>(out));
    else
      comm->impl->all_gather_v(static_cast<const int64_t *>(in), counts, static_cast<int64_t *>(out));
  }));
}

AFC_API afc_status afc_comm_broadcast(afc_comm_t *comm, int32_t dtype, void *data, int64_t count,
                                      int32_t root) {
  return remember(comm, AFC_GUARD({
    check_comm(comm);
    check_dtype(dtype);
    check_buffer(data, count, "data");
    int w = comm->impl->world_size();
    AFC_CHECK(root >= 0 && root < w, AFC_ERR_INVALID_ARGUMENT, "root %d is outside 0..%d", root, w - 1);
    if (dtype == AFC_DTYPE_F32)
      comm->impl->broadcast(static_cast<float *>(data), count, root);
    else
      comm->impl->broadcast(static_cast<int64_t *>(data), count, root);
  }));
}

AFC_API afc_status afc_comm_barrier(afc_comm_t *comm) {
  return remember(comm, AFC_GUARD({
    check_comm(comm);
    comm->impl->barrier();
  }));
}

AFC_API afc_status afc_comm_all_reduce_grads(afc_comm_t *comm, float *grads, int64_t count,
                                             int64_t bucket_elems, float scale) {
  return remember(comm, AFC_GUARD({
    check_comm(comm);
    check_buffer(grads, count, "grads");
    AFC_CHECK(bucket_elems >= 0, AFC_ERR_INVALID_ARGUMENT, "bucket_elems %lld is negative",
              (long long)bucket_elems);
    afc::all_reduce_grads(*comm->impl, grads, count, bucket_elems, scale);
  }));
}

}  // extern "C"
