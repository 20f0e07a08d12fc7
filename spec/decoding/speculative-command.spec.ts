// `hasten generate --draft DIR --method …`: at temperature 0 every method prints exactly the text
// of --method plain; --jsonl adds the tokens each target pass produced; wrong pairings of draft,
// target and method are usage errors (exit code 2) that say what to do.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { BpeTokenizer, saveModelDir } from "../../nn/index.ts";
import { generateCommand, type GenerateRecord } from "../../scripts/commands/generate.ts";
import type { CommandIO } from "../../scripts/cli/common.ts";
import { tinyGlide, tinyLM } from "./tiny-lm.ts";

const root = mkdtempSync(join(tmpdir(), "hasten-spec-cmd-"));
test.after(() => rmSync(root, { recursive: true, force: true }));
const LINES = ["It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife."];
const tokenizer = BpeTokenizer.train(LINES, { vocabSize: 300 });
const other = BpeTokenizer.train(["Something else entirely, with other merges and other words."], { vocabSize: 300 });
const dirs = { target: join(root, "target"), lm: join(root, "draft-lm"), glide: join(root, "draft-glide"), stranger: join(root, "draft-other-tokenizer") };
{
  const target = tinyLM(1, { vocab: tokenizer.vocabSize, maxLen: 64, gain: 2 });
  const lm = tinyLM(2, { vocab: tokenizer.vocabSize, maxLen: 64, layers: 1, gain: 2 });
  const glide = tinyGlide(3, target);
  const lmDir = { kind: "lm", task: "lm", decoding: {} };
  await saveModelDir(dirs.target, { model: target, tokenizer, config: { ...lmDir, config: { ...target.config } } });
  await saveModelDir(dirs.lm, { model: lm, tokenizer, config: { ...lmDir, config: { ...lm.config }, decoding: { gamma: 3 } } });
  const lm2 = tinyLM(4, { vocab: other.vocabSize, maxLen: 64, layers: 1 });
  await saveModelDir(dirs.stranger, { model: lm2, tokenizer: other, config: { ...lmDir, config: { ...lm2.config } } });
  lm2.dispose();
  await saveModelDir(dirs.glide, { model: glide, tokenizer, config: { kind: "glide", task: "glide", config: { ...glide.config }, decoding: { gamma: 4, capeBins: "2,2,2,2,2,2,2,2,1,1" } } });
  for (const m of [target, lm, glide]) m.dispose();
}

async function run(argv: string[], stdin = "It is a truth\n\nsingle man\n") {
  let stdout = "", stderr = "", code = 0, error: Error | undefined;
  const io: CommandIO = { stdin, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), stderrIsTTY: false, setExitCode: (c) => (code = c) };
  let records: GenerateRecord[] | undefined;
  try {
    records = await generateCommand(argv, io);
  } catch (e) {
    error = e as Error;
  }
  return { stdout, stderr, code, error, records };
}

const common = ["--model", dirs.target, "--max-new-tokens", "20", "--temperature", "0"];

test("temperature 0: every method prints exactly the text of --method plain", async () => {
  const plain = await run([...common, "--method", "plain"]);
  assert.is(plain.error, undefined, String(plain.error));
  assert.ok(plain.records!.every((r) => r.tokens.length >= 5), "long enough continuations to compare");
  for (const [draft, method, gamma] of [["lm", "vanilla", "3"], ["lm", "vanilla-cape", "5"], ["glide", "glide", "2"], ["glide", "glide-cape", "4"]] as const) {
    const r = await run([...common, "--draft", dirs[draft], "--method", method, "--gamma", gamma]);
    assert.is(r.error, undefined, String(r.error));
    assert.is(r.stdout, plain.stdout, `${method}`);
  }
  // The default method is what the draft supports best.
  const def = await run([...common, "--draft", dirs.glide, "--jsonl"]);
  assert.ok(def.records!.every((r) => r.method === "glide-cape"));
  assert.ok((await run([...common, "--draft", dirs.lm, "--jsonl"])).records!.every((r) => r.method === "vanilla"));
  // …unless the draft directory names its own (decoding.method).
  const cfgPath = join(dirs.glide, "config.json");
  const cfg = JSON.parse(readFileSync(cfgPath, "utf8"));
  writeFileSync(cfgPath, JSON.stringify({ ...cfg, decoding: { ...cfg.decoding, method: "glide" } }));
  assert.ok((await run([...common, "--draft", dirs.glide, "--jsonl"])).records!.every((r) => r.method === "glide"));
  writeFileSync(cfgPath, JSON.stringify(cfg));
});

test("--jsonl with a draft: method, tokens per target pass and draft passes; plain records keep their fields", async () => {
  const r = await run([...common, "--draft", dirs.lm, "--method", "vanilla", "--jsonl", "--verbose"]);
  const recs = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  for (const rec of recs) {
    assert.equal(Object.keys(rec).sort(), ["draftCalls", "method", "prompt", "stopped", "targetCalls", "text", "tokens", "tokensPerCall"]);
    const total = rec.tokensPerCall.reduce((a: number, b: number) => a + b, 0);
    assert.ok(total >= rec.tokens.length && total <= rec.tokens.length + 1, "every token comes from one pass (an eos besides)");
    assert.ok(rec.tokensPerCall.every((n: number) => n >= 1 && n <= 4), "γ 3 (the draft's default): at most 4 tokens a pass");
  }
  assert.match(r.stderr, /vanilla \(γ 3\): [0-9.]+ tokens per target pass/);
  const plain = await run([...common, "--jsonl"]);
  assert.equal(Object.keys(JSON.parse(plain.stdout.split("\n")[0])).sort(), ["prompt", "stopped", "targetCalls", "text", "tokens"]);
});

test("usage errors: a method without a draft, a draft of the wrong kind or tokenizer, bad CaPE bins", async () => {
  const cases: [string[], RegExp][] = [
    [["--method", "vanilla"], /--method vanilla needs a draft model: --draft DIR/],
    [["--draft", dirs.lm, "--method", "glide"], /--method glide needs a glide draft; .* holds an lm draft/],
    [["--draft", dirs.glide, "--method", "vanilla"], /--method vanilla needs an lm draft; .* holds a glide draft/],
    [["--draft", dirs.stranger], /has another tokenizer than the target/],
    [["--draft", dirs.lm, "--cape-bins", "1,2,3"], /CaPE bins must be 10 integers/],
    [["--draft", join(root, "nowhere")], /cannot load the draft/],
  ];
  for (const [argv, re] of cases) {
    const r = await run([...common, ...argv]);
    assert.is(r.code, 2, argv.join(" "));
    assert.match(r.error?.message ?? "", re);
  }
});

test.run();
