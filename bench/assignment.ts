// What the NAT objectives cost next to a training step. OAXE solves one assignment per sentence on
// the host (nn/losses/assignment.ts); that must not dominate a step. Measured here, median of
// rounds, on the default (wasm) backend:
//   1. the Hungarian solver alone: a batch of 64 sentences of N = 10…40 tokens, on i.i.d. random
//      costs and on costs whose diagonal is 4σ lower (the near-identity pairing of a trained model);
//   2. each loss forward + backward on a 4,096-position batch (128 × 32, V = 8,000; logits shaped
//      like an XE-trained model's, see lossInputs) against crossEntropy on the same logits: OAXE,
//      bigram-OAXE, AXE; the host part of OAXE (its assignments) reported apart;
//   3. CTC at B = 64, T = 60, L = 30, V = 8,000 (forward + backward of logSoftmax + ctcLoss);
//   4. a training step of the 7.58M-parameter translation Transformer (3 + 3 layers, d = 256,
//      vocab 8,000) on 4,096 source + 4,096 target tokens; with --quick, the published 1.36 s.
// and prints each cost as a share of that step.
//
//   npx tsx bench/assignment.ts [--quick] [--rounds=5] [--quiet-wait=60]
import "../core/index.ts";
import { crossEntropy, Generator, noGrad, randint, randn, setBackend, tensor, tidy, type Tensor } from "../core/index.ts";
import { AdamW, axeLoss, ctcLoss, linearSumAssignmentFlat, ngramOaxeLoss, oaxeLoss, Transformer, transformerConfig } from "../nn/index.ts";
import { benchOptions, formatSection, isMain, machineLine, median, othersShare, parseFlags, pct, waitQuiet, type BenchOptions, type Section } from "./harness.ts";

const pct1 = (x: number): string => `${(100 * x).toFixed(1)}%`;
const PUBLISHED_STEP_MS = 1360; // README: ~1.36 s per 4,096 + 4,096-token step on this machine
const V = 8000, PAD = 0;

function timeIt(fn: () => void, warmup: number, rounds: number): number {
  for (let i = 0; i < warmup; i++) fn();
  const xs: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    fn();
    xs.push(performance.now() - t0);
  }
  return median(xs);
}

// 64 cost matrices N×N: i.i.d. N(10, 2²), or the same with the diagonal lowered by 8 (4σ).
function costBatch(B: number, N: number, diagonal: boolean, seed: number): Float64Array[] {
  const g = new Generator(seed);
  return Array.from({ length: B }, () => {
    const c = new Float64Array(N * N);
    for (let k = 0; k < N * N; k++) c[k] = 10 + 2 * g.normal() - (diagonal && k % (N + 1) === 0 ? 8 : 0);
    return c;
  });
}

function solverSection(o: BenchOptions, stepMs: number): Section {
  const rows: string[][] = [];
  const out = new Int32Array(64);
  for (const N of [10, 20, 30, 40]) {
    for (const diagonal of [false, true]) {
      const batch = costBatch(64, N, diagonal, N);
      const ms = timeIt(() => batch.forEach((c) => linearSumAssignmentFlat(c, N, N, out)), 2, o.rounds ?? (o.quick ? 3 : 9));
      rows.push([String(N), diagonal ? "diagonal 4σ lower" : "i.i.d. N(10, 2²)", ms.toFixed(2), pct1(ms / stepMs)]);
    }
  }
  return { title: "Hungarian solver, a batch of 64 sentences (N × N costs, float64)", header: ["N", "costs", "ms / batch", "of a training step"], rows, notes: [] };
}

// Logits [B, N, V] and targets with lengths spread over [N/2, N] (padding on the right), shaped
// like a model after XE training: 90% of the positions give one of the sentence's tokens (in a
// shuffled order) p ≈ 0.7, the rest spread over the vocabulary (those pairs get truncated).
function lossInputs(B: number, N: number, seed: number): { logits: Tensor; target: Tensor; tokens: number } {
  const g = new Generator(seed);
  const z = g.fillNormal(new Float32Array(B * N * V), 0, 2);
  const ids = new Int32Array(B * N);
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    const L = Math.ceil(N / 2 + g.random() * (N / 2));
    for (let i = 0; i < L; i++) ids[b * N + i] = 5 + Math.floor(g.random() * (V - 5));
    const order = g.permutation(L);
    for (let i = 0; i < L; i++) if (g.random() < 0.9) z[(b * N + i) * V + ids[b * N + order[i]]] += 12;
    tokens += L;
  }
  return { logits: tensor(z, { shape: [B, N, V], requiresGrad: true }), target: tensor(ids, { shape: [B, N], dtype: "int32" }), tokens };
}

function lossSection(o: BenchOptions, stepMs: number): Section {
  const B = 128, N = 32, rounds = o.rounds ?? (o.quick ? 2 : 5);
  const { logits, target, tokens } = lossInputs(B, N, 1);
  const fb = (f: () => Tensor) => () => {
    tidy(() => {
      f().backward();
    });
    logits.zeroGrad();
  };
  const xe = timeIt(fb(() => crossEntropy(logits, target, { ignoreIndex: PAD, labelSmoothing: 0.1 })), 1, rounds);
  const contenders: [string, () => Tensor][] = [
    ["OAXE (ε 0.1, truncate 0.065)", () => oaxeLoss(logits, target, { ignoreIndex: PAD, labelSmoothing: 0.1, truncate: 0.065 })],
    ["bigram-OAXE (ε 0.1)", () => ngramOaxeLoss(logits, target, { n: 2, ignoreIndex: PAD, labelSmoothing: 0.1 })],
    ["AXE (δ 1)", () => axeLoss(logits, target, { delta: 1, ignoreIndex: PAD })],
  ];
  const rows: string[][] = [["crossEntropy (ε 0.1)", xe.toFixed(0), "1.00", "–", pct1(xe / stepMs)]];
  for (const [name, f] of contenders) {
    const ms = timeIt(fb(f), 1, rounds);
    rows.push([name, ms.toFixed(0), (ms / xe).toFixed(2), `+${(ms - xe).toFixed(0)}`, pct1(ms / stepMs)]);
  }
  // The host part of OAXE: reading the B·N·N costs is measured with the loss; the solve alone here.
  const costs = noGrad(() => logits.logSoftmax(-1).dataSync());
  const idsHost = target.dataSync();
  const hostMs = timeIt(() => {
    for (let b = 0; b < B; b++) {
      let L = 0;
      while (L < N && idsHost[b * N + L] !== PAD) L++;
      const c = new Float64Array(L * L);
      for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) c[i * L + j] = -costs[(b * N + i) * V + idsHost[b * N + j]];
      linearSumAssignmentFlat(c, L, L);
    }
  }, 2, rounds * 3);
  logits.dispose();
  target.dispose();
  return {
    title: `Losses, forward + backward: ${B} × ${N} positions (${tokens} target tokens), V = ${V}`,
    header: ["loss", "ms", "× crossEntropy", "ms over XE", "of a training step"],
    rows,
    notes: [`of which OAXE's assignments on the host (the batch's ${B} real cost matrices): ${hostMs.toFixed(1)} ms`],
  };
}

function ctcSection(o: BenchOptions, stepMs: number): Section {
  const B = 64, T = 60, L = 30, rounds = o.rounds ?? (o.quick ? 2 : 5);
  const g = new Generator(7);
  const logits = randn([B, T, V], { generator: g, std: 2, requiresGrad: true });
  const targets = randint(1, V, [B, L], { generator: g });
  const inputLengths = Array.from({ length: B }, () => T), targetLengths = Array.from({ length: B }, (_, b) => L - (b % 8));
  const xeTarget = randint(1, V, [B, T], { generator: g });
  const run = (f: () => Tensor) => () => {
    tidy(() => {
      f().backward();
    });
    logits.zeroGrad();
  };
  const xe = timeIt(run(() => crossEntropy(logits, xeTarget)), 1, rounds);
  const ctc = timeIt(run(() => ctcLoss(logits.logSoftmax(-1), targets, { inputLengths, targetLengths })), 1, rounds);
  logits.dispose();
  return {
    title: `CTC, forward + backward: B = ${B}, T = ${T}, L ≤ ${L}, V = ${V}`,
    header: ["loss", "ms", "× crossEntropy", "of a training step"],
    rows: [["crossEntropy on the same logits", xe.toFixed(0), "1.00", pct1(xe / stepMs)], ["logSoftmax + ctcLoss", ctc.toFixed(0), (ctc / xe).toFixed(2), pct1(ctc / stepMs)]],
    notes: [],
  };
}

// One AdamW step of the baseline translation Transformer on 4,096 + 4,096 tokens.
function measureStep(o: BenchOptions): number {
  const model = new Transformer(transformerConfig({ vocab: V, dModel: 256, heads: 4, ffn: 1024, encLayers: 3, decLayers: 3, dropout: 0.1 }));
  const opt = new AdamW(model.namedParameters(), { lr: 1e-3, betas: [0.9, 0.98], weightDecay: 1e-4 });
  const g = new Generator(3);
  const B = 128, S = 32;
  const src = randint(5, V, [B, S], { generator: g }), tgtIn = randint(5, V, [B, S], { generator: g }), tgtOut = randint(5, V, [B, S], { generator: g });
  const ms = timeIt(() => {
    const loss = tidy(() => {
      const l = crossEntropy(model.forward(src, tgtIn), tgtOut, { ignoreIndex: PAD, labelSmoothing: 0.1 });
      l.backward();
      return l;
    });
    loss.item();
    loss.dispose();
    opt.step();
    opt.zeroGrad();
  }, 1, o.rounds ?? 3);
  opt.dispose();
  model.dispose();
  return ms;
}

export async function assignmentBench(o: BenchOptions, log: (s: string) => void = console.log): Promise<Section[]> {
  await setBackend("wasm");
  const busy = await waitQuiet(o.quietWait);
  const { value, others } = await othersShare(async () => {
    const stepMs = o.quick ? PUBLISHED_STEP_MS : measureStep(o);
    log(`  training step: ${stepMs.toFixed(0)} ms`);
    const sections = [solverSection(o, stepMs), lossSection(o, stepMs), ctcSection(o, stepMs)];
    return { stepMs, sections };
  });
  const stepNote = o.quick
    ? `training step: the published ${PUBLISHED_STEP_MS} ms (README; --quick does not measure it)`
    : `training step measured here: ${value.stepMs.toFixed(0)} ms (7.58M-parameter Transformer, 4,096 + 4,096 tokens, label smoothing 0.1, AdamW; README: ${PUBLISHED_STEP_MS} ms)`;
  for (const s of value.sections) s.notes.push(stepNote, `machine: ${machineLine()}; other processes used ${pct(others)} of the CPUs meanwhile${busy ? `; ${busy}` : ""}`);
  return value.sections;
}

if (isMain(import.meta.url)) {
  const o = benchOptions(parseFlags(process.argv.slice(2), "bench/assignment"), "bench/assignment");
  for (const s of await assignmentBench(o)) console.log(`\n${formatSection(s)}`);
}
