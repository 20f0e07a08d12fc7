// Per-kernel time totals for a backend: wrap it, run some work, print the table.
// Host backends run kernels synchronously, so wall time per call is the kernel's time.
import type { Backend } from "./backend.ts";

export interface KernelProfile {
  stop(): void;
  table(): string;
  totals(): Map<string, { calls: number; ms: number }>;
}

export function profileBackend(backend: Backend): KernelProfile {
  const original = backend.run;
  const totals = new Map<string, { calls: number; ms: number }>();
  backend.run = function (kernel, inputs, params) {
    const t0 = performance.now();
    const out = original.call(this, kernel, inputs, params);
    const op = (params as { op?: string }).op;
    const key = op ? `${kernel}:${op}` : kernel;
    const e = totals.get(key) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += performance.now() - t0;
    totals.set(key, e);
    return out;
  };
  return {
    stop: () => { backend.run = original; },
    totals: () => totals,
    table: () => {
      const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
      const all = rows.reduce((s, [, e]) => s + e.ms, 0);
      return rows.map(([k, e]) => `${k.padEnd(28)} ${String(e.calls).padStart(7)} calls ${e.ms.toFixed(1).padStart(10)} ms ${((100 * e.ms) / all).toFixed(1).padStart(5)}%`).join("\n");
    },
  };
}
