// `hasten generate --model DIR [options] < prompts.txt > continuations.txt`: one continuation per
// prompt line, from a causal language model. Thin: parse flags, load the model directory, call
// decoding/generate.ts — or, with --draft, decoding/speculative (lossless speculative decoding:
// the same tokens at temperature 0, the same distribution otherwise). With --jsonl each line is a
// JSON object instead.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Generator } from "../../core/index.ts";
import { acceptanceSummary, CAPE_BINS, checkBins, generate, glideDrafter, lmDrafter, speculativeGenerate, toOneLine, type Drafter, type Generation } from "../../decoding/index.ts";
import { isCausalLM, isGlideDraft, loadModelDir, type CausalLM, type ModelDir } from "../../nn/index.ts";
import { causalLMOf, decodingNumber, loadModelOrExplain, readInput, runCommand, splitLines, useBackend, writers, type CommandIO } from "../cli/common.ts";
import { formatHelp, parseFlags, UsageError, type FlagSpec } from "../cli/flags.ts";

export const MAX_NEW_TOKENS = 100_000;

const SPEC: FlagSpec = {
  model: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "model directory of a causal language model" },
  input: { spec: { kind: "string", nonEmpty: true }, alias: "-i", value: "FILE", help: "read prompts from FILE instead of standard input" },
  "max-new-tokens": { spec: { kind: "int", min: 0, max: MAX_NEW_TOKENS }, value: "N", help: "longest continuation (default: the model's)" },
  temperature: { spec: { kind: "number", min: 0, max: 100 }, value: "T", help: "sampling temperature; 0 = greedy (default: the model's)" },
  "top-p": { spec: { kind: "number", min: 0, max: 1, above: true }, value: "P", help: "nucleus sampling: keep the most probable tokens up to mass P (default: the model's)" },
  seed: { spec: { kind: "int", min: 0, max: 0xffffffff }, value: "N", help: "seed of the draws (prompt i uses seed:i)", default: 0 },
  draft: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "a draft model directory (kind lm with the target's tokenizer, or glide): speculative decoding" },
  method: { spec: { kind: "enum", values: ["plain", "vanilla", "vanilla-cape", "glide", "glide-cape"] }, value: "M", help: "plain, vanilla[-cape] (an lm draft), glide[-cape] (a glide draft); default: plain without --draft, else the draft's decoding.method, else vanilla or glide-cape" },
  gamma: { spec: { kind: "int", min: 1, max: 64 }, value: "N", help: "tokens drafted per target pass (default: the draft's, else 4)" },
  "cape-bins": { spec: { kind: "string", nonEmpty: true }, value: "K,K,…", help: "CaPE: tokens verified per depth by draft confidence, 10 counts for 0–0.1 … 0.9–1 (default: the draft's, else 8,8,8,6,6,6,4,4,2,2)" },
  jsonl: { spec: { kind: "bool" }, help: "one JSON object per prompt: text, tokens, targetCalls, stopped (with --draft also method, tokensPerCall, draftCalls)" },
  backend: { spec: { kind: "string" }, value: "NAME[:MODE]", help: "wasm (default), cpu, gpujs:webgpu, gpujs:webasm" },
  verbose: { spec: { kind: "bool" }, alias: "-v", help: "progress and timing on standard error even when it is not a terminal" },
  help: { spec: { kind: "bool" }, alias: "-h", help: "show this help" },
};

const USAGE = formatHelp({
  usage: "hasten generate --model DIR [options] < PROMPTS > CONTINUATIONS",
  description: "Continues each prompt line with a causal language model and writes one line per prompt, in order\n(line breaks inside a continuation written as spaces). An empty line is an empty prompt.",
  spec: SPEC,
});

export interface GenerateRecord {
  prompt: string;
  text: string;
  tokens: number[];
  targetCalls: number;
  stopped: string;
  // Speculative methods only: tokens each verifying target pass produced, and draft passes.
  method?: string;
  tokensPerCall?: number[];
  draftCalls?: number;
}

type Method = "plain" | "vanilla" | "vanilla-cape" | "glide" | "glide-cape";

// The draft directory as a drafter for this target, with the method it supports best; checks that
// the two share a tokenizer and, for GliDe, that the draft reads this target's cache.
function loadDrafter(dir: string, target: ModelDir<CausalLM>, targetDir: string, method: Method | undefined, warn: (s: string) => void): { drafter: Drafter; method: Method; draft: ModelDir } {
  let d: ModelDir;
  try {
    d = loadModelDir(dir);
  } catch (e) {
    throw new UsageError(`hasten generate: cannot load the draft: ${(e as Error).message}`);
  }
  const fail = (msg: string): never => {
    d.model.dispose();
    throw new UsageError(`hasten generate: ${msg}`);
  };
  if (JSON.stringify(d.tokenizer.toJSON()) !== JSON.stringify(target.tokenizer.toJSON())) fail(`the draft ${dir} has another tokenizer than the target; train it with --tokenizer <target>/tokenizer.json (lm) or --target <target> (glide)`);
  // A draft directory may name its own best method (decoding.method), e.g. after benchmarking it.
  const saved = d.config.decoding.method;
  const preferred = (ok: readonly Method[], dflt: Method): Method => method ?? (typeof saved === "string" && (ok as readonly string[]).includes(saved) ? (saved as Method) : dflt);
  if (isGlideDraft(d.model)) {
    const m = preferred(["glide", "glide-cape"], "glide-cape");
    if (m !== "glide" && m !== "glide-cape") fail(`--method ${m} needs an lm draft; ${dir} holds a glide draft (use --method glide or glide-cape)`);
    const tc = target.config.config as { layers?: number; heads?: number; dModel?: number };
    const dc = d.model.config;
    if (target.config.kind !== "lm" || tc.layers !== dc.targetLayers || tc.heads !== dc.targetHeads || (tc.dModel ?? 0) / (tc.heads ?? 1) !== dc.targetHeadDim) {
      fail(`the glide draft ${dir} reads a target of ${dc.targetLayers} layers × ${dc.targetHeads} heads of width ${dc.targetHeadDim}; the target is a ${target.config.kind} model of ${tc.layers} layers × ${tc.heads} heads of width ${(tc.dModel ?? 0) / (tc.heads ?? 1)}`);
    }
    const want = d.config.decoding.targetSha256;
    if (typeof want === "string") {
      const got = createHash("sha256").update(readFileSync(join(targetDir, "model.safetensors"))).digest("hex");
      if (got !== want) warn(`hasten generate: warning: the glide draft was trained against other target weights; the output is still exact, but few proposals may be accepted\n`);
    }
    return { drafter: glideDrafter(d.model), method: m, draft: d };
  }
  if (isCausalLM(d.model)) {
    const m = preferred(["vanilla", "vanilla-cape"], "vanilla");
    if (m !== "vanilla" && m !== "vanilla-cape") fail(`--method ${m} needs a glide draft; ${dir} holds an lm draft (use --method vanilla or vanilla-cape)`);
    return { drafter: lmDrafter(d.model), method: m, draft: d };
  }
  return fail(`the draft ${dir} holds a ${d.model.family} model; a draft is a causal LM (kind lm) or a glide draft`);
}

export async function generateCommand(argv: string[], io: CommandIO = {}): Promise<GenerateRecord[] | undefined> {
  return runCommand(io, async () => {
    const a = parseFlags("generate", argv, SPEC);
    const f = a.flags;
    const out = writers(io, Boolean(f.verbose));
    if (f.help) {
      out.stdout(USAGE + "\n");
      return undefined;
    }
    await useBackend("generate", f.backend as string | undefined);
    const dir = f.model as string | undefined;
    const method = f.method as Method | undefined;
    if (method !== undefined && method !== "plain" && f.draft === undefined) throw new UsageError(`hasten generate: --method ${method} needs a draft model: --draft DIR\n${USAGE}`);
    let bins: readonly number[] | undefined;
    if (f["cape-bins"] !== undefined) {
      try {
        bins = checkBins(String(f["cape-bins"]).split(",").map((s) => Number(s.trim())), "--cape-bins");
      } catch (e) {
        throw new UsageError(`hasten generate: ${(e as Error).message}`);
      }
    }
    const m: ModelDir<CausalLM> = causalLMOf("generate", loadModelOrExplain("generate", dir, USAGE), dir!);
    let spec: ReturnType<typeof loadDrafter> | undefined;
    try {
      if (f.draft !== undefined && method !== "plain") spec = loadDrafter(f.draft as string, m, dir!, method, out.stderr);
      const maxNewTokens = (f["max-new-tokens"] as number | undefined) ?? decodingNumber(m, "maxNewTokens", 100);
      const temperature = (f.temperature as number | undefined) ?? decodingNumber(m, "temperature", 1);
      const topP = (f["top-p"] as number | undefined) ?? decodingNumber(m, "topP", 1);
      const seed = (f.seed as number | undefined) ?? 0;
      const gamma = (f.gamma as number | undefined) ?? (spec ? decodingNumber(spec.draft, "gamma", 4) : 4);
      const savedBins = spec?.draft.config.decoding.capeBins;
      const cape = spec?.method.endsWith("-cape") ? { bins: bins ?? (typeof savedBins === "string" ? savedBins.split(",").map(Number) : CAPE_BINS) } : undefined;
      const prompts = splitLines(await readInput("generate", io, f.input as string | undefined, out.stderr, USAGE));
      const t0 = performance.now();
      const records: GenerateRecord[] = [];
      let tokens = 0, cut = 0, perCall = 0, calls = 0;
      for (const [i, prompt] of prompts.entries()) {
        const o = { maxNewTokens, temperature, topP, generator: new Generator(`${seed}:${i}`), bosId: m.tokenizer.bosId, eosId: m.tokenizer.eosId };
        const ids = m.tokenizer.encode(prompt);
        let g: Generation;
        let extra: Partial<GenerateRecord> = {};
        if (spec) {
          const s = await speculativeGenerate(m.model, spec.drafter, ids, { ...o, gamma, cape });
          g = s;
          extra = { method: spec.method, tokensPerCall: s.tokensPerCall, draftCalls: s.draftCalls };
          const a = acceptanceSummary(s);
          perCall += a.tokensPerCall * a.calls;
          calls += a.calls;
        } else {
          g = await generate(m.model, ids, o);
        }
        if (g.promptTokens < ids.length) cut++;
        const text = toOneLine(m.tokenizer.decode(g.tokens));
        const rec: GenerateRecord = { prompt, text, tokens: g.tokens, targetCalls: g.targetCalls, stopped: g.stopped, ...extra };
        records.push(rec);
        tokens += g.tokens.length;
        out.stdout((f.jsonl ? JSON.stringify(rec) : text) + "\n");
        out.progress(`generated ${i + 1}/${prompts.length}`);
      }
      out.endProgress();
      if (cut > 0) out.stderr(`hasten generate: warning: ${cut} prompt(s) longer than the model's context of ${m.model.config.maxLen - 1} tokens were cut to their last tokens\n`);
      const secs = (performance.now() - t0) / 1000;
      const how = spec ? `, ${spec.method} (γ ${gamma}): ${(perCall / Math.max(calls, 1)).toFixed(2)} tokens per target pass` : "";
      out.info(`hasten generate: ${prompts.length} prompts, ${tokens} tokens in ${secs.toFixed(2)} s (${(tokens / Math.max(secs, 1e-9)).toFixed(1)} tokens/s), temperature ${temperature}, top-p ${topP}${how}`);
      return records;
    } finally {
      spec?.drafter.dispose();
      spec?.draft.model.dispose();
      m.model.dispose();
    }
  });
}
