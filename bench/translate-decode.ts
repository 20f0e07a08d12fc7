// Translation-decoding benchmark: Hasten against PyTorch running the same model directory
// (PyTorch through interop/pytorch/hasten_torch.py, in a child process: bench/peers/torch_translate.py).
// Both decode the same token ids with the same rules (decoding/*.ts; unk and mask banned, the
// directory's maxLenA/maxLenB and length penalty), so their outputs must be identical: every
// round's tokens are compared with Hasten's and the sentences that differ are counted.
//
//   npx tsx bench/translate-decode.ts [--model=models/ar-de-en] [--sentences=256] [--quick] [--rounds=5] [--quiet-wait=60]
//
// Workloads: greedy at batch 32 (the first --sentences of Multi30k test2016, sorted by length into
// batches as decodeCorpus does), greedy at batch 1 and beam 5 at batch 1 (the first 48 of them),
// each on 1 thread and on all threads. A round runs every workload on every contender in turn
// (Hasten 1t, PyTorch 1t, Hasten all, PyTorch all), so a slow patch of the shared machine hits
// them alike; figures are medians over rounds, after one untimed warm-up run of each.
//
// PyTorch threads: torch.set_num_threads(n) plus OpenBLAS's own pool (bench/peers/torch_lm.py's
// set_threads); the all-thread child runs with OMP_WAIT_POLICY=PASSIVE, because OpenMP's default
// busy-waiting between parallel regions takes the core that the other threads, or the other
// contender, needs (on 2 cores, it oversubscribes them). The table names the BLAS torch loaded.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setBackend } from "../core/backend.ts";
import { getWasmRuntime } from "../core/backends/wasm/index.ts";
import { decodeCorpus } from "../decoding/index.ts";
import { findDataDir, isEncoderDecoder, loadModelDir, multi30kFiles, readLines, type EncoderDecoderModel, type ModelDir } from "../nn/index.ts";
import {
  benchOptions, cpuTimes, formatSection, isMain, machineLine, median, parseFlags, pct, ratio, torchPython,
  waitQuiet, type BenchOptions, type Section, type TorchPython,
} from "./harness.ts";
import { blasNote } from "./train-step.ts";

const here = dirname(fileURLToPath(import.meta.url));
const DEFAULT_MODEL = resolve(here, "..", "models", "ar-de-en");

// Used when Multi30k is absent (repeated to the requested count); the figures then say so.
const FALLBACK = [
  "Zwei Hunde spielen im Schnee.", "Ein Mann fährt mit dem Fahrrad eine Straße entlang.",
  "Eine Frau in einem roten Kleid singt auf einer Bühne.", "Kinder spielen Fußball auf einem grünen Feld.",
  "Ein kleines Mädchen isst ein Eis.", "Eine Gruppe von Menschen wartet an einer Bushaltestelle.",
  "Ein schwarzer Hund rennt über den Strand.", "Musiker spielen auf der Straße für eine Menschenmenge.",
];

interface Workload {
  name: string;
  beam: number;
  batch: number;
  sentences: number;
}

interface RunOptions {
  maxLenA: number;
  maxLenB: number;
  lengthPenalty: number;
  banned: number[];
}

/** One PyTorch child process: JSON lines in, JSON lines out. */
class TorchPeer {
  private lines: string[] = [];
  private wake: (() => void) | undefined;
  private stderr = "";
  private exited: string | undefined;
  info!: { version: string; blas: string | null; threads: number; omp_wait_policy: string | null };

  private constructor(private readonly proc: ChildProcessWithoutNullStreams) {
    let buf = "";
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (s: string) => {
      buf += s;
      for (let i; (i = buf.indexOf("\n")) >= 0;) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      this.wake?.();
    });
    proc.stderr.setEncoding("utf8");
    proc.stderr.on("data", (s: string) => (this.stderr = (this.stderr + s).slice(-4000)));
    proc.on("exit", (code, signal) => {
      this.exited = `exited with ${signal ?? code}: ${this.stderr.trim().split("\n").pop() ?? ""}`;
      this.wake?.();
    });
    proc.on("error", (e) => {
      this.exited = e.message;
      this.wake?.();
    });
  }

  static async start(py: TorchPython, model: string, threads: number, env: NodeJS.ProcessEnv): Promise<TorchPeer> {
    const script = join(here, "peers", "torch_translate.py");
    const p = new TorchPeer(spawn(py.python, [script, model, String(threads)], { env }));
    p.info = await p.next();
    return p;
  }

  private async next<T>(): Promise<T> {
    while (this.lines.length === 0) {
      if (this.exited) throw new Error(`torch_translate.py ${this.exited}`);
      await new Promise<void>((res) => (this.wake = res));
      this.wake = undefined;
    }
    const r = JSON.parse(this.lines.shift()!);
    if (r.error) throw new Error(r.error);
    return r as T;
  }

  request<T>(req: Record<string, unknown>): Promise<T> {
    this.proc.stdin.write(JSON.stringify(req) + "\n");
    return this.next<T>();
  }

  close(): void {
    this.proc.stdin.end(JSON.stringify({ cmd: "quit" }) + "\n");
  }
}

interface Contender {
  label: string;
  threads: number;
  /** Decodes the workload's sentences; returns ms and the tokens of each sentence. */
  run(w: Workload): Promise<{ ms: number; tokens: number[][] }>;
}

export async function translateBench(o: BenchOptions & { model?: string; sentences?: number }, log: (s: string) => void = console.log): Promise<Section> {
  const rounds = o.rounds ?? (o.quick ? 1 : 5);
  const big = o.sentences ?? (o.quick ? 64 : 256), small = Math.min(big, o.quick ? 8 : 48);
  const workloads: Workload[] = [
    { name: "greedy, batch 32", beam: 1, batch: 32, sentences: big },
    { name: "greedy, batch 1", beam: 1, batch: 1, sentences: small },
    { name: "beam 5, batch 1", beam: 5, batch: 1, sentences: small },
  ];
  const modelDir = resolve(o.model ?? DEFAULT_MODEL);
  const notes: string[] = [];
  // Hasten's contenders run on the wasm backend, whatever an earlier benchmark in this process
  // left selected (the training benchmark ends on the plain-TypeScript cpu backend).
  setBackend("wasm");
  const loaded = loadModelDir(modelDir);
  if (!isEncoderDecoder(loaded.model)) throw new Error(`${modelDir} is not a translation model`);
  const m = loaded as ModelDir<EncoderDecoderModel>;
  const d = m.config.decoding as Record<string, number>;
  const opts: RunOptions = { maxLenA: d.maxLenA, maxLenB: d.maxLenB, lengthPenalty: d.lengthPenalty, banned: [m.tokenizer.unkId, m.tokenizer.maskId] };

  const data = findDataDir();
  let lines: string[];
  if (data && existsSync(multi30kFiles("test2016", m.config.src ?? "de", m.config.tgt ?? "en", data).src)) {
    lines = readLines(multi30kFiles("test2016", m.config.src ?? "de", m.config.tgt ?? "en", data).src).slice(0, big);
    notes.push(`sentences: the first ${lines.length} of Multi30k test2016.${m.config.src} (the batch-1 rows: the first ${small})`);
  } else {
    lines = Array.from({ length: big }, (_, i) => FALLBACK[i % FALLBACK.length]);
    notes.push(`sentences: Multi30k not found (set DATA_DIR); ${FALLBACK.length} built-in sentences repeated`);
  }
  const sources = lines.map((l) => m.tokenizer.encode(l).slice(0, m.model.config.maxLen));
  const sourcesOf = (w: Workload) => sources.slice(0, w.sentences);

  const wasm = getWasmRuntime();
  await wasm.ready();
  const all = wasm.getNumThreads();
  const threadCounts = all > 1 ? [1, all] : [1];
  // Other processes' share of the CPUs, measured over Hasten's samples only (the torch child counts as "other").
  let othersMs = 0, wallMs = 0;
  const hasten = (threads: number): Contender => ({
    label: `hasten wasm ${threads}t`, threads,
    async run(w) {
      wasm.setNumThreads(threads);
      const c0 = cpuTimes(), t0 = performance.now();
      const hyps = await decodeCorpus(m.model, sourcesOf(w), { ...opts, beam: w.beam, batchSize: w.batch });
      const ms = performance.now() - t0, c1 = cpuTimes();
      if (c0 && c1) {
        othersMs += c1.machine - c0.machine - (c1.self - c0.self);
        wallMs += ms * all;
      }
      return { ms, tokens: hyps.map((h) => h.tokens) };
    },
  });

  const contenders: Contender[] = [];
  const peers: TorchPeer[] = [];
  const py = torchPython();
  let torchLabel = "torch";
  for (const threads of threadCounts) {
    contenders.push(hasten(threads));
    if ("skip" in py) continue;
    // PASSIVE: idle OpenMP threads sleep instead of spinning (see the header).
    const env = threads > 1 ? { ...py.env, OMP_WAIT_POLICY: "PASSIVE" } : py.env;
    try {
      const peer = await TorchPeer.start(py, modelDir, threads, env);
      peers.push(peer);
      torchLabel = `torch ${peer.info.version}`;
      contenders.push({
        label: `${torchLabel} ${threads}t`, threads,
        run: (w) => peer.request<{ ms: number; tokens: number[][] }>({ cmd: "run", beam: w.beam, batch: w.batch, ...opts }),
      });
      if (threads === 1) notes.push(`torch's BLAS: ${blasNote(peer.info.blas)}`);
      if (peer.info.threads !== threads) notes.push(`torch reports ${peer.info.threads} threads where ${threads} were set`);
    } catch (e) {
      notes.push(`skipped torch ${threads}t: ${(e as Error).message}`);
    }
  }
  if ("skip" in py) notes.push(`skipped torch: ${py.skip}`);

  // The torch child keeps the sentences of the current workload (sent once per workload, untimed).
  const setSources = async (w: Workload) => {
    for (const p of peers) await p.request({ cmd: "sources", sources: sourcesOf(w) });
  };

  const times = new Map<string, number[]>(); // `${workload}|${contender}` → ms per round
  const mismatch = new Map<string, Set<number>>(); // sentences whose tokens differ from Hasten 1t's
  const reference = new Map<string, number[][]>();
  try {
    const quiet = await waitQuiet(o.quietWait);
    if (quiet) notes.push(quiet);
    for (let r = -1; r < rounds; r++) { // round -1: warm-up, untimed
      for (const w of workloads) {
        await setSources(w);
        for (const c of contenders) {
          const { ms, tokens } = await c.run(w);
          const key = `${w.name}|${c.label}`;
          if (!reference.has(w.name)) reference.set(w.name, tokens); // the first contender is Hasten 1t
          const ref = reference.get(w.name)!, bad = mismatch.get(key) ?? new Set<number>();
          ref.forEach((t, i) => {
            if (tokens[i]?.join() !== t.join()) bad.add(i);
          });
          mismatch.set(key, bad);
          if (r >= 0) times.set(key, [...(times.get(key) ?? []), ms]);
        }
      }
      log(r < 0 ? "  warmed up every contender" : `  round ${r + 1}/${rounds} done`);
    }
  } finally {
    for (const p of peers) p.close();
    m.model.dispose();
  }

  const rows: string[][] = [];
  for (const w of workloads) {
    for (const threads of threadCounts) {
      const h = times.get(`${w.name}|hasten wasm ${threads}t`), t = times.get(`${w.name}|${torchLabel} ${threads}t`);
      const sps = (ms: number[] | undefined) => (ms ? (1000 * w.sentences) / median(ms) : undefined);
      const hs = sps(h), ts = sps(t);
      const bad = mismatch.get(`${w.name}|${torchLabel} ${threads}t`);
      const hBad = mismatch.get(`${w.name}|hasten wasm ${threads}t`);
      rows.push([
        w.name, `${threads}`, `${w.sentences}`, hs?.toFixed(1) ?? "–", ts?.toFixed(1) ?? "–", ratio(hs, ts),
        bad ? `${bad.size}` : "–", hBad ? `${hBad.size}` : "–",
      ]);
    }
  }
  notes.unshift(
    `"hasten/torch": Hasten's sentences/s over PyTorch's (above 1: Hasten faster); medians over ${rounds} round${rounds === 1 ? "" : "s"}`,
    `"torch ≠": sentences whose PyTorch tokens differ from Hasten 1t's in any round; "hasten ≠": the same for Hasten at this thread count`,
    `model ${relative(process.cwd(), modelDir) || "."}: decoding maxLenA ${d.maxLenA}, maxLenB ${d.maxLenB}, length penalty ${d.lengthPenalty}; unk and mask banned`,
  );
  if (peers.length > 1) notes.push("torch all-thread child: OMP_WAIT_POLICY=PASSIVE");
  notes.push(`other processes used ${pct(wallMs > 0 ? othersMs / wallMs : NaN)} of the CPUs during Hasten's samples`);
  return {
    title: `Translation decoding, Hasten vs PyTorch on the same model directory (${machineLine()})`,
    header: ["decoding", "threads", "sentences", "hasten sent/s", "torch sent/s", "hasten/torch", "torch ≠", "hasten ≠"],
    rows,
    notes,
  };
}

if (isMain(import.meta.url)) {
  const flags = parseFlags(process.argv.slice(2), "bench/translate-decode");
  const o = benchOptions(flags, "bench/translate-decode", ["model", "sentences"]);
  const n = flags.has("sentences") ? Number(flags.get("sentences")) : undefined;
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) throw new Error(`bench/translate-decode: --sentences must be a positive integer, got ${flags.get("sentences")}`);
  console.log(machineLine());
  console.log(`\n${formatSection(await translateBench({ ...o, model: flags.get("model"), sentences: n }))}`);
  await getWasmRuntime().shutdown();
}
