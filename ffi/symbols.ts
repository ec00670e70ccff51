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

  // Context
  afc_context_create: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  afc_context_destroy: { parameters: ["pointer"], result: "void" },
  afc_context_threads: { parameters: ["pointer", "buffer"], result: "i32" },

  // Model
  afc_model_create: {
    parameters: ["pointer", "buffer", "i32", "f32", "i32", "buffer"],
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

  // Training (margin loss, Partial FC, optimizers)

  // Distributed (csrc/dist/)
} as const satisfies Deno.ForeignLibraryInterface;

/** The ABI version these bindings were written for; the loader refuses any other. */
export const ABI_VERSION = 1;
