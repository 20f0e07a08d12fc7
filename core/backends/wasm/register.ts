// Importing this module registers the "wasm" backend as the default CPU backend.
import { registerBackend } from "../../backend.ts";
import { createWasmBackend } from "./backend.ts";

registerBackend("wasm", (options?: Record<string, unknown>) => createWasmBackend(options as { threads?: number }), { isDefault: true });
