// Hasten has two dtypes: float32 for values and gradients, int32 for token ids and indices.
export type DType = "float32" | "int32";
export type TypedArray = Float32Array | Int32Array;

export function isDType(x: unknown): x is DType {
  return x === "float32" || x === "int32";
}

export function arrayFor(dtype: DType, n: number): TypedArray {
  return dtype === "float32" ? new Float32Array(n) : new Int32Array(n);
}
