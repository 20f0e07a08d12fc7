// The `hasten` command line: `npx tsx scripts/hasten.ts <command> [args]`.
// Thin: each command parses its flags (scripts/cli/flags.ts) and calls the library. Exit codes:
// 0 done, 1 failed while running, 2 a usage error (bad flag or value, missing file or model),
// 130 interrupted.
const COMMANDS: Record<string, { summary: string; load: () => Promise<(argv: string[]) => Promise<unknown>> }> = {
  train: {
    summary: "train a model for a task (translation, lm): checkpoints, --resume, log.jsonl, loss.svg, model/",
    load: async () => (await import("./commands/train.ts")).trainCommand,
  },
  translate: {
    summary: "translate sentences (one a line, stdin) with a model directory; translations on stdout",
    load: async () => (await import("./commands/translate.ts")).translateCommand,
  },
  generate: {
    summary: "continue prompts (one a line, stdin) with a language model; continuations on stdout",
    load: async () => (await import("./commands/generate.ts")).generateCommand,
  },
  distill: {
    summary: "distil a corpus: a teacher's beam output on the training sources (resumable), for NAT students",
    load: async () => (await import("./commands/distill.ts")).distillCommand,
  },
  evaluate: {
    summary: "BLEU and decoding speed (greedy and beam) of a translation model on a Multi30k split",
    load: async () => (await import("./commands/evaluate.ts")).evaluateCommand,
  },
  bleu: {
    summary: "corpus BLEU of hypotheses (stdin) against reference files, as SacreBLEU",
    load: async () => (await import("./commands/bleu.ts")).bleuCommand,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: hasten <command> [options]\n\ncommands:\n${lines.join("\n")}\n\n'hasten <command> --help' for a command's options`;
}

// Standard output closed early (`| head`): stop quietly. Full disk or another write error: say
// so once and fail, instead of an unhandled stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  process.stderr.write(`hasten: cannot write to standard output: ${e.code === "ENOSPC" ? "no space left on the device" : e.message}\n`);
  process.exit(1);
});

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "-h" || name === "--help") {
    console.log(usage());
    return;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`hasten: unknown command "${name}"\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  await (await cmd.load())(rest);
}

main(process.argv.slice(2)).catch((e: Error & { exitCode?: number }) => {
  console.error(e.message);
  process.exitCode = process.exitCode || e.exitCode || 1;
});
