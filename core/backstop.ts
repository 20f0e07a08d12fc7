// The leak backstop. The rule stays tidy()/dispose() (see scope.ts): buffers on the wasm heap
// and on a GPU are not garbage-collected, so a forgotten tidy() used to grow them silently until
// "out of memory". As a backstop, every tensor buffer is registered with a FinalizationRegistry
// under the Storage that owns it: when no tensor can reach that Storage any more, the collector
// eventually calls back and the buffer is freed, with a one-time warning that names tidy().
//
// Why the Storage and not the Tensor: views (reshape, detach, assign_) share one Storage, and a
// buffer may only go when the last tensor using it is gone; the Storage is reachable exactly as
// long as one of them is. Disposing explicitly unregisters, so nothing is freed twice.
//
// The collector runs when the JavaScript heap wants it, and a tensor's wrapper objects are a few
// hundred bytes however large its buffer: left alone, it would not run before gigabytes of
// leaked buffers piled up. So the backstop counts the bytes of the buffers it watches, and when
// they double from their lowest level since the last request (and pass 64 MiB) it asks for a
// collection (in Node, through V8's gc, obtained once; elsewhere nothing is asked). The buffers
// of unreachable tensors are then freed at the next turn of the event loop. Hence what it can and
// cannot do: a loop that yields between steps (Hasten's training loop awaits each step) stays
// bounded; a single synchronous loop that leaks cannot be helped, since finalizers only run
// between tasks. tidy()/dispose() remain the rule.
//
// It makes live-buffer counts depend on the collector, so tests that count buffers switch it
// off: setLeakBackstop(false), or HASTEN_LEAK_BACKSTOP=0 in the environment (the test runner does).
//
// To find a leak: HASTEN_LEAK_TRACE=1 records where each watched buffer was created (a stack
// trace per tensor: slow, for debugging only) and the warning then names the first leaked one.
import type { Backend, BackendBuffer } from "./backend.ts";

interface Held {
  backend: Backend;
  buf: BackendBuffer;
  bytes: number;
  stack?: string; // where the tensor was created, under HASTEN_LEAK_TRACE
}

const env = typeof process !== "undefined" ? process.env?.HASTEN_LEAK_BACKSTOP : undefined;
let enabled = !/^(0|off|false|no)$/i.test(env ?? "");
const trace = typeof process !== "undefined" && /^(1|on|true|yes)$/i.test(process.env?.HASTEN_LEAK_TRACE ?? "");
let warned = false;
let freedByCollector = 0;

// Bytes of watched buffers not yet freed, and the pressure rule above.
const FLOOR = 64 * 2 ** 20;
let watchedBytes = 0;
let lowWater = 0;
let requests = 0;
let gcFn: (() => void) | null | undefined; // undefined: not looked up yet; null: unavailable

function forget(bytes: number): void {
  watchedBytes -= bytes;
  if (watchedBytes < lowWater) lowWater = watchedBytes;
}

function requestCollection(): void {
  lowWater = watchedBytes; // next request only after a further doubling
  if (gcFn === undefined) gcFn = lookUpGc();
  if (!gcFn) return;
  requests++;
  gcFn();
}

// Node: V8's gc function, from a context created while --expose-gc is set (the flag is cleared
// again at once). Anywhere else, or if that fails, there is none.
function lookUpGc(): (() => void) | null {
  const own = (globalThis as { gc?: () => void }).gc;
  if (typeof own === "function") return own;
  try {
    type Get = (id: string) => unknown;
    const get = (globalThis as { process?: { getBuiltinModule?: Get } }).process?.getBuiltinModule;
    if (!get) return null;
    const v8 = get("node:v8") as { setFlagsFromString(f: string): void };
    const vm = get("node:vm") as { runInNewContext(code: string): unknown };
    v8.setFlagsFromString("--expose-gc");
    try {
      const fn = vm.runInNewContext("gc");
      return typeof fn === "function" ? (fn as () => void) : null;
    } finally {
      v8.setFlagsFromString("--no-expose-gc");
    }
  } catch {
    return null;
  }
}

const registry = new FinalizationRegistry<Held>((held) => {
  if (!enabled) return; // switched off after registration: leave the buffer, as without a backstop
  forget(held.bytes);
  try {
    held.backend.free(held.buf);
  } catch {
    return; // the backend is gone (destroyed device, replaced runtime): nothing left to free
  }
  freedByCollector++;
  if (!warned) {
    warned = true;
    const msg =
      "Hasten: a tensor became unreachable without dispose(); its buffer was freed by the garbage collector. " +
      "Wrap each training step and inference call in tidy() (or dispose() tensors yourself): the collector " +
      "runs late, and wasm or GPU memory can run out first. This warning is shown once." +
      (held.stack ? `\nThe first such tensor was created ${held.stack.replace(/^Error\n/, "at:\n")}` : " Set HASTEN_LEAK_TRACE=1 to see where it was created.");
    if (typeof process !== "undefined" && typeof process.emitWarning === "function") {
      process.emitWarning(msg, { type: "HastenLeakWarning", code: "HASTEN_TENSOR_LEAK" });
    } else console.warn(msg);
  }
});

/**
 * Registers `owner`'s buffer; returns the bytes watched (0: not watched). The owner passes them
 * back to unwatch() when it frees the buffer itself.
 */
export function watch(owner: object, backend: Backend, buf: BackendBuffer): number {
  if (!enabled) return 0;
  const bytes = Math.max(1, buf.size * 4); // every dtype here is 4 bytes; ≥ 1 marks "watched"
  registry.register(owner, { backend, buf, bytes, stack: trace ? stackNow() : undefined }, owner);
  watchedBytes += bytes;
  if (watchedBytes > FLOOR && watchedBytes > 2 * lowWater) requestCollection();
  return bytes;
}

function stackNow(): string | undefined {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 40; // the default 10 frames end inside core, before the caller's code
  try {
    return new Error().stack;
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The buffer is being freed explicitly: the collector must not free it again. */
export function unwatch(owner: object, bytes: number): void {
  if (registry.unregister(owner)) forget(bytes);
}

/**
 * Turn the backstop on or off (default on, or off when HASTEN_LEAK_BACKSTOP=0). Off: buffers of
 * tensors created from now on are not registered, and collected ones are not freed, so
 * liveBuffers() changes only by dispose()/tidy(). Returns the previous setting.
 */
export function setLeakBackstop(on: boolean): boolean {
  if (typeof on !== "boolean") throw new Error(`setLeakBackstop: expected true or false, got ${String(on)}`);
  const prev = enabled;
  enabled = on;
  return prev;
}

/**
 * Whether the backstop is on, how many buffers it has freed so far in this process, the bytes it
 * watches now, and how many collections it has asked for.
 */
export function leakBackstop(): { enabled: boolean; freed: number; watchedBytes: number; collections: number } {
  return { enabled, freed: freedByCollector, watchedBytes, collections: requests };
}
