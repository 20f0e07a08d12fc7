// Finding a WebGPU adapter, and choosing a gpu.js mode from what answers.
// A browser has navigator.gpu already; in Node the `webgpu` package (Dawn) provides it.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type GpujsMode = "webgpu" | "webasm" | "cpu";
export const GPUJS_MODES: readonly GpujsMode[] = ["webgpu", "webasm", "cpu"];

// The parts of the WebGPU API this backend touches itself (gpu.js does the rest).
export interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface AdapterLike {
  info?: AdapterInfoLike;
  isFallbackAdapter?: boolean;
}
interface GpuLike {
  requestAdapter(options?: object): Promise<AdapterLike | null>;
}

export interface AdapterReport {
  // "llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)", or why there is none.
  name: string;
  // true for software adapters (Mesa lavapipe, SwiftShader): WebGPU calls them fallback adapters.
  software: boolean;
}

let installed: Promise<GpuLike | null> | undefined;

// Returns navigator.gpu, installing Dawn's in Node when it is missing; null when neither exists.
export function webgpuApi(): Promise<GpuLike | null> {
  installed ??= (async () => {
    const nav = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator;
    if (nav?.gpu) return nav.gpu;
    if (typeof process === "undefined" || !process.versions?.node) return null;
    // Mesa's Vulkan drivers warn on every start without a runtime dir; give them a private one.
    process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), "hasten-xdg-"));
    let mod: { create(flags: string[]): GpuLike; globals: object };
    try {
      mod = (await import("webgpu")) as unknown as typeof mod;
    } catch (e) {
      throw new Error(`gpujs: the "webgpu" package (Dawn for Node) could not be loaded: ${(e as Error).message}`);
    }
    // gpu.js reads the WebGPU constants (GPUBufferUsage, ...) and navigator.gpu from globalThis.
    Object.assign(globalThis, mod.globals);
    const gpu = mod.create([]);
    if (nav) Object.defineProperty(nav, "gpu", { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true, writable: true });
    return gpu;
  })();
  return installed;
}

// Asks for an adapter without keeping it; gpu.js acquires its own device.
export async function probeAdapter(): Promise<AdapterReport | null> {
  let gpu: GpuLike | null;
  try {
    gpu = await webgpuApi();
  } catch {
    return null;
  }
  if (!gpu) return null;
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (!adapter) return null;
  const info = adapter.info ?? {};
  const name = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unnamed adapter";
  const software = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter) || /llvmpipe|lavapipe|swiftshader|software/i.test(name);
  return { name, software };
}

// The default mode: webgpu when a hardware adapter answers, else webasm, saying why.
export async function chooseMode(warn: (msg: string) => void = console.warn): Promise<GpujsMode> {
  const env = typeof process !== "undefined" ? process.env.HASTEN_GPUJS_MODE : undefined;
  if (env) return parseMode(env, "HASTEN_GPUJS_MODE");
  const adapter = await probeAdapter();
  if (adapter && !adapter.software) return "webgpu";
  warn(adapter
    ? `gpujs: the only WebGPU adapter is a software one (${adapter.name}); using mode "webasm". Pass {mode: "webgpu"} to use it anyway.`
    : `gpujs: no WebGPU adapter answered; using mode "webasm".`);
  return "webasm";
}

export function parseMode(m: unknown, where = "gpujs mode"): GpujsMode {
  if (GPUJS_MODES.includes(m as GpujsMode)) return m as GpujsMode;
  throw new Error(`${where}: expected one of ${GPUJS_MODES.join(", ")}, got ${JSON.stringify(m)}`);
}
