// Assembles the one wasm module of the runtime: the gemm, the element-wise and the row kernels,
// each behind a job entry point (job pointer → tasks it ran) that any thread can call.

import v8 from "node:v8";
import { f64, ModuleBuilder, Op, Simd } from "./asm.ts";
import { emitGemm, type GemmConfig } from "./gemm-kernels.ts";
import { emitElementwise } from "./kernels-ew.ts";
import { emitRowKernels } from "./kernels-rows.ts";
import { emitUnary } from "./kernels-unary.ts";

export interface BuiltModule {
  bytes: Uint8Array<ArrayBuffer>;
  /** Exported job functions; a worker job names one by its index here. */
  entries: string[];
}

/** Host functions the module imports besides the memory (the workers provide the same). */
export const HOST_IMPORTS = { log: Math.log };

export function buildModule(cfg: GemmConfig, maximumPages: number): BuiltModule {
  const m = new ModuleBuilder();
  const log = m.importFunc("env", "log", [f64], [f64]);
  m.importMemory({ module: "env", name: "memory", initialPages: 1, maximumPages, shared: true });
  emitGemm(m, cfg);
  const entries = ["gemm_job", ...emitElementwise(m), ...emitUnary(m), ...emitRowKernels(m, log)];
  return { bytes: m.bytes(), entries };
}

/** Whether this engine validates a module that uses f32x4.relaxed_madd. */
function validatesRelaxedMadd(): boolean {
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

let relaxed: boolean | undefined;

/**
 * Whether this engine accepts f32x4.relaxed_madd, turning it on first where it can.
 *
 * Node 20's V8 (11.3) implements relaxed SIMD behind --experimental-wasm-relaxed-simd; Node 22
 * and Chrome 114 ship it. V8 reads its wasm feature flags when it compiles a module, so
 * setting the flag at run time, before the runtime compiles its kernels, is enough; workers
 * get the compiled module and never compile it again. The flag is only touched when a plain
 * validation fails, in Node, and is process-wide: it adds instructions and changes no other
 * module. Elsewhere (browsers without relaxed SIMD) this is false and the gemm uses mul + add.
 */
export function relaxedSimdAvailable(): boolean {
  if (relaxed !== undefined) return relaxed;
  relaxed = validatesRelaxedMadd();
  if (!relaxed && typeof process !== "undefined" && process.versions?.node) {
    try {
      v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
      relaxed = validatesRelaxedMadd();
    } catch {
      relaxed = false;
    }
  }
  return relaxed;
}

/**
 * Whether the gemm micro-kernel uses f32x4.relaxed_madd: `requested` (an explicit option) wins,
 * then the environment (HASTEN_WASM_FMA=0 off, 1 on, unset or "auto": when available), then
 * availability. Asking for it where the engine lacks it is an error, not a silent fallback.
 * relaxed_madd may or may not round once (V8 fuses on x64 CPUs with FMA3 and on arm64, and
 * multiplies then adds elsewhere): results may differ from mul + add in the last bits.
 */
export function chooseFma(requested: boolean | undefined, env: string | undefined, available: () => boolean): boolean {
  if (env !== undefined && env !== "" && env !== "0" && env !== "1" && env !== "auto") {
    throw new Error(`wasm: HASTEN_WASM_FMA must be 0, 1 or auto, got ${JSON.stringify(env)}`);
  }
  const want = requested ?? (env === "0" ? false : env === "1" ? true : undefined);
  if (want === false) return false; // never touch the engine's flags when FMA is off
  const ok = available();
  if (want === true && !ok) {
    const why = requested === true ? "the gemm option fma: true" : "HASTEN_WASM_FMA=1";
    throw new Error(`wasm: ${why} asks for f32x4.relaxed_madd, but this engine does not validate it (no relaxed SIMD)`);
  }
  return ok;
}
