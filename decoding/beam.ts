// Beam search, batched: B sentences × up to K live hypotheses share one decoder cache.
//
// Each step, for every sentence, the candidates are (hypothesis h, token v) with
//   score(h·v) = score(h) + log p(v | h, x)
// and the 2K best are ranked. Among the first K ranks, candidates ending in eos are finished and
// set aside; the first K that do not end in eos are the next live hypotheses (fairseq's scheme).
// The cache, memory and mask rows are then gathered by parent index.
// Step 0 starts from one row per sentence, so the beam never holds K copies of the same prefix.
//
// Length normalisation (fairseq's): a finished hypothesis of n tokens plus eos is ranked by
//   normScore = score / (n + 1)^α          α = lengthPenalty ≥ 0; α = 0 ranks by raw log-probability
// (GNMT's ((5 + len)/6)^α differs only by how fast the penalty grows; one is enough.)
//
// A sentence is done when
//   - K hypotheses have finished (fairseq's rule: the search is a heuristic anyway), or
//   - no live hypothesis can still beat the best finished one. Adding tokens only lowers a score
//     (log-probabilities are ≤ 0) and a finished length is at most maxOut + 1, so a live score s
//     can reach at most s / (maxOut + 1)^α (a safe bound for every α ≥ 0; tight, s itself,
//     for α = 0), or
//   - it reaches its length limit (eos is forced on every live hypothesis).
// With K = 1 this is exactly greedy decoding. With K > 1 it usually, but not always, finds a
// higher-scoring output than greedy: pruning can drop greedy's prefix, and stopping at K finished
// hypotheses can stop early (on tiny random models, K = 4, α = 0: below greedy in 15 of 1,200
// sentences, 9 of them without the K-finished rule). A beam wide enough never to prune is exact.
//
// The log-probabilities of all live rows [N, V] are read back each step and ranked on the host.
import type { EncoderDecoderModel } from "../nn/models/index.ts";
import { DecoderRows, inEvalMode, prepareSources, readAndDispose, type DecodeOptions, type Hypothesis, type SourceInput } from "./common.ts";

export interface BeamOptions extends DecodeOptions {
  beam?: number; // K, default 5
  lengthPenalty?: number; // α, default 1
  nBest?: number; // hypotheses returned per sentence by beamSearchNBest, default 1, at most K
}

export interface ScoredHypothesis extends Hypothesis {
  normScore: number; // score / (tokens.length + 1)^α: what the search ranks by
}

interface Live {
  sentence: number;
  tokens: number[];
  score: number;
}

// The best hypothesis of each sentence.
export async function beamSearch(model: EncoderDecoderModel, src: SourceInput, opts: BeamOptions = {}): Promise<ScoredHypothesis[]> {
  return (await search(model, src, { ...opts, nBest: 1 }, "beamSearch")).map((hs) => hs[0]);
}

// Up to nBest finished hypotheses of each sentence, best first.
export async function beamSearchNBest(model: EncoderDecoderModel, src: SourceInput, opts: BeamOptions = {}): Promise<ScoredHypothesis[][]> {
  return search(model, src, opts, "beamSearchNBest");
}

async function search(model: EncoderDecoderModel, src: SourceInput, opts: BeamOptions, who: string): Promise<ScoredHypothesis[][]> {
  const p = prepareSources(model, src, opts, who);
  const K = opts.beam ?? 5, alpha = opts.lengthPenalty ?? 1, nBest = opts.nBest ?? 1;
  if (!Number.isInteger(K) || K < 1) throw new Error(`${who}: beam must be an integer >= 1, got ${K}`);
  if (!(Number.isFinite(alpha) && alpha >= 0)) throw new Error(`${who}: lengthPenalty must be a finite number >= 0, got ${alpha}`);
  if (!Number.isInteger(nBest) || nBest < 1 || nBest > K) throw new Error(`${who}: nBest must be an integer in [1, beam = ${K}], got ${nBest}`);
  if (p.batch === 0) return [];
  const V = model.config.tgtVocab;
  const norm = (score: number, len: number) => (alpha === 0 ? score : score / Math.pow(len, alpha));
  const finished: ScoredHypothesis[][] = p.lengths.map(() => []);
  const best = new Array<number>(p.batch).fill(-Infinity); // best finished normScore per sentence
  const finish = (s: number, tokens: number[], score: number) => {
    const h = { tokens, score, normScore: norm(score, tokens.length + 1) };
    finished[s].push(h);
    if (h.normScore > best[s]) best[s] = h.normScore;
  };

  await inEvalMode(model, async () => {
    const rows = new DecoderRows(model, p);
    try {
      let live: Live[] = p.lengths.map((_, s) => ({ sentence: s, tokens: [], score: 0 }));
      for (let t = 0; live.length > 0; t++) {
        const last = Int32Array.from(live, (h) => (t === 0 ? p.bosId : h.tokens[t - 1]));
        const [lp] = await readAndDispose([rows.step(last, (x) => x)]); // [N, V]
        const next: Live[] = [], parents: number[] = [];
        for (let r0 = 0; r0 < live.length;) {
          const s = live[r0].sentence;
          let r1 = r0 + 1;
          while (r1 < live.length && live[r1].sentence === s) r1++;
          if (t >= p.maxOut[s]) {
            for (let r = r0; r < r1; r++) finish(s, live[r].tokens, live[r].score + lp[r * V + p.eosId]);
          } else {
            const start = next.length;
            const cand = topCandidates(lp as Float32Array, live, r0, r1, V, p.banned, 2 * K);
            for (let i = 0; i < cand.count && next.length - start < K; i++) {
              const r = cand.rows[i], v = cand.tokens[i], score = cand.scores[i];
              if (v === p.eosId) {
                if (i < K) finish(s, live[r].tokens, score);
              } else {
                next.push({ sentence: s, tokens: [...live[r].tokens, v], score });
                parents.push(r);
              }
            }
            const bound = Math.pow(p.maxOut[s] + 1, alpha); // the largest divisor a live hypothesis can reach
            let bestLive = -Infinity;
            for (let i = start; i < next.length; i++) bestLive = Math.max(bestLive, next[i].score / bound);
            if (finished[s].length >= K || next.length === start || best[s] >= bestLive) {
              next.length = start;
              parents.length = start;
            }
          }
          r0 = r1;
        }
        if (next.length === 0) break;
        rows.select(parents);
        live = next;
      }
    } finally {
      rows.dispose();
    }
  });
  finished.forEach((hs, s) => {
    if (hs.length === 0) throw new Error(`${who}: sentence ${s} finished no hypothesis (non-finite log-probabilities?)`);
  });
  // Stable sort: equal normScores keep the order in which they finished.
  return finished.map((hs) => hs.sort((a, b) => b.normScore - a.normScore).slice(0, nBest));
}

// The m best (row, token) candidates over rows [r0, r1) by live[row].score + lp[row, token],
// best first, banned tokens skipped. Ties keep scan order (lower row, then lower token), which
// makes K = 1 pick exactly the argmax greedy decoding picks.
function topCandidates(lp: Float32Array, live: Live[], r0: number, r1: number, V: number, banned: Uint8Array, m: number) {
  const scores = new Float64Array(m), rows = new Int32Array(m), tokens = new Int32Array(m);
  let count = 0;
  for (let r = r0; r < r1; r++) {
    const base = live[r].score, off = r * V;
    for (let v = 0; v < V; v++) {
      const x = base + lp[off + v];
      if ((count === m && !(x > scores[m - 1])) || banned[v]) continue;
      // Insertion into the sorted list; strictly-greater moves up, so ties stay in scan order.
      let j = count < m ? count++ : m - 1;
      while (j > 0 && scores[j - 1] < x) {
        scores[j] = scores[j - 1];
        rows[j] = rows[j - 1];
        tokens[j] = tokens[j - 1];
        j--;
      }
      scores[j] = x;
      rows[j] = r;
      tokens[j] = v;
    }
  }
  return { scores, rows, tokens, count };
}
