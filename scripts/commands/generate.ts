// `hasten generate --model DIR [options] < prompts.txt > continuations.txt`: one continuation per
// prompt line, from a causal language model. Thin: parse flags, load the model directory, call
// decoding/generate.ts. With --jsonl each line is a JSON object instead.
import { Generator } from "../../core/index.ts";
import { generate, toOneLine } from "../../decoding/index.ts";
import type { CausalLM, ModelDir } from "../../nn/index.ts";
import { causalLMOf, decodingNumber, loadModelOrExplain, readInput, runCommand, splitLines, useBackend, writers, type CommandIO } from "../cli/common.ts";
import { formatHelp, parseFlags, type FlagSpec } from "../cli/flags.ts";

export const MAX_NEW_TOKENS = 100_000;

const SPEC: FlagSpec = {
  model: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "model directory of a causal language model" },
  input: { spec: { kind: "string", nonEmpty: true }, alias: "-i", value: "FILE", help: "read prompts from FILE instead of standard input" },
  "max-new-tokens": { spec: { kind: "int", min: 0, max: MAX_NEW_TOKENS }, value: "N", help: "longest continuation (default: the model's)" },
  temperature: { spec: { kind: "number", min: 0, max: 100 }, value: "T", help: "sampling temperature; 0 = greedy (default: the model's)" },
  "top-p": { spec: { kind: "number", min: 0, max: 1, above: true }, value: "P", help: "nucleus sampling: keep the most probable tokens up to mass P (default: the model's)" },
  seed: { spec: { kind: "int", min: 0, max: 0xffffffff }, value: "N", help: "seed of the draws (prompt i uses seed:i)", default: 0 },
  jsonl: { spec: { kind: "bool" }, help: "one JSON object per prompt: text, tokens, targetCalls, stopped" },
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
    const m: ModelDir<CausalLM> = causalLMOf("generate", loadModelOrExplain("generate", dir, USAGE), dir!);
    try {
      const maxNewTokens = (f["max-new-tokens"] as number | undefined) ?? decodingNumber(m, "maxNewTokens", 100);
      const temperature = (f.temperature as number | undefined) ?? decodingNumber(m, "temperature", 1);
      const topP = (f["top-p"] as number | undefined) ?? decodingNumber(m, "topP", 1);
      const seed = (f.seed as number | undefined) ?? 0;
      const prompts = splitLines(await readInput("generate", io, f.input as string | undefined, out.stderr, USAGE));
      const t0 = performance.now();
      const records: GenerateRecord[] = [];
      let tokens = 0, cut = 0;
      for (const [i, prompt] of prompts.entries()) {
        const g = await generate(m.model, m.tokenizer.encode(prompt), {
          maxNewTokens, temperature, topP, generator: new Generator(`${seed}:${i}`),
          bosId: m.tokenizer.bosId, eosId: m.tokenizer.eosId,
        });
        if (g.promptTokens < m.tokenizer.encode(prompt).length) cut++;
        const text = toOneLine(m.tokenizer.decode(g.tokens));
        const rec: GenerateRecord = { prompt, text, tokens: g.tokens, targetCalls: g.targetCalls, stopped: g.stopped };
        records.push(rec);
        tokens += g.tokens.length;
        out.stdout((f.jsonl ? JSON.stringify(rec) : text) + "\n");
        out.progress(`generated ${i + 1}/${prompts.length}`);
      }
      out.endProgress();
      if (cut > 0) out.stderr(`hasten generate: warning: ${cut} prompt(s) longer than the model's context of ${m.model.config.maxLen - 1} tokens were cut to their last tokens\n`);
      const secs = (performance.now() - t0) / 1000;
      out.info(`hasten generate: ${prompts.length} prompts, ${tokens} tokens in ${secs.toFixed(2)} s (${(tokens / Math.max(secs, 1e-9)).toFixed(1)} tokens/s), temperature ${temperature}, top-p ${topP}`);
      return records;
    } finally {
      m.model.dispose();
    }
  });
}
