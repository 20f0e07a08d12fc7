// Which backends the op suite runs on. Every registered backend that can start here is tested;
// HASTEN_TEST_BACKENDS=cpu,wasm narrows the list. A backend that cannot start is reported as
// skipped with its reason, never silently passed.
import { registeredBackends, setBackend, type Backend } from "../../core/index.ts";
import { skipTest } from "./skip.ts";

export interface TestBackend {
  label: string;
  name: string;
  options?: Record<string, unknown>;
}

// Extra configurations per backend name (e.g. gpujs modes); registered by backend modules.
const variants: Record<string, TestBackend[]> = {
  gpujs: [
    { label: "gpujs/webgpu", name: "gpujs", options: { mode: "webgpu" } },
    { label: "gpujs/webasm", name: "gpujs", options: { mode: "webasm" } },
  ],
};

export const skipped: string[] = [];
let cache: { cfg: TestBackend; backend: Backend }[] | undefined;

export async function testBackends(): Promise<{ cfg: TestBackend; backend: Backend }[]> {
  if (cache) return cache;
  const only = process.env.HASTEN_TEST_BACKENDS?.split(",").map((s) => s.trim());
  const cfgs: TestBackend[] = [];
  for (const name of registeredBackends()) cfgs.push(...(variants[name] ?? [{ label: name, name }]));
  const out: { cfg: TestBackend; backend: Backend }[] = [];
  for (const cfg of cfgs) {
    if (only && !only.includes(cfg.label) && !only.includes(cfg.name)) continue;
    try {
      out.push({ cfg, backend: await setBackend(cfg.name, cfg.options) });
    } catch (e) {
      const why = `${cfg.label}: ${(e as Error).message.split("\n")[0]}`;
      skipped.push(why);
      skipTest(undefined, `tests on backend ${cfg.label}`, (e as Error).message.split("\n")[0]);
    }
  }
  await setBackend("cpu");
  if (out.length === 0) throw new Error(`testBackends: no backend selected (HASTEN_TEST_BACKENDS=${process.env.HASTEN_TEST_BACKENDS ?? ""}); skipped: ${skipped.join("; ") || "none"}`);
  cache = out;
  return out;
}
