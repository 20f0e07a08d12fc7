// A tiny WebAssembly binary emitter: enough to generate Hasten's SIMD kernels at run time with
// no external compiler and no checked-in binaries. It writes the module sections directly
// (type, import, function, export, code), LEB128-encodes immediates, and offers structured
// control flow (block/loop/if) so kernels read like the loops they are.
//
// Encoding reference: the WebAssembly core spec (binary format) and the SIMD proposal's
// BinarySIMD table: every SIMD instruction is 0xFD followed by a LEB128 u32 sub-opcode.

export const i32 = 0x7f;
export const f32 = 0x7d;
export const f64 = 0x7c;
export const v128 = 0x7b;
export type ValType = typeof i32 | typeof f32 | typeof v128 | 0x7e | 0x7c;

/** Unsigned LEB128: 7 bits per byte, high bit set on all but the last. */
export function uleb(n: number): number[] {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`asm: uleb expects a u32, got ${n}`);
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer: stop once the rest is pure sign extension of bit 6. */
export function sleb(n: number): number[] {
  if (!Number.isInteger(n) || n < -0x80000000 || n > 0xffffffff) throw new Error(`asm: sleb expects an i32, got ${n}`);
  n |= 0; // u32 values above 2^31 encode as their i32 bit pattern
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function utf8(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
}

/** Plain opcodes (single byte). Names follow the text format with '.' → '_'. */
export const Op = {
  unreachable: 0x00, nop: 0x01, block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b,
  br: 0x0c, br_if: 0x0d, return: 0x0f, call: 0x10, drop: 0x1a, select: 0x1b,
  local_get: 0x20, local_set: 0x21, local_tee: 0x22,
  i32_load: 0x28, i64_load: 0x29, f32_load: 0x2a, i32_store: 0x36, i64_store: 0x37, f32_store: 0x38,
  i32_const: 0x41, f32_const: 0x43,
  i32_eqz: 0x45, i32_eq: 0x46, i32_ne: 0x47, i32_lt_s: 0x48, i32_lt_u: 0x49, i32_gt_s: 0x4a,
  i32_gt_u: 0x4b, i32_le_s: 0x4c, i32_le_u: 0x4d, i32_ge_s: 0x4e, i32_ge_u: 0x4f,
  f32_eq: 0x5b, f32_ne: 0x5c, f32_lt: 0x5d, f32_gt: 0x5e, f32_le: 0x5f, f32_ge: 0x60,
  i32_add: 0x6a, i32_sub: 0x6b, i32_mul: 0x6c, i32_div_s: 0x6d, i32_div_u: 0x6e, i32_rem_u: 0x70,
  i32_and: 0x71, i32_or: 0x72, i32_xor: 0x73, i32_shl: 0x74, i32_shr_s: 0x75, i32_shr_u: 0x76,
  f32_abs: 0x8b, f32_neg: 0x8c, f32_sqrt: 0x91, f32_add: 0x92, f32_sub: 0x93, f32_mul: 0x94,
  f32_div: 0x95, f32_min: 0x96, f32_max: 0x97,
  i32_trunc_f32_s: 0xa8, f32_convert_i32_s: 0xb2, f32_demote_f64: 0xb6, f64_promote_f32: 0xbb,
  i32_reinterpret_f32: 0xbc, f32_reinterpret_i32: 0xbe,
} as const;

/** SIMD sub-opcodes (after the 0xFD prefix), from the final SIMD proposal's binary table. */
export const Simd = {
  v128_load: 0x00, v128_load32_splat: 0x09, v128_store: 0x0b, v128_const: 0x0c, i8x16_shuffle: 0x0d,
  i32x4_splat: 0x11, f32x4_splat: 0x13, i32x4_extract_lane: 0x1b, f32x4_extract_lane: 0x1f, f32x4_replace_lane: 0x20,
  f32x4_eq: 0x41, f32x4_ne: 0x42, f32x4_lt: 0x43, f32x4_gt: 0x44, f32x4_le: 0x45, f32x4_ge: 0x46,
  v128_not: 0x4d, v128_and: 0x4e, v128_andnot: 0x4f, v128_or: 0x50, v128_xor: 0x51, v128_bitselect: 0x52,
  f32x4_ceil: 0x67, f32x4_floor: 0x68, f32x4_trunc: 0x69, f32x4_nearest: 0x6a,
  i32x4_shl: 0xab, i32x4_shr_s: 0xac, i32x4_shr_u: 0xad, i32x4_add: 0xae, i32x4_sub: 0xb1, i32x4_mul: 0xb5,
  i32x4_min_s: 0xb6, i32x4_max_s: 0xb8,
  f32x4_abs: 0xe0, f32x4_neg: 0xe1, f32x4_sqrt: 0xe3, f32x4_add: 0xe4, f32x4_sub: 0xe5, f32x4_mul: 0xe6,
  f32x4_div: 0xe7, f32x4_min: 0xe8, f32x4_max: 0xe9, f32x4_pmin: 0xea, f32x4_pmax: 0xeb,
  i32x4_trunc_sat_f32x4_s: 0xf8, f32x4_convert_i32x4_s: 0xfa,
  // relaxed-simd: fused a*b+c (only where the engine validates it; Node 20 needs a V8 flag)
  f32x4_relaxed_madd: 0x105,
} as const;

/** Thread/atomic sub-opcodes (after the 0xFE prefix); they need a shared memory. */
export const Atomic = {
  memory_atomic_notify: 0x00, memory_atomic_wait32: 0x01, i32_atomic_load: 0x10, i32_atomic_store: 0x17,
  i32_atomic_rmw_add: 0x1e,
} as const;

/** Builds one function body. Methods append instructions and return `this` for chaining. */
export class FuncBuilder {
  readonly code: number[] = [];
  private readonly localTypes: ValType[] = [];
  private depth = 0; // open structured blocks, so `br` targets can be checked

  constructor(readonly params: readonly ValType[], readonly results: readonly ValType[]) {}

  /** Declares a new local of `type` and returns its index (params come first). */
  local(type: ValType): number {
    this.localTypes.push(type);
    return this.params.length + this.localTypes.length - 1;
  }

  emit(...bytes: number[]): this {
    for (const b of bytes) this.code.push(b);
    return this;
  }
  op(opcode: number): this {
    return this.emit(opcode);
  }
  simd(sub: number): this {
    return this.emit(0xfd, ...uleb(sub));
  }

  get(i: number): this {
    return this.emit(Op.local_get, ...uleb(i));
  }
  set(i: number): this {
    return this.emit(Op.local_set, ...uleb(i));
  }
  tee(i: number): this {
    return this.emit(Op.local_tee, ...uleb(i));
  }
  i32c(v: number): this {
    return this.emit(Op.i32_const, ...sleb(v));
  }
  f32c(v: number): this {
    const b = new Uint8Array(new Float32Array([v]).buffer);
    return this.emit(Op.f32_const, ...b);
  }
  /** v128.const from four f32 lanes. */
  f32x4c(a: number, b = a, c = a, d = a): this {
    const bytes = new Uint8Array(new Float32Array([a, b, c, d]).buffer);
    return this.simd(Simd.v128_const).emit(...bytes);
  }
  i32x4c(a: number, b = a, c = a, d = a): this {
    const bytes = new Uint8Array(new Int32Array([a, b, c, d]).buffer);
    return this.simd(Simd.v128_const).emit(...bytes);
  }

  // Memory access. `align` is log2 of the byte alignment we promise (a hint, never trapping).
  private memarg(offset: number, align: number): number[] {
    return [...uleb(align), ...uleb(offset)];
  }
  i32load(offset = 0): this {
    return this.emit(Op.i32_load, ...this.memarg(offset, 2));
  }
  i32store(offset = 0): this {
    return this.emit(Op.i32_store, ...this.memarg(offset, 2));
  }
  f32load(offset = 0): this {
    return this.emit(Op.f32_load, ...this.memarg(offset, 2));
  }
  f32store(offset = 0): this {
    return this.emit(Op.f32_store, ...this.memarg(offset, 2));
  }
  /** 8-byte copy helpers: i64 load/store move two f32 lanes bit-exactly. */
  i64load(offset = 0): this {
    return this.emit(Op.i64_load, ...this.memarg(offset, 3));
  }
  i64store(offset = 0): this {
    return this.emit(Op.i64_store, ...this.memarg(offset, 3));
  }
  /** An atomic instruction on an i32 at the address on the stack (+ offset), natural alignment. */
  atomic(sub: number, offset = 0): this {
    return this.emit(0xfe, ...uleb(sub), ...this.memarg(offset, 2));
  }
  v128load(offset = 0): this {
    return this.simd(Simd.v128_load).emit(...this.memarg(offset, 4));
  }
  v128store(offset = 0): this {
    return this.simd(Simd.v128_store).emit(...this.memarg(offset, 4));
  }
  /** Loads one f32 and broadcasts it to all four lanes (vbroadcastss on x64). */
  v128load32splat(offset = 0): this {
    return this.simd(Simd.v128_load32_splat).emit(...this.memarg(offset, 2));
  }
  /** i8x16.shuffle of the two v128 operands by 16 byte-lane indices (0–31). */
  shuffle(lanes: number[]): this {
    if (lanes.length !== 16) throw new Error(`asm: shuffle needs 16 lanes, got ${lanes.length}`);
    return this.simd(Simd.i8x16_shuffle).emit(...lanes);
  }
  /** Shuffle by f32 lanes (0–3 from the first operand, 4–7 from the second). */
  shuffle32(l0: number, l1: number, l2: number, l3: number): this {
    const bytes: number[] = [];
    for (const l of [l0, l1, l2, l3]) for (let k = 0; k < 4; k++) bytes.push(l * 4 + k);
    return this.shuffle(bytes);
  }
  extractLane(lane: number): this {
    return this.simd(Simd.f32x4_extract_lane).emit(lane);
  }
  extractLaneI32(lane: number): this {
    return this.simd(Simd.i32x4_extract_lane).emit(lane);
  }

  // Structured control flow. Bodies run inside the block; `br(0)` in a loop body continues it.
  block(body: () => void): this {
    return this.structured(Op.block, body);
  }
  loop(body: () => void): this {
    return this.structured(Op.loop, body);
  }
  if(then: () => void, otherwise?: () => void): this {
    this.emit(Op.if, 0x40);
    this.depth++;
    then();
    if (otherwise) {
      this.emit(Op.else);
      otherwise();
    }
    this.depth--;
    return this.emit(Op.end);
  }
  br(depth: number): this {
    this.checkDepth(depth);
    return this.emit(Op.br, ...uleb(depth));
  }
  brIf(depth: number): this {
    this.checkDepth(depth);
    return this.emit(Op.br_if, ...uleb(depth));
  }
  call(funcIndex: number): this {
    return this.emit(Op.call, ...uleb(funcIndex));
  }

  /**
   * for (i = start; i < end; i += step) body — with `start`/`end` emitted by callbacks that push
   * one i32 each. Signed comparison; the body sees the loop at depth 0 and the exit at depth 1.
   */
  for(i: number, start: () => void, end: () => void, step: number, body: () => void): this {
    start();
    this.set(i);
    return this.block(() => {
      this.loop(() => {
        this.get(i);
        end();
        this.op(Op.i32_ge_s).brIf(1);
        body();
        this.get(i).i32c(step).op(Op.i32_add).set(i);
        this.br(0);
      });
    });
  }

  private structured(opcode: number, body: () => void): this {
    this.emit(opcode, 0x40);
    this.depth++;
    body();
    this.depth--;
    return this.emit(Op.end);
  }
  private checkDepth(depth: number) {
    if (depth < 0 || depth >= this.depth + 1) throw new Error(`asm: branch depth ${depth} outside ${this.depth} open blocks`);
  }

  /** The encoded body: locals grouped into runs of equal type, code, end. */
  encode(): number[] {
    const groups: [number, ValType][] = [];
    for (const t of this.localTypes) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const body = [...uleb(groups.length)];
    for (const [n, t] of groups) body.push(...uleb(n), t);
    for (const b of this.code) body.push(b);
    body.push(Op.end);
    return [...uleb(body.length), ...body];
  }
}

interface FuncDef {
  typeIndex: number;
  builder: FuncBuilder;
}

export interface MemoryImport {
  module: string;
  name: string;
  initialPages: number;
  maximumPages: number;
  shared: boolean;
}

/** Collects types, one imported memory, functions and exports; `bytes()` assembles the module. */
export class ModuleBuilder {
  private types: string[] = [];
  private typeBytes: number[][] = [];
  private funcs: FuncDef[] = [];
  private funcImports: { module: string; name: string; typeIndex: number }[] = [];
  private exports: [string, number][] = [];
  private memory?: MemoryImport;

  /** Imports a host function (before any func is defined: imports come first in the index space). */
  importFunc(module: string, name: string, params: ValType[], results: ValType[]): number {
    if (this.funcs.length > 0) throw new Error(`asm: import ${module}.${name} after functions were defined`);
    this.funcImports.push({ module, name, typeIndex: this.typeIndex(params, results) });
    return this.funcImports.length - 1;
  }

  importMemory(m: MemoryImport): this {
    this.memory = m;
    return this;
  }

  private typeIndex(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(",")}->${results.join(",")}`;
    let i = this.types.indexOf(key);
    if (i < 0) {
      i = this.types.length;
      this.types.push(key);
      this.typeBytes.push([0x60, ...uleb(params.length), ...params, ...uleb(results.length), ...results]);
    }
    return i;
  }

  /** Adds a function (index = order of definition; no function imports) and optionally exports it. */
  func(name: string | null, params: ValType[], results: ValType[], build: (f: FuncBuilder) => void): number {
    const builder = new FuncBuilder(params, results);
    build(builder);
    const index = this.funcImports.length + this.funcs.length;
    this.funcs.push({ typeIndex: this.typeIndex(params, results), builder });
    if (name !== null) this.exports.push([name, index]);
    return index;
  }

  bytes(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, content: number[]) => {
      out.push(id, ...uleb(content.length));
      for (const b of content) out.push(b);
    };
    const vec = (items: number[][]) => {
      const r = [...uleb(items.length)];
      for (const it of items) for (const b of it) r.push(b);
      return r;
    };
    section(1, vec(this.typeBytes));
    const imports = this.funcImports.map((fi) => [...utf8(fi.module), ...utf8(fi.name), 0x00, ...uleb(fi.typeIndex)]);
    if (this.memory) {
      const m = this.memory;
      // limits flag: bit0 = has maximum, bit1 = shared (shared memories must have a maximum)
      const flag = m.shared ? 0x03 : 0x01;
      imports.push([...utf8(m.module), ...utf8(m.name), 0x02, flag, ...uleb(m.initialPages), ...uleb(m.maximumPages)]);
    }
    if (imports.length > 0) section(2, vec(imports));
    section(3, vec(this.funcs.map((f) => uleb(f.typeIndex))));
    section(7, vec(this.exports.map(([name, i]) => [...utf8(name), 0x00, ...uleb(i)])));
    section(10, vec(this.funcs.map((f) => f.builder.encode())));
    return new Uint8Array(out);
  }
}
