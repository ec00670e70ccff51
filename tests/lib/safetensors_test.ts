import assert from "node:assert/strict";
import {
  fromFloat32,
  metadataInt,
  parseSafetensors,
  readSafetensors,
  serializeSafetensors,
  type Tensor,
  toFloat32,
  writeSafetensors,
} from "../../lib/safetensors.ts";

const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url).pathname;

/** 8-byte little-endian length, header text, then data. */
function fileBytes(header: string, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  return out;
}

function headerOf(bytes: Uint8Array): { length: number; json: Record<string, unknown> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) };
}

Deno.test("(a) a file laid out by the reference writer loads: F32 [1], F32 [0,512], F16 [3]", async () => {
  const bytes = await Deno.readFile(fixture("safetensors_reference.safetensors"));
  assert.equal(headerOf(bytes).length, 168);
  assert.equal(new TextDecoder().decode(bytes.subarray(8 + 165, 8 + 168)), "   ");
  const { tensors, metadata } = await readSafetensors(fixture("safetensors_reference.safetensors"));
  assert.deepEqual([...tensors.keys()].sort(), ["x", "y", "z"]);
  assert.deepEqual(metadata, {});
  const y = tensors.get("y")!;
  assert.equal(y.dtype, "F32");
  assert.deepEqual(y.shape, [1]);
  assert.deepEqual([...y.data as Float32Array], [1.5]);
  const z = tensors.get("z")!;
  assert.deepEqual(z.shape, [0, 512]);
  assert.equal(z.data.length, 0);
  const x = tensors.get("x")!;
  assert.equal(x.dtype, "F16");
  assert.deepEqual([...toFloat32(x)], [1, -2, 0.5]);
});

Deno.test("(b) an unpadded 54-byte header puts F32 data at byte 62; it is copied, no RangeError", async () => {
  const header = `{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`;
  assert.equal(header.length, 54);
  const bytes = fileBytes(header, new Uint8Array(new Float32Array([3.25, -7]).buffer));
  const { tensors } = parseSafetensors(bytes);
  assert.deepEqual([...tensors.get("w")!.data as Float32Array], [3.25, -7]);
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await Deno.writeFile(path, bytes);
    const read = await readSafetensors(path);
    assert.deepEqual([...read.tensors.get("w")!.data as Float32Array], [3.25, -7]);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("(c) a scalar I64 with shape [] is a 0-d tensor holding 1234", () => {
  const data = new Uint8Array(new BigInt64Array([1234n]).buffer);
  const { tensors } = parseSafetensors(
    fileBytes(`{"s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}`, data),
  );
  const s = tensors.get("s")!;
  assert.deepEqual(s.shape, []);
  assert.equal(s.data.length, 1);
  assert.equal((s.data as BigInt64Array)[0], 1234n);
  // And our writer keeps it 0-d.
  const again = parseSafetensors(serializeSafetensors({ s })).tensors.get("s")!;
  assert.deepEqual(again.shape, []);
  assert.equal((again.data as BigInt64Array)[0], 1234n);
});

Deno.test("(d) a file whose header is {} is an empty map", () => {
  const { tensors, metadata } = parseSafetensors(fileBytes("{}"));
  assert.equal(tensors.size, 0);
  assert.deepEqual(metadata, {});
});

Deno.test("(e) checkpoint metadata is written as strings and parsed back as integers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/ckpt.safetensors`;
    await writeSafetensors(path, { w: fromFloat32([1, 2], [2]) }, {
      epoch: 3,
      world_size: "2",
      num_classes: 10,
    });
    const raw = headerOf(await Deno.readFile(path)).json;
    assert.deepEqual(raw.__metadata__, { epoch: "3", world_size: "2", num_classes: "10" });
    const { metadata } = await readSafetensors(path);
    assert.equal(metadataInt(metadata, "epoch"), 3);
    assert.equal(metadataInt(metadata, "world_size"), 2);
    assert.equal(metadataInt(metadata, "num_classes"), 10);
    assert.throws(
      () => metadataInt({ epoch: "3.5" }, "epoch", `"x"`),
      /Cannot read metadata "epoch" of "x": "3.5" is not an integer/,
    );
    assert.throws(() => metadataInt({ epoch: "three" }, "epoch"), /"three" is not an integer/);
    assert.throws(() => metadataInt({}, "epoch"), /"epoch" of file: the key is missing/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("non-string metadata in a file is refused with its key", () => {
  const bytes = fileBytes(`{"__metadata__":{"epoch":3}}`);
  assert.throws(
    () => parseSafetensors(bytes, `"m.safetensors"`),
    /Cannot read safetensors "m.safetensors": metadata "epoch" is 3, expected a string/,
  );
  assert.throws(() => serializeSafetensors({}, { bad: {} as unknown as string }), TypeError);
});

function mixed(): Record<string, Tensor> {
  return {
    "f32": fromFloat32([1.5, -2.25, 3], [3]),
    "f16": fromFloat32([0.5, -1, 65504, 1e-7], [2, 2], "F16"),
    "bf16": fromFloat32([1, -3.5, 1e30], [3], "BF16"),
    "i64": { dtype: "I64", shape: [2], data: new BigInt64Array([-1n, 9007199254740993n]) },
    "i32": { dtype: "I32", shape: [1, 3], data: new Int32Array([-7, 0, 2147483647]) },
    "u8": { dtype: "U8", shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) },
    "bool": { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
    "empty": { dtype: "F32", shape: [0, 512], data: new Float32Array(0) },
  };
}

Deno.test("our writer pads the header to 8 bytes and aligns every tensor to its element size", () => {
  const bytes = serializeSafetensors(mixed(), { epoch: "1" });
  const { length, json } = headerOf(bytes);
  assert.equal(length % 8, 0);
  const sizes: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1, BOOL: 1 };
  let covered = 0;
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") continue;
    const e = entry as { dtype: string; data_offsets: number[] };
    assert.equal((8 + length + e.data_offsets[0]) % sizes[e.dtype], 0, `${name} is misaligned`);
    covered += e.data_offsets[1] - e.data_offsets[0];
  }
  assert.equal(8 + length + covered, bytes.length);
  const back = parseSafetensors(bytes).tensors;
  for (const [name, t] of Object.entries(mixed())) {
    assert.equal(back.get(name)!.dtype, t.dtype);
    assert.deepEqual(back.get(name)!.shape, t.shape);
    assert.deepEqual([...back.get(name)!.data], [...t.data], name);
  }
});

Deno.test("F16 and BF16 encode with round-to-nearest-even and decode exactly", () => {
  assert.deepEqual([
    ...toFloat32(fromFloat32([1 + 2 ** -11, 1 + 3 * 2 ** -11, 70000, 2 ** -24, -0.1], [5], "F16")),
  ], [
    1,
    1 + 2 ** -9,
    Infinity,
    2 ** -24,
    Math.fround(-0.0999755859375),
  ]);
  assert.deepEqual([...toFloat32(fromFloat32([1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5], [3], "BF16"))], [
    1,
    1 + 2 ** -6,
    -2.5,
  ]);
});

Deno.test("an unknown dtype is named in the error, reading and writing", () => {
  const bytes = fileBytes(`{"q":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}`, new Uint8Array(1));
  assert.throws(
    () => parseSafetensors(bytes),
    /tensor "q": unknown dtype "F8_E9" \(expected one of F64, F32/,
  );
  const bad = { q: { dtype: "Q4", shape: [1], data: new Uint8Array(1) } as unknown as Tensor };
  assert.throws(() => serializeSafetensors(bad), /Cannot write tensor "q": unknown dtype "Q4"/);
});

Deno.test("malformed files are refused with the reason", () => {
  assert.throws(() => parseSafetensors(new Uint8Array(4)), /too short/);
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 1000n, true);
  assert.throws(() => parseSafetensors(huge), /header length 1000 exceeds the 8 bytes after it/);
  assert.throws(() => parseSafetensors(fileBytes("[1]")), /the header is not a JSON object/);
  assert.throws(
    () =>
      parseSafetensors(
        fileBytes(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, new Uint8Array(8)),
      ),
    /tensor "w" spans 8 bytes, but F32 \[3\] needs 12/,
  );
  assert.throws(
    () =>
      parseSafetensors(
        fileBytes(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, new Uint8Array(8)),
      ),
    /tensor "w" ends at data byte 16, but the data section has 8 bytes/,
  );
  assert.throws(
    () => serializeSafetensors({ w: { dtype: "F32", shape: [3], data: new Float32Array(2) } }),
    RangeError,
  );
  assert.throws(
    () =>
      serializeSafetensors({
        w: { dtype: "F32", shape: [2], data: new Float64Array(2) } as unknown as Tensor,
      }),
    TypeError,
  );
});

Deno.test("a failed write leaves the existing file intact and no temporary file behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/keep.safetensors`;
    await writeSafetensors(path, { w: fromFloat32([1], [1]) });
    const before = await Deno.readFile(path);
    await assert.rejects(() =>
      writeSafetensors(path, { w: { dtype: "F32", shape: [2], data: new Float32Array(1) } })
    );
    assert.deepEqual(await Deno.readFile(path), before);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["keep.safetensors"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function python(script: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("python3", {
    args: ["-c", script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`python3 failed: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

Deno.test("files round-trip with the Python safetensors package", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Ours → Python: the reference reader accepts the file and sees the same bytes.
    const ours = `${dir}/ours.safetensors`;
    await writeSafetensors(ours, mixed(), { epoch: 3 });
    const seen = JSON.parse(
      await python(
        `import json, sys, safetensors
from safetensors import safe_open
data = open(sys.argv[1], "rb").read()
out = {name: {"dtype": t["dtype"], "shape": list(t["shape"]), "hex": bytes(t["data"]).hex()} for name, t in safetensors.deserialize(data)}
with safe_open(sys.argv[1], framework="numpy") as f:
    out["__metadata__"] = f.metadata()
    out["f32_values"] = [float(v) for v in f.get_tensor("f32")]
print(json.dumps(out))`,
        ours,
      ),
    );
    assert.deepEqual(seen.__metadata__, { epoch: "3" });
    assert.deepEqual(seen.f32_values, [1.5, -2.25, 3]);
    for (const [name, t] of Object.entries(mixed())) {
      assert.equal(seen[name].dtype, t.dtype, name);
      assert.deepEqual(seen[name].shape, t.shape, name);
      const hex = [...new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(seen[name].hex, hex, name);
    }

    // Python → ours.
    const theirs = `${dir}/theirs.safetensors`;
    await python(
      `import sys, numpy as np
from safetensors.numpy import save_file
save_file({"a": np.arange(6, dtype=np.float32).reshape(2, 3) / 4, "h": np.array([0.5, -3], np.float16),
           "n": np.array([-5, 2**40], np.int64), "k": np.array([7], np.int32), "b": np.array([True, False, True]),
           "u": np.array([200], np.uint8), "s": np.array(9, np.int64)}, sys.argv[1], metadata={"epoch": "4"})`,
      theirs,
    );
    const { tensors, metadata } = await readSafetensors(theirs);
    assert.equal(metadataInt(metadata, "epoch"), 4);
    assert.deepEqual(tensors.get("a")!.shape, [2, 3]);
    assert.deepEqual([...tensors.get("a")!.data as Float32Array], [0, 0.25, 0.5, 0.75, 1, 1.25]);
    assert.deepEqual([...toFloat32(tensors.get("h")!)], [0.5, -3]);
    assert.deepEqual([...tensors.get("n")!.data as BigInt64Array], [-5n, 2n ** 40n]);
    assert.deepEqual([...tensors.get("k")!.data as Int32Array], [7]);
    assert.equal(tensors.get("b")!.dtype, "BOOL");
    assert.deepEqual([...tensors.get("b")!.data as Uint8Array], [1, 0, 1]);
    assert.deepEqual([...tensors.get("u")!.data as Uint8Array], [200]);
    assert.deepEqual(tensors.get("s")!.shape, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a PyTorch checkpoint or an image given as safetensors is named as such", () => {
  const zip = new Uint8Array(64).fill(7);
  zip.set([0x50, 0x4b, 0x03, 0x04]);
  assert.throws(
    () => parseSafetensors(zip, "m.pt"),
    /m\.pt: it is a PyTorch checkpoint \(torch\.save\): convert it with `deno task import/,
  );
  const jpeg = new Uint8Array(64).fill(9);
  jpeg.set([0xff, 0xd8, 0xff, 0xe0]);
  assert.throws(
    () => parseSafetensors(jpeg, "face.jpg"),
    /face\.jpg: it is an image \(JPEG or PNG\), not a model/,
  );
});

Deno.test("writing over a folder names the path", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/m.safetensors`);
  await assert.rejects(
    () => writeSafetensors(`${dir}/m.safetensors`, new Map()),
    new RegExp(`Cannot write "${dir}/m\\.safetensors": it is a folder`),
  );
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["m.safetensors"]);
  await Deno.remove(dir, { recursive: true });
});
