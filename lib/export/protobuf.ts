/**
 * A minimal protocol-buffers wire encoder and decoder: enough to write and read the ONNX
 * messages this toolkit uses (varints, length-delimited fields, packed repeated values).
 * Messages are built bottom-up: encode the children first, then embed their bytes.
 *
 * @module
 */

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** Accumulates one message's fields in wire format. */
export class ProtoWriter {
  #chunks: Uint8Array[] = [];
  #scratch: number[] = [];
  #length = 0;

  #flush(): void {
    if (this.#scratch.length === 0) return;
    this.#chunks.push(Uint8Array.from(this.#scratch));
    this.#length += this.#scratch.length;
    this.#scratch = [];
  }

  #varint(v: bigint | number): void {
    // Negative int32/int64 values are written as 64-bit two's complement (10 bytes), as protobuf does.
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.#scratch.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.#scratch.push(Number(x));
  }

  #tag(field: number, wire: number): void {
    this.#varint((field << 3) | wire);
  }

  /** An int32/int64/enum/bool field. */
  int(field: number, v: number | bigint): this {
    this.#tag(field, WIRE_VARINT);
    this.#varint(v);
    return this;
  }

  /** A 32-bit float field. */
  float(field: number, v: number): this {
    this.#tag(field, WIRE_I32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.#scratch.push(...b);
    return this;
  }

  /** A 64-bit float field. */
  double(field: number, v: number): this {
    this.#tag(field, WIRE_I64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.#scratch.push(...b);
    return this;
  }

  /** A bytes field (also used for embedded messages). */
  bytes(field: number, b: Uint8Array): this {
    this.#tag(field, WIRE_LEN);
    this.#varint(b.length);
    this.#flush();
    this.#chunks.push(b);
    this.#length += b.length;
    return this;
  }

  /** A string field (UTF-8). */
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** An embedded message field. */
  message(field: number, m: ProtoWriter): this {
    return this.bytes(field, m.finish());
  }

  /** A packed repeated int32/int64 field. */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.#varint(v);
    return this.bytes(field, inner.finish());
  }

  /** A packed repeated float field. */
  packedFloats(field: number, values: readonly number[]): this {
    const b = new Uint8Array(values.length * 4);
    const dv = new DataView(b.buffer);
    values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.bytes(field, b);
  }

  /** The encoded message. */
  finish(): Uint8Array {
    this.#flush();
    if (this.#chunks.length === 1) return this.#chunks[0];
    const out = new Uint8Array(this.#length);
    let o = 0;
    for (const c of this.#chunks) {
      out.set(c, o);
      o += c.length;
    }
    this.#chunks = [out];
    return out;
  }
}

/** One decoded field: `value` is a bigint for varint/fixed fields, bytes for length-delimited ones. */
export interface ProtoField {
  field: number;
  wire: number;
  value: bigint | Uint8Array;
}

/** Splits one message into its fields (not recursive); throws on malformed input. */
export function decodeFields(buf: Uint8Array): ProtoField[] {
  const out: ProtoField[] = [];
  let p = 0;
  const varint = (): bigint => {
    let x = 0n;
    let shift = 0n;
    for (;;) {
      if (p >= buf.length) throw new Error("Cannot decode protobuf: truncated varint");
      const b = buf[p++];
      x |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return x;
      shift += 7n;
      if (shift > 63n) throw new Error("Cannot decode protobuf: varint longer than 10 bytes");
    }
  };
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  while (p < buf.length) {
    const key = Number(varint());
    const field = key >>> 3;
    const wire = key & 7;
    if (field === 0) throw new Error(`Cannot decode protobuf: field number 0 at byte ${p}`);
    let value: bigint | Uint8Array;
    if (wire === WIRE_VARINT) value = varint();
    else if (wire === WIRE_I64) {
      if (p + 8 > buf.length) throw new Error("Cannot decode protobuf: truncated 64-bit field");
      value = dv.getBigUint64(p, true);
      p += 8;
    } else if (wire === WIRE_I32) {
      if (p + 4 > buf.length) throw new Error("Cannot decode protobuf: truncated 32-bit field");
      value = BigInt(dv.getUint32(p, true));
      p += 4;
    } else if (wire === WIRE_LEN) {
      const n = Number(varint());
      if (p + n > buf.length) {
        throw new Error(`Cannot decode protobuf: field ${field} needs ${n} bytes, ${buf.length - p} left`);
      }
      value = buf.subarray(p, p + n);
      p += n;
    } else throw new Error(`Cannot decode protobuf: unsupported wire type ${wire} for field ${field}`);
    out.push({ field, wire, value });
  }
  return out;
}

/** Reads a varint field's value as a signed 64-bit number (exact up to 2^53). */
export function asInt(v: bigint | Uint8Array): number {
  if (typeof v !== "bigint") throw new Error("Cannot decode protobuf: expected a varint, found bytes");
  return Number(BigInt.asIntN(64, v));
}

/** Reads a fixed32 field's value as a float. */
export function asFloat(v: bigint | Uint8Array): number {
  if (typeof v !== "bigint") throw new Error("Cannot decode protobuf: expected a float, found bytes");
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, Number(v), true);
  return dv.getFloat32(0, true);
}

/** Reads a bytes field as UTF-8 text. */
export function asString(v: bigint | Uint8Array): string {
  if (typeof v === "bigint") throw new Error("Cannot decode protobuf: expected a string, found a varint");
  return new TextDecoder().decode(v);
}

/** Reads a repeated int field, packed or not. */
export function asInts(fields: ProtoField[], field: number): number[] {
  const out: number[] = [];
  for (const f of fields) {
    if (f.field !== field) continue;
    if (typeof f.value === "bigint") out.push(asInt(f.value));
    else {
      let p = 0;
      const b = f.value;
      while (p < b.length) {
        let x = 0n;
        let shift = 0n;
        for (;;) {
          const c = b[p++];
          x |= BigInt(c & 0x7f) << shift;
          if ((c & 0x80) === 0) break;
          shift += 7n;
        }
        out.push(Number(BigInt.asIntN(64, x)));
      }
    }
  }
  return out;
}
