// Notebook 05 — the Markov autoregressive Transformer (Du, Zhou, Tu & Jiang, EACL Findings 2024):
// a translation decoder that reads only the last k target tokens (and the whole source), so each
// decoding step costs the same at position 10 and at position 10,000.
// Run: npx tsx notebooks/05-markov.ts
//
// 1. the k-order band mask; 2. why stacked layers leak past k, and how the strict variant stops
// it; 3. the ring buffer that makes decoding constant-cost; 4. latency against position.
import { mkdirSync, writeFileSync } from "node:fs";
import { Generator, noGrad, randint, tensor, tidy } from "../core/index.ts";
import { markovConfig, markovMask, MarkovTransformer, positionRange, type MarkovConfig } from "../nn/index.ts";
import { latencySvg, measureLatency, slopeOf } from "../bench/markov-latency.ts";

// ---- 1. The band mask ----
// Decoder input i holds y_{i−1} (bos at 0). A full decoder lets query i attend to every j ≤ i;
// a k-th order one only to i − k + 1 … i, i.e. the inputs y_{i−k} … y_{i−1}: a band of width k.
const show = (m: Uint8Array, T: number) => Array.from({ length: T }, (_, i) => "  " + Array.from(m.slice(i * T, (i + 1) * T), (x) => (x ? "■" : "·")).join(" ")).join("\n");
const T = 8;
console.log(`k = 3 band mask over ${T} positions (row: query, column: key):\n${show(markovMask(positionRange(0, T), positionRange(0, T), 3), T)}`);

// ---- 2. Leakage through depth ----
// With the band alone, layer 2 at position i reads layer 1 at i − k + 1 … i, each of which read
// k − 1 positions further back: L layers see L·(k − 1) + 1 inputs. The strict variant computes every
// layer's keys and values from the embeddings (layer 0) of the window, so nothing older leaks.
// Which inputs can change output 11? Change each one and compare the logits bit for bit.
const base = { vocab: 20, dModel: 32, heads: 2, ffn: 64, encLayers: 1, decLayers: 3, maxLen: 32, dropout: 0, seed: 3, order: 2 };
const src = tensor([[5, 6, 7, 8]], { dtype: "int32" });
const tgt = Array.from(randint(3, 20, [12], { generator: new Generator(1) }).dataSync());
const reach = (variant: MarkovConfig["variant"]) => noGrad(() => tidy(() => {
  const m = new MarkovTransformer(markovConfig({ ...base, variant })).eval();
  const out = (ids: number[]) => Array.from(m.forward(src, tensor([ids], { dtype: "int32" })).narrow(1, 11, 1).dataSync());
  const ref = out(tgt);
  const moved = tgt.map((_, j) => out(tgt.map((x, i) => (i === j ? 3 + ((x - 2) % 17) : x))).some((v, i) => v !== ref[i]));
  m.dispose();
  return moved.map((x) => (x ? "■" : "·")).join(" ");
}));
console.log(`\ninputs 0 … 11 that reach output 11 (k = 2, 3 layers):`);
console.log(`  window (plain sliding window): ${reach("window")}   ← L·(k − 1) + 1 = 4 inputs`);
console.log(`  strict (keys/values from x⁰):  ${reach("strict")}   ← k = 2 inputs`);

// ---- 3. The ring buffer ----
// Decoding keeps, per layer, the keys and values of the last k positions in k slots; position p
// goes to slot p mod k, and the slots' positions tell the mask what each query may see. The state
// never grows, and every step equals the parallel pass.
noGrad(() => {
  const m = new MarkovTransformer(markovConfig({ ...base, order: 3, variant: "strict" })).eval();
  const ids = tensor([tgt], { dtype: "int32" });
  const full = Array.from(m.forward(src, ids).dataSync());
  const memory = m.encode(src), mask = src.eq(0), cache = m.createCache();
  let worst = 0;
  console.log("\nring of order 3 (slot: position held), while decoding 8 steps:");
  for (let t = 0; t < 8; t++) {
    const step = tidy(() => Array.from(m.decodeStep(tensor([tgt[t]], { dtype: "int32" }), memory, mask, cache).dataSync()));
    step.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - full[t * 20 + i]))));
    const slots = Array.from(cache.keyPositions(0), (p, s) => `${s}:${p < 0 ? "–" : p}`).join("  ");
    console.log(`  step ${t}: ${slots}   self-attention cache ${cache.selfBytes} bytes`);
  }
  console.log(`  largest difference from the parallel pass: ${worst.toExponential(1)}`);
  cache.dispose();
  m.dispose();
});

// ---- 4. Latency against position ----
// A small model, forced through 2000 positions in lockstep with a full-attention Transformer of
// the same weights (bench/markov-latency.ts runs the baseline-sized pair to 3072): MAT's step time
// stays flat, the full-attention step grows with its KV cache.
const STEPS = 2000;
const { curves } = await measureLatency({ steps: STEPS, rounds: 1, order: 4, variant: "strict", dModel: 128, heads: 4, ffn: 256, layers: 2, vocab: 300, srcLen: 10 });
console.log(`\nforced decoding, ms per step (medians over 400 positions):`);
for (const c of curves) {
  const cells = [0, 400, 800, 1200, 1600].map((a) => [...c.ms.slice(a, a + 400)].sort((x, y) => x - y)[200].toFixed(2));
  const f = slopeOf(c);
  console.log(`  ${c.name.padEnd(16)} ${cells.join("  ")}   slope ${(1000 * f.slope).toFixed(3)} ms per 1000 positions; cache ${(c.bytes[STEPS - 1] / 1024).toFixed(0)} KiB at the end`);
}
mkdirSync("runs", { recursive: true });
writeFileSync("runs/05-markov-latency.svg", latencySvg(curves, "decoding step vs position (a small model)"));
console.log("plot: runs/05-markov-latency.svg (on a shared machine, single runs are noisy; the benchmark takes medians)");
