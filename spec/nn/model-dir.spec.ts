// The model directory: exact round trip (weights, tokenizer, config, eval mode), F16 storage,
// replacing a model atomically (foreign files kept, no temp dirs left, a failed save changes
// nothing), and a clear error for each way a directory can be broken.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { getBackend, saveSafetensors, tensor } from "../../core/index.ts";
import { greedyDecode } from "../../decoding/index.ts";
import { BpeTokenizer, lmConfig, TransformerLM, type EncoderDecoderModel } from "../../nn/index.ts";
import { loadModelDir, saveModelDir, type ModelDir } from "../../nn/models/model-dir.ts";
import { tinyModelDir } from "../decoding/tiny.ts";

const root = mkdtempSync(join(tmpdir(), "hasten-model-dir-"));
const vals = (m: ModelDir) => m.model.namedParameters().map(([n, p]) => [n, Array.from(p.dataSync())] as const);
const rewrite = (dir: string, name: string, edit: (json: Record<string, any>) => void) => {
  const obj = JSON.parse(readFileSync(join(dir, name), "utf8"));
  edit(obj);
  writeFileSync(join(dir, name), JSON.stringify(obj));
};
const copyDir = async (name: string, m: ModelDir) => {
  const dir = join(root, name);
  await saveModelDir(dir, m);
  return dir;
};

test("save then load gives the same weights, tokenizer, config and translations, in eval mode", async () => {
  const m = tinyModelDir(1);
  m.model.train();
  const dir = join(root, "a", "nested", "model"); // parents are created
  await saveModelDir(dir, m);
  assert.equal(readdirSync(dir).sort(), ["config.json", "model.safetensors", "tokenizer.json"]);
  const before = getBackend().liveBuffers();
  const loaded = loadModelDir(dir);
  assert.is(loaded.model.training, false);
  assert.equal(vals(loaded), vals(m));
  assert.equal(loaded.config, m.config);
  assert.equal(loaded.tokenizer.toJSON(), m.tokenizer.toJSON());
  const src = ["Ein Mann spielt.", "Zwei Kinder lesen ein Buch."].map((s) => m.tokenizer.encode(s));
  m.model.eval();
  assert.equal(await greedyDecode(loaded.model as EncoderDecoderModel, src), await greedyDecode(m.model, src));
  loaded.model.dispose();
  assert.is(getBackend().liveBuffers(), before, "loading and disposing leaks nothing");
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  assert.is(cfg.format, "hasten-model-dir");
  assert.is(cfg.version, 2);
  assert.is(cfg.kind, "transformer");
  m.model.dispose();
});

test("F16 storage halves the weights file and loads within half-precision error", async () => {
  const m = tinyModelDir(2);
  const d32 = join(root, "f32"), d16 = join(root, "f16");
  await saveModelDir(d32, m);
  await saveModelDir(d16, m, { floatDtype: "F16" });
  const s32 = statSync(join(d32, "model.safetensors")).size, s16 = statSync(join(d16, "model.safetensors")).size;
  assert.ok(s16 < 0.55 * s32, `sizes ${s16} vs ${s32}`);
  const loaded = loadModelDir(d16);
  const want = vals(m), got = vals(loaded);
  got.forEach(([n, g], i) => g.forEach((x, j) => {
    const w = want[i][1][j];
    if (!(Math.abs(x - w) <= 1e-3 * Math.abs(w) + 1e-7)) assert.unreachable(`${n}[${j}]: ${x} vs ${w}`);
  }));
  loaded.model.dispose();
  m.model.dispose();
});

test("replacing a model keeps foreign files and leaves no temp directories; a failed save changes nothing", async () => {
  const parent = join(root, "replace");
  const dir = join(parent, "model");
  const a = tinyModelDir(3), b = tinyModelDir(4);
  await saveModelDir(dir, a);
  writeFileSync(join(dir, "README.md"), "notes\n");
  await saveModelDir(dir, b);
  assert.equal(readdirSync(parent), ["model"]);
  assert.is(readFileSync(join(dir, "README.md"), "utf8"), "notes\n");
  const loaded = loadModelDir(dir);
  assert.equal(vals(loaded), vals(b));
  loaded.model.dispose();

  // A save that fails while reading the weights (a disposed parameter) leaves the old model.
  const weights = readFileSync(join(dir, "model.safetensors"));
  const broken = tinyModelDir(5);
  broken.model.parameters()[3].dispose();
  try {
    await saveModelDir(dir, broken);
    assert.unreachable("saving a disposed parameter should fail");
  } catch (e) {
    assert.match((e as Error).message, /used after dispose/);
  }
  assert.equal(readdirSync(parent), ["model"]);
  assert.ok(readFileSync(join(dir, "model.safetensors")).equals(weights));
  for (const m of [a, b]) m.model.dispose();
});

test("saveModelDir refuses to replace what is not a model directory, and inconsistent input", async () => {
  const m = tinyModelDir(6);
  const other = join(root, "not-a-model");
  mkdirSync(other);
  writeFileSync(join(other, "precious.txt"), "keep me");
  const rejects = async (p: Promise<unknown>, re: RegExp) => {
    try {
      await p;
    } catch (e) {
      assert.match((e as Error).message, re);
      return;
    }
    assert.unreachable(`expected ${re}`);
  };
  await rejects(saveModelDir(other, m), /refusing to replace .*not-a-model: it is not empty and holds no config.json/);
  assert.ok(existsSync(join(other, "precious.txt")));
  await rejects(saveModelDir(join(other, "precious.txt"), m), /exists and is not a directory/);
  await rejects(saveModelDir(join(root, "x1"), { ...m, config: { ...m.config, config: { ...m.config.config, ffn: 64 } } }),
    /config differs from the model's own config in ffn \(64 vs 32\)/);
  const small = BpeTokenizer.train(["ab ba"], { vocabSize: 280 });
  await rejects(saveModelDir(join(root, "x2"), { ...m, tokenizer: small }), /the tokenizer has \d+ tokens but the model expects vocabularies of 326 and 326/);
  await rejects(saveModelDir(join(root, "x3"), { ...m, config: { ...m.config, decoding: { ...m.config.decoding, beam: 0 } } }), /decoding.beam must be an integer >= 1, got 0/);
  assert.not.ok(existsSync(join(root, "x1")) || existsSync(join(root, "x2")) || existsSync(join(root, "x3")));
  m.model.dispose();
});

test("loadModelDir names what is wrong", async () => {
  const m = tinyModelDir(7);
  const base = await copyDir("good", m);
  const throws = (dir: string, re: RegExp) => assert.throws(() => loadModelDir(dir), re);
  throws(join(root, "nope"), /loadModelDir: no model directory at .*nope/);
  throws(join(base, "config.json"), /config.json is a file, expected a model directory/);
  const cases: [string, (dir: string) => void, RegExp][] = [
    ["no-weights", (d) => rmSync(join(d, "model.safetensors")), /model.safetensors is missing \(a model directory holds config.json, tokenizer.json, model.safetensors\)/],
    ["no-tokenizer", (d) => rmSync(join(d, "tokenizer.json")), /tokenizer.json is missing/],
    ["bad-json", (d) => writeFileSync(join(d, "config.json"), "{"), /config.json is not valid JSON/],
    ["format", (d) => rewrite(d, "config.json", (c) => (c.format = "other")), /expected format "hasten-model-dir", got "other"/],
    ["version", (d) => rewrite(d, "config.json", (c) => (c.version = 3)), /expected version 1 or 2, got 3/],
    ["kind", (d) => rewrite(d, "config.json", (c) => (c.kind = "rnn")), /unknown model kind "rnn"; registered kinds: transformer, lm/],
    ["translation-src", (d) => rewrite(d, "config.json", (c) => delete c.src), /a translation model needs src and tgt/],
    ["unknown-field", (d) => rewrite(d, "config.json", (c) => (c.extra = 1)), /unknown field extra/],
    ["unknown-key", (d) => rewrite(d, "config.json", (c) => (c.config.dmodel = 16)), /config: transformer config: unknown dmodel/],
    ["missing-key", (d) => rewrite(d, "config.json", (c) => delete c.config.heads), /config: transformer config: missing heads/],
    ["bad-heads", (d) => rewrite(d, "config.json", (c) => (c.config.heads = 3)), /dModel 16 must be divisible by heads 3/],
    ["vocab", (d) => rewrite(d, "config.json", (c) => (c.config.srcVocab = c.config.tgtVocab = 400)), /the tokenizer has 326 tokens but the model expects vocabularies of 400 and 400/],
    ["shapes", (d) => rewrite(d, "config.json", (c) => (c.config.ffn = 48)), /holds \d+ values but the config implies \d+ parameters/],
    ["huge", (d) => rewrite(d, "config.json", (c) => (c.config.encLayers = 100000)), /encLayers must be an integer in \[0, 1024\], got 100000/],
    ["huge-ffn", (d) => rewrite(d, "config.json", (c) => (c.config.ffn = 1 << 20)), /holds \d+ values but the config implies \d+ parameters/],
    ["decoding", (d) => rewrite(d, "config.json", (c) => (c.decoding.maxLenA = -1)), /decoding.maxLenA must be a finite number >= 0, got -1/],
    ["tokenizer", (d) => rewrite(d, "tokenizer.json", (t) => (t.format = "x")), /tokenizer.json: expected format "hasten-bpe"/],
    ["truncated", (d) => writeFileSync(join(d, "model.safetensors"), readFileSync(join(base, "model.safetensors")).subarray(0, 100)), /model.safetensors/],
  ];
  const before = getBackend().liveBuffers();
  for (const [name, breakIt, re] of cases) {
    const dir = await copyDir(name, m);
    breakIt(dir);
    throws(dir, re);
  }
  assert.is(getBackend().liveBuffers(), before, "failed loads free what they made");
  m.model.dispose();
});

test("version 1 directories (translation only, config under \"model\") still load, as kind transformer", async () => {
  const m = tinyModelDir(8);
  const dir = await copyDir("v1", m);
  rewrite(dir, "config.json", (c) => {
    c.version = 1;
    c.model = c.config;
    delete c.config;
    delete c.kind;
  });
  const loaded = loadModelDir(dir);
  assert.is(loaded.config.kind, "transformer");
  assert.equal(loaded.config.config, m.config.config);
  assert.equal(vals(loaded), vals(m));
  loaded.model.dispose();
  m.model.dispose();
});

test("a damaged config is refused before anything is allocated, and non-finite weights are refused", async () => {
  const m = tinyModelDir(9);
  const dir = await copyDir("hostile", m);
  // Within the kind's bounds but not the weights': 1,000 layers would be ~3M parameters here;
  // refused from the weight file's shapes in a few milliseconds, with no tensor made.
  rewrite(dir, "config.json", (c) => (c.config.encLayers = 1000));
  const before = getBackend().liveBuffers();
  const t0 = performance.now();
  assert.throws(() => loadModelDir(dir), /holds \d+ values but the config implies \d+ parameters/);
  assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
  assert.is(getBackend().liveBuffers(), before);
  const nanDir = await copyDir("nan", m);
  const dict = m.model.stateDict();
  const name = Object.keys(dict)[2];
  const bad = Array.from(dict[name].dataSync());
  bad[1] = NaN;
  await saveSafetensors(join(nanDir, "model.safetensors"), { ...dict, [name]: tensor(bad, { shape: dict[name].shape }) });
  assert.throws(() => loadModelDir(nanDir), new RegExp(`tensor ${name.replace(/\./g, "\\.")} holds a non-finite value at flat index 1`));
  m.model.dispose();
});

test("a causal LM round-trips as kind lm (window: null in JSON)", async () => {
  const tok = BpeTokenizer.train(["to be or not to be", "that is the question"], { vocabSize: 300 });
  const model = new TransformerLM(lmConfig({ vocab: tok.vocabSize, dModel: 16, heads: 2, ffn: 32, layers: 1, maxLen: 32 }));
  const dir = join(root, "lm");
  await saveModelDir(dir, { model, tokenizer: tok, config: { kind: "lm", config: { ...model.config }, task: "lm", decoding: { maxNewTokens: 10, temperature: 1, topP: 1 } } });
  assert.is(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).config.window, null);
  const loaded = loadModelDir(dir);
  assert.is(loaded.model.family, "causal-lm");
  assert.equal(vals(loaded), vals({ model, tokenizer: tok, config: loaded.config }));
  loaded.model.dispose();
  model.dispose();
});

test.after(() => rmSync(root, { recursive: true, force: true }));
test.run();
