// `hasten train --task translation --src de --tgt en --out runs/ar-de-en [--key value ...]`
// Thin: parse flags (and --config), wire validation BLEU to greedy decoding, handle Ctrl-C,
// call nn/train.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { translateLines } from "../../decoding/corpus.ts";
import { loadConfigFile, parseTrainArgs, trainTranslation, trainUsage, type TrainHooks, type TrainResult, type TranslateFn } from "../../nn/train/index.ts";

export interface TrainIO extends Omit<TrainHooks, "signal" | "translate"> {
  stdout?: (line: string) => void;
  // Install SIGINT/SIGTERM handlers (default true; tests running in-process pass false).
  handleSignals?: boolean;
}

// Validation BLEU: greedy search, batched by length, sentences in input order.
export const greedyTranslate: TranslateFn = async (m, lines, o) =>
  (await translateLines(m, lines, { beam: 1, maxLenA: o.maxLenA, maxLenB: o.maxLenB, batchSize: 64 })).translations;

export async function trainCommand(argv: string[], io: TrainIO = {}): Promise<TrainResult | undefined> {
  const out = io.stdout ?? ((line: string) => process.stdout.write(line + "\n"));
  const args = parseTrainArgs(argv);
  if (args.help) {
    out(trainUsage());
    return undefined;
  }
  const fromFile = args.configFile ? await loadConfigFile(args.configFile) : {};
  const overrides = { ...fromFile, ...args.overrides };

  // First Ctrl-C: stop after the current step and write a checkpoint. Second: quit at once (the
  // checkpoint on disk is whole either way: it is only ever replaced by an atomic rename).
  const ac = new AbortController();
  const stderr = io.stderr ?? process.stderr;
  const onSignal = (sig: NodeJS.Signals) => {
    if (ac.signal.aborted) {
      stderr.write(`\n${sig} again: quitting without a new checkpoint\n`);
      process.exit(130);
    }
    stderr.write(`\n${sig}: finishing this step and writing a checkpoint (press Ctrl-C again to quit at once)\n`);
    ac.abort();
  };
  const handle = io.handleSignals ?? true;
  if (handle) {
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  }
  try {
    const result = await trainTranslation(overrides, { ...io, resume: args.resume, translate: greedyTranslate, signal: ac.signal });
    if (result.stoppedBy === "interrupted") process.exitCode = 130;
    return result;
  } finally {
    if (handle) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
}

// Runnable on its own too: `npx tsx scripts/commands/train.ts --out runs/x ...`.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  trainCommand(process.argv.slice(2)).catch((e: Error) => {
    console.error(e.message);
    process.exitCode = process.exitCode || 1;
  });
}
