// One memory rule for every backend: a tensor owns its buffer; `dispose()` frees it, and
// `tidy(fn)` frees every tensor created inside fn except what fn returns, what was `keep()`-ed,
// and gradients stored on leaves. GPU buffers and the wasm heap are not garbage-collected, so
// this is what keeps those backends leak-free; on the cpu backend it costs a Set insertion per
// tensor. (The leak backstop in backstop.ts only catches, late and with a warning, what this
// rule missed.)
export interface Disposable {
  dispose(): void;
  readonly isDisposed: boolean;
  // Called when t leaves the last scope alive (returned by the outermost tidy, or kept): from
  // then on nothing frees it but its owner. Tensors start the leak backstop's watch here (a
  // tensor that a tidy() frees never needs it, and watching costs about a microsecond).
  untracked?(): void;
}

const scopes: Set<Disposable>[] = [];

export function track(t: Disposable): void {
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

// Whether a tidy() is running: what is made now is freed at its end unless returned or kept.
export function inTidy(): boolean {
  return scopes.length > 0;
}

// Remove t from every open scope so that no tidy() frees it.
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  if (!t.isDisposed) t.untracked?.();
  return t;
}

function collect(x: unknown, out: Set<Disposable>, seen: Set<unknown>): void {
  if (x === null || typeof x !== "object" || seen.has(x)) return;
  seen.add(x);
  if ("dispose" in x && "isDisposed" in x) {
    out.add(x as Disposable);
    return;
  }
  if (Array.isArray(x)) for (const v of x) collect(v, out, seen);
  else if (x instanceof Map) for (const v of x.values()) collect(v, out, seen);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) collect(v, out, seen);
}

export function tidy<T>(fn: () => T): T {
  if (typeof fn !== "function") throw new Error(`tidy: expected a function, got ${typeof fn}`);
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) if (!t.isDisposed) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error("tidy: fn returned a Promise; tidy scopes must be synchronous (await outside, or dispose by hand)");
  const survivors = new Set<Disposable>();
  collect(result, survivors, new Set());
  const outer = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) {
      if (outer) outer.add(t);
      else if (!t.isDisposed) t.untracked?.();
    } else if (!t.isDisposed) t.dispose();
  }
  return result;
}
