// Tensor-level checkpoints over the raw safetensors codec: {name: Tensor} ↔ file. Records are
// built as null-prototype objects, so a tensor may have any name ("__proto__" included) and a
// loaded record has no inherited keys ("constructor" in it is false unless a tensor is so named).
// Files are written with a checksum and verified on load when they carry one (safetensors.ts).
import { getBackend, type Backend } from "./backend.ts";
import type { TypedArray } from "./dtype.ts";
import { fromArray } from "./ops/run.ts";
import {
  rawFromFloat32, rawFromInt32, rawToFloat32, rawToInt32, readSafetensors, writeSafetensors, type RawTensor,
} from "./safetensors.ts";
import type { Tensor } from "./tensor.ts";

export interface SaveOptions {
  // Storage dtype for float tensors: F32 (exact) or F16/BF16 (half the size).
  floatDtype?: "F32" | "F16" | "BF16";
  metadata?: Record<string, string>;
  mkdir?: boolean;
  // Write the "hasten.sha256" checksum entry (default true).
  checksum?: boolean;
}

const emptyRecord = <V>(): Record<string, V> => Object.create(null) as Record<string, V>;

export async function toRaw(record: Record<string, Tensor>, floatDtype: "F32" | "F16" | "BF16" = "F32"): Promise<Record<string, RawTensor>> {
  const raw = emptyRecord<RawTensor>();
  for (const [name, t] of Object.entries(record)) {
    if (!t || typeof t.data !== "function") throw new Error(`saveSafetensors: "${name}" is not a Tensor`);
    raw[name] = rawOf(name, t, await t.data(), floatDtype);
  }
  return raw;
}

function rawOf(name: string, t: Tensor, data: TypedArray, floatDtype: "F32" | "F16" | "BF16"): RawTensor {
  return t.dtype === "float32" ? rawFromFloat32(data as Float32Array, t.shape, floatDtype) : rawFromInt32(data as Int32Array, t.shape, "I32");
}

// Reads every tensor first, then writes the file atomically: a failure leaves the old file.
// When every tensor lives on a synchronous backend the file is complete when this returns (the
// Promise is already settled), so `saveSafetensors(p, r); loadSafetensors(p)` works as well as
// `await saveSafetensors(p, r)`; device tensors are read asynchronously first.
export function saveSafetensors(path: string, record: Record<string, Tensor>, opts: SaveOptions = {}): Promise<void> {
  const floatDtype = opts.floatDtype ?? "F32";
  const write = (raw: Record<string, RawTensor>) => writeSafetensors(path, raw, opts.metadata, { mkdir: opts.mkdir, checksum: opts.checksum });
  try {
    const entries = Object.entries(record);
    for (const [name, t] of entries) if (!t || typeof t.data !== "function") throw new Error(`saveSafetensors: "${name}" is not a Tensor`);
    if (entries.every(([, t]) => t.backend.sync)) {
      const raw = emptyRecord<RawTensor>();
      for (const [name, t] of entries) raw[name] = rawOf(name, t, t.dataSync(), floatDtype);
      write(raw);
      return Promise.resolve();
    }
    return toRaw(record, floatDtype).then(write);
  } catch (e) {
    return Promise.reject(e);
  }
}

export function fromRaw(raw: RawTensor, name: string, backend: Backend = getBackend()): Tensor {
  const isFloat = raw.dtype === "F32" || raw.dtype === "F16" || raw.dtype === "BF16" || raw.dtype === "F64";
  return isFloat
    ? fromArray(rawToFloat32(raw, name), raw.shape, "float32", backend)
    : fromArray(rawToInt32(raw, name), raw.shape, "int32", backend);
}

// Float dtypes load as float32, integer dtypes as int32. The whole file is validated (and its
// checksum checked, when it has one) before any tensor is made.
export function loadSafetensors(path: string, backend?: Backend): Record<string, Tensor> {
  return loadSafetensorsWithMetadata(path, backend).tensors;
}

export function loadSafetensorsWithMetadata(
  path: string,
  backend?: Backend,
): { tensors: Record<string, Tensor>; metadata: Record<string, string>; checksum: "verified" | "absent" } {
  const { tensors, metadata, checksum } = readSafetensors(path);
  const out = emptyRecord<Tensor>();
  try {
    for (const [name, raw] of Object.entries(tensors)) out[name] = fromRaw(raw, name, backend);
  } catch (e) {
    // e.g. an I64 value beyond int32: free what was already made, and say which file
    for (const t of Object.values(out)) t.dispose();
    throw new Error(`${(e as Error).message} (in ${path})`);
  }
  return { tensors: out, metadata, checksum };
}
