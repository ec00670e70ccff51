/*
 * arcface.h — the public C interface of libarcface, a face-recognition training core.
 *
 * What it does
 *   Builds arcface_torch's backbones (iresnet18…200, MobileFaceNet), runs their forward and
 *   backward passes on the CPU (oneDNN, OpenBLAS, OpenMP), and provides the pieces of a
 *   training loop around them: margin losses with Partial FC, optimizers, data loading from
 *   insightface RecordIO files, and collectives for multi-process training.
 *
 * Typical call sequence
 *   afc_context_create(AFC_BACKEND_CPU, threads, &ctx)
 *   afc_model_create(ctx, "r50", 512, 0.0f, batch, &model)
 *   afc_model_tensor_write(model, "conv1.weight", data, count)      (optional: load weights)
 *   loop: afc_model_forward(model, input, n, 1, emb)
 *         ... loss on emb gives d_emb ...
 *         afc_model_backward(model, d_emb, n, NULL, 0)
 *         ... optimizer step ...
 *   afc_model_tensor_read(model, name, dst, count)                   (checkpoint)
 *   afc_model_destroy(model); afc_context_destroy(ctx)
 *
 * Memory model
 *   Every object owns its memory. A model sizes all its tensors when it is created (one
 *   allocation per arena: parameters, gradients, activations, workspace) and the step loop
 *   does not allocate. Data crosses this interface by explicit copy: the caller passes a
 *   pointer and an element count, the library copies in or out. The library keeps no
 *   pointer to caller memory after a call returns. Element counts and byte offsets are
 *   int64_t everywhere. An empty buffer is (NULL, 0) and is accepted wherever a buffer is.
 *
 * Threads
 *   Calls on one object must not overlap; different objects may be used from different
 *   threads. A context does not depend on the thread that created it, so long calls may run
 *   on any thread. The thread count given to the context bounds every parallel region.
 *
 * Errors
 *   Every fallible function returns afc_status: AFC_OK (0) or a negative code. On failure
 *   afc_last_error() returns this thread's detail text (the call that failed, the values
 *   involved, a hint when one is known); it returns NULL when the last call succeeded.
 *   The library never exits, aborts or prints because of bad input or a failing device.
 *   Output arguments are left untouched on failure.
 */
#ifndef ARCFACE_H
#define ARCFACE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(AFC_BUILDING)
#define AFC_API __attribute__((visibility("default")))
#else
#define AFC_API
#endif

/* Bumped whenever a signature, enum value or struct layout here changes. */
#define AFC_ABI_VERSION 1

/* ---------------------------------------------------------------------------------------
 * Status codes and errors
 * ------------------------------------------------------------------------------------- */

typedef int32_t afc_status;

enum {
  AFC_OK = 0,
  AFC_ERR_INVALID_ARGUMENT = -1, /* a value out of range, a NULL where one is not allowed */
  AFC_ERR_NOT_FOUND = -2,        /* a name (backbone, tensor, file) that does not exist */
  AFC_ERR_SHAPE = -3,            /* sizes that do not agree */
  AFC_ERR_OUT_OF_MEMORY = -4,
  AFC_ERR_IO = -5,               /* a file could not be opened, read or written */
  AFC_ERR_FORMAT = -6,           /* a file or buffer whose content is malformed */
  AFC_ERR_UNSUPPORTED = -7,      /* valid, but not available in this build or backend */
  AFC_ERR_BACKEND = -8,          /* oneDNN, BLAS, CUDA or another library failed */
  AFC_ERR_TIMEOUT = -9,
  AFC_ERR_NUMERIC = -10,         /* non-finite values where finite ones are required */
  AFC_ERR_STATE = -11,           /* a call that is not valid in the object's current state */
  AFC_ERR_INTERNAL = -12
};

/* The library's ABI version (AFC_ABI_VERSION when it was built). */
AFC_API uint32_t afc_abi_version(void);

/* A short static description of a status code ("invalid argument"). Never NULL. */
AFC_API const char *afc_status_string(afc_status status);

/* Detail of this thread's last failed call, or NULL when the last call succeeded.
 * The text stays valid until this thread's next call into the library. */
AFC_API const char *afc_last_error(void);

/* ---------------------------------------------------------------------------------------
 * Context: backend, threads
 * ------------------------------------------------------------------------------------- */

typedef struct afc_context afc_context_t;

enum {
  AFC_BACKEND_CPU = 0,
  AFC_BACKEND_CUDA = 1
};

/* Creates a context on `backend` using `num_threads` threads (0: all cores). */
AFC_API afc_status afc_context_create(int32_t backend, int32_t num_threads, afc_context_t **out);

/* Destroys a context. Objects created from it must be destroyed first. NULL is a no-op. */
AFC_API void afc_context_destroy(afc_context_t *ctx);

/* Writes the context's thread count to *out. */
AFC_API afc_status afc_context_threads(const afc_context_t *ctx, int32_t *out);

/* ---------------------------------------------------------------------------------------
 * Model: a backbone with its parameters, gradients and activations
 * ------------------------------------------------------------------------------------- */

typedef struct afc_model afc_model_t;

/* Creates backbone `name` ("r18", "r34", "r50", "r100", "r200", "r2060", "mbf") producing
 * `num_features`-dimensional embeddings from N×3×112×112 float input, for batches of up to
 * `max_batch` images. `dropout` is the probability used by the head's dropout in training
 * mode. Parameters are initialised as arcface_torch does (see the model's notes). */
AFC_API afc_status afc_model_create(afc_context_t *ctx, const char *name, int32_t num_features,
                                    float dropout, int32_t max_batch, afc_model_t **out);

/* Destroys a model. NULL is a no-op. */
AFC_API void afc_model_destroy(afc_model_t *model);

/* Describes the model as JSON: {"name", "num_features", "max_batch", "parameters",
 * "tensors": [{"name", "shape", "kind": "parameter"|"buffer", "trainable"}...],
 * "memory": {"parameters", "gradients", "activations", "workspace"} (bytes)}.
 * Writes at most `capacity` bytes including the terminating NUL to `buf` and the full
 * length including the NUL to *needed; call with (NULL, 0) to size the buffer. */
AFC_API afc_status afc_model_describe(const afc_model_t *model, char *buf, int64_t capacity,
                                      int64_t *needed);

/* Copies `count` float32 values of tensor `name` (an arcface_torch state-dict name such as
 * "layer1.0.bn1.running_mean", in PyTorch's element order) out to `dst` / in from `src`.
 * `count` must equal the tensor's element count. */
AFC_API afc_status afc_model_tensor_read(const afc_model_t *model, const char *name, float *dst,
                                         int64_t count);
AFC_API afc_status afc_model_tensor_write(afc_model_t *model, const char *name, const float *src,
                                          int64_t count);

/* Copies the gradient of parameter `name` from the last backward pass to `dst`. */
AFC_API afc_status afc_model_grad_read(const afc_model_t *model, const char *name, float *dst,
                                       int64_t count);

/* Forward pass of `n` images (n ≤ max_batch) from `input` (n×3×112×112 float32, NCHW) into
 * `embeddings` (n×num_features). `train` selects training mode (batch statistics, running
 * statistics updated, dropout active) and keeps what the backward pass needs. */
AFC_API afc_status afc_model_forward(afc_model_t *model, const float *input, int64_t n,
                                     int32_t train, float *embeddings);

/* Backward pass for the last training-mode forward: `d_embeddings` (n×num_features) in,
 * parameter gradients out (overwritten, or added to the existing ones when `accumulate` is
 * 1), and the input gradient written to `d_input` unless it is NULL. */
AFC_API afc_status afc_model_backward(afc_model_t *model, const float *d_embeddings, int64_t n,
                                      float *d_input, int32_t accumulate);

/* Sets every parameter gradient to zero. */
AFC_API afc_status afc_model_zero_grad(afc_model_t *model);

/* ---------------------------------------------------------------------------------------
 * Data: RecordIO, image decoding, loader            (section owned by csrc/data/)
 * ------------------------------------------------------------------------------------- */

/* Reads the stored size of an encoded JPEG, PNG or PGM/PPM image; `channels` is 1 or 3. */
AFC_API afc_status afc_image_info(const uint8_t *bytes, int64_t size, int32_t *width, int32_t *height,
                                  int32_t *channels);

/* Decodes an encoded image to 3-channel RGB, row-major HWC uint8 (greyscale is repeated into
 * three channels), resized bilinearly to out_width×out_height when the stored size differs.
 * `rgb_size` must be out_height·out_width·3. */
AFC_API afc_status afc_image_decode(const uint8_t *bytes, int64_t size, int32_t out_width,
                                    int32_t out_height, uint8_t *rgb, int64_t rgb_size);

/* Resizes RGB HWC uint8 bilinearly, after cropping the source to the box (x, y, w, h). */
AFC_API afc_status afc_image_resize(const uint8_t *src, int32_t src_width, int32_t src_height,
                                    int32_t crop_x, int32_t crop_y, int32_t crop_width,
                                    int32_t crop_height, uint8_t *dst, int32_t dst_width,
                                    int32_t dst_height);

/* Encodes RGB HWC uint8 as JPEG (quality 1..100) into `out`; *written gets the byte count.
 * Call with (NULL, 0) to learn an upper bound in *written. */
AFC_API afc_status afc_image_encode_jpeg(const uint8_t *rgb, int32_t width, int32_t height,
                                         int32_t quality, uint8_t *out, int64_t capacity,
                                         int64_t *written);

/* ---------------------------------------------------------------------------------------
 * Training: margin loss, Partial FC, optimizers     (csrc/cpu/: margin, partial_fc, optimizer)
 * ------------------------------------------------------------------------------------- */

/* ---------------------------------------------------------------------------------------
 * Distributed: collectives                          (section owned by csrc/dist/)
 * ------------------------------------------------------------------------------------- */

/* A communicator: this process's place (rank) in a world of `size` processes, and the
 * collectives between them. Every rank must make the same collective calls in the same
 * order with the same counts. A failed collective (a peer gone, or silent past the timeout)
 * returns AFC_ERR_TIMEOUT naming the ranks involved; the communicator then refuses further
 * calls with AFC_ERR_STATE. */
typedef struct afc_comm afc_comm_t;

/* Element types of collective buffers. */
enum {
  AFC_DTYPE_F32 = 0,
  AFC_DTYPE_I64 = 1
};

/* Reductions. */
enum {
  AFC_REDUCE_SUM = 0,
  AFC_REDUCE_MAX = 1
};

/* Joins a world of `world_size` processes as `rank` (0 ≤ rank < world_size) through the
 * rendezvous store `store`: a directory shared by every rank ("file://" prefix optional) or
 * "redis://host:port". Keys live under the namespace `run_id` (letters, digits, '.', '_',
 * '-'), which must be unique per run and equal on every rank. `address` is the host name,
 * IP or network interface this rank listens on (NULL or "": 127.0.0.1, one machine).
 * Ranks that start early wait, with backoff, up to `timeout_ms` for the others; missing
 * ranks give AFC_ERR_TIMEOUT naming them, the store and the timeout. The same timeout
 * bounds every collective. With world_size 1 no store is used. */
AFC_API afc_status afc_comm_create(const char *store, const char *run_id, int32_t rank, int32_t world_size,
                                   int64_t timeout_ms, const char *address, afc_comm_t **out);

/* Leaves the world and frees the communicator. NULL is a no-op. */
AFC_API void afc_comm_destroy(afc_comm_t *comm);

/* Writes this process's rank / the world size to *out. */
AFC_API afc_status afc_comm_rank(const afc_comm_t *comm, int32_t *out);
AFC_API afc_status afc_comm_size(const afc_comm_t *comm, int32_t *out);

/* Copies the detail text of the last failed call on `comm` ("" when it succeeded) to
 * `buf`, like afc_model_describe: at most `capacity` bytes with the NUL, the full length
 * with the NUL in *needed. Collectives run on worker threads, where afc_last_error() of
 * the calling thread does not see their failures. */
AFC_API afc_status afc_comm_error(const afc_comm_t *comm, char *buf, int64_t capacity, int64_t *needed);

/* Reduces `count` values of type `dtype` (AFC_DTYPE_*) in place over all ranks with `op`
 * (AFC_REDUCE_*); every rank ends with the result. */
AFC_API afc_status afc_comm_all_reduce(afc_comm_t *comm, int32_t dtype, void *data, int64_t count,
                                       int32_t op);

/* Every rank contributes `count` values; `out` (out_count = size·count) receives all
 * contributions in rank order. */
AFC_API afc_status afc_comm_all_gather(afc_comm_t *comm, int32_t dtype, const void *in, int64_t count,
                                       void *out, int64_t out_count);

/* Like afc_comm_all_gather with a different count per rank: `counts` (num_counts = size)
 * holds every rank's count, counts[rank] = count, and out_count is their sum. */
AFC_API afc_status afc_comm_all_gather_v(afc_comm_t *comm, int32_t dtype, const void *in, int64_t count,
                                         const int64_t *counts, int64_t num_counts, void *out,
                                         int64_t out_count);

/* Copies `count` values from rank `root` to every rank, in place. */
AFC_API afc_status afc_comm_broadcast(afc_comm_t *comm, int32_t dtype, void *data, int64_t count,
                                      int32_t root);

/* Returns once every rank has called it. */
AFC_API afc_status afc_comm_barrier(afc_comm_t *comm);

/* Data parallelism: sums `count` gradient values over all ranks in buckets of
 * `bucket_elems` values (0: 4 Mi), in place, and multiplies the result by `scale`
 * (1/size gives the average). */
AFC_API afc_status afc_comm_all_reduce_grads(afc_comm_t *comm, float *grads, int64_t count,
                                             int64_t bucket_elems, float scale);

#ifdef __cplusplus
}
#endif

#endif /* ARCFACE_H */
