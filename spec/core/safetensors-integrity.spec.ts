// Damaged and hostile safetensors files: the checksum Hasten writes, names that are not plain
// identifiers, repeated names, absurd shapes. A checksummed file is either refused with a
// "safetensors: ..." error or read back exactly as written — never a crash, never other values.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { loadSafetensors, saveSafetensors, tensor, type Tensor } from "../../core/index.ts";
import {
  CHECKSUM_KEY, DTYPE_SIZE, MAX_RANK, decodeSafetensors, encodeSafetensors, rawFromFloat32, rawFromInt32, readSafetensors,
  writeSafetensors, type RawDType, type RawTensor, type SafetensorsContents,
} from "../../core/safetensors.ts";

const s = suite("safetensors integrity");
const dir = mkdtempSync(join(tmpdir(), "hasten-integrity-"));
const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const FC = { seed: 90210, numRuns: 300 };

const DTYPES = Object.keys(DTYPE_SIZE) as RawDType[];
// Names of every kind: arbitrary strings, and the ones a plain object would mishandle.
const arbName = fc.oneof(
  fc.string({ minLength: 1, maxLength: 10, unit: "binary" }),
  fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "a.b", "0", " ", "\"", "\\", "\u0000", "😀"),
).filter((n) => n !== "__metadata__");
const arbRecord = fc
  .uniqueArray(fc.record({ name: arbName, dtype: fc.constantFrom(...DTYPES), shape: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }) }),
    { selector: (t) => t.name, minLength: 1, maxLength: 5 })
  .chain((specs) => fc.tuple(...specs.map((sp) => {
    const n = sp.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[sp.dtype];
    return fc.uint8Array({ minLength: n, maxLength: n }).map((data) => [sp.name, { dtype: sp.dtype, shape: sp.shape, data }] as const);
  })))
  .map((entries) => {
    const rec = Object.create(null) as Record<string, RawTensor>;
    for (const [name, raw] of entries) rec[name] = raw;
    return rec;
  });
const arbMeta = fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 12 }), { maxKeys: 3 });

/** The contents equal the record and metadata that were written, byte for byte. */
function same(out: SafetensorsContents, rec: Record<string, RawTensor>, meta: Record<string, string>): boolean {
  const names = Object.keys(rec).sort();
  if (Object.keys(out.tensors).sort().join("\u0001") !== names.join("\u0001")) return false;
  if (JSON.stringify(Object.entries(out.metadata).sort()) !== JSON.stringify(Object.entries(meta).sort())) return false;
  return names.every((n) => {
    const a = out.tensors[n], b = rec[n];
    return a.dtype === b.dtype && a.shape.join() === b.shape.join() && Buffer.compare(a.data, b.data) === 0;
  });
}

const headerEnd = (bytes: Uint8Array) => 8 + Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));

s("written files carry the checksum; reading verifies it and hides it from the metadata", () => {
  const rec = { w: rawFromFloat32(new Float32Array([1, 2, 3]), [3]), ids: rawFromInt32(new Int32Array([7]), [1]) };
  const bytes = encodeSafetensors(rec, { epoch: "3" });
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, headerEnd(bytes))));
  assert.match(header.__metadata__[CHECKSUM_KEY], /^[0-9a-f]{64}$/);
  assert.is(Object.keys(header)[0], "__metadata__", "metadata first, so a burst must cross the table to reach the data");
  const out = decodeSafetensors(bytes);
  assert.is(out.checksum, "verified");
  assert.equal({ ...out.metadata }, { epoch: "3" });
  // Passing read metadata back (with a stale checksum in it) writes a fresh checksum.
  const again = encodeSafetensors({ w: rec.w }, { ...header.__metadata__, epoch: "4" });
  assert.is(decodeSafetensors(again).checksum, "verified");
  assert.equal({ ...decodeSafetensors(again).metadata }, { epoch: "4" });
});

s("files without a checksum still load: the library-written fixture and the shipped model", () => {
  const lib = readSafetensors(root("spec/fixtures/lib-small.safetensors"));
  assert.is(lib.checksum, "absent");
  assert.ok(Object.keys(lib.tensors).length > 0);
  const shipped = readSafetensors(root("models/ar-de-en/model.safetensors"));
  assert.is(shipped.checksum, "absent");
  assert.ok(Object.keys(shipped.tensors).length > 10, "the shipped model's tensors");
});

s("1,000 flipped bytes in a model file are refused, naming the file (the reported failure)", async () => {
  const p = join(dir, "model.safetensors");
  const w = new Float32Array(50_000).map((_, i) => Math.sin(i));
  await saveSafetensors(p, { "enc.w": tensor(w, { shape: [500, 100] }), "enc.b": tensor(w.subarray(0, 100)) }, { floatDtype: "F16" });
  const bytes = readFileSync(p);
  let seed = 12345;
  const start = headerEnd(bytes);
  for (let k = 0; k < 1000; k++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    bytes[start + (seed % (bytes.length - start))] ^= 1 + (seed >>> 24) % 255;
  }
  writeFileSync(p, bytes);
  assert.throws(() => loadSafetensors(p), (e: Error) => /safetensors: checksum mismatch/.test(e.message) && e.message.includes(p));
});

s("a flipped checksum entry is refused: a damaged key, a damaged value", () => {
  const rec = { w: rawFromFloat32(new Float32Array([1, 2]), [2]) };
  const good = encodeSafetensors(rec);
  const text = new TextDecoder().decode(good);
  const at = text.indexOf(CHECKSUM_KEY);
  const damaged = (offset: number, byte: number) => { const b = good.slice(); b[at + offset] = byte; return b; };
  assert.throws(() => decodeSafetensors(damaged(3, 0x78)), /key 'hasxen\.sha256' looks like a damaged 'hasten\.sha256'/);
  const valueAt = CHECKSUM_KEY.length + 3; // past `key":"`
  assert.throws(() => decodeSafetensors(damaged(valueAt, good[at + valueAt] === 0x30 ? 0x31 : 0x30)), /checksum mismatch/);
  assert.throws(() => decodeSafetensors(damaged(valueAt, 0x47)), /hasten\.sha256 must be 64 lowercase hex digits/);
  // and the writer will not produce a key the reader would take for a damaged one
  assert.throws(() => encodeSafetensors(rec, { "hasten.sha255": "x" }), /metadata key 'hasten\.sha255' is too close to the reserved 'hasten\.sha256'/);
});

// The property the checksum exists for, over random files, names and damage.
const arbDamage = fc.oneof(
  fc.record({ kind: fc.constant("flips" as const), at: fc.array(fc.tuple(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant("burst" as const), at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }),
  fc.record({ kind: fc.constant("cut" as const), at: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }) }),
);
function damage(bytes: Uint8Array, d: typeof arbDamage extends fc.Arbitrary<infer T> ? T : never, lo = 0): Uint8Array {
  const out = bytes.slice();
  const pos = (x: number) => lo + Math.floor(x * (bytes.length - lo));
  if (d.kind === "flips") for (const [x, v] of d.at) out[pos(x)] ^= v;
  else if (d.kind === "burst") out.set(d.bytes.subarray(0, out.length - pos(d.at)), pos(d.at));
  else return out.subarray(0, pos(d.at));
  return out;
}

s("property: damaged checksummed files are refused with a safetensors error or read back exactly", () => {
  const seen = { refused: 0, checksum: 0, same: 0 };
  fc.assert(
    fc.property(arbRecord, arbMeta, arbDamage, (rec, meta, d) => {
      const bad = damage(encodeSafetensors(rec, meta), d);
      let out: SafetensorsContents;
      try {
        out = decodeSafetensors(bad);
      } catch (e) {
        assert.instance(e, Error);
        assert.match((e as Error).message, /^safetensors: /, `not a clear refusal: ${String(e)}`);
        seen.refused++;
        if (/checksum/.test((e as Error).message)) seen.checksum++;
        return;
      }
      assert.ok(same(out, rec, meta), `accepted with different contents (damage ${JSON.stringify(d)})`);
      seen.same++;
    }),
    FC,
  );
  // not vacuous: the checksum itself refused files that were otherwise well formed
  assert.ok(seen.checksum >= 5 && seen.refused > 100, JSON.stringify(seen));
});

s("property: any damage to the data buffer alone is refused by the checksum", () => {
  fc.assert(
    fc.property(arbRecord, arbMeta, arbDamage.filter((d) => d.kind !== "cut"), (rec, meta, d) => {
      const bytes = encodeSafetensors(rec, meta);
      const bad = damage(bytes, d, headerEnd(bytes));
      if (Buffer.compare(bad, bytes) === 0) return; // the damage rewrote the same bytes
      assert.throws(() => decodeSafetensors(bad), /safetensors: checksum mismatch/);
    }),
    FC,
  );
});

s("whitespace changes in the header padding are the one accepted change: same values", () => {
  const rec = { w: rawFromFloat32(new Float32Array([0.5, -1]), [2]) };
  const bytes = encodeSafetensors(rec, { k: "v" });
  const text = new TextDecoder().decode(bytes.subarray(8, headerEnd(bytes)));
  const pad = text.length - text.trimEnd().length;
  assert.ok(pad > 0, "the header has padding");
  for (const ws of [0x09, 0x0a, 0x0d]) {
    const b = bytes.slice();
    b[headerEnd(bytes) - 1] = ws;
    const out = decodeSafetensors(b);
    assert.is(out.checksum, "verified");
    assert.ok(same(out, rec, { k: "v" }));
  }
});

s("property: any tensor names round-trip through save and load, into records that inherit nothing", async () => {
  await fc.assert(
    fc.asyncProperty(fc.uniqueArray(arbName, { minLength: 1, maxLength: 6 }), async (names) => {
      const rec = Object.create(null) as Record<string, Tensor>;
      names.forEach((n, i) => (rec[n] = tensor([i, -i, i / 4])));
      const p = join(dir, "names.safetensors");
      await saveSafetensors(p, rec);
      const back = loadSafetensors(p);
      assert.is(Object.getPrototypeOf(back), null);
      assert.equal(Object.keys(back).sort(), [...names].sort());
      names.forEach((n, i) => assert.equal(Array.from(back[n].dataSync()), [i, -i, i / 4], JSON.stringify(n)));
    }),
    { seed: 4242, numRuns: 60 },
  );
  // the reported case: "__proto__" was dropped on save and became the prototype on load
  const p = join(dir, "proto.safetensors");
  await saveSafetensors(p, Object.defineProperty({ ok: tensor([1]) }, "__proto__", { value: tensor([2]), enumerable: true }) as Record<string, Tensor>);
  const back = loadSafetensors(p);
  assert.equal(Object.keys(back).sort(), ["__proto__", "ok"]);
  assert.equal(Array.from(back["__proto__"].dataSync()), [2]);
  assert.not.ok("constructor" in back, "no inherited keys");
});

/** A file from a header object written as given (JSON text may repeat keys) and `n` data bytes. */
function fileFrom(headerText: string, n: number): Uint8Array {
  const json = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + json.length + n);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

s("repeated names and absurd shapes are refused with a clear error", () => {
  const e = (dtype: string, shape: number[], a: number, b: number) => `{"dtype":"${dtype}","shape":${JSON.stringify(shape)},"data_offsets":[${a},${b}]}`;
  const cases: [Uint8Array, RegExp][] = [
    [fileFrom(`{"a":${e("F32", [1], 0, 4)},"a":${e("F32", [1], 4, 8)}}`, 8), /safetensors: tensor 'a' is listed twice in the header/],
    [fileFrom(`{"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, 4), /the key 'dtype' appears twice in the header entry 'a'/],
    [fileFrom(`{"__metadata__":{"k":"1","k":"2"},"a":${e("F32", [1], 0, 4)}}`, 4), /the key 'k' appears twice in the header entry '__metadata__'/],
    [fileFrom(`{"x\\"y":${e("F32", [1], 0, 4)},"x\\u0022y":${e("F32", [1], 4, 8)}}`, 8), /tensor 'x"y' is listed twice/],
    [fileFrom(`{"a":${e("F32", Array(MAX_RANK + 1).fill(1), 0, 4)}}`, 4), /shape has 17 dimensions, more than the 16 this reader accepts/],
    [fileFrom(`{"a":${e("F32", [2 ** 26, 2 ** 26, 2 ** 26], 0, 4)}}`, 4), /has too many elements/],
    [fileFrom(`{"a":${e("F32", [2 ** 20, 2 ** 20], 0, 4)}}`, 4), /needs 4398046511104 bytes, data_offsets \[0,4\] hold 4/],
  ];
  for (const [bytes, re] of cases) assert.throws(() => decodeSafetensors(bytes), re);
  // an empty tensor with huge other dims is fine (0 elements), and so is rank 16
  const ok = decodeSafetensors(fileFrom(`{"a":${e("F32", [2 ** 40, 2 ** 40, 0], 0, 0)},"b":${e("U8", Array(MAX_RANK).fill(1), 0, 1)}}`, 1));
  assert.equal(ok.tensors.a.shape, [2 ** 40, 2 ** 40, 0]);
  // writing refuses what reading would
  assert.throws(() => writeSafetensors(join(dir, "r.safetensors"), { a: { dtype: "U8", shape: Array(17).fill(1), data: new Uint8Array(1) } }), /17 dimensions/);
});

s.run();
