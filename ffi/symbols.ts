/**
 * The FFI symbol table of libarcface, in the order of `csrc/include/arcface.h`.
 * A test parses the header and fails when the two disagree. Long calls are `nonblocking`
 * so they run on another thread and return a Promise.
 *
 * @module
 */

/** Every exported function of `arcface.h`, as `Deno.dlopen` wants it. */
export const symbols = {
  // Status codes and errors
  afc_abi_version: { parameters: [], result: "u32" },
  afc_status_string: { parameters: ["i32"], result: "pointer" },
  afc_last_error: { parameters: [], result: "pointer" },
  afc_echo_u32: { parameters: ["u32"], result: "u32" },
  afc_echo_u64: { parameters: ["u64"], result: "u64" },
  afc_echo_i64: { parameters: ["i64"], result: "i64" },

  // Context
  afc_context_create: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  afc_context_destroy: { parameters: ["pointer"], result: "void" },
  afc_context_threads: { parameters: ["pointer", "buffer"], result: "i32" },

  // Model
  afc_model_create: {
    parameters: ["pointer", "buffer", "i32", "f32", "i32", "i32", "buffer"],
    result: "i32",
  },
  afc_model_destroy: { parameters: ["pointer"], result: "void" },
  afc_model_describe: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },
  afc_model_tensor_read: { parameters: ["pointer", "buffer", "buffer", "i64"], result: "i32" },
  afc_model_tensor_write: { parameters: ["pointer", "buffer", "buffer", "i64"], result: "i32" },
  afc_model_grad_read: { parameters: ["pointer", "buffer", "buffer", "i64"], result: "i32" },
  afc_model_forward: {
    parameters: ["pointer", "buffer", "i64", "i32", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  afc_model_backward: {
    parameters: ["pointer", "buffer", "i64", "buffer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  afc_model_zero_grad: { parameters: ["pointer"], result: "i32" },
  afc_model_error: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },

  // Data (csrc/data/)
  afc_image_info: { parameters: ["buffer", "i64", "buffer", "buffer", "buffer"], result: "i32" },
  afc_image_decode: { parameters: ["buffer", "i64", "i32", "i32", "buffer", "i64"], result: "i32" },
  afc_image_resize: {
    parameters: ["buffer", "i32", "i32", "i32", "i32", "i32", "i32", "buffer", "i32", "i32"],
    result: "i32",
  },
  afc_image_encode_jpeg: {
    parameters: ["buffer", "i32", "i32", "i32", "buffer", "i64", "buffer"],
    result: "i32",
  },

  afc_recordio_create: { parameters: ["buffer", "buffer", "i32", "buffer"], result: "i32" },
  afc_recordio_destroy: { parameters: ["pointer"], result: "void" },
  afc_recordio_count: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  afc_recordio_keys: { parameters: ["pointer", "buffer", "buffer", "i64"], result: "i32" },
  afc_recordio_read: { parameters: ["pointer", "i64", "buffer", "i64", "buffer"], result: "i32" },
  afc_recordio_writer_create: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  afc_recordio_writer_destroy: { parameters: ["pointer"], result: "void" },
  afc_recordio_writer_write: { parameters: ["pointer", "i64", "buffer", "i64"], result: "i32" },
  afc_recordio_writer_finish: { parameters: ["pointer"], result: "i32" },
  afc_dataset_create: { parameters: ["i32", "buffer", "i64", "i32", "buffer"], result: "i32" },
  afc_dataset_destroy: { parameters: ["pointer"], result: "void" },
  afc_dataset_describe: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },
  afc_dataset_labels: { parameters: ["pointer", "buffer", "i64"], result: "i32" },
  afc_dataset_image: {
    parameters: ["pointer", "i64", "i32", "i32", "buffer", "i64", "buffer"],
    result: "i32",
  },
  afc_loader_create: {
    parameters: ["pointer", "i32", "i32", "i32", "i32", "i32", "u64", "i32", "i32", "i32", "buffer"],
    result: "i32",
  },
  afc_loader_destroy: { parameters: ["pointer"], result: "void" },
  afc_loader_steps: { parameters: ["pointer", "buffer"], result: "i32" },
  afc_loader_set_epoch: { parameters: ["pointer", "i64"], result: "i32", nonblocking: true },
  afc_loader_next: {
    parameters: ["pointer", "buffer", "i64", "buffer", "i64", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  afc_loader_error: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },
  afc_loader_counters: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  // Training (margin loss, Partial FC, optimizers)
  afc_margin_create: {
    parameters: ["f32", "f32", "f32", "f32", "f32", "i32", "buffer"],
    result: "i32",
  },
  afc_margin_destroy: { parameters: ["pointer"], result: "void" },
  afc_margin_forward: {
    parameters: ["pointer", "buffer", "buffer", "i64", "i64", "buffer"],
    result: "i32",
  },
  afc_margin_backward: {
    parameters: ["pointer", "buffer", "buffer", "i64", "i64", "buffer", "buffer"],
    result: "i32",
  },
  afc_optim_create: { parameters: ["i32", "f64", "f64", "f64", "f64", "f64", "buffer"], result: "i32" },
  afc_optim_destroy: { parameters: ["pointer"], result: "void" },
  afc_optim_add: { parameters: ["pointer", "i64", "buffer"], result: "i32" },
  afc_optim_step: {
    parameters: ["pointer", "i64", "buffer", "buffer", "i64", "f64", "f32"],
    result: "i32",
    nonblocking: true,
  },
  afc_optim_state_read: { parameters: ["pointer", "i64", "i32", "i64", "buffer", "i64"], result: "i32" },
  afc_optim_state_write: { parameters: ["pointer", "i64", "i32", "i64", "buffer", "i64"], result: "i32" },
  afc_optim_steps_read: { parameters: ["pointer", "i64", "buffer"], result: "i32" },
  afc_optim_steps_write: { parameters: ["pointer", "i64", "i64"], result: "i32" },
  afc_optim_sum_squares: { parameters: ["buffer", "i64", "buffer"], result: "i32" },
  afc_optim_clip_coef: { parameters: ["f64", "f32", "f32", "buffer"], result: "i32" },
  afc_model_grad_sum_squares: { parameters: ["pointer", "buffer"], result: "i32" },
  afc_model_step: { parameters: ["pointer", "pointer", "f64", "f32"], result: "i32", nonblocking: true },
  afc_model_state_read: { parameters: ["pointer", "buffer", "i32", "buffer", "i64"], result: "i32" },
  afc_model_state_write: { parameters: ["pointer", "buffer", "i32", "buffer", "i64"], result: "i32" },
  afc_model_optim_steps_read: { parameters: ["pointer", "buffer"], result: "i32" },
  afc_model_optim_steps_write: { parameters: ["pointer", "i64"], result: "i32" },
  afc_pfc_create: {
    parameters: ["pointer", "pointer", "pointer", "i64", "i32", "f32", "i64", "u64", "buffer"],
    result: "i32",
  },
  afc_pfc_destroy: { parameters: ["pointer"], result: "void" },
  afc_pfc_shard: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  afc_pfc_forward_backward: {
    parameters: ["pointer", "buffer", "buffer", "i64", "i32", "buffer", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  afc_pfc_error: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },
  afc_pfc_zero_grad: { parameters: ["pointer"], result: "i32" },
  afc_pfc_step: { parameters: ["pointer", "pointer", "f64", "f32"], result: "i32", nonblocking: true },
  afc_pfc_weight_read: { parameters: ["pointer", "i64", "i64", "buffer", "i64"], result: "i32" },
  afc_pfc_weight_write: { parameters: ["pointer", "i64", "i64", "buffer", "i64"], result: "i32" },
  afc_pfc_grad_read: { parameters: ["pointer", "i64", "i64", "buffer", "i64"], result: "i32" },
  afc_pfc_state_read: { parameters: ["pointer", "i32", "i64", "i64", "buffer", "i64"], result: "i32" },
  afc_pfc_state_write: { parameters: ["pointer", "i32", "i64", "i64", "buffer", "i64"], result: "i32" },
  afc_pfc_counters_read: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  afc_pfc_counters_write: { parameters: ["pointer", "u64", "i64"], result: "i32" },
  afc_pfc_sample_read: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },
  // Distributed (csrc/dist/)
  afc_comm_create: {
    parameters: ["buffer", "buffer", "i32", "i32", "i64", "buffer", "buffer"],
    result: "i32",
  },
  afc_comm_destroy: { parameters: ["pointer"], result: "void" },
  afc_comm_seconds: { parameters: ["pointer", "buffer"], result: "i32" },
  afc_comm_rank: { parameters: ["pointer", "buffer"], result: "i32" },
  afc_comm_size: { parameters: ["pointer", "buffer"], result: "i32" },
  afc_comm_error: { parameters: ["pointer", "buffer", "i64", "buffer"], result: "i32" },
  afc_comm_all_reduce: {
    parameters: ["pointer", "i32", "buffer", "i64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  afc_comm_all_gather: {
    parameters: ["pointer", "i32", "buffer", "i64", "buffer", "i64"],
    result: "i32",
    nonblocking: true,
  },
  afc_comm_all_gather_v: {
    parameters: ["pointer", "i32", "buffer", "i64", "buffer", "i64", "buffer", "i64"],
    result: "i32",
    nonblocking: true,
  },
  afc_comm_broadcast: {
    parameters: ["pointer", "i32", "buffer", "i64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  afc_comm_barrier: { parameters: ["pointer"], result: "i32", nonblocking: true },
  afc_comm_all_reduce_grads: {
    parameters: ["pointer", "buffer", "i64", "i64", "f32"],
    result: "i32",
    nonblocking: true,
  },
  afc_model_all_reduce_grads: {
    parameters: ["pointer", "pointer", "i64", "f32"],
    result: "i32",
    nonblocking: true,
  },
  afc_model_backward_all_reduce: {
    parameters: ["pointer", "buffer", "i64", "buffer", "i32", "pointer", "i64", "f32"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** The ABI version these bindings were written for; the loader refuses any other. */
export const ABI_VERSION = 5;
