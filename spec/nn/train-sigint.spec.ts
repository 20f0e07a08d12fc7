// Ctrl-C on a real process: `train` runs in a child; after a few logged steps it gets SIGINT, and
// must finish the step, write a checkpoint of exactly that step, log it, and exit with 130.
// The run then resumes (in this process) from that checkpoint.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { projectRoot } from "../../nn/data/paths.ts";
import { readCheckpointHeader } from "../../nn/train/checkpoint.ts";
import { readLog } from "../../nn/train/log.ts";
import { train } from "../../nn/train/run.ts";
import { TempCorpora, tinyFlags } from "./train-fixture.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const temp = new TempCorpora();
test.after(() => temp.remove());

test("SIGINT: the step finishes, a checkpoint of that step is written, exit code 130; --resume continues", async () => {
  const data = temp.make();
  const out = join(data, "run");
  const child = spawn(process.execPath, ["--import", "tsx", join(projectRoot, "scripts", "commands", "train.ts"),
    ...tinyFlags({ maxSteps: 1_000_000, checkpointEvery: 0, progress: "lines" }), `--data=${data}`, `--out=${out}`], { cwd: projectRoot, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
  const log = join(out, "log.jsonl");
  const deadline = Date.now() + 30_000;
  const trainLines = () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((l) => l.includes('"kind":"train"')).length : 0);
  while (trainLines() < 3) {
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      assert.unreachable(`no training steps logged within 30 s; stderr: ${stderr}`);
    }
    await sleep(20);
  }
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const code = await exited;
  clearTimeout(timer);
  assert.is(code, 130, `exit code; stderr: ${stderr}`);
  assert.ok(stderr.includes("SIGINT: finishing this step"), stderr);
  assert.ok(/interrupted at step \d+: checkpoint written/.test(stderr), stderr);

  const entries = readLog(log);
  const lastTrain = entries.filter((e) => e.kind === "train").pop()!;
  const step = readCheckpointHeader(join(out, "checkpoint.safetensors")).state.step;
  assert.ok(step >= 3, `checkpoint step ${step}`);
  assert.is(step, lastTrain.step, "the checkpoint holds the last finished step");
  const last = entries[entries.length - 1];
  assert.ok(last.kind === "event" && last.event === "interrupted" && last.step === step, JSON.stringify(last));

  const r = await train({ out, maxSteps: step + 2 }, { resume: true });
  assert.is(r.resumedFrom, step);
  assert.is(r.step, step + 2);
  assert.ok(existsSync(join(out, "model", "model.safetensors")));
});

test.run();
