// Where the time of a speculative-decoding round goes (issue 11): decodes held-out prompts with
// the shipped target and a draft on the wasm backend (one untimed warm-up generation), and splits
// every round's wall time into its phases, with the kernels run in each:
//
//   draft catch-up   the drafter's first pass of a round, over the committed tokens it has not seen
//   draft steps      its further passes, one proposal each
//   verify           the target's pass over the root and the proposals (tree mask included)
//   readback         copying results to the host (Tensor.data), in whichever phase
//   rollback         cache truncate/select, target and draft
//   host             the rest: acceptance, argmax / sampling over the vocabulary, bookkeeping
//
// and plain KV-cached decoding's step the same way, for comparison. Not a speed-up measurement
// (bench/speculative.ts is): timing every kernel call adds a few µs to it.
//
//   npx tsx bench/speculative-profile.ts [--method=vanilla|glide] [--cape] [--temperature=0]
//       [--prompts=4] [--new=64] [--gamma=4] [--threads=1] [--top=12]
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { BackendBuffer } from "../core/backend.ts";
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import type { KernelName } from "../core/kernels.ts";
import { Tensor } from "../core/index.ts";
import { CAPE_BINS, generate, glideDrafter, lmDrafter, speculativeGenerate, type Drafter } from "../decoding/index.ts";
import { DecoderCache } from "../nn/layers/kv-cache.ts";
import { isCausalLM, isGlideDraft, loadModelDir, paragraphs, type CausalLM, type ModelDir } from "../nn/index.ts";
import { isMain, machineLine, parseFlags, tally, type Tally } from "./harness.ts";
const ROOT = resolve(import.meta.dirname ?? ".", "..");

type Phase = "prefill" | "plain prefill" | "draft catch-up" | "draft steps" | "verify" | "rollback" | "plain step" | "host";

export interface ProfileOptions { method: "vanilla" | "glide"; cape: boolean; temperature: number; prompts: number; newTokens: number; gamma: number; threads: number }

export async function profileSpeculative(o: ProfileOptions) {
  const backend = setBackend("wasm") as { run: (k: KernelName, i: BackendBuffer[], p: never) => BackendBuffer[] };
  const rt = getWasmRuntime();
  await rt.ready();
  rt.setNumThreads(o.threads);
  const target = loadModelDir(resolve(ROOT, "models/lm-austen")) as ModelDir<CausalLM>;
  const d = loadModelDir(resolve(ROOT, o.method === "glide" ? "models/glide-austen" : "models/draft-austen"));
  const drafter: Drafter = isGlideDraft(d.model) ? glideDrafter(d.model) : isCausalLM(d.model) ? lmDrafter(d.model) : (() => { throw new Error("not a draft"); })();
  const text = readFileSync(resolve(ROOT, "../shared/data/janeausten/northangerabbey.txt"), "utf8");
  const ps = paragraphs(text).map((p) => target.tokenizer.encode(p)).filter((ids) => ids.length >= 40);
  const step = Math.max(1, Math.floor(ps.length / o.prompts));
  const prompts = Array.from({ length: o.prompts }, (_, i) => Array.from(ps[(i * step) % ps.length].slice(0, 32)));
  const opts = (i: number) => ({ temperature: o.temperature, topP: 1, maxNewTokens: o.newTokens, seed: i, eosId: target.tokenizer.eosId, bosId: target.tokenizer.bosId, gamma: o.gamma, cape: o.cape ? { bins: CAPE_BINS } : undefined });
  await speculativeGenerate(target.model, drafter, prompts[0], { ...opts(0), maxNewTokens: 16 }); // warm-up
  await generate(target.model, prompts[0], { ...opts(0), maxNewTokens: 16 });

  // ---- instrumentation (restored at the end) ----
  let phase: Phase = "host";
  const phases = new Map<string, Tally>(), kernels = new Map<string, Tally>();
  // Runs f as `p`, charging its time to p (nested phases charge the outer one only their own time).
  let nested = 0;
  const timed = <T>(p: Phase, f: () => T): T => {
    const prev = phase, outer = nested;
    phase = p;
    nested = 0;
    const t0 = performance.now();
    try {
      return f();
    } finally {
      const ms = performance.now() - t0;
      tally(phases, p, ms - nested);
      phase = prev;
      nested = outer + ms;
    }
  };
  const run = backend.run;
  backend.run = function (kernel, inputs, params) {
    const t0 = performance.now();
    const out = run.call(this, kernel, inputs, params);
    const q = params as Record<string, number>;
    // attention's batched products change shape with the cache length: one key for them all
    const shape = kernel !== "matmul" ? "" : q.batch > 1 ? " (attention, batched over heads)" : ` [${q.M}×${q.K}]·[${q.K}×${q.N}]`;
    tally(kernels, `${phase.padEnd(14)} ${kernel}${shape}`, performance.now() - t0);
    return out;
  };
  const data = Tensor.prototype.data, dataSync = Tensor.prototype.dataSync;
  // A read on wasm finishes at once (an awaited promise): its time is that of the copy.
  Tensor.prototype.data = async function (this: Tensor) {
    const t0 = performance.now(), who = phase;
    const r = await data.call(this);
    tally(phases, `readback (${who})`, performance.now() - t0);
    return r;
  };
  const truncate = DecoderCache.prototype.truncate, select = DecoderCache.prototype.select;
  DecoderCache.prototype.truncate = function (this: DecoderCache, n: number) { return timed("rollback", () => truncate.call(this, n)); };
  DecoderCache.prototype.select = function (this: DecoderCache, p: ArrayLike<number>) { return timed("rollback", () => select.call(this, p)); };
  const feed = drafter.feed.bind(drafter);
  let firstFeed = true;
  drafter.feed = (tokens, cache) => {
    const p: Phase = firstFeed ? "draft catch-up" : "draft steps";
    firstFeed = false;
    return timed(p, () => feed(tokens, cache));
  };
  const forward = target.model.forward.bind(target.model);
  let prefilled = false, plain = false;
  target.model.forward = (ids, fo) => {
    const p: Phase = plain ? (prefilled ? "plain step" : "plain prefill") : prefilled ? "verify" : "prefill";
    prefilled = true;
    return timed(p, () => forward(ids, fo));
  };

  let rounds = 0, specMs = 0, specTokens = 0, plainMs = 0, plainSteps = 0, tau = 0;
  try {
    for (const [i, prompt] of prompts.entries()) {
      prefilled = false;
      plain = false;
      firstFeed = true;
      const s0 = performance.now();
      const g = await speculativeGenerate(target.model, drafter, prompt, {
        ...opts(i),
        onRound: () => {
          rounds++;
          firstFeed = true;
        },
      });
      specMs += performance.now() - s0;
      specTokens += g.tokens.length;
      tau += g.tokensPerCall.reduce((a, b) => a + b, 0);
      prefilled = false;
      plain = true;
      const p0 = performance.now();
      const pg = await generate(target.model, prompt, opts(i));
      plainMs += performance.now() - p0;
      plainSteps += pg.targetCalls;
    }
  } finally {
    backend.run = run;
    Tensor.prototype.data = data;
    Tensor.prototype.dataSync = dataSync;
    DecoderCache.prototype.truncate = truncate;
    DecoderCache.prototype.select = select;
    drafter.feed = feed;
    target.model.forward = forward;
  }
  drafter.dispose();
  d.model.dispose();
  target.model.dispose();
  // Host: the rounds' wall time less every timed phase (prefill and its read excluded from both).
  const timedMs = [...phases].filter(([k]) => !k.includes("plain")).reduce((a, [, t]) => a + t.ms, 0);
  phases.set("host", { calls: rounds, ms: specMs - timedMs });
  phases.delete("prefill");
  return { rounds, specMs, specTokens, tau, plainMs, plainSteps, phases, kernels };
}

if (isMain(import.meta.url)) {
  const flags = parseFlags(process.argv.slice(2), "bench/speculative-profile");
  const known = ["method", "cape", "temperature", "prompts", "new", "gamma", "threads", "top"];
  for (const k of flags.keys()) if (!known.includes(k)) throw new Error(`bench/speculative-profile: unknown flag --${k}; known: ${known.map((x) => `--${x}`).join(", ")}`);
  const num = (k: string, dflt: number) => Number(flags.get(k) ?? dflt);
  const method = flags.get("method") ?? "vanilla";
  if (method !== "vanilla" && method !== "glide") throw new Error("bench/speculative-profile: --method must be vanilla or glide");
  const o: ProfileOptions = { method, cape: flags.has("cape"), temperature: num("temperature", 0), prompts: num("prompts", 4), newTokens: num("new", 64), gamma: num("gamma", 4), threads: num("threads", 1) };
  const r = await profileSpeculative(o);
  const perRound = (ms: number) => `${(ms / r.rounds).toFixed(3).padStart(7)} ms/round`;
  console.log(machineLine());
  console.log(`${o.method}${o.cape ? " + CaPE" : ""}, T ${o.temperature}, γ ${o.gamma}, ${o.threads} thread(s): ${o.prompts} prompts, ${r.rounds} rounds, τ ${(r.tau / r.rounds).toFixed(2)} tokens/round`);
  let specTotal = 0;
  console.log("\nspeculative round, by phase (the prompt's prefill left out):");
  for (const [k, t] of [...r.phases].filter(([k]) => !k.includes("plain") && !k.includes("prefill")).sort((a, b) => b[1].ms - a[1].ms)) {
    specTotal += t.ms;
    console.log(`  ${perRound(t.ms)} ${(t.calls / r.rounds).toFixed(2).padStart(6)} calls/round  ${k}`);
  }
  console.log(`  ${perRound(specTotal)}                     a round: ${(specTotal / r.tau).toFixed(3)} ms per token`);
  const steps = r.phases.get("plain step");
  const back = r.phases.get("readback (plain step)");
  if (steps) console.log(`\nplain step: ${(steps.ms / steps.calls).toFixed(3)} ms forward + ${((back?.ms ?? 0) / steps.calls).toFixed(3)} ms readback; whole plain generation ${(r.plainMs / r.plainSteps).toFixed(3)} ms per target call`);
  console.log(`\nkernels by phase (top ${num("top", 12)}):`);
  for (const [k, t] of [...r.kernels].sort((a, b) => b[1].ms - a[1].ms).slice(0, num("top", 12))) {
    console.log(`  ${perRound(t.ms)} ${(t.calls / r.rounds).toFixed(1).padStart(6)} calls/round ${((1000 * t.ms) / t.calls).toFixed(1).padStart(8)} µs/call  ${k}`);
  }
  await getWasmRuntime().shutdown();
}
