// A pool of worker_threads that run exported wasm functions on job records in the shared
// memory. Each worker instantiates the same compiled module with the same memory, so a job is
// just (function, pointer): nothing is copied or posted per call.
//
// Synchronisation is on a control block inside the memory, 8 i32 slots per worker:
//   SEQ   bumped by the main thread to hand over a job (the worker Atomics.waits on it)
//   DONE  set to the job's SEQ by the worker when finished (the main thread waits on it)
//   FN    index into the exported job functions (-1 asks the worker to exit)
//   JOB   pointer to the job record
//   ERR   1 when the job threw
//   READY 1 once the worker has instantiated the module and may be sent jobs
//   OWNER id of the worker that owns the slots; a stopped worker sees a different id and exits
//   SPIN  microseconds to poll SEQ after a job before sleeping in Atomics.wait
// Workers are unref()'d, so an idle pool never keeps the process alive.

import { Worker } from "node:worker_threads";

const SLOTS = 8;
const SEQ = 0;
const DONE = 1;
const FN = 2;
const JOB = 3;
const ERR = 4;
const READY = 5;
const OWNER = 6;
const SPIN = 7;
/** A pause this long between two polls of a spin loop means the thread was descheduled. */
export const PREEMPTED_MS = 0.2;
let nextId = 1;
/** Most workers a pool can hold (the control block is sized for it). */
export const MAX_WORKERS = 64;
export const CONTROL_BYTES = MAX_WORKERS * SLOTS * 4;

// Plain CommonJS run with `eval: true`, so it works the same under tsx, node or a bundler.
const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const { module, memory, control, index, entries, id } = workerData;
const exports_ = new WebAssembly.Instance(module, { env: { memory, log: Math.log } }).exports;
const fns = entries.map((name) => exports_[name]);
const ctl = new Int32Array(memory.buffer, control, ${MAX_WORKERS * SLOTS});
const base = index * ${SLOTS};
let seen = Atomics.load(ctl, base + ${SEQ});
if (Atomics.load(ctl, base + ${OWNER}) === id) Atomics.store(ctl, base + ${READY}, 1);
while (Atomics.load(ctl, base + ${OWNER}) === id) {
  // Spin a while before sleeping: waking a sleeping thread (futex, and in a VM an idle vCPU)
  // costs tens of microseconds, more than a small job, and a woken thread may even be queued
  // on the busy core that woke it.
  // A gap between two polls means we were descheduled: the CPUs are oversubscribed, and
  // spinning would only take time from the thread that is to post the next job.
  const spinMs = ctl[base + ${SPIN}] / 1000, t0 = performance.now();
  for (let i = 1, last = t0; Atomics.load(ctl, base + ${SEQ}) === seen; i++) {
    if ((i & 63) !== 0) continue;
    const now = performance.now();
    if (now - t0 >= spinMs || now - last > ${PREEMPTED_MS}) break;
    last = now;
  }
  Atomics.wait(ctl, base + ${SEQ}, seen);
  const seq = Atomics.load(ctl, base + ${SEQ});
  if (seq === seen) continue;
  seen = seq;
  if (Atomics.load(ctl, base + ${OWNER}) !== id) break;
  const fn = ctl[base + ${FN}];
  try {
    fns[fn](ctl[base + ${JOB}]);
  } catch (e) {
    Atomics.store(ctl, base + ${ERR}, 1);
    console.error("hasten wasm worker " + index + ": " + (e && e.stack || e));
  }
  Atomics.store(ctl, base + ${DONE}, seq);
  Atomics.notify(ctl, base + ${DONE});
}
`;

export interface PoolJob {
  /** Index into the pool's `entries` (exported function names). */
  fn: number;
  /** Pointer to the job record the function reads. */
  ptr: number;
}

export class ThreadPool {
  private workers: (Worker | null)[] = [];
  private readonly ctl: Int32Array;
  /** Polls of a flag before falling back to Atomics.wait (main thread and workers). */
  private spin = 1000;

  /**
   * @param module  the compiled module every worker instantiates
   * @param memory  the shared memory it imports as env.memory
   * @param control byte address of CONTROL_BYTES reserved in that memory
   * @param entries exported function names a job may name (each takes the job pointer)
   */
  constructor(
    private readonly module: WebAssembly.Module,
    private readonly memory: WebAssembly.Memory,
    private readonly control: number,
    private readonly entries: string[],
  ) {
    this.ctl = new Int32Array(memory.buffer, control, MAX_WORKERS * SLOTS);
    this.ctl.fill(0);
  }

  /** Number of workers started (ready or not). */
  get size(): number {
    return this.workers.length;
  }

  /** Starts or stops workers so that `n` exist. New ones become usable once READY. */
  resize(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > MAX_WORKERS) throw new Error(`threads: worker count must be in [0, ${MAX_WORKERS}], got ${n}`);
    while (this.workers.length > n) {
      this.stop(this.workers.length - 1);
      void this.workers.pop()?.terminate();
    }
    while (this.workers.length < n) {
      const index = this.workers.length;
      const base = index * SLOTS;
      const id = nextId++;
      Atomics.store(this.ctl, base + READY, 0);
      Atomics.store(this.ctl, base + ERR, 0);
      Atomics.store(this.ctl, base + OWNER, id);
      Atomics.store(this.ctl, base + SPIN, this.spin);
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: this.module, memory: this.memory, control: this.control, index, entries: this.entries, id },
      });
      w.unref();
      // a worker that dies before READY is simply never used; one that dies later was asked to
      w.on("error", (e) => {
        console.error(`hasten wasm worker ${index} failed: ${e.message}`);
        if (this.workers[index] === w) this.workers[index] = null;
      });
      this.workers.push(w);
    }
  }

  /**
   * Microseconds a thread keeps polling for the next job (worker) or for workers to finish
   * (caller) before sleeping. Spinning keeps back-to-back kernels from paying a wake-up each.
   */
  setSpin(micros: number): void {
    if (!Number.isInteger(micros) || micros < 0) throw new Error(`threads: spin must be an integer >= 0 microseconds, got ${micros}`);
    this.spin = micros;
    for (let w = 0; w < this.workers.length; w++) Atomics.store(this.ctl, w * SLOTS + SPIN, micros);
  }

  /** How many workers (counted from 0) can take jobs right now. */
  readyCount(): number {
    let n = 0;
    while (n < this.workers.length && this.workers[n] && Atomics.load(this.ctl, n * SLOTS + READY) === 1) n++;
    return n;
  }

  /** Resolves once every started worker is ready and idle (polls; the timers end when it resolves). */
  async ready(timeoutMs = 30000): Promise<void> {
    const t0 = Date.now();
    while (this.idleWorkers(this.workers.length).length < this.workers.length) {
      if (Date.now() - t0 > timeoutMs) throw new Error(`threads: only ${this.readyCount()} of ${this.workers.length} workers ready after ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, 2));
    }
  }

  /** Microseconds the caller should poll before sleeping while it waits for workers. */
  get spinMicros(): number {
    return this.spin;
  }

  /**
   * Up to `max` workers that are ready and idle (they finished every job sent to them). A
   * worker still on an old job — descheduled, on a busy machine — is left out rather than
   * waited for.
   */
  idleWorkers(max: number): number[] {
    const out: number[] = [];
    for (let w = 0; w < this.workers.length && out.length < max; w++) {
      const base = w * SLOTS;
      if (this.workers[w] && Atomics.load(this.ctl, base + READY) === 1 && Atomics.load(this.ctl, base + DONE) === Atomics.load(this.ctl, base + SEQ)) {
        out.push(w);
      }
    }
    return out;
  }

  /** Whether worker w has finished every job sent to it. */
  isIdle(w: number): boolean {
    return Atomics.load(this.ctl, w * SLOTS + DONE) === Atomics.load(this.ctl, w * SLOTS + SEQ);
  }

  /** Hands worker w (idle, from idleWorkers) the call fn(ptr) and returns at once. */
  post(w: number, job: PoolJob): void {
    const base = w * SLOTS;
    this.ctl[base + FN] = job.fn;
    this.ctl[base + JOB] = job.ptr;
    Atomics.add(this.ctl, base + SEQ, 1); // the seq-cst add publishes FN, JOB and the job record
    Atomics.notify(this.ctl, base + SEQ, 1);
  }

  /** A worker whose last job threw (its message went to stderr), or -1. Clears the flag. */
  takeFailure(): number {
    for (let w = 0; w < this.workers.length; w++) {
      if (Atomics.load(this.ctl, w * SLOTS + ERR) !== 0) {
        Atomics.store(this.ctl, w * SLOTS + ERR, 0);
        return w;
      }
    }
    return -1;
  }

  /** Stops every worker; the pool can be resized again afterwards. */
  async shutdown(): Promise<void> {
    const ws = this.workers;
    for (let i = ws.length - 1; i >= 0; i--) this.stop(i);
    this.workers = [];
    await Promise.all(ws.map((w) => w?.terminate()));
  }

  /** Asks worker i to leave its loop (it exits on its own), without waiting. */
  private stop(i: number) {
    const base = i * SLOTS;
    Atomics.store(this.ctl, base + READY, 0);
    Atomics.store(this.ctl, base + OWNER, 0);
    Atomics.add(this.ctl, base + SEQ, 1);
    Atomics.notify(this.ctl, base + SEQ, 1);
  }
}
