// Test entry point: `npm test` runs every spec/**/*.spec.ts in one process with uvu.
// `npm test -- core/ops` runs only the files whose path contains that text.
// Each spec file is also runnable alone: `npx tsx spec/core/ops.spec.ts`.
import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "uvu/run";

const root = resolve(fileURLToPath(new URL(".", import.meta.url)));

// The specs count live buffers to catch leaks. The garbage-collector leak backstop would free
// dropped buffers at unpredictable points (hiding leaks, and changing counts in the middle of an
// async test), so it is off for the suite unless set explicitly; spec/core/leak-backstop.spec.ts
// tests it in child processes of its own. Set before any spec imports core, which reads it.
process.env.HASTEN_LEAK_BACKSTOP ??= "0";

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith(".spec.ts")) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk(root).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`spec/run: no spec files match ${JSON.stringify(filters)}`);
  process.exit(1);
}
// uvu prints "Total: N" and "Passed: N"; echo them as one plain "N passed, N failed" line,
// the closing line CI tools read.
let out = "";
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  out += typeof chunk === "string" ? chunk : Buffer.from(chunk).toString();
  if (out.length > 4096) out = out.slice(-4096);
  return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;
await run(files.map((file) => ({ name: relative(root, file), file })), { bail: false });
process.stdout.write = write;
const plain = out.replace(/\x1b\[[0-9;]*m/g, "");
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? NaN), passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? NaN);
const skippedN = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
// The reasons of the counted skips (spec/helpers/skip.ts), just above the closing line.
const reasons = (globalThis as { __hastenSkipReasons?: string[] }).__hastenSkipReasons ?? [];
for (const r of [...new Set(reasons)]) console.log(`skipped: ${r}`);
if (Number.isFinite(total) && Number.isFinite(passed)) console.log(`${passed} passed, ${total - passed} failed, ${skippedN} skipped`);
