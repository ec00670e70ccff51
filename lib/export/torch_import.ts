/**
 * Reads arcface_torch checkpoints without Python: a PyTorch ZIP checkpoint (`<name>/data.pkl`
 * and its storages `<name>/data/<key>`) holding a plain state dict, the seed's
 * `checkpoint_gpu_0.pt` (`state_dict_backbone`), or a DDP state dict (`module.` prefixes).
 * Tensors become float32 in PyTorch element order.
 *
 * @module
 */
import { isTuple, PickleClass, unpickle } from "../pickle.ts";
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
  bytes: Uint8Array;
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

/** The tensors of a PyTorch ZIP checkpoint, after unwrapping the seed's containers. */
export async function readTorchCheckpoint(bytes: Uint8Array, source: string): Promise<StateDict> {
  if (bytes[0] === 0x80 && bytes[1] === 0x02) {
    throw new Error(
      `Cannot import "${source}": it is the legacy (pre-1.6) torch.save format; load and save it again with torch 1.6 or newer`,
    );
  }
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
  const root = unpickle(await zip.read(pkl), {
    findClass: (module, name) => {
      if (module === "torch._utils" && name === "_rebuild_tensor_v2") {
        return (s: Storage, off: number, size: number[], stride: number[]) =>
          rebuildTensor(s, off, size, stride);
      }
      if (module === "torch._utils" && name === "_rebuild_parameter") return (t: TorchTensor) => t;
      if (module === "torch" && name in STORAGES) return new PickleClass(module, name);
      return undefined;
    },
    persistentLoad: (pid) => {
      // ('storage', torch.FloatStorage, key, location, numel)
      if (!isTuple(pid) || pid[0] !== "storage" || !(pid[1] instanceof PickleClass)) {
        throw new Error(`Cannot import "${source}": unexpected persistent id ${JSON.stringify(pid)}`);
      }
      const kind = (pid[1] as PickleClass).name, key = String(pid[2]);
      if (!(kind in STORAGES)) {
        throw new Error(`Cannot import "${source}": storage type ${kind} is not supported`);
      }
      const b = storages.get(key);
      if (!b) throw new Error(`Cannot import "${source}": storage "${key}" is missing from the archive`);
      return { kind, bytes: b } satisfies Storage;
    },
  });
  return toStateDict(root, source);
}

function isTensor(v: unknown): v is TorchTensor {
  return typeof v === "object" && v !== null && "shape" in v &&
    (v as TorchTensor).data instanceof Float32Array;
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
    if (typeof k !== "string" || !isTensor(v)) continue;
    out.set(k.startsWith("module.") ? k.slice(7) : k, v);
  }
  if (out.size === 0) {
    const keys = [...dict.keys()].slice(0, 8).map(String).join(", ");
    throw new Error(`Cannot import "${source}": no tensors found (its keys: ${keys})`);
  }
  return out;
}
