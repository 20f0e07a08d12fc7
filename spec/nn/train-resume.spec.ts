// Exact resume: 12 updates in one go equal 6 + resume + 6, and an interruption (the AbortSignal
// that Ctrl-C raises) after 5 updates + resume to 12: the same losses bit for bit, the same final
// parameters and Adam moments byte for byte. The tiny run crosses an epoch boundary (7 batches
// per epoch) and uses dropout, so data order and dropout RNG state are both exercised.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { readSafetensors } from "../../core/safetensors.ts";
import { readCheckpointHeader } from "../../nn/train/checkpoint.ts";
import type { TrainConfig } from "../../nn/train/config.ts";
import { readLog, type TrainEntry } from "../../nn/train/log.ts";
import { train } from "../../nn/train/run.ts";
import type { TranslateFn } from "../../nn/tasks/index.ts";
import { TINY, TempCorpora } from "./train-fixture.ts";

const temp = new TempCorpora();
const data = temp.make();
test.after(() => temp.remove());
// A stand-in translator (BLEU is not what this file tests): copies the source.
const echo: TranslateFn = (_m, lines) => lines;

async function run(out: string, extra: Partial<TrainConfig>, o: { resume?: boolean; stopAfter?: number } = {}) {
  const losses: number[] = [];
  const ac = new AbortController();
  // A resumed run gets only --out and what the test changes: the rest comes from the checkpoint.
  const base = o.resume ? { out: join(data, out) } : { ...TINY, data, out: join(data, out), evalEvery: 4 };
  const r = await train({ ...base, ...extra }, {
    resume: o.resume, translate: echo, signal: ac.signal,
    onStep: (s) => {
      losses.push(s.loss);
      if (o.stopAfter !== undefined && s.step >= o.stopAfter) ac.abort();
    },
  });
  return { r, losses };
}

// Tensors of a checkpoint as name → bytes (hex of a hash would do; the files are small).
function tensorBytes(path: string): Map<string, string> {
  const { tensors } = readSafetensors(path);
  return new Map(Object.entries(tensors).map(([k, t]) => [k, Buffer.from(t.data).toString("base64")]));
}

const trainLosses = (dir: string) => readLog(join(data, dir, "log.jsonl")).filter((e): e is TrainEntry => e.kind === "train").map((e) => [e.step, e.loss]);

test("12 steps straight = 6 steps, then --resume to 12: bit-identical losses, parameters and moments", async () => {
  const a = await run("straight", { maxSteps: 12 });
  assert.is(a.r.step, 12);
  assert.is(a.losses.length, 12);

  const b1 = await run("split", { maxSteps: 6 });
  assert.is(b1.r.stoppedBy, "maxSteps");
  assert.is(readCheckpointHeader(join(data, "split", "checkpoint.safetensors")).state.step, 6);
  const b2 = await run("split", { maxSteps: 12 }, { resume: true }); // --max-steps may change on resume
  assert.is(b2.r.resumedFrom, 6);
  assert.is(b2.r.step, 12);

  const split = [...b1.losses, ...b2.losses];
  assert.equal(split, a.losses, "per-step losses");
  for (let i = 0; i < 12; i++) assert.ok(Object.is(split[i], a.losses[i]), `step ${i + 1}: ${split[i]} vs ${a.losses[i]}`);
  assert.ok(a.losses[11] < a.losses[0], `the loss falls: ${a.losses[0]} → ${a.losses[11]}`);

  const ca = tensorBytes(join(data, "straight", "checkpoint.safetensors"));
  const cb = tensorBytes(join(data, "split", "checkpoint.safetensors"));
  assert.equal([...ca.keys()].sort(), [...cb.keys()].sort());
  assert.ok([...ca.keys()].some((k) => k.endsWith(".exp_avg_sq")), "optimizer moments are in the checkpoint");
  for (const [k, v] of ca) assert.ok(cb.get(k) === v, `tensor ${k} differs`);
  const sa = readCheckpointHeader(join(data, "straight", "checkpoint.safetensors")).state;
  const sb = readCheckpointHeader(join(data, "split", "checkpoint.safetensors")).state;
  assert.equal(sb.dropoutRng, sa.dropoutRng);
  assert.equal(sb.batcher, sa.batcher);
  assert.equal(sb.optimizer, sa.optimizer);
  assert.is(sb.tokens, sa.tokens);
  assert.ok(sa.batcher.epoch >= 1, "the run crossed an epoch boundary");

  // The resumed log holds each step once, with the same losses as the straight run's log.
  assert.equal(trainLosses("split"), trainLosses("straight"));
});

test("interrupted after step 5 (signal), checkpoint written, --resume to 12 equals the straight run", async () => {
  const a = await run("straight2", { maxSteps: 12 });
  const b1 = await run("cut", { maxSteps: 12, checkpointEvery: 0 }, { stopAfter: 5 });
  assert.is(b1.r.stoppedBy, "interrupted");
  assert.is(b1.r.step, 5);
  const ck = join(data, "cut", "checkpoint.safetensors");
  assert.is(readCheckpointHeader(ck).state.step, 5);
  assert.not.ok(existsSync(join(data, "cut", "model")), "an interrupted run exports no model");
  const events = readLog(join(data, "cut", "log.jsonl")).filter((e) => e.kind === "event").map((e) => (e as { event: string }).event);
  assert.equal(events.slice(-2), ["checkpoint", "interrupted"]);

  const b2 = await run("cut", {}, { resume: true }); // maxSteps 12 comes from the checkpoint's config
  assert.is(b2.r.step, 12);
  assert.equal([...b1.losses, ...b2.losses], a.losses);
  assert.ok(existsSync(join(data, "cut", "model", "model.safetensors")));
  const ca = tensorBytes(join(data, "straight2", "checkpoint.safetensors"));
  const cb = tensorBytes(join(data, "cut", "checkpoint.safetensors"));
  for (const [k, v] of ca) assert.ok(cb.get(k) === v, `tensor ${k} differs`);
});

test("--resume at the step limit trains nothing, validates and exports", async () => {
  await run("again", { maxSteps: 4 });
  const before = readFileSync(join(data, "again", "checkpoint.safetensors"));
  const r = await run("again", {}, { resume: true });
  assert.is(r.losses.length, 0);
  assert.is(r.r.step, 4);
  assert.ok(r.r.lastValid !== null);
  assert.ok(Buffer.compare(before, readFileSync(join(data, "again", "checkpoint.safetensors"))) === 0, "checkpoint untouched");
});

test.run();
