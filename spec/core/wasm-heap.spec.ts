// The heap allocator inside the shared wasm memory: alignment, no overlap, reuse of freed
// blocks, coalescing, growth (old views stay valid), clear errors, and random alloc/free
// sequences checked against a model (each block keeps its own byte pattern until freed).
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { Heap } from "../../core/backends/wasm/heap.ts";

test("blocks are 16-byte aligned, disjoint, and alloc(0) is a real block", () => {
  const h = new Heap({ initialBytes: 1 << 16 });
  const ptrs = [0, 1, 15, 16, 17, 100].map((n) => [h.alloc(n), n] as const);
  for (const [p] of ptrs) assert.is(p % 16, 0);
  const spans = ptrs.map(([p]) => [p, p + h.sizeOf(p)]).sort((x, y) => x[0] - y[0]);
  for (let i = 1; i < spans.length; i++) assert.ok(spans[i][0] >= spans[i - 1][1], "blocks overlap");
  assert.ok(ptrs.every(([p]) => p > 0), "0 is never a block");
  assert.is(h.liveBlocks(), 6);
  for (const [p] of ptrs) h.free(p);
  assert.is(h.liveBlocks(), 0);
  assert.is(h.liveBytes(), 0);
});

test("freed blocks are reused and neighbours coalesce", () => {
  const h = new Heap({ initialBytes: 1 << 16 });
  const guard0 = h.alloc(16);
  const [a, b, c] = [h.alloc(1000), h.alloc(1000), h.alloc(1000)];
  const guard = h.alloc(16); // keeps a..c away from the bump region
  const high = h.highWater;
  h.free(b);
  assert.is(h.alloc(1000), b, "a freed block of the same size comes back");
  h.free(a);
  h.free(c);
  h.free(b); // a, b, c coalesce into one span
  const big = h.alloc(3000);
  assert.is(big, a, "three coalesced neighbours hold one larger block");
  assert.is(h.highWater, high, "no fresh space was needed");
  h.free(big);
  h.free(guard);
  h.free(guard0);
  assert.is(h.liveBlocks(), 0);
  assert.ok(h.highWater <= 1024, "everything went back to the bump region");
});

test("the memory grows on demand; views made before growth stay valid", () => {
  const h = new Heap({ initialBytes: 1 << 16, maximumBytes: 1 << 24 });
  const before = h.byteLength;
  const p = h.alloc(1024);
  const v = h.f32(p, 256);
  v.fill(3.5);
  const q = h.alloc(1 << 20);
  assert.ok(h.byteLength > before, "memory grew");
  h.f32(q, 1 << 18).fill(-1);
  assert.ok(v.every((x) => x === 3.5), "the old view still sees its block");
  assert.ok(h.f32(p, 256).every((x) => x === 3.5));
  assert.is(h.i32(q, 1)[0], new Int32Array(new Float32Array([-1]).buffer)[0]);
  h.free(p);
  h.free(q);
});

test("errors: double free, foreign pointers, bad sizes, out of memory", () => {
  const h = new Heap({ initialBytes: 1 << 16, maximumBytes: 1 << 17 });
  const p = h.alloc(64);
  h.free(p);
  assert.throws(() => h.free(p), /heap.free: \d+ is not a live block/);
  assert.throws(() => h.free(p + 16), /not a live block/);
  assert.throws(() => h.alloc(-1), /expected a byte count >= 0, got -1/);
  assert.throws(() => h.alloc(NaN), /expected a byte count/);
  assert.throws(() => h.alloc(1 << 20), /heap: out of memory: need \d+ bytes, maximum is 131072/);
  assert.throws(() => h.f32(h.byteLength - 4, 2), /view ends at byte/);
  assert.is(h.liveBlocks(), 0, "a failed alloc leaves nothing behind");
  // The message says what holds the memory, largest sizes first, with their counts.
  const a = h.alloc(32768), b = h.alloc(32768), c = h.alloc(1000);
  assert.throws(() => h.alloc(1 << 16), /asking for 64 KiB more; 65 KiB live in 3 blocks, the largest: 2 × 32 KiB, 1 × 1 KiB;/);
  for (const q of [a, b, c]) h.free(q);
});

test("property: random alloc/free sequences keep blocks disjoint and intact (seeded)", () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant("alloc" as const), bytes: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 70000 })) }),
    fc.record({ kind: fc.constant("free" as const), pick: fc.nat() }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
      const h = new Heap({ initialBytes: 1 << 16, maximumBytes: 1 << 24 });
      const live: { ptr: number; bytes: number; tag: number }[] = [];
      let tag = 1;
      const verify = (b: { ptr: number; bytes: number; tag: number }) => {
        const v = h.u8(b.ptr, b.bytes);
        for (let i = 0; i < v.length; i += 7) if (v[i] !== ((b.tag + i) & 255)) return false;
        return true;
      };
      for (const o of ops) {
        if (o.kind === "alloc") {
          const ptr = h.alloc(o.bytes);
          assert.is(ptr % 16, 0);
          const b = { ptr, bytes: o.bytes, tag: tag++ };
          const v = h.u8(ptr, o.bytes);
          for (let i = 0; i < v.length; i += 7) v[i] = (b.tag + i) & 255;
          live.push(b);
        } else if (live.length > 0) {
          const [b] = live.splice(o.pick % live.length, 1);
          assert.ok(verify(b), `block ${b.ptr} (${b.bytes} bytes) was overwritten by another block`);
          h.free(b.ptr);
        }
      }
      for (const b of live) assert.ok(verify(b), `block ${b.ptr} overwritten`);
      assert.is(h.liveBlocks(), live.length);
      for (const b of live) h.free(b.ptr);
      assert.is(h.liveBlocks(), 0);
      assert.is(h.liveBytes(), 0);
      assert.ok(h.highWater <= 1024, "all space returned to the bump region");
    }),
    { seed: 4242, numRuns: 150 },
  );
});

test.run();
