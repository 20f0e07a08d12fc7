// Tests for the checkpoint stack: core/f16.ts (16-bit floats), core/atomic-write.ts and
// core/safetensors.ts. Reference data in spec/fixtures/ was produced by PyTorch (see the
// make_*.py scripts there for exactly how).
import fc from "fast-check";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { writeFileAtomic, writeFileAtomicAsync } from "../../core/atomic-write.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../core/f16.ts";
import {
  DTYPE_SIZE, decodeSafetensors, encodeSafetensors, rawFromFloat32, rawFromInt32, rawToFloat32, rawToInt32,
  readSafetensors, writeSafetensors, type RawDType, type RawTensor,
} from "../../core/safetensors.ts";

const FC = { seed: 4321, numRuns: 200 };
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const scratch = () => mkdtempSync(join(tmpdir(), "hasten-st-"));

// ---------------------------------------------------------------------------------------------
const f16 = suite("f16");

/** The value a binary16 bit pattern denotes, straight from the IEEE 754 definition. */
function halfValue(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  if (e === 0) return s * m * 2 ** -24;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Round |a|/ulp to an integer, ties to even, in float64 (exact here: a is a float32, ulp a power of 2). */
function roundHalfEven(q: number): number {
  const fl = Math.floor(q);
  const frac = q - fl;
  return frac > 0.5 || (frac === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
}

/** Binary exponent of a finite nonzero double, read from its bits (no log2 rounding doubts). */
function exponentOf(a: number): number {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, a);
  return ((dv.getUint16(0) >> 4) & 0x7ff) - 1023;
}

/**
 * Reference rounding of a float32 to a format with `mbits` mantissa bits, minimum normal exponent
 * `emin`, overflowing at `overflow` (2^(emax+1)): the grid spacing at a is 2^(max(e, emin) - mbits).
 */
function refRound(x: number, mbits: number, emin: number, overflow: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  const ulp = 2 ** (Math.max(exponentOf(a), emin) - mbits);
  const v = roundHalfEven(a / ulp) * ulp;
  const r = v >= overflow ? Infinity : v;
  return x < 0 ? -r : r;
}
const refF16 = (x: number) => refRound(x, 10, -14, 65536);
const refBf16 = (x: number) => refRound(x, 7, -126, 2 ** 128);

const ALL16 = Uint16Array.from({ length: 65536 }, (_, i) => i);
const isNaNBits16 = (h: number, expMask: number) => (h & expMask) === expMask && (h & ~expMask & 0x7fff) !== 0;

f16("every half bit pattern decodes to its IEEE value", () => {
  const vals = f16BitsToF32(ALL16);
  for (let h = 0; h < 65536; h++) {
    const want = halfValue(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(vals[h]), `0x${h.toString(16)}`);
    else assert.ok(Object.is(vals[h], want), `0x${h.toString(16)}: ${vals[h]} vs ${want}`);
  }
});

f16("all 65536 half and bfloat16 bit patterns round-trip through float32 exactly (NaN payloads too)", () => {
  assert.equal(f32ToF16Bits(f16BitsToF32(ALL16)), ALL16);
  assert.equal(f32ToBf16Bits(bf16BitsToF32(ALL16)), ALL16);
});

f16("float32 -> f16/bf16 matches PyTorch on 4134 edge and random values", () => {
  const buf = readFileSync(fixture("f16-torch.bin"));
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = dv.getUint32(0, true);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = dv.getFloat32(4 + 4 * i, true);
  const half = f32ToF16Bits(x);
  const bf = f32ToBf16Bits(x);
  for (let i = 0; i < n; i++) {
    const th = dv.getUint16(4 + 4 * n + 2 * i, true);
    const tb = dv.getUint16(4 + 6 * n + 2 * i, true);
    if (Number.isNaN(x[i])) {
      // NaN payload conventions differ between implementations; NaN must stay NaN.
      assert.ok(isNaNBits16(half[i], 0x7c00) && isNaNBits16(th, 0x7c00));
      assert.ok(isNaNBits16(bf[i], 0x7f80) && isNaNBits16(tb, 0x7f80));
    } else {
      assert.is(half[i], th, `f16 of ${x[i]}`);
      assert.is(bf[i], tb, `bf16 of ${x[i]}`);
    }
  }
});

f16("float32 -> f16/bf16 equals round-half-even computed in float64, for random float32s", () => {
  const near = fc.tuple(fc.boolean(), fc.integer({ min: 90, max: 150 }), fc.integer({ min: 0, max: 0x7fffff }))
    .map(([s, e, m]) => ((s ? 0x80000000 : 0) | (e << 23) | m) >>> 0);
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), near), (bits) => {
      const x = new Float32Array(new Uint32Array([bits]).buffer);
      if (Number.isNaN(x[0])) return;
      assert.ok(Object.is(f16BitsToF32(f32ToF16Bits(x))[0], refF16(x[0])), `f16 of ${x[0]}`);
      assert.ok(Object.is(bf16BitsToF32(f32ToBf16Bits(x))[0], refBf16(x[0])), `bf16 of ${x[0]}`);
    }),
    { ...FC, numRuns: 5000 },
  );
});

f16("hand-checked roundings: ties to even, overflow, subnormals, signed zero", () => {
  const h = (v: number) => f32ToF16Bits(new Float32Array([v]))[0];
  const b = (v: number) => f32ToBf16Bits(new Float32Array([v]))[0];
  assert.is(h(1 + 2 ** -11), 0x3c00); // halfway between 1 and 1+2^-10: the even one, 1
  assert.is(h(1 + 3 * 2 ** -11), 0x3c02); // halfway between mantissas 1 and 2: 2
  assert.is(h(65519), 0x7bff); // below the 65520 midpoint: max half 65504
  assert.is(h(65520), 0x7c00); // the midpoint ties to the even neighbour 2^16, i.e. inf
  assert.is(h(2 ** -25), 0x0000); // half the smallest subnormal: tie to even 0
  assert.is(h(1.5 * 2 ** -25), 0x0001); // past the tie: smallest subnormal
  assert.is(h(1.5 * 2 ** -24), 0x0002); // tie between 1 and 2 subnormal ulps: 2
  assert.is(h(2 ** -14 - 2 ** -25), 0x0400); // tie between largest subnormal and smallest normal
  assert.is(h(-0), 0x8000);
  assert.is(h(0.1), 0x2e66);
  assert.is(h(-Infinity), 0xfc00);
  assert.is(b(1 + 2 ** -8), 0x3f80); // tie: down to even
  assert.is(b(1 + 3 * 2 ** -8), 0x3f82); // tie: up to even
  assert.is(b(0.1), 0x3dcd); // 0.1f = 0x3dcccccd rounds up
  assert.is(b(3.4028234663852886e38), 0x7f80); // max float32 overflows bf16
});

// ---------------------------------------------------------------------------------------------
const atomic = suite("atomic-write");

atomic("writes bytes, strings and chunk lists, replacing the old file and leaving no temp file", () => {
  const dir = scratch();
  const p = join(dir, "out.bin");
  writeFileAtomic(p, "hello");
  assert.is(readFileSync(p, "utf8"), "hello");
  writeFileAtomic(p, new Uint8Array([1, 2, 3]));
  assert.equal([...readFileSync(p)], [1, 2, 3]);
  writeFileAtomic(p, [new Uint8Array([9]), new Uint8Array(0), new Uint8Array([8, 7])]);
  assert.equal([...readFileSync(p)], [9, 8, 7]);
  assert.equal(readdirSync(dir), ["out.bin"]);
});

atomic("creates parent directories only when asked", () => {
  const dir = scratch();
  const p = join(dir, "a", "b", "c.txt");
  assert.throws(() => writeFileAtomic(p, "x"), /ENOENT/);
  assert.not.ok(existsSync(join(dir, "a")));
  writeFileAtomic(p, "x", { mkdir: true });
  assert.is(readFileSync(p, "utf8"), "x");
});

/** Chunks that fail after the temp file already holds some bytes. */
function* failingChunks(): Iterable<Uint8Array> {
  yield new Uint8Array(1000).fill(7);
  throw new Error("serializer exploded");
}

atomic("a chunk source that throws leaves the old file intact and removes the temp file", () => {
  const dir = scratch();
  const p = join(dir, "ckpt");
  writeFileSync(p, "old contents");
  assert.throws(() => writeFileAtomic(p, failingChunks()), /serializer exploded/);
  assert.throws(() => writeFileAtomic(p, [new Uint8Array(2), [1, 2] as unknown as Uint8Array]), /chunks must be Uint8Array/);
  assert.is(readFileSync(p, "utf8"), "old contents");
  assert.equal(readdirSync(dir), ["ckpt"]);
});

atomic("a failing rename (target is a non-empty directory) removes the temp file", () => {
  const dir = scratch();
  const target = join(dir, "taken");
  mkdirSync(target);
  writeFileSync(join(target, "keep"), "k");
  assert.throws(() => writeFileAtomic(target, "new"), /EISDIR|ENOTEMPTY|EEXIST/);
  assert.equal(readdirSync(dir), ["taken"]);
  assert.is(readFileSync(join(target, "keep"), "utf8"), "k");
  // A path whose parent is a file fails before anything is written.
  writeFileSync(join(dir, "file"), "f");
  assert.throws(() => writeFileAtomic(join(dir, "file", "x"), "new"), /ENOTDIR/);
  assert.is(readFileSync(join(dir, "file"), "utf8"), "f");
});

atomic("async variant: writes, and on failure keeps the old file and removes the temp file", async () => {
  const dir = scratch();
  const p = join(dir, "a.txt");
  await writeFileAtomicAsync(p, "one");
  async function* gen() {
    yield new Uint8Array([116, 119]);
    yield new Uint8Array([111]);
  }
  await writeFileAtomicAsync(p, gen());
  assert.is(readFileSync(p, "utf8"), "two");
  async function* bad() {
    yield new Uint8Array(10);
    throw new Error("async serializer exploded");
  }
  await writeFileAtomicAsync(p, bad()).then(
    () => assert.unreachable("should have thrown"),
    (e: Error) => assert.match(e.message, /async serializer exploded/),
  );
  mkdirSync(join(dir, "d"));
  writeFileSync(join(dir, "d", "x"), "x");
  await writeFileAtomicAsync(join(dir, "d"), "z").then(
    () => assert.unreachable("should have thrown"),
    (e: Error) => assert.match(e.message, /EISDIR|ENOTEMPTY|EEXIST/),
  );
  await writeFileAtomicAsync(join(dir, "new", "deep.txt"), "d", { mkdir: true });
  assert.is(readFileSync(p, "utf8"), "two");
  assert.equal(readdirSync(dir).sort(), ["a.txt", "d", "new"]);
});

// ---------------------------------------------------------------------------------------------
const st = suite("safetensors");
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));
const u64le = (n: number) => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >> 24) & 0xff, 0, 0, 0, 0];

st("decodes a file assembled by hand from the spec (unpadded, unaligned, keys out of offset order)", () => {
  const header = `{"b":{"dtype":"I16","shape":[],"data_offsets":[8,10]},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`;
  assert.is(header.length, 107);
  const bytes = new Uint8Array([
    ...u64le(107), ...ascii(header),
    0x00, 0x00, 0x80, 0x3f, // 1.0f:  sign 0, exponent 127, mantissa 0
    0x00, 0x00, 0x00, 0xc0, // -2.0f: sign 1, exponent 128
    0xfe, 0xff, //             int16 -2 in two's complement
  ]);
  const { tensors, metadata, checksum } = decodeSafetensors(bytes);
  assert.equal({ ...metadata }, {});
  assert.is(checksum, "absent");
  assert.equal(Object.keys(tensors).sort(), ["b", "w"]);
  assert.equal(tensors.w.shape, [2]);
  assert.equal([...rawToFloat32(tensors.w)], [1, -2]);
  assert.equal(tensors.b.shape, []);
  assert.equal([...rawToInt32(tensors.b)], [-2]);
});

st("encodes to the exact bytes the spec prescribes", () => {
  // The reference writer's published vector for an empty file: "{}" padded to 8 bytes.
  // (checksum: false writes exactly what the reference writer writes)
  assert.equal([...encodeSafetensors({}, {}, { checksum: false })], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  const record = {
    b: rawFromInt32(new Int32Array([-2]), [], "I16"),
    a: rawFromFloat32(new Float32Array([1, -2]), [2]),
  };
  // F32 (rank 11) before I16 (rank 5); 132 header bytes padded with 4 spaces to 136.
  const header = `{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I16","shape":[],"data_offsets":[8,10]}}`;
  assert.is(header.length, 132);
  const expected = [
    ...u64le(136), ...ascii(header), 32, 32, 32, 32,
    0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0xfe, 0xff,
  ];
  assert.equal([...encodeSafetensors(record, { k: "v" }, { checksum: false })], expected);
});

interface Expected {
  metadata: Record<string, string>;
  tensors: Record<string, { dtype: RawDType; shape: number[]; values: number[] }>;
}

st("reads the PyTorch-made fixture with PyTorch's values, and re-encodes it byte for byte", () => {
  const path = fixture("torch-small.safetensors");
  const want: Expected = JSON.parse(readFileSync(fixture("torch-small.expected.json"), "utf8"));
  const { tensors, metadata, checksum } = readSafetensors(path);
  assert.equal({ ...metadata }, want.metadata);
  assert.is(checksum, "absent");
  assert.equal(Object.keys(tensors).sort(), Object.keys(want.tensors).sort());
  for (const [name, w] of Object.entries(want.tensors)) {
    const t = tensors[name];
    assert.is(t.dtype, w.dtype, name);
    assert.equal(t.shape, w.shape, name);
    if (name === "big") {
      assert.throws(() => rawToInt32(t, name), /'big' element 0 = 1099511627776 does not fit in int32/);
    } else if (t.dtype === "F64") {
      const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      assert.equal(w.values.map((_, i) => dv.getFloat64(8 * i, true)), w.values, name);
    } else if (t.dtype.startsWith("F") || t.dtype === "BF16") {
      assert.equal([...rawToFloat32(t, name)], w.values, name);
    } else {
      assert.equal([...rawToInt32(t, name)], w.values, name);
    }
  }
  assert.equal(encodeSafetensors(tensors, metadata, { checksum: false }), new Uint8Array(readFileSync(path)));
});

const DTYPES = Object.keys(DTYPE_SIZE) as RawDType[];
const arbRecord = fc
  .uniqueArray(
    fc.record({
      name: fc.string({ minLength: 1, maxLength: 8, unit: "binary" }).filter((s) => s !== "__metadata__"),
      dtype: fc.constantFrom(...DTYPES),
      shape: fc.array(fc.nat(4), { maxLength: 4 }),
    }),
    { selector: (t) => t.name, maxLength: 6 },
  )
  .chain((specs) =>
    fc.tuple(
      ...specs.map((s) => {
        const n = s.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[s.dtype];
        return fc.uint8Array({ minLength: n, maxLength: n }).map((data) => [s.name, { ...s, data }] as const);
      }),
    ),
  )
  .map((entries) => {
    const rec: Record<string, RawTensor> = {};
    for (const [name, { dtype, shape, data }] of entries) {
      Object.defineProperty(rec, name, { value: { dtype, shape, data }, enumerable: true });
    }
    return rec;
  });
const arbMeta = fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 10 }), { maxKeys: 3 });

st("random records round-trip bit-exactly, every tensor aligned to its element size", () => {
  fc.assert(
    fc.property(arbRecord, arbMeta, (rec, meta) => {
      const bytes = encodeSafetensors(rec, meta);
      const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      assert.is(headerLen % 8, 0);
      const out = decodeSafetensors(bytes);
      assert.equal({ ...out.metadata }, { ...meta });
      assert.is(out.checksum, "verified");
      assert.equal(Object.keys(out.tensors).sort(), Object.keys(rec).sort());
      for (const name of Object.keys(rec)) {
        const t = out.tensors[name];
        assert.is(t.dtype, rec[name].dtype);
        assert.equal(t.shape, rec[name].shape);
        assert.equal(t.data, rec[name].data);
        assert.is(t.data.byteOffset % DTYPE_SIZE[t.dtype], 0, `alignment of ${name}`);
      }
    }),
    FC,
  );
});

st("writeSafetensors/readSafetensors round-trip through a file; a tensor may be named __proto__", () => {
  const dir = scratch();
  const p = join(dir, "model.safetensors");
  const rec: Record<string, RawTensor> = {};
  Object.defineProperty(rec, "__proto__", { value: rawFromFloat32(new Float32Array([0.5]), [1]), enumerable: true });
  rec["w.0"] = rawFromFloat32(new Float32Array([1.5, -0, Infinity, NaN]), [2, 2], "F16");
  writeSafetensors(p, rec, { epoch: "3" });
  const { tensors, metadata } = readSafetensors(p);
  assert.equal({ ...metadata }, { epoch: "3" });
  assert.ok(Object.prototype.hasOwnProperty.call(tensors, "__proto__"));
  assert.equal([...rawToFloat32(tensors["__proto__"])], [0.5]);
  const w = rawToFloat32(tensors["w.0"]);
  assert.equal([w[0], Object.is(w[1], -0), w[2], Number.isNaN(w[3])], [1.5, true, Infinity, true]);
  assert.equal(readdirSync(dir), ["model.safetensors"]);
});

st("typed-array helpers: exact for every dtype, range errors for ints", () => {
  const f = new Float64Array([Math.PI, -1e-300, 1e300]);
  const dv = (r: RawTensor) => new DataView(r.data.buffer, r.data.byteOffset, r.data.byteLength);
  const r64 = rawFromFloat32(f, [3], "F64");
  assert.equal([0, 1, 2].map((i) => dv(r64).getFloat64(8 * i, true)), [...f]);
  assert.equal([...rawToFloat32(r64)], [...Float32Array.from(f)]);
  const x = new Float32Array([0.1, -3, 65504, 1e-7]);
  assert.equal([...rawToFloat32(rawFromFloat32(x, [4]))], [...x]);
  assert.equal([...rawToFloat32(rawFromFloat32(x, [2, 2], "F16"))], [...f16BitsToF32(f32ToF16Bits(x))]);
  assert.equal([...rawToFloat32(rawFromFloat32(x, [4, 1], "BF16"))], [...bf16BitsToF32(f32ToBf16Bits(x))]);
  const cases: [RawDType, number[]][] = [
    ["I64", [-2147483648, -1, 0, 2147483647]], ["I32", [-2147483648, 2147483647]], ["I16", [-32768, 32767]],
    ["I8", [-128, -1, 127]], ["U8", [0, 255]], ["BOOL", [0, 1, 1, 0]],
  ];
  for (const [dtype, vals] of cases) {
    const raw = rawFromInt32(Int32Array.from(vals), [vals.length], dtype as "I32");
    assert.is(raw.data.length, vals.length * DTYPE_SIZE[dtype]);
    assert.equal([...rawToInt32(raw)], vals, dtype);
  }
  assert.equal([...rawFromInt32(new Int32Array([-2]), [1], "I64").data], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.throws(() => rawFromInt32(new Int32Array([256]), [1], "U8"), /value 256 at index 0 does not fit in U8 \[0, 255\]/);
  assert.throws(() => rawFromInt32(new Int32Array([2]), [1], "BOOL"), /does not fit in BOOL/);
  assert.throws(() => rawFromInt32(new Int32Array([1, 2]), [3], "I32"), /shape \[3\] has 3 elements, array has 2/);
  assert.throws(() => rawFromFloat32(new Float32Array(2), [1, -2]), /non-negative integers/);
  assert.throws(() => rawToFloat32(rawFromInt32(new Int32Array(1), [1]), "ids"), /'ids' has integer dtype I32/);
  assert.throws(() => rawToInt32(rawFromFloat32(new Float32Array(1), [1]), "w"), /'w' has float dtype F32/);
  assert.throws(() => rawToFloat32({ dtype: "F32", shape: [2], data: new Uint8Array(7) }, "w"), /needs 2 × 4 = 8 bytes, got 7/);
});

st("write refuses bad records before touching the old file", () => {
  const dir = scratch();
  const p = join(dir, "ckpt.safetensors");
  writeSafetensors(p, { a: rawFromFloat32(new Float32Array([1]), [1]) });
  const before = readFileSync(p);
  const ok = rawFromFloat32(new Float32Array([1]), [1]);
  const bad: [Record<string, RawTensor>, Record<string, string> | undefined, RegExp][] = [
    [{ "": ok }, undefined, /names must be non-empty/],
    [{ __metadata__: ok }, undefined, /"__metadata__" is reserved/],
    [{ a: { dtype: "F32", shape: [2, 3], data: new Uint8Array(20) } }, undefined, /'a': shape \[2,3\] of F32 needs 6 × 4 = 24 bytes, got 20/],
    [{ a: { dtype: "U16" as RawDType, shape: [1], data: new Uint8Array(2) } }, undefined, /unknown dtype "U16"/],
    [{ a: { dtype: "F32", shape: [1.5], data: new Uint8Array(4) } }, undefined, /non-negative integers/],
    [{ a: ok }, { epoch: 3 as unknown as string }, /metadata values must be strings, got number for key 'epoch'/],
  ];
  for (const [rec, meta, re] of bad) assert.throws(() => writeSafetensors(p, rec, meta), re);
  assert.equal(readFileSync(p), before);
  assert.equal(readdirSync(dir), ["ckpt.safetensors"]);
});

/** A file with an arbitrary (possibly corrupt) header object and data buffer. */
function fileWith(header: unknown, data: Uint8Array | number = 0, rawHeader?: Uint8Array): Uint8Array {
  const json = rawHeader ?? new TextEncoder().encode(JSON.stringify(header));
  const body = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

st("every kind of corruption is refused with a message that says what is wrong", () => {
  const t = (dtype: string, shape: unknown, off: unknown) => ({ dtype, shape, data_offsets: off });
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(5), /file is 5 bytes, shorter than the 8-byte header length/],
    [(() => { const f = fileWith({}); new DataView(f.buffer).setBigUint64(0, 1000n, true); return f; })(), /header length 1000 exceeds file size 10/],
    [(() => { const f = fileWith({}); new DataView(f.buffer).setBigUint64(0, 2n ** 64n - 1n, true); return f; })(), /larger than the 100000000-byte limit/],
    [fileWith(null, 0, new TextEncoder().encode(`{"a":`)), /header is not valid JSON/],
    [fileWith(null, 0, new Uint8Array([0x7b, 0xff, 0x7d])), /header is not valid UTF-8/],
    [fileWith([]), /header must be a JSON object, got an array/],
    [fileWith({ a: t("U16", [1], [0, 2]) }, 2), /tensor 'a': unknown dtype "U16"/],
    [fileWith({ a: { shape: [1], data_offsets: [0, 4] } }, 4), /tensor 'a': unknown dtype undefined/],
    [fileWith({ a: t("F32", [-1], [0, 0]) }), /non-negative integers, got \[-1\]/],
    [fileWith({ a: t("F32", [1.5], [0, 6]) }, 6), /non-negative integers, got \[1.5\]/],
    [fileWith({ a: t("F32", 3, [0, 12]) }, 12), /shape must be an array/],
    [fileWith({ a: t("F32", [2], [8, 0]) }, 8), /data_offsets must be two integers 0 <= begin <= end, got \[8,0\]/],
    [fileWith({ a: t("F32", [2], [0, 8, 9]) }, 8), /data_offsets must be two integers/],
    [fileWith({ a: t("F32", [2], [0, 12]) }, 12), /'a': shape \[2\] of F32 needs 8 bytes, data_offsets \[0,12\] hold 12/],
    [fileWith({ a: t("F32", [2], [0, 8]) }, 6), /'a': data_offsets end 8 is past the end of the 6-byte data buffer/],
    [fileWith({ a: t("F32", [2], [0, 8]), b: t("F32", [1], [4, 8]) }, 8), /tensor 'b' data_offsets \[4,8\] overlap tensor 'a' ending at 8/],
    [fileWith({ a: t("F32", [1], [0, 4]), b: t("F32", [1], [8, 12]) }, 12), /bytes \[4,8\) belong to no tensor/],
    [fileWith({ a: t("F32", [1], [4, 8]) }, 8), /bytes \[0,4\) belong to no tensor/],
    [fileWith({ a: t("F32", [1], [0, 4]) }, 9), /data buffer has 9 bytes but the tensors cover 4/],
    [fileWith({ a: t("F32", [0], [2, 2]) }, 0), /past the end/],
    [fileWith({ __metadata__: { k: 1 } }), /__metadata__ value for 'k' must be a string/],
    [fileWith({ __metadata__: ["x"] }), /__metadata__ must be an object/],
  ];
  for (const [bytes, re] of cases) assert.throws(() => decodeSafetensors(bytes), re);
});

st("a file cut short anywhere is refused, never half-read", () => {
  // Exhaustively on the PyTorch fixture...
  const whole = new Uint8Array(readFileSync(fixture("torch-small.safetensors")));
  for (let cut = 0; cut < whole.length; cut++) {
    assert.throws(() => decodeSafetensors(whole.subarray(0, cut)), /safetensors: /, `cut at ${cut}`);
  }
  // ...and at random points of random non-empty files. An all-zero-size record has no data to
  // lose, so require at least one byte of tensor data.
  fc.assert(
    fc.property(arbRecord, arbMeta, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (rec, meta, where) => {
      const bytes = encodeSafetensors(rec, meta);
      const headerEnd = 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true));
      if (bytes.length === headerEnd) return;
      const cut = Math.floor(where * bytes.length);
      assert.throws(() => decodeSafetensors(bytes.subarray(0, cut)), /safetensors: /);
    }),
    FC,
  );
  // And through readSafetensors, with the path in the message.
  const dir = scratch();
  writeFileSync(join(dir, "cut.safetensors"), whole.subarray(0, whole.length - 1));
  assert.throws(() => readSafetensors(join(dir, "cut.safetensors")), /(cover|past the end).*\(in .*cut\.safetensors\)/);
});

f16.run();
atomic.run();
st.run();
