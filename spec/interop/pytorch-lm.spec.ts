// The PyTorch bridge's decoder-only kinds (interop/pytorch/hasten_lm.py) compute what Hasten computes:
//   - Hasten-saved random models (kind lm: learned/untied/GELU and sinusoidal/tied/ReLU with an
//     attention window; kind glide: a two-layer draft of another width and head count than its
//     target) give, in torch, logits within 1e-4 of Hasten's forward;
//   - on one batch of Hasten's own lm and glide tasks (nn/tasks/lm.ts, glide.ts), torch's lm_loss
//     and glide_loss equal the tasks' loss() (label smoothing 0.1), and glide_train_logits equals
//     the task's pass: the target's cache through the block mask, first-block rows included
//     (which see no target position), and a pass too short for any glimpse;
//   - torch-saved random models (BF16 and F16 weights) load in Hasten with the same logits, a
//     glide directory names its target by the sha256 of the target's weights, and Hasten's glide
//     task on the torch-saved pair gives torch's loss; a Hasten glide directory loaded and saved
//     again by torch is unchanged;
//   - dropout sits in the same modules with the same rates; broken saves are refused.
// All PyTorch work happens in one child process (spec/interop/pytorch_lm_driver.py). Without a
// Python that imports torch every test is a counted skip, with the reason printed
// (HASTEN_TORCH_PYTHON=none hides torch to try that path).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Generator, noGrad, tensor, tidy } from "../../core/index.ts";
import { findTorchPython } from "../../interop/pytorch/python.ts";
import {
  checkConfig, defaultConfig, Dropout, GlideDraft, glideTask, lmConfig, lmTask, TransformerLM,
  type AnyModel, type CausalLM, type GlideDraftModel, type LMBatch, type Module, type PreparedTask,
} from "../../nn/index.ts";
import { loadModelDir, saveModelDir, type ModelDir } from "../../nn/models/model-dir.ts";
import { TINY_LINES, tinyModelDir, tinyTokenizer } from "../decoding/tiny.ts";
import { skipTest } from "../helpers/skip.ts";

const DRIVER = fileURLToPath(new URL("./pytorch_lm_driver.py", import.meta.url));
const LOGIT_TOL = 1e-4;
const LOSS_RTOL = 1e-5;
const SEQ_LEN = 16, MAX_TOKENS = 64, BLOCK = 3, LABEL_SMOOTHING = 0.1;

const py = findTorchPython();

// Every await happens before the suite is defined: run alone, uvu starts queued suites on the next tick.
if ("skip" in py) {
  const t = suite("pytorch lm bridge");
  for (const name of ["Hasten-saved logits", "lm task loss", "glide task logits and loss", "torch → Hasten", "glide resave", "dropout places", "bad saves"]) {
    skipTest(t, `pytorch lm bridge: ${name}`, py.skip);
  }
  t.run();
} else {
  const root = mkdtempSync(join(tmpdir(), "hasten-torch-lm-"));
  const tok = tinyTokenizer();
  const V = tok.vocabSize;
  const tokPath = join(root, "tokenizer.json");
  writeFileSync(tokPath, JSON.stringify(tok.toJSON()));
  // Paragraphs for the tasks' batches (blank lines between them).
  const textPath = join(root, "text.txt");
  writeFileSync(textPath, Array.from({ length: 30 }, (_, i) => `${TINY_LINES[i % 8]} ${TINY_LINES[(3 * i + 1) % 8]}`).join("\n\n") + "\n");

  // Every parameter random, biases and LayerNorms included (a fresh model has zero biases, which
  // would hide a dropped or misnamed one).
  const randomize = <M extends Module>(m: M, seed: number): M => {
    const g = new Generator(seed);
    noGrad(() => {
      for (const p of m.parameters()) {
        const noise = Float32Array.from({ length: p.size }, () => 0.3 * g.normal());
        const n = tensor(noise, { shape: p.shape, backend: p.backend });
        p.assign_(p.add(n));
        n.dispose();
      }
    });
    return m.eval();
  };
  const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");
  const dir = (name: string) => join(root, name);

  // Hasten-saved models: two LMs and a glide draft for the first.
  const lmA = randomize(new TransformerLM(lmConfig({
    vocab: V, dModel: 32, heads: 4, ffn: 48, layers: 3, dropout: 0.1, attnDropout: 0.1, activation: "gelu", maxLen: 40, positions: "learned", tieEmbeddings: false, seed: 7,
  })), 1);
  const lmB = randomize(new TransformerLM(lmConfig({
    vocab: V, dModel: 16, heads: 2, ffn: 24, layers: 2, dropout: 0, activation: "relu", maxLen: 40, positions: "sinusoidal", tieEmbeddings: true, window: 5, seed: 8,
  })), 2);
  const lmDecoding = { maxNewTokens: 50, temperature: 0.8, topP: 0.95 };
  await saveModelDir(dir("hasten-lm-a"), { model: lmA, tokenizer: tok, config: { kind: "lm", config: { ...lmA.config }, task: "lm", decoding: lmDecoding } });
  await saveModelDir(dir("hasten-lm-b"), { model: lmB, tokenizer: tok, config: { kind: "lm", config: { ...lmB.config }, task: "lm", decoding: lmDecoding } });
  const glide = randomize(new GlideDraft({
    vocab: V, dModel: 24, heads: 3, ffn: 40, layers: 2, dropout: 0, attnDropout: 0, activation: "relu", maxLen: 40, positions: "learned",
    tieEmbeddings: true, targetLayers: 3, targetHeads: 4, targetHeadDim: 8, seed: 9,
  }), 3);
  const glideDecoding = { method: "glide-cape", gamma: 3, capeBins: "8,8,8,6,6,6,4,4,2,2", blockSize: BLOCK, targetSha256: sha256(join(dir("hasten-lm-a"), "model.safetensors")) };
  await saveModelDir(dir("hasten-glide"), { model: glide, tokenizer: tok, config: { kind: "glide", config: { ...glide.config }, task: "glide", decoding: glideDecoding } });
  await saveModelDir(dir("hasten-transformer"), tinyModelDir(3));

  // One batch of each task, as the trainer gets it.
  const common = { out: dir("run"), data: textPath, seqLen: SEQ_LEN, maxTokens: MAX_TOKENS, labelSmoothing: LABEL_SMOOTHING, validFraction: 0.2 };
  const lmCfg = checkConfig({ ...defaultConfig({ task: "lm" }), ...common });
  const lmPrepared = lmTask.readData(lmCfg).prepare(tok, lmCfg) as PreparedTask<LMBatch>;
  const lmBatch = lmPrepared.train.next();
  const glideTaskFor = (target: string) => {
    const c = checkConfig({ ...defaultConfig({ task: "glide" }), ...common, target, blockSize: BLOCK, gamma: 3 });
    const data = glideTask.readData(c);
    return data.prepare(data.fixedTokenizer!, c) as PreparedTask<LMBatch>;
  };
  const glidePrepared = glideTaskFor(dir("hasten-lm-a"));
  const glideBatch = glidePrepared.train.next();
  const rows = (b: LMBatch) => {
    const [B, T] = b.shape;
    const input = Array.from({ length: B }, (_, i) => Array.from(b.input.subarray(i * T, (i + 1) * T)));
    const windows = input.map((r, i) => [...r, b.target[i * T + T - 1]]); // w[0 … T]: the input and the last target
    return { input, windows };
  };
  const lmRows = rows(lmBatch), glideRows = rows(glideBatch);
  assert.ok(glideRows.input[0].length > BLOCK, "the glide batch spans more than one block");
  const shortInput = glideRows.input.map((r) => r.slice(0, BLOCK)); // one block: no token sees the target

  // Named operations for the driver, run in insertion order.
  const ops = new Map<string, Record<string, unknown> & { op: string }>();
  const out = (name: string) => join(root, `${name}.f32`);
  for (const m of ["a", "b"]) {
    ops.set(`lm ${m} logits`, { op: "logits", dir: dir(`hasten-lm-${m}`), tokens: lmRows.input, out: out(`lm-${m}`) });
    ops.set(`lm ${m} loss`, { op: "lm_loss", dir: dir(`hasten-lm-${m}`), windows: lmRows.windows, labelSmoothing: LABEL_SMOOTHING });
  }
  const hastenPair = { draft: dir("hasten-glide"), target: dir("hasten-lm-a") };
  ops.set("glide logits", { op: "glide_logits", ...hastenPair, tokens: glideRows.input, blockSize: BLOCK, out: out("glide") });
  ops.set("glide logits B=1", { op: "glide_logits", ...hastenPair, tokens: glideRows.input, blockSize: 1, out: out("glide-1") });
  ops.set("glide logits short", { op: "glide_logits", ...hastenPair, tokens: shortInput, blockSize: BLOCK, out: out("glide-short") });
  ops.set("glide loss", { op: "glide_loss", ...hastenPair, windows: glideRows.windows, blockSize: BLOCK, labelSmoothing: LABEL_SMOOTHING });
  for (const m of ["hasten-lm-a", "hasten-glide"]) ops.set(`load ${m}`, { op: "load", dir: dir(m) });
  ops.set("resave glide", { op: "resave", dir: dir("hasten-glide"), out: dir("resaved-glide") });
  // Torch-saved: an LM with a window (BF16) and a one-layer draft for it (F16).
  ops.set("torch lm save", {
    op: "save_random_lm", seed: 11, dtype: "BF16", tokenizer: tokPath, out: dir("torch-lm"),
    config: { vocab: V, dModel: 16, heads: 2, ffn: 24, layers: 2, dropout: 0.1, activation: "relu", maxLen: 40, positions: "sinusoidal", tieEmbeddings: true, window: 3, seed: 1 },
  });
  ops.set("torch glide save", {
    op: "save_random_glide", seed: 12, dtype: "F16", target: dir("torch-lm"), out: dir("torch-glide"), decoding: { blockSize: BLOCK, gamma: 3 },
    config: { dModel: 20, heads: 4, ffn: 24, layers: 1, dropout: 0, positions: "sinusoidal", tieEmbeddings: false, activation: "gelu" },
  });
  const torchPair = { draft: dir("torch-glide"), target: dir("torch-lm") };
  ops.set("torch lm logits", { op: "logits", dir: dir("torch-lm"), tokens: lmRows.input, out: out("torch-lm") });
  ops.set("torch lm loss", { op: "lm_loss", dir: dir("torch-lm"), windows: lmRows.windows, labelSmoothing: LABEL_SMOOTHING });
  ops.set("torch glide logits", { op: "glide_logits", ...torchPair, tokens: glideRows.input, blockSize: BLOCK, out: out("torch-glide") });
  ops.set("torch glide loss", { op: "glide_loss", ...torchPair, windows: glideRows.windows, blockSize: BLOCK, labelSmoothing: LABEL_SMOOTHING });
  // Refusals.
  const BAD: [string, Record<string, unknown> & { op: string }, RegExp][] = [
    ["transformer dir", { op: "load", dir: dir("hasten-transformer") }, /model kind 'transformer' is not one hasten_lm loads .*hasten_torch\.load_model_dir/],
    ["glide without target", { op: "save_glide_bad", target: dir("hasten-lm-a"), tokenizer: tokPath, out: dir("bad-1") }, /a glide draft names its target: pass target=/],
    ["glide, other target", { op: "save_glide_bad", target: dir("hasten-lm-a"), saveTarget: dir("hasten-lm-b"), out: dir("bad-2") }, /reads a target of 3 layers x 4 heads of width 8 .* has 2 x 2 of width 8/],
    ["glide_train_logits, other target", { op: "glide_mismatch", draft: dir("hasten-glide"), target: dir("hasten-lm-b"), tokens: shortInput }, /reads a target of 3 layers x 4 heads/],
  ];
  for (const [name, op] of BAD) ops.set(`bad ${name}`, op);

  const requestPath = join(root, "request.json");
  writeFileSync(requestPath, JSON.stringify({ ops: [...ops.values()] }));
  const run = spawnSync(py.python, [DRIVER, requestPath], { encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`pytorch_lm_driver.py failed (${run.error?.message ?? `exit ${run.status}`}):\n${run.stderr}`);
  const list: Record<string, any>[] = JSON.parse(run.stdout.trim().split("\n").pop()!).results;
  const results = new Map([...ops.keys()].map((k, i) => [k, list[i]]));
  const result = (name: string) => {
    const r = results.get(name)!;
    if (r.error) throw new Error(`pytorch_lm_driver: "${name}" failed: ${r.error}\n${r.trace}`);
    return r;
  };
  const f32 = (name: string) => {
    const b = readFileSync(ops.get(name)!.out as string);
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  };
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    assert.is(a.length, b.length, "element count");
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    return d;
  };
  const ids = (r: number[][]) => tensor(r, { dtype: "int32" });
  const lmLogits = (m: CausalLM, input: number[][]) => noGrad(() => tidy(() => m.forward(ids(input)).dataSync()));
  // The glide task's pass (nn/tasks/glide.ts run()): the target's cache, then the draft through the block mask.
  const glideLogits = (draft: GlideDraftModel, target: CausalLM, input: number[][], blockSize: number) => noGrad(() => tidy(() => {
    const glimpse = target.createCache();
    try {
      target.forward(ids(input), { cache: glimpse, output: "cache" });
      return draft.forward(ids(input), { glimpse, blockSize }).dataSync();
    } finally {
      glimpse.dispose();
    }
  }));
  const taskLoss = (p: PreparedTask<LMBatch>, m: AnyModel, b: LMBatch) => noGrad(() => tidy(() => p.loss(m, b).item()));
  const close = (what: string, hasten: number, torch: number) =>
    assert.ok(Math.abs(hasten - torch) <= LOSS_RTOL * Math.abs(hasten), `${what}: Hasten ${hasten} vs torch ${torch}`);
  const loaded = (name: string) => loadModelDir(dir(name));

  const t = suite("pytorch lm bridge");
  t.after(() => {
    for (const m of [lmA, lmB, glide]) m.dispose();
    lmPrepared.dispose?.();
    glidePrepared.dispose?.();
    rmSync(root, { recursive: true, force: true });
  });

  t(`Hasten-saved lm models: torch logits within ${LOGIT_TOL} of Hasten's forward (torch ${py.torch})`, () => {
    for (const [m, model] of [["a", lmA], ["b", lmB]] as const) {
      assert.equal(result(`lm ${m} logits`).shape, [lmRows.input.length, SEQ_LEN, V]);
      const d = maxDiff(f32(`lm ${m} logits`), lmLogits(model, lmRows.input));
      assert.ok(d <= LOGIT_TOL, `lm ${m}: largest logit difference ${d}`);
    }
  });

  t("lm_loss equals the lm task's loss on one of its batches (label smoothing 0.1)", () => {
    for (const [m, model] of [["a", lmA], ["b", lmB]] as const) close(`lm ${m}`, taskLoss(lmPrepared, model, lmBatch), result(`lm ${m} loss`).loss);
  });

  t("glide_train_logits and glide_loss equal the glide task's pass and loss on one of its batches", () => {
    const target = lmA;
    for (const [name, input, B] of [["glide logits", glideRows.input, BLOCK], ["glide logits B=1", glideRows.input, 1], ["glide logits short", shortInput, BLOCK]] as const) {
      const d = maxDiff(f32(name), glideLogits(glide, target, input as number[][], B));
      assert.ok(d <= LOGIT_TOL, `${name}: largest logit difference ${d}`);
    }
    // The draft in train mode, as the trainer runs it (dropout 0): the task's loss.
    glide.train();
    const hasten = taskLoss(glidePrepared, glide, glideBatch);
    glide.eval();
    const r = result("glide loss");
    close("glide loss", hasten, r.loss);
    assert.ok(r.targetFrozen, "the target takes no gradient");
    assert.is(r.draftParamsWithGrad, r.draftParams, "every draft parameter gets a gradient");
  });

  t("torch-saved lm and glide directories load in Hasten with the same logits and task losses", () => {
    const tl = loaded("torch-lm") as ModelDir<TransformerLM>, tg = loaded("torch-glide") as ModelDir<GlideDraft>;
    const p = glideTaskFor(dir("torch-lm"));
    try {
      assert.equal(tl.model.namedParameters().map(([n]) => n).sort(), result("torch lm save").names);
      assert.equal(tg.model.namedParameters().map(([n]) => n).sort(), result("torch glide save").names);
      assert.is(tl.model.config.window, 3);
      assert.is(tg.config.decoding.targetSha256, sha256(join(dir("torch-lm"), "model.safetensors")), "the draft names its target by its weights' sha256");
      assert.is(tg.config.decoding.blockSize, BLOCK);
      assert.equal(tg.tokenizer.toJSON(), tl.tokenizer.toJSON(), "the draft has its target's tokenizer");
      let d = maxDiff(f32("torch lm logits"), lmLogits(tl.model, lmRows.input));
      assert.ok(d <= LOGIT_TOL, `torch lm: largest logit difference ${d}`);
      d = maxDiff(f32("torch glide logits"), glideLogits(tg.model, tl.model, glideRows.input, BLOCK));
      assert.ok(d <= LOGIT_TOL, `torch glide: largest logit difference ${d}`);
      close("torch lm loss", taskLoss(lmPrepared, tl.model, lmBatch), result("torch lm loss").loss);
      // Hasten's glide task on the torch-saved pair: the same text, so the same batch.
      const b = p.train.next();
      assert.equal(rows(b).windows, glideRows.windows);
      close("torch glide loss", taskLoss(p, tg.model, b), result("torch glide loss").loss);
    } finally {
      tl.model.dispose();
      tg.model.dispose();
      p.dispose?.();
    }
  });

  t("a Hasten glide directory loaded and saved again by torch is unchanged", async () => {
    result("resave glide");
    const a = loaded("hasten-glide"), b = loaded("resaved-glide");
    try {
      assert.equal(b.config, a.config);
      const sa = a.model.stateDict(), sb = b.model.stateDict();
      for (const k of Object.keys(sa)) assert.equal(Array.from(await sb[k].data()), Array.from(await sa[k].data()), k);
    } finally {
      a.model.dispose();
      b.model.dispose();
    }
    assert.equal(result("load hasten-glide").decoding, glideDecoding);
  });

  t("dropout sits in the same modules with the same rates", () => {
    for (const [name, m] of [["hasten-lm-a", lmA], ["hasten-glide", glide]] as const) {
      const hasten = [...m.namedModules()].filter(([, x]) => x instanceof Dropout).map(([n, x]) => [n, (x as Dropout).p] as [string, number]).sort((x, y) => (x[0] < y[0] ? -1 : 1));
      assert.equal(result(`load ${name}`).dropouts, hasten, name);
      assert.ok(hasten.length > 0);
    }
  });

  t("torch refuses a glide save that does not name a fitting target, and a mismatched pair", () => {
    for (const [name, , want] of BAD) {
      const r = results.get(`bad ${name}`)!;
      assert.ok(r.error, `${name}: expected an error, got ${JSON.stringify(r)}`);
      assert.match(r.error, want, name);
    }
  });
  t.run();
}
