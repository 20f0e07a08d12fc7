// What the issue-3 benchmarks share: flags, the machine line, waiting for quiet CPUs, medians
// over interleaved rounds, the PyTorch subprocess, and the printed tables.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import os from "node:os";
import { basename, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import { peersDir } from "./peers/load.ts";

export interface BenchOptions {
  quick: boolean;
  /** Seconds to wait, before each section, for other processes to leave the CPUs (0: don't). */
  quietWait: number;
  /** Timed rounds per contender (the median is over these); undefined: the bench's default. */
  rounds?: number;
}

/** A printed table: what was measured, its columns, and notes (skipped peers, checks). */
export interface Section {
  title: string;
  header: string[];
  rows: string[][];
  notes: string[];
}

/** --key=value and bare --flag (value "1") arguments. */
export function parseFlags(argv: string[], who: string): Map<string, string> {
  return new Map(argv.map((a) => {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new Error(`${who}: expected --key=value or --flag, got ${a}`);
    return [m[1], m[2] ?? "1"] as const;
  }));
}

/** The shared flags (--quick, --rounds=N, --quiet-wait=S); any other than these and `extra` is refused. */
export function benchOptions(flags: Map<string, string>, who: string, extra: string[] = []): BenchOptions {
  for (const k of flags.keys()) {
    const known = ["quick", "rounds", "quiet-wait", ...extra];
    if (!known.includes(k)) throw new Error(`${who}: unknown flag --${k} (expected ${known.map((f) => `--${f}`).join(", ")})`);
  }
  const num = (k: string, dflt: number | undefined): number | undefined => {
    const v = flags.get(k);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`${who}: --${k} must be a number ≥ 0, got ${v}`);
    return n;
  };
  const rounds = num("rounds", undefined);
  if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1)) throw new Error(`${who}: --rounds must be a positive integer, got ${rounds}`);
  return { quick: flags.has("quick"), quietWait: num("quiet-wait", flags.has("quick") ? 0 : 60)!, rounds };
}

export function machineLine(): string {
  const cpus = os.cpus();
  const load = os.loadavg().map((x) => x.toFixed(2)).join(" ");
  return `${cpus[0]?.model ?? "cpu"}, ${os.availableParallelism?.() ?? cpus.length} threads, Node ${process.version}, load average ${load}`;
}

/** Which multiply-add the wasm gemm micro-kernel compiled, and why (see chooseFma). */
export function wasmGemmPath(fma: boolean): string {
  if (fma) return "wasm gemm: f32x4.relaxed_madd (FMA)";
  const why = process.env.HASTEN_WASM_FMA === "0" ? "HASTEN_WASM_FMA=0" : "this engine has no relaxed SIMD";
  return `wasm gemm: f32x4.mul + f32x4.add (${why})`;
}

// Calls and milliseconds per key (kernel, phase, shape), for the profiling benches.
export interface Tally { calls: number; ms: number }
export function tally(map: Map<string, Tally>, key: string, ms: number): void {
  const t = map.get(key) ?? { calls: 0, ms: 0 };
  t.calls++;
  t.ms += ms;
  map.set(key, t);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** CPU time (ms) of the whole machine and of this process so far (Linux /proc); null elsewhere. */
export function cpuTimes(): { machine: number; self: number } | null {
  if (!existsSync("/proc/stat")) return null;
  const tick = 10; // ms per clock tick (USER_HZ = 100 on Linux)
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const st = readFileSync("/proc/self/stat", "utf8");
  const g = st.slice(st.lastIndexOf(")") + 2).split(" ").map(Number);
  return { machine: (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * tick, self: (g[11] + g[12]) * tick };
}

/**
 * Measures the share of all CPUs that other processes use while `fn` runs (children of this
 * process count as others, so run PyTorch outside such a window).
 */
export async function othersShare<T>(fn: () => Promise<T>): Promise<{ value: T; others: number }> {
  const c0 = cpuTimes(), w0 = performance.now();
  const value = await fn();
  const c1 = cpuTimes(), wall = performance.now() - w0;
  const others = c0 && c1 ? Math.max(0, (c1.machine - c0.machine - (c1.self - c0.self)) / (wall * os.cpus().length)) : NaN;
  return { value, others };
}

export const pct = (x: number): string => (Number.isNaN(x) ? "?" : `${(100 * x).toFixed(0)}%`);

/** Waits until other processes use under 10% of the CPUs over half a second; a note if it gave up. */
export async function waitQuiet(seconds: number): Promise<string> {
  if (seconds <= 0) return "";
  const t0 = performance.now();
  let others = NaN;
  while (performance.now() - t0 < seconds * 1000) {
    const r = await othersShare(() => new Promise((res) => setTimeout(res, 500)));
    others = r.others;
    if (Number.isNaN(others) || others < 0.1) return "";
    await new Promise((res) => setTimeout(res, 1000));
  }
  return `machine busy: other processes used ${pct(others)} of the CPUs when the measurement began`;
}

/** One contender: an untimed-or-timed call that returns when its work is complete. */
export interface Timed {
  name: string;
  /** Runs one sample and returns its duration in ms (so a contender can exclude its own setup). */
  sample(): Promise<number>;
}

/**
 * Warm-up samples for each contender, then `rounds` rounds in which the contenders take turns,
 * so a slow patch of a shared machine hits them alike. Returns every contender's samples (ms).
 */
export async function interleave(cs: Timed[], warmup: number, rounds: number, log?: (s: string) => void): Promise<number[][]> {
  for (const c of cs) {
    for (let i = 0; i < warmup; i++) await c.sample();
    log?.(`  warmed up ${c.name}`);
  }
  const times = cs.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) for (let i = 0; i < cs.length; i++) times[i].push(await cs[i].sample());
  return times;
}

export interface TorchPython {
  python: string;
  version: string;
  /**
   * Environment for the script: OpenBLAS from .bench-peers/ on LD_LIBRARY_PATH when present,
   * and OMP_WAIT_POLICY=PASSIVE unless set.
   */
  env: NodeJS.ProcessEnv;
}

/** What bench/peers/torch_env.py reports about the BLAS a PyTorch peer loaded. */
export interface TorchBlas {
  path: string;
  kind: "OpenBLAS" | "MKL" | "BLIS" | "reference";
  detail: string;
}

/** CPU seconds of a PyTorch peer's timed section (all its threads), and the wall time. */
export interface CpuTime {
  user_s: number;
  sys_s: number;
  wall_s: number;
}

/**
 * Which BLAS PyTorch ran on (after "torch's BLAS: "), flagged when it is the unoptimised
 * reference one. Takes torch_env.py's report, or only a library path (then judged by its name).
 */
export function blasNote(b: TorchBlas | string | null | undefined): string {
  if (!b) return "unknown (no BLAS library among those it loaded)";
  const path = typeof b === "string" ? b : b.path;
  const where = path.startsWith(process.cwd()) ? relative(process.cwd(), path) : path;
  const reference = typeof b === "string" ? !/openblas|mkl|blis/i.test(b) : b.kind === "reference";
  if (reference) {
    const what = typeof b === "string" ? "probably the netlib reference BLAS" : "the netlib reference BLAS";
    return `${where}: ${what}, unoptimised, so PyTorch's matmuls are slow here (bash bench/install-peers.sh unpacks an OpenBLAS for it)`;
  }
  if (typeof b === "string") return where;
  return `${b.detail.startsWith(b.kind) ? b.detail : `${b.kind} ${b.detail}`.trim()}, ${where}`;
}

/** One line on a PyTorch timing's CPU use: more busy cores than threads means spinning or system time. */
export function cpuNote(label: string, c: CpuTime | undefined, policy: string | undefined): string {
  if (!c) return `torch ${label}: CPU time not reported`;
  const cores = c.wall_s > 0 ? ((c.user_s + c.sys_s) / c.wall_s).toFixed(2) : "?";
  const sec = (x: number) => x.toFixed(x < 10 ? 2 : 1);
  return `torch ${label}: ${sec(c.user_s)} s user + ${sec(c.sys_s)} s system CPU in ${sec(c.wall_s)} s (${cores} cores busy; OMP_WAIT_POLICY ${policy ?? "?"})`;
}

/** Folder of the OpenBLAS that bench/install-peers.sh unpacks for the PyTorch peer, if any. */
function localOpenBlas(): string | undefined {
  const lib = join(peersDir, "openblas", "usr", "lib");
  if (!existsSync(lib)) return undefined;
  for (const arch of readdirSync(lib)) {
    const d = join(lib, arch, "openblas-pthread");
    if (existsSync(join(d, "libblas.so.3"))) return d;
  }
  return undefined;
}

/** A Python with PyTorch: $HASTEN_BENCH_PYTHON, python3 on PATH, or Debian's /usr/bin/python3. */
export function torchPython(): TorchPython | { skip: string } {
  const tried: string[] = [];
  const blas = localOpenBlas();
  // libgomp's default wait policy lets PyTorch's idle OpenMP threads spin after each parallel
  // region; on n cores with PyTorch's and OpenBLAS's pools both at n threads the spinners take
  // the cores OpenBLAS's threads need (measured on the 2-core machine while others used it: a
  // training step on 2 threads 1.6–15× slower than on 1, a decoding step 25–60×; with PASSIVE
  // both within 1.0–1.4× of 1 thread). libgomp reads it once, when loaded, so it goes in the
  // environment; one set by the caller is kept. OPENBLAS_* settings pass through unchanged.
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? "PASSIVE" };
  env.PYTHONDONTWRITEBYTECODE = "1"; // the peers import torch_env.py: leave no __pycache__ in bench/peers
  if (blas) env.LD_LIBRARY_PATH = [blas, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
  for (const py of [process.env.HASTEN_BENCH_PYTHON, "python3", "/usr/bin/python3"]) {
    if (!py) continue;
    const r = spawnSync(py, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8", env });
    if (r.status === 0) return { python: py, version: r.stdout.trim(), env };
    tried.push(`${py}: ${(r.stderr || r.error?.message || "failed").trim().split("\n").pop()}`);
  }
  return { skip: `no Python with torch (${tried.join("; ")})` };
}

/** Runs a Python script and parses the JSON object on its last stdout line. */
export function runPython<T>(py: TorchPython, script: string, args: string[], timeoutMs: number): T | { skip: string } {
  const r = spawnSync(py.python, [script, ...args], { encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20, env: py.env });
  if (r.status !== 0) {
    const why = r.error?.message ?? (r.stderr.trim().split("\n").pop() || `exit ${r.status}`);
    return { skip: `${basename(script)} failed: ${why}` };
  }
  const last = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(last) as T;
  } catch {
    return { skip: `${basename(script)} printed no JSON (last line: ${last.slice(0, 200)})` };
  }
}

export function formatSection(s: Section): string {
  const widths = s.header.map((h, i) => Math.max(h.length, ...s.rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : (c ?? "").padStart(widths[i]))).join("  ");
  return [s.title, line(s.header), ...s.rows.map(line), ...s.notes.map((n) => `  · ${n}`)].join("\n");
}

/** Ratio a/b to two decimals, or "–" when either is missing. */
export function ratio(a: number | undefined, b: number | undefined): string {
  return a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) && b > 0 ? (a / b).toFixed(2) : "–";
}

/** True when this module file is the script node was started with. */
export function isMain(metaUrl: string): boolean {
  const arg = process.argv[1];
  return arg !== undefined && existsSync(arg) && pathToFileURL(realpathSync(arg)).href === metaUrl;
}
