// Exact conversions between float32 and the two 16-bit float formats used in checkpoints.
//
//   IEEE binary16 (F16):  1 sign | 5 exponent (bias 15)  | 10 mantissa
//   bfloat16 (BF16):      1 sign | 8 exponent (bias 127) |  7 mantissa  (= the top half of a float32)
//
// Float32 -> 16 bits rounds to nearest, ties to even, as IEEE 754 and PyTorch's `.half()` do.
// Everything works on the raw bits through Uint32Array views, never through float arithmetic,
// so NaN payloads and signed zeros survive and the result does not depend on the FPU.

/** The raw bits of a Float32Array, without copying (byteOffset of a Float32Array is a multiple of 4). */
function bitsOf(arr: Float32Array): Uint32Array {
  return new Uint32Array(arr.buffer, arr.byteOffset, arr.length);
}

/** One float32 bit pattern to the nearest binary16 bit pattern (ties to even). */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff; // biased by 127
  const mant = x & 0x7fffff;

  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00; // ±inf
    // NaN: keep the top 10 payload bits; if they are all zero, set the quiet bit so it stays a NaN.
    const payload = mant >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload);
  }
  // Half exponent = exp - 127 + 15. Above the largest finite half exponent (30) it is infinite.
  if (exp >= 143) return sign | 0x7c00;

  if (exp >= 113) {
    // Normal half: drop 13 mantissa bits. A carry out of the mantissa correctly bumps the
    // exponent, and a carry out of exponent 30 gives 0x7c00 = inf (e.g. 65520 -> inf).
    let h = ((exp - 112) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return sign | h;
  }
  // Subnormal half (or zero): the value is m·2^-24 with m in [0, 1023].
  // With the 24-bit significand sig = 1.mant·2^23, |x| = sig·2^(exp-150) = sig·2^-24 / 2^(126-exp),
  // so m = sig >> (126 - exp), rounded. Below 2^-25 (exp <= 101) everything rounds to zero;
  // this also covers float32 subnormals (exp = 0).
  if (exp <= 101) return sign;
  const sig = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  let m = sig >>> shift;
  const rest = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (m & 1) === 1)) m++; // m = 1024 becomes the smallest normal
  return sign | m;
}

/** One binary16 bit pattern to the float32 bit pattern of the same value (always exact). */
export function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, or NaN with its payload
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0; // ±0
  // Subnormal half m·2^-24: normalise so the leading 1 becomes the implicit bit of a float32.
  let e = 113; // float32 biased exponent of 2^-14
  let m = mant;
  while ((m & 0x400) === 0) {
    m <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((m & 0x3ff) << 13)) >>> 0;
}

/** One float32 bit pattern to the nearest bfloat16 bit pattern (ties to even). */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    // NaN: keep the top 7 payload bits; if truncation cleared them all (which would read as inf),
    // set the quiet bit so it stays a NaN.
    const top = (x >>> 16) & 0xffff;
    return (top & 0x7f) === 0 ? top | 0x40 : top;
  }
  // Add just under half an ulp of the result, plus 1 when the kept part is odd: ties go to even.
  // x < 2^32 and the addend < 2^16, so the sum is exact in a double; overflow reaches 0x7f80 = inf.
  const x32 = x >>> 0;
  return ((x32 + 0x7fff + ((x32 >>> 16) & 1)) / 0x10000) & 0xffff;
}

/** float32 values to binary16 bit patterns, round to nearest even. */
export function f32ToF16Bits(src: Float32Array): Uint16Array {
  const bits = bitsOf(src);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** binary16 bit patterns to float32 values (exact: every half is a float32). */
export function f16BitsToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = bitsOf(out);
  for (let i = 0; i < src.length; i++) bits[i] = f16BitsToF32Bits(src[i]);
  return out;
}

/** float32 values to bfloat16 bit patterns, round to nearest even. */
export function f32ToBf16Bits(src: Float32Array): Uint16Array {
  const bits = bitsOf(src);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}

/** bfloat16 bit patterns to float32 values (exact: bf16 is the top half of a float32). */
export function bf16BitsToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = bitsOf(out);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
