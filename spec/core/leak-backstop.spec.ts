// The leak backstop (core/backstop.ts): tensors dropped without tidy()/dispose() get their
// buffers freed once the collector finds them, with exactly one warning; views that share a
// buffer keep it; explicitly disposed buffers are not freed twice; a loop that yields between
// leaky steps stays bounded. Each case runs in a child process (spec/helpers/leak-child.ts) so
// that the collector and the one-time warning start fresh, and --expose-gc can be given.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { getBackend, keep, leakBackstop, setLeakBackstop, tensor, tidy, type Tensor } from "../../core/index.ts";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const BACKENDS = ["cpu", "wasm", "gpujs:webasm", "gpujs:webgpu"];

interface Drop { backend: string; skipped?: string; base: number; peak: number; afterLoop: number; keptOk: boolean; final: number }
interface Report { results: Drop[]; warnings: number; firstWarning: string; freed: number; collections: number; enabled: boolean }

async function child(nodeFlags: string[], args: string[], backstop: boolean, extraEnv: Record<string, string> = {}): Promise<Report> {
  const env = { ...process.env, ...extraEnv };
  delete env.HASTEN_LEAK_BACKSTOP; // the test runner switches it off for the other specs
  if (!backstop) env.HASTEN_LEAK_BACKSTOP = "0";
  if (!("HASTEN_LEAK_TRACE" in extraEnv)) delete env.HASTEN_LEAK_TRACE;
  const { stdout } = await run(process.execPath, [...nodeFlags, "--import", "tsx", "spec/helpers/leak-child.ts", ...args],
    { cwd: root, env, timeout: 120_000, maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split("\n").pop()!) as Report;
}

// Started together: the children are independent and the machine has more than one core.
const reports = Promise.all([
  child(["--expose-gc"], ["drop", ...BACKENDS], true),
  child(["--expose-gc"], ["drop", "cpu", "wasm"], false),
  child([], ["pressure"], true),
  child([], ["pressure"], false),
  child(["--expose-gc"], ["drop", "cpu"], true, { HASTEN_LEAK_TRACE: "1" }),
]);

test("dropped tensors are freed by the collector on every backend, with exactly one warning", async () => {
  const [on] = await reports;
  assert.is(on.enabled, true);
  assert.is(on.warnings, 1, "one warning for the whole process");
  let ran = 0;
  for (const r of on.results) {
    if (r.skipped) {
      console.log(`  SKIPPED backend ${r.backend}: ${r.skipped}`);
      continue;
    }
    ran++;
    assert.ok(r.peak > r.base + 1000, `${r.backend}: the loop leaked (peak ${r.peak})`);
    assert.ok(r.afterLoop - r.base <= 2, `${r.backend}: ${r.afterLoop - r.base} buffers left after collection, want 1 (the kept view)`);
    assert.ok(r.keptOk, `${r.backend}: a reshape of a dropped tensor lost its shared buffer`);
    assert.ok(r.final - r.base <= 1, `${r.backend}: ${r.final - r.base} buffers left once the view went too`);
  }
  assert.ok(ran >= 3, "cpu, wasm and gpujs/webasm always run");
  assert.match(on.firstWarning, /HASTEN_LEAK_TRACE=1/, "the warning says how to find the leak");
  assert.not.match(on.firstWarning, /created at/);
});

test("HASTEN_LEAK_TRACE=1: the warning names the code that created the first leaked tensor", async () => {
  const traced = (await reports)[4];
  assert.is(traced.warnings, 1);
  assert.match(traced.firstWarning, /The first such tensor was created at:/);
  assert.match(traced.firstWarning, /leakMany \(.*leak-child\.ts/, traced.firstWarning);
});

test("switched off (HASTEN_LEAK_BACKSTOP=0), nothing is freed and nothing is said", async () => {
  const [, off] = await reports;
  assert.is(off.enabled, false);
  assert.is(off.warnings, 0);
  assert.is(off.freed, 0);
  // 4 buffers a step (x, x·2, y, and x·3 from a tidy); the kept reshape shares y's, the disposed tensor is gone
  for (const r of off.results) assert.is(r.afterLoop - r.base, 12000, `${r.backend}: every dropped buffer stays`);
});

test("a loop that yields between steps and leaks 2 MiB a step stays bounded (the backstop asks for collections)", async () => {
  const [, , on, off] = await reports;
  const [r] = on.results as unknown as { peakMiB: number; liveAtEnd: number; leakedMiB: number }[];
  assert.ok(on.collections >= 1, "asked for at least one collection");
  assert.ok(r.peakMiB < 200, `peak ${r.peakMiB} MiB of ${r.leakedMiB} MiB leaked`);
  const [w] = off.results as unknown as { liveAtEnd: number }[];
  assert.ok(w.liveAtEnd > 600, `without the backstop every buffer stays (${w.liveAtEnd})`);
});

test("tidy: what it frees is never watched; what leaves it (returned, kept) is", () => {
  const was = setLeakBackstop(true);
  try {
    const before = leakBackstop().watchedBytes;
    let inside = -1, afterKeep = -1;
    let kept: Tensor | undefined;
    const out = tidy(() => {
      const a = tensor(new Float32Array(1000), { backend: getBackend() });
      const b = a.mul(2);
      inside = leakBackstop().watchedBytes - before;
      kept = keep(b.add(3));
      afterKeep = leakBackstop().watchedBytes - before;
      return b.add(1);
    });
    assert.is(inside, 0, "a and a·2 made inside the tidy are not watched");
    assert.is(afterKeep, 4000, "a kept tensor is watched at once");
    assert.is(leakBackstop().watchedBytes - before, 8000, "the returned tensor is watched once it leaves the tidy");
    out.dispose();
    kept!.dispose();
    assert.is(leakBackstop().watchedBytes - before, 0);
  } finally {
    setLeakBackstop(was);
  }
});

test("setLeakBackstop switches and reports; a non-boolean is refused", () => {
  const before = leakBackstop().enabled;
  assert.is(setLeakBackstop(!before), before);
  assert.is(leakBackstop().enabled, !before);
  setLeakBackstop(before);
  assert.throws(() => setLeakBackstop("no" as unknown as boolean), /setLeakBackstop: expected true or false, got no/);
});

test.run();
