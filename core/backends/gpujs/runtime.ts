// The gpu.js side of the backend: one GPU instance, a cache of compiled kernels, and the
// rules for running them so that results stay on the device.
//
// gpu.js fixes a kernel's argument types when it compiles; with dynamicOutput and
// dynamicArguments one compiled kernel then serves every size, so the cache key is the kernel
// name plus its static variant (op, dtype), and shapes/strides travel as arguments.
//
// In webgpu mode a kernel call returns a Promise of a device buffer handle, while the
// backend contract's run() must hand back buffers at once. So every device operation
// (kernel call, free, read) goes through one serial queue: run() returns a GpujsBuffer
// whose handle is filled in when its job runs, and a later job always finds its inputs
// ready because it was queued after them. Jobs never wait for the GPU itself: a kernel
// call only encodes and submits, and WebGPU orders submits on its one queue. A buffer
// destroyed after the submit that reads it stays alive until that work is done (WebGPU
// destroy semantics), which is what makes freeing in queue order safe.
import * as gpujs from "gpu.js";
import type { BackendBuffer } from "../../backend.ts";
import type { DType } from "../../dtype.ts";
import type { GpujsMode } from "./device.ts";

const { GPU } = gpujs;
// The shared WebGPU device gpu.js kernels run on (not in gpu.js's type declarations).
interface DeviceContext { device: { queue: { onSubmittedWorkDone(): Promise<void> } } }
const WebGPUContext = (gpujs as unknown as { WebGPUContext: { acquire(): Promise<DeviceContext> } }).WebGPUContext;

// What a kernel call yields: a WebGPUBufferResult on webgpu, a Float32Array on webasm/cpu.
export interface DeviceHandle {
  toArray?(): Promise<Float32Array> | Float32Array;
  delete?(): void;
  length?: number;
}

export class GpujsBuffer implements BackendBuffer {
  handle: DeviceHandle | Float32Array | null = null;
  error: Error | null = null;
  freed = false;
  constructor(readonly dtype: DType, readonly size: number) {}
}

export type ArgType = "Array" | "Float" | "Integer";
export type KernelArg = GpujsBuffer | Float32Array | number;

export interface KernelSpec {
  // Cache key: kernel name plus everything compiled into it, e.g. "binary:add:f".
  key: string;
  // A GPU.js kernel function (or its source): one call computes one output element.
  source: string | ((...args: never[]) => number);
  args: readonly ArgType[];
  functions?: readonly ((...args: never[]) => number)[];
}

// Indices are computed in float32 by gpu.js's translation (it declares int-valued locals as
// f32, and `/` is float division), so they are exact while every buffer has at most 2^24
// elements. Kernels that only index with this.thread.x are exact beyond that.
export const MAX_INDEXED = 1 << 24;

interface CompiledKernel {
  (...args: unknown[]): unknown;
  setOutput(out: number[]): unknown;
  kernel?: { moduleCacheLimit?: number };
}

export interface CompileStat {
  key: string;
  // Wall time of the first call: translation, shader/module compile, pipeline creation, one run.
  firstCallMs: number;
}

export class Runtime {
  readonly gpu: InstanceType<typeof GPU>;
  readonly async: boolean;
  private kernels = new Map<string, CompiledKernel>();
  readonly compiles: CompileStat[] = [];
  launches = 0;
  // Device results alive (for leak tests): created by kernel calls, released by free().
  deviceHandles = 0;
  private tail: Promise<void> = Promise.resolve();
  private pendingError: Error | null = null;

  constructor(readonly mode: GpujsMode) {
    this.gpu = new GPU({ mode });
    this.async = mode === "webgpu";
  }

  // Run `spec` over `size` output elements; returns the output buffer at once.
  launch(spec: KernelSpec, size: number, dtype: DType, args: KernelArg[]): GpujsBuffer {
    const out = new GpujsBuffer(dtype, size);
    if (size === 0) return out;
    if (!this.async) {
      out.handle = this.call(spec, size, args) as Float32Array;
      this.deviceHandles++;
      return out;
    }
    this.enqueue(async () => {
      const failed = args.find((a): a is GpujsBuffer => a instanceof GpujsBuffer && a.error !== null);
      if (failed) {
        out.error = failed.error;
        return;
      }
      try {
        out.handle = (await this.call(spec, size, args)) as DeviceHandle;
        this.deviceHandles++;
      } catch (e) {
        out.error = new Error(`gpujs: kernel ${spec.key} failed: ${(e as Error).message}`);
        this.pendingError ??= out.error;
      }
    });
    return out;
  }

  private call(spec: KernelSpec, size: number, args: KernelArg[]): unknown {
    let k = this.kernels.get(spec.key);
    const fresh = !k;
    if (!k) {
      k = this.gpu.createKernel(spec.source as never, {
        output: [size],
        pipeline: true, // results stay on the device and feed later kernels
        immutable: true, // every call gets its own output buffer
        dynamicOutput: true,
        dynamicArguments: true,
        precision: "single",
        // gpu.js guards every loop with a LOOP_MAX counter (default 1000 iterations!).
        loopMaxIterations: 0x7fffffff,
        argumentTypes: spec.args as never,
        functions: (spec.functions ?? []) as never,
      } as never) as unknown as CompiledKernel;
      // webasm compiles one module per argument-size signature and keeps 8; training
      // loops cycle through more shapes than that per kernel.
      if (k.kernel && typeof k.kernel.moduleCacheLimit === "number") k.kernel.moduleCacheLimit = 32;
      this.kernels.set(spec.key, k);
    }
    k.setOutput([size]);
    this.launches++;
    const values = args.map((a) => (a instanceof GpujsBuffer ? (a.handle ?? EMPTY) : a));
    if (!fresh) return k(...values);
    const t0 = performance.now();
    const r = k(...values);
    const done = (v: unknown) => {
      this.compiles.push({ key: spec.key, firstCallMs: performance.now() - t0 });
      return v;
    };
    return r instanceof Promise ? r.then(done) : done(r);
  }

  // Serial device queue (webgpu only). Jobs record their own errors on their outputs.
  enqueue(job: () => void | Promise<void>): void {
    this.tail = this.tail.then(job).catch((e: Error) => {
      this.pendingError ??= e;
    });
  }

  free(buf: GpujsBuffer): void {
    if (buf.freed) throw new Error(`gpujs: buffer of ${buf.size} ${buf.dtype} freed twice`);
    buf.freed = true;
    const release = () => {
      const h = buf.handle;
      if (h) {
        if (!(h instanceof Float32Array)) h.delete?.();
        this.deviceHandles--;
      }
      buf.handle = null;
    };
    if (this.async) this.enqueue(release);
    else release();
  }

  // Float32 contents of a buffer, read back from the device.
  read(buf: GpujsBuffer): Promise<Float32Array> {
    if (!this.async) return Promise.resolve(this.readNow(buf));
    return new Promise((resolve, reject) => {
      this.enqueue(() => {
        if (buf.error) return reject(buf.error);
        if (buf.freed) return reject(new Error("gpujs: read of a freed buffer"));
        const h = buf.handle;
        if (!h) return resolve(new Float32Array(0));
        // toArray() submits the copy now and resolves later; the queue moves on meanwhile.
        Promise.resolve((h as DeviceHandle).toArray!()).then((a) => resolve(Float32Array.from(a)), reject);
      });
    });
  }

  readNow(buf: GpujsBuffer): Float32Array {
    if (this.async) throw new Error("gpujs: internal: readNow in webgpu mode");
    if (buf.freed) throw new Error("gpujs: read of a freed buffer");
    return buf.handle ? (buf.handle as Float32Array).slice(0, buf.size) : new Float32Array(0);
  }

  // Resolves once every queued job has run, i.e. every kernel so far is submitted to the
  // device (not necessarily finished).
  async submitted(): Promise<void> {
    let tail: Promise<void>;
    do {
      tail = this.tail;
      await tail;
    } while (tail !== this.tail);
  }

  // Wait until every queued job has been submitted and the GPU has finished it; throws the
  // first kernel failure since the last flush (a training loop that never reads still hears of it).
  async flush(): Promise<void> {
    if (this.async) {
      await this.submitted();
      await (await WebGPUContext.acquire()).device.queue.onSubmittedWorkDone();
    }
    const e = this.pendingError;
    this.pendingError = null;
    if (e) throw e;
  }

  destroy(): void {
    this.gpu.destroy();
    this.kernels.clear();
  }
}

// Stands in for an empty input (a zero-size buffer has no device storage; loops over it
// run zero times, so its value is never read).
const EMPTY = new Float32Array(1);
