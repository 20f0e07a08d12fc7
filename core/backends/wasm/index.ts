// The WebAssembly SIMD runtime: one shared memory (the heap where tensors live), one module
// of kernels generated at start-up, and a pool of workers that run those kernels on the same
// memory. It sees only pointers and sizes, never a Tensor.

import os from "node:os";
import { ModuleBuilder, Op, Simd } from "./asm.ts";
import { emitGemm, JOB, scratchBytes, THREAD, type GemmConfig } from "./gemm-kernels.ts";
import { planGemm, prepareC, resolveGemm, writeJob, type GemmArgs } from "./gemm.ts";
import { Heap, type HeapOptions } from "./heap.ts";
import { CONTROL_BYTES, PREEMPTED_MS, ThreadPool } from "./threads.ts";

export type { GemmArgs } from "./gemm.ts";
export type { GemmConfig } from "./gemm-kernels.ts";
export { Heap } from "./heap.ts";

/** Tile and block sizes chosen by bench/matmul.ts on a Zen CPU (48 KiB L1d, 1 MiB L2). */
export const DEFAULT_GEMM: GemmConfig = { MR: 2, NR: 16, KC: 256, MC: 128, NC: 2048, unroll: 1, fma: false };

/** Job functions the workers may run, by index. */
const ENTRIES = ["gemm_job"];
const GEMM_JOB = 0;

export interface WasmRuntimeOptions {
  /** Threads used for large kernels, the calling one included. Default: available cores. */
  threads?: number;
  /** Below this many flops (2·M·N·K·batch) a matmul stays on the calling thread. */
  parallelMinFlops?: number;
  /** Microseconds threads poll for work before sleeping (default 1000, env HASTEN_SPIN_US). */
  spinMicros?: number;
  /** Overrides of the matmul blocking (for tuning). fma defaults to relaxed-simd availability. */
  gemm?: Partial<GemmConfig>;
  heap?: HeapOptions;
}

/** Whether this engine accepts f32x4.relaxed_madd (Node 20 only with --experimental-wasm-relaxed-simd). */
export function relaxedSimdAvailable(): boolean {
  const m = new ModuleBuilder();
  m.func("f", [], [], (f) => {
    f.f32x4c(1).f32x4c(2).f32x4c(3).simd(Simd.f32x4_relaxed_madd).op(Op.drop);
  });
  try {
    return WebAssembly.validate(m.bytes());
  } catch {
    return false;
  }
}

function defaultThreads(): number {
  const n = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(n, 64));
}

export class WasmRuntime {
  readonly heap: Heap;
  readonly module: WebAssembly.Module;
  readonly gemmConfig: GemmConfig;
  /** Below this many flops a matmul runs on the calling thread only. */
  parallelMinFlops: number;
  private readonly exports: { gemm_job(p: number): number };
  /** What the last gemm did: threads it was offered to, tasks, and tasks the caller ran itself. */
  lastGemm = { threads: 0, tasks: 0, tasksHere: 0 };
  private readonly control: number;
  private threads: number;
  private spinMicros: number;
  private pool: ThreadPool | null = null;
  /** Per-thread records (THREAD layout), index 0 for the calling thread, w + 1 for worker w. */
  private readonly threadRecs: number[] = [];
  /** Job records; one stays reserved while a worker that was sent it has not finished. */
  private readonly jobRecs: number[] = [];
  private readonly jobOfWorker: number[] = [];

  constructor(opts: WasmRuntimeOptions = {}) {
    this.heap = new Heap(opts.heap);
    this.gemmConfig = { ...DEFAULT_GEMM, fma: relaxedSimdAvailable(), ...opts.gemm };
    const m = new ModuleBuilder().importMemory({
      module: "env", name: "memory", initialPages: 1, maximumPages: this.heap.maximumBytes / 65536, shared: true,
    });
    emitGemm(m, this.gemmConfig);
    this.module = new WebAssembly.Module(m.bytes());
    const inst = new WebAssembly.Instance(this.module, { env: { memory: this.heap.memory } });
    this.exports = inst.exports as unknown as WasmRuntime["exports"];
    this.control = this.heap.alloc(CONTROL_BYTES);
    this.heap.u8(this.control, CONTROL_BYTES).fill(0);
    this.threads = opts.threads ?? defaultThreads();
    this.parallelMinFlops = opts.parallelMinFlops ?? 2 ** 19;
    this.spinMicros = opts.spinMicros ?? Number(process.env.HASTEN_SPIN_US ?? 1000);
    this.setNumThreads(this.threads);
  }

  /** Sets the number of threads (the calling one included) used for large kernels. */
  setNumThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`wasm: thread count must be an integer in [1, 64], got ${n}`);
    // Workers start lazily (on the first large kernel or ready()). Extra idle ones are kept:
    // they cost no CPU, and switching back costs no restart; shutdown() stops them.
    this.threads = n;
  }

  getNumThreads(): number {
    return this.threads;
  }

  /** Starts the workers for the current thread count and waits until they take jobs. */
  async ready(): Promise<void> {
    this.ensurePool();
    await this.pool?.ready();
  }

  /** Stops all workers. The runtime stays usable; workers restart on the next large kernel. */
  async shutdown(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    await p?.shutdown();
  }

  /** C = op(A)·op(B) (+ beta·C) on heap pointers; see GemmArgs. Blocks until done. */
  gemm(args: GemmArgs): void {
    const r = resolveGemm(args, this.heap.byteLength);
    if (r.batch === 0 || r.M === 0 || r.N === 0) return;
    const accumulate = prepareC(r, this.heap.f32(0, this.heap.byteLength >> 2));
    if (r.K === 0) return;
    const flops = 2 * r.M * r.N * r.K * r.batch;
    let workers: number[] = [];
    if (this.threads > 1 && flops >= this.parallelMinFlops) {
      this.ensurePool();
      workers = this.pool!.idleWorkers(this.threads - 1);
    }
    const plan = planGemm(r, 1 + workers.length, this.gemmConfig);
    workers = workers.slice(0, plan.tasks - 1);
    const job = this.freeJobRecord();
    const jobView = this.heap.i32(job, JOB.slots);
    writeJob(jobView, r, plan, accumulate);
    // thread records: 0 is ours, w + 1 belongs to worker w (only idle workers' are rewritten)
    for (const t of [0, ...workers.map((w) => w + 1)]) this.heap.i32(this.threadRec(t), THREAD.slots)[THREAD.job] = job;
    for (const w of workers) {
      this.jobOfWorker[w] = job;
      this.pool!.post(w, { fn: GEMM_JOB, ptr: this.threadRec(w + 1) });
    }
    const here = this.exports.gemm_job(this.threadRec(0)); // claims tasks alongside the workers
    if (workers.length > 0) this.waitFinished(jobView, plan.tasks, flops / plan.tasks / 50e6); // ~50 GFLOP/s
    this.lastGemm = { threads: 1 + workers.length, tasks: plan.tasks, tasksHere: here };
  }

  /**
   * Blocks until `tasks` tasks of the job are finished. What is left is at most a task per
   * worker, so poll for about two task times (never more than the spin setting), then sleep:
   * a worker that is late may be queued behind us on this very CPU.
   */
  private waitFinished(jobView: Int32Array, tasks: number, taskMs: number) {
    const pool = this.pool!;
    const limit = Math.min(pool.spinMicros / 1000, Math.max(0.02, 2 * taskMs));
    const t0 = performance.now();
    for (let i = 1, last = t0; Atomics.load(jobView, JOB.finished) < tasks; i++) {
      if ((i & 63) !== 0) continue;
      const now = performance.now();
      if (now - t0 >= limit || now - last > PREEMPTED_MS) break;
      last = now;
    }
    for (;;) {
      const done = Atomics.load(jobView, JOB.finished);
      if (done >= tasks) return;
      const failed = pool.takeFailure();
      if (failed >= 0) throw new Error(`wasm gemm: worker ${failed} failed (see stderr); ${done} of ${tasks} tasks finished`);
      Atomics.wait(jobView, JOB.finished, done, 20);
    }
  }

  private ensurePool() {
    if (this.threads <= 1) return;
    if (!this.pool) {
      this.pool = new ThreadPool(this.module, this.heap.memory, this.control, ENTRIES);
      this.pool.setSpin(this.spinMicros);
    }
    if (this.pool.size < this.threads - 1) this.pool.resize(this.threads - 1);
  }

  /** A job record that no unfinished worker may still read. */
  private freeJobRecord(): number {
    const busy = new Set<number>();
    if (this.pool) for (let w = 0; w < this.jobOfWorker.length; w++) if (!this.pool.isIdle(w)) busy.add(this.jobOfWorker[w]);
    for (const j of this.jobRecs) if (!busy.has(j)) return j;
    const j = this.heap.alloc(JOB.slots * 4);
    this.jobRecs.push(j);
    return j;
  }

  /** Thread t's record with its own packing buffers, allocated once and kept. */
  private threadRec(t: number): number {
    while (this.threadRecs.length <= t) {
      const b = scratchBytes(this.gemmConfig);
      const rec = this.heap.alloc(THREAD.slots * 4);
      const v = this.heap.i32(rec, THREAD.slots);
      v[THREAD.packA] = this.heap.alloc(b.packA);
      v[THREAD.packB] = this.heap.alloc(b.packB);
      v[THREAD.tile] = this.heap.alloc(b.tile);
      this.threadRecs.push(rec);
    }
    return this.threadRecs[t];
  }
}

let runtime: WasmRuntime | null = null;

/** The process-wide runtime (created on first use). */
export function getWasmRuntime(): WasmRuntime {
  if (!runtime) runtime = new WasmRuntime();
  return runtime;
}

export function setNumThreads(n: number): void {
  getWasmRuntime().setNumThreads(n);
}

export function getNumThreads(): number {
  return runtime ? runtime.getNumThreads() : defaultThreads();
}

/** Stops the shared runtime's workers (they are unref()'d, so this is optional before exit). */
export async function shutdown(): Promise<void> {
  await runtime?.shutdown();
}
