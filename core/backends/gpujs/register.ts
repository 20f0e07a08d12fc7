// Importing this module registers the "gpujs" backend: setBackend("gpujs", {mode}) then
// creates it (a Promise for mode "webgpu" and for the default mode, which probes the adapter).
import { registerBackend } from "../../backend.ts";
import { createGpujsBackend } from "./index.ts";

registerBackend("gpujs", createGpujsBackend);
