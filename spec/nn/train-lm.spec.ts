// The second task: language modelling on plain text. It trains through the same trainer (progress,
// checkpoints, exact resume, plots), exports a model directory of kind lm, and `generate` samples
// from it: greedy generation equals recomputing the whole prefix each step, sampling is seeded,
// and targetCalls counts the forward passes.
import fc from "fast-check";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { noGrad, tensor, tidy } from "../../core/index.ts";
import { argmaxAllowed, checkSampling, drawFrom, generate, samplingDistribution } from "../../decoding/index.ts";
import { loadModelDir, paragraphs, readLog, train, type CausalLM, type ModelDir } from "../../nn/index.ts";
import { generateCommand } from "../../scripts/commands/generate.ts";
import type { CommandIO } from "../../scripts/cli/common.ts";

const root = mkdtempSync(join(tmpdir(), "hasten-lm-"));
test.after(() => rmSync(root, { recursive: true, force: true }));
const WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "in", "sun"];
const text = Array.from({ length: 120 }, (_, i) => {
  const w = (k: number) => WORDS[(i * 7 + k * 3) % WORDS.length];
  return `${w(0)} ${w(1)} ${w(2)}\n${w(3)} ${w(4)} ${w(5)} .`; // two lines a paragraph: joined with a space
}).join("\n\n");
const corpus = join(root, "tiny.txt");
writeFileSync(corpus, text + "\n");
const TINY = { task: "lm", data: corpus, vocabSize: 300, dModel: 16, heads: 2, ffn: 32, layers: 1, maxLen: 32, seqLen: 16, maxTokens: 64, lr: 3e-3, warmup: 2,
  logEvery: 1, evalEvery: 3, checkpointEvery: 0, maxSteps: 6, seed: 4, backend: "cpu", validFraction: 0.1 };

test("paragraphs: blank lines separate, inner line breaks become spaces", () => {
  assert.equal(paragraphs("a b\nc\n\n\n d \r\n\r\ne"), ["a b c", "d", "e"]);
  assert.equal(paragraphs(""), []);
});

const full = join(root, "full");
const r = await train({ ...TINY, out: full });

test("train --task lm: runs, validates perplexity, exports a kind-lm model directory", () => {
  assert.is(r.step, 6);
  assert.is(r.config.model, "lm");
  assert.is(r.best?.metric, "loss", "no BLEU for a language model: the best checkpoint is by loss");
  const log = readLog(join(full, "log.jsonl"));
  const valid = log.filter((e) => e.kind === "valid");
  assert.equal(valid.map((e) => e.step), [3, 6]);
  for (const v of valid) assert.ok(v.kind === "valid" && v.bleu === null && v.nll > 0 && v.nll < 10);
  const cfg = JSON.parse(readFileSync(join(full, "model", "config.json"), "utf8"));
  assert.equal([cfg.version, cfg.kind, cfg.task, cfg.decoding.maxNewTokens], [2, "lm", "lm", 100]);
  assert.ok(readFileSync(join(full, "loss.svg"), "utf8").startsWith("<svg"));
});

test("exact resume: 3 steps, stop, resume to 6 equals 6 steps in one go", async () => {
  const split = join(root, "split");
  await train({ ...TINY, out: split, maxSteps: 3 });
  const resumed = await train({ out: split, maxSteps: 6 }, { resume: true });
  assert.is(resumed.resumedFrom, 3);
  const losses = (dir: string) => readLog(join(dir, "log.jsonl")).filter((e) => e.kind === "train").map((e) => (e.kind === "train" ? e.loss : 0));
  assert.equal(losses(split), losses(full));
  const a = loadModelDir(join(full, "model")), b = loadModelDir(join(split, "model"));
  for (const [[n, p], [, q]] of a.model.namedParameters().map((x, i) => [x, b.model.namedParameters()[i]] as const)) assert.equal(Array.from(p.dataSync()), Array.from(q.dataSync()), n);
  a.model.dispose();
  b.model.dispose();
});

test("init: a run starts from a model directory's weights and tokenizer (fine-tuning)", async () => {
  const tuned = join(root, "tuned");
  const r = await train({ ...TINY, out: tuned, init: join(full, "model"), lr: 1e-12, warmup: 0, maxSteps: 1, evalEvery: 0, dropout: 0 });
  assert.is(r.step, 1);
  const a = loadModelDir(join(full, "model")), b = loadModelDir(join(tuned, "model"));
  assert.equal(b.tokenizer.toJSON(), a.tokenizer.toJSON());
  for (const [[n, p], [, q]] of a.model.namedParameters().map((x, i) => [x, b.model.namedParameters()[i]] as const)) {
    const x = p.dataSync(), y = q.dataSync();
    for (let i = 0; i < x.length; i++) if (Math.abs(x[i] - y[i]) > 1e-3 * Math.abs(x[i]) + 1e-6) assert.unreachable(`${n}[${i}]: ${x[i]} vs ${y[i]}`);
  }
  a.model.dispose();
  b.model.dispose();
  let err = "";
  await train({ ...TINY, out: join(root, "bad-init"), init: join(root, "nowhere") }).catch((e) => (err = (e as Error).message));
  assert.match(err, /`init`: .*nowhere.*tokenizer.json not found/);
});

const m = loadModelDir(join(full, "model")) as ModelDir<CausalLM>;

// Greedy without a cache: the whole prefix through the model at every step.
function greedyUncached(model: CausalLM, prompt: number[], n: number, banned: Uint8Array): number[] {
  const ids = [1, ...prompt], out: number[] = [];
  for (let t = 0; t < n; t++) {
    const logits = noGrad(() => tidy(() => Array.from(model.forward(tensor([ids], { dtype: "int32" })).narrow(1, ids.length - 1, 1).dataSync())));
    const next = argmaxAllowed(logits, banned);
    if (next === 2) break;
    out.push(next);
    ids.push(next);
  }
  return out;
}

test("greedy generation (temperature 0) equals recomputing the whole prefix each step; targetCalls counts passes", async () => {
  const banned = new Uint8Array(m.model.config.vocab);
  for (const id of [0, 1, 3, 4]) banned[id] = 1;
  for (const prompt of ["the cat", "", "dog ran to the park in the sun"]) {
    const ids = m.tokenizer.encode(prompt);
    const g = await generate(m.model, ids, { temperature: 0, maxNewTokens: 12 });
    assert.equal(g.tokens, greedyUncached(m.model, ids, 12, banned), prompt);
    assert.is(g.targetCalls, g.tokens.length + (g.stopped === "eos" ? 1 : 0) + (g.tokens.length === 0 && g.stopped !== "eos" ? 1 : 0));
  }
});

test("sampling is seeded and stops at the model's context", async () => {
  const ids = m.tokenizer.encode("the cat sat");
  const a = await generate(m.model, ids, { temperature: 1, seed: 7, maxNewTokens: 20 });
  const b = await generate(m.model, ids, { temperature: 1, seed: 7, maxNewTokens: 20 });
  assert.equal(a, b);
  const long = await generate(m.model, ids, { temperature: 1, seed: 3, maxNewTokens: 1000, eosId: 299 });
  assert.ok(long.tokens.length <= m.model.config.maxLen, `${long.tokens.length} tokens`);
  if (long.stopped !== "eos") assert.is(long.stopped, "maxLen");
});

test("sampling rule: a distribution over allowed ids; top-p keeps the smallest nucleus; draws follow it (χ²)", () => {
  fc.assert(fc.property(fc.array(fc.double({ min: -8, max: 8, noNaN: true }), { minLength: 2, maxLength: 12 }), fc.double({ min: 0.1, max: 3, noNaN: true }), fc.double({ min: 0.05, max: 1, noNaN: true }),
    (logits, T, topP) => {
      const banned = new Uint8Array(logits.length);
      banned[0] = 1;
      const p = samplingDistribution(logits, checkSampling("t", { temperature: T, topP }), banned)!;
      assert.ok(Math.abs(p.reduce((s, x) => s + x, 0) - 1) < 1e-9);
      assert.is(p[0], 0);
      // The kept set's mass (before renormalising) reaches topP and dropping its least likely
      // member would not.
      const full = samplingDistribution(logits, { temperature: T, topP: 1 }, banned)!;
      const kept = Array.from(p.keys()).filter((i) => p[i] > 0);
      const mass = kept.reduce((s, i) => s + full[i], 0);
      assert.ok(mass >= topP - 1e-9);
      const least = Math.min(...kept.map((i) => full[i]));
      assert.ok(mass - least < topP + 1e-9 || kept.length === 1);
    }), { seed: 5, numRuns: 200 });
  // Empirical frequencies of drawFrom against p: χ² with 3 degrees of freedom below 16.27 (p = 0.001).
  const p = Float64Array.from([0.1, 0.2, 0.3, 0.4]);
  const counts = [0, 0, 0, 0];
  let u = 0.5;
  for (let i = 0; i < 20000; i++) {
    u = (u * 9301 + 49297) % 233280; // a fixed LCG is enough for a deterministic check
    counts[drawFrom(p, u / 233280)]++;
  }
  const chi2 = counts.reduce((s, c, i) => s + (c - 20000 * p[i]) ** 2 / (20000 * p[i]), 0);
  assert.ok(chi2 < 16.27, `χ² ${chi2}`);
  assert.throws(() => checkSampling("t", { topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => checkSampling("t", { temperature: -1 }), /temperature must be a finite number >= 0/);
});

test("eos is never silently unbanned: banning it, or making it the bos, is refused", async () => {
  for (const o of [{ banned: [2] }, { bosId: 2 }]) {
    let err = "";
    await generate(m.model, [5], { ...o, maxNewTokens: 1 }).catch((e) => (err = (e as Error).message));
    assert.match(err, /eos \(2\) cannot be banned/, JSON.stringify(o));
  }
});

async function run(argv: string[], stdin: string) {
  let stdout = "", stderr = "", code = 0, error: Error | undefined;
  const io: CommandIO = { stdin, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), stderrIsTTY: false, setExitCode: (c) => (code = c) };
  try {
    await generateCommand(argv, io);
  } catch (e) {
    error = e as Error;
  }
  return { stdout, stderr, code, error };
}

test("hasten generate: one line per prompt, --jsonl records, usage errors exit 2", async () => {
  const dir = join(full, "model");
  const plain = await run(["--model", dir, "--max-new-tokens", "5", "--temperature", "0"], "the cat\n\nthe dog\n");
  assert.is(plain.error, undefined, String(plain.error));
  assert.is(plain.stdout.split("\n").length, 4);
  const j = await run(["--model", dir, "--max-new-tokens", "5", "--jsonl", "--seed", "3"], "the cat\n");
  const rec = JSON.parse(j.stdout);
  assert.equal(Object.keys(rec).sort(), ["prompt", "stopped", "targetCalls", "text", "tokens"]);
  assert.ok(rec.tokens.length <= 5 && rec.targetCalls >= 1 && rec.text === m.tokenizer.decode(rec.tokens).replace(/[\n\r]/g, " "));
  const bad = await run(["--model", dir, "--top-p", "0"], "x\n");
  assert.is(bad.code, 2);
  assert.match(bad.error!.message, /--top-p: expected a number > 0 and ≤ 1, got "0"/);
  const tr = await run(["--model", "models/ar-de-en"], "x\n");
  assert.is(tr.code, 2);
  assert.match(tr.error!.message, /holds a transformer model \(encoder-decoder\); generate needs a causal language model/);
});

test.after(() => m.model.dispose());
test.run();
