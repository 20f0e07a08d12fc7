// The shipped baseline still loads and still translates: a change to core, nn or decoding that
// breaks it (weights, tokenizer, decoding) fails here, not in a user's `npm start`.
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { translateLines } from "../../decoding/index.ts";
import { findDataDir, isEncoderDecoder, loadModelDir, multi30kFiles, readLines, type EncoderDecoderModel, type ModelDir } from "../../nn/index.ts";
import { corpusBleu } from "../../nn/metrics/bleu.ts";
import { skipTest } from "../helpers/skip.ts";

const t = suite("shipped model");
const asTranslator = (m: ModelDir): ModelDir<EncoderDecoderModel> => {
  assert.ok(isEncoderDecoder(m.model));
  return m as ModelDir<EncoderDecoderModel>;
};
const dir = fileURLToPath(new URL("../../models/ar-de-en", import.meta.url));

t("models/ar-de-en loads and translates a sentence", async () => {
  const m = asTranslator(loadModelDir(dir));
  assert.is(m.config.src, "de");
  assert.is(m.config.kind, "transformer");
  const { translations } = await translateLines(m, ["Zwei Hunde spielen im Schnee."], { beam: 1 });
  assert.match(translations[0], /dogs/i);
  assert.match(translations[0], /snow/i);
});

const data = findDataDir();
if (!data) skipTest(t, "greedy BLEU on the first 100 test2016 sentences", "no DATA_DIR with multi30k (the BLEU check needs the test set)");
else t("greedy BLEU on the first 100 test2016 sentences stays where it was measured", async () => {
  const m = asTranslator(loadModelDir(dir));
  const f = multi30kFiles("test2016", "de", "en", data!);
  const src = readLines(f.src).slice(0, 100), ref = readLines(f.tgt).slice(0, 100);
  const { translations } = await translateLines(m, src, { beam: 1 });
  const bleu = corpusBleu(translations, [ref]).score;
  // Measured 38.78 greedy on all 1000; a drop below 30 on these 100 means something broke.
  assert.ok(bleu > 30, `BLEU ${bleu.toFixed(2)} on 100 test sentences`);
});

t.run();
