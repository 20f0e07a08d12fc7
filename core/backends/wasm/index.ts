// The WebAssembly SIMD runtime: one shared memory (the heap where tensors live), one module
// of kernels generated at start-up, and a pool of workers that run those kernels on the same
// memory. It sees only pointers and sizes, never a Tensor.

import os from "node:os";
import { ModuleBuilder, Op, Simd } from "./asm.ts";
import { emitGemm, JOB, scratchBytes, type GemmConfig } from "./gemm-kernels.ts";
import { partitionGemm, prepareC, resolveGemm, writeJob, type GemmArgs, type ThreadScratch } from "./gemm.ts";
import { Heap, type HeapOptions } from "./heap.ts";
import { CONTROL_BYTES, ThreadPool } from "./threads.ts";

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
  /** Microseconds threads poll for work before sleeping (default 2000, env HASTEN_SPIN_US). */
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
  private readonly exports: { gemm_job(p: number): void };
  private readonly control: number;
  private threads: number;
  private spinMicros: number;
  private pool: ThreadPool | null = null;
  private readonly scratch: ThreadScratch[] = [];

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
    this.spinMicros = opts.spinMicros ?? Number(process.env.HASTEN_SPIN_US ?? 2000);
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
    let threads = flops >= this.parallelMinFlops ? this.threads : 1;
    if (threads > 1) {
      this.ensurePool();
      threads = Math.min(threads, 1 + (this.pool?.readyCount() ?? 0));
    }
    const parts = partitionGemm(r, threads, this.gemmConfig);
    for (let t = 0; t < parts.length; t++) {
      const s = this.scratchFor(t);
      writeJob(this.heap.i32(s.job, JOB.slots), r, parts[t], s, accumulate);
    }
    if (parts.length === 1) this.exports.gemm_job(this.scratch[0].job);
    else {
      const jobs = parts.map((_, t) => ({ fn: GEMM_JOB, ptr: this.scratch[t].job }));
      this.pool!.run(jobs, (j) => this.exports.gemm_job(j.ptr));
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

  /** Per-thread packing buffers and job record, allocated once and kept. */
  private scratchFor(t: number): ThreadScratch {
    while (this.scratch.length <= t) {
      const b = scratchBytes(this.gemmConfig);
      this.scratch.push({
        job: this.heap.alloc(JOB.slots * 4),
        packA: this.heap.alloc(b.packA),
        packB: this.heap.alloc(b.packB),
        tile: this.heap.alloc(b.tile),
      });
    }
    return this.scratch[t];
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
