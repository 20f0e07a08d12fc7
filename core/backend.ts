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

export function registerBackend(name: string, factory: BackendFactory, opts: { isDefault?: boolean } = {}): void {
  factories.set(name, factory);
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
