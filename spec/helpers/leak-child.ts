// Run by spec/core/leak-backstop.spec.ts in a child process: drops many tensors without tidy()
// and prints, as one JSON line, what each backend still holds once the collector has run.
//   node --expose-gc --import tsx spec/helpers/leak-child.ts drop cpu wasm gpujs:webasm
//   node --import tsx spec/helpers/leak-child.ts pressure        (no --expose-gc: the backstop finds gc itself)
// With HASTEN_LEAK_BACKSTOP=0 in the environment the same runs show what happens without it.
import { getBackend, leakBackstop, setBackend, tensor, tidy, type Backend, type Tensor } from "../../core/index.ts";

const warnings: string[] = [];
process.on("warning", (w) => {
  if ((w as Error & { code?: string }).code === "HASTEN_TENSOR_LEAK") warnings.push(w.message);
});
const tick = () => new Promise((r) => setTimeout(r, 5));

// Collect until the count stops changing: cleanup callbacks run as tasks after a collection.
async function collect(b: Backend): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("leak-child: the drop test needs node --expose-gc");
  let last = -1;
  for (let round = 0; round < 50 && b.liveBuffers() !== last; round++) {
    last = b.liveBuffers();
    gc();
    await tick();
    await b.flush?.();
  }
}

// In a function of its own: a suspended async frame (like this module's top level) keeps the
// last values of a loop alive in its registers.
function leakMany(b: Backend): { kept: Tensor; want: number[]; peak: number } {
  let kept: Tensor | undefined;
  let peak = 0;
  for (let i = 0; i < 3000; i++) {
    const x = tensor(new Float32Array(256).fill(i));
    const y = x.mul(2).add(1); // x, the product and y are dropped without dispose()
    tidy(() => x.mul(3)); // returned by a tidy and dropped: watched once it left the tidy
    if (i === 7) kept = y.reshape([16, 16]); // shares y's buffer; y itself becomes unreachable
    if (i % 100 === 0) peak = Math.max(peak, b.liveBuffers());
  }
  const disposed = tensor([1, 2, 3]);
  disposed.dispose(); // explicit dispose unregisters: the collector must not free it again
  return { kept: kept!, want: Array.from({ length: 256 }, () => 2 * 7 + 1), peak };
}

async function drop(spec: string): Promise<Record<string, unknown>> {
  const [name, mode] = spec.split(":");
  try {
    await setBackend(name, mode ? { mode } : undefined);
  } catch (e) {
    return { backend: spec, skipped: (e as Error).message.split("\n")[0] };
  }
  const b = getBackend();
  await collect(b);
  const base = b.liveBuffers();
  const leaked = leakMany(b) as { kept: Tensor | undefined; want: number[]; peak: number };
  await collect(b);
  const afterLoop = b.liveBuffers();
  const keptOk = JSON.stringify(Array.from(await leaked.kept!.data())) === JSON.stringify(leaked.want);
  leaked.kept = undefined; // now the last view of that buffer goes too
  await collect(b);
  return { backend: spec, base, peak: leaked.peak, afterLoop, keptOk, final: b.liveBuffers() };
}

// A loop that yields between steps and leaks 2 MiB a step: bounded only if the backstop asks
// for collections itself (nothing here calls gc).
async function pressure(): Promise<Record<string, unknown>> {
  await setBackend("wasm");
  const b = getBackend();
  const x = tensor(new Float32Array(1 << 18).fill(1));
  let peakBytes = 0;
  for (let i = 0; i < 300; i++) {
    x.mul(2).add(1);
    await new Promise((r) => setImmediate(r));
    peakBytes = Math.max(peakBytes, leakBackstop().watchedBytes);
  }
  return { backend: "wasm", peakMiB: Math.round(peakBytes / 2 ** 20), liveAtEnd: b.liveBuffers(), leakedMiB: 300 * 2 };
}

const [what, ...backends] = process.argv.slice(2);
const results = what === "pressure" ? [await pressure()] : [];
if (what === "drop") for (const s of backends) results.push(await drop(s));
const { freed, collections, enabled } = leakBackstop();
console.log(JSON.stringify({ results, warnings: warnings.length, firstWarning: warnings[0] ?? "", freed, collections, enabled }));
