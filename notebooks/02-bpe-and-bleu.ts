// Notebook 02 — from text to token ids and back, and how translations are scored.
// Run: npx tsx notebooks/02-bpe-and-bleu.ts
//
// Byte-pair encoding starts from characters and repeatedly merges the most frequent adjacent
// pair into a new token, so frequent words become one token and rare words split into pieces.
// Hasten's BPE falls back to bytes for characters it never saw, so no text is ever lost:
// decode(encode(s)) === normalize(s) for any string.
import { BpeTokenizer, findDataDir, multi30kFiles, readLines } from "../nn/index.ts";
import { corpusBleu, formatBleu } from "../nn/metrics/bleu.ts";

const dir = findDataDir();
const corpus = dir
  ? [...readLines(multi30kFiles("train", "de", "en", dir).src).slice(0, 2000), ...readLines(multi30kFiles("train", "de", "en", dir).tgt).slice(0, 2000)]
  : ["Ein Mann fährt Fahrrad.", "A man rides a bicycle.", "Zwei Hunde spielen im Schnee.", "Two dogs play in the snow."];

for (const vocabSize of [400, 1000, 3000]) {
  const tok = BpeTokenizer.train(corpus, { vocabSize });
  const s = "Ein kleiner Junge spielt mit einem Zebra-Spielzeug im Garten.";
  const ids = tok.encode(s);
  const pieces = ids.map((i) => tok.idToToken(i));
  console.log(`vocab ${String(tok.vocabSize).padStart(4)}: ${ids.length} tokens  ${pieces.join(" ")}`);
  if (tok.decode(ids) !== s) throw new Error("round trip failed");
}

// BLEU compares n-gram overlap (n = 1..4) of the hypotheses with references, over the whole
// corpus, times a brevity penalty for hypotheses shorter than the references. SacreBLEU fixes
// the tokenisation (13a) so that scores are comparable between papers; Hasten's matches it.
const refs = ["A man is riding a bicycle on the street.", "Two dogs are playing in the snow."];
for (const hyps of [refs, ["A man rides a bike on the street.", "Two dogs play in snow."], ["A man.", "Dogs."]]) {
  console.log(formatBleu(corpusBleu(hyps, [refs])), "←", JSON.stringify(hyps));
}
