// The shipped baseline still loads and still translates: a change to core, nn or decoding that
// breaks it (weights, tokenizer, decoding) fails here, not in a user's `npm start`.
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { translateLines } from "../../decoding/index.ts";
import { findDataDir, loadModelDir, multi30kFiles, readLines } from "../../nn/index.ts";
import { corpusBleu } from "../../nn/metrics/bleu.ts";

const t = suite("shipped model");
const dir = fileURLToPath(new URL("../../models/ar-de-en", import.meta.url));

t("models/ar-de-en loads and translates a sentence", async () => {
  const m = loadModelDir(dir);
  assert.is(m.config.src, "de");
  const { translations } = await translateLines(m, ["Zwei Hunde spielen im Schnee."], { beam: 1 });
  assert.match(translations[0], /dogs/i);
  assert.match(translations[0], /snow/i);
});

t("greedy BLEU on the first 100 test2016 sentences stays where it was measured", async () => {
  const data = findDataDir();
  if (!data) {
    console.log("  SKIPPED: no DATA_DIR with multi30k (the BLEU check needs the test set)");
    return;
  }
  const m = loadModelDir(dir);
  const f = multi30kFiles("test2016", "de", "en", data);
  const src = readLines(f.src).slice(0, 100), ref = readLines(f.tgt).slice(0, 100);
  const { translations } = await translateLines(m, src, { beam: 1 });
  const bleu = corpusBleu(translations, [ref]).score;
  // Measured 38.78 greedy on all 1000; a drop below 30 on these 100 means something broke.
  assert.ok(bleu > 30, `BLEU ${bleu.toFixed(2)} on 100 test sentences`);
});

t.run();
