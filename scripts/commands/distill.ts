// `hasten distill --model models/ar-de-en --out runs/distill-de-en`: a distilled copy of a parallel
// corpus for training non-autoregressive students. The teacher translates <split>.<src> with beam
// search; OUT gets <split>.<src> (copied), <split>.<tgt> (the teacher's output) and the
// validation files (copied: validation stays against the real references). Killed, it resumes
// where it stopped when run again with the same flags.
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "../../core/index.ts";
import { distillLines } from "../../decoding/index.ts";
import { defaultDataDir, readLines, type EncoderDecoderModel, type ModelDir } from "../../nn/index.ts";
import { decodingNumber, encoderDecoderOf, loadModelOrExplain, runCommand, useBackend, writers, type CommandIO } from "../cli/common.ts";
import { formatHelp, parseFlags, UsageError, type FlagSpec } from "../cli/flags.ts";
import { DECODING_FLAGS } from "./translate.ts";

// Copies keep the corpus files' mode, often read-only: a second run must not write over them.
function copyUnlessSame(from: string, to: string): void {
  if (existsSync(to) && readFileSync(to).equals(readFileSync(from))) return;
  rmSync(to, { force: true });
  copyFileSync(from, to);
}

const SPEC: FlagSpec = {
  model: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "the teacher: a translation model directory" },
  out: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "the distilled corpus folder" },
  data: { spec: { kind: "string", nonEmpty: true }, value: "DIR", help: "folder with <split>.<lang> files (default: <data dir>/multi30k)" },
  split: { spec: { kind: "string", nonEmpty: true }, value: "NAME", help: "the split to distill", default: "train" },
  "valid-split": { spec: { kind: "string", nonEmpty: true }, value: "NAME", help: "copied unchanged beside it", default: "valid" },
  limit: { spec: { kind: "int", min: 1 }, value: "N", help: "only the first N lines (tests)" },
  chunk: { spec: { kind: "int", min: 1, max: 100000 }, value: "N", help: "lines between two appends to the output (what a kill can lose)", default: 512 },
  force: { spec: { kind: "bool" }, help: "distil again although OUT already holds a finished corpus" },
  ...DECODING_FLAGS,
  beam: { ...DECODING_FLAGS.beam, help: "beam size of the teacher (default: the model's)" },
  verbose: { spec: { kind: "bool" }, alias: "-v", help: "progress on standard error even when it is not a terminal" },
  help: { spec: { kind: "bool" }, alias: "-h", help: "show this help" },
};

const USAGE = formatHelp({
  usage: "hasten distill --model DIR --out DIR [options]",
  description: "Sequence-level knowledge distillation: the teacher's beam output on <split>.<src> becomes\n<split>.<tgt> of a new corpus folder (line-aligned, written atomically, resumable after a kill).",
  spec: SPEC,
});

export async function distillCommand(argv: string[], io: CommandIO = {}): Promise<{ lines: number; resumedFrom: number } | undefined> {
  return runCommand(io, async () => {
    const { flags: f } = parseFlags("distill", argv, SPEC);
    const out = writers(io, Boolean(f.verbose));
    if (f.help) {
      out.stdout(USAGE + "\n");
      return undefined;
    }
    if (f.out === undefined) throw new UsageError(`hasten distill: --out DIR is required\n${USAGE}`);
    await useBackend("distill", f.backend as string | undefined);
    const dir = f.model as string | undefined;
    const m: ModelDir<EncoderDecoderModel> = encoderDecoderOf("distill", loadModelOrExplain("distill", dir, USAGE), dir!);
    try {
      const src = m.config.src!, tgt = m.config.tgt!;
      const data = f.data !== undefined ? resolve(f.data as string) : join(defaultDataDir(), "multi30k");
      const split = (f.split as string | undefined) ?? "train", validSplit = (f["valid-split"] as string | undefined) ?? "valid";
      const file = (s: string, lang: string) => join(data, `${s}.${lang}`);
      for (const p of [file(split, src), file(validSplit, src), file(validSplit, tgt)]) {
        if (!existsSync(p)) throw new UsageError(`hasten distill: ${p} not found (--data names the folder holding ${split}.${src}, ${validSplit}.${src} and ${validSplit}.${tgt})`);
      }
      let sources = readLines(file(split, src));
      if (f.limit !== undefined) sources = sources.slice(0, f.limit as number);
      const outDir = resolve(f.out as string);
      mkdirSync(outDir, { recursive: true });
      // The source side beside the output: the first `limit` lines when limited, else the file as
      // it is; and the validation files, unchanged.
      const copyCorpus = () => {
        if (f.limit !== undefined) writeFileAtomic(join(outDir, `${split}.${src}`), sources.join("\n") + "\n");
        else copyUnlessSame(file(split, src), join(outDir, `${split}.${src}`));
        for (const lang of [src, tgt]) copyUnlessSame(file(validSplit, lang), join(outDir, `${validSplit}.${lang}`));
      };
      const t0 = performance.now();
      // A finished corpus (the output renamed into place, no partial file) is not distilled again:
      // running the same command twice, as a recipe script does, costs nothing the second time.
      const target = join(outDir, `${split}.${tgt}`);
      if (!f.force && existsSync(target) && !existsSync(`${target}.partial`)) {
        const have = readLines(target).length;
        if (have !== sources.length) throw new UsageError(`hasten distill: ${target} already exists with ${have} lines, not the ${sources.length} of ${file(split, src)}; pass --force to distil again, or choose another --out`);
        copyCorpus();
        out.stderr(`hasten distill: ${target} already holds ${have} distilled lines; nothing to do (--force distils again)\n`);
        return { lines: have, resumedFrom: have };
      }
      const r = await distillLines(m, sources, target, {
        beam: (f.beam as number | undefined) ?? decodingNumber(m, "beam", 5),
        lengthPenalty: (f["length-penalty"] as number | undefined) ?? decodingNumber(m, "lengthPenalty", 1),
        maxLenA: (f["max-len-a"] as number | undefined) ?? decodingNumber(m, "maxLenA", 1.2),
        maxLenB: (f["max-len-b"] as number | undefined) ?? decodingNumber(m, "maxLenB", 10),
        batchSize: (f["batch-size"] as number | undefined) ?? 32,
        chunk: f.chunk as number | undefined,
        onProgress: (done, total, from) => {
          const secs = (performance.now() - t0) / 1000;
          out.progress(`distilled ${done}/${total}${from ? ` (resumed at ${from})` : ""}, ${((done - from) / Math.max(secs, 1e-9)).toFixed(1)} sent/s`);
        },
      });
      out.endProgress();
      copyCorpus();
      out.stderr(`hasten distill: ${r.lines} lines${r.resumedFrom ? ` (${r.resumedFrom} done before a restart)` : ""} into ${outDir} in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        `${r.truncated ? `; ${r.truncated} source(s) cut to the model's maxLen` : ""}\n`);
      return { lines: r.lines, resumedFrom: r.resumedFrom };
    } finally {
      m.model.dispose();
    }
  });
}
