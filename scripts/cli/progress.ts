// Progress on stderr: a bar redrawn in place on a terminal, plain lines otherwise (logs, CI).
//
//   step 1200/20000 [###.............]  6.0% ep 3 | loss 4.213 | 5,310 tok/s | lr 7.0e-4 | ETA 2h05m
import { formatDuration, type TrainEvent } from "../../nn/index.ts";

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressFields {
  step: number;
  epoch: number;
  loss: number;
  tokensPerSec: number;
  lr: number;
  etaSec: number | null;
}

export class Progress {
  readonly mode: "bar" | "lines" | "none";
  private lastDraw = 0;
  private drawn = false;
  private total: number;

  // mode "auto": a bar when the stream is a terminal, lines otherwise.
  constructor(private readonly stream: ProgressStream, mode: "auto" | "bar" | "lines" | "none", total = 0) {
    this.mode = mode === "auto" ? (stream.isTTY ? "bar" : "lines") : mode;
    this.total = total;
  }

  // Draws a training run's events: lines at each logged interval, a bar in between.
  onEvent(e: TrainEvent): void {
    if (e.type === "start") {
      this.total = e.totalSteps;
      this.message(e.text);
    } else if (e.type === "message") this.message(e.text);
    else if (e.logged) this.update(e, true);
    else if (this.mode === "bar") this.update(e);
  }

  private text(f: ProgressFields): string {
    const pct = this.total > 0 ? Math.min(1, f.step / this.total) : 0;
    const head = this.total > 0 ? `step ${f.step}/${this.total}` : `step ${f.step}`;
    const width = 16;
    const bar = this.mode === "bar" && this.total > 0 ? ` [${"#".repeat(Math.round(pct * width)).padEnd(width, ".")}] ${(pct * 100).toFixed(1).padStart(5)}%` : "";
    const tps = Math.round(f.tokensPerSec).toLocaleString("en-US");
    const eta = f.etaSec === null ? "" : ` | ETA ${formatDuration(f.etaSec)}`;
    return `${head}${bar} ep ${f.epoch} | loss ${f.loss.toFixed(3)} | ${tps} tok/s | lr ${f.lr.toExponential(1)}${eta}`;
  }

  // Bar mode: redraw (at most 10 times a second unless `force`). Lines mode: the caller calls it
  // once per log interval and each call prints a line.
  update(f: ProgressFields, force = false): void {
    if (this.mode === "none") return;
    if (this.mode === "lines") {
      this.stream.write(this.text(f) + "\n");
      return;
    }
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    let line = this.text(f);
    const cols = this.stream.columns ?? 120;
    if (line.length > cols - 1) line = line.slice(0, cols - 1);
    this.stream.write(`\r\x1b[2K${line}`);
    this.drawn = true;
  }

  // A message on its own line (validation results, checkpoints); the bar is redrawn below it.
  message(text: string): void {
    if (this.mode === "none") return;
    if (this.mode === "bar" && this.drawn) this.stream.write("\r\x1b[2K");
    this.stream.write(text + "\n");
    this.drawn = false;
    this.lastDraw = 0;
  }

  done(): void {
    if (this.mode === "bar" && this.drawn) this.stream.write("\n");
    this.drawn = false;
  }
}
