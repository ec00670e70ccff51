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
 *   afc_model_create(ctx, "r50", 512, 0.0f, batch, 0, &model)
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

/* Bumped whenever a function, signature, enum value or struct layout here changes. */
#define AFC_ABI_VERSION 5

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

/* Return their argument unchanged, so that a binding can check that 32- and 64-bit integers
 * cross the boundary intact on every calling path (blocking and on a worker thread). */
AFC_API uint32_t afc_echo_u32(uint32_t value);
AFC_API uint64_t afc_echo_u64(uint64_t value);
AFC_API int64_t afc_echo_i64(int64_t value);

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

/* Flags of afc_model_create. */
enum {
  /* Eval runs 3×3 stride-1 convolutions with Winograd where oneDNN has it (AVX-512): r50
   * inference about 1.7× faster at batch 32, but the transformed weights and workspace take
   * several times the direct ones (r50: about 0.9 GiB more at batch 32). */
  AFC_MODEL_WINOGRAD = 1
};

/* Creates backbone `name` ("r18", "r34", "r50", "r100", "r200", "r2060", "mbf") producing
 * `num_features`-dimensional embeddings from N×3×112×112 float input, for batches of up to
 * `max_batch` images. `dropout` is the probability used by the head's dropout in training
 * mode. `flags`: 0 or AFC_MODEL_* values or'ed. Parameters are initialised as arcface_torch
 * does (see the model's notes). */
AFC_API afc_status afc_model_create(afc_context_t *ctx, const char *name, int32_t num_features,
                                    float dropout, int32_t max_batch, int32_t flags, afc_model_t **out);

/* Destroys a model. NULL is a no-op. */
AFC_API void afc_model_destroy(afc_model_t *model);

/* Describes the model as JSON: {"name", "num_features", "max_batch", "parameters",
 * "tensors": [{"name", "shape", "kind": "parameter"|"buffer", "trainable"}...],
 * "memory": {"parameters", "gradients", "activations", "workspace", "eval_weights"} (bytes
 * reserved; eval_weights: the max-batch plan's Winograd weights, resident only during eval)}.
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

/* The detail text of the model's last failed forward, backward, step or gradient all-reduce
 * ("" when it succeeded), sized like afc_model_describe. These calls usually run on another
 * thread, whose afc_last_error() the caller cannot read; this copy stays with the model. */
AFC_API afc_status afc_model_error(const afc_model_t *model, char *buf, int64_t capacity, int64_t *needed);

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

/* RecordIO (insightface / MXNet train.rec + train.idx). A reader maps the .rec file and
 * parses the text .idx ("key<TAB>offset" lines, 64-bit offsets). Opening refuses offsets that
 * are not 4-aligned or lie past the end of the file; with `verify` = 1 it also checks the
 * magic and length of every record (one read per record). Multi-part records are joined
 * byte for byte, the magic restored between parts. */
typedef struct afc_recordio afc_recordio_t;

/* Opens `rec_path` with its index `idx_path`. */
AFC_API afc_status afc_recordio_create(const char *rec_path, const char *idx_path, int32_t verify,
                                       afc_recordio_t **out);

/* Closes a reader. NULL is a no-op. */
AFC_API void afc_recordio_destroy(afc_recordio_t *rec);

/* Writes the number of indexed records to *count and the .rec file size to *file_size. */
AFC_API afc_status afc_recordio_count(const afc_recordio_t *rec, int64_t *count, int64_t *file_size);

/* Copies the keys and byte offsets of the index, in file order; `count` must equal the
 * record count. Either array may be NULL. */
AFC_API afc_status afc_recordio_keys(const afc_recordio_t *rec, int64_t *keys, int64_t *offsets,
                                     int64_t count);

/* Copies the payload of record `key` (parts joined) to `buf`; *size gets its length.
 * Call with (NULL, 0) to learn the length. */
AFC_API afc_status afc_recordio_read(const afc_recordio_t *rec, int64_t key, uint8_t *buf,
                                     int64_t capacity, int64_t *size);

/* A RecordIO writer. It writes "<rec_path>.tmp" and "<idx_path>.tmp"; finish renames them
 * into place, and destroying an unfinished writer removes them. */
typedef struct afc_recordio_writer afc_recordio_writer_t;

AFC_API afc_status afc_recordio_writer_create(const char *rec_path, const char *idx_path,
                                              afc_recordio_writer_t **out);

/* Destroys a writer (removing its temporary files unless it was finished). NULL is a no-op. */
AFC_API void afc_recordio_writer_destroy(afc_recordio_writer_t *writer);

/* Appends record `key` with payload (data, size), split at every 4-aligned copy of the
 * magic as MXNet does, and its line in the index. */
AFC_API afc_status afc_recordio_writer_write(afc_recordio_writer_t *writer, int64_t key,
                                             const uint8_t *data, int64_t size);

/* Flushes, syncs and renames both files into place. */
AFC_API afc_status afc_recordio_writer_finish(afc_recordio_writer_t *writer);

/* A dataset of labelled face images. */
typedef struct afc_dataset afc_dataset_t;

enum {
  AFC_DATASET_RECORDIO = 0,  /* path: train.rec, its index beside it with the .idx suffix */
  AFC_DATASET_FOLDER = 1,    /* path: a folder with one sub-folder per identity (sorted names) */
  AFC_DATASET_SYNTHETIC = 2  /* `synthetic_size` copies of one random image, label 1 */
};

enum {
  AFC_DATASET_VERIFY_INDEX = 1, /* check every record's magic and length at open */
  AFC_DATASET_SKIP_CORRUPT = 2  /* skip undecodable images (counted) instead of failing */
};

/* Opens a dataset. A RecordIO dataset reads record 0: when its flag is > 0 it is the
 * insightface meta record (labels [first identity key, end key]) and the images are keys
 * 1 .. first-1; otherwise every indexed record is an image (plain im2rec). It then reads the
 * 24-byte header of every image record for its label (label[0] for vector labels), which must
 * be a non-negative integer value. */
AFC_API afc_status afc_dataset_create(int32_t kind, const char *path, int64_t synthetic_size, int32_t flags,
                                      afc_dataset_t **out);

/* Destroys a dataset; loaders using it must be destroyed first. NULL is a no-op. */
AFC_API void afc_dataset_destroy(afc_dataset_t *dataset);

/* Describes the dataset as JSON: {"kind", "path", "num_images", "num_classes",
 * "min_label", "max_label", "has_meta", "identity_records", "warnings": [...]}.
 * Sized like afc_model_describe: call with (NULL, 0) first. */
AFC_API afc_status afc_dataset_describe(const afc_dataset_t *dataset, char *buf, int64_t capacity,
                                        int64_t *needed);

/* Copies the label of every image, in dataset order; `count` must equal num_images. */
AFC_API afc_status afc_dataset_labels(const afc_dataset_t *dataset, int64_t *labels, int64_t count);

/* Decodes image `index` to RGB HWC uint8 of width×height (resized bilinearly when the stored
 * size differs) and writes its label to *label (may be NULL). */
AFC_API afc_status afc_dataset_image(const afc_dataset_t *dataset, int64_t index, int32_t width,
                                     int32_t height, uint8_t *rgb, int64_t rgb_size, int64_t *label);

/* A loader: worker threads decode, flip and normalise ((x / 255 - 0.5) / 0.5, NCHW float32)
 * whole batches into a bounded ring of `prefetch` batches; afc_loader_next copies the next
 * batch out. Sharding works like PyTorch's DistributedSampler followed by drop_last: the
 * epoch's order (a permutation seeded by seed + epoch when shuffling) is padded by repeating
 * its start to a multiple of world_size, rank r takes every world_size-th index from r, and
 * the last incomplete batch is dropped, so every rank runs the same number of full batches.
 * Flips are drawn per image from (seed, epoch, position), independent of thread timing. */
typedef struct afc_loader afc_loader_t;

enum {
  AFC_LOADER_SHUFFLE = 1, /* a new permutation every epoch */
  AFC_LOADER_FLIP = 2     /* random horizontal flip with probability 0.5 */
};

AFC_API afc_status afc_loader_create(afc_dataset_t *dataset, int32_t batch_size, int32_t width, int32_t height,
                                     int32_t rank, int32_t world_size, uint64_t seed, int32_t flags,
                                     int32_t num_threads, int32_t prefetch, afc_loader_t **out);

/* Stops the workers and destroys the loader. NULL is a no-op. */
AFC_API void afc_loader_destroy(afc_loader_t *loader);

/* Writes the number of batches per epoch (the same on every rank) to *steps. */
AFC_API afc_status afc_loader_steps(const afc_loader_t *loader, int64_t *steps);

/* Starts epoch `epoch` from its first batch (epoch 0 is started by create). */
AFC_API afc_status afc_loader_set_epoch(afc_loader_t *loader, int64_t epoch);

/* Waits for the next batch and copies it: `input` gets batch×3×height×width floats,
 * `labels` batch int64 labels; *filled gets batch_size, or 0 at the end of the epoch.
 * A decoding failure (without AFC_DATASET_SKIP_CORRUPT) is returned here, naming the record. */
AFC_API afc_status afc_loader_next(afc_loader_t *loader, float *input, int64_t input_count, int64_t *labels,
                                   int64_t label_count, int64_t *filled);

/* The detail text of the loader's last failed afc_loader_next, or "" when it has not failed.
 * afc_loader_next usually runs on another thread, whose afc_last_error the caller cannot
 * read; this copy stays with the loader. Sized like afc_dataset_describe. */
AFC_API afc_status afc_loader_error(const afc_loader_t *loader, char *buf, int64_t capacity, int64_t *needed);

/* Counters since create: images resized because their size differed, corrupt images skipped. */
AFC_API afc_status afc_loader_counters(const afc_loader_t *loader, int64_t *resized, int64_t *skipped);

/* ---------------------------------------------------------------------------------------
 * Training: margin loss, Partial FC, optimizers     (csrc/cpu/: margin, partial_fc, optimizer)
 * ------------------------------------------------------------------------------------- */

/* Margin softmax logits (csrc/cpu/margin.cpp). For a target cosine c = cos θ the logit is
 * s·(cos(m1·θ + m2) − m3); every other logit is s·c. When m1·θ + m2 passes π the target
 * falls back to a monotone extension: with m1 = 1 arcface_torch's c − m2·sin(m2) − m3, with
 * m1 ≠ 1 the continuous c − cos θ* − 1 − m3 (θ* = (π − m2)/m1). `filter_threshold` > 0
 * zeroes every non-target cosine above it (inter-class filtering) with zero gradient.
 * `straight_through` 1 keeps the forward values but passes ∂logit/∂c = s for the target
 * (the detached variant); 0 gives the true gradient. */
typedef struct afc_margin afc_margin_t;

/* Creates a margin with scale `s` (> 0) and margin_list (m1, m2, m3). */
AFC_API afc_status afc_margin_create(float s, float m1, float m2, float m3, float filter_threshold,
                                     int32_t straight_through, afc_margin_t **out);

/* Destroys a margin. NULL is a no-op. */
AFC_API void afc_margin_destroy(afc_margin_t *margin);

/* Logits from cosines: `cos` and `logits` are rows×cols; labels[i] is the target column of
 * row i or −1 for none. Cosines are clamped to [−1, 1] first. */
AFC_API afc_status afc_margin_forward(const afc_margin_t *margin, const float *cos,
                                      const int64_t *labels, int64_t rows, int64_t cols,
                                      float *logits);

/* Gradient of the logits with respect to the cosines: d_cos = d_logits · ∂logit/∂cos
 * (zero where the cosine lies outside [−1, 1], as a clamp does). */
AFC_API afc_status afc_margin_backward(const afc_margin_t *margin, const float *cos,
                                       const int64_t *labels, int64_t rows, int64_t cols,
                                       const float *d_logits, float *d_cos);

/* Optimizers (csrc/cpu/optimizer.cpp), as torch.optim.SGD (momentum, weight decay,
 * dampening 0, no Nesterov) and torch.optim.AdamW. An optimizer holds its hyperparameters
 * and the state of every parameter array registered with it ("slot"); the caller keeps the
 * parameters and passes them to each step, which updates them in place. The gradient is
 * multiplied by `grad_scale` before use (1/k for k accumulated micro-batches, times a
 * clipping coefficient). */
typedef struct afc_optim afc_optim_t;

enum {
  AFC_OPTIM_SGD = 0,
  AFC_OPTIM_ADAMW = 1
};

/* Creates an optimizer of `kind`. SGD uses `momentum`; AdamW uses beta1, beta2, eps.
 * Hyperparameters are doubles, as Python floats are in torch.optim (1 − 0.999 in double). */
AFC_API afc_status afc_optim_create(int32_t kind, double momentum, double beta1, double beta2,
                                    double eps, double weight_decay, afc_optim_t **out);

/* Destroys an optimizer. NULL is a no-op. */
AFC_API void afc_optim_destroy(afc_optim_t *opt);

/* Registers a parameter array of `count` floats; *slot gets its index (0, 1, ...). */
AFC_API afc_status afc_optim_add(afc_optim_t *opt, int64_t count, int64_t *slot);

/* One update of slot `slot`: param (count floats) is changed in place from grad. */
AFC_API afc_status afc_optim_step(afc_optim_t *opt, int64_t slot, float *param, const float *grad,
                                  int64_t count, double lr, float grad_scale);

/* Copies `count` floats of a slot's state buffer `which` (0: momentum buffer or AdamW
 * exp_avg, 1: AdamW exp_avg_sq) from element `offset` out to `dst` / in from `src`. */
AFC_API afc_status afc_optim_state_read(const afc_optim_t *opt, int64_t slot, int32_t which,
                                        int64_t offset, float *dst, int64_t count);
AFC_API afc_status afc_optim_state_write(afc_optim_t *opt, int64_t slot, int32_t which,
                                         int64_t offset, const float *src, int64_t count);

/* Reads / sets the number of steps a slot has taken (AdamW's bias correction uses it). */
AFC_API afc_status afc_optim_steps_read(const afc_optim_t *opt, int64_t slot, int64_t *steps);
AFC_API afc_status afc_optim_steps_write(afc_optim_t *opt, int64_t slot, int64_t steps);

/* Sum of squares of `n` floats in double precision, for global-norm clipping. */
AFC_API afc_status afc_optim_sum_squares(const float *x, int64_t n, double *out);

/* torch.nn.utils.clip_grad_norm_'s factor for gradients that will be multiplied by
 * `grad_scale`: min(1, max_norm / (grad_scale·sqrt(sum_squares) + 1e-6)). */
AFC_API afc_status afc_optim_clip_coef(double sum_squares, float grad_scale, float max_norm,
                                       float *coef);

/* A model's own optimizer state (csrc/cpu/model.cpp). The trainable parameters of a model
 * are updated in place with `opt`'s rule and hyperparameters; the state (momentum buffer,
 * AdamW moments, step count) lives in the model, so the step loop copies nothing. */

/* Sum of squares of every parameter gradient (double precision), for global-norm clipping. */
AFC_API afc_status afc_model_grad_sum_squares(const afc_model_t *model, double *out);

/* Updates every trainable parameter from its gradient multiplied by `grad_scale`. */
AFC_API afc_status afc_model_step(afc_model_t *model, const afc_optim_t *opt, double lr, float grad_scale);

/* Copies the optimizer state `which` (as afc_optim_state_read) of parameter `name` out / in;
 * `count` must equal the tensor's element count. State not yet created reads as zeros;
 * written state is kept and used by the next step. */
AFC_API afc_status afc_model_state_read(afc_model_t *model, const char *name, int32_t which, float *dst,
                                        int64_t count);
AFC_API afc_status afc_model_state_write(afc_model_t *model, const char *name, int32_t which,
                                         const float *src, int64_t count);

/* Reads / restores the number of optimizer steps taken (AdamW's bias correction uses it). */
AFC_API afc_status afc_model_optim_steps_read(const afc_model_t *model, int64_t *steps);
AFC_API afc_status afc_model_optim_steps_write(afc_model_t *model, int64_t steps);

/* Partial FC V2 (csrc/cpu/partial_fc.cpp): the class centres of this rank's shard, sampling,
 * margin softmax cross-entropy across ranks, and the shard's optimizer state.
 * Rank r of W owns num_classes/W + (r < num_classes%W) classes starting at
 * (num_classes/W)·r + min(r, num_classes%W). `comm` is NULL for one process; otherwise it
 * must outlive the Partial FC. Centres start as N(0, 0.01) from `seed`, row by row, so a
 * class's centre does not depend on the number of ranks. */
typedef struct afc_pfc afc_pfc_t;

/* Creates a Partial FC for `num_classes` classes of `embedding_size` features and local
 * batches of up to `max_batch` rows. `sample_rate` in (0, 1]: below 1 each step keeps every
 * positive centre plus random negatives up to int(sample_rate·num_local). */
AFC_API afc_status afc_pfc_create(afc_context_t *ctx, struct afc_comm *comm,
                                  const afc_margin_t *margin, int64_t num_classes,
                                  int32_t embedding_size, float sample_rate, int64_t max_batch,
                                  uint64_t seed, afc_pfc_t **out);

/* Destroys a Partial FC. NULL is a no-op. */
AFC_API void afc_pfc_destroy(afc_pfc_t *pfc);

/* Writes this rank's first class and class count. */
AFC_API afc_status afc_pfc_shard(const afc_pfc_t *pfc, int64_t *class_start, int64_t *num_local);

/* One step on `n` local embeddings (n×embedding_size) with labels in [0, num_classes):
 * all ranks together compute the mean loss over the global batch (*loss, the same on every
 * rank), write this rank's embedding gradient to `d_embeddings` (n×embedding_size, multiplied
 * by the world size as arcface_torch does, for a data-parallel all-reduce that averages),
 * and store the shard's weight gradient (added to the previous one when `accumulate` is 1;
 * rows that were not sampled get zero). Every rank must call it together. */
AFC_API afc_status afc_pfc_forward_backward(afc_pfc_t *pfc, const float *embeddings,
                                            const int64_t *labels, int64_t n, int32_t accumulate,
                                            float *loss, float *d_embeddings);

/* The detail text of the last failed afc_pfc_forward_backward or afc_pfc_step, like
 * afc_model_error. */
AFC_API afc_status afc_pfc_error(const afc_pfc_t *pfc, char *buf, int64_t capacity, int64_t *needed);

/* Sets the shard's weight gradient to zero. */
AFC_API afc_status afc_pfc_zero_grad(afc_pfc_t *pfc);

/* Updates the whole shard from its gradient with `opt`'s rule and hyperparameters, keeping
 * the state for the shard inside the Partial FC. */
AFC_API afc_status afc_pfc_step(afc_pfc_t *pfc, const afc_optim_t *opt, double lr, float grad_scale);

/* Copies shard rows [row, row + rows) of the weight / its gradient / optimizer state
 * `which` (as afc_optim_state_read) out or in; `count` must be rows·embedding_size.
 * State not yet created (before the first step) reads as zeros; written state is kept and
 * used by the next step. */
AFC_API afc_status afc_pfc_weight_read(const afc_pfc_t *pfc, int64_t row, int64_t rows, float *dst,
                                       int64_t count);
AFC_API afc_status afc_pfc_weight_write(afc_pfc_t *pfc, int64_t row, int64_t rows, const float *src,
                                        int64_t count);
AFC_API afc_status afc_pfc_grad_read(const afc_pfc_t *pfc, int64_t row, int64_t rows, float *dst,
                                     int64_t count);
AFC_API afc_status afc_pfc_state_read(const afc_pfc_t *pfc, int32_t which, int64_t row, int64_t rows,
                                      float *dst, int64_t count);
AFC_API afc_status afc_pfc_state_write(afc_pfc_t *pfc, int32_t which, int64_t row, int64_t rows,
                                       const float *src, int64_t count);

/* Reads / restores the sampling generator state and the shard optimizer's step count. */
AFC_API afc_status afc_pfc_counters_read(const afc_pfc_t *pfc, uint64_t *rng_state,
                                         int64_t *optim_steps);
AFC_API afc_status afc_pfc_counters_write(afc_pfc_t *pfc, uint64_t rng_state, int64_t optim_steps);

/* The sorted local class indices the last step used (the sampled centres; every class of
 * the shard when sample_rate is 1). A remapped label is its position in this list. Call
 * with (NULL, 0) to learn the count. */
AFC_API afc_status afc_pfc_sample_read(const afc_pfc_t *pfc, int64_t *index, int64_t capacity,
                                       int64_t *count);

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

/* Seconds the callers of this handle have spent waiting on collectives since it was created,
 * slower ranks included (Partial FC's and the gradient all-reduce's alike). Of a gradient
 * all-reduce overlapped with the backward pass, only the wait after the last layer counts. */
AFC_API afc_status afc_comm_seconds(const afc_comm_t *comm, double *out);

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
 * (1/size gives the average). The buckets are [0, b), [b, 2b), …: each sum depends only on
 * the ranks' values, not on when or where it runs. */
AFC_API afc_status afc_comm_all_reduce_grads(afc_comm_t *comm, float *grads, int64_t count,
                                             int64_t bucket_elems, float scale);

/* afc_comm_all_reduce_grads over every parameter gradient of `model`, in place. */
AFC_API afc_status afc_model_all_reduce_grads(afc_model_t *model, afc_comm_t *comm, int64_t bucket_elems,
                                              float scale);

/* afc_model_backward followed by afc_model_all_reduce_grads, with the same result to the
 * bit, but overlapped: a second thread sums each bucket as soon as the backward pass has
 * finished every gradient in it (the last layers' buckets first), while the pass goes on.
 * Call it for the last micro-batch of a data-parallel step. No other collective may run on
 * `comm` until it returns. */
AFC_API afc_status afc_model_backward_all_reduce(afc_model_t *model, const float *d_embeddings, int64_t n,
                                                 float *d_input, int32_t accumulate, afc_comm_t *comm,
                                                 int64_t bucket_elems, float scale);

#ifdef __cplusplus
}
#endif

#endif /* ARCFACE_H */
