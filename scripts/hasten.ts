// The `hasten` command line: `npx tsx scripts/hasten.ts <command> [args]`.
// Thin: each command parses its flags and calls the library.
const COMMANDS: Record<string, { summary: string; load: () => Promise<(argv: string[]) => Promise<unknown>> }> = {
  train: {
    summary: "train a translation Transformer (checkpoints, --resume, log.jsonl, loss.svg, model/)",
    load: async () => (await import("./commands/train.ts")).trainCommand,
  },
  bleu: {
    summary: "corpus BLEU of hypotheses (stdin) against reference files, as SacreBLEU",
    load: async () => (await import("./commands/bleu.ts")).bleuCommand,
  },
  translate: {
    summary: "translate sentences (one a line, stdin) with a model directory; translations on stdout",
    load: async () => (await import("./commands/translate.ts")).translateCommand,
  },
  evaluate: {
    summary: "BLEU and decoding speed (greedy and beam) of a model on a Multi30k split",
    load: async () => (await import("./commands/evaluate.ts")).evaluateCommand,
  },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return `usage: hasten <command> [options]\n\ncommands:\n${lines.join("\n")}\n\n'hasten <command> --help' for a command's options`;
}

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

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(e.message);
  process.exitCode = process.exitCode || 1;
});
