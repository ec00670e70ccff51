import assert from "node:assert/strict";
import {
  isTuple,
  pickle,
  PickleClass,
  PickleError,
  PickleObject,
  tuple,
  unpickle,
} from "../../lib/pickle.ts";

const dir = new URL("../fixtures/pickle/", import.meta.url);
const read = (name: string) => Deno.readFileSync(new URL(name, dir));
const bytes = (...b: number[]) => Uint8Array.from(b);
const ascii = (s: string) => new TextEncoder().encode(s);

/** Checks the value written by make_pickles.py; `py2` strs come back as bytes. */
function checkValue(v: unknown, py2: boolean) {
  assert.ok(isTuple(v));
  const t = v as unknown[];
  assert.equal(t.length, 21);
  assert.equal(t[0], "h\u00e9llo \u4e16");
  assert.deepEqual(t[1], bytes(97, 98, 255, 0));
  assert.deepEqual(t[2], [
    0,
    255,
    256,
    65535,
    65536,
    -1,
    -(2 ** 31),
    2 ** 31,
    2n ** 53n + 1n,
    -(2n ** 70n),
    5,
  ]);
  assert.deepEqual(t[3], [1.5, -0.25, Infinity, 1e300]);
  assert.deepEqual(t.slice(4, 7), [true, false, null]);
  assert.deepEqual(t[7], [1, [2, 3]]);
  const key = (s: string) => py2 ? ascii(s) : s;
  assert.deepEqual(t[8], new Map([[key("a"), 1]]));
  assert.deepEqual(t[9], new Set([1, 2]));
  assert.deepEqual(t[10], new Set([3]));
  assert.deepEqual(t[11], ascii("xy"));
  assert.ok(t[12] instanceof Map);
  assert.deepEqual([...(t[12] as Map<unknown, unknown>)], [[key("k"), 1], [key("j"), 2]]);
  const pair = t[13] as unknown[][];
  assert.deepEqual(pair[0], [7, 8]);
  assert.equal(pair[0], pair[1], "a shared list is one object after the memo");
  assert.deepEqual(t[14], new Uint8Array(300).fill(1));
  assert.equal(t[15], "z".repeat(300));
  assert.deepEqual(t.slice(16), [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]);
  for (const x of t.slice(16)) assert.ok(isTuple(x));
}

for (const p of [0, 1, 2, 3, 4, 5]) {
  Deno.test(`reads a Python 3 pickle, protocol ${p}`, () => {
    checkValue(unpickle(read(`value_py3_p${p}.pkl`)), false);
  });
}
for (const p of [0, 1, 2]) {
  Deno.test(`reads a Python 2 pickle, protocol ${p} (str as bytes)`, () => {
    checkValue(unpickle(read(`value_py2_p${p}.pkl`)), true);
  });
}

Deno.test("a Python 2 .bin-like pickle and every Python 3 one load to the same images and labels", () => {
  const images = [0, 1, 2, 3].map((i) => bytes(0xff, 0xd8, 0xff, 0xe0, i, 0, 255, 10));
  const names = ["py2_p0", "py2_p1", "py2_p2", "py3_p0", "py3_p1", "py3_p2", "py3_p3", "py3_p4", "py3_p5"];
  for (const name of names) {
    assert.deepEqual(unpickle(read(`bin_${name}.pkl`)), [images, [true, false]], name);
  }
});

Deno.test("py2str latin1 returns Python 2 str as text", () => {
  const v = unpickle(read("bin_py2_p2.pkl"), { py2str: "latin1" }) as string[][];
  assert.equal(v[0][0], "\xff\xd8\xff\xe0\x00\x00\xff\n");
});

Deno.test("Python 2 str written by hand: SHORT_BINSTRING, BINSTRING and STRING", () => {
  // (U'\x00\xff' , T<len 3>'abc', S'\\x01q\\n') as a protocol-2 tuple
  const stream = bytes(
    0x80,
    2,
    0x55,
    2,
    0x00,
    0xff,
    0x54,
    3,
    0,
    0,
    0,
    97,
    98,
    99,
    0x53,
    ...ascii("'\\x01q\\n'\n"),
    0x87,
    0x2e,
  );
  assert.deepEqual(unpickle(stream), [bytes(0, 255), ascii("abc"), bytes(1, 113, 10)]);
});

Deno.test("findClass and persistentLoad hooks see GLOBAL, REDUCE and BINPERSID", () => {
  // torch-like: c torch._utils _rebuild_tensor_v2 ( ('storage', 'FloatStorage', '0', 'cpu', 4) Q ... ) R .
  const seen: unknown[] = [];
  const stream = new Uint8Array([
    0x80,
    2,
    0x63,
    ...ascii("torch._utils\n_rebuild_tensor_v2\n"),
    0x28,
    0x28,
    0x8c,
    7,
    ...ascii("storage"),
    0x8c,
    1,
    ...ascii("0"),
    0x4b,
    4,
    0x74,
    0x51,
    0x4b,
    0,
    0x4b,
    4,
    0x85,
    0x74,
    0x52,
    0x2e,
  ]);
  const out = unpickle(stream, {
    findClass: (m, n) =>
      m === "torch._utils" && n === "_rebuild_tensor_v2"
        ? (...args: unknown[]) => ({ rebuilt: args })
        : undefined,
    persistentLoad: (pid) => {
      seen.push(pid);
      return "STORAGE";
    },
  });
  assert.deepEqual(seen, [["storage", "0", 4]]);
  assert.deepEqual(out, { rebuilt: ["STORAGE", 0, [4]] });
});

Deno.test("unknown classes become PickleObject with args and BUILD state", () => {
  const stream = new Uint8Array([
    0x80,
    2,
    0x63,
    ...ascii("foo.bar\nBaz\n"),
    0x4b,
    1,
    0x85,
    0x81,
    0x7d,
    0x8c,
    1,
    120,
    0x4b,
    2,
    0x73,
    0x62,
    0x2e,
  ]);
  const v = unpickle(stream);
  assert.ok(v instanceof PickleObject);
  assert.ok(v.cls instanceof PickleClass);
  assert.equal(v.cls.qualifiedName, "foo.bar.Baz");
  assert.deepEqual(v.args, [1]);
  assert.deepEqual(v.state, new Map([["x", 2]]));
});

Deno.test("a persistent id without a hook, a truncated stream and a non-pickle are clear errors", () => {
  assert.throws(
    () => unpickle(bytes(0x80, 2, 0x4e, 0x51, 0x2e)),
    /persistent id None found but no persistentLoad/,
  );
  const full = read("bin_py3_p4.pkl");
  assert.throws(() => unpickle(full.subarray(0, 40)), /truncated data/);
  assert.throws(
    () => unpickle(ascii("hello world")),
    /unknown opcode 0x68|memo index|stack underflow|this is not a pickle/,
  );
  assert.throws(() => unpickle(bytes(0x80, 9)), /unsupported protocol 9/);
  assert.throws(() => unpickle(new Uint8Array(0)), PickleError);
});

for (const protocol of [2, 3, 4, 5] as const) {
  Deno.test(`writer round trip, protocol ${protocol}`, () => {
    const value = tuple(
      [ascii("img0"), new Uint8Array(5000).fill(7), new Uint8Array(0)],
      [true, false, true],
      tuple(1, -300, 70000, -(2 ** 40), 2n ** 80n, -(2n ** 64n), 0.5, "é", "x".repeat(300)),
      new Map<string, number>([["a", 1]]),
      null,
    );
    const back = unpickle(pickle(value, { protocol }));
    assert.deepEqual(back, value);
    assert.ok(isTuple(back));
  });
}

Deno.test("writer: long lists are split in APPENDS batches and read back", () => {
  const list = Array.from({ length: 2500 }, (_, i) => i % 3 === 0);
  assert.deepEqual(unpickle(pickle(list)), list);
});
