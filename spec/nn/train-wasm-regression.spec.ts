// Fine-tuning on the wasm backend follows the cpu reference step for step.
// Why it is here: memmove versions of concat/strided/indexSelect on the wasm heap (merged with
// issue 13's decoding work) passed every op and decoding spec, yet broke training at full size: a
// CMLM (7.6M parameters) fine-tuned from a model directory went from loss 2.35 to 9 at its second
// update. They were taken out. This spec does the same kind of run at a tiny size, but it does
// NOT reproduce that failure (it passes with the memmove kernels too): the cause, and so a test
// that catches it, is still open.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readLog, train } from "../../nn/index.ts";

const root = mkdtempSync(join(tmpdir(), "hasten-wasm-train-"));
test.after(() => rmSync(root, { recursive: true, force: true }));
const WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "park", "in", "sun", "by", "old", "tree"];
const text = Array.from({ length: 200 }, (_, i) => {
  const w = (k: number) => WORDS[(i * 7 + k * 5) % WORDS.length];
  return `${w(0)} ${w(1)} ${w(2)} ${w(3)} ${w(4)} ${w(5)} .`;
}).join("\n\n");
const corpus = join(root, "tiny.txt");
writeFileSync(corpus, text + "\n");
// Head dim 16 and rows of 32: wide enough for the wasm fast paths (they skip tiny rows).
const TINY = { task: "lm", data: corpus, vocabSize: 300, dModel: 64, heads: 4, ffn: 128, layers: 2, maxLen: 64, seqLen: 32, maxTokens: 256,
  lr: 3e-3, warmup: 2, logEvery: 1, evalEvery: 0, checkpointEvery: 0, seed: 7, dropout: 0, validFraction: 0.1 };

const base = join(root, "base");
await train({ ...TINY, out: base, maxSteps: 3, backend: "cpu" });

const losses = async (backend: string) => {
  const out = join(root, `tuned-${backend}`);
  await train({ ...TINY, out, init: join(base, "model"), maxSteps: 5, lr: 1e-3, backend });
  return readLog(join(out, "log.jsonl")).filter((e) => e.kind === "train").map((e) => (e as { loss: number }).loss);
};

test("fine-tuning from a model directory: wasm losses equal cpu losses at every update", async () => {
  const cpu = await losses("cpu"), wasm = await losses("wasm");
  assert.is(cpu.length, 5);
  assert.is(wasm.length, 5);
  for (let i = 0; i < cpu.length; i++) {
    assert.ok(Math.abs(cpu[i] - wasm[i]) < 1e-3 * Math.max(1, Math.abs(cpu[i])), `update ${i + 1}: cpu ${cpu[i]}, wasm ${wasm[i]}`);
  }
});

test.run();
