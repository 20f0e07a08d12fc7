// `hasten translate` and `hasten evaluate` on a tiny random model saved with saveModelDir: line
// count and order, nothing but translations on stdout, exit code 2 for usage errors, and an
// evaluation on a few lines of a temporary DATA_DIR whose numbers are recomputed independently.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { noGrad, setBackend, tensor } from "../../core/index.ts";
import { beamSearch, toOneLine, translateLines } from "../../decoding/index.ts";
import { corpusBleu } from "../../nn/metrics/bleu.ts";
import { loadModelDir, saveModelDir, type EncoderDecoderModel, type ModelDir } from "../../nn/index.ts";
import { evaluateCommand, type EvaluateReport } from "../../scripts/commands/evaluate.ts";
import { translateCommand } from "../../scripts/commands/translate.ts";
import type { CommandIO } from "../../scripts/cli/common.ts";
import { UsageError } from "../../scripts/cli/flags.ts";
import { tinyModelDir } from "./tiny.ts";

const projectRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const root = mkdtempSync(join(tmpdir(), "hasten-commands-"));
const modelDir = join(root, "model");
const tiny = tinyModelDir(21);
await saveModelDir(modelDir, tiny);
tiny.model.dispose();
const m = loadModelDir(modelDir) as ModelDir<EncoderDecoderModel>;

const DE = ["Ein Mann fährt Fahrrad.", "", "Zwei Hunde spielen im Schnee und ein Kind liest.", "   ", "Kinder", "Eine Frau liest ein Buch am Strand."];

// Runs a command with captured streams; returns stdout, stderr and the exit code it set.
async function run(cmd: (argv: string[], io: CommandIO) => Promise<unknown>, argv: string[], stdin = "", tty = false) {
  let stdout = "", stderr = "", code = 0, error: Error | undefined;
  try {
    await cmd(argv, { stdin, stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), stderrIsTTY: tty, setExitCode: (c) => (code = c) });
  } catch (e) {
    error = e as Error;
  }
  return { stdout, stderr, code, error };
}

test("translate: one output line per input line, in order, equal to translating each line alone", async () => {
  const r = await run(translateCommand, ["--model", modelDir, "--batch-size", "2", "--beam", "1"], DE.join("\n") + "\n");
  assert.is(r.error, undefined);
  assert.is(r.stderr, "", "nothing on stderr when it is not a terminal and not --verbose");
  assert.ok(r.stdout.endsWith("\n"));
  const lines = r.stdout.slice(0, -1).split("\n");
  assert.is(lines.length, DE.length);
  for (let i = 0; i < DE.length; i++) {
    const { translations: [alone] } = await translateLines(m, [DE[i]], { beam: 1, maxLenA: 1, maxLenB: 3 });
    assert.is(lines[i], alone, `line ${i}`);
  }
  assert.is(lines[1], "", "empty line → empty line");
  assert.is(lines[3], "", "blank line → empty line");
  assert.ok(lines.some((l) => l.length > 0), "the random model says something");
});

test("translate: the beam comes from the model's config or --beam, and equals beamSearch", async () => {
  const ids = DE.map((s) => m.tokenizer.encode(s));
  const want = await beamSearch(m.model, ids.filter((x) => x.length > 0), { beam: 3, lengthPenalty: 1, maxLenA: 1, maxLenB: 3, banned: [3, 4] });
  const r = await run(translateCommand, ["--model", modelDir, "--verbose"], DE.join("\n")); // config: beam 3; no final newline
  const lines = r.stdout.split("\n").slice(0, -1);
  assert.equal(lines.filter((_, i) => ids[i].length > 0), want.map((h) => toOneLine(m.tokenizer.decode(h.tokens))));
  assert.match(r.stderr, /hasten translate: 6 lines in [\d.]+ s \([\d.]+ sent\/s\), beam 3, batch 32\n$/);
  const g = await run(translateCommand, ["--model", modelDir, "--beam=1", "--max-len-b", "0", "--max-len-a", "0"], "Ein Mann.\nKinder.\n");
  assert.is(g.stdout, "\n\n", "a zero length limit gives empty translations");
});

test("translate: --backend gpujs:webasm gives the cpu backend's translations", async () => {
  const input = "Ein Mann fährt Fahrrad.\nZwei Hunde.\n";
  const cpu = await run(translateCommand, ["--model", modelDir, "--beam", "2"], input);
  try {
    const gpu = await run(translateCommand, ["--model", modelDir, "--beam", "2", "--backend", "gpujs:webasm"], input);
    assert.is(gpu.error, undefined, String(gpu.error));
    assert.is(gpu.stdout, cpu.stdout);
  } finally {
    await setBackend("cpu");
  }
});

test("translate: line breaks spelled by byte tokens never split an output line", async () => {
  // A model that always says <0x0A>: the final norm outputs a constant c, and only the row of
  // that byte in the output projection is c.
  const nl = tinyModelDir(22);
  const newlineByte = nl.tokenizer.tokenToId("<0x0A>")!;
  noGrad(() => {
    const sd = nl.model.stateDict();
    const D = nl.model.config.dModel, V = nl.model.config.tgtVocab;
    const c = Array.from({ length: D }, (_, i) => (i % 2 ? 1 : -1));
    sd["decoder.norm.weight"].assign_(tensor(new Array(D).fill(0)));
    sd["decoder.norm.bias"].assign_(tensor(c));
    const w = new Float32Array(V * D);
    c.forEach((x, i) => (w[newlineByte * D + i] = 10 * x));
    sd["outProj.weight"].assign_(tensor(w, { shape: [V, D] }));
  });
  const { translations } = await translateLines(nl, ["Ein Mann.", "Kinder spielen."], { beam: 1, maxLenA: 0, maxLenB: 4 });
  assert.equal(translations, ["    ", "    "]);
  nl.model.dispose();
});

test("translate and evaluate: usage errors and a missing model exit with code 2 and say why; long lines are cut with a warning", async () => {
  const cases: [typeof translateCommand | typeof evaluateCommand, string[], RegExp][] = [
    [translateCommand, [], /--model DIR is required/],
    [translateCommand, ["--model", join(root, "missing")], /cannot load the model: loadModelDir: no model directory at .*missing/],
    [translateCommand, ["--model", modelDir, "--beam", "0"], /--beam: expected an integer in \[1, 1000\], got "0"/],
    [translateCommand, ["--model", modelDir, "--beam", "2.5"], /--beam: expected an integer in \[1, 1000\], got "2.5"/],
    [translateCommand, ["--model", modelDir, "--max-len-a"], /--max-len-a needs a value/],
    [translateCommand, ["--model", modelDir, "--bogus"], /unknown option --bogus/],
    [translateCommand, ["--model", modelDir, "extra.txt"], /unexpected argument "extra.txt"/],
    [translateCommand, ["--model", modelDir, "--input", join(root, "none.txt")], /cannot read .*none.txt: no such file/],
    [translateCommand, ["--model", modelDir, "--backend", "tpu"], /--backend: unknown backend "tpu"; available: cpu, gpujs, wasm/],
    [translateCommand, ["--model", modelDir, "--backend", "wasm:xyz"], /--backend: wasm takes no mode, got "wasm:xyz"/],
    [translateCommand, ["--model", modelDir, "--beam", "100000"], /--beam: expected an integer in \[1, 1000\], got "100000"/],
    [translateCommand, ["--model", modelDir, "--max-len-b", "1e9"], /--max-len-b: expected an integer in \[0, 100000\]/],
    [evaluateCommand, ["--model", modelDir, "--split", "test2017"], /--split: expected one of train, valid, test2016, got "test2017"/],
    [evaluateCommand, ["--model", modelDir, "--data-dir", join(root, "nodata")], /cannot read the test2016 split: --data-dir .*nodata does not exist/],
    [evaluateCommand, ["--model", modelDir, "--data-dir", root], /cannot read the test2016 split: .*source file not found: .*test2016.de/],
    [evaluateCommand, ["--model", modelDir, "--limit", "0"], /--limit: expected an integer ≥ 1, got "0"/],
  ];
  for (const [cmd, argv, re] of cases) {
    const r = await run(cmd, argv, "Hallo\n");
    assert.ok(r.error instanceof UsageError, `${argv.join(" ")}: expected a UsageError, got ${r.error}`);
    assert.match(r.error!.message, re);
    assert.is(r.code, 2, argv.join(" "));
    assert.is(r.stdout, "");
  }
  const long = await run(translateCommand, ["--model", modelDir, "--beam", "1"], "Hallo\n" + "Ein Hund. ".repeat(30) + "\n");
  assert.is(long.code, 0);
  assert.is(long.stdout.split("\n").length, 3);
  assert.match(long.stderr, /^hasten translate: warning: 1 line\(s\) longer than the model's maxLen of 64 tokens were cut \(line 2\)\n$/);
  const help = await run(translateCommand, ["--help"]);
  assert.match(help.stdout, /^usage: hasten translate --model DIR/);
});

test("one 300,000-digit word does not stop the job: every line is translated, the long one cut with a warning naming it", async () => {
  const lines = ["Ein Hund.", "7".repeat(300000), "Zwei Kinder."];
  const r = await run(translateCommand, ["--model", modelDir, "--beam", "1"], lines.join("\n") + "\n");
  assert.is(r.error, undefined, String(r.error));
  assert.is(r.code, 0);
  assert.is(r.stdout.split("\n").length, 4, "three output lines");
  assert.match(r.stderr, /warning: 1 line\(s\) longer than the model's maxLen of 64 tokens were cut \(line 2\)/);
});

test("translate as a process: stdin to stdout, exit code 2 on a missing model", () => {
  const script = "const { translateCommand } = await import('./scripts/commands/translate.ts');" +
    "await translateCommand(process.argv.slice(1)).catch((e) => { console.error(e.message); process.exitCode ||= 1; });";
  const spawn = (args: string[], input: string) => spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, "--", ...args], { cwd: projectRoot, input, encoding: "utf8" });
  const ok = spawn(["--model", modelDir, "--beam", "1"], "Ein Mann.\n\nKinder spielen.\n");
  assert.is(ok.status, 0, ok.stderr);
  assert.is(ok.stdout.split("\n").length, 4, JSON.stringify(ok.stdout));
  assert.is(ok.stderr, "");
  const bad = spawn(["--model", join(root, "missing")], "x\n");
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /hasten translate: cannot load the model: loadModelDir: no model directory/);
  assert.is(bad.stdout, "");
});

test("evaluate: BLEU of greedy and beam on a temporary DATA_DIR, speed figures, table and --json", async () => {
  const data = join(root, "data");
  mkdirSync(join(data, "multi30k"), { recursive: true });
  const de = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch.", "Kinder spielen am Strand.", "Ein Hund."];
  const en = ["A man rides a bike.", "Two dogs play in the snow.", "A woman reads a book.", "Children play on the beach.", "A dog."];
  writeFileSync(join(data, "multi30k", "test2016.de"), de.join("\n") + "\n");
  writeFileSync(join(data, "multi30k", "test2016.en"), en.join("\n") + "\n");
  const r = await run(evaluateCommand, ["--model", modelDir, "--data-dir", data, "--limit", "4", "--latency-sentences", "3", "--json"]);
  assert.is(r.error, undefined, String(r.error));
  assert.is(r.stderr, "");
  const rep = JSON.parse(r.stdout) as EvaluateReport;
  assert.is(rep.sentences, 4);
  assert.equal([rep.src, rep.tgt, rep.split], ["de", "en", "test2016"]);
  assert.equal(rep.results.map((x) => x.decoder), ["greedy", "beam 3"]);
  for (const x of rep.results) {
    const { translations } = await translateLines(m, de.slice(0, 4), { beam: x.beam, lengthPenalty: 1, maxLenA: 1, maxLenB: 3 });
    assert.is(x.bleu.score, corpusBleu(translations, [en.slice(0, 4)]).score, `${x.decoder}: BLEU recomputed`);
    assert.ok(x.sentencesPerSecond > 0 && x.latencyMsMedian > 0 && x.latencySentences === 3);
  }
  const table = await run(evaluateCommand, ["--model", modelDir, "--data-dir", data, "--beam", "2", "--latency-sentences", "2"]);
  assert.is(table.error, undefined, String(table.error));
  assert.match(table.stdout, /multi30k test2016 de→en, 5 sentences, backend cpu/);
  assert.match(table.stdout, /\ngreedy +BLEU = [\d.]+ /);
  assert.match(table.stdout, /\nbeam 2 +BLEU = [\d.]+ /);
  assert.match(table.stdout, /decoder +BLEU +sent\/s \(batch 32\) +ms\/sent \(batch 1, median of 2\)\ngreedy +[\d.]+ +[\d.]+ +[\d.]+\nbeam 2 +[\d.]+ +[\d.]+ +[\d.]+\n$/);
});

test.after(() => {
  m.model.dispose();
  rmSync(root, { recursive: true, force: true });
});
test.run();
