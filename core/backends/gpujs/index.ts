// The `gpujs` backend: every kernel of core/kernels.ts written as GPU.js kernel functions, run
// by gpu.js in one of three modes:
//   webgpu — WGSL compute shaders on a WebGPU adapter; buffers stay on the device and only
//            read() brings data back (sync = false, readSync throws);
//   webasm — gpu.js's WebAssembly (SIMD) compilation of the same kernels, on the CPU;
//   cpu    — gpu.js's JavaScript compilation of the same kernels.
// The two CPU modes exist for parity: the same kernel source, checked without a GPU.
import type { Backend, BackendBuffer } from "../../backend.ts";
import type { DType, TypedArray } from "../../dtype.ts";
import type { KernelName, KernelParams } from "../../kernels.ts";
import { chooseMode, parseMode, probeAdapter, type GpujsMode } from "./device.ts";
import { adamw, binary, cast, copyFromHost, fill, scalar, unary, where } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { concat, gather, indexAdd, indexSelect, pad, scatterAdd, strided } from "./movement.ts";
import { crossEntropy, crossEntropyBackward, layerNorm, layerNormBackward, softmax, softmaxBackward } from "./nn.ts";
import { reduce } from "./reduce.ts";
import { GpujsBuffer, MAX_INDEXED, Runtime, type CompileStat } from "./runtime.ts";

export type { GpujsMode } from "./device.ts";
export { probeAdapter } from "./device.ts";

type Launcher<K extends KernelName> = (rt: Runtime, inputs: GpujsBuffer[], p: KernelParams[K]) => GpujsBuffer[];
// Greedy decoding's fused pick, as the composition it stands for (the same kernels, so the same
// bits; a GPU reads back only the two [rows] results either way).
const logSoftmaxArgmax: Launcher<"logSoftmaxArgmax"> = (rt, [x, bias], { rows, n }) => {
  const [lp] = softmax(rt, [x], { outer: rows, n, inner: 1, log: true });
  const [s] = binary(rt, [lp, bias], { op: "add", outShape: [rows, n], aStrides: [n, 1], bStrides: [0, 1], dtype: "float32" });
  rt.free(lp);
  const [index] = reduce(rt, [s], { op: "argmax", outer: rows, r: n, inner: 1, dtype: "float32" });
  const [value] = gather(rt, [s, index], { outer: rows, n, k: 1, inner: 1, dtype: "float32" });
  rt.free(s);
  return [index, value];
};

const KERNELS: { [K in KernelName]: Launcher<K> } = {
  unary, binary, scalar, where, reduce, strided, pad, concat, matmul, gather, scatterAdd,
  indexSelect, indexAdd, softmax, logSoftmaxArgmax, softmaxBackward, layerNorm, layerNormBackward, crossEntropy,
  crossEntropyBackward, cast, adamw,
};

// Which input of a kernel holds indices, and the range they must lie in (checked on the host
// in the synchronous modes, where the cpu backend's error can be given; see movement.ts).
function indexChecks(kernel: KernelName, inputs: GpujsBuffer[], p: Record<string, unknown>): [GpujsBuffer, number, number][] {
  switch (kernel) {
    case "gather": return [[inputs[1], p.n as number, NaN]];
    case "scatterAdd": return [[inputs[0], p.n as number, NaN]];
    case "indexSelect": return [[inputs[1], p.n as number, NaN]];
    case "indexAdd": return [[inputs[0], p.n as number, NaN]];
    case "crossEntropy": return [[inputs[1], p.v as number, p.ignoreIndex as number]];
    default: return [];
  }
}

export interface GpujsOptions {
  mode?: GpujsMode;
}

export class GpujsBackend implements Backend {
  readonly name = "gpujs";
  readonly sync: boolean;
  private live = 0;

  constructor(readonly rt: Runtime, readonly adapter: string) {
    this.sync = !rt.async;
  }
  get mode(): GpujsMode {
    return this.rt.mode;
  }

  private own(b: GpujsBuffer): GpujsBuffer {
    this.live++;
    return b;
  }
  private buf(b: BackendBuffer, op: string): GpujsBuffer {
    if (!(b instanceof GpujsBuffer)) throw new Error(`gpujs ${op}: expected a gpujs buffer, got ${(b as object)?.constructor?.name ?? typeof b}`);
    if (b.freed) throw new Error(`gpujs ${op}: buffer of ${b.size} ${b.dtype} was already freed`);
    return b;
  }

  upload(dtype: DType, data: TypedArray): BackendBuffer {
    if (dtype === "int32") {
      for (let i = 0; i < data.length; i++) {
        if (Math.abs(data[i]) > MAX_INDEXED) {
          throw new Error(`gpujs upload: int32 value ${data[i]} at index ${i} cannot be held exactly; device buffers are float32, exact for |v| ≤ 2^24`);
        }
      }
    }
    const f = data instanceof Float32Array ? data : Float32Array.from(data);
    return this.own(copyFromHost(this.rt, dtype, f));
  }
  full(dtype: DType, size: number, value: number): BackendBuffer {
    if (dtype === "int32" && Math.abs(value) > MAX_INDEXED) {
      throw new Error(`gpujs full: int32 value ${value} cannot be held exactly; device buffers are float32, exact for |v| ≤ 2^24`);
    }
    return this.own(fill(this.rt, dtype, size, dtype === "int32" ? Math.trunc(value) : value));
  }
  async read(buf: BackendBuffer): Promise<TypedArray> {
    const b = this.buf(buf, "read");
    return toDType(b.dtype, await this.rt.read(b));
  }
  readSync(buf: BackendBuffer): TypedArray {
    if (!this.sync) throw new Error(`gpujs readSync: mode "webgpu" reads asynchronously; use await t.data() (or mode "webasm"/"cpu" for synchronous reads)`);
    const b = this.buf(buf, "readSync");
    return toDType(b.dtype, this.rt.readNow(b));
  }
  free(buf: BackendBuffer): void {
    this.rt.free(this.buf(buf, "free"));
    this.live--;
  }
  run<K extends KernelName>(kernel: K, inputs: BackendBuffer[], params: KernelParams[K]): BackendBuffer[] {
    const ins = inputs.map((b) => this.buf(b, kernel));
    if (this.sync) {
      for (const [idx, n, ignore] of indexChecks(kernel, ins, params as Record<string, unknown>)) checkIndices(kernel, this.rt.readNow(idx), n, ignore);
    }
    const outs = (KERNELS[kernel] as Launcher<K>)(this.rt, ins, params);
    return outs.map((o) => this.own(o));
  }
  liveBuffers(): number {
    return this.live;
  }
  // Device results alive (a buffer's device storage is released by the queued free, so this
  // lags liveBuffers() until flush()).
  deviceBuffers(): number {
    return this.rt.deviceHandles;
  }
  flush(): Promise<void> {
    return this.rt.flush();
  }
  // Resolves when every kernel so far has been handed to the device (encoded and submitted);
  // flush() also waits for the device to finish them.
  submitted(): Promise<void> {
    return this.rt.submitted();
  }
  // Compile cost per kernel (first-call wall time), and how many kernel calls were made.
  stats(): { compiles: CompileStat[]; launches: number } {
    return { compiles: this.rt.compiles.slice(), launches: this.rt.launches };
  }
  destroy(): void {
    this.rt.destroy();
  }
}

function toDType(dtype: DType, f: Float32Array): TypedArray {
  // Int32Array.from truncates toward zero, like storing into an Int32Array on the cpu backend.
  return dtype === "int32" ? Int32Array.from(f) : f;
}

function checkIndices(op: string, idx: Float32Array, n: number, ignore: number): void {
  for (let i = 0; i < idx.length; i++) {
    const v = idx[i];
    if (v === ignore) continue;
    if (!(v >= 0 && v < n)) throw new Error(`${op}: index ${v} out of range [0, ${n})`);
  }
}

// createGpujsBackend({mode}): synchronous for "webasm" and "cpu"; a Promise for "webgpu" and
// for the default, which probes for an adapter (webgpu when a hardware one answers, else
// webasm with a warning; HASTEN_GPUJS_MODE overrides).
export function createGpujsBackend(options: GpujsOptions | Record<string, unknown> = {}): Backend | Promise<Backend> {
  const unknown = Object.keys(options).filter((k) => k !== "mode");
  if (unknown.length > 0) throw new Error(`gpujs: unknown option(s) ${unknown.join(", ")}; expected {mode?: "webgpu" | "webasm" | "cpu"}`);
  const m = options.mode;
  if (m === undefined) return chooseMode().then((mode) => createGpujsBackend({ mode }));
  const mode = parseMode(m, "gpujs: option mode");
  if (mode !== "webgpu") return new GpujsBackend(new Runtime(mode), mode === "webasm" ? "WebAssembly (CPU)" : "JavaScript (CPU)");
  return (async () => {
    const adapter = await probeAdapter();
    if (!adapter) throw new Error(`gpujs: mode "webgpu" needs a WebGPU adapter and none answered; use mode "webasm" or "cpu"`);
    return new GpujsBackend(new Runtime("webgpu"), adapter.name);
  })();
}
