// A smoke run of `hasten train --model markov` on the tiny corpus: the command line takes the
// kind's own flags (--order, --variant), the loss falls, and the exported model directory loads
// as a Markov Transformer that greedy and beam search translate with.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { translateLines } from "../../decoding/index.ts";
import { loadModelDir, MarkovTransformer, readLog } from "../../nn/index.ts";
import { trainCommand } from "../../scripts/commands/train.ts";
import { TempCorpora, tinyFlags } from "./train-fixture.ts";

const temp = new TempCorpora();
const data = temp.make({ train: 60 });
test.after(() => temp.remove());
const out = join(data, "run");
rmSync(out, { recursive: true, force: true });
const r = await trainCommand([...tinyFlags({ data, out, model: "markov", order: 2, variant: "strict", maxSteps: 60, evalEvery: 30, lr: 1e-2 })], { handleSignals: false, stderr: () => {} });

test("train --model markov --order 2: the kind's flags, a falling loss, BLEU validation", () => {
  assert.ok(r, "trained");
  assert.equal([r!.config.model, r!.config.order, r!.config.variant, r!.step], ["markov", 2, "strict", 60]);
  const log = readLog(join(out, "log.jsonl"));
  const losses = log.flatMap((e) => (e.kind === "train" ? [e.loss] : []));
  assert.ok(losses[losses.length - 1] < losses[0] - 1, `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  assert.equal(log.flatMap((e) => (e.kind === "valid" ? [e.step] : [])), [30, 60]);
});

test("the exported model directory is kind markov and translates with greedy and beam search", async () => {
  const dir = loadModelDir(join(out, "model"));
  assert.is(dir.config.kind, "markov");
  assert.ok(dir.model instanceof MarkovTransformer);
  const m = dir.model as MarkovTransformer;
  assert.equal([m.config.order, m.config.variant], [2, "strict"]);
  for (const beam of [1, 3]) {
    const { translations } = await translateLines({ model: m, tokenizer: dir.tokenizer }, ["der hund läuft im park .", "eine frau schläft ."], { beam });
    assert.is(translations.length, 2);
    for (const t of translations) assert.ok(t.length > 0, `beam ${beam}: an empty translation`);
  }
  m.dispose();
});

test.run();
