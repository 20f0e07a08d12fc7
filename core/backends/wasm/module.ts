// Assembles the one wasm module of the runtime: the gemm, the element-wise and the row kernels,
// each behind a job entry point (job pointer → tasks it ran) that any thread can call.

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
