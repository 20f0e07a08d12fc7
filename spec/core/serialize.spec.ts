// Tensor-level checkpoints: {name: Tensor} ↔ safetensors file.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Generator, loadSafetensors, randn, saveSafetensors, tensor } from "../../core/index.ts";
import { readSafetensors } from "../../core/safetensors.ts";
import { fromRaw } from "../../core/serialize.ts";

const t = suite("serialize");
const dir = mkdtempSync(join(tmpdir(), "hasten-ser-"));

t("save/load round trip is bit-exact for float32 and int32", async () => {
  const g = new Generator(9);
  const rec = { w: randn([3, 4], { generator: g }), ids: tensor([1, -2, 3], { dtype: "int32" }), s: tensor(2.5) };
  const p = join(dir, "a.safetensors");
  await saveSafetensors(p, rec);
  const back = loadSafetensors(p);
  assert.equal(Object.keys(back).sort(), ["ids", "s", "w"]);
  assert.equal(back.w.shape, [3, 4]);
  assert.equal(Array.from(back.w.dataSync()), Array.from(rec.w.dataSync()));
  assert.is(back.ids.dtype, "int32");
  assert.equal(Array.from(back.ids.dataSync()), [1, -2, 3]);
  assert.equal(back.s.shape, []);
});

t("F16 storage halves the size and rounds to half precision", async () => {
  const w = tensor([1, 0.1, 65504, -2.5e-8]);
  const p = join(dir, "h.safetensors");
  await saveSafetensors(p, { w }, { floatDtype: "F16" });
  const v = loadSafetensors(p).w.dataSync();
  assert.is(v[0], 1);
  assert.ok(Math.abs(v[1] - 0.1) < 1e-4);
  assert.is(v[2], 65504);
});

t("a PyTorch-made file loads with PyTorch's values (and an I64 beyond int32 is refused by name)", () => {
  const fixture = new URL("../fixtures/torch-small.safetensors", import.meta.url).pathname;
  const expected = JSON.parse(readFileSync(new URL("../fixtures/torch-small.expected.json", import.meta.url), "utf8"));
  assert.throws(() => loadSafetensors(fixture), /'big'/);
  const { tensors } = readSafetensors(fixture);
  let checked = 0;
  for (const [name, want] of Object.entries(expected.tensors) as [string, { shape: number[]; values: number[] }][]) {
    if (name === "big") continue;
    const t = fromRaw(tensors[name], name);
    assert.equal(t.shape, want.shape, name);
    const got = Array.from(t.dataSync());
    want.values.forEach((v, i) => assert.ok(Math.abs(got[i] - v) <= 1e-3 * (1 + Math.abs(v)), `${name}[${i}]: ${got[i]} vs ${v}`));
    checked++;
  }
  assert.ok(checked >= 2);
});

t("a failed save leaves the old checkpoint intact; a corrupt file is refused", async () => {
  const p = join(dir, "c.safetensors");
  await saveSafetensors(p, { w: tensor([1, 2]) });
  const before = readFileSync(p);
  let err: unknown;
  try { await saveSafetensors(p, { w: tensor([3]), bad: {} as never }); } catch (e) { err = e; }
  assert.match(String(err), /not a Tensor/);
  assert.equal(readFileSync(p), before);
  writeFileSync(p, before.subarray(0, before.length - 3));
  assert.throws(() => loadSafetensors(p), /safetensors/);
});

t("a file written by the safetensors library itself loads with its values", () => {
  const fixture = new URL("../fixtures/lib-small.safetensors", import.meta.url).pathname;
  const expected = JSON.parse(readFileSync(new URL("../fixtures/lib-small.expected.json", import.meta.url), "utf8"));
  const loaded = loadSafetensors(fixture);
  assert.equal(Object.keys(loaded).sort(), Object.keys(expected).sort());
  for (const [name, want] of Object.entries(expected) as [string, { shape: number[]; values: number[] }][]) {
    assert.equal(loaded[name].shape, want.shape, name);
    const got = Array.from(loaded[name].dataSync());
    want.values.forEach((v, i) => assert.ok(Math.abs(got[i] - v) <= 1e-6 * (1 + Math.abs(v)), `${name}[${i}]: ${got[i]} vs ${v}`));
  }
  assert.is(loaded.ids.dtype, "int32");
  assert.is(loaded.half.dtype, "float32");
});

t("on synchronous backends the file is written before saveSafetensors returns", () => {
  const p = join(dir, "sync.safetensors");
  void saveSafetensors(p, { w: tensor([1, 2, 3]) });
  assert.equal(Array.from(loadSafetensors(p).w.dataSync()), [1, 2, 3]);
});

t.run();
