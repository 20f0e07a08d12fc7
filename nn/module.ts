// Module: a tree of parameters and submodules with dotted names, train/eval mode, and
// state dicts that round-trip through safetensors.
//
// Registration is explicit: a layer says `this.weight = this.registerParameter("weight", w)` and
// `this.q = this.registerModule("q", new Linear(...))`. The registry (not field reflection) is
// what parameters() and stateDict() walk, so names are stable, private helpers are never picked up
// by accident, and one tensor reachable from two fields (tied embeddings) is registered once.
import { fmt, keep, loadSafetensors, noGrad, type SaveOptions, saveSafetensors, type Tensor } from "../core/index.ts";

export type StateDict = Record<string, Tensor>;

export interface LoadResult {
  missingKeys: string[];
  unexpectedKeys: string[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$|^[0-9]+$/;

export class Module {
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _modules = new Map<string, Module>();

  // A trainable float32 leaf. The tensor is kept out of any tidy() scope: parameters live until
  // the module is disposed.
  protected registerParameter(name: string, t: Tensor): Tensor {
    this.checkName(name);
    if (t.dtype !== "float32") throw new Error(`registerParameter: "${name}" must be float32, got ${t.dtype}`);
    if (!t.requiresGrad) t.requiresGrad_(true);
    this._params.set(name, keep(t));
    return t;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name);
    if (!(m instanceof Module)) throw new Error(`registerModule: "${name}" is not a Module`);
    this._modules.set(name, m);
    return m;
  }

  private checkName(name: string): void {
    if (!NAME.test(name)) throw new Error(`Module: invalid name "${name}": expected an identifier or an index, without dots`);
    if (this._params.has(name) || this._modules.has(name)) throw new Error(`Module: "${name}" is already registered in ${this.constructor.name}`);
  }

  *namedModules(prefix = ""): IterableIterator<[string, Module]> {
    yield [prefix, this];
    for (const [n, m] of this._modules) yield* m.namedModules(prefix ? `${prefix}.${n}` : n);
  }

  children(): Module[] {
    return [...this._modules.values()];
  }

  // Dotted names in registration order; a tensor registered twice appears once (first name).
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [n, p] of m._params) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${n}` : n, p]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((s, p) => s + p.size, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.zeroGrad();
  }

  // The parameter tensors themselves (not copies), by dotted name.
  stateDict(): StateDict {
    const out: StateDict = {};
    for (const [n, p] of this.namedParameters()) out[n] = p;
    return out;
  }

  // Copies values into the existing parameter tensors (objects held elsewhere, e.g. by an
  // optimizer, stay valid). Everything is validated before anything is written, so a failed
  // load leaves the module as it was. Shapes must match even when strict is false.
  loadStateDict(dict: StateDict, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const own = new Map(this.namedParameters());
    const missingKeys = [...own.keys()].filter((k) => !(k in dict));
    const unexpectedKeys = Object.keys(dict).filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [k, p] of own) {
      const t = dict[k];
      if (!t) continue;
      if (t.shape.join() !== p.shape.join() || t.dtype !== p.dtype) {
        mismatched.push(`${k}: expected ${p.dtype}${fmt(p.shape)}, got ${t.dtype}${fmt(t.shape)}`);
      }
    }
    const problems: string[] = [];
    if (mismatched.length) problems.push(`shape/dtype mismatch for ${mismatched.join("; ")}`);
    if (strict && missingKeys.length) problems.push(`missing keys: ${missingKeys.join(", ")}`);
    if (strict && unexpectedKeys.length) problems.push(`unexpected keys: ${unexpectedKeys.join(", ")}`);
    if (problems.length) throw new Error(`loadStateDict (${this.constructor.name}): ${problems.join(". ")}`);
    noGrad(() => {
      for (const [k, p] of own) {
        const t = dict[k];
        if (t && t !== p) p.assign_(t.clone());
      }
    });
    return { missingKeys, unexpectedKeys };
  }

  // Saves every parameter as float32 (or F16/BF16 via opts) in one safetensors file, atomically.
  async save(path: string, opts: SaveOptions = {}): Promise<void> {
    await saveSafetensors(path, this.stateDict(), opts);
  }

  load(path: string, opts: { strict?: boolean } = {}): LoadResult {
    const first = this.parameters()[0];
    const dict = loadSafetensors(path, first?.backend);
    try {
      return this.loadStateDict(dict, opts);
    } catch (e) {
      throw new Error(`${path}: ${(e as Error).message}`);
    } finally {
      for (const t of Object.values(dict)) t.dispose();
    }
  }

  // Frees every parameter buffer; the module must not be used afterwards.
  dispose(): void {
    for (const p of this.parameters()) {
      p.zeroGrad();
      p.dispose();
    }
    for (const [, m] of this.namedModules()) m.disposeExtra();
  }

  // Subclasses holding non-parameter tensors (position tables, caches) free them here.
  protected disposeExtra(): void {}
}

// An indexed list of submodules, named "0", "1", … in dotted paths.
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  append(m: M): this {
    this.items.push(this.registerModule(String(this.items.length), m));
    return this;
  }

  get length(): number {
    return this.items.length;
  }

  get(i: number): M {
    const m = this.items[i];
    if (!m) throw new Error(`ModuleList: index ${i} out of range for length ${this.items.length}`);
    return m;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
