// The backend contract: allocate, upload, read, free, and run a named kernel on buffers.
// Buffers may live on a device and be read back asynchronously; the Tensor layer never
// looks inside one.
import type { DType, TypedArray } from "./dtype.ts";
import type { KernelName, KernelParams } from "./kernels.ts";

export interface BackendBuffer {
  readonly dtype: DType;
  readonly size: number; // elements
}

export interface Backend {
  readonly name: string;
  // true when readSync works (cpu, wasm); GPU backends only offer read().
  readonly sync: boolean;
  upload(dtype: DType, data: TypedArray): BackendBuffer;
  // A buffer of `size` elements filled with `value`.
  full(dtype: DType, size: number, value: number): BackendBuffer;
  read(buf: BackendBuffer): Promise<TypedArray>;
  readSync(buf: BackendBuffer): TypedArray;
  free(buf: BackendBuffer): void;
  run<K extends KernelName>(kernel: K, inputs: BackendBuffer[], params: KernelParams[K]): BackendBuffer[];
  // Live buffers, for leak tests.
  liveBuffers(): number;
  // Optional: wait for queued device work (GPU backends).
  flush?(): Promise<void>;
}

export type BackendFactory = (options?: Record<string, unknown>) => Backend | Promise<Backend>;

const factories = new Map<string, BackendFactory>();
const instances = new Map<string, Backend>();
let current: Backend | undefined;
let defaultName = "cpu";

const modesOf = new Map<string, readonly string[]>();

// modes: the values its `mode` option accepts (gpujs: webgpu, webasm, cpu); none when absent.
export function registerBackend(name: string, factory: BackendFactory, opts: { isDefault?: boolean; modes?: readonly string[] } = {}): void {
  factories.set(name, factory);
  if (opts.modes) modesOf.set(name, opts.modes);
  if (opts.isDefault) defaultName = name;
}

export function registeredBackends(): string[] {
  return [...factories.keys()];
}

// setBackend("cpu") is synchronous for synchronous factories; GPU backends return a promise.
export function setBackend(name: string, options?: Record<string, unknown>): Backend | Promise<Backend> {
  const key = options ? `${name}:${JSON.stringify(options)}` : name;
  const existing = instances.get(key);
  if (existing) return (current = existing);
  const factory = factories.get(name);
  if (!factory) {
    throw new Error(`setBackend: unknown backend "${name}"; registered: ${registeredBackends().join(", ")}`);
  }
  const made = factory(options);
  if (made instanceof Promise) {
    return made.then((b) => {
      instances.set(key, b);
      return (current = b);
    });
  }
  instances.set(key, made);
  return (current = made);
}

export function getBackend(): Backend {
  if (!current) {
    const b = setBackend(defaultName);
    if (b instanceof Promise) throw new Error(`getBackend: default backend "${defaultName}" is asynchronous; await setBackend() first`);
    return b;
  }
  return current;
}

// One way to choose a backend from text, for command lines and configs: "name" or "name:mode"
// (gpujs:webgpu, wasm), with an optional thread count. "" keeps the current (default) backend.
// Always awaitable; errors name what was asked for and what exists.
export async function selectBackend(spec: string, opts: { threads?: number } = {}): Promise<Backend> {
  if (spec === "" && !opts.threads) return getBackend();
  const [name, mode, ...rest] = (spec || current?.name || defaultName).split(":");
  if (rest.length > 0 || name === "") throw new Error(`backend: expected NAME or NAME:MODE, got "${spec}"`);
  if (!factories.has(name)) throw new Error(`backend: unknown backend "${name}"; available: ${registeredBackends().sort().join(", ")}`);
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 0)) {
    throw new Error(`backend: threads must be an integer >= 0, got ${opts.threads}`);
  }
  const modes = modesOf.get(name) ?? [];
  if (mode !== undefined && !modes.includes(mode)) {
    throw new Error(`backend: ${name} ${modes.length ? `modes are ${modes.join(", ")}` : "takes no mode"}, got "${spec}"`);
  }
  const options: Record<string, unknown> = {};
  if (mode !== undefined) options.mode = mode;
  if (opts.threads) options.threads = opts.threads;
  return await setBackend(name, Object.keys(options).length ? options : undefined);
}
