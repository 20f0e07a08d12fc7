// What the alignment losses share: they compute a few numbers on the backend, read them to the
// host, solve an alignment there (Hungarian, dynamic programming, forward–backward), and build the
// loss from differentiable ops on what was chosen. Reading is synchronous on the cpu and wasm
// backends and asynchronous on gpujs/webgpu, so each loss is written once as a generator that
// yields the tensors it must read and receives their contents; `runSync` and `runAsync` drive it.
import { fmt, gather, logSoftmax, noGrad, tensor, type Tensor, type TypedArray } from "../../core/index.ts";

export type HostSteps<T> = Generator<Tensor[], T, TypedArray[]>;

export function runSync<T>(op: string, steps: HostSteps<T>): T {
  let r = steps.next();
  while (!r.done) {
    const ts = r.value;
    for (const t of ts) {
      if (!t.backend.sync) {
        steps.return(undefined as T);
        throw new Error(`${op}: backend "${t.backend.name}" reads asynchronously; use ${op}Async`);
      }
    }
    r = steps.next(ts.map((t) => t.dataSync()));
  }
  return r.value;
}

export async function runAsync<T>(steps: HostSteps<T>): Promise<T> {
  let r = steps.next();
  while (!r.done) r = steps.next(await Promise.all(r.value.map((t) => t.data())));
  return r.value;
}

export type Reduction = "mean" | "sum" | "none";

export function checkReduction(op: string, reduction: unknown): Reduction {
  if (reduction !== "mean" && reduction !== "sum" && reduction !== "none") throw new Error(`${op}: unknown reduction ${JSON.stringify(reduction)}; expected "mean", "sum" or "none"`);
  return reduction;
}

// logits [B, N, V] float32 and target [B, M] int32 (M = N unless `sameLength` is false).
export function checkLogitsTarget(op: string, logits: Tensor, target: Tensor, sameLength = true): void {
  if (logits.dtype !== "float32") throw new Error(`${op}: logits must be float32, got ${logits.dtype}`);
  if (target.dtype !== "int32") throw new Error(`${op}: target must be int32 token ids, got ${target.dtype}`);
  if (logits.ndim !== 3) throw new Error(`${op}: logits must be [B, N, V], got ${fmt(logits.shape)}`);
  if (target.ndim !== 2 || target.shape[0] !== logits.shape[0] || (sameLength && target.shape[1] !== logits.shape[1])) {
    const want = sameLength ? fmt(logits.shape.slice(0, 2)) : `[${logits.shape[0]},M]`;
    throw new Error(`${op}: target must be ${want} for logits ${fmt(logits.shape)}, got ${fmt(target.shape)}`);
  }
  if (target.backend !== logits.backend) throw new Error(`${op}: logits are on backend "${logits.backend.name}", target on "${target.backend.name}"`);
}

// Every id of a [rows, width] target is a vocabulary id or ignoreIndex.
export function checkTokens(op: string, ids: TypedArray, width: number, vocab: number, ignoreIndex: number): void {
  for (let k = 0; k < ids.length; k++) {
    const y = ids[k];
    if (y !== ignoreIndex && !(y >= 0 && y < vocab)) {
      throw new Error(`${op}: target[${Math.floor(k / width)}][${k % width}] = ${y} is outside the vocabulary [0, ${vocab}) and is not ignoreIndex (${ignoreIndex})`);
    }
  }
}

// −log softmax(logits)[b, i, cols[b, k]] for every position i and column k, as a host Float64Array
// [B, N, K]: the cost of giving position i the token of column k. Only B·N·K numbers are read.
export function* tokenCosts(logits: Tensor, cols: Int32Array, K: number): HostSteps<Float64Array> {
  const [B, N] = logits.shape;
  if (B * N * K === 0) return new Float64Array(0);
  const index = new Int32Array(B * N * K);
  for (let b = 0; b < B; b++) for (let i = 0; i < N; i++) index.set(cols.subarray(b * K, (b + 1) * K), (b * N + i) * K);
  const picked = noGrad(() => {
    const lp = logSoftmax(logits, -1);
    const idx = tensor(index, { shape: [B, N, K], dtype: "int32", backend: logits.backend });
    const g = gather(lp, 2, idx);
    lp.dispose();
    idx.dispose();
    return g;
  });
  let raw: TypedArray;
  try {
    [raw] = yield [picked];
  } finally {
    picked.dispose();
  }
  const out = new Float64Array(raw.length);
  for (let k = 0; k < raw.length; k++) out[k] = -raw[k];
  return out;
}
