// Sequence-level knowledge distillation (Kim & Rush 2016): the teacher's beam-search output on the
// training sources replaces the references, which gives a non-autoregressive student a target that
// one model would produce (less multi-modality than human references).
//
// The output is written so that nothing is lost when the process is killed:
//   OUT.partial        translations so far, one per line, appended a chunk at a time and fsynced
//   OUT.partial.json   what is being distilled (source fingerprint, decoding settings)
// A restart with the same source and settings keeps the complete lines of OUT.partial (a line cut
// by the kill is dropped) and continues after them; at the end OUT.partial is renamed to OUT, so
// OUT appears whole or not at all.
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { syncDirectory, writeFileAtomic } from "../core/index.ts";
import type { EncoderDecoderModel } from "../nn/models/index.ts";
import type { BpeTokenizer } from "../nn/tokenizer/index.ts";
import { translateLines, type CorpusOptions } from "./corpus.ts";

export interface DistillOptions extends Omit<CorpusOptions, "onBatch"> {
  chunk?: number; // lines translated between two appends (default 512)
  onProgress?: (done: number, total: number, resumedFrom: number) => void;
}

export interface DistillResult {
  lines: number;
  resumedFrom: number; // lines found complete in OUT.partial at the start
  truncated: number; // sources cut to the model's maxLen
}

// The number of complete lines of a file ("\n"-terminated), cutting a trailing partial line off.
function completeLines(path: string): number {
  const data = readFileSync(path);
  let n = 0, end = 0;
  for (let i = 0; i < data.length; i++) {
    if (data[i] === 0x0a) {
      n++;
      end = i + 1;
    }
  }
  if (end < data.length) truncateSync(path, end);
  return n;
}

export async function distillLines(m: { model: EncoderDecoderModel; tokenizer: BpeTokenizer }, sources: readonly string[], outPath: string, opts: DistillOptions = {}): Promise<DistillResult> {
  const chunk = opts.chunk ?? 512;
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`distillLines: chunk must be an integer >= 1, got ${chunk}`);
  const partial = `${outPath}.partial`, stateFile = `${outPath}.partial.json`;
  const settings = { beam: opts.beam ?? 5, lengthPenalty: opts.lengthPenalty ?? 1, maxLenA: opts.maxLenA ?? 1.5, maxLenB: opts.maxLenB ?? 10 };
  const fingerprint = createHash("sha256").update(sources.join("\n")).digest("hex");
  const state = { format: "hasten-distill", sources: sources.length, sourceSha256: fingerprint, settings };
  let done = 0;
  if (existsSync(partial) && existsSync(stateFile)) {
    let saved: typeof state | undefined;
    try {
      saved = JSON.parse(readFileSync(stateFile, "utf8")) as typeof state;
    } catch {
      saved = undefined;
    }
    if (saved && JSON.stringify(saved) === JSON.stringify(state)) {
      done = completeLines(partial);
      if (done > sources.length) throw new Error(`distillLines: ${partial} holds ${done} lines, more than the ${sources.length} sources; delete it to start over`);
    } else {
      rmSync(partial, { force: true }); // another source or other settings: start over
    }
  } else rmSync(partial, { force: true });
  writeFileAtomic(stateFile, JSON.stringify(state) + "\n");
  const resumedFrom = done;
  let truncated = 0;
  opts.onProgress?.(done, sources.length, resumedFrom);
  const fd = openSync(partial, "a");
  try {
    while (done < sources.length) {
      const part = sources.slice(done, done + chunk);
      const r = await translateLines(m, part, { ...opts, ...settings });
      truncated += r.truncated.length;
      const bytes = Buffer.from(r.translations.map((t) => t + "\n").join(""), "utf8");
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off);
      fsyncSync(fd);
      done += part.length;
      opts.onProgress?.(done, sources.length, resumedFrom);
    }
  } finally {
    closeSync(fd);
  }
  if (statSync(partial).size === 0 && sources.length > 0) throw new Error(`distillLines: ${partial} is empty after translating ${sources.length} lines`);
  renameSync(partial, outPath);
  syncDirectory(dirname(outPath));
  rmSync(stateFile, { force: true });
  return { lines: sources.length, resumedFrom, truncated };
}
