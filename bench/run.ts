// `npm run bench`: the benchmarks of issue 3 in one run, then one combined report.
//
//   npm run bench -- [--quick] [--only=train,decode,ops,matmul] [--rounds=N] [--quiet-wait=60]
//
// --quick: a smoke run (fewer rounds and steps, smaller matmul sizes, no waiting for quiet CPUs).
// --only: which benchmarks, in that order. --rounds: timed rounds of each (default per bench).
// --quiet-wait: seconds to wait, before each measurement, for other processes to leave the CPUs.
// Peers are installed once with `bash bench/install-peers.sh`; a missing one is skipped with the
// reason printed. bench/matmul.ts runs as a child process with its own flags.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { decodeBench } from "./decode-step.ts";
import { benchOptions, formatSection, machineLine, parseFlags, wasmGemmPath, type BenchOptions, type Section } from "./harness.ts";
import { opsBench } from "./op-overhead.ts";
import { trainBench } from "./train-step.ts";

const BENCHES = ["train", "decode", "ops", "matmul", "translate", "speculative"] as const;
type Bench = (typeof BENCHES)[number];

const flags = parseFlags(process.argv.slice(2), "bench/run");
const opts = benchOptions(flags, "bench/run", ["only"]);
const only = (flags.get("only") ?? BENCHES.join(",")).split(",").map((s) => s.trim()) as Bench[];
for (const b of only) if (!BENCHES.includes(b)) throw new Error(`bench/run: --only takes ${BENCHES.join(",")}; got ${b}`);

/** bench/matmul.ts in a child process (it is a script); its output passes through, its table is kept. */
function matmul(o: BenchOptions): Promise<string> {
  const args = o.quick ? ["--sizes=256,64x512x2048", "--rounds=3", "--ms=20"] : [];
  if (o.rounds !== undefined) args.push(`--rounds=${o.rounds}`);
  args.push(`--quiet-wait=${o.quietWait}`);
  const script = join(dirname(fileURLToPath(import.meta.url)), "matmul.ts");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (s: string) => {
      out += s;
      process.stdout.write(s.replace(/^(?=.)/gm, "  "));
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`bench/matmul.ts exited with ${code}`));
      const at = out.indexOf("matmul GFLOP/s");
      resolve(at >= 0 ? out.slice(at).trimEnd() : out.trimEnd());
    });
  });
}

const runners: Record<Exclude<Bench, "matmul">, (o: BenchOptions) => Promise<Section>> = {
  train: trainBench,
  decode: decodeBench,
  ops: opsBench,
  translate: async (o) => (await import("./translate-decode.ts")).translateBench(o),
  // The default model directories (models/lm-austen, draft-austen, glide-austen); a table saying
  // they are missing otherwise. Its two tables are printed as one section.
  speculative: async (o) => {
    const s = await (await import("./speculative.ts")).speculativeBench({ ...o, prompts: o.quick ? 4 : 20, newTokens: o.quick ? 32 : 96, gamma: 4, promptTokens: 32, tiny: false });
    return s.length === 1 ? s[0] : { title: s.map(formatSection).join("\n\n"), header: [], rows: [], notes: [] };
  },
};

const gemmPath = wasmGemmPath(getWasmRuntime().fma);
console.log(`Hasten benchmarks${opts.quick ? " (--quick: smoke run, not for reporting)" : ""}\n${machineLine()}\n${gemmPath}\n`);
const report: string[] = [];
for (const b of only) {
  console.log(`== ${b}`);
  const t0 = performance.now();
  report.push(b === "matmul" ? await matmul(opts) : formatSection(await runners[b](opts)));
  console.log(`   (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
}
console.log(`\n${"=".repeat(100)}\nHasten benchmarks — ${machineLine()}\n${gemmPath}\n`);
console.log(report.join("\n\n"));
await getWasmRuntime().shutdown();
