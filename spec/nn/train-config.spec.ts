// Flags and config files: both spellings of a flag, booleans, every bad value and unknown key
// refused with a message naming it, config files (.json and .ts), and which keys --resume may change.
import fc from "fast-check";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { checkConfig, defaultConfig, optionTable, resumeConflicts, type TrainConfig } from "../../nn/train/config.ts";
import { fromFlag, toFlag } from "../../scripts/cli/flags.ts";
import { loadConfigFile, parseTrainArgs, trainCommand, trainUsage } from "../../scripts/commands/train.ts";

const CONFIG_KEYS = optionTable({});
const CONFIG_KEY_NAMES = Object.keys(CONFIG_KEYS);
import { TINY, TempCorpora } from "./train-fixture.ts";
import { rejectsWith } from "../helpers/rejects.ts";

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  try {
    fn();
  } catch (e) {
    const msg = (e as Error).message;
    for (const p of parts) assert.ok(msg.includes(p), `message ${JSON.stringify(msg)} lacks ${JSON.stringify(p)}`);
    return;
  }
  assert.unreachable(`expected an error mentioning ${parts.join(", ")}`);
}

const temp = new TempCorpora();
test.after(() => temp.remove());

test("--key value, --key=value and camelCase all set the same key", () => {
  const a = parseTrainArgs(["--max-tokens", "2048", "--d-model=128", "--labelSmoothing=0.2", "--src", "fr", "--out", "runs/x"]);
  assert.equal(a.overrides, { maxTokens: 2048, dModel: 128, labelSmoothing: 0.2, src: "fr", out: "runs/x" });
  assert.is(a.resume, false);
  assert.is(a.help, false);
  const b = parseTrainArgs(["--resume", "--config", "c.json", "--max-len-a=1.5", "-h"]);
  assert.equal(b, { overrides: { maxLenA: 1.5 }, resume: true, configFile: "c.json", help: true });
});

test("booleans: bare flag, =false, a following true/false, --no-flag", () => {
  assert.equal(parseTrainArgs(["--tie-embeddings"]).overrides, { tieEmbeddings: true });
  assert.equal(parseTrainArgs(["--tie-embeddings=false"]).overrides, { tieEmbeddings: false });
  assert.equal(parseTrainArgs(["--tie-embeddings", "false", "--seed", "4"]).overrides, { tieEmbeddings: false, seed: 4 });
  assert.equal(parseTrainArgs(["--no-tie-embeddings"]).overrides, { tieEmbeddings: false });
  // A bare boolean does not swallow the next flag.
  assert.equal(parseTrainArgs(["--tie-embeddings", "--seed=2"]).overrides, { tieEmbeddings: true, seed: 2 });
});

test("an unknown flag is refused, named, with a suggestion and the list of valid flags", () => {
  throwsWith(() => parseTrainArgs(["--max-token", "10"]), "unknown option --max-token", "did you mean --max-tokens?", "valid options:", "--d-model", "--resume");
  throwsWith(() => parseTrainArgs(["--frobnicate"]), "unknown option --frobnicate", "valid options:");
  throwsWith(() => parseTrainArgs(["--no-seed"]), "unknown option --no-seed"); // only booleans negate
  throwsWith(() => parseTrainArgs(["stray"]), 'unexpected argument "stray"');
});

test("bad values are refused naming the flag, what was expected and what came", () => {
  throwsWith(() => parseTrainArgs(["--max-tokens", "abc"]), "--max-tokens", "expected an integer ≥ 2", '"abc"');
  throwsWith(() => parseTrainArgs(["--max-tokens=2.5"]), "--max-tokens", "integer", '"2.5"');
  throwsWith(() => parseTrainArgs(["--dropout=1.5"]), "--dropout", "≤ 0.99", '"1.5"');
  throwsWith(() => parseTrainArgs(["--lr=0"]), "--lr", "a number > 0", '"0"');
  throwsWith(() => parseTrainArgs(["--activation=tanh"]), "--activation", "one of relu, gelu", '"tanh"');
  throwsWith(() => parseTrainArgs(["--tie-embeddings=maybe"]), "--tie-embeddings", "true or false", '"maybe"');
  throwsWith(() => parseTrainArgs(["--resume=later"]), "--resume", "true or false");
  throwsWith(() => parseTrainArgs(["--seed"]), "--seed needs a value");
  throwsWith(() => parseTrainArgs(["--out="]), "--out", "non-empty");
  throwsWith(() => parseTrainArgs(["--seed=-1"]), "--seed", "integer in [0, 4294967295]");
});

test("property: any in-range integer for an int key parses to itself, in both flag spellings", () => {
  const intKeys = CONFIG_KEY_NAMES.filter((k) => CONFIG_KEYS[k].spec.kind === "int");
  fc.assert(fc.property(fc.constantFrom(...intKeys), fc.nat({ max: 1e6 }), fc.boolean(), (key, n, inline) => {
    const spec = CONFIG_KEYS[key].spec as { min: number; max?: number };
    const v = Math.min(spec.max ?? Infinity, spec.min + n);
    const flag = `--${toFlag(key)}`;
    const got = parseTrainArgs(inline ? [`${flag}=${v}`] : [flag, String(v)]).overrides;
    assert.equal(got, { [key]: v });
  }), { seed: 11, numRuns: 200 });
  for (const k of CONFIG_KEY_NAMES) assert.is(fromFlag(toFlag(k)), k, `flag name of ${k} round-trips`);
});

test("checkConfig: relations between keys", () => {
  const ok: TrainConfig = { ...defaultConfig(), out: "runs/x" };
  assert.equal(checkConfig(ok), ok);
  throwsWith(() => checkConfig({ ...ok, out: "" }), "`out` is required");
  throwsWith(() => checkConfig({ ...ok, dModel: 100, heads: 3 }), "`dModel` 100 must be divisible by `heads` 3");
  throwsWith(() => checkConfig({ ...ok, tgt: "de" }), "`src` and `tgt` must differ");
  throwsWith(() => checkConfig({ ...ok, maxSteps: 0, maxEpochs: 0 }), "would never stop");
  throwsWith(() => checkConfig({ ...ok, maxSentenceTokens: 300 }), "`maxSentenceTokens` 300 needs `maxLen` ≥ 301, got 256");
  throwsWith(() => checkConfig({ ...ok, maxTokens: 50, maxSentenceTokens: 60 }), "needs `maxTokens` ≥ 61");
  // Values are re-checked too (a config from a checkpoint or a file goes through here).
  throwsWith(() => checkConfig({ ...ok, heads: 0 }), "config: `heads`", "integer in [1, 1024]");
});

test("config files: JSON and TypeScript, values checked, unknown keys refused", async () => {
  const dir = temp.add(mkdtempSync(join(tmpdir(), "hasten-cfg-")));
  writeFileSync(join(dir, "a.json"), JSON.stringify({ dModel: 64, heads: 4, tieEmbeddings: false, activation: "gelu" }));
  assert.equal(await loadConfigFile(join(dir, "a.json")), { dModel: 64, heads: 4, tieEmbeddings: false, activation: "gelu" });
  writeFileSync(join(dir, "b.ts"), "const c: Record<string, unknown> = { maxTokens: 1024, lr: 1e-3 };\nexport default c;\n");
  assert.equal(await loadConfigFile(join(dir, "b.ts")), { maxTokens: 1024, lr: 1e-3 });
  writeFileSync(join(dir, "bad-key.json"), JSON.stringify({ dModell: 64 }));
  await rejectsWith(loadConfigFile(join(dir, "bad-key.json")), 'unknown key "dModell"', "valid keys:", "dModel");
  writeFileSync(join(dir, "bad-value.json"), JSON.stringify({ heads: "four" }));
  await rejectsWith(loadConfigFile(join(dir, "bad-value.json")), "bad-value.json: heads", "integer", '"four"');
  writeFileSync(join(dir, "broken.json"), "{ dModel: ");
  await rejectsWith(loadConfigFile(join(dir, "broken.json")), "is not valid JSON");
  writeFileSync(join(dir, "list.json"), "[1, 2]");
  await rejectsWith(loadConfigFile(join(dir, "list.json")), "must hold an object", "an array");
  await rejectsWith(loadConfigFile(join(dir, "none.json")), "config file not found");
  writeFileSync(join(dir, "c.yaml"), "dModel: 64\n");
  await rejectsWith(loadConfigFile(join(dir, "c.yaml")), 'expected a .json, .ts or .js file, got ".yaml"');
});

test("hasten train --config: the file's settings apply, flags on the command line win", async () => {
  const data = temp.make();
  writeFileSync(join(data, "run.json"), JSON.stringify({ ...TINY, data, maxSteps: 3, seed: 8 }));
  const r = await trainCommand([`--config=${join(data, "run.json")}`, `--out=${join(data, "r")}`, "--max-steps=2", "--progress=none"], { handleSignals: false });
  assert.is(r?.step, 2);
  assert.is(r?.config.seed, 8);
  assert.is(r?.config.dModel, TINY.dModel);
});

test("resumeConflicts: limits, intervals, decoding and runtime may change; the model and data may not", () => {
  const saved: TrainConfig = { ...defaultConfig(), out: "runs/x" };
  assert.equal(resumeConflicts(saved, { maxSteps: 99, evalEvery: 5, beam: 2, backend: "wasm", threads: 4, out: "elsewhere", progress: "none" }), []);
  assert.equal(resumeConflicts(saved, { dModel: saved.dModel, lr: saved.lr }), [], "equal values are not conflicts");
  const c = resumeConflicts(saved, { dModel: 512, lr: 1e-3, seed: 9 });
  assert.is(c.length, 3);
  assert.ok(c[0].includes("`dModel`: checkpoint has 256, asked for 512"), c[0]);
});

test("the task and model kind choose the settings: lm has seqLen and layers, not src or encLayers", () => {
  const lm = optionTable({ task: "lm" });
  assert.ok("seqLen" in lm && "layers" in lm && !("src" in lm) && !("encLayers" in lm));
  assert.equal(parseTrainArgs(["--task", "lm", "--seq-len", "64", "--layers=2"]).overrides, { task: "lm", seqLen: 64, layers: 2 });
  throwsWith(() => parseTrainArgs(["--task", "lm", "--src", "de"]), "unknown option --src");
  throwsWith(() => parseTrainArgs(["--task", "nope"]), 'unknown task "nope"', "translation, lm");
  throwsWith(() => parseTrainArgs(["--task", "lm", "--model", "transformer"]), "the lm task trains causal-lm models", "choose one of lm");
  assert.is(defaultConfig({ task: "lm" }).bestBy, "loss");
  assert.ok(trainUsage("lm").includes("--seq-len") && trainUsage("lm").includes("[loss]"));
});

test("usage lists every option with its default", () => {
  const u = trainUsage();
  for (const k of CONFIG_KEY_NAMES) assert.ok(u.includes(`--${toFlag(k)}`), `usage lacks --${toFlag(k)}`);
  assert.ok(u.includes("--max-tokens") && u.includes("[4096]"));
  assert.ok(u.includes("--resume") && u.includes("--config"));
});

test.run();
