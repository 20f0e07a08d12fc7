// Notebook 04 — non-autoregressive translation and order-agnostic cross entropy (OAXE).
// Run: npx tsx notebooks/04-nat-oaxe.ts            (writes the cost-matrix picture to a temp file)
//
// A non-autoregressive model predicts every target position at once, each independently. Cross
// entropy (XE) then scores position i against reference token yᵢ. A model that says the right
// words in another order — "in the park a dog runs" for "a dog runs in the park" — is punished at
// almost every position, although the translation is nearly right, and training pushes it towards
// a blur of both orders. OAXE (Du, Tu & Jiang, ICML 2021) scores the predictions under the best
// one-to-one alignment of positions and reference tokens instead:
//
//   OAXE = min over permutations σ of  Σᵢ −log Pᵢ(y_σ(i))
//
// found with the Hungarian algorithm on the cost matrix C[i][j] = −log Pᵢ(yⱼ) in O(N³).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { crossEntropy, noGrad, setBackend, tensor, tidy } from "../core/index.ts";
import { BpeTokenizer, findDataDir, linearSumAssignment, loadModelDir, multi30kFiles, oaxeLoss, readParallel, type ModelDir, type NonAutoregressiveModel } from "../nn/index.ts";

setBackend("cpu");
const reference = "a dog runs in the park";
const predictedOrder = "in the park a dog runs"; // the same words, reordered
// The shipped baseline's vocabulary (8,000 BPE tokens): here every word is one token.
const tok = BpeTokenizer.load(fileURLToPath(new URL("../models/ar-de-en/tokenizer.json", import.meta.url)));
const y = tok.encode(reference);
const said = tok.encode(predictedOrder);
const N = y.length, V = tok.vocabSize;

// A model that is confident about the reordered sentence: position i gives 0.8 to said[i] and
// spreads the rest evenly.
const logits = new Float32Array(N * V);
for (let i = 0; i < N; i++) {
  for (let v = 0; v < V; v++) logits[i * V + v] = Math.log(0.2 / (V - 1));
  logits[i * V + said[i]] = Math.log(0.8);
}
const [xe, oaxe] = tidy(() => {
  const L = tensor(logits, { shape: [1, N, V] }), Y = tensor([Array.from(y)], { dtype: "int32" }); // [1, N, V], [1, N]
  return [crossEntropy(L, Y).item(), oaxeLoss(L, Y).item()];
});
console.log(`reference:  ${reference}\nprediction: ${predictedOrder} (each position 80% sure)\n`);
console.log(`XE   = ${xe.toFixed(3)} nats/token  (position by position: most positions are "wrong")`);
console.log(`OAXE = ${oaxe.toFixed(3)} nats/token  (= −ln 0.8 = ${(-Math.log(0.8)).toFixed(3)}: every word is found, in another place)\n`);

// The cost matrix and its best alignment.
const cost = Array.from({ length: N }, (_, i) => Array.from({ length: N }, (_, j) => -Math.log(Math.exp(logits[i * V + y[j]]))));
const sigma = linearSumAssignment(cost);
// A token as text, without the word-start mark.
const pieceOf = (tk: BpeTokenizer) => (id: number) => tk.idToToken(id).replace(/^▁/, "");
const piece = pieceOf(tok);
console.log("cost matrix −log Pᵢ(yⱼ) (rows: predicted positions, columns: reference tokens; * = the Hungarian alignment)");
console.log("        " + Array.from(y, (id) => piece(id).padStart(7)).join(""));
for (let i = 0; i < N; i++) {
  console.log(`${String(i).padStart(2)} ${piece(said[i]).padEnd(5)}` + cost[i].map((c, j) => `${c.toFixed(2)}${sigma[i] === j ? "*" : " "}`.padStart(7)).join(""));
}
console.log(`\nalignment σ = [${sigma.join(", ")}]: position i is scored against reference token σ(i)`);

// The same as a picture: darker = cheaper; the alignment is outlined.
const outDir = mkdtempSync(join(tmpdir(), "hasten-nb04-"));
function costPicture(file: string, title: string, cost: number[][], sigma: number[], cols: string[], rows: string[]): string {
  const cell = 48, pad = 90, n = cost.length;
  const max = Math.max(...cost.flat());
  const rects = cost.flatMap((row, i) => row.map((c, j) => {
    const shade = Math.round(40 + 200 * (c / max));
    const x = pad + j * cell, yy = pad + i * cell;
    return `<rect x="${x}" y="${yy}" width="${cell}" height="${cell}" fill="rgb(${shade},${shade},255)"${sigma[i] === j ? ' stroke="#d62728" stroke-width="4"' : ""}/>` +
      `<text x="${x + cell / 2}" y="${yy + cell / 2 + 4}" font-size="11" text-anchor="middle">${c.toFixed(1)}</text>`;
  }));
  const labels = [
    ...cols.map((w, j) => `<text x="${pad + j * cell + cell / 2}" y="${pad - 10}" font-size="12" text-anchor="middle">${w}</text>`),
    ...rows.map((w, i) => `<text x="${pad - 8}" y="${pad + i * cell + cell / 2 + 4}" font-size="12" text-anchor="end">${i}: ${w}</text>`),
  ];
  const W = pad + n * cell + 20;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${W + 20}"><text x="10" y="20" font-size="14">${title}</text>${rects.join("")}${labels.join("")}</svg>`;
  const out = join(outDir, file);
  writeFileSync(out, svg);
  return out;
}
console.log(`picture: ${costPicture("oaxe-cost-matrix.svg", "OAXE cost matrix −log Pᵢ(yⱼ) and its alignment", cost, sigma, Array.from(y, piece), Array.from(said, piece))}`);

// ---- 2. The same on one real sentence, with the shipped NAT model ----
// models/nat-de-en (a CMLM trained with XE, then fine-tuned with bigram-OAXE, OAXE over 2-token blocks) given a Multi30k
// validation source and the reference's length: one parallel pass over [MASK]s gives P_i for every
// position at once. The first validation sentence (≤ 10 tokens) whose best alignment is not the
// identity shows where the model put a word in another place than the reference does.
const natDir = fileURLToPath(new URL("../models/nat-de-en", import.meta.url));
const dataDir = findDataDir();
if (!existsSync(join(natDir, "config.json")) || !dataDir) console.log(`\n(skipping the real sentence: needs models/nat-de-en and the Multi30k data, DATA_DIR)`);
else {
  const md = loadModelDir(natDir) as ModelDir<NonAutoregressiveModel>;
  const m = md.model, t = md.tokenizer;
  const f = multi30kFiles("valid", "de", "en", dataDir);
  const pairs = readParallel(f.src, f.tgt);
  let shown = 0, nonIdentity = 0, scanned = 0;
  for (const p of pairs) {
    const src = t.encode(p.src), ref = t.encode(p.tgt);
    if (ref.length > 10 || scanned >= 200) continue;
    scanned++;
    const { C, xeT, oaxeT, argmax } = noGrad(() => tidy(() => {
      const S = tensor([Array.from(src)], { dtype: "int32" }); // [1, S]
      const Y = tensor([Array.from(ref)], { dtype: "int32" }); // [1, N]
      const dec = tensor([Array.from(ref, () => m.config.maskId)], { dtype: "int32" }); // [1, N] all [MASK]
      const L = m.forward(S, dec); // [1, N, V]
      const lp = L.logSoftmax(-1).dataSync();
      const n = ref.length, C: number[][] = [];
      const Vm = L.shape[2];
      for (let i = 0; i < n; i++) C.push(Array.from(ref, (yj) => -lp[i * Vm + yj]));
      return { C, xeT: crossEntropy(L, Y).item(), oaxeT: oaxeLoss(L, Y).item(), argmax: Array.from(L.argmax(-1).dataSync()) };
    }));
    const s2 = linearSumAssignment(C);
    if (s2.every((j, i) => j === i)) continue;
    nonIdentity++;
    if (shown++ > 0) continue;
    const piece2 = pieceOf(t);
    console.log(`\nreal sentence (valid): ${p.src}\nreference: ${p.tgt}\none pass (argmax per position, gold length): ${argmax.map(piece2).join(" ")}`);
    console.log(`XE = ${xeT.toFixed(3)}, OAXE = ${oaxeT.toFixed(3)} nats/token on this sentence`);
    console.log("        " + Array.from(ref, (id) => piece2(id).slice(0, 6).padStart(7)).join(""));
    for (let i = 0; i < C.length; i++) console.log(`${String(i).padStart(2)} ${piece2(argmax[i]).slice(0, 5).padEnd(5)}` + C[i].map((c, j) => `${c.toFixed(1)}${s2[i] === j ? "*" : " "}`.padStart(7)).join(""));
    console.log(`alignment σ = [${s2.join(", ")}]`);
    const esc = (w: string) => w.replace(/&/g, "&amp;").replace(/</g, "&lt;");
    console.log(`picture: ${costPicture("oaxe-real-sentence.svg", `models/nat-de-en on “${esc(p.src)}”: −log Pᵢ(yⱼ), alignment outlined`, C, s2, Array.from(ref, (id) => esc(piece2(id))), argmax.map((id) => esc(piece2(id))))}`);
  }
  console.log(`\nof the first ${scanned} validation sentences of ≤ 10 tokens, ${nonIdentity} have a best alignment other than the identity`);
  m.dispose();
}

// Why the recipe is XE first, then OAXE: from a random start every alignment is about equally
// cheap, so OAXE's argmin is arbitrary and the model can settle on any order; XE pre-training
// gives it the reference order to start from, and OAXE then stops punishing reorderings. Loss
// truncation drops aligned pairs the model finds very unlikely (p below `truncate`), which would
// otherwise dominate the gradient. The measured comparison of XE, AXE, OAXE and CTC on Multi30k
// is in the README's non-autoregressive section (`bash bench/nat-recipe.sh table`); its one-run
// record is committed in bench/results/, and here are its numbers.
{
  const rec = JSON.parse(readFileSync(fileURLToPath(new URL("../bench/results/nat-table-2026-12-01.json", import.meta.url)), "utf8")) as {
    machine: string; results: { label: string; decoder: string; bleu: number; latencyMs: number }[];
  };
  const ref = rec.results.find((r) => r.label === "AR beam 5")!;
  console.log(`\nMulti30k test2016, measured ${rec.machine}:`);
  for (const r of rec.results) {
    console.log(`  ${r.label.padEnd(40)} ${r.decoder.padEnd(36)} BLEU ${r.bleu.toFixed(2).padStart(5)}  ${r.latencyMs.toFixed(1).padStart(6)} ms  ${(ref.latencyMs / r.latencyMs).toFixed(1)}× AR beam 5`);
  }
}
