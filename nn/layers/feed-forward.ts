// The position-wise feed-forward block: Linear(D → F) · activation · dropout · Linear(F → D).
import type { Generator, Tensor } from "../../core/index.ts";
import { Module } from "../module.ts";
import { Dropout } from "./dropout.ts";
import { Linear } from "./linear.ts";

export type Activation = "relu" | "gelu";

export class FeedForward extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;
  readonly activation: Activation;

  constructor(dModel: number, ffn: number, opts: { activation?: Activation; dropout?: number; generator?: Generator; dropoutGenerator?: Generator } = {}) {
    super();
    this.activation = opts.activation ?? "relu";
    if (this.activation !== "relu" && this.activation !== "gelu") throw new Error(`FeedForward: activation must be "relu" or "gelu", got ${String(this.activation)}`);
    this.fc1 = this.registerModule("fc1", new Linear(dModel, ffn, { generator: opts.generator }));
    this.fc2 = this.registerModule("fc2", new Linear(ffn, dModel, { generator: opts.generator }));
    this.drop = this.registerModule("drop", new Dropout(opts.dropout ?? 0, opts.dropoutGenerator));
  }

  // x: [..., D] → [..., D]
  forward(x: Tensor): Tensor {
    const h = this.fc1.forward(x); // [..., F]
    const a = this.activation === "gelu" ? h.gelu() : h.relu();
    return this.fc2.forward(this.drop.forward(a));
  }
}
