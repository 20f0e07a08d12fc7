// Speculative decoding on this CPU: what one target pass over k tokens costs, and what vanilla
// drafts, GliDe and GliDe + CaPE buy over plain KV-cached decoding of the target, greedy and at
// temperature 1, at batch 1, on held-out text.
//
//   npx tsx bench/speculative.ts [--target=DIR] [--draft=DIR] [--glide=DIR] [--text=FILE]
//       [--prompts=N] [--new=N] [--gamma=N] [--prompt-tokens=N] [--threads=N] [--tiny]
//       [--quick] [--rounds=R] [--quiet-wait=S]
//
// Model directories default to models/lm-austen, models/draft-austen and models/glide-austen; a
// method whose draft is missing is skipped with the reason. --tiny trains a small target and both
// drafts here first (a few minutes; their acceptance says little about real models). The prompts
// are the first --prompt-tokens tokens of paragraphs of --text (default: the held-out novel,
// ../shared/data/janeausten/northangerabbey.txt), every paragraph long enough, evenly spread.
//
// 1. Verification cost: the median time of one target forward over k = 1, 2, 4, … 32 new tokens
//    with a cache of --prompt-tokens positions, and of one draft step. Speculative decoding pays
//    off only while k tokens cost far less than k single steps: on a GPU a step is memory-bound
//    and k ≤ 32 is nearly free; on this CPU the arithmetic catches up with reading the weights by
//    k ≈ 2–4, so the cost grows with k, and a wide CaPE tree can cost more than it saves. The
//    notes say how many tokens a γ-round must yield to pay for itself.
// 2. Decoding: per method and temperature, mean tokens per target pass (τ, the bonus token
//    included), draft passes per token, wall-clock ms per token, and the speed-up over plain
//    decoding measured in the same run (methods take turns prompt by prompt). At temperature 0 it
//    also checks that every method emits exactly plain's tokens.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { Generator, noGrad, tensor, tidy } from "../core/index.ts";
import { acceptanceSummary, CAPE_BINS, generate, glideDrafter, lmDrafter, speculativeGenerate, type Drafter, type SpeculativeGeneration, type SpeculativeOptions } from "../decoding/index.ts";
import { isCausalLM, isGlideDraft, loadModelDir, paragraphs, train, type CausalLM, type GlideDraftModel, type ModelDir } from "../nn/index.ts";
import { benchOptions, formatSection, isMain, machineLine, median, othersShare, parseFlags, pct, ratio, waitQuiet, type BenchOptions, type Section } from "./harness.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const DEFAULTS = { target: "models/lm-austen", draft: "models/draft-austen", glide: "models/glide-austen", text: "../shared/data/janeausten/northangerabbey.txt" };

export interface SpeculativeBenchOptions extends BenchOptions {
  target?: string;
  draft?: string;
  glide?: string;
  text?: string;
  prompts: number;
  newTokens: number;
  gamma: number;
  promptTokens: number;
  threads?: number;
  tiny: boolean;
}

interface Loaded {
  target: ModelDir<CausalLM>;
  drafts: { name: string; drafter: Drafter; cape: boolean; dispose(): void }[];
  skipped: string[];
  notes: string[];
  cleanup(): void;
}

const rel = (p: string) => (p.startsWith(ROOT) ? p.slice(ROOT.length + 1) : p);

function loadDraft(dir: string, target: ModelDir<CausalLM>): ModelDir {
  const d = loadModelDir(dir);
  if (JSON.stringify(d.tokenizer.toJSON()) !== JSON.stringify(target.tokenizer.toJSON())) {
    d.model.dispose();
    throw new Error(`${rel(dir)} has another tokenizer than the target`);
  }
  return d;
}

// Trains a small target and both drafts for --tiny (about 2 minutes on 2 quiet cores).
async function trainTiny(text: string, log: (s: string) => void): Promise<{ dir: string; target: string; draft: string; glide: string }> {
  const dir = mkdtempSync(join(tmpdir(), "hasten-spec-bench-"));
  const data = resolve(ROOT, "../shared/data/janeausten");
  if (!existsSync(data)) throw new Error(`--tiny trains on ${data}, which is missing`);
  const held = text.split("/").pop()!;
  const common = { data, exclude: held, seqLen: 64, maxTokens: 2048, evalEvery: 0, checkpointEvery: 0, logEvery: 50, seed: 1, dropout: 0, validFraction: 0.01 };
  const step = (name: string) => (e: { type: string; text?: string }) => e.type !== "step" && log(`  [${name}] ${e.text}`);
  log("training a tiny target, an LM draft and a GliDe draft (--tiny)");
  await train({ ...common, task: "lm", vocabSize: 1000, dModel: 128, heads: 4, ffn: 512, layers: 4, maxLen: 128, maxSteps: 200, lr: 2e-3, warmup: 50, out: join(dir, "target") }, { onEvent: step("target") });
  const target = join(dir, "target", "model");
  await train({ ...common, task: "lm", tokenizer: join(target, "tokenizer.json"), dModel: 64, heads: 2, ffn: 256, layers: 1, maxLen: 128, maxSteps: 150, lr: 3e-3, warmup: 30, out: join(dir, "draft") }, { onEvent: step("draft") });
  await train({ ...common, task: "glide", target, dModel: 64, heads: 2, ffn: 256, layers: 1, maxSteps: 150, lr: 3e-3, warmup: 30, out: join(dir, "glide") }, { onEvent: step("glide") });
  return { dir, target, draft: join(dir, "draft", "model"), glide: join(dir, "glide", "model") };
}

async function loadAll(o: SpeculativeBenchOptions, log: (s: string) => void): Promise<Loaded | { missing: string }> {
  const notes: string[] = [];
  let paths = { target: o.target ?? DEFAULTS.target, draft: o.draft ?? DEFAULTS.draft, glide: o.glide ?? DEFAULTS.glide };
  let tmp: string | undefined;
  if (o.tiny) {
    const t = await trainTiny(resolve(ROOT, o.text ?? DEFAULTS.text), log);
    tmp = t.dir;
    paths = t;
    notes.push("models: trained by --tiny in this run (target d 128 × 4 layers, 200 steps; drafts d 64 × 1 layer, 150 steps): acceptance on such small models says little about real ones");
  }
  const abs = (p: string) => resolve(ROOT, p);
  if (!existsSync(abs(paths.target))) return { missing: `no target model at ${paths.target}: pass --target=DIR, or --tiny to train small models here first` };
  const t = loadModelDir(abs(paths.target));
  if (!isCausalLM(t.model)) return { missing: `${paths.target} is not a causal LM` };
  const target = t as ModelDir<CausalLM>;
  const drafts: Loaded["drafts"] = [], skipped: string[] = [];
  for (const [name, p, kind] of [["vanilla", paths.draft, "lm"], ["glide", paths.glide, "glide"]] as const) {
    if (!existsSync(abs(p))) {
      skipped.push(`${name}: no draft at ${p}`);
      continue;
    }
    let d: ModelDir;
    try {
      d = loadDraft(abs(p), target);
    } catch (e) {
      skipped.push(`${name}: ${(e as Error).message}`);
      continue;
    }
    if (kind === "lm" && isCausalLM(d.model)) {
      const drafter = lmDrafter(d.model);
      drafts.push({ name: "vanilla", drafter, cape: false, dispose: () => {} });
      drafts.push({ name: "vanilla + CaPE", drafter, cape: true, dispose: () => { drafter.dispose(); d.model.dispose(); } });
    } else if (kind === "glide" && isGlideDraft(d.model)) {
      const drafter = glideDrafter(d.model);
      drafts.push({ name: "GliDe", drafter, cape: false, dispose: () => {} });
      drafts.push({ name: "GliDe + CaPE", drafter, cape: true, dispose: () => { drafter.dispose(); d.model.dispose(); } });
    } else {
      skipped.push(`${name}: ${p} holds a ${d.config.kind} model, expected ${kind}`);
      d.model.dispose();
    }
  }
  notes.push(`target ${paths.target}: ${target.config.kind}, ${(target.model.numParameters() / 1e6).toFixed(2)}M parameters; ${drafts.filter((_, i) => i % 2 === 0).map((d) => `${d.name} draft ${(d.drafter.model.numParameters() / 1e6).toFixed(2)}M`).join(", ") || "no draft"}`);
  return {
    target, drafts, skipped, notes,
    cleanup: () => {
      for (const d of drafts) d.dispose();
      target.model.dispose();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

// Prompts: the first n tokens of evenly spread paragraphs long enough to hold them.
function heldOutPrompts(file: string, m: ModelDir<CausalLM>, count: number, n: number): number[][] {
  const ps = paragraphs(readFileSync(file, "utf8")).map((p) => m.tokenizer.encode(p)).filter((ids) => ids.length >= n + 8);
  if (ps.length === 0) throw new Error(`${file} has no paragraph of ${n + 8} tokens`);
  const step = Math.max(1, Math.floor(ps.length / count));
  return Array.from({ length: Math.min(count, ps.length) }, (_, i) => Array.from(ps[(i * step) % ps.length].slice(0, n)));
}

// Median ms of one forward of k new tokens after a cache of `context` positions (the cache is
// rolled back after each, as verification does).
function forwardCost(model: CausalLM, context: number, ks: number[], rounds: number): Map<number, number> {
  const g = new Generator(5);
  const V = model.config.vocab;
  const ids = Array.from({ length: context + Math.max(...ks) }, () => g.randint(5, V));
  const cache = model.createCache();
  const out = new Map<number, number>();
  noGrad(() => tidy(() => void model.forward(tensor([ids.slice(0, context)], { dtype: "int32" }), { cache })));
  // One untimed pass of every size first: the first calls of a kernel shape (and the wasm
  // backend's adaptive thread choice) are slower than the rest.
  for (const k of ks) {
    noGrad(() => tidy(() => void model.forward(tensor([ids.slice(context, context + k)], { dtype: "int32" }), { cache }).dataSync()));
    cache.truncate(context);
  }
  for (const k of ks) {
    const times: number[] = [];
    for (let r = 0; r < rounds + 2; r++) {
      const t0 = performance.now();
      const y = noGrad(() => tidy(() => model.forward(tensor([ids.slice(context, context + k)], { dtype: "int32" }), { cache })));
      y.dataSync();
      y.dispose();
      const dt = performance.now() - t0;
      cache.truncate(context);
      if (r >= 2) times.push(dt);
    }
    out.set(k, median(times));
  }
  cache.dispose();
  return out;
}

// Median ms of one GliDe draft step after `context` positions, glimpsing a target cache as long.
function glideStepCost(draft: GlideDraftModel, target: CausalLM, context: number, rounds: number): number {
  const g = new Generator(6);
  const ids = Array.from({ length: context + 1 }, () => g.randint(5, target.config.vocab));
  const glimpse = target.createCache(), cache = draft.createCache();
  const times: number[] = [];
  noGrad(() => tidy(() => {
    target.forward(tensor([ids.slice(0, context)], { dtype: "int32" }), { cache: glimpse });
    draft.forward(tensor([ids.slice(0, context)], { dtype: "int32" }), { glimpse, cache });
  }));
  for (let r = 0; r < rounds + 2; r++) {
    const t0 = performance.now();
    const y = noGrad(() => tidy(() => draft.forward(tensor([[ids[context]]], { dtype: "int32" }), { glimpse, cache })));
    y.dataSync();
    y.dispose();
    if (r >= 2) times.push(performance.now() - t0);
    cache.truncate(context);
  }
  glimpse.dispose();
  cache.dispose();
  return median(times);
}

export async function speculativeBench(o: SpeculativeBenchOptions, log: (s: string) => void = console.log): Promise<Section[]> {
  setBackend("wasm");
  if (o.threads) getWasmRuntime().setNumThreads(o.threads);
  const loaded = await loadAll(o, log);
  if ("missing" in loaded) {
    return [{ title: "Speculative decoding: models missing", header: ["what"], rows: [[loaded.missing]], notes: ["train them with the commands in the issue-11 report (README), or run with --tiny"] }];
  }
  const { target, drafts, skipped, notes } = loaded;
  try {
    const threads = getWasmRuntime().getNumThreads();
    const rounds = o.rounds ?? (o.quick ? 3 : 9);
    // ---- 1. verification cost ----
    const quiet1 = await waitQuiet(o.quietWait);
    const ks = [...new Set([1, 2, 4, 8, 16, 32, o.gamma + 1])].sort((a, b) => a - b);
    const ctx = Math.min(o.promptTokens, target.model.config.maxLen - 33);
    const { value: cost, others: others1 } = await othersShare(async () => forwardCost(target.model, ctx, ks, rounds));
    const base = cost.get(1)!;
    const draftCost = drafts.filter((_, i) => i % 2 === 0).map((d) => {
      const m = d.drafter.model;
      const ms = isCausalLM(m) ? forwardCost(m, ctx, [1], rounds).get(1)! : isGlideDraft(m) ? glideStepCost(m, target.model, ctx, rounds) : NaN;
      // A chain round: γ draft steps and one pass over γ + 1 tokens, in target steps. τ must beat it.
      const round = (cost.get(o.gamma + 1)! + o.gamma * ms) / base;
      return `${d.name} draft step ${ms.toFixed(2)} ms: c = ${(ms / base).toFixed(2)} of a target step; a γ = ${o.gamma} round costs ${round.toFixed(2)} target steps, so it pays only when a pass yields more than ${round.toFixed(2)} tokens`;
    });
    const costSection: Section = {
      title: `Target forward over k new tokens after ${ctx} cached positions (batch 1, wasm, ${threads} threads; median of ${rounds})`,
      header: ["k", "ms", "× one token", "ms per token"],
      rows: ks.map((k) => [String(k), cost.get(k)!.toFixed(2), ratio(cost.get(k), base), (cost.get(k)! / k).toFixed(3)]),
      notes: [
        ...draftCost,
        "'× one token' is what verifying k tokens costs in steps. At batch 1 a step reads every weight for 2 flops each; k tokens reuse each weight k times, so where reading dominates (a GPU, k ≤ 32) k tokens cost about one step. On this CPU the arithmetic catches up with the reading by k ≈ 2–4 (one 384×1536 layer, 1 thread: 0.08 ms for 1 row, 0.14 for 4, 0.26 for 8, 0.61 for 16 — weights read at ~30 GB/s from cache, few-row products at 15–35 GFLOP/s), so the cost grows with k and a wide CaPE tree costs several steps",
        `others used ${pct(others1)} of the CPUs while this was measured; ${machineLine()}`,
        ...(quiet1 ? [quiet1] : []),
      ],
    };
    // ---- 2. decoding ----
    const file = resolve(ROOT, o.text ?? DEFAULTS.text);
    const prompts = heldOutPrompts(file, target, o.prompts, o.promptTokens);
    const methods: { name: string; drafter?: Drafter; cape: boolean }[] = [{ name: "plain (KV cache)", cape: false }, ...drafts];
    const rows: string[][] = [];
    const quiet2 = await waitQuiet(o.quietWait);
    let othersSum = 0, othersN = 0;
    // One untimed generation per method: the first calls of every kernel shape are slower.
    for (const mth of methods) {
      const o1 = { temperature: 0, maxNewTokens: 8, gamma: o.gamma, cape: mth.cape ? { bins: CAPE_BINS } : undefined };
      if (mth.drafter) await speculativeGenerate(target.model, mth.drafter, prompts[0], o1);
      else await generate(target.model, prompts[0], o1);
    }
    for (const temperature of [0, 1]) {
      const acc = methods.map(() => ({ ms: 0, tokens: 0, calls: [] as number[], draftCalls: 0, same: 0 }));
      for (const [pi, prompt] of prompts.entries()) {
        let plainTokens: number[] = [];
        // Methods take turns within each prompt, starting at a different one each time.
        for (let j = 0; j < methods.length; j++) {
          const mi = (j + pi) % methods.length;
          const mth = methods[mi];
          const opts: SpeculativeOptions = { temperature, topP: 1, maxNewTokens: o.newTokens, seed: pi, eosId: target.tokenizer.eosId, bosId: target.tokenizer.bosId, gamma: o.gamma, cape: mth.cape ? { bins: CAPE_BINS } : undefined };
          const { value: r, others } = await othersShare(async () => {
            const t0 = performance.now();
            const g = mth.drafter ? await speculativeGenerate(target.model, mth.drafter, prompt, opts) : await generate(target.model, prompt, opts);
            return { g, ms: performance.now() - t0 };
          });
          othersSum += others;
          othersN++;
          const a = acc[mi];
          a.ms += r.ms;
          a.tokens += r.g.tokens.length;
          if ("tokensPerCall" in r.g) {
            const s = r.g as SpeculativeGeneration;
            a.calls.push(...s.tokensPerCall);
            a.draftCalls += s.draftCalls;
          }
          if (mi === 0) plainTokens = r.g.tokens;
          else if (temperature === 0) (a as { pending?: number[] }).pending = r.g.tokens;
        }
        if (temperature === 0) for (let mi = 1; mi < methods.length; mi++) {
          const a = acc[mi] as (typeof acc)[number] & { pending?: number[] };
          if (JSON.stringify(a.pending) === JSON.stringify(plainTokens)) a.same++;
        }
      }
      const plainMsPerToken = acc[0].ms / Math.max(1, acc[0].tokens);
      methods.forEach((m, mi) => {
        const a = acc[mi];
        const tau = mi === 0 ? 1 : acceptanceSummary({ tokensPerCall: a.calls }).tokensPerCall;
        const msPerToken = a.ms / Math.max(1, a.tokens);
        rows.push([
          m.name, String(temperature), tau.toFixed(2), mi === 0 ? "–" : (a.draftCalls / Math.max(1, a.tokens)).toFixed(2), msPerToken.toFixed(2),
          ratio(plainMsPerToken, msPerToken), mi === 0 || temperature !== 0 ? "" : `${a.same}/${prompts.length}`,
        ]);
      });
    }
    const decodeSection: Section = {
      title: `Speculative decoding, batch 1, ${prompts.length} held-out prompts of ${o.promptTokens} tokens (${rel(file)}), ${o.newTokens} new tokens, γ ${o.gamma}, CaPE bins ${CAPE_BINS.join(",")}`,
      header: ["method", "T", "tokens/pass", "draft passes/token", "ms/token", "speed-up", "= plain"],
      rows,
      notes: [
        ...notes,
        ...skipped.map((s) => `skipped ${s}`),
        "tokens/pass (τ) counts the target's own token (bonus or correction); speed-up is plain's ms/token over the method's, measured in this run with the methods taking turns",
        `others used ${pct(othersN ? othersSum / othersN : NaN)} of the CPUs on average while decoding; ${machineLine()}`,
        ...(quiet2 ? [quiet2] : []),
      ],
    };
    return [costSection, decodeSection];
  } finally {
    loaded.cleanup();
  }
}

if (isMain(import.meta.url)) {
  const flags = parseFlags(process.argv.slice(2), "bench/speculative");
  const extra = ["target", "draft", "glide", "text", "prompts", "new", "gamma", "prompt-tokens", "threads", "tiny"];
  const base = benchOptions(flags, "bench/speculative", extra);
  const int = (k: string, d: number) => {
    const v = flags.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bench/speculative: --${k} must be a positive integer, got ${v}`);
    return n;
  };
  const o: SpeculativeBenchOptions = {
    ...base, target: flags.get("target"), draft: flags.get("draft"), glide: flags.get("glide"), text: flags.get("text"),
    prompts: int("prompts", base.quick ? 4 : 20), newTokens: int("new", base.quick ? 32 : 96), gamma: int("gamma", 4), promptTokens: int("prompt-tokens", 32),
    threads: flags.has("threads") ? int("threads", 1) : undefined, tiny: flags.has("tiny"),
  };
  const sections = await speculativeBench(o);
  console.log(`\n${sections.map(formatSection).join("\n\n")}`);
  await getWasmRuntime().shutdown();
}
