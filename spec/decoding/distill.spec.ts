// Distillation writes the teacher's translations line-aligned, resumes after a kill from the
// complete lines on disk (a torn last line is dropped), starts over when the source or settings
// change, and the output appears whole or not at all — checked with kill -9 at random moments.
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { distillLines, translateLines } from "../../decoding/index.ts";
import { saveModelDir } from "../../nn/index.ts";
import { distillCommand } from "../../scripts/commands/distill.ts";
import { rejectsWith } from "../helpers/rejects.ts";
import { tinyModelDir } from "./tiny.ts";

const projectRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const root = mkdtempSync(join(tmpdir(), "hasten-distill-"));
test.after(() => rmSync(root, { recursive: true, force: true }));
const tiny = tinyModelDir(31);
const modelDir = join(root, "model");
await saveModelDir(modelDir, tiny);
const WORDS = ["Ein", "Mann", "Hund", "spielt", "im", "Schnee", "Zwei", "Kinder", "lesen", "Buch"];
const SOURCES = Array.from({ length: 40 }, (_, i) => Array.from({ length: 2 + (i % 5) }, (_, k) => WORDS[(i * 3 + k * 7) % WORDS.length]).join(" ") + ".");
const OPTS = { beam: 2, maxLenA: 1, maxLenB: 3, lengthPenalty: 1 };
const expected = (await translateLines(tiny, SOURCES, OPTS)).translations.map((t) => t + "\n").join("");

test("distillLines writes every translation, line-aligned, and removes its partial files", async () => {
  const out = join(root, "a.en");
  const r = await distillLines(tiny, SOURCES, out, { ...OPTS, chunk: 7 });
  assert.equal([r.lines, r.resumedFrom], [40, 0]);
  assert.is(readFileSync(out, "utf8"), expected);
  assert.not.ok(existsSync(`${out}.partial`) || existsSync(`${out}.partial.json`));
});

test("resume: complete lines are kept, a torn last line dropped; other settings start over", async () => {
  const out = join(root, "b.en");
  // A first run killed after 12 lines, in the middle of writing the 13th.
  await distillLines(tiny, SOURCES.slice(0, 12), join(root, "b12.en"), { ...OPTS, chunk: 4 });
  const state = { format: "hasten-distill", sources: 40, sourceSha256: "", settings: { beam: 2, lengthPenalty: 1, maxLenA: 1, maxLenB: 3 } };
  const { createHash } = await import("node:crypto");
  state.sourceSha256 = createHash("sha256").update(SOURCES.join("\n")).digest("hex");
  writeFileSync(`${out}.partial.json`, JSON.stringify(state) + "\n");
  writeFileSync(`${out}.partial`, readFileSync(join(root, "b12.en"), "utf8") + "A torn li");
  const r = await distillLines(tiny, SOURCES, out, { ...OPTS, chunk: 5 });
  assert.is(r.resumedFrom, 12);
  assert.is(readFileSync(out, "utf8"), expected);
  // Same partial, another beam: its lines are not reused.
  writeFileSync(`${out}.partial.json`, JSON.stringify(state) + "\n");
  writeFileSync(`${out}.partial`, "wrong\n".repeat(12));
  const other = await distillLines(tiny, SOURCES, join(root, "c.en"), { ...OPTS, beam: 1 });
  assert.is(other.resumedFrom, 0);
});

test("kill -9 at random moments, then run again: the output equals an uninterrupted run", async () => {
  const data = join(root, "data");
  mkdirSync(data);
  writeFileSync(join(data, "train.de"), SOURCES.join("\n") + "\n");
  writeFileSync(join(data, "valid.de"), "Ein Hund.\n");
  writeFileSync(join(data, "valid.en"), "A dog.\n");
  const cmd = (out: string) => [
    "--import", "tsx", join(projectRoot, "scripts", "hasten.ts"), "distill", "--model", modelDir, "--data", data, "--out", out,
    "--beam", "2", "--max-len-a", "1", "--max-len-b", "3", "--chunk", "2", "--backend", "cpu",
  ];
  const runTo = (args: string[], killAfterMs?: number) => new Promise<number | null>((res) => {
    const child = spawn(process.execPath, args, { cwd: projectRoot, stdio: "ignore" });
    if (killAfterMs !== undefined) setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.on("exit", (code) => res(code));
  });
  let run = 0;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 600, max: 2500 }), async (ms) => {
    const out = join(root, `kill-${run++}`);
    await runTo(cmd(out), ms);
    assert.not.ok(existsSync(join(out, "train.en")) && readFileSync(join(out, "train.en"), "utf8") !== expected, "a visible train.en is always whole");
    assert.is(await runTo(cmd(out)), 0);
    assert.is(readFileSync(join(out, "train.en"), "utf8"), expected, `killed after ${ms} ms`);
    assert.is(readFileSync(join(out, "train.de"), "utf8"), SOURCES.join("\n") + "\n");
  }), { seed: 9, numRuns: 3 });
});

test("run again on a finished corpus: nothing is distilled, the files stay; other line counts are refused; --force redoes it", async () => {
  const data = join(root, "data2");
  mkdirSync(data);
  writeFileSync(join(data, "train.de"), SOURCES.slice(0, 6).join("\n") + "\n");
  writeFileSync(join(data, "valid.de"), "Ein Hund.\n");
  writeFileSync(join(data, "valid.en"), "A dog.\n");
  const out = join(root, "again");
  const run = async (...extra: string[]) => {
    let stderr = "";
    const r = await distillCommand(["--model", modelDir, "--data", data, "--out", out, "--beam", "2", "--max-len-a", "1", "--max-len-b", "3", "--backend", "cpu", ...extra],
      { stderr: (s) => (stderr += s), stdout: () => {}, stderrIsTTY: false });
    return { r, stderr };
  };
  const first = await run();
  assert.equal(first.r, { lines: 6, resumedFrom: 0 });
  chmodSync(join(out, "train.de"), 0o444); // copies of read-only corpus files stay read-only
  const text = readFileSync(join(out, "train.en"), "utf8");
  const again = await run();
  assert.equal(again.r, { lines: 6, resumedFrom: 6 });
  assert.match(again.stderr, /already holds 6 distilled lines; nothing to do \(--force distils again\)/);
  assert.is(readFileSync(join(out, "train.en"), "utf8"), text);
  const forced = await run("--force");
  assert.equal(forced.r, { lines: 6, resumedFrom: 0 });
  writeFileSync(join(out, "train.en"), "only one line\n");
  await rejectsWith(run(), /already exists with 1 lines, not the 6 of .*train\.de; pass --force/);
});

test.after(() => tiny.model.dispose());
test.run();
