// Sampling continuations from a causal language model, one prompt at a time, through its KV cache.
//
// The prompt (bos x₁ … xₙ) is fed in one forward pass; then each step draws the next token from
//   p(v) ∝ exp(logit_v / T)        restricted to the nucleus (top-p) when topP < 1:
// the smallest set of most probable tokens whose probability reaches topP (Holtzman et al. 2020),
// renormalised. T = 0 is greedy decoding (argmax, ties to the lowest id). Draws come from a seeded
// Generator, so the same seed gives the same text on every backend.
//
// `targetCalls` counts the forward passes of the model (the prompt counts as one): the quantity
// speculative decoding reduces.
import { Generator, noGrad, tensor, tidy, type Tensor } from "../core/index.ts";
import type { CausalLM } from "../nn/models/index.ts";
import { backendOf, DEFAULT_BANNED, inEvalMode } from "./common.ts";

export interface GenerateOptions {
  maxNewTokens?: number; // default 100
  temperature?: number; // 0 = greedy; default 1
  topP?: number; // in (0, 1]; default 1 (no truncation)
  generator?: Generator; // default: a new Generator(seed)
  seed?: number; // default 0
  bosId?: number; // fed before the prompt; default 1
  eosId?: number; // generation stops after emitting it (not returned); default 2
  banned?: readonly number[]; // never emitted besides pad (0) and bos; default <unk>, <mask>
}

export interface Generation {
  tokens: number[]; // the continuation, without the prompt and without eos
  targetCalls: number; // forward passes of the model
  stopped: "eos" | "maxNewTokens" | "maxLen";
  promptTokens: number; // prompt tokens fed (after cutting to the model's context)
}

export interface SamplingRule {
  temperature: number;
  topP: number;
}

export function checkSampling(who: string, o: { temperature?: number; topP?: number }): SamplingRule {
  const temperature = o.temperature ?? 1, topP = o.topP ?? 1;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new Error(`${who}: temperature must be a finite number >= 0, got ${temperature}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`${who}: topP must be in (0, 1], got ${topP}`);
  return { temperature, topP };
}

// The distribution a sampling rule draws from, given logits (float64 for the host arithmetic).
// Banned ids get probability 0. Returns null for greedy (temperature 0).
export function samplingDistribution(logits: ArrayLike<number>, rule: SamplingRule, banned: Uint8Array): Float64Array | null {
  if (rule.temperature === 0) return null;
  const V = logits.length;
  const p = new Float64Array(V);
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (!banned[v] && logits[v] > max) max = logits[v];
  let z = 0;
  for (let v = 0; v < V; v++) {
    const e = banned[v] || logits[v] === -Infinity ? 0 : Math.exp((logits[v] - max) / rule.temperature);
    p[v] = e;
    z += e;
  }
  for (let v = 0; v < V; v++) p[v] /= z;
  if (rule.topP < 1) {
    // Keep the most probable tokens until their mass reaches topP (ties: lower id first).
    const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
    let mass = 0, kept = 0;
    while (kept < V && mass < rule.topP) mass += p[order[kept++]];
    for (let i = kept; i < V; i++) p[order[i]] = 0;
    for (let v = 0; v < V; v++) p[v] /= mass;
  }
  return p;
}

export function argmaxAllowed(logits: ArrayLike<number>, banned: Uint8Array): number {
  let best = -1, bestV = -Infinity;
  for (let v = 0; v < logits.length; v++) if (!banned[v] && (best < 0 || logits[v] > bestV)) { best = v; bestV = logits[v]; }
  return best;
}

// One draw from a distribution by inversion: the first v whose cumulative mass exceeds u.
export function drawFrom(p: Float64Array, u: number): number {
  let c = 0, last = -1;
  for (let v = 0; v < p.length; v++) {
    if (p[v] <= 0) continue;
    c += p[v];
    last = v;
    if (u < c) return v;
  }
  return last; // u ≥ the summed mass by rounding: the last token with mass
}

export function bannedMask(V: number, ids: readonly number[], who: string, eosId: number): Uint8Array {
  const m = new Uint8Array(V);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`${who}: banned id ${id} is outside the vocabulary [0, ${V})`);
    if (id === eosId) throw new Error(`${who}: eos (${eosId}) cannot be banned: generation could only stop at its length limit`);
    m[id] = 1;
  }
  return m;
}

// What every sampler of a causal LM checks and derives from its options: the limits, the sampling
// rule, the banned ids and the context (bos + prompt, cut to the model's context).
export interface GenerationSetup {
  V: number;
  maxLen: number;
  maxNew: number;
  rule: SamplingRule;
  bosId: number;
  eosId: number;
  banned: Uint8Array;
  gen: Generator;
  context: number[];
}

export function generationSetup(model: CausalLM, prompt: ArrayLike<number>, opts: GenerateOptions, who: string): GenerationSetup {
  const V = model.config.vocab, maxLen = model.config.maxLen;
  const maxNew = opts.maxNewTokens ?? 100;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new Error(`${who}: maxNewTokens must be an integer >= 0, got ${maxNew}`);
  const rule = checkSampling(who, opts);
  const bosId = opts.bosId ?? 1, eosId = opts.eosId ?? 2;
  for (const [k, v] of [["bosId", bosId], ["eosId", eosId]] as const) {
    if (!Number.isInteger(v) || v < 0 || v >= V) throw new Error(`${who}: ${k} must be an id in [0, ${V}), got ${v}`);
  }
  // pad (0) and bos are never emitted; an eos equal to either, or banned, is refused by bannedMask
  // (generation could then only stop at its length limit), as the translation decoders refuse it.
  const banned = bannedMask(V, [0, bosId, ...(opts.banned ?? DEFAULT_BANNED.filter((id) => id < V))], who, eosId);
  for (let j = 0; j < prompt.length; j++) {
    if (!Number.isInteger(prompt[j]) || prompt[j] < 0 || prompt[j] >= V) throw new Error(`${who}: prompt position ${j} holds ${prompt[j]}, expected an id in [0, ${V})`);
  }
  const gen = opts.generator ?? new Generator(opts.seed ?? 0);
  // bos + prompt, keeping the most recent tokens when it exceeds the context (one position is
  // left for the first new token).
  const all = [bosId, ...Array.from(prompt)];
  const context = all.length > maxLen - 1 ? all.slice(all.length - (maxLen - 1)) : all;
  return { V, maxLen, maxNew, rule, bosId, eosId, banned, gen, context };
}

export async function generate(model: CausalLM, prompt: ArrayLike<number>, opts: GenerateOptions = {}): Promise<Generation> {
  const { V, maxLen, maxNew, rule, eosId, banned, gen, context } = generationSetup(model, prompt, opts, "generate");
  const backend = backendOf(model);
  return inEvalMode(model, async () => {
    const cache = model.createCache();
    const out: Generation = { tokens: [], targetCalls: 0, stopped: "maxNewTokens", promptTokens: context.length - 1 };
    try {
      const read = async (t: Tensor) => {
        try {
          return (await t.data()) as Float32Array;
        } finally {
          t.dispose();
        }
      };
      let logits = await read(noGrad(() => tidy(() => {
        const ids = tensor(Int32Array.from(context), { dtype: "int32", shape: [1, context.length], backend });
        return model.forward(ids, { cache }).narrow(1, context.length - 1, 1).reshape(V);
      })));
      out.targetCalls++;
      while (out.tokens.length < maxNew) {
        const p = samplingDistribution(logits, rule, banned);
        const next = p === null ? argmaxAllowed(logits, banned) : drawFrom(p, gen.random());
        if (next === eosId) {
          out.stopped = "eos";
          break;
        }
        out.tokens.push(next);
        if (out.tokens.length >= maxNew) break;
        if (cache.length >= maxLen) {
          out.stopped = "maxLen";
          break;
        }
        logits = await read(noGrad(() => tidy(() => model.decodeStep(tensor(Int32Array.of(next), { dtype: "int32", backend }), cache).reshape(V))));
        out.targetCalls++;
      }
    } finally {
      cache.dispose();
    }
    return out;
  });
}
