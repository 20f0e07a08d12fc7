// What a run leaves behind: log.jsonl (one well-formed object per line, steps in order, a train
// entry every logEvery updates), loss.svg (well-formed, one point per logged loss), the exported
// model/ (F16 weights that load and translate like the trained model), the best weights; plus the
// plot, log and progress helpers on their own.
import fc from "fast-check";
import { appendFileSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { noGrad, tensor, tidy } from "../../core/index.ts";
import { readSafetensors } from "../../core/safetensors.ts";
import type { EncoderDecoderModel } from "../../nn/models/kinds.ts";
import { loadModelDir } from "../../nn/models/model-dir.ts";
import { loadCheckpoint } from "../../nn/train/checkpoint.ts";
import { readLog, TrainLog, type LogEntry } from "../../nn/train/log.ts";
import { lossCurveSvg, niceTicks } from "../../nn/train/plot.ts";
import { formatDuration } from "../../nn/train/log.ts";
import { Progress } from "../../scripts/cli/progress.ts";
import { train } from "../../nn/train/run.ts";
import { greedyTranslate } from "../../scripts/commands/train.ts";
import { TINY, TempCorpora } from "./train-fixture.ts";

const temp = new TempCorpora();
const data = temp.make();
test.after(() => temp.remove());

// Well-formedness of the XML subset an SVG writer produces: every tag closes in order, attribute
// values are quoted, and text holds no bare '<' or '&'. Returns the element names in order.
function xmlElements(xml: string): string[] {
  const names: string[] = [], stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while (at < xml.length && (m = re.exec(xml))) {
    at = re.lastIndex;
    const [, close, name, , selfClose, text] = m;
    if (text !== undefined) {
      assert.not.ok(/&(?!(amp|lt|gt|quot);)/.test(text), `bare & in text ${JSON.stringify(text)}`);
      continue;
    }
    if (close) assert.is(stack.pop(), name, `</${name}> closes the element that is open`);
    else {
      names.push(name);
      if (!selfClose) stack.push(name);
    }
  }
  assert.is(at, xml.length, `unparsable XML at ${JSON.stringify(xml.slice(at, at + 40))}`);
  assert.equal(stack, [], "every element is closed");
  return names;
}

const out = join(data, "run");
const result = await train({ ...TINY, data, out, maxSteps: 12, logEvery: 2, evalEvery: 5, export: "final" }, { translate: greedyTranslate });

test("log.jsonl: one JSON object per line, steps in order, train entries every logEvery, validations", () => {
  const lines = readFileSync(join(out, "log.jsonl"), "utf8").trimEnd().split("\n");
  const entries = lines.map((l) => JSON.parse(l) as LogEntry);
  const train = entries.filter((e) => e.kind === "train");
  assert.equal(train.map((e) => e.step), [2, 4, 6, 8, 10, 12]);
  for (const e of train) {
    if (e.kind !== "train") continue;
    assert.ok(Number.isFinite(e.loss) && e.loss > 0 && e.tokens > 0 && e.tokensPerSec > 0 && e.lr > 0 && (e.gradNorm ?? 0) > 0, JSON.stringify(e));
  }
  const valid = entries.filter((e) => e.kind === "valid");
  assert.equal(valid.map((e) => e.step), [5, 10, 12]);
  for (const e of valid) if (e.kind === "valid") assert.ok(e.bleu !== null && e.bleu >= 0 && e.bleuSentences === 4 && e.nll > 0, JSON.stringify(e));
  const steps = entries.map((e) => e.step);
  assert.equal(steps, [...steps].sort((a, b) => a - b), "steps never go back");
  const first = entries[0], last = entries[entries.length - 1];
  assert.ok(first.kind === "event" && first.event === "start", JSON.stringify(first));
  assert.ok(last.kind === "event" && last.event === "done", JSON.stringify(last));
  assert.is(result.lastValid?.bleu, valid[2].kind === "valid" ? valid[2].bleu : undefined);
});

test("loss.svg is well-formed and plots every logged train and valid loss", () => {
  const svg = readFileSync(join(out, "loss.svg"), "utf8");
  const names = xmlElements(svg);
  assert.is(names[0], "svg");
  const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)].map((m) => m[1].split(" "));
  assert.equal(lines.map((l) => l.length), [6, 3], "6 train points, 3 validation points");
  for (const pts of lines) for (const p of pts) assert.ok(/^-?[\d.]+,-?[\d.]+$/.test(p), p);
});

test("model/: F16 weights that load with loadModelDir and compute what the trained weights compute", async () => {
  const { tensors } = readSafetensors(join(out, "model", "model.safetensors"));
  assert.equal([...new Set(Object.values(tensors).map((t) => t.dtype))], ["F16"]);
  const exported = loadModelDir(join(out, "model"));
  assert.is(exported.config.src, "de");
  assert.equal(exported.config.decoding, { maxLenA: 1.2, maxLenB: 10, beam: 5, lengthPenalty: 1 });
  assert.is((exported.config.training as { steps: number }).steps, 12);
  // The same architecture with the checkpoint's float32 weights (export "final" = step 12).
  const exact = loadModelDir(join(out, "model"));
  const ck = loadCheckpoint(join(out, "checkpoint.safetensors"));
  exact.model.loadStateDict(ck.model);
  const logits = (m: EncoderDecoderModel) => noGrad(() => tidy(() =>
    Array.from(m.forward(tensor([[10, 11, 12]], { dtype: "int32" }), tensor([[1, 13]], { dtype: "int32" })).dataSync())));
  const a = logits(exported.model as EncoderDecoderModel), b = logits(exact.model as EncoderDecoderModel);
  // F16 keeps 11 significant bits: each weight is within 2⁻¹¹ relative of the float32 one.
  let maxDiff = 0;
  for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  assert.ok(maxDiff < 1e-2 && maxDiff > 0, `max relative logit difference ${maxDiff}`);
  assert.is((await greedyTranslate(exported, ["der hund läuft ."], { maxLenA: 1.2, maxLenB: 10 })).length, 1);
  for (const t of [...Object.values(ck.model), ...Object.values(ck.optimizer)]) t.dispose();
  exported.model.dispose();
  exact.model.dispose();
});

test("best.safetensors holds the weights of the best validation", () => {
  const { metadata } = readSafetensors(join(out, "best.safetensors"));
  const best = JSON.parse(metadata["hasten.best"]);
  assert.equal(best, result.best);
  assert.ok([5, 10, 12].includes(best.step));
});

test("tokenizer.json is reused by a fresh start of the same run (same data and size), relearned otherwise", async () => {
  const dir = join(data, "cache");
  const startDetail = () => (readLog(join(dir, "log.jsonl"))[0] as { detail?: string }).detail ?? "";
  await train({ ...TINY, data, out: dir, maxSteps: 1 });
  assert.ok(startDetail().includes("(learned)"), startDetail());
  rmSync(join(dir, "checkpoint.safetensors")); // as if it crashed before its first checkpoint
  await train({ ...TINY, data, out: dir, maxSteps: 1 });
  assert.ok(startDetail().includes("(cached)"), startDetail());
  assert.is(readLog(join(dir, "log.jsonl")).filter((e) => e.kind === "event" && e.event === "start").length, 1, "a fresh start begins a new log");
  rmSync(join(dir, "checkpoint.safetensors"));
  await train({ ...TINY, data, out: dir, maxSteps: 1, vocabSize: 330 });
  assert.ok(startDetail().includes("(learned)"), startDetail());
});

test("lossCurveSvg: empty input, non-finite points, escaping", () => {
  const empty = lossCurveSvg([]);
  xmlElements(empty);
  assert.ok(empty.includes("no data yet"));
  const svg = lossCurveSvg([{ label: "a<b & c", color: "red", points: [[1, 2], [2, NaN], [3, Infinity], [4, 1]] }], { title: "x & y" });
  xmlElements(svg);
  assert.ok(svg.includes("a&lt;b &amp; c") && svg.includes("x &amp; y"));
  assert.is([...svg.matchAll(/<polyline [^>]*points="([^"]*)"/g)][0][1].split(" ").length, 2);
  xmlElements(lossCurveSvg([{ label: "one", color: "blue", points: [[5, 3]] }])); // a single point
});

test("niceTicks: round values inside the range, evenly spaced", () => {
  fc.assert(fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), fc.double({ min: 1e-3, max: 1e6, noNaN: true }), (lo, span) => {
    const ticks = niceTicks(lo, lo + span);
    assert.ok(ticks.length >= 2 && ticks.length <= 11, `${ticks.length} ticks for [${lo}, ${lo + span}]`);
    for (const t of ticks) assert.ok(t >= lo - span * 1e-6 && t <= lo + span * (1 + 1e-6), `${t} outside [${lo}, ${lo + span}]`);
    const step = ticks[1] - ticks[0];
    const mant = step / 10 ** Math.floor(Math.log10(step));
    assert.ok([1, 2, 5, 10].some((m) => Math.abs(mant - m) < 1e-4), `step ${step}`);
    for (let i = 2; i < ticks.length; i++) assert.ok(Math.abs(ticks[i] - ticks[i - 1] - step) <= 1e-4 * step, "evenly spaced");
  }), { seed: 5, numRuns: 300 });
});

test("TrainLog: keeps entries up to the resume step, skips a torn last line, refuses a torn middle line", () => {
  const path = join(data, "t.jsonl");
  writeFileSync(path, "");
  const log = new TrainLog(path, -1);
  for (const step of [1, 2, 3, 4]) log.append({ kind: "event", step, event: "checkpoint" });
  appendFileSync(path, '{"kind":"tra'); // a crash mid-append
  assert.equal(readLog(path).map((e) => e.step), [1, 2, 3, 4]);
  const resumed = new TrainLog(path, 2);
  assert.equal(resumed.entries.map((e) => e.step), [1, 2]);
  assert.equal(readLog(path).map((e) => e.step), [1, 2]);
  writeFileSync(path, '{"kind":"event"\n{"kind":"event","step":1,"event":"done"}\n');
  try {
    readLog(path);
    assert.unreachable("a torn middle line is an error");
  } catch (e) {
    assert.ok((e as Error).message.includes("line 1 is not JSON"), (e as Error).message);
  }
});

test("Progress: lines when not a TTY, an in-place bar on a TTY, nothing with none", () => {
  const fields = { step: 50, epoch: 2, loss: 3.14159, tokensPerSec: 12345.6, lr: 7e-4, etaSec: 3725 };
  const got: string[] = [];
  const lines = new Progress({ write: (s: string) => got.push(s), isTTY: false }, "auto", 100);
  assert.is(lines.mode, "lines");
  lines.update(fields);
  assert.equal(got, ["step 50/100 ep 2 | loss 3.142 | 12,346 tok/s | lr 7.0e-4 | ETA 1h02m\n"]);
  const tty: string[] = [];
  const bar = new Progress({ write: (s: string) => tty.push(s), isTTY: true, columns: 200 }, "auto", 100);
  bar.update(fields, true);
  assert.ok(tty[0].startsWith("\r\x1b[2Kstep 50/100 [########........]  50.0%"), JSON.stringify(tty[0]));
  bar.update(fields); // within 100 ms of the last draw: skipped
  assert.is(tty.length, 1);
  bar.message("valid @ 50");
  assert.equal(tty.slice(1), ["\r\x1b[2K", "valid @ 50\n"]);
  const none: string[] = [];
  const off = new Progress({ write: (s: string) => none.push(s), isTTY: true }, "none", 100);
  off.update(fields, true);
  off.message("x");
  assert.equal(none, []);
  assert.equal([formatDuration(5), formatDuration(125), formatDuration(7300), formatDuration(NaN)], ["5s", "2m05s", "2h01m", "?"]);
});

test.run();
