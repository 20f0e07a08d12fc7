// Shared by the spec/nn/train-*.spec.ts files: a tiny German–English corpus written to a temp
// folder, and the flags of a model small enough that a dozen updates take well under a second.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";


const SUBJ: [string, string][] = [["der hund", "the dog"], ["die katze", "the cat"], ["ein mann", "a man"], ["eine frau", "a woman"], ["das kind", "the child"]];
const VERB: [string, string][] = [["läuft", "runs"], ["schläft", "sleeps"], ["spielt", "plays"], ["isst", "eats"]];
const PLACE: [string, string][] = [["im park", "in the park"], ["am strand", "on the beach"], ["zu hause", "at home"], ["", ""]];

// Deterministic sentence pairs: subject × verb × place, in a fixed scrambled order.
export function tinyPairs(n: number, offset = 0): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < n; i++) {
    const k = (i + offset) * 7919;
    const s = SUBJ[k % 5], v = VERB[(k >> 3) % 4], p = PLACE[(k >> 5) % 4];
    out.push([`${s[0]} ${v[0]} ${p[0]}`.trim() + " .", `${s[1]} ${v[1]} ${p[1]}`.trim() + " ."]);
  }
  return out;
}

// A temp folder with train.de/en (40 pairs) and valid.de/en (8 pairs); returns its path.
export function tinyCorpus(opts: { train?: number; valid?: number } = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "hasten-train-"));
  const write = (split: string, pairs: [string, string][]) => {
    writeFileSync(join(dir, `${split}.de`), pairs.map((p) => p[0]).join("\n") + "\n");
    writeFileSync(join(dir, `${split}.en`), pairs.map((p) => p[1]).join("\n") + "\n");
  };
  write("train", tinyPairs(opts.train ?? 40));
  write("valid", tinyPairs(opts.valid ?? 8, 1000));
  return dir;
}

// The temp folders a spec file made, removed by its test.after hook.
export class TempCorpora {
  private readonly dirs: string[] = [];
  make(opts: { train?: number; valid?: number } = {}): string {
    const d = tinyCorpus(opts);
    this.dirs.push(d);
    return d;
  }
  add(dir: string): string {
    this.dirs.push(dir);
    return dir;
  }
  remove(): void {
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  }
}

// Settings of a tiny model; `data` and `out` still to be given.
export const TINY: Record<string, string | number | boolean> = {
  vocabSize: 320, dModel: 16, heads: 2, ffn: 32, encLayers: 1, decLayers: 1, maxLen: 64, maxSentenceTokens: 30,
  maxTokens: 96, lr: 3e-3, warmup: 4, dropout: 0.1, logEvery: 1, evalEvery: 0, checkpointEvery: 0, validBleuLimit: 4,
  maxSteps: 12, seed: 3, backend: "cpu", // cpu, whatever backend an earlier spec file selected
};

// TINY as command-line flags (and --progress=none unless `extra` says otherwise).
export function tinyFlags(extra: Record<string, string | number | boolean> = {}): string[] {
  return Object.entries({ ...TINY, progress: "none", ...extra }).map(([k, v]) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}=${v}`);
}
