// A run folder is owned by one process at a time, a crash leaves nothing behind that a resume
// does not clean, damaged checkpoint headers are refused by name, a bad --out is refused before
// any data is read, and a resume after the final validation does not validate (and log) twice.
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { encodeSafetensors } from "../../core/safetensors.ts";
import { readLog, train } from "../../nn/index.ts";
import { trainCommand } from "../../scripts/commands/train.ts";
import { TINY, TempCorpora, tinyFlags } from "./train-fixture.ts";
import { rejectsWith } from "../helpers/rejects.ts";

const temp = new TempCorpora();
const data = temp.make();
test.after(() => temp.remove());

test("a second run in a folder held by a live process is refused; a stale lock is taken over", async () => {
  const out = join(data, "locked");
  mkdirSync(out);
  const sleeper = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { stdio: "ignore" });
  try {
    writeFileSync(join(out, ".lock"), JSON.stringify({ pid: sleeper.pid, host: hostname(), started: "2026-01-01T00:00:00Z" }));
    await rejectsWith(train({ ...TINY, data, out, maxSteps: 2 }), "is in use by another training process", `pid ${sleeper.pid}`);
    assert.not.ok(existsSync(join(out, "log.jsonl")), "the refused run wrote nothing");
  } finally {
    sleeper.kill("SIGKILL");
  }
  await new Promise((r) => sleeper.on("exit", r));
  const r = await train({ ...TINY, data, out, maxSteps: 2 }); // the holder is gone: stale
  assert.is(r.step, 2);
  assert.not.ok(existsSync(join(out, ".lock")), "released at the end");
});

test("two train processes started together: exactly one trains, the other is refused (exit 2)", () => {
  const out = join(data, "race");
  const script = "const { trainCommand } = await import('./scripts/commands/train.ts'); await trainCommand(process.argv.slice(1)).catch((e) => { console.error(e.message); process.exitCode ||= e.exitCode || 1; });";
  const args = [...tinyFlags({ maxSteps: 40 }), `--data=${data}`, `--out=${out}`];
  const sh = `node --import tsx --input-type=module -e "${script}" -- ${args.join(" ")} & sleep 0.3; node --import tsx --input-type=module -e "${script}" -- ${args.join(" ")}; echo "second=$?"; wait $!; echo "first=$?"`;
  const r = spawnSync("bash", ["-c", sh], { encoding: "utf8", cwd: process.cwd() });
  // Whichever process reaches the lock first trains; which one that is depends on start-up time.
  const codes = [/first=(\d+)/.exec(r.stdout)?.[1], /second=(\d+)/.exec(r.stdout)?.[1]].sort();
  assert.equal(codes, ["0", "2"], r.stdout + r.stderr);
  assert.match(r.stderr, /is in use by another training process/);
});

test("temporary files of a crashed run are removed by resume and by a finished run, and reported", async () => {
  const out = join(data, "orphans");
  await train({ ...TINY, data, out, maxSteps: 2 });
  const litter = [".checkpoint.safetensors.4242.a1b2c3d4e5f6.tmp", ".best.safetensors.4242.0123456789ab.tmp"];
  for (const f of litter) writeFileSync(join(out, f), "x".repeat(1000));
  mkdirSync(join(out, ".model.tmp-4242-abcdef"));
  const r = await train({ out, maxSteps: 3 }, { resume: true });
  assert.equal(r.removedOrphans.sort(), [...litter, ".model.tmp-4242-abcdef"].sort());
  assert.equal(readdirSync(out).filter((n) => n.startsWith(".")), []);
});

test("a model replacement cut between its two renames: the old model is put back", async () => {
  const out = join(data, "half-replaced");
  await train({ ...TINY, data, out, maxSteps: 2 });
  const { renameSync } = await import("node:fs");
  renameSync(join(out, "model"), join(out, ".model.old-4242-abcdef")); // the crash: old aside, new not in place
  const r = await train({ out, maxSteps: 2 }, { resume: true });
  assert.ok(existsSync(join(out, "model", "config.json")));
  assert.equal(r.removedOrphans, []);
});

test("a resume after the final validation (killed during export) does not validate the same step twice", async () => {
  const out = join(data, "export-kill");
  await train({ ...TINY, data, out, maxSteps: 3 });
  const validSteps = () => readLog(join(out, "log.jsonl")).filter((e) => e.kind === "valid").map((e) => e.step);
  assert.equal(validSteps(), [3]);
  await train({ out, maxSteps: 3 }, { resume: true }); // as if the export had been killed
  assert.equal(validSteps(), [3]);
});

test("damaged checkpoint headers are refused naming what is wrong, not with a TypeError", async () => {
  const out = join(data, "bad-header");
  mkdirSync(out);
  const ck = join(out, "checkpoint.safetensors");
  const write = (meta: Record<string, string> | null) => writeFileSync(ck, encodeSafetensors({}, meta ?? undefined));
  write({ "hasten.train": "null", "hasten.tokenizer": "{}" });
  await rejectsWith(train({ out }, { resume: true }), /expected format hasten-train-checkpoint version 1, got undefined/);
  const state = { format: "hasten-train-checkpoint", version: 1, step: 3, config: { task: "translation" }, optimizer: { step: 3, lr: 1, hyper: {} }, dropoutRng: {}, best: null, tokens: 1, seconds: 1, tokenizerSha256: "a", trainDataSha256: "b" };
  write({ "hasten.train": JSON.stringify(state), "hasten.tokenizer": "{}" });
  await rejectsWith(train({ out }, { resume: true }), /has batcher = undefined, expected the data-order state \{seed, epoch, position\}/);
  writeFileSync(ck, Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("null")]));
  await rejectsWith(train({ out }, { resume: true }), /the header is null, expected a JSON object/);
});

test("a bad --out is refused before the corpus is read or a vocabulary learned (exit 2)", async () => {
  const file = join(data, "a-file");
  writeFileSync(file, "x");
  const quiet = { handleSignals: false, stderr: () => {}, setExitCode: () => {} };
  await rejectsWith(trainCommand([...tinyFlags(), `--data=${join(data, "nowhere")}`, `--out=${file}`], quiet), "--out", "exists and is not a folder");
  await rejectsWith(trainCommand([...tinyFlags(), `--data=${join(data, "nowhere")}`, `--out=${join(file, "sub")}`], quiet), "--out", "is not a folder");
  if (process.getuid?.() !== 0) {
    const ro = join(data, "read-only");
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    await rejectsWith(trainCommand([...tinyFlags(), `--data=${data}`, `--out=${join(ro, "run")}`], quiet), "not writable");
  }
  let code = 0;
  await trainCommand([...tinyFlags(), `--data=${join(data, "nowhere")}`, `--out=${join(data, "fine")}`], { ...quiet, setExitCode: (c) => (code = c) }).catch(() => {});
  assert.is(code, 2, "a missing corpus is a usage error");
  assert.not.ok(existsSync(join(data, "fine")));
  void readFileSync;
});

test("kill -9 at random moments of a run, then resume: the result equals an uninterrupted run, and nothing is left behind", async () => {
  const { default: fc } = await import("fast-check");
  const { spawn } = await import("node:child_process");
  const projectRoot = join(import.meta.dirname, "..", "..");
  const args = (out: string, resume: boolean) => ["--import", "tsx", join(projectRoot, "scripts", "hasten.ts"), "train",
    ...tinyFlags({ maxSteps: 12, checkpointEvery: 1, evalEvery: 6 }), `--data=${data}`, `--out=${out}`, ...(resume ? ["--resume"] : [])];
  const run = (a: string[], killAfterMs?: number) => new Promise<number | null>((res) => {
    const child = spawn(process.execPath, a, { cwd: projectRoot, stdio: "ignore" });
    if (killAfterMs !== undefined) setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.on("exit", (code) => res(code));
  });
  const reference = join(data, "kill-reference");
  assert.is(await run(args(reference, false)), 0);
  const losses = (dir: string) => readLog(join(dir, "log.jsonl")).filter((e) => e.kind === "train").map((e) => (e.kind === "train" ? e.loss : 0));
  let i = 0;
  await fc.assert(fc.asyncProperty(fc.integer({ min: 800, max: 4000 }), async (ms) => {
    const out = join(data, `kill-${i++}`);
    await run(args(out, false), ms);
    // Resume (or, when the kill came before the first checkpoint, start again) until it finishes.
    const resumable = existsSync(join(out, "checkpoint.safetensors"));
    assert.is(await run(args(out, resumable)), 0, `killed after ${ms} ms`);
    assert.equal(losses(out), losses(reference), `killed after ${ms} ms: the log reads like the uninterrupted run`);
    assert.equal(readFileSync(join(out, "model", "model.safetensors")), readFileSync(join(reference, "model", "model.safetensors")));
    assert.equal(readdirSync(out).filter((n) => n.startsWith(".")), [], "no lock, no temporary files");
  }), { seed: 21, numRuns: 3 });
});

test.run();
