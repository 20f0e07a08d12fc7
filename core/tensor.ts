// The Tensor: a shape, a dtype, a buffer on one backend, and (when it requires grad) the
// Node that made it. Every tensor is contiguous; views such as reshape share the buffer.
import { backward as runBackward, type Node } from "./autograd.ts";
import { unwatch, watch } from "./backstop.ts";
import type { Backend, BackendBuffer } from "./backend.ts";
import type { DType, TypedArray } from "./dtype.ts";
import * as E from "./ops/elementwise.ts";
import * as I from "./ops/indexing.ts";
import * as L from "./ops/linalg.ts";
import * as N from "./ops/nn.ts";
import * as R from "./ops/reduce.ts";
import * as S from "./ops/shape.ts";
import { inTidy, keep, track } from "./scope.ts";
import { fmt, numel, type Shape } from "./shape.ts";

// A buffer shared by a tensor and its views; freed when the last one is disposed. dispose() and
// tidy() are the rule; a Storage that becomes unreachable without either is freed by the leak
// backstop (backstop.ts) when the collector finds it. One made inside a tidy() is watched only
// once a tensor holding it leaves the scopes (escape()): most are freed by the tidy first.
export class Storage {
  refs = 1;
  private watchedBytes = 0; // 0: not watched (made in a tidy, or the backstop was off)
  constructor(readonly backend: Backend, readonly buf: BackendBuffer) {
    if (!inTidy()) this.watchedBytes = watch(this, backend, buf);
  }
  escape(): void {
    if (this.watchedBytes === 0 && this.refs > 0) this.watchedBytes = watch(this, this.backend, this.buf);
  }
  release(): void {
    if (--this.refs !== 0) return;
    if (this.watchedBytes > 0) unwatch(this, this.watchedBytes);
    this.backend.free(this.buf);
  }
}

type Scalar = number;
type Operand = Tensor | Scalar;

export class Tensor {
  readonly shape: number[];
  readonly dtype: DType;
  requiresGrad = false;
  grad: Tensor | undefined = undefined;
  _node: Node | undefined = undefined;
  private _storage: Storage | undefined;

  constructor(storage: Storage, shape: Shape, dtype: DType) {
    this._storage = storage;
    this.shape = shape.slice();
    this.dtype = dtype;
    track(this);
  }

  // ---- storage ----
  get backend(): Backend {
    return this.storage.backend;
  }
  get storage(): Storage {
    if (!this._storage) throw new Error(`Tensor${fmt(this.shape)} was used after dispose()`);
    return this._storage;
  }
  get buf(): BackendBuffer {
    return this.storage.buf;
  }
  get isDisposed(): boolean {
    return this._storage === undefined;
  }
  // Out of every tidy scope (see scope.ts): the leak backstop watches the buffer from now on.
  untracked(): void {
    this._storage?.escape();
  }
  get size(): number {
    return numel(this.shape);
  }
  get ndim(): number {
    return this.shape.length;
  }
  dispose(): void {
    if (!this._storage) return;
    this._storage.release();
    this._storage = undefined;
    this._node = undefined;
  }
  // Replace this tensor's contents with other's buffer (optimizers update parameters this way,
  // so the Parameter object, and everything holding it, stays the same). Consumes `other`.
  assign_(other: Tensor): this {
    if (other.dtype !== this.dtype || other.shape.join() !== this.shape.join()) {
      throw new Error(`assign_: expected ${this.dtype}${fmt(this.shape)}, got ${other.dtype}${fmt(other.shape)}`);
    }
    if (other.backend !== this.backend) throw new Error(`assign_: tensor is on "${this.backend.name}", value on "${other.backend.name}"`);
    const s = other.storage;
    s.refs++;
    other.dispose();
    this.storage.release();
    this._storage = s;
    s.escape(); // now held by a tensor no tidy() frees (a parameter, say)
    return this;
  }

  // ---- reading values ----
  async data(): Promise<TypedArray> {
    const out = await this.backend.read(this.buf);
    // Touch `this` after the read: `await x.mul(2).data()` must keep that temporary tensor (and
    // so its buffer, under the leak backstop) alive until a device read has finished.
    void this._storage;
    return out;
  }
  dataSync(): TypedArray {
    const b = this.backend;
    if (!b.sync) throw new Error(`dataSync: backend "${b.name}" reads asynchronously; use await t.data()`);
    return b.readSync(this.buf);
  }
  toArray(): unknown {
    const d = this.dataSync();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.shape.length) return d[off];
      const stride = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, off + i * stride));
    };
    return build(0, 0);
  }
  item(): number {
    if (this.size !== 1) throw new Error(`item: expected a tensor with one element, got shape ${fmt(this.shape)}`);
    return this.dataSync()[0];
  }
  toString(): string {
    return `Tensor(${this.dtype}${fmt(this.shape)}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }

  // ---- autodiff ----
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }
  requiresGrad_(flag = true): this {
    if (flag && this.dtype !== "float32") throw new Error(`requiresGrad_: only float32 tensors can require grad, got ${this.dtype}`);
    if (flag && this._node) throw new Error("requiresGrad_: only leaf tensors can be marked; use detach() first");
    this.requiresGrad = flag;
    return this;
  }
  detach(): Tensor {
    const s = this.storage;
    s.refs++;
    return new Tensor(s, this.shape, this.dtype);
  }
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = undefined;
  }
  _accumulateGrad(g: Tensor): void {
    if (this.grad && !this.grad.isDisposed) {
      const old = this.grad;
      this.grad = keep(old.add(g));
      old.dispose();
    } else this.grad = keep(g);
  }
  clone(): Tensor {
    return E.clone(this);
  }

  // ---- element-wise ----
  add(o: Operand): Tensor { return E.add(this, o); }
  sub(o: Operand): Tensor { return E.sub(this, o); }
  mul(o: Operand): Tensor { return E.mul(this, o); }
  div(o: Operand): Tensor { return E.div(this, o); }
  pow(o: Operand): Tensor { return E.pow(this, o); }
  maximum(o: Operand): Tensor { return E.maximum(this, o); }
  minimum(o: Operand): Tensor { return E.minimum(this, o); }
  neg(): Tensor { return E.unaryOp("neg", this); }
  exp(): Tensor { return E.unaryOp("exp", this); }
  log(): Tensor { return E.unaryOp("log", this); }
  sqrt(): Tensor { return E.unaryOp("sqrt", this); }
  rsqrt(): Tensor { return E.unaryOp("rsqrt", this); }
  abs(): Tensor { return E.unaryOp("abs", this); }
  tanh(): Tensor { return E.unaryOp("tanh", this); }
  sigmoid(): Tensor { return E.unaryOp("sigmoid", this); }
  relu(): Tensor { return E.unaryOp("relu", this); }
  sin(): Tensor { return E.unaryOp("sin", this); }
  cos(): Tensor { return E.unaryOp("cos", this); }
  sign(): Tensor { return E.unaryOp("sign", this); }
  square(): Tensor { return E.mul(this, this); }
  gelu(approximate: "none" | "tanh" = "none"): Tensor { return E.unaryOp(approximate === "tanh" ? "geluTanh" : "gelu", this); }
  lt(o: Operand): Tensor { return E.compare("lt", this, o); }
  le(o: Operand): Tensor { return E.compare("le", this, o); }
  gt(o: Operand): Tensor { return E.compare("gt", this, o); }
  ge(o: Operand): Tensor { return E.compare("ge", this, o); }
  eq(o: Operand): Tensor { return E.compare("eq", this, o); }
  ne(o: Operand): Tensor { return E.compare("ne", this, o); }
  clamp(min?: number, max?: number): Tensor { return E.clamp(this, min, max); }
  // PyTorch's x.where(cond, other): cond ? x : other
  where(cond: Tensor, other: Operand): Tensor { return E.where(cond, this, other); }
  maskedFill(mask: Tensor, value: number): Tensor { return E.maskedFill(this, mask, value); }
  float(): Tensor { return E.cast(this, "float32"); }
  int(): Tensor { return E.cast(this, "int32"); }
  to(dtype: DType): Tensor { return E.cast(this, dtype); }
  onesLike(): Tensor { return E.fullLike(this, 1); }
  zerosLike(): Tensor { return E.fullLike(this, 0); }

  // ---- reductions ----
  sum(dim?: number | number[], keepdim = false): Tensor { return R.sum(this, dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return R.mean(this, dim, keepdim); }
  max(dim?: number | number[], keepdim = false): Tensor { return R.max(this, dim, keepdim); }
  min(dim?: number | number[], keepdim = false): Tensor { return R.min(this, dim, keepdim); }
  argmax(dim?: number, keepdim = false): Tensor { return R.argmax(this, dim, keepdim); }
  argmin(dim?: number, keepdim = false): Tensor { return R.argmin(this, dim, keepdim); }
  logsumexp(dim: number | number[], keepdim = false): Tensor { return R.logsumexp(this, dim, keepdim); }
  var(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor { return R.variance(this, dim, opts); }

  // ---- linear algebra ----
  matmul(o: Tensor, opts?: L.MatmulOptions): Tensor { return L.matmul(this, o, opts); }
  get mT(): Tensor { return S.transpose(this, -2, -1); }

  // ---- shape ----
  reshape(...shape: (number | number[])[]): Tensor { return S.reshape(this, S.flatArgs(shape)); }
  view(...shape: (number | number[])[]): Tensor { return S.reshape(this, S.flatArgs(shape)); }
  flatten(startDim = 0, endDim = -1): Tensor { return S.flatten(this, startDim, endDim); }
  unsqueeze(dim: number): Tensor { return S.unsqueeze(this, dim); }
  squeeze(dim?: number): Tensor { return S.squeeze(this, dim); }
  expand(...shape: (number | number[])[]): Tensor { return S.expand(this, S.flatArgs(shape)); }
  permute(...perm: (number | number[])[]): Tensor { return S.permute(this, S.flatArgs(perm)); }
  transpose(d0: number, d1: number): Tensor { return S.transpose(this, d0, d1); }
  narrow(dim: number, start: number, length: number): Tensor { return S.narrow(this, dim, start, length); }
  slice(dim: number, start: number, end?: number): Tensor { return S.sliceDim(this, dim, start, end); }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] { return S.split(this, sizeOrSizes, dim); }
  chunk(chunks: number, dim = 0): Tensor[] { return S.chunk(this, chunks, dim); }
  pad(pads: number[], value = 0): Tensor { return S.pad(this, pads, value); }
  tril(k = 0): Tensor { return S.tri(this, k, false); }
  triu(k = 0): Tensor { return S.tri(this, k, true); }
  contiguous(): Tensor { return S.alias(this); }

  // ---- indexing ----
  gather(dim: number, index: Tensor): Tensor { return I.gather(this, dim, index); }
  indexSelect(dim: number, index: Tensor): Tensor { return I.indexSelect(this, dim, index); }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return I.scatterAdd(this, dim, index, src); }

  // ---- nn ----
  softmax(dim: number): Tensor { return N.softmax(this, dim); }
  logSoftmax(dim: number): Tensor { return N.logSoftmax(this, dim); }
}
