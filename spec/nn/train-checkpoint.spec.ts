// Checkpoints: exact round trip of parameters, moments and state; a write that fails part way
// (a full disk, simulated by a chunk source that throws ENOSPC inside the real atomic writer)
// leaves the previous checkpoint byte for byte, with no temp file behind; and a run whose
// checkpoint write fails says which checkpoint survived.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { writeFileAtomic } from "../../core/atomic-write.ts";
import { randn, tensor } from "../../core/index.ts";
import { Generator } from "../../core/rng.ts";
import {
  CHECKPOINT_FORMAT, loadCheckpoint, readCheckpointHeader, saveCheckpoint, type CheckpointState, type ChunkWriter,
} from "../../nn/train/checkpoint.ts";
import { defaultConfig } from "../../nn/train/config.ts";
import { train } from "../../nn/train/run.ts";
import { TINY, TempCorpora } from "./train-fixture.ts";

const temp = new TempCorpora();
const dir = temp.make();
test.after(() => temp.remove());

function state(step: number): CheckpointState {
  const g = new Generator(step);
  g.normal(); // leaves a Box–Muller spare: it must survive the round trip too
  return {
    format: CHECKPOINT_FORMAT, version: 1, step, config: { ...defaultConfig(), out: "runs/x" },
    optimizer: { step, lr: 1e-3 * step, hyper: { beta1: 0.9, beta2: 0.98, eps: 1e-9, weightDecay: 0, decoupled: true } },
    dropoutRng: g.getState(), batcher: { seed: 1, epoch: 2, position: step }, best: { metric: "bleu", value: 12.5, step },
    tokens: 1000 * step, seconds: 1.5 * step, tokenizerSha256: "ab".repeat(32), trainDataSha256: "cd".repeat(32),
  };
}

function parts(step: number) {
  const g = new Generator(`w${step}`);
  return {
    state: state(step),
    tokenizerJson: JSON.stringify({ format: "hasten-bpe", step }),
    model: { "embed.weight": randn([7, 3], { generator: g }), "decoder.norm.bias": tensor([1e-30, -0, 3.4e38]) },
    optimizer: { "embed.weight.exp_avg": randn([7, 3], { generator: g }) },
  };
}

const fullDisk = (afterChunks: number): ChunkWriter => (path, chunks) => {
  function* failing() {
    let n = 0;
    for (const c of chunks) {
      if (n++ === afterChunks) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      yield c;
    }
  }
  writeFileAtomic(path, failing());
};

test("save → load gives the same tensors (bit for bit) and state", async () => {
  const p = parts(3);
  const path = join(dir, "rt.safetensors");
  await saveCheckpoint(path, p);
  const back = loadCheckpoint(path);
  assert.equal(back.state, p.state);
  assert.is(back.tokenizerJson, p.tokenizerJson);
  for (const [k, t] of Object.entries(p.model)) {
    const a = t.dataSync(), b = back.model[k].dataSync();
    assert.equal(back.model[k].shape, t.shape);
    for (let i = 0; i < a.length; i++) assert.ok(Object.is(a[i], b[i]), `${k}[${i}]: ${a[i]} vs ${b[i]}`);
  }
  assert.equal(Array.from(back.optimizer["embed.weight.exp_avg"].dataSync()), Array.from(p.optimizer["embed.weight.exp_avg"].dataSync()));
  // The header alone (no tensor read) gives the same state.
  assert.equal(readCheckpointHeader(path).state, p.state);
  const g = Generator.fromState(back.state.dropoutRng), want = Generator.fromState(p.state.dropoutRng);
  assert.is(g.normal(), want.normal());
});

test("a write that fails part way leaves the old checkpoint whole and no temp file", async () => {
  const path = join(dir, "ck.safetensors");
  await saveCheckpoint(path, parts(1));
  const before = readFileSync(path);
  for (const after of [0, 1, 2]) {
    let msg = "";
    try {
      await saveCheckpoint(path, parts(2), fullDisk(after));
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.ok(msg.includes("ENOSPC"), `failure after ${after} chunks surfaced: ${msg}`);
    assert.ok(Buffer.compare(before, readFileSync(path)) === 0, `old checkpoint intact after a failure at chunk ${after}`);
    assert.is(loadCheckpoint(path).state.step, 1);
  }
  assert.equal(readdirSync(dir).filter((f) => f.endsWith(".tmp")), [], "temp files cleaned up");
  // And a write that succeeds replaces it.
  await saveCheckpoint(path, parts(2));
  assert.is(readCheckpointHeader(path).state.step, 2);
});

test("a run whose checkpoint write fails stops, naming the checkpoint that survived", async () => {
  const out = join(dir, "run");
  let writes = 0;
  const flaky: ChunkWriter = (path, chunks) => {
    writes++;
    (writes === 2 ? fullDisk(1) : (p: string, c: Iterable<Uint8Array>) => writeFileAtomic(p, c))(path, chunks);
  };
  let msg = "";
  try {
    await train({ ...TINY, data: dir, out, maxSteps: 8, checkpointEvery: 3 }, { writeCheckpoint: flaky });
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.ok(msg.includes("writing the checkpoint of step 6 failed") && msg.includes("ENOSPC") && msg.includes("the checkpoint of step 3 is intact"), msg);
  const ck = loadCheckpoint(join(out, "checkpoint.safetensors"));
  assert.is(ck.state.step, 3);
  assert.equal(readdirSync(out).filter((f) => f.endsWith(".tmp")), []);
});

test.run();
