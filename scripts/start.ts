// `npm start`: the main job. Translates German sentences with the shipped baseline
// (models/ar-de-en), prints them beside the references, SacreBLEU on those sentences and the
// decoding speed. Without a shipped model it runs the tensor demo instead.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { getBackend } from "../core/index.ts";
import { translateLines } from "../decoding/index.ts";
import { findDataDir, isEncoderDecoder, loadModelDir, multi30kFiles, readLines, type EncoderDecoderModel, type ModelDir } from "../nn/index.ts";
import { corpusBleu, formatBleu } from "../nn/metrics/bleu.ts";

const MODEL = fileURLToPath(new URL("../models/ar-de-en", import.meta.url));
const FALLBACK = [
  ["Ein Mann fährt Fahrrad auf einer Straße.", "A man rides a bicycle on a street."],
  ["Zwei Hunde spielen im Schnee.", "Two dogs are playing in the snow."],
  ["Eine Frau in einem roten Kleid singt auf einer Bühne.", "A woman in a red dress sings on a stage."],
  ["Kinder spielen Fußball auf einem Feld.", "Children are playing soccer on a field."],
];

async function main(): Promise<void> {
  if (!existsSync(`${MODEL}/config.json`)) {
    console.log("No trained model in models/ar-de-en yet: running the tensor demo.\n");
    await import("./demo.ts");
    return;
  }
  const loaded = loadModelDir(MODEL);
  if (!isEncoderDecoder(loaded.model)) throw new Error(`${MODEL} is not a translation model`);
  const m = loaded as ModelDir<EncoderDecoderModel>;
  const d = (k: string) => m.config.decoding[k] as number;
  try {
    const n = Number(process.env.N ?? 200);
    const dir = findDataDir();
    let pairs: string[][];
    let source: string;
    if (dir) {
      const f = multi30kFiles("test2016", m.config.src ?? "de", m.config.tgt ?? "en", dir);
      const src = readLines(f.src), tgt = readLines(f.tgt);
      pairs = src.slice(0, n).map((s, i) => [s, tgt[i]]);
      source = `the first ${pairs.length} sentences of Multi30k test2016`;
    } else {
      pairs = FALLBACK;
      source = `${pairs.length} built-in sentences (no DATA_DIR found)`;
    }
    console.log(`Hasten ${m.config.src}→${m.config.tgt} baseline (${(m.model.numParameters() / 1e6).toFixed(2)}M parameters), backend ${getBackend().name}, ${source}\n`);
    const srcLines = pairs.map((p) => p[0]);
    for (const [label, beam] of [["greedy", 1], [`beam ${d("beam")}`, d("beam")]] as const) {
      const t0 = performance.now();
      const { translations } = await translateLines(m, srcLines, { beam, lengthPenalty: d("lengthPenalty"), maxLenA: d("maxLenA"), maxLenB: d("maxLenB") });
      const secs = (performance.now() - t0) / 1000;
      if (label === "greedy") {
        for (let i = 0; i < Math.min(4, pairs.length); i++) console.log(`  de:  ${pairs[i][0]}\n  en:  ${translations[i]}\n  ref: ${pairs[i][1]}\n`);
      }
      const bleu = corpusBleu(translations, [pairs.map((p) => p[1])]);
      console.log(`${label.padEnd(7)} ${formatBleu(bleu)}  |  ${(pairs.length / secs).toFixed(1)} sentences/s`);
    }
  } finally {
    m.model.dispose(); // every tensor freed explicitly: nothing is left to the collector
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exitCode = 1;
});
