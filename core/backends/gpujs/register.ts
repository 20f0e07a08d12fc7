// Importing this module registers the "gpujs" backend. gpu.js (and Dawn, for webgpu) load only
// when the backend is first created, so importing core stays fast; setBackend("gpujs", {mode})
// therefore always returns a Promise: `await setBackend("gpujs", { mode: "webgpu" })`.
import { registerBackend, type Backend } from "../../backend.ts";

registerBackend("gpujs", async (options?: Record<string, unknown>): Promise<Backend> => {
  const { createGpujsBackend } = await import("./index.ts");
  return createGpujsBackend(options);
}, { modes: ["webgpu", "webasm", "cpu"] });
