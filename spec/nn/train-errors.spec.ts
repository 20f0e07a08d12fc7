// Bad input stops a run with a clear message before training starts, and never touches an
// existing run: missing or misaligned corpus files, unknown flags, an unknown backend, a second
// fresh start in a used folder, --resume without a checkpoint, with other settings, with another
// vocabulary or other training data.
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BpeTokenizer } from "../../nn/tokenizer/bpe.ts";
import { train } from "../../nn/train/run.ts";
import { trainCommand } from "../../scripts/commands/train.ts";
import { TINY, TempCorpora, tinyFlags } from "./train-fixture.ts";
import { rejectsWith } from "../helpers/rejects.ts";

const temp = new TempCorpora();
const data = temp.make();
test.after(() => temp.remove());
const quiet = { handleSignals: false, stderr: () => {} };
const cmd = (args: string[]) => trainCommand(args, quiet);

// One finished 4-step run that the resume tests try to damage.
const done = join(data, "done");
await train({ ...TINY, data, out: done, maxSteps: 4 });
const ckpt = join(done, "checkpoint.safetensors");
const original = readFileSync(ckpt);
const untouched = () => assert.ok(Buffer.compare(original, readFileSync(ckpt)) === 0, "the existing checkpoint changed");

test("a missing corpus file is named, and no run folder is created", async () => {
  const out = join(data, "r-missing");
  await rejectsWith(cmd([...tinyFlags(), `--data=${data}`, `--out=${out}`, "--src=fr"]), "corpus file", "train.fr", "valid.fr", "--data");
  await rejectsWith(cmd([...tinyFlags(), `--data=${join(data, "nowhere")}`, `--out=${out}`]), "not found", "nowhere");
  assert.not.ok(existsSync(out));
});

test("misaligned corpus files name both files and their line counts", async () => {
  const bad = temp.make();
  writeFileSync(join(bad, "train.en"), readFileSync(join(bad, "train.en"), "utf8") + "one more line\n");
  const out = join(bad, "r");
  await rejectsWith(cmd([...tinyFlags(), `--data=${bad}`, `--out=${out}`]), "not aligned", "train.de has 40 lines", "train.en has 41");
  assert.not.ok(existsSync(out));
});

test("an unknown flag or bad value stops before anything is written, even with --resume", async () => {
  await rejectsWith(cmd([...tinyFlags(), `--data=${data}`, `--out=${done}`, "--resume", "--max-stepz=9"]), "unknown option --max-stepz", "--max-steps");
  await rejectsWith(cmd([`--out=${done}`, "--resume", "--eval-every=soon"]), "--eval-every", '"soon"');
  untouched();
});

test("--help prints the usage and trains nothing", async () => {
  const lines: string[] = [];
  assert.is(await trainCommand(["--help"], { ...quiet, stdout: (l) => lines.push(l) }), undefined);
  assert.ok(lines.join("\n").includes("usage: hasten train"));
});

test("an unknown backend is refused with the list of available ones", async () => {
  const out = join(data, "r-backend");
  await rejectsWith(cmd([...tinyFlags(), `--data=${data}`, `--out=${out}`, "--backend=tpu"]), 'unknown backend "tpu"', "available:", "cpu");
  assert.not.ok(existsSync(out));
});

test("a fresh start in a folder holding a checkpoint is refused (it would overwrite it)", async () => {
  await rejectsWith(cmd([...tinyFlags(), `--data=${data}`, `--out=${done}`]), "already holds a checkpoint at step 4", "--resume");
  untouched();
});

test("--resume without a checkpoint", async () => {
  await rejectsWith(cmd([`--out=${join(data, "empty")}`, "--resume"]), "no checkpoint to resume", "checkpoint.safetensors");
});

test("--resume with settings that differ from the checkpoint's names each one", async () => {
  await rejectsWith(cmd([`--out=${done}`, "--resume", "--d-model=32", "--lr=0.01", "--max-steps=8"]),
    "differ from the checkpoint's", "--d-model: checkpoint has 16, asked for 32", "--lr: checkpoint has 0.003, asked for 0.01");
  untouched();
});

test("--resume with another vocabulary in the run folder is refused", async () => {
  const run = join(data, "vocab");
  cpSync(done, run, { recursive: true });
  const other = BpeTokenizer.train(["ganz andere wörter hier", "completely other words"], { vocabSize: 300 });
  other.save(join(run, "tokenizer.json"));
  await rejectsWith(cmd([`--out=${run}`, "--resume", "--max-steps=6"]), "tokenizer.json", "does not match the checkpoint's vocabulary");
});

test("--resume on other training data is refused", async () => {
  const moved = temp.make();
  writeFileSync(join(moved, "train.en"), readFileSync(join(moved, "train.en"), "utf8").replace("the dog", "the hound"));
  const run = join(data, "data");
  cpSync(done, run, { recursive: true });
  await rejectsWith(cmd([`--out=${run}`, `--data=${moved}`, "--resume", "--max-steps=6"]), "training data", "differs from the data the checkpoint was trained on");
});

test("a damaged checkpoint is refused with the reason", async () => {
  const run = join(data, "damaged");
  cpSync(done, run, { recursive: true });
  writeFileSync(join(run, "checkpoint.safetensors"), original.subarray(0, 50));
  await rejectsWith(cmd([`--out=${run}`, "--resume"]), "checkpoint", "exceeds file size");
});

test("a --tokenizer file that does not exist", async () => {
  await rejectsWith(cmd([...tinyFlags(), `--data=${data}`, `--out=${join(data, "r-tok")}`, "--tokenizer=/no/such/tokenizer.json"]), "--tokenizer: file not found");
});

test.run();
