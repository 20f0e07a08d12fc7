// A test that cannot run here (no data set, no GPU adapter, no PyTorch) is a counted skip with its
// reason, never a silent pass: uvu counts it as skipped, and spec/run.ts prints every reason just
// above the final "N passed, N failed, N skipped" line.
import { suite, type Test } from "uvu";

const g = globalThis as { __hastenSkipReasons?: string[] };
export const skipReasons: string[] = (g.__hastenSkipReasons ??= []);

// Registers `name` as skipped on `t` (or on a suite of its own, run at once) with `reason`.
export function skipTest(t: Test | undefined, name: string, reason: string): void {
  skipReasons.push(`${name}: ${reason}`);
  console.log(`  SKIPPED ${name}: ${reason}`);
  const s = t ?? suite(name);
  s.skip(`${name} (skipped: ${reason})`, () => {});
  if (!t) s.run();
}
