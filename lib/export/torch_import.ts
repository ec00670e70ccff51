/**
 * Reads arcface_torch checkpoints without Python: a PyTorch ZIP checkpoint (`<name>/data.pkl`
 * and its storages `<name>/data/<key>`, torch 1.6 and newer) or the legacy stream of pickles
 * that older torch wrote (and newer writes with `_use_new_zipfile_serialization=False`),
 * holding a plain state dict, the seed's `checkpoint_gpu_0.pt` (`state_dict_backbone`), or a
 * DDP state dict (`module.` prefixes). Tensors become float32 in PyTorch element order.
 *
 * @module
 */
import { isTuple, PickleClass, PickleError, unpickle, unpickleAt, type UnpickleOptions } from "../pickle.ts";
import { ZipArchive } from "../zip.ts";
import type { StateDict } from "./graph.ts";

/** Element size and float32 conversion of the storage types torch.save writes. */
const STORAGES: Record<string, { size: number; read: (v: DataView, i: number) => number }> = {
  FloatStorage: { size: 4, read: (v, i) => v.getFloat32(4 * i, true) },
  DoubleStorage: { size: 8, read: (v, i) => v.getFloat64(8 * i, true) },
  HalfStorage: { size: 2, read: (v, i) => halfToFloat(v.getUint16(2 * i, true)) },
  BFloat16Storage: {
    size: 2,
    read: (v, i) => new Float32Array(new Uint32Array([v.getUint16(2 * i, true) << 16]).buffer)[0],
  },
  LongStorage: { size: 8, read: (v, i) => Number(v.getBigInt64(8 * i, true)) },
  IntStorage: { size: 4, read: (v, i) => v.getInt32(4 * i, true) },
};

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

interface Storage {
  kind: string;
  /** Filled after the pickle in the legacy format, whose storages follow it. */
  bytes: Uint8Array;
}

/** A tensor to build once its storage's bytes are known. */
class PendingTensor {
  constructor(readonly build: () => TorchTensor) {}
}

interface TorchTensor {
  shape: number[];
  data: Float32Array<ArrayBuffer>;
}

/** `_rebuild_tensor_v2(storage, offset, size, stride, …)` as float32, any strides. */
function rebuildTensor(storage: Storage, offset: number, size: readonly number[], stride: readonly number[]) {
  const info = STORAGES[storage.kind];
  const n = size.reduce((a, b) => a * b, 1);
  const contiguous = size.every((_, d) => stride[d] === size.slice(d + 1).reduce((a, b) => a * b, 1));
  if (contiguous && storage.kind === "FloatStorage") {
    return {
      shape: [...size],
      data: new Float32Array(storage.bytes.slice(4 * offset, 4 * (offset + n)).buffer),
    };
  }
  const view = new DataView(storage.bytes.buffer, storage.bytes.byteOffset, storage.bytes.byteLength);
  const data = new Float32Array(n);
  const idx = new Array(size.length).fill(0);
  for (let i = 0; i < n; i++) {
    let at = offset;
    for (let d = 0; d < size.length; d++) at += idx[d] * stride[d];
    data[i] = info.read(view, at);
    for (let d = size.length - 1; d >= 0; d--) {
      if (++idx[d] < size[d]) break;
      idx[d] = 0;
    }
  }
  return { shape: [...size], data } satisfies TorchTensor;
}

/** How the unpickler meets torch's tensors and storages; `storage` resolves a persistent id. */
function torchClasses(source: string, storage: (kind: string, key: string, numel: number) => Storage) {
  return {
    findClass: (module: string, name: string) => {
      if (module === "torch._utils" && name === "_rebuild_tensor_v2") {
        return (s: Storage, off: number, size: number[], stride: number[]) =>
          new PendingTensor(() => rebuildTensor(s, off, size, stride));
      }
      if (module === "torch._utils" && name === "_rebuild_parameter") return (t: PendingTensor) => t;
      if (module === "torch" && name in STORAGES) return new PickleClass(module, name);
      return undefined;
    },
    persistentLoad: (pid: unknown) => {
      // ('storage', torch.FloatStorage, key, location, numel[, view_metadata])
      if (!isTuple(pid) || pid[0] !== "storage" || !(pid[1] instanceof PickleClass)) {
        throw new Error(`Cannot import "${source}": unexpected persistent id ${JSON.stringify(pid)}`);
      }
      const kind = (pid[1] as PickleClass).name;
      if (!(kind in STORAGES)) {
        throw new Error(`Cannot import "${source}": storage type ${kind} is not supported`);
      }
      if (pid.length > 5 && pid[5] != null) {
        throw new Error(
          `Cannot import "${source}": storage views (legacy torch before 1.0) are not supported`,
        );
      }
      return storage(kind, String(pid[2]), Number(pid[4]));
    },
  } satisfies UnpickleOptions;
}

/** torch's legacy format: magic, protocol 1001, system info, the object, storage keys, storages. */
function readLegacy(bytes: Uint8Array, source: string): unknown {
  let pos = 0;
  const next = (options: UnpickleOptions = {}) => {
    try {
      const r = unpickleAt(bytes, pos, options);
      pos = r.end;
      return r.value;
    } catch (e) {
      if (!(e instanceof PickleError)) throw e;
      throw new Error(`Cannot import "${source}": ${e.message} (a damaged or truncated torch.save file?)`);
    }
  };
  const magic = next();
  const protocol = magic === 0x1950a86a20f9469cfc6cn ? next() : undefined;
  if (protocol !== 1001) {
    throw new Error(`Cannot import "${source}": a pickle, but not a torch.save checkpoint`);
  }
  next(); // system info: byte order little-endian, type sizes
  const storages = new Map<string, Storage & { numel: number }>();
  const root = next(torchClasses(source, (kind, key, numel) => {
    let s = storages.get(key);
    if (!s) storages.set(key, s = { kind, bytes: new Uint8Array(0), numel });
    return s;
  }));
  const keys = next();
  if (!Array.isArray(keys)) throw new Error(`Cannot import "${source}": its storage key list is missing`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.map(String)) {
    const s = storages.get(key);
    if (!s) throw new Error(`Cannot import "${source}": storage "${key}" is listed but not used`);
    const size = STORAGES[s.kind].size;
    if (pos + 8 > bytes.length) {
      throw new Error(`Cannot import "${source}": truncated before storage "${key}"`);
    }
    const numel = Number(view.getBigInt64(pos, true));
    const end = pos + 8 + numel * size;
    if (numel !== s.numel || end > bytes.length) {
      throw new Error(
        `Cannot import "${source}": storage "${key}" holds ${numel} of ${s.numel} elements, ${
          bytes.length - pos - 8
        } bytes left (truncated or damaged file)`,
      );
    }
    s.bytes = bytes.slice(pos + 8, end);
    pos = end;
  }
  return root;
}

/** The tensors of a torch.save checkpoint, after unwrapping the seed's containers. */
export async function readTorchCheckpoint(bytes: Uint8Array, source: string): Promise<StateDict> {
  if (bytes[0] === 0x80) return toStateDict(readLegacy(bytes, source), source);
  let zip: ZipArchive;
  try {
    zip = new ZipArchive(bytes, source);
  } catch (e) {
    throw new Error(`Cannot import "${source}": ${(e as Error).message} (expected a torch.save checkpoint)`);
  }
  const pkl = [...zip.entries.keys()].find((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (!pkl) {
    throw new Error(`Cannot import "${source}": no <name>/data.pkl inside (not a torch.save checkpoint)`);
  }
  const prefix = pkl.slice(0, -"data.pkl".length);
  const storages = new Map<string, Uint8Array>();
  for (const name of zip.entries.keys()) {
    if (name.startsWith(`${prefix}data/`)) storages.set(name.slice(prefix.length + 5), await zip.read(name));
  }
  const root = unpickle(
    await zip.read(pkl),
    torchClasses(source, (kind, key) => {
      const b = storages.get(key);
      if (!b) throw new Error(`Cannot import "${source}": storage "${key}" is missing from the archive`);
      return { kind, bytes: b };
    }),
  );
  return toStateDict(root, source);
}

/** Unwraps `state_dict_backbone` / `state_dict` / `model` and strips DDP's `module.` prefix. */
function toStateDict(root: unknown, source: string): StateDict {
  if (!(root instanceof Map)) throw new Error(`Cannot import "${source}": it holds no dictionary of tensors`);
  let dict: Map<unknown, unknown> = root;
  for (const key of ["state_dict_backbone", "state_dict", "model"]) {
    if (dict.get(key) instanceof Map) {
      dict = dict.get(key) as Map<unknown, unknown>;
      break;
    }
  }
  const out: StateDict = new Map();
  for (const [k, v] of dict) {
    if (typeof k !== "string" || !(v instanceof PendingTensor)) continue;
    out.set(k.startsWith("module.") ? k.slice(7) : k, v.build());
  }
  if (out.size === 0) {
    const keys = [...dict.keys()].slice(0, 8).map(String).join(", ");
    throw new Error(`Cannot import "${source}": no tensors found (its keys: ${keys})`);
  }
  return out;
}
