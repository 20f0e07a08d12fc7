// The PyTorch bridge's Markov Transformer (MarkovTransformer in interop/pytorch/hasten_torch.py)
// computes what nn/models/markov.ts computes, both variants, orders 1, 2, 3 and one at least as
// long as every target:
//   - Hasten-saved random models (tied and untied, sinusoidal and learned positions) load in torch
//     with teacher-forced logits within 1e-4 of Hasten's forward, the same training loss
//     (F.cross_entropy, ignore_index=0, label_smoothing=0.1), and token-identical greedy and
//     beam outputs, decoding past maxLen where the positions allow it (sinusoidal: no limit);
//   - torch-saved random models (F32, F16, BF16) load in Hasten (kind "markov", parameter names,
//     the training record) with the same logits and greedy tokens;
//   - in training mode (dropout on, the same masks twice) the strict variant's logits past the
//     window do not move when the first target token changes; the window variant's do;
//   - build_model and load_model_dir refuse unknown kinds and bad Markov configs by name.
// The PyTorch work runs in spec/interop/pytorch_driver.py; without a Python that imports torch
// every test is a counted skip with its reason (HASTEN_TORCH_PYTHON=none hides torch).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, Generator, noGrad, randn, tensor, tidy } from "../../core/index.ts";
import { beamSearch, greedyDecode } from "../../decoding/index.ts";
import { findTorchPython } from "../../interop/pytorch/python.ts";
import { markovConfig, MarkovTransformer, type MarkovConfig } from "../../nn/index.ts";
import { loadModelDir, saveModelDir, type ModelDir } from "../../nn/models/model-dir.ts";
import { tinyTokenizer } from "../decoding/tiny.ts";
import { skipTest } from "../helpers/skip.ts";

const DRIVER = fileURLToPath(new URL("./pytorch_driver.py", import.meta.url));
const LOGIT_TOL = 1e-4;
const SCORE_TOL = 1e-3;
const MAX_LEN = 16;
const LONGEST_TARGET = 11; // bos + up to 10 tokens
const K_LONG = 12; // ≥ every target length: the band mask hides nothing in the parallel pass
const DECODE = { maxLenA: 1, maxLenB: 20, banned: [3, 4] }; // up to 32 positions: past maxLen where positions allow

// Hasten-saved models: both variants × orders, across the ways the model can be configured.
const HASTEN: { name: string; config: Partial<MarkovConfig> }[] = [
  { name: "strict-k1", config: { order: 1, variant: "strict" } },
  { name: "strict-k2-learned", config: { order: 2, variant: "strict", positions: "learned" } },
  { name: "strict-k3-tied-gelu", config: { order: 3, variant: "strict", tieEmbeddings: true, activation: "gelu" } },
  { name: `strict-k${K_LONG}`, config: { order: K_LONG, variant: "strict" } },
  { name: "window-k1-learned", config: { order: 1, variant: "window", positions: "learned" } },
  { name: "window-k2", config: { order: 2, variant: "window", tieOutput: true } },
  { name: "window-k3-3layers", config: { order: 3, variant: "window", decLayers: 3 } },
  { name: `window-k${K_LONG}`, config: { order: K_LONG, variant: "window" } },
];
// Torch-saved models, one per float dtype and then some.
const TORCH = [
  { name: "t-strict-k1-learned-gelu-f32", dtype: "F32", config: { order: 1, variant: "strict", tieEmbeddings: false, tieOutput: false, positions: "learned", activation: "gelu" } },
  { name: "t-window-k2-tied-bf16", dtype: "BF16", config: { order: 2, variant: "window", tieEmbeddings: true } },
  { name: "t-strict-k3-tgt-tied-f16", dtype: "F16", config: { order: 3, variant: "strict", tieEmbeddings: false, tieOutput: true } },
  { name: `t-strict-k${K_LONG}-f32`, dtype: "F32", config: { order: K_LONG, variant: "strict", tieEmbeddings: false, tieOutput: false } },
  { name: `t-window-k${K_LONG}-f32`, dtype: "F32", config: { order: K_LONG, variant: "window", tieEmbeddings: false, tieOutput: false } },
] as const;
const TRAINING = { note: "random weights, for tests", steps: 0 };

const py = findTorchPython();

// Every await happens before the suite is defined: run alone, uvu starts queued suites on the next tick.
if ("skip" in py) {
  const t = suite("pytorch bridge: markov");
  for (const name of ["Hasten → torch logits and loss", "Hasten → torch greedy and beam", "torch → Hasten round trip", "strict window in training mode", "refusals"]) {
    skipTest(t, `pytorch bridge markov: ${name}`, py.skip);
  }
  t.run();
} else {
  const root = mkdtempSync(join(tmpdir(), "hasten-torch-markov-"));
  const tok = tinyTokenizer();
  const V = tok.vocabSize;
  const tokPath = join(root, "tokenizer.json");
  writeFileSync(tokPath, JSON.stringify(tok.toJSON()));

  // Seeded random sentences over the tokenizer's non-special ids.
  const g = new Generator(2024);
  const randomIds = (rows: number, maxLen: number) => Array.from({ length: rows }, () => Array.from({ length: g.randint(1, maxLen + 1) }, () => g.randint(5, V)));
  const src = randomIds(6, 12);
  const tgt = randomIds(6, LONGEST_TARGET - 1).map((r) => [tok.bosId, ...r]);
  const tgtOut = tgt.map((r) => [...r.slice(1), tok.eosId]);

  // A random Hasten model: weights scaled up (peaked, source-dependent outputs) and LayerNorm
  // parameters moved off 1 and 0, so a swapped name cannot hide behind equal values.
  const hastenModel = (seed: number, extra: Partial<MarkovConfig>) => {
    const m = new MarkovTransformer(markovConfig({
      srcVocab: V, tgtVocab: V, dModel: 16, heads: 2, ffn: 32, encLayers: 1, decLayers: 2, maxLen: MAX_LEN,
      dropout: 0.1, tieEmbeddings: false, tieOutput: false, seed, ...extra,
    }));
    const gen = new Generator(seed);
    noGrad(() => {
      for (const p of m.parameters()) p.assign_(tidy(() => (p.ndim === 2 ? p.mul(2) : p.add(randn(p.shape, { generator: gen, std: 0.2 })))));
    });
    return m.eval();
  };
  const saved = new Map<string, MarkovTransformer>();
  for (const [i, h] of HASTEN.entries()) {
    const model = hastenModel(300 + i, h.config);
    saved.set(h.name, model);
    await saveModelDir(join(root, h.name), {
      model, tokenizer: tok,
      config: { kind: "markov", config: { ...model.config }, task: "translation", src: "de", tgt: "en", decoding: { maxLenA: 1, maxLenB: 3, beam: 3, lengthPenalty: 1 }, training: TRAINING },
    });
  }

  // Directories torch must refuse, made from a Hasten-saved one.
  const bad = (name: string) => join(root, "bad", name);
  const editConfig = (name: string, edit: (c: Record<string, any>) => void) => {
    const dir = bad(name);
    mkdirSync(dir, { recursive: true });
    for (const f of ["config.json", "tokenizer.json", "model.safetensors"]) writeFileSync(join(dir, f), readFileSync(join(root, HASTEN[0].name, f)));
    const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    edit(c);
    writeFileSync(join(dir, "config.json"), JSON.stringify(c));
  };
  editConfig("variant", (c) => (c.config.variant = "diagonal"));
  editConfig("order-0", (c) => (c.config.order = 0));
  editConfig("no-order", (c) => delete c.config.order);
  editConfig("kind-rnn", (c) => (c.kind = "rnn"));
  const BAD: [string, RegExp][] = [
    ["variant", /variant must be "strict" or "window", got 'diagonal'/],
    ["order-0", /order must be an integer in \[1, 1048576\], got 0/],
    ["no-order", /model config: missing order/],
    ["kind-rnn", /model kind 'rnn' is not supported by hasten_torch \(supported: .*markov/],
  ];

  // Named operations for the driver, run in insertion order.
  const ops = new Map<string, Record<string, unknown> & { op: string }>();
  const out = (name: string) => join(root, `${name}.f32`);
  for (const h of HASTEN) {
    const dir = join(root, h.name);
    ops.set(`${h.name} logits`, { op: "logits", dir, src, tgt, out: out(h.name) });
    ops.set(`${h.name} loss`, { op: "loss", dir, src, tgt, tgtOut, labelSmoothing: 0.1 });
    ops.set(`${h.name} greedy`, { op: "greedy", dir, sources: src, ...DECODE });
    ops.set(`${h.name} beam`, { op: "beam", dir, sources: src, beam: 3, lengthPenalty: 1, ...DECODE });
  }
  const small = { srcVocab: V, tgtVocab: V, dModel: 32, heads: 4, ffn: 64, encLayers: 2, decLayers: 2, maxLen: MAX_LEN, dropout: 0.1, seed: 0 };
  for (const [i, r] of TORCH.entries()) {
    const dir = join(root, r.name);
    ops.set(`${r.name} save`, { op: "save_random", kind: "markov", seed: 200 + i, config: { ...small, ...r.config }, out: dir, tokenizer: tokPath, version: 2, dtype: r.dtype, training: TRAINING });
    ops.set(`${r.name} load`, { op: "load", dir });
    ops.set(`${r.name} logits`, { op: "logits", dir, src, tgt, out: out(r.name) });
    ops.set(`${r.name} greedy`, { op: "greedy", dir, sources: src, ...DECODE });
  }
  const trainCfg = { ...small, dropout: 0.3, attnDropout: 0.2, order: 2 };
  const trainSrc = src.map((r) => r.slice(0, 6)), trainTgt = tgt.map((r) => [...r, 7, 8, 9].slice(0, 6));
  ops.set("train strict", { op: "markov_train_window", seed: 5, config: { ...trainCfg, variant: "strict" }, src: trainSrc, tgt: trainTgt });
  ops.set("train window", { op: "markov_train_window", seed: 5, config: { ...trainCfg, variant: "window" }, src: trainSrc, tgt: trainTgt });
  ops.set("build rnn", { op: "build", kind: "rnn", config: {} });
  ops.set("build markov", { op: "build", kind: "markov", config: saved.get(HASTEN[0].name)!.config });
  ops.set("build markov as transformer", { op: "build", kind: "transformer", config: saved.get(HASTEN[0].name)!.config });
  for (const [name] of BAD) ops.set(`bad ${name}`, { op: "load", dir: bad(name) });

  const requestPath = join(root, "request.json");
  writeFileSync(requestPath, JSON.stringify({ ops: [...ops.values()] }));
  const run = spawnSync(py.python, [DRIVER, requestPath], { encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`pytorch_driver.py failed (${run.error?.message ?? `exit ${run.status}`}):\n${run.stderr}`);
  const list: Record<string, any>[] = JSON.parse(run.stdout.trim().split("\n").pop()!).results;
  const results = new Map([...ops.keys()].map((k, i) => [k, list[i]]));
  const result = (name: string) => {
    const r = results.get(name)!;
    if (r.error) throw new Error(`pytorch_driver: "${name}" failed: ${r.error}\n${r.trace}`);
    return r;
  };
  const f32 = (path: string) => {
    const b = readFileSync(path);
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  };
  const padded = (rows: number[][]) => {
    const w = Math.max(...rows.map((r) => r.length));
    return tensor(rows.map((r) => [...r, ...new Array(w - r.length).fill(0)]), { dtype: "int32" });
  };
  const hastenLogits = async (m: MarkovTransformer) => {
    const y = noGrad(() => tidy(() => m.forward(padded(src), padded(tgt))));
    try {
      return await y.data();
    } finally {
      y.dispose();
    }
  };
  const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    assert.is(a.length, b.length, "element count");
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    return d;
  };
  const T = Math.max(...tgt.map((r) => r.length));

  const t = suite("pytorch bridge: markov");
  t.after(() => {
    for (const m of saved.values()) m.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  t(`Hasten-saved Markov models: torch logits within ${LOGIT_TOL} and the same training loss (torch ${py.torch})`, async () => {
    assert.ok(T <= K_LONG, `the longest target (${T}) fits the long order`);
    for (const h of HASTEN) {
      const m = saved.get(h.name)!;
      assert.equal(result(`${h.name} logits`).shape, [src.length, T, V], `${h.name}: logits shape`);
      const d = maxDiff(f32(out(h.name)), await hastenLogits(m));
      assert.ok(d <= LOGIT_TOL, `${h.name}: largest logit difference ${d} (tolerance ${LOGIT_TOL})`);
      const loss = noGrad(() => tidy(() => crossEntropy(m.forward(padded(src), padded(tgt)), padded(tgtOut), { ignoreIndex: 0, labelSmoothing: 0.1 }).item()));
      const torchLoss = result(`${h.name} loss`).loss as number;
      assert.ok(Math.abs(loss - torchLoss) <= 1e-5 * Math.abs(loss), `${h.name}: loss ${loss} vs torch ${torchLoss}`);
    }
  });

  t("Hasten-saved Markov models: torch greedy and beam-3 tokens equal Hasten's, past maxLen where positions allow", async () => {
    let longest = 0;
    for (const h of HASTEN) {
      const m = saved.get(h.name)!;
      const gr = result(`${h.name} greedy`), br = result(`${h.name} beam`);
      const hg = await greedyDecode(m, src, DECODE);
      hg.forEach((x, i) => {
        assert.equal(gr.tokens[i], x.tokens, `${h.name}: greedy sentence ${i}`);
        assert.ok(Math.abs(gr.scores[i] - x.score) <= SCORE_TOL, `${h.name}: greedy sentence ${i} score ${gr.scores[i]} vs ${x.score}`);
        if (m.config.positions === "learned") assert.ok(x.tokens.length <= MAX_LEN - 1, `${h.name}: learned positions stop at maxLen`);
        else longest = Math.max(longest, x.tokens.length);
      });
      // Random weights must still give source-dependent outputs, or equal tokens prove little.
      assert.ok(new Set(hg.map((x) => x.tokens.join())).size > 1, `${h.name}: every source decoded alike`);
      const hb = await beamSearch(m, src, { beam: 3, lengthPenalty: 1, ...DECODE });
      hb.forEach((x, i) => {
        assert.equal(br.tokens[i], x.tokens, `${h.name}: beam sentence ${i}`);
        assert.ok(Math.abs(br.scores[i] - x.score) <= SCORE_TOL, `${h.name}: beam sentence ${i} score ${br.scores[i]} vs ${x.score}`);
      });
    }
    assert.ok(longest >= MAX_LEN, `some sinusoidal greedy output runs past maxLen (longest ${longest} tokens)`);
  });

  t("torch-saved Markov models load in Hasten with the same kind, names, logits and greedy tokens", async () => {
    for (const r of TORCH) {
      const [savedR, loaded, logits, greedy] = ["save", "load", "logits", "greedy"].map((k) => result(`${r.name} ${k}`));
      assert.equal([loaded.version, loaded.kind, loaded.class], [2, "markov", "MarkovTransformer"], `${r.name}: torch reads its own directory back`);
      const m = loadModelDir(join(root, r.name)) as ModelDir<MarkovTransformer>;
      try {
        assert.ok(m.model instanceof MarkovTransformer, `${r.name}: Hasten builds a MarkovTransformer`);
        assert.is(m.config.kind, "markov");
        assert.equal(m.config.training, TRAINING, `${r.name}: the training record passes through`);
        assert.equal([m.model.config.order, m.model.config.variant], [r.config.order, r.config.variant], `${r.name}: order and variant`);
        assert.equal(m.model.namedParameters().map(([n]) => n).sort(), savedR.names, `${r.name}: parameter names`);
        assert.equal(logits.shape, [src.length, T, V], `${r.name}: logits shape`);
        const d = maxDiff(f32(out(r.name)), await hastenLogits(m.model));
        assert.ok(d <= LOGIT_TOL, `${r.name}: largest logit difference ${d}`);
        const hg = await greedyDecode(m.model, src, DECODE);
        assert.equal(greedy.tokens, hg.map((h) => h.tokens), `${r.name}: greedy tokens`);
        assert.ok(new Set(hg.map((h) => h.tokens.join())).size > 1, `${r.name}: every source decoded alike`);
      } finally {
        m.model.dispose();
      }
    }
  });

  t("training mode: strict logits past the window ignore older tokens under dropout; window logits do not", () => {
    const s = result("train strict"), w = result("train window");
    assert.ok(s.otherMasks > 0 && w.otherMasks > 0, "dropout is on in training mode");
    assert.ok(s.insideWindow > 0, "strict: positions inside the window see the changed token");
    assert.is(s.pastWindow, 0, "strict: positions past the window are bit-identical");
    assert.ok(w.pastWindow > 0, "window: the changed token leaks past the window through depth");
  });

  t("build_model and load_model_dir: kinds by name, bad Markov configs refused with the reason", () => {
    assert.equal([result("build markov").kind, result("build markov").class], ["markov", "MarkovTransformer"]);
    assert.match(results.get("build rnn")!.error, /build_model: model kind 'rnn' is not supported by hasten_torch \(supported: transformer, markov/);
    assert.match(results.get("build markov as transformer")!.error, /unknown order, variant/);
    for (const [name, want] of BAD) {
      const r = results.get(`bad ${name}`)!;
      assert.ok(r.error, `${name}: expected an error, got ${JSON.stringify(r)}`);
      assert.match(r.error, want, name);
    }
  });
  t.run();
}
