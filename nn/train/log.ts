// log.jsonl: one JSON object per line, one line per logged training interval or validation.
//
// Lines are appended as they happen (a crash loses at most the line being written). On --resume
// the lines past the checkpoint's step are dropped first, since those steps are about to be
// trained again: the log of a resumed run then reads like the log of an uninterrupted one.
import { appendFileSync, existsSync, readFileSync } from "node:fs";
import { writeFileAtomic } from "../../core/index.ts";

export interface TrainEntry {
  kind: "train";
  step: number;
  epoch: number;
  loss: number; // mean label-smoothed loss per target token over the interval
  lr: number;
  gradNorm: number | null; // mean global gradient norm before clipping (null: not computed)
  tokens: number; // target tokens in the interval
  tokensPerSec: number;
  seconds: number; // wall time of the whole run so far
}

export interface ValidEntry {
  kind: "valid";
  step: number;
  loss: number; // label-smoothed, comparable with the training loss
  nll: number; // plain cross-entropy per token; perplexity = exp(nll)
  bleu: number | null; // null when no translate function was given
  bleuSentences: number;
  seconds: number;
}

export interface EventEntry {
  kind: "event";
  step: number;
  event: "start" | "resume" | "checkpoint" | "best" | "interrupted" | "done";
  detail?: string;
  seconds?: number;
}

export type LogEntry = TrainEntry | ValidEntry | EventEntry;

// Every entry of a log file; a torn last line (a crash mid-append) is skipped, a torn line
// elsewhere is an error naming it.
export function readLog(path: string): LogEntry[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, "utf8").split("\n");
  const out: LogEntry[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      out.push(JSON.parse(line) as LogEntry);
    } catch (e) {
      const last = lines.slice(i + 1).every((l) => l.trim() === "");
      if (!last) throw new Error(`${path}: line ${i + 1} is not JSON: ${(e as Error).message}`);
    }
  });
  return out;
}

export class TrainLog {
  readonly entries: LogEntry[];

  // Opens `path`, keeping only the entries up to `upToStep` (all when undefined; none for a
  // fresh run, which passes -1 and so starts the file over).
  constructor(readonly path: string, upToStep?: number) {
    const old = readLog(path);
    this.entries = upToStep === undefined ? old : old.filter((e) => e.step <= upToStep);
    if (upToStep !== undefined) writeFileAtomic(path, this.entries.map((e) => JSON.stringify(e) + "\n").join(""));
  }

  append(e: LogEntry): void {
    this.entries.push(e);
    appendFileSync(this.path, JSON.stringify(e) + "\n");
  }
}

// 42s, 3m05s, 1h23m: durations in messages and progress lines.
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "?";
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(s / 3600);
  return `${h}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
