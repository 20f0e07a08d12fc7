// The PyTorch bridge (interop/pytorch/hasten_torch.py) computes what Hasten computes:
//   - the sinusoid table, entry for entry (the interleaved layout);
//   - models/ar-de-en loaded in torch: teacher-forced logits within 1e-4 of Hasten's, Hasten's
//     training loss equal to F.cross_entropy(ignore_index=0, label_smoothing=0.1), greedy and
//     beam-5 outputs token-identical on built-in sentences;
//   - the other way: random torch models saved as model directories (F32, F16, BF16; tied and
//     untied; sinusoidal and learned positions; ReLU and GELU) load in Hasten with the same logits
//     and greedy tokens; a version-2 directory written by torch reads back in torch unchanged;
//   - broken directories are refused with a message that names the problem.
// All PyTorch work happens in one child process (spec/interop/pytorch_driver.py). Without a
// Python that imports torch every test is a counted skip, with the reason printed
// (HASTEN_TORCH_PYTHON=none hides torch to try that path).
//
// Torch writes version-2 directories ({kind: "transformer", config}); Hasten reads both versions.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, noGrad, tensor, tidy } from "../../core/index.ts";
import { beamSearch, greedyDecode } from "../../decoding/index.ts";
import { findTorchPython } from "../../interop/pytorch/python.ts";
import { SinusoidalPositions, type Transformer } from "../../nn/index.ts";
import { loadModelDir, saveModelDir, type ModelDir } from "../../nn/models/model-dir.ts";
import { tinyModelDir, tinyTokenizer } from "../decoding/tiny.ts";
import { skipTest } from "../helpers/skip.ts";

const SHIPPED = fileURLToPath(new URL("../../models/ar-de-en", import.meta.url));
const DRIVER = fileURLToPath(new URL("./pytorch_driver.py", import.meta.url));

// Multi30k-style captions written for this test (German, with an English reference each).
const SENTENCES: [string, string][] = [
  ["Zwei Hunde spielen im Schnee.", "Two dogs are playing in the snow."],
  ["Ein Mann fährt mit dem Fahrrad eine Straße entlang.", "A man rides a bicycle down a street."],
  ["Eine Frau in einem roten Kleid singt auf einer Bühne.", "A woman in a red dress sings on a stage."],
  ["Kinder spielen Fußball auf einem grünen Feld.", "Children play soccer on a green field."],
  ["Ein kleines Mädchen isst ein Eis.", "A little girl is eating an ice cream."],
  ["Drei Männer arbeiten an einem Gebäude.", "Three men are working on a building."],
  ["Ein Junge springt in einen See.", "A boy jumps into a lake."],
  ["Eine Gruppe von Menschen wartet an einer Bushaltestelle.", "A group of people wait at a bus stop."],
  ["Ein schwarzer Hund rennt über den Strand.", "A black dog runs across the beach."],
  ["Zwei Frauen sitzen auf einer Bank und lachen.", "Two women sit on a bench and laugh."],
  ["Ein Koch bereitet in einer Küche Essen zu.", "A cook prepares food in a kitchen."],
  ["Ein Mann mit einem Hut spielt Gitarre.", "A man with a hat plays guitar."],
  ["Die Menschen gehen eine belebte Straße entlang.", "People walk along a busy street."],
  ["Ein Baby schläft in den Armen seiner Mutter.", "A baby sleeps in its mother's arms."],
  ["Ein Radfahrer fährt einen Berg hinauf.", "A cyclist rides up a mountain."],
  ["Eine Frau liest ein Buch in einem Park.", "A woman reads a book in a park."],
  ["Zwei Jungen schwimmen in einem Pool.", "Two boys swim in a pool."],
  ["Ein älterer Mann sitzt vor einem Haus.", "An older man sits in front of a house."],
  ["Ein Hund fängt einen Ball in der Luft.", "A dog catches a ball in the air."],
  ["Musiker spielen auf der Straße für eine Menschenmenge.", "Musicians play on the street for a crowd."],
];
// Texts for decode_ids: characters outside the alphabet go through byte fallback.
const DECODE_TEXTS = [...SENTENCES.slice(0, 3).map(([de]) => de), "Ein Café für 3½ € 😀 — ąčę ▁x", "  Leerzeichen  "];
const TEACHER_FORCED = 5; // sentences whose logits are compared (20 × 8,000 × T floats is more than needed)
const BEAM_SENTENCES = 6;
const LOGIT_TOL = 1e-4;
const SCORE_TOL = 1e-3; // a hypothesis score sums ~20 float32 log-probabilities

// The random torch models: every way the model can be configured, and each float dtype.
const RANDOM = [
  { name: "untied-learned-gelu-f32", dtype: "F32", config: { tieEmbeddings: false, tieOutput: false, positions: "learned", activation: "gelu" } },
  { name: "tied-sinusoidal-relu-bf16", dtype: "BF16", config: { tieEmbeddings: true, positions: "sinusoidal", activation: "relu" } },
  { name: "tgt-tied-output-f16", dtype: "F16", config: { tieEmbeddings: false, tieOutput: true, positions: "sinusoidal", activation: "gelu" } },
] as const;

const py = findTorchPython();

// Every await happens before the suite is defined: run alone, uvu starts queued suites on the next tick.
if ("skip" in py) {
  const t = suite("pytorch bridge");
  for (const name of ["sinusoid table", "teacher-forced logits", "greedy and beam tokens", "torch → Hasten round trip", "bad directories", "decode_ids"]) {
    skipTest(t, `pytorch bridge: ${name}`, py.skip);
  }
  t.run();
} else {
  const root = mkdtempSync(join(tmpdir(), "hasten-torch-bridge-"));
  const shipped = loadModelDir(SHIPPED) as ModelDir<Transformer>;
  const tok = shipped.tokenizer;
  const { maxLenA, maxLenB } = shipped.config.decoding as { maxLenA: number; maxLenB: number };
  const sources = SENTENCES.map(([de]) => tok.encode(de));
  const targets = SENTENCES.slice(0, TEACHER_FORCED).map(([, en]) => [tok.bosId, ...tok.encode(en)]);
  const targetsOut = targets.map((r) => [...r.slice(1), tok.eosId]); // y₁…yₘ eos
  const banned = [tok.unkId, tok.maskId];

  // Inputs for the random models: a tokenizer of ~330 ids and seeded random sentences over it.
  const tiny = tinyTokenizer();
  const tinyTokPath = join(root, "tiny-tokenizer.json");
  writeFileSync(tinyTokPath, JSON.stringify(tiny.toJSON()));
  let seed = 12345;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  const randomIds = (rows: number, maxLen: number) =>
    Array.from({ length: rows }, () => Array.from({ length: 1 + rand(maxLen) }, () => 5 + rand(tiny.vocabSize - 5)));
  const rSrc = randomIds(6, 12), rTgt = randomIds(6, 10).map((r) => [1, ...r]);
  const small = { srcVocab: tiny.vocabSize, tgtVocab: tiny.vocabSize, dModel: 32, heads: 4, ffn: 64, encLayers: 2, decLayers: 2, maxLen: 64, dropout: 0.1, seed: 0 };

  // Directories torch must refuse, made from a Hasten-saved tiny model.
  const bad = (name: string) => join(root, "bad", name);
  const good = bad("good");
  await saveModelDir(good, tinyModelDir(3));
  const copy = (name: string, edit: (dir: string) => void) => {
    const dir = bad(name);
    mkdirSync(dir, { recursive: true });
    for (const f of ["config.json", "tokenizer.json", "model.safetensors"]) writeFileSync(join(dir, f), readFileSync(join(good, f)));
    edit(dir);
  };
  const editConfig = (dir: string, edit: (c: Record<string, any>) => void) => {
    const c = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    edit(c);
    writeFileSync(join(dir, "config.json"), JSON.stringify(c));
  };
  copy("no-config", (d) => rmSync(join(d, "config.json")));
  copy("version-3", (d) => editConfig(d, (c) => (c.version = 3)));
  copy("kind-lm", (d) => editConfig(d, (c) => (c.kind = "lm")));
  copy("truncated", (d) => truncateSync(join(d, "model.safetensors"), 1000));
  copy("untied-names", (d) => editConfig(d, (c) => (c.config.tieOutput = true))); // the file has outProj.weight
  const BAD: [string, RegExp][] = [
    ["missing", /no model directory at/],
    ["no-config", /config\.json is missing/],
    ["version-3", /unknown version 3 .*versions 1 and 2/],
    ["kind-lm", /model kind 'lm' is not supported/],
    ["truncated", /past the .*data buffer|exceeds the file size/],
    ["untied-names", /does not match the config: unexpected outProj\.weight/],
  ];

  // Named operations for the driver, run in insertion order.
  const ops = new Map<string, Record<string, unknown> & { op: string }>();
  const out = (name: string) => join(root, `${name}.f32`);
  ops.set("sinusoid", { op: "sinusoid", maxLen: 256, dModel: 256, out: out("sinusoid") });
  ops.set("shipped logits", { op: "logits", dir: SHIPPED, src: sources.slice(0, TEACHER_FORCED), tgt: targets, out: out("shipped") });
  ops.set("shipped loss", { op: "loss", dir: SHIPPED, src: sources.slice(0, TEACHER_FORCED), tgt: targets, tgtOut: targetsOut, labelSmoothing: 0.1 });
  ops.set("shipped greedy", { op: "greedy", dir: SHIPPED, sources, maxLenA, maxLenB, banned });
  ops.set("shipped beam", { op: "beam", dir: SHIPPED, sources: sources.slice(0, BEAM_SENTENCES), beam: 5, lengthPenalty: 1, maxLenA, maxLenB, banned });
  ops.set("shipped decode_ids", { op: "decode_ids", dir: SHIPPED, ids: DECODE_TEXTS.map((s) => tok.encode(s)) });
  for (const [i, r] of RANDOM.entries()) {
    const dir = join(root, r.name);
    ops.set(`${r.name} save`, { op: "save_random", seed: 100 + i, config: { ...small, ...r.config }, out: dir, tokenizer: tinyTokPath, version: 2, dtype: r.dtype });
    ops.set(`${r.name} logits`, { op: "logits", dir, src: rSrc, tgt: rTgt, out: out(r.name) });
    ops.set(`${r.name} greedy`, { op: "greedy", dir, sources: rSrc, maxLenA: 1, maxLenB: 4, banned: [] });
  }
  // Version 2: the first random model again (same seed), read back by torch.
  const v2 = join(root, "v2");
  ops.set("v2 save", { op: "save_random", seed: 100, config: { ...small, ...RANDOM[0].config }, out: v2, tokenizer: tinyTokPath, version: 2, dtype: "F32" });
  ops.set("v2 load", { op: "load", dir: v2 });
  ops.set("v2 logits", { op: "logits", dir: v2, src: rSrc, tgt: rTgt, out: out("v2") });
  for (const [name] of BAD) ops.set(`bad ${name}`, { op: "load", dir: bad(name) });

  const requestPath = join(root, "request.json");
  writeFileSync(requestPath, JSON.stringify({ ops: [...ops.values()] }));
  const run = spawnSync(py.python, [DRIVER, requestPath], { encoding: "utf8", timeout: 180_000, maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`pytorch_driver.py failed (${run.error?.message ?? `exit ${run.status}`}):\n${run.stderr}`);
  const list: Record<string, any>[] = JSON.parse(run.stdout.trim().split("\n").pop()!).results;
  const results = new Map([...ops.keys()].map((k, i) => [k, list[i]]));
  // The result of an operation that had to succeed.
  const result = (name: string) => {
    const r = results.get(name)!;
    if (r.error) throw new Error(`pytorch_driver: "${name}" failed: ${r.error}\n${r.trace}`);
    return r;
  };
  const file = (name: string) => ops.get(name)!.out as string;
  const f32 = (path: string) => {
    const b = readFileSync(path);
    return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  };
  const padded = (rows: number[][]) => {
    const w = Math.max(...rows.map((r) => r.length));
    return tensor(rows.map((r) => [...r, ...new Array(w - r.length).fill(0)]), { dtype: "int32" });
  };
  const hastenLogits = async (m: Transformer, src: number[][], tgt: number[][]) => {
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

  const t = suite("pytorch bridge");
  t.after(() => {
    shipped.model.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  t(`sinusoid table equals Hasten's interleaved layout (torch ${py.torch})`, () => {
    const pe = new SinusoidalPositions(256, 256);
    const table = pe.forward(256);
    const d = maxDiff(f32(file("sinusoid")), table.dataSync());
    table.dispose();
    pe.dispose();
    // Both round float64 angles to float32; a last-bit difference in libm's sin could differ by one ulp.
    assert.ok(d <= 1.2e-7, `largest difference ${d}`);
  });

  t("models/ar-de-en: teacher-forced logits and the training loss equal Hasten's", async () => {
    assert.equal(result("shipped logits").shape, [TEACHER_FORCED, Math.max(...targets.map((r) => r.length)), 8000]);
    const d = maxDiff(f32(file("shipped logits")), await hastenLogits(shipped.model, sources.slice(0, TEACHER_FORCED), targets));
    assert.ok(d <= LOGIT_TOL, `largest logit difference ${d} (tolerance ${LOGIT_TOL})`);
    // Hasten's trainer loss (nn/train/trainer.ts) against F.cross_entropy(ignore_index=0, label_smoothing=0.1).
    const loss = noGrad(() => tidy(() => crossEntropy(
      shipped.model.forward(padded(sources.slice(0, TEACHER_FORCED)), padded(targets)), padded(targetsOut), { ignoreIndex: 0, labelSmoothing: 0.1 },
    ).item()));
    const torchLoss = result("shipped loss").loss as number;
    assert.ok(Math.abs(loss - torchLoss) <= 1e-5 * Math.abs(loss), `loss ${loss} vs torch ${torchLoss}`);
  });

  t("models/ar-de-en: greedy (20 sentences) and beam 5 give Hasten's tokens", async () => {
    const g = result("shipped greedy"), b = result("shipped beam");
    const hg = await greedyDecode(shipped.model, sources, { maxLenA, maxLenB, banned });
    hg.forEach((h, i) => {
      assert.equal(g.tokens[i], h.tokens, `greedy sentence ${i}: ${SENTENCES[i][0]}`);
      assert.ok(Math.abs(g.scores[i] - h.score) <= SCORE_TOL, `greedy sentence ${i} score ${g.scores[i]} vs ${h.score}`);
    });
    assert.ok(hg.every((h) => h.tokens.length > 3), "the translations are real sentences, not empty outputs");
    const hb = await beamSearch(shipped.model, sources.slice(0, BEAM_SENTENCES), { beam: 5, lengthPenalty: 1, maxLenA, maxLenB, banned });
    hb.forEach((h, i) => {
      assert.equal(b.tokens[i], h.tokens, `beam sentence ${i}: ${SENTENCES[i][0]}`);
      assert.ok(Math.abs(b.scores[i] - h.score) <= SCORE_TOL, `beam sentence ${i} score ${b.scores[i]} vs ${h.score}`);
    });
  });

  t("torch-saved random models load in Hasten with the same logits and greedy tokens", async () => {
    for (const r of RANDOM) {
      const [saved, logits, greedy] = ["save", "logits", "greedy"].map((k) => result(`${r.name} ${k}`));
      const m = loadModelDir(join(root, r.name)) as ModelDir<Transformer>;
      try {
        assert.equal(m.model.namedParameters().map(([n]) => n).sort(), saved.names, `${r.name}: parameter names`);
        assert.equal(logits.shape, [rSrc.length, Math.max(...rTgt.map((x) => x.length)), tiny.vocabSize], `${r.name}: logits shape`);
        const d = maxDiff(f32(file(`${r.name} logits`)), await hastenLogits(m.model, rSrc, rTgt));
        assert.ok(d <= LOGIT_TOL, `${r.name}: largest logit difference ${d}`);
        const hg = await greedyDecode(m.model, rSrc, { maxLenA: 1, maxLenB: 4 });
        assert.equal(greedy.tokens, hg.map((h) => h.tokens), `${r.name}: greedy tokens`);
        // Random weights must still give source-dependent outputs, or equal tokens prove little.
        assert.ok(new Set(hg.map((h) => h.tokens.join())).size > 1, `${r.name}: every source decoded alike`);
      } finally {
        m.model.dispose();
      }
    }
    assert.is(result("v2 load").version, 2);
    const d = maxDiff(f32(file("v2 logits")), f32(file(`${RANDOM[0].name} logits`)));
    assert.is(d, 0, "version-2 directory: torch reads back what it wrote");
  });

  t("torch refuses broken model directories with a message naming the problem", () => {
    for (const [name, want] of BAD) {
      const r = results.get(`bad ${name}`)!;
      assert.ok(r.error, `${name}: expected an error, got ${JSON.stringify(r)}`);
      assert.match(r.error, want, name);
    }
  });

  t("decode_ids turns ids into BpeTokenizer.decode's text, byte fallback included", () => {
    const texts = result("shipped decode_ids").texts as string[];
    DECODE_TEXTS.forEach((s, i) => assert.is(texts[i], tok.decode(tok.encode(s)), s));
  });
  t.run();
}
