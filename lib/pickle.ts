/**
 * Python pickle reader (protocols 0–5) and a writer for plain data (protocols 2–5).
 *
 * Values map to JavaScript as follows:
 *
 * | Python                          | JavaScript                                         |
 * | ------------------------------- | -------------------------------------------------- |
 * | `None`, `bool`, `float`         | `null`, `boolean`, `number`                        |
 * | `int`                           | `number`, or `bigint` beyond ±(2^53 − 1)           |
 * | `str` (Python 3), `unicode`     | `string`                                           |
 * | `bytes`, Python 2 `str`         | `Uint8Array` (a view into the input for `bytes`)   |
 * | `bytearray`                     | `Uint8Array` (a copy)                              |
 * | `list`                          | `Array`                                            |
 * | `tuple`                         | frozen `Array` (see {@linkcode isTuple})            |
 * | `dict`, `OrderedDict`           | `Map`                                              |
 * | `set`, `frozenset`              | `Set`                                              |
 * | any other class                 | {@linkcode PickleClass} / {@linkcode PickleObject} |
 *
 * Classes are resolved by the `findClass(module, name)` hook first (return `undefined` to
 * fall back to the built-in table, then to a {@linkcode PickleClass} placeholder). A class
 * that is a JavaScript function is called with the arguments of REDUCE or NEWOBJ.
 * Persistent ids (PyTorch's tensor storages) go to the `persistentLoad(pid)` hook.
 *
 * @example
 * ```ts
 * const [images, issame] = unpickle(await Deno.readFile("data/orl_val.bin")) as [Uint8Array[], boolean[]];
 * console.log(images.length, issame.length); // 1800 900
 * ```
 *
 * @module
 */

/** A malformed or unsupported pickle stream. */
export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PickleError";
  }
}

/** A Python class named by GLOBAL / STACK_GLOBAL that no hook resolved. */
export class PickleClass {
  constructor(readonly module: string, readonly name: string) {}
  /** `module.name`, as Python prints it. */
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of an unresolved class: its constructor arguments and BUILD state. */
export class PickleObject {
  /** The state given by BUILD (usually a `Map` of attributes), or `undefined`. */
  state: unknown = undefined;
  /** Items added by APPEND/APPENDS when the class is a list subclass. */
  readonly listItems: unknown[] = [];
  /** Items added by SETITEM/SETITEMS when the class is a dict subclass. */
  readonly dictItems = new Map<unknown, unknown>();
  constructor(
    readonly cls: PickleClass,
    readonly args: readonly unknown[],
    readonly kwargs?: Map<unknown, unknown>,
  ) {}
}

/** Options of {@linkcode unpickle}. */
export interface UnpickleOptions {
  /**
   * Resolves a class or function named in the stream. Return `undefined` to use the
   * built-in table (`collections.OrderedDict`, `_codecs.encode`, `builtins.set`, …) and
   * otherwise a {@linkcode PickleClass} placeholder.
   */
  findClass?: (module: string, name: string) => unknown;
  /** Turns a persistent id (PERSID / BINPERSID) into an object. Required if the stream has any. */
  persistentLoad?: (pid: unknown) => unknown;
  /**
   * How Python 2 `str` values (STRING, BINSTRING, SHORT_BINSTRING) are returned:
   * `"bytes"` (default, a `Uint8Array`) or `"latin1"` (a string, one character per byte).
   */
  py2str?: "bytes" | "latin1";
  /** Out-of-band buffers for protocol 5 NEXT_BUFFER, in order. */
  buffers?: Uint8Array[];
}

/** True for an array that came from a Python tuple (or was made with {@linkcode tuple}). */
export function isTuple(v: unknown): v is readonly unknown[] {
  return Array.isArray(v) && Object.isFrozen(v);
}

/** Marks an array as a tuple for {@linkcode pickle}. */
export function tuple<T extends unknown[]>(...items: T): Readonly<T> {
  return Object.freeze(items);
}

// Not `new TextDecoder("latin1")`: the Encoding standard maps that label to windows-1252,
// which turns bytes 0x80-0x9f into other characters ("€" for 0x80).
const latin1 = {
  decode(b: Uint8Array): string {
    let s = "";
    for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192));
    return s;
  },
};
const utf8 = new TextDecoder("utf-8", { fatal: true });

function latin1Bytes(s: string, what: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new PickleError(`Cannot encode ${what} as latin-1: character U+${c.toString(16)}`);
    out[i] = c;
  }
  return out;
}

/** `codecs.encode(s, encoding)`: how protocol 2 writes Python 3 `bytes`. */
function codecsEncode(s: unknown, encoding: unknown = "utf-8"): Uint8Array {
  if (typeof s !== "string") throw new PickleError(`Cannot call _codecs.encode on ${describe(s)}`);
  const name = encoding instanceof Uint8Array ? latin1.decode(encoding) : String(encoding);
  const enc = name.toLowerCase().replace(/_/g, "-");
  if (enc === "latin1" || enc === "latin-1" || enc === "iso-8859-1") return latin1Bytes(s, "bytes");
  if (enc === "utf-8" || enc === "utf8") return new TextEncoder().encode(s);
  if (enc === "ascii") return latin1Bytes(s, "bytes");
  throw new PickleError(`Cannot call _codecs.encode: unsupported encoding "${name}"`);
}

function toBytearray(src?: unknown, encoding?: unknown): Uint8Array {
  if (src === undefined) return new Uint8Array(0);
  if (typeof src === "string") return codecsEncode(src, encoding ?? "utf-8").slice();
  if (src instanceof Uint8Array) return src.slice();
  if (typeof src === "number") return new Uint8Array(src);
  if (Array.isArray(src)) return Uint8Array.from(src as number[]);
  throw new PickleError(`Cannot make a bytearray from ${describe(src)}`);
}

/** `dict(x)` for a dict or a list of (key, value) pairs. */
function toMap(items?: unknown): Map<unknown, unknown> {
  if (items === undefined || items === null) return new Map();
  if (items instanceof Map) return new Map(items);
  if (Array.isArray(items) && items.every((p) => Array.isArray(p) && p.length === 2)) {
    return new Map(items as [unknown, unknown][]);
  }
  throw new PickleError(`Cannot make a dict from ${describe(items)}`);
}

function newObject(cls: unknown, args: readonly unknown[], kwargs?: Map<unknown, unknown>): unknown {
  if (typeof cls === "function") return kwargs?.size ? cls(...args, kwargs) : cls(...args);
  if (cls instanceof PickleClass) return new PickleObject(cls, args, kwargs);
  throw new PickleError(`Cannot create an object of ${describe(cls)}: not a class`);
}

/** Built-in classes and functions, under their Python 3 names. */
const BUILTINS: Record<string, unknown> = {
  "collections.OrderedDict": (items?: unknown) => toMap(items),
  "builtins.dict": (items?: unknown) => toMap(items),
  "builtins.list": (items?: unknown) => Array.isArray(items) ? [...items] : [],
  "builtins.tuple": (items?: unknown) => Object.freeze(Array.isArray(items) ? [...items] : []),
  "builtins.set": (items?: unknown) => new Set(items ? items as Iterable<unknown> : []),
  "builtins.frozenset": (items?: unknown) => new Set(items ? items as Iterable<unknown> : []),
  "builtins.bytes": (src?: unknown, enc?: unknown) => toBytearray(src, enc),
  "builtins.bytearray": toBytearray,
  "builtins.object": () => ({}),
  "_codecs.encode": codecsEncode,
  "copyreg._reconstructor": (cls: unknown, _base: unknown, _state: unknown) => newObject(cls, []),
  "copyreg.__newobj__": (cls: unknown, ...args: unknown[]) => newObject(cls, args),
};

/** Python 2 module names, as Python 3's unpickler maps them (fix_imports). */
const PY2_MODULES: Record<string, string> = {
  __builtin__: "builtins",
  copy_reg: "copyreg",
  exceptions: "builtins",
};

function describe(v: unknown): string {
  if (v === null) return "None";
  if (v instanceof PickleClass) return `class ${v.qualifiedName}`;
  if (v instanceof PickleObject) return `a ${v.cls.qualifiedName} object`;
  if (v instanceof Uint8Array) return `bytes of length ${v.length}`;
  if (v instanceof Map) return `a dict of ${v.size} items`;
  if (isTuple(v)) return `a tuple of ${v.length} items`;
  if (Array.isArray(v)) return `a list of ${v.length} items`;
  return typeof v === "string" ? `the string "${v.slice(0, 40)}"` : `${typeof v} ${String(v)}`;
}

/** Reads one pickled object from `data` (the first STOP ends it; trailing bytes are ignored). */
export function unpickle(data: Uint8Array, options: UnpickleOptions = {}): unknown {
  return new Unpickler(data, options).load();
}

/**
 * Reads the pickle that starts at byte `offset` of `data`, for files holding several in a
 * row (torch's legacy format): the object, and the offset just after its STOP.
 */
export function unpickleAt(
  data: Uint8Array,
  offset: number,
  options: UnpickleOptions = {},
): { value: unknown; end: number } {
  const u = new Unpickler(data.subarray(offset), options);
  const value = u.load();
  return { value, end: offset + u.position };
}

class Unpickler {
  #data: Uint8Array;
  #view: DataView;
  #pos = 0;
  #stack: unknown[] = [];
  #meta: unknown[][] = [];
  #memo = new Map<number, unknown>();
  #opts: UnpickleOptions;
  #nextBuffer = 0;
  #op = 0;

  constructor(data: Uint8Array, options: UnpickleOptions) {
    this.#data = data;
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    this.#opts = options;
  }

  #fail(what: string): never {
    throw new PickleError(
      `Cannot unpickle: ${what} (opcode 0x${this.#op.toString(16)} at byte ${this.#pos})`,
    );
  }

  #need(n: number, what: string): number {
    if (n < 0 || this.#pos + n > this.#data.length) {
      throw new PickleError(
        `Cannot unpickle: truncated data, ${what} needs ${n} bytes at byte ${this.#pos} but the stream has ${
          this.#data.length - this.#pos
        } left`,
      );
    }
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  #bytes(n: number, what: string): Uint8Array {
    const at = this.#need(n, what);
    return this.#data.subarray(at, at + n);
  }

  #u8(): number {
    return this.#data[this.#need(1, "a 1-byte argument")];
  }
  #u16(): number {
    return this.#view.getUint16(this.#need(2, "a 2-byte argument"), true);
  }
  #u32(): number {
    return this.#view.getUint32(this.#need(4, "a 4-byte argument"), true);
  }
  #i32(): number {
    return this.#view.getInt32(this.#need(4, "a 4-byte argument"), true);
  }
  #u64(): number {
    const v = this.#view.getBigUint64(this.#need(8, "an 8-byte argument"), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.#fail(`length ${v} is too large`);
    return Number(v);
  }

  /** A protocol-0 text argument up to (not including) the newline. */
  #line(): string {
    const end = this.#data.indexOf(0x0a, this.#pos);
    if (end < 0) this.#need(this.#data.length - this.#pos + 1, "a text line ending with a newline");
    const s = latin1.decode(this.#data.subarray(this.#pos, end));
    this.#pos = end + 1;
    return s;
  }

  #push(v: unknown): void {
    this.#stack.push(v);
  }

  #pop(): unknown {
    if (this.#stack.length === 0) this.#fail("stack underflow");
    return this.#stack.pop();
  }

  #top(): unknown {
    if (this.#stack.length === 0) this.#fail("stack underflow");
    return this.#stack[this.#stack.length - 1];
  }

  #popMark(): unknown[] {
    const items = this.#stack;
    const prev = this.#meta.pop();
    if (prev === undefined) this.#fail("no MARK on the stack");
    this.#stack = prev;
    return items;
  }

  #str2(b: Uint8Array): unknown {
    return this.#opts.py2str === "latin1" ? latin1.decode(b) : b;
  }

  #utf8(b: Uint8Array): string {
    try {
      return utf8.decode(b);
    } catch {
      this.#fail("invalid UTF-8 in a string");
    }
  }

  #resolve(module: string, name: string): unknown {
    const hooked = this.#opts.findClass?.(module, name);
    if (hooked !== undefined) return hooked;
    const mod = PY2_MODULES[module] ?? module;
    if (mod !== module) {
      const again = this.#opts.findClass?.(mod, name);
      if (again !== undefined) return again;
    }
    const builtin = BUILTINS[`${mod}.${name}`];
    return builtin !== undefined ? builtin : new PickleClass(mod, name);
  }

  #persistent(pid: unknown): unknown {
    if (!this.#opts.persistentLoad) {
      this.#fail(`persistent id ${describe(pid)} found but no persistentLoad hook was given`);
    }
    return this.#opts.persistentLoad(pid);
  }

  #append(target: unknown, items: unknown[]): void {
    if (Array.isArray(target) && !Object.isFrozen(target)) {
      for (const x of items) target.push(x);
    } else if (target instanceof PickleObject) {
      target.listItems.push(...items);
    } else if (target instanceof Set) {
      for (const x of items) target.add(x);
    } else {
      this.#fail(`cannot append to ${describe(target)}`);
    }
  }

  #setItems(target: unknown, items: unknown[]): void {
    if (items.length % 2 !== 0) this.#fail("odd number of items for a dict");
    const dict = target instanceof Map ? target : target instanceof PickleObject ? target.dictItems : null;
    if (!dict) this.#fail(`cannot set items on ${describe(target)}`);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  }

  #build(obj: unknown, state: unknown): void {
    const setstate = (obj as { __setstate__?: unknown } | null)?.__setstate__;
    if (typeof setstate === "function") {
      setstate.call(obj, state);
    } else if (obj instanceof PickleObject) {
      obj.state = state;
    } else if (state !== null && typeof obj === "object" && obj !== null) {
      // Python's default: instance __dict__.update(state), with (dict, slots) pairs allowed.
      const parts = isTuple(state) && state.length === 2 ? state : [state];
      for (const part of parts) {
        if (part instanceof Map) {
          for (const [k, v] of part) {
            const key = k instanceof Uint8Array ? latin1.decode(k) : String(k);
            Object.defineProperty(obj, key, {
              value: v,
              writable: true,
              configurable: true,
              enumerable: false,
            });
          }
        } else if (part !== null) {
          this.#fail(`cannot apply BUILD state ${describe(part)} to ${describe(obj)}`);
        }
      }
    }
  }

  #decodeLong(b: Uint8Array): number | bigint {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return intValue(v);
  }

  /** Bytes read so far. */
  get position(): number {
    return this.#pos;
  }

  load(): unknown {
    const d = this.#data;
    for (;;) {
      if (this.#pos >= d.length) {
        throw new PickleError(`Cannot unpickle: truncated data, no STOP opcode in ${d.length} bytes`);
      }
      const op = this.#op = d[this.#pos++];
      switch (op) {
        case 0x80: { // PROTO
          const p = this.#u8();
          if (p > 5) this.#fail(`unsupported protocol ${p} (this reader knows 0 to 5)`);
          break;
        }
        case 0x95: // FRAME: the length is only a hint for buffered readers
          this.#u64();
          break;
        case 0x2e: // STOP
          return this.#pop();
        case 0x28: // MARK
          this.#meta.push(this.#stack);
          this.#stack = [];
          break;
        case 0x30: // POP
          if (this.#stack.length === 0) this.#popMark();
          else this.#stack.pop();
          break;
        case 0x31: // POP_MARK
          this.#popMark();
          break;
        case 0x32: // DUP
          this.#push(this.#top());
          break;

        // Constants and numbers
        case 0x4e: // NONE
          this.#push(null);
          break;
        case 0x88: // NEWTRUE
          this.#push(true);
          break;
        case 0x89: // NEWFALSE
          this.#push(false);
          break;
        case 0x49: { // INT (text); "00"/"01" are False/True in protocol 0
          const s = this.#line();
          if (s === "00") this.#push(false);
          else if (s === "01") this.#push(true);
          else this.#push(parseIntText(s) ?? this.#fail(`bad INT "${s}"`));
          break;
        }
        case 0x4c: { // LONG (text, trailing L)
          const s = this.#line().replace(/L$/, "");
          this.#push(parseIntText(s) ?? this.#fail(`bad LONG "${s}"`));
          break;
        }
        case 0x4a: // BININT
          this.#push(this.#i32());
          break;
        case 0x4b: // BININT1
          this.#push(this.#u8());
          break;
        case 0x4d: // BININT2
          this.#push(this.#u16());
          break;
        case 0x8a: // LONG1
          this.#push(this.#decodeLong(this.#bytes(this.#u8(), "LONG1")));
          break;
        case 0x8b: { // LONG4
          const n = this.#i32();
          if (n < 0) this.#fail(`negative LONG4 length ${n}`);
          this.#push(this.#decodeLong(this.#bytes(n, "LONG4")));
          break;
        }
        case 0x46: { // FLOAT (text)
          const s = this.#line();
          this.#push(parseFloatText(s) ?? this.#fail(`bad FLOAT "${s}"`));
          break;
        }
        case 0x47: // BINFLOAT (big-endian)
          this.#push(this.#view.getFloat64(this.#need(8, "BINFLOAT"), false));
          break;

        // Strings and bytes
        case 0x53: // STRING: a Python 2 str repr
          this.#push(this.#str2(parseStringRepr(this.#line()) ?? this.#fail("bad STRING literal")));
          break;
        case 0x54: { // BINSTRING
          const n = this.#i32();
          if (n < 0) this.#fail(`negative BINSTRING length ${n}`);
          this.#push(this.#str2(this.#bytes(n, "BINSTRING")));
          break;
        }
        case 0x55: // SHORT_BINSTRING
          this.#push(this.#str2(this.#bytes(this.#u8(), "SHORT_BINSTRING")));
          break;
        case 0x56: // UNICODE (raw-unicode-escape text)
          this.#push(rawUnicodeEscape(this.#line()));
          break;
        case 0x58: // BINUNICODE
          this.#push(this.#utf8(this.#bytes(this.#u32(), "BINUNICODE")));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.#push(this.#utf8(this.#bytes(this.#u8(), "SHORT_BINUNICODE")));
          break;
        case 0x8d: // BINUNICODE8
          this.#push(this.#utf8(this.#bytes(this.#u64(), "BINUNICODE8")));
          break;
        case 0x42: // BINBYTES
          this.#push(this.#bytes(this.#u32(), "BINBYTES"));
          break;
        case 0x43: // SHORT_BINBYTES
          this.#push(this.#bytes(this.#u8(), "SHORT_BINBYTES"));
          break;
        case 0x8e: // BINBYTES8
          this.#push(this.#bytes(this.#u64(), "BINBYTES8"));
          break;
        case 0x96: // BYTEARRAY8
          this.#push(this.#bytes(this.#u64(), "BYTEARRAY8").slice());
          break;
        case 0x97: { // NEXT_BUFFER
          const buf = this.#opts.buffers?.[this.#nextBuffer++];
          if (!buf) this.#fail("NEXT_BUFFER without an out-of-band buffer (pass options.buffers)");
          this.#push(buf);
          break;
        }
        case 0x98: // READONLY_BUFFER
          break;

        // Containers
        case 0x29: // EMPTY_TUPLE
          this.#push(Object.freeze([]));
          break;
        case 0x85: // TUPLE1
          this.#push(Object.freeze([this.#pop()]));
          break;
        case 0x86: { // TUPLE2
          const b = this.#pop(), a = this.#pop();
          this.#push(Object.freeze([a, b]));
          break;
        }
        case 0x87: { // TUPLE3
          const c = this.#pop(), b = this.#pop(), a = this.#pop();
          this.#push(Object.freeze([a, b, c]));
          break;
        }
        case 0x74: // TUPLE
          this.#push(Object.freeze(this.#popMark()));
          break;
        case 0x5d: // EMPTY_LIST
          this.#push([]);
          break;
        case 0x6c: // LIST
          this.#push(this.#popMark());
          break;
        case 0x61: { // APPEND
          const v = this.#pop();
          this.#append(this.#top(), [v]);
          break;
        }
        case 0x65: { // APPENDS
          const items = this.#popMark();
          this.#append(this.#top(), items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.#push(new Map());
          break;
        case 0x64: { // DICT
          const m = new Map();
          this.#setItems(m, this.#popMark());
          this.#push(m);
          break;
        }
        case 0x73: { // SETITEM
          const v = this.#pop(), k = this.#pop();
          this.#setItems(this.#top(), [k, v]);
          break;
        }
        case 0x75: { // SETITEMS
          const items = this.#popMark();
          this.#setItems(this.#top(), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.#push(new Set());
          break;
        case 0x90: { // ADDITEMS
          const items = this.#popMark();
          const s = this.#top();
          if (!(s instanceof Set)) this.#fail(`cannot add items to ${describe(s)}`);
          for (const x of items) s.add(x);
          break;
        }
        case 0x91: // FROZENSET
          this.#push(new Set(this.#popMark()));
          break;

        // Memo
        case 0x70: { // PUT (text)
          const s = this.#line();
          this.#memo.set(parseMemoKey(s) ?? this.#fail(`bad PUT index "${s}"`), this.#top());
          break;
        }
        case 0x71: // BINPUT
          this.#memo.set(this.#u8(), this.#top());
          break;
        case 0x72: // LONG_BINPUT
          this.#memo.set(this.#u32(), this.#top());
          break;
        case 0x94: // MEMOIZE
          this.#memo.set(this.#memo.size, this.#top());
          break;
        case 0x67: { // GET (text)
          const s = this.#line();
          this.#push(this.#get(parseMemoKey(s) ?? this.#fail(`bad GET index "${s}"`)));
          break;
        }
        case 0x68: // BINGET
          this.#push(this.#get(this.#u8()));
          break;
        case 0x6a: // LONG_BINGET
          this.#push(this.#get(this.#u32()));
          break;

        // Classes, objects, persistent ids
        case 0x63: { // GLOBAL
          const module = this.#line(), name = this.#line();
          this.#push(this.#resolve(module, name));
          break;
        }
        case 0x93: { // STACK_GLOBAL
          const name = this.#pop(), module = this.#pop();
          if (typeof module !== "string" || typeof name !== "string") {
            this.#fail("STACK_GLOBAL needs two strings on the stack");
          }
          this.#push(this.#resolve(module, name));
          break;
        }
        case 0x82: // EXT1
        case 0x83: // EXT2
        case 0x84: // EXT4
          this.#fail("extension registry codes (EXT1/EXT2/EXT4) are not supported");
          break;
        case 0x52: { // REDUCE
          const args = this.#pop(), fn = this.#pop();
          if (!Array.isArray(args)) this.#fail(`REDUCE arguments are ${describe(args)}, expected a tuple`);
          this.#push(newObject(fn, args));
          break;
        }
        case 0x81: { // NEWOBJ
          const args = this.#pop(), cls = this.#pop();
          if (!Array.isArray(args)) this.#fail(`NEWOBJ arguments are ${describe(args)}, expected a tuple`);
          this.#push(newObject(cls, args));
          break;
        }
        case 0x92: { // NEWOBJ_EX
          const kwargs = this.#pop(), args = this.#pop(), cls = this.#pop();
          if (!Array.isArray(args) || !(kwargs instanceof Map)) {
            this.#fail("NEWOBJ_EX needs a tuple and a dict");
          }
          this.#push(newObject(cls, args, kwargs));
          break;
        }
        case 0x69: { // INST: module, name, then the marked arguments
          const module = this.#line(), name = this.#line();
          const args = this.#popMark();
          this.#push(newObject(this.#resolve(module, name), args));
          break;
        }
        case 0x6f: { // OBJ: class and arguments after the mark
          const items = this.#popMark();
          if (items.length === 0) this.#fail("OBJ without a class");
          this.#push(newObject(items[0], items.slice(1)));
          break;
        }
        case 0x62: { // BUILD
          const state = this.#pop();
          this.#build(this.#top(), state);
          break;
        }
        case 0x50: // PERSID (text)
          this.#push(this.#persistent(this.#line()));
          break;
        case 0x51: // BINPERSID
          this.#push(this.#persistent(this.#pop()));
          break;
        default:
          this.#pos--;
          this.#fail(
            `unknown opcode 0x${op.toString(16).padStart(2, "0")}, this is not a pickle or it is damaged`,
          );
      }
    }
  }

  #get(i: number): unknown {
    if (!this.#memo.has(i)) this.#fail(`memo index ${i} was never stored`);
    return this.#memo.get(i);
  }
}

function intValue(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function parseIntText(s: string): number | bigint | undefined {
  const t = s.trim();
  if (!/^[+-]?\d+$/.test(t)) return undefined;
  return intValue(BigInt(t));
}

function parseMemoKey(s: string): number | undefined {
  return /^\d+$/.test(s.trim()) ? Number(s.trim()) : undefined;
}

function parseFloatText(s: string): number | undefined {
  const t = s.trim().toLowerCase();
  if (t === "inf" || t === "+inf") return Infinity;
  if (t === "-inf") return -Infinity;
  if (t === "nan" || t === "-nan") return NaN;
  const v = Number(t);
  return t !== "" && !Number.isNaN(v) ? v : undefined;
}

/** Decodes a Python 2 `repr(str)` literal ('...' or "...") to bytes. */
function parseStringRepr(s: string): Uint8Array | undefined {
  if (s.length < 2 || (s[0] !== "'" && s[0] !== '"') || s[s.length - 1] !== s[0]) return undefined;
  const body = s.slice(1, -1);
  const out: number[] = [];
  const simple: Record<string, number> = {
    "n": 10,
    "r": 13,
    "t": 9,
    "\\": 92,
    "'": 39,
    '"': 34,
    "a": 7,
    "b": 8,
    "f": 12,
    "v": 11,
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== "\\") {
      out.push(c.charCodeAt(0) & 0xff);
      continue;
    }
    const e = body[++i];
    if (e === undefined) return undefined;
    if (e in simple) out.push(simple[e]);
    else if (e === "x") {
      const h = body.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined;
      out.push(parseInt(h, 16));
      i += 2;
    } else if (/[0-7]/.test(e)) {
      let oct = e;
      while (oct.length < 3 && /[0-7]/.test(body[i + 1] ?? "")) oct += body[++i];
      out.push(parseInt(oct, 8) & 0xff);
    } else {
      out.push(92, e.charCodeAt(0) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** Python's raw-unicode-escape codec: bytes are code points, except \uXXXX and \UXXXXXXXX. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u4, u8) => {
    return String.fromCodePoint(parseInt(u4 ?? u8, 16));
  });
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/** A value {@linkcode pickle} can write. */
export type Picklable =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly Picklable[]
  | Map<Picklable, Picklable>;

/** Options of {@linkcode pickle}. */
export interface PickleOptions {
  /** Protocol 2 to 5 (default 4). Protocol 2 writes `bytes` the way Python 3 does, via `_codecs.encode`. */
  protocol?: 2 | 3 | 4 | 5;
  /** Write every JS number as a float (BINFLOAT), not only the non-integers. */
  floats?: boolean;
}

class ByteSink {
  #chunks: Uint8Array[] = [];
  #cur = new Uint8Array(1 << 16);
  #n = 0;
  #total = 0;
  byte(b: number): void {
    if (this.#n === this.#cur.length) this.#flush();
    this.#cur[this.#n++] = b;
  }
  raw(b: Uint8Array): void {
    if (b.length > 4096) {
      this.#flush();
      this.#chunks.push(b);
      this.#total += b.length;
      return;
    }
    for (let i = 0; i < b.length; i++) this.byte(b[i]);
  }
  u32(v: number): void {
    for (let i = 0; i < 4; i++) this.byte((v >>> (8 * i)) & 0xff);
  }
  u64(v: number): void {
    this.u32(v % 2 ** 32);
    this.u32(Math.floor(v / 2 ** 32));
  }
  #flush(): void {
    if (this.#n) {
      this.#chunks.push(this.#cur.slice(0, this.#n));
      this.#total += this.#n;
    }
    this.#n = 0;
  }
  result(): Uint8Array<ArrayBuffer> {
    this.#flush();
    const out = new Uint8Array(this.#total);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** Little-endian two's complement bytes of `v`, as LONG1/LONG4 want them (0 → empty). */
function longBytes(v: bigint): Uint8Array {
  if (v === 0n) return new Uint8Array(0);
  const out: number[] = [];
  let x = v;
  for (;;) {
    out.push(Number(x & 0xffn));
    x >>= 8n;
    const sign = out[out.length - 1] & 0x80;
    if ((x === 0n && !sign) || (x === -1n && sign)) break;
  }
  return Uint8Array.from(out);
}

/**
 * Writes `value` as a pickle that Python 3 (and, with protocol 2, Python 2) reads back.
 * Arrays are lists, frozen arrays (see {@linkcode tuple}) are tuples, `Map`s are dicts.
 */
export function pickle(value: Picklable, options: PickleOptions = {}): Uint8Array<ArrayBuffer> {
  const protocol = options.protocol ?? 4;
  if (![2, 3, 4, 5].includes(protocol)) {
    throw new RangeError(`Invalid pickle protocol ${protocol}: expected 2, 3, 4 or 5`);
  }
  const out = new ByteSink();
  const enc = new TextEncoder();
  const str = (s: string) => {
    const b = enc.encode(s);
    if (protocol >= 4 && b.length < 256) {
      out.byte(0x8c);
      out.byte(b.length);
    } else {
      out.byte(0x58);
      out.u32(b.length);
    }
    out.raw(b);
  };
  // Bytes objects that occur more than once are stored once and then referenced.
  const memo = new Map<Uint8Array, number>();
  const repeated = new Set<Uint8Array>();
  {
    const seen = new Set<Uint8Array>();
    const walk = (v: Picklable, depth: number): void => {
      if (depth > 1000) return;
      if (v instanceof Uint8Array) {
        if (seen.has(v)) repeated.add(v);
        seen.add(v);
      } else if (Array.isArray(v)) { for (const x of v) walk(x, depth + 1); }
      else if (v instanceof Map) { for (const [k, x] of v) walk(k, depth + 1), walk(x, depth + 1); }
    };
    walk(value, 0);
  }
  const saveBytes = (v: Uint8Array): void => {
    if (protocol === 2) {
      // What Python 3 writes for bytes at protocol 2: _codecs.encode(latin-1 text, "latin1").
      if (v.length === 0) {
        out.raw(enc.encode("c__builtin__\nbytes\n"));
        out.byte(0x29);
        out.byte(0x52);
        return;
      }
      out.raw(enc.encode("c_codecs\nencode\n"));
      str(latin1.decode(v));
      str("latin1");
      out.byte(0x86);
      out.byte(0x52);
    } else if (v.length < 256) {
      out.byte(0x43);
      out.byte(v.length);
      out.raw(v);
    } else if (v.length < 2 ** 32) {
      out.byte(0x42);
      out.u32(v.length);
      out.raw(v);
    } else {
      out.byte(0x8e);
      out.u64(v.length);
      out.raw(v);
    }
  };
  const save = (v: Picklable, depth: number): void => {
    if (depth > 1000) throw new RangeError("Cannot pickle: nesting deeper than 1000 levels (a cycle?)");
    if (v === null) out.byte(0x4e);
    else if (v === true) out.byte(0x88);
    else if (v === false) out.byte(0x89);
    else if (typeof v === "number") {
      if (Number.isSafeInteger(v) && !options.floats && !Object.is(v, -0)) {
        if (v >= 0 && v < 256) {
          out.byte(0x4b);
          out.byte(v);
        } else if (v >= 0 && v < 65536) {
          out.byte(0x4d);
          out.byte(v & 0xff);
          out.byte(v >> 8);
        } else if (v >= -(2 ** 31) && v < 2 ** 31) {
          out.byte(0x4a);
          out.u32(v >>> 0);
        } else save(BigInt(v), depth);
      } else {
        out.byte(0x47);
        const b = new Uint8Array(8);
        new DataView(b.buffer).setFloat64(0, v, false);
        out.raw(b);
      }
    } else if (typeof v === "bigint") {
      const b = longBytes(v);
      if (b.length < 256) {
        out.byte(0x8a);
        out.byte(b.length);
      } else {
        out.byte(0x8b);
        out.u32(b.length);
      }
      out.raw(b);
    } else if (typeof v === "string") str(v);
    else if (v instanceof Uint8Array) {
      // A repeated bytes object is written once, then fetched from the memo (as Python does).
      const seen = memo.get(v);
      if (seen !== undefined) {
        if (seen < 256) {
          out.byte(0x68); // BINGET
          out.byte(seen);
        } else {
          out.byte(0x6a); // LONG_BINGET
          out.u32(seen);
        }
        return;
      }
      saveBytes(v);
      if (!repeated.has(v)) return;
      const index = memo.size;
      memo.set(v, index);
      if (protocol >= 4) out.byte(0x94); // MEMOIZE
      else if (index < 256) {
        out.byte(0x71); // BINPUT
        out.byte(index);
      } else {
        out.byte(0x72); // LONG_BINPUT
        out.u32(index);
      }
    } else if (Array.isArray(v)) {
      if (Object.isFrozen(v)) {
        if (v.length === 0) {
          out.byte(0x29);
        } else if (v.length <= 3) {
          for (const x of v) save(x, depth + 1);
          out.byte(0x84 + v.length);
        } else {
          out.byte(0x28);
          for (const x of v) save(x, depth + 1);
          out.byte(0x74);
        }
      } else {
        out.byte(0x5d);
        for (let i = 0; i < v.length; i += 1000) {
          out.byte(0x28);
          for (const x of v.slice(i, i + 1000)) save(x, depth + 1);
          out.byte(0x65);
        }
      }
    } else if (v instanceof Map) {
      out.byte(0x7d);
      const entries = [...v];
      for (let i = 0; i < entries.length; i += 1000) {
        out.byte(0x28);
        for (const [k, x] of entries.slice(i, i + 1000)) {
          save(k, depth + 1);
          save(x, depth + 1);
        }
        out.byte(0x75);
      }
    } else {
      throw new TypeError(
        `Cannot pickle ${describe(v)}: expected null, boolean, number, bigint, string, bytes, array or Map`,
      );
    }
  };
  out.byte(0x80);
  out.byte(protocol);
  save(value, 0);
  out.byte(0x2e);
  return out.result();
}
