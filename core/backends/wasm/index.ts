// The WebAssembly SIMD runtime: one shared memory (the heap where tensors live), one module
// of kernels generated at start-up, and a pool of workers that run those kernels on the same
// memory. It sees only pointers and sizes, never a Tensor.

import os from "node:os";
import { ThreadChooser } from "./adaptive.ts";
import { JOB, scratchBytes, THREAD, type GemmConfig } from "./gemm-kernels.ts";
import { planGemm, prepareC, resolveGemm, usesGemv, writeJob, type GemmArgs } from "./gemm.ts";
import { Heap, type HeapOptions } from "./heap.ts";
import { ROWJOB } from "./jobs.ts";
import { buildModule, chooseFma, HOST_IMPORTS, relaxedSimdAvailable } from "./module.ts";
import { WasmOps, type RowRunner } from "./ops.ts";
import { CONTROL_BYTES, PREEMPTED_MS, ThreadPool } from "./threads.ts";

export type { GemmArgs } from "./gemm.ts";
export type { GemmConfig } from "./gemm-kernels.ts";
export { Heap } from "./heap.ts";
export { WasmOps, type BinaryOp, type Broadcast } from "./ops.ts";
export { chooseFma, relaxedSimdAvailable } from "./module.ts";

/**
 * Tile and block sizes chosen by bench/matmul.ts on a Zen CPU (48 KiB L1d, 1 MiB L2). fma is
 * decided per runtime by chooseFma (the value here is the fallback of the type only).
 */
export const DEFAULT_GEMM: GemmConfig = {
  MR: 2, NR: 16, KC: 256, MC: 128, NC: 2048, unroll: 1, fma: false,
  // unpacked kernels for few rows, measured against the packed path at K×N = 512², 512×2048, 2048²
  // (single thread): A·Bᵀ dots 1.4–3x faster up to M = 8, A·B row-streaming axpy 1.0–4.6x
  dotsMaxM: 8, axpyMaxM: 8,
};

/**
 * The few-row (gemv) products may use workers from parallelMinFlops × this (2.1 MFLOP). At 2
 * threads 1×512×2048 (2 MFLOP, ~60 µs) got slower, 1×2048×2048 (8 MFLOP) 1.35x faster; in
 * between, whether the workers pay off (a quiet machine) or not (a busy one, where a woken
 * worker shares a core) is left to the adaptive choice. It was 8, which kept the 8000×256
 * tied output projection of a translation step (4.1 MFLOP, a quarter of the step at batch 1)
 * on one thread, whatever the machine.
 */
const GEMV_PARALLEL_FACTOR = 4;

/** Bytes of a job record: big enough for both layouts (gemm JOB and ROWJOB). */
const JOB_BYTES = Math.max(JOB.slots, ROWJOB.slots) * 4;

export interface WasmRuntimeOptions {
  /** Threads used for large kernels, the calling one included. Default: available cores. */
  threads?: number;
  /** Below this many flops (2·M·N·K·batch) a matmul stays on the calling thread. */
  parallelMinFlops?: number;
  /** Below this many elements an element-wise or row kernel stays on the calling thread. */
  parallelMinElements?: number;
  /**
   * Learn per kernel and size whether the workers make calls faster, and use them only then
   * (see adaptive.ts). Default true (env HASTEN_ADAPTIVE=0 turns it off); off, every call
   * above the size thresholds uses all threads.
   */
  adaptive?: boolean;
  /** Microseconds threads poll for work before sleeping (default 1000, env HASTEN_SPIN_US). */
  spinMicros?: number;
  /**
   * Overrides of the matmul blocking (for tuning). fma: use f32x4.relaxed_madd in the gemm
   * micro-kernel; default from HASTEN_WASM_FMA, else on where the engine has relaxed SIMD
   * (see chooseFma); true where it is missing is an error.
   */
  gemm?: Partial<GemmConfig>;
  /** Options of a new heap, or a heap to share with another runtime (one allocator per memory). */
  heap?: HeapOptions | Heap;
}

function defaultThreads(): number {
  const n = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(n, 64));
}

export class WasmRuntime implements RowRunner {
  readonly heap: Heap;
  readonly module: WebAssembly.Module;
  readonly gemmConfig: GemmConfig;
  /** Element-wise, row (softmax, layerNorm) and optimizer kernels on heap pointers. */
  readonly ops: WasmOps;
  /** Below this many flops a matmul runs on the calling thread only. */
  parallelMinFlops: number;
  /** Below this many elements an element-wise or row kernel runs on the calling thread only. */
  parallelMinElements: number;
  /** What the last gemm did: threads it was offered to, tasks, and tasks the caller ran itself. */
  lastGemm = { threads: 0, tasks: 0, tasksHere: 0, gemv: false };
  private readonly entries: string[];
  private readonly exports: Record<string, (ptr: number) => number>;
  private readonly control: number;
  private threads: number;
  private spinMicros: number;
  private pool: ThreadPool | null = null;
  /** Per-thread gemm records (THREAD layout), index 0 for the calling thread, w + 1 for worker w. */
  private readonly threadRecs: number[] = [];
  /** Job records; one stays reserved while a worker that was sent it has not finished. */
  private readonly jobRecs: number[] = [];
  private readonly jobOfWorker: number[] = [];
  /** For each worker: when its last job's `finished` slot reaches `tasks`, it is about to be idle. */
  private readonly lastPost: { view: Int32Array; slot: number; tasks: number }[] = [];
  private readonly chooser: ThreadChooser | null;
  /**
   * i32 and f32 views of the runtime's own records, made once (a shared memory never detaches
   * its old buffers, so they stay valid when it grows): a kernel call makes no view objects.
   */
  private readonly recViews = new Map<number, { i: Int32Array; f: Float32Array }>();
  /** Blocks made by packB, and the B each holds. */
  private readonly packed = new Map<number, { b: number; K: number; N: number; transB: boolean; ldb: number }>();

  constructor(opts: WasmRuntimeOptions = {}) {
    this.heap = opts.heap instanceof Heap ? opts.heap : new Heap(opts.heap);
    // decided before the module is compiled: turning relaxed SIMD on must precede compilation
    this.gemmConfig = { ...DEFAULT_GEMM, ...opts.gemm, fma: chooseFma(opts.gemm?.fma, process.env.HASTEN_WASM_FMA, relaxedSimdAvailable) };
    const built = buildModule(this.gemmConfig, this.heap.maximumBytes / 65536);
    this.entries = built.entries;
    this.module = new WebAssembly.Module(built.bytes);
    const inst = new WebAssembly.Instance(this.module, { env: { memory: this.heap.memory, ...HOST_IMPORTS } });
    this.exports = inst.exports as unknown as WasmRuntime["exports"];
    this.control = this.heap.alloc(CONTROL_BYTES);
    this.heap.u8(this.control, CONTROL_BYTES).fill(0);
    this.threads = opts.threads ?? defaultThreads();
    this.parallelMinFlops = opts.parallelMinFlops ?? 2 ** 19;
    this.parallelMinElements = opts.parallelMinElements ?? 2 ** 16;
    this.spinMicros = opts.spinMicros ?? Number(process.env.HASTEN_SPIN_US ?? 1000);
    this.setNumThreads(this.threads);
    this.ops = new WasmOps(this);
    this.chooser = (opts.adaptive ?? process.env.HASTEN_ADAPTIVE !== "0") ? new ThreadChooser() : null;
  }

  /**
   * Heap blocks the runtime holds for itself (control block, job records, per-thread packing
   * buffers): a leak check on tensor storage compares heap.liveBlocks() − ownBlocks().
   */
  ownBlocks(): number {
    return 1 + this.jobRecs.length + 4 * this.threadRecs.length;
  }

  /** The adaptive thread choice's averages (ms per unit of work, 1 thread vs workers), or null. */
  threadStats(): Record<string, [number, number]> | null {
    return this.chooser?.snapshot() ?? null;
  }

  /** Whether the gemm multiplies-adds with f32x4.relaxed_madd (else f32x4.mul then f32x4.add). */
  get fma(): boolean {
    return this.gemmConfig.fma;
  }

  get heapBytes(): number {
    return this.heap.byteLength;
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

  /** Starts the workers for the current thread count and waits until all can take a job. */
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

  /**
   * Packs B (stored N×K when transB, else K×N, row stride ldb, default its row length) into a
   * new heap block in the order the packed gemm reads it, and returns the block: pass it as
   * packedB to later gemm calls with this B, which then skip packing it (free it with
   * freePackedB; the runtime checks each use against what was packed).
   */
  packB(a: { b: number; K: number; N: number; transB?: boolean; ldb?: number }): number {
    const transB = !!a.transB;
    const r = resolveGemm({ transB, M: 1, N: a.N, K: a.K, a: a.b, b: a.b, c: 0, ldb: a.ldb }, this.heap.byteLength, true);
    const { NR } = this.gemmConfig;
    const bytes = Math.ceil(r.N / NR) * NR * r.K * 4;
    const dst = this.heap.alloc(bytes);
    const [rs, cs] = transB ? [4, r.ldb * 4] : [r.ldb * 4, 4];
    (this.exports.gemm_pack_b as unknown as (...x: number[]) => void)(r.b, cs, rs, r.N, r.K, dst);
    this.packed.set(dst, { b: r.b, K: r.K, N: r.N, transB, ldb: r.ldb });
    return dst;
  }

  freePackedB(ptr: number): void {
    if (!this.packed.delete(ptr)) throw new Error(`wasm: ${ptr} is not a packed B of this runtime`);
    this.heap.free(ptr);
  }

  /** C = op(A)·op(B) (+ beta·C) on heap pointers; see GemmArgs. Blocks until done. */
  gemm(args: GemmArgs): void {
    const r = resolveGemm(args, this.heap.byteLength);
    if (r.packedB !== 0) {
      const p = this.packed.get(r.packedB);
      if (!p || p.b !== r.b || p.K !== r.K || p.N !== r.N || p.transB !== r.transB || p.ldb !== r.ldb) {
        throw new Error(`gemm: packedB ${r.packedB} was not packed from this B (b ${r.b}, ${r.transB ? "transposed, " : ""}K ${r.K}, N ${r.N}, ldb ${r.ldb})`);
      }
    }
    if (r.batch === 0 || r.M === 0 || r.N === 0) return;
    const accumulate = r.K === 0 || r.beta !== 0 ? prepareC(r, this.heap.f32(0, this.heap.byteLength >>> 2)) : false;
    if (r.K === 0) return;
    const flops = 2 * r.M * r.N * r.K * r.batch;
    const t0 = performance.now();
    // the few-row kernels are memory-bound and quick: workers only pay off on larger ones
    const gemv = usesGemv(r, this.gemmConfig);
    const eligible = this.threads > 1 && flops >= this.parallelMinFlops * (gemv ? GEMV_PARALLEL_FACTOR : 1);
    const kind = gemv ? "gemv" : "gemm";
    const workers = this.availableWorkers(eligible && (!this.chooser || this.chooser.parallel(kind, flops)));
    const plan = planGemm(r, 1 + workers.length, this.gemmConfig);
    const job = this.freeJobRecord();
    writeJob(this.rec(job).i, r, plan, accumulate);
    // thread records: 0 is ours, w + 1 belongs to worker w (only idle workers' are rewritten)
    const used = workers.length < plan.tasks ? workers : workers.slice(0, plan.tasks - 1);
    this.rec(this.threadRec(0), THREAD.slots).i[THREAD.job] = job;
    for (const w of used) this.rec(this.threadRec(w + 1), THREAD.slots).i[THREAD.job] = job;
    const here = this.run("gemm_job", job, JOB.finished, plan.tasks, used, (w) => this.threadRec(w + 1), this.threadRec(0), flops / plan.tasks / 50e6);
    this.lastGemm = { threads: 1 + used.length, tasks: plan.tasks, tasksHere: here, gemv: plan.gemv };
    if (eligible) this.chooser?.record(kind, flops, used.length > 0, performance.now() - t0);
  }

  /**
   * Runs a row job (jobs.ts): kernel `entry` over `rows` rows with the arguments typed by
   * `sig` ("i" i32, "f" f32), in chunks of `chunk` rows (default: about 4 per thread).
   */
  runRows(entry: string, sig: string, args: number[], rows: number, elements: number, chunk?: number): void {
    if (rows === 0) return;
    if (sig.length !== args.length) throw new Error(`wasm ${entry}: ${args.length} arguments for signature ${sig}`);
    const t0 = performance.now();
    const eligible = this.threads > 1 && elements >= this.parallelMinElements;
    const workers = this.availableWorkers(eligible && (!this.chooser || this.chooser.parallel(entry, elements)));
    const threads = 1 + workers.length;
    const c = chunk ?? (threads === 1 ? rows : Math.max(1, Math.ceil(rows / (4 * threads))));
    const tasks = Math.ceil(rows / c);
    const job = this.freeJobRecord();
    const { i: iv, f: fv } = this.rec(job);
    iv[ROWJOB.tasks] = tasks;
    iv[ROWJOB.chunk] = c;
    iv[ROWJOB.rows] = rows;
    for (let i = 0; i < args.length; i++) {
      if (sig[i] === "f") fv[ROWJOB.args + i] = args[i];
      else iv[ROWJOB.args + i] = args[i];
    }
    Atomics.store(iv, ROWJOB.finished, 0);
    Atomics.store(iv, ROWJOB.next, 0);
    // ~4 GB/s of elements through a fused kernel: a rough time per task for the final wait
    const used = workers.length < tasks ? workers : workers.slice(0, tasks - 1);
    this.run(entry, job, ROWJOB.finished, tasks, used, () => job, job, elements / tasks / 1e6);
    if (eligible) this.chooser?.record(entry, elements, used.length > 0, performance.now() - t0);
  }

  /** Idle, ready workers to offer a job to (none when `parallel` is false or threads = 1). */
  private availableWorkers(parallel: boolean): number[] {
    if (!parallel || this.threads <= 1) return [];
    this.ensurePool();
    const pool = this.pool!;
    // A worker whose last job is complete is only leaving its loop: wait the few microseconds
    // that takes rather than run without it (back-to-back kernels would otherwise miss it).
    const t0 = performance.now();
    for (let w = 0; w < Math.min(pool.size, this.threads - 1); w++) {
      const p = this.lastPost[w];
      if (!p || Atomics.load(p.view, p.slot) < p.tasks) continue;
      for (let i = 1; !pool.isIdle(w); i++) if ((i & 63) === 0 && performance.now() - t0 > 0.05) break;
    }
    return pool.idleWorkers(this.threads - 1);
  }

  /**
   * Posts job entry to the workers (each gets ptrFor(w)), runs it here on `here`, and waits
   * until the record's `finished` slot reaches `tasks`. Returns the tasks this thread ran.
   */
  private run(entry: string, job: number, finishedSlot: number, tasks: number, workers: number[], ptrFor: (w: number) => number, here: number, taskMs: number): number {
    const mine = this.exportsOf(entry);
    if (workers.length === 0) return mine(here);
    const fn = this.entries.indexOf(entry);
    const view = this.rec(job).i;
    for (const w of workers) {
      this.jobOfWorker[w] = job;
      this.lastPost[w] = { view, slot: finishedSlot, tasks };
      this.pool!.post(w, { fn, ptr: ptrFor(w) });
    }
    const ran = mine(here); // claims tasks alongside the workers
    this.waitFinished(view, finishedSlot, tasks, taskMs);
    return ran;
  }

  private exportsOf(entry: string): (ptr: number) => number {
    const fn = this.exports[entry];
    if (!fn) throw new Error(`wasm: no kernel entry ${entry}`);
    return fn;
  }

  /** The cached views of a runtime record (job or thread record). */
  private rec(ptr: number, slots = JOB_BYTES / 4): { i: Int32Array; f: Float32Array } {
    let v = this.recViews.get(ptr);
    if (!v) {
      v = { i: this.heap.i32(ptr, slots), f: this.heap.f32(ptr, slots) };
      this.recViews.set(ptr, v);
    }
    return v;
  }

  /**
   * Blocks until `tasks` tasks of the job are finished. What is left is at most a task per
   * worker, so poll for about two task times (never more than the spin setting), then sleep:
   * a worker that is late may be queued behind us on this very CPU.
   */
  private waitFinished(view: Int32Array, slot: number, tasks: number, taskMs: number) {
    const pool = this.pool!;
    const limit = Math.min(pool.spinMicros / 1000, Math.max(0.02, 2 * taskMs));
    const t0 = performance.now();
    for (let i = 1, last = t0; Atomics.load(view, slot) < tasks; i++) {
      if ((i & 63) !== 0) continue;
      const now = performance.now();
      if (now - t0 >= limit || now - last > PREEMPTED_MS) break;
      last = now;
    }
    for (;;) {
      const done = Atomics.load(view, slot);
      if (done >= tasks) return;
      const failed = pool.takeFailure();
      if (failed >= 0) throw new Error(`wasm: worker ${failed} failed (see stderr); ${done} of ${tasks} tasks finished`);
      Atomics.wait(view, slot, done, 20);
    }
  }

  private ensurePool() {
    if (this.threads <= 1) return;
    if (!this.pool) {
      this.pool = new ThreadPool(this.module, this.heap.memory, this.control, this.entries);
      this.pool.setSpin(this.spinMicros);
    }
    if (this.pool.size < this.threads - 1) this.pool.resize(this.threads - 1);
  }

  /** A job record that no unfinished worker may still read. */
  private freeJobRecord(): number {
    let busy: Set<number> | undefined;
    if (this.pool) {
      for (let w = 0; w < this.jobOfWorker.length; w++) if (!this.pool.isIdle(w)) (busy ??= new Set()).add(this.jobOfWorker[w]);
    }
    if (!busy && this.jobRecs.length > 0) return this.jobRecs[0];
    for (const j of this.jobRecs) if (!busy?.has(j)) return j;
    const j = this.heap.alloc(JOB_BYTES);
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
