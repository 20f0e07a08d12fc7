// The safetensors checkpoint format (https://github.com/huggingface/safetensors), on raw bytes.
//
//   [8 bytes]  N, unsigned little-endian 64-bit: the header length
//   [N bytes]  UTF-8 JSON: { name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str} }
//              padded with spaces so that the data buffer starts at a multiple of 8
//   [rest]     the data buffer: every tensor's elements, row-major, little-endian;
//              data_offsets are relative to the start of this buffer, [begin, end)
//
// This file knows nothing of the Tensor class: tensors here are typed bytes plus a shape, so
// checkpoints can be read and written without a backend. Reading validates everything the
// reference reader does (offsets contiguous from 0 and covering the buffer exactly, byte lengths
// matching shapes, no name twice) and refuses the whole file on the first problem: never half a
// checkpoint. Records are null-prototype objects, so any name — "__proto__", "constructor" —
// is an ordinary key.
//
// Files written here carry a checksum in __metadata__ (safetensors-integrity.ts), verified on
// reading when present.
import { readFileSync } from "node:fs";
import { type AtomicWriteOptions, writeFileAtomic } from "./atomic-write.ts";
import { CHECKSUM_KEY, contentHash, looksLikeChecksumKey, repeatedKey, verifyChecksum, type TableEntry } from "./safetensors-integrity.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "./f16.ts";

export { CHECKSUM_KEY } from "./safetensors-integrity.ts";

export type RawDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<RawDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};
const DTYPES = Object.keys(DTYPE_SIZE) as RawDType[];

/**
 * The reference writer's dtype order (its Dtype enum, in increasing alignment). Tensors are laid
 * out by descending rank, then by name, exactly as the reference does, so our files match its
 * files byte for byte and every tensor starts at a multiple of its element size.
 */
const DTYPE_RANK: Readonly<Record<RawDType, number>> = {
  BOOL: 0, U8: 1, I8: 2, I16: 5, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13,
};

/** One tensor: its element type, its shape ([] for a scalar) and its little-endian bytes. */
export interface RawTensor {
  dtype: RawDType;
  shape: number[];
  data: Uint8Array;
}

export interface SafetensorsContents {
  /** Null-prototype record: every key is a tensor name. */
  tensors: Record<string, RawTensor>;
  /** Null-prototype record of the file's metadata, without the checksum entry. */
  metadata: Record<string, string>;
  /** "verified": the file carried a checksum and it matched; "absent": it carried none. */
  checksum: "verified" | "absent";
}

export interface EncodeOptions {
  /** Add the "hasten.sha256" metadata entry (default true). false writes what the reference writer writes. */
  checksum?: boolean;
}

/** The reference reader refuses headers over 100 MB; a real header is a few kB per thousand tensors. */
export const MAX_HEADER_BYTES = 100_000_000;
/** More dimensions than this is taken for a damaged or hostile header (real tensors have a handful). */
export const MAX_RANK = 16;
const METADATA_KEY = "__metadata__";

function isDType(s: unknown): s is RawDType {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** Own-property assignment that is safe even for a tensor literally named "__proto__". */
function setOwn<V>(obj: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A record that inherits nothing: `rec["__proto__"] = x` stores x under that name. */
function emptyRecord<V>(): Record<string, V> {
  return Object.create(null) as Record<string, V>;
}

/** Number of elements of a shape, checking the rank and that every dimension is a non-negative integer. */
function numel(shape: unknown, where: string): number {
  if (!Array.isArray(shape)) throw new Error(`${where}: shape must be an array, got ${JSON.stringify(shape)}`);
  if (shape.length > MAX_RANK) {
    throw new Error(`${where}: shape has ${shape.length} dimensions, more than the ${MAX_RANK} this reader accepts (damaged header?)`);
  }
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw new Error(`${where}: shape dimensions must be non-negative integers, got ${JSON.stringify(shape)}`);
    }
    n *= d;
  }
  if (shape.includes(0)) return 0; // before the size check: [2^40, 2^40, 0] is empty, not huge
  if (!Number.isSafeInteger(n)) throw new Error(`${where}: shape ${JSON.stringify(shape)} has too many elements`);
  return n;
}

/** Checks a tensor's dtype, shape and that its byte count is numel·itemsize. Returns the byte count. */
function checkRaw(raw: RawTensor, where: string): number {
  if (typeof raw !== "object" || raw === null) throw new Error(`${where}: expected a RawTensor, got ${String(raw)}`);
  if (!isDType(raw.dtype)) {
    throw new Error(`${where}: unknown dtype ${JSON.stringify(raw.dtype)} (supported: ${DTYPES.join(", ")})`);
  }
  if (!(raw.data instanceof Uint8Array)) throw new Error(`${where}: data must be a Uint8Array of little-endian bytes`);
  const n = numel(raw.shape, where);
  const want = n * DTYPE_SIZE[raw.dtype];
  if (raw.data.length !== want) {
    throw new Error(
      `${where}: shape ${JSON.stringify(raw.shape)} of ${raw.dtype} needs ${n} × ${DTYPE_SIZE[raw.dtype]} = ` +
        `${want} bytes, got ${raw.data.length}`,
    );
  }
  return want;
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * The file as a list of chunks: the length prefix and header first, then each tensor's bytes
 * (the caller's buffers, not copies). Everything is validated before anything is returned.
 */
export function encodeSafetensorsChunks(
  record: Record<string, RawTensor>,
  metadata: Record<string, string> = {},
  opts: EncodeOptions = {},
): Uint8Array[] {
  const names = Object.keys(record);
  for (const name of names) {
    if (name === "") throw new Error(`safetensors: tensor names must be non-empty`);
    if (name === METADATA_KEY) throw new Error(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    checkRaw(record[name], `safetensors: tensor '${name}'`);
  }
  if (typeof metadata !== "object" || metadata === null || Array.isArray(metadata)) {
    throw new Error(`safetensors: metadata must be an object of strings, got ${JSON.stringify(metadata)}`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new Error(`safetensors: metadata values must be strings, got ${typeof v} for key '${k}'`);
    }
    if (looksLikeChecksumKey(k)) {
      throw new Error(`safetensors: metadata key '${k}' is too close to the reserved '${CHECKSUM_KEY}' (readers would take it for a damaged one)`);
    }
  }

  names.sort((a, b) => {
    const rank = DTYPE_RANK[record[b].dtype] - DTYPE_RANK[record[a].dtype];
    if (rank !== 0) return rank;
    // Names compare as UTF-8 bytes, like Rust strings (UTF-16 order differs above U+FFFF).
    return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
  });

  const table: TableEntry[] = [];
  let offset = 0;
  for (const name of names) {
    const t = record[name];
    table.push({ name, dtype: t.dtype, shape: [...t.shape], begin: offset, end: offset + t.data.length });
    offset += t.data.length;
  }
  // The checksum goes into the metadata (replacing any stale one passed back in from a read).
  const meta = emptyRecord<string>();
  for (const [k, v] of Object.entries(metadata)) if (k !== CHECKSUM_KEY) setOwn(meta, k, v);
  if (opts.checksum ?? true) setOwn(meta, CHECKSUM_KEY, contentHash(meta, table, names.map((n) => record[n].data)));
  // __metadata__ first: a burst of damage that reaches the checksum entry and the data must
  // then cross the whole tensor table, and breaks the JSON on the way.
  const header = emptyRecord<unknown>();
  if (Object.keys(meta).length > 0) setOwn(header, METADATA_KEY, meta);
  for (const t of table) setOwn(header, t.name, { dtype: t.dtype, shape: t.shape, data_offsets: [t.begin, t.end] });

  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20); // spaces
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);

  return [head, ...names.map((n) => record[n].data).filter((d) => d.length > 0)];
}

/** The whole file in one buffer. */
export function encodeSafetensors(record: Record<string, RawTensor>, metadata?: Record<string, string>, opts?: EncodeOptions): Uint8Array {
  const chunks = encodeSafetensorsChunks(record, metadata, opts);
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Write a checkpoint atomically: the old file stays intact unless the new one is complete. */
export function writeSafetensors(
  path: string,
  record: Record<string, RawTensor>,
  metadata?: Record<string, string>,
  opts: AtomicWriteOptions & EncodeOptions = {},
): void {
  // Chunks, not one buffer: a checkpoint is not held twice in memory.
  writeFileAtomic(path, encodeSafetensorsChunks(record, metadata, opts), opts);
}

// ---------------------------------------------------------------------------------------------
// Reading

function fail(why: string): never {
  throw new Error(`safetensors: ${why}`);
}

/**
 * Parse a whole file. The returned tensors' `data` are views into `bytes` (no copy); copy them
 * if `bytes` will be modified.
 */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsContents {
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBig = view.getBigUint64(0, true);
  if (lenBig > BigInt(MAX_HEADER_BYTES)) fail(`header length ${lenBig} is larger than the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(lenBig);
  if (8 + headerLen > bytes.length) {
    fail(`header length ${headerLen} exceeds file size ${bytes.length} (file truncated or not safetensors)`);
  }

  let text = "";
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    fail(`header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(`header must be a JSON object, got ${Array.isArray(header) ? "an array" : String(header)}`);
  }

  const repeated = repeatedKey(text);
  if (repeated) {
    fail(repeated.owner !== undefined
      ? `the key '${repeated.key}' appears twice in the header entry '${repeated.owner}'`
      : repeated.key === METADATA_KEY ? `${METADATA_KEY} appears twice in the header`
      : `tensor '${repeated.key}' is listed twice in the header`);
  }

  const dataStart = 8 + headerLen;
  const bufferLen = bytes.length - dataStart;
  const metadata = emptyRecord<string>();
  const entries: TableEntry[] = [];

  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (entry === null) continue;
      if (typeof entry !== "object" || Array.isArray(entry)) fail(`${METADATA_KEY} must be an object of strings`);
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`${METADATA_KEY} value for '${k}' must be a string, got ${JSON.stringify(v)}`);
        setOwn(metadata, k, v as string);
      }
      continue;
    }
    const where = `tensor '${name}'`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) fail(`${where}: entry must be an object`);
    const e = entry as Record<string, unknown>;
    if (!isDType(e.dtype)) fail(`${where}: unknown dtype ${JSON.stringify(e.dtype)} (supported: ${DTYPES.join(", ")})`);
    const dtype = e.dtype as RawDType;
    const n = numel(e.shape, `safetensors: ${where}`);
    const off = e.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 ||
      !off.every((x) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0) || off[0] > off[1]
    ) {
      fail(`${where}: data_offsets must be two integers 0 <= begin <= end, got ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as number[];
    const want = n * DTYPE_SIZE[dtype];
    if (end - begin !== want) {
      fail(`${where}: shape ${JSON.stringify(e.shape)} of ${dtype} needs ${want} bytes, data_offsets [${begin},${end}] hold ${end - begin}`);
    }
    if (end > bufferLen) {
      fail(`${where}: data_offsets end ${end} is past the end of the ${bufferLen}-byte data buffer (file truncated?)`);
    }
    entries.push({ name, dtype, shape: [...(e.shape as number[])], begin, end });
  }

  // The tensors must tile the buffer exactly: sorted by offset, each begins where the last ended.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev = "";
  for (const t of entries) {
    if (t.begin < cursor) fail(`tensor '${t.name}' data_offsets [${t.begin},${t.end}] overlap tensor '${prev}' ending at ${cursor}`);
    if (t.begin > cursor) fail(`data buffer bytes [${cursor},${t.begin}) belong to no tensor (before tensor '${t.name}')`);
    cursor = t.end;
    prev = t.name;
  }
  if (cursor !== bufferLen) fail(`data buffer has ${bufferLen} bytes but the tensors cover ${cursor}`);

  const checksum = verifyChecksum(metadata, entries, bytes.subarray(dataStart));
  const tensors = emptyRecord<RawTensor>();
  for (const t of entries) {
    setOwn(tensors, t.name, { dtype: t.dtype, shape: t.shape, data: bytes.subarray(dataStart + t.begin, dataStart + t.end) });
  }
  return { tensors, metadata, checksum };
}

/** Read and validate a whole checkpoint file. */
export function readSafetensors(path: string): SafetensorsContents {
  const buf = readFileSync(path);
  try {
    return decodeSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
  } catch (err) {
    (err as Error).message = `${(err as Error).message} (in ${path})`;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Typed arrays <-> raw bytes. DataView with explicit little-endian, so the bytes are the same on
// any platform.

/**
 * Float values to a RawTensor of a float dtype. F16/BF16 round to nearest even; a Float64Array
 * is kept exact for F64 and first rounded to float32 for the other dtypes.
 */
export function rawFromFloat32(
  arr: Float32Array | Float64Array,
  shape: number[],
  dtype: "F32" | "F16" | "BF16" | "F64" = "F32",
): RawTensor {
  const n = numel(shape, "rawFromFloat32");
  if (arr.length !== n) throw new Error(`rawFromFloat32: shape ${JSON.stringify(shape)} has ${n} elements, array has ${arr.length}`);
  const data = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const dv = new DataView(data.buffer);
  if (dtype === "F32") for (let i = 0; i < n; i++) dv.setFloat32(4 * i, arr[i], true);
  else if (dtype === "F64") for (let i = 0; i < n; i++) dv.setFloat64(8 * i, arr[i], true);
  else if (dtype === "F16" || dtype === "BF16") {
    const f32 = arr instanceof Float32Array ? arr : Float32Array.from(arr);
    const bits = dtype === "F16" ? f32ToF16Bits(f32) : f32ToBf16Bits(f32);
    for (let i = 0; i < n; i++) dv.setUint16(2 * i, bits[i], true);
  } else throw new Error(`rawFromFloat32: dtype must be F32, F64, F16 or BF16, got ${JSON.stringify(dtype)}`);
  return { dtype, shape: [...shape], data };
}

const INT_RANGE: Record<"I32" | "I64" | "I16" | "I8" | "U8" | "BOOL", [number, number]> = {
  I64: [-0x80000000, 0x7fffffff], I32: [-0x80000000, 0x7fffffff], I16: [-0x8000, 0x7fff],
  I8: [-0x80, 0x7f], U8: [0, 0xff], BOOL: [0, 1],
};

/** Integer values to a RawTensor of an integer dtype; a value that does not fit is an error. */
export function rawFromInt32(
  arr: Int32Array,
  shape: number[],
  dtype: "I32" | "I64" | "I16" | "I8" | "U8" | "BOOL" = "I32",
): RawTensor {
  const n = numel(shape, "rawFromInt32");
  if (arr.length !== n) throw new Error(`rawFromInt32: shape ${JSON.stringify(shape)} has ${n} elements, array has ${arr.length}`);
  if (!Object.prototype.hasOwnProperty.call(INT_RANGE, dtype)) {
    throw new Error(`rawFromInt32: dtype must be one of I64, I32, I16, I8, U8, BOOL, got ${JSON.stringify(dtype)}`);
  }
  const [lo, hi] = INT_RANGE[dtype];
  for (let i = 0; i < n; i++) {
    if (arr[i] < lo || arr[i] > hi) throw new Error(`rawFromInt32: value ${arr[i]} at index ${i} does not fit in ${dtype} [${lo}, ${hi}]`);
  }
  const data = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const dv = new DataView(data.buffer);
  switch (dtype) {
    case "I64": // two's complement: the high word is the sign extension of the low word
      for (let i = 0; i < n; i++) {
        dv.setInt32(8 * i, arr[i], true);
        dv.setInt32(8 * i + 4, arr[i] >> 31, true);
      }
      break;
    case "I32": for (let i = 0; i < n; i++) dv.setInt32(4 * i, arr[i], true); break;
    case "I16": for (let i = 0; i < n; i++) dv.setInt16(2 * i, arr[i], true); break;
    default: data.set(arr); // I8 (two's complement by Uint8Array's modular conversion), U8, BOOL
  }
  return { dtype, shape: [...shape], data };
}

/** A float RawTensor's values as float32 (F64 is rounded to nearest). */
export function rawToFloat32(raw: RawTensor, name = "tensor"): Float32Array {
  const n = checkRaw(raw, `rawToFloat32: '${name}'`) / DTYPE_SIZE[raw.dtype];
  const dv = new DataView(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
  const out = new Float32Array(n);
  switch (raw.dtype) {
    case "F32": for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true); return out;
    case "F64": for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, true); return out;
    case "F16":
    case "BF16": {
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, true);
      return raw.dtype === "F16" ? f16BitsToF32(bits) : bf16BitsToF32(bits);
    }
    default:
      throw new Error(`rawToFloat32: '${name}' has integer dtype ${raw.dtype}; use rawToInt32`);
  }
}

/** An integer RawTensor's values as int32; an I64 value outside int32 is an error naming the tensor. */
export function rawToInt32(raw: RawTensor, name = "tensor"): Int32Array {
  const n = checkRaw(raw, `rawToInt32: '${name}'`) / DTYPE_SIZE[raw.dtype];
  const dv = new DataView(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
  const out = new Int32Array(n);
  switch (raw.dtype) {
    case "I64":
      for (let i = 0; i < n; i++) {
        const low = dv.getInt32(8 * i, true);
        const high = dv.getInt32(8 * i + 4, true);
        if (high !== low >> 31) {
          throw new Error(`rawToInt32: '${name}' element ${i} = ${dv.getBigInt64(8 * i, true)} does not fit in int32`);
        }
        out[i] = low;
      }
      return out;
    case "I32": for (let i = 0; i < n; i++) out[i] = dv.getInt32(4 * i, true); return out;
    case "I16": for (let i = 0; i < n; i++) out[i] = dv.getInt16(2 * i, true); return out;
    case "I8": for (let i = 0; i < n; i++) out[i] = dv.getInt8(i); return out;
    case "U8": out.set(raw.data); return out;
    case "BOOL": for (let i = 0; i < n; i++) out[i] = raw.data[i] !== 0 ? 1 : 0; return out;
    default:
      throw new Error(`rawToInt32: '${name}' has float dtype ${raw.dtype}; use rawToFloat32`);
  }
}
