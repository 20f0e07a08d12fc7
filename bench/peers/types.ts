// What bench/matmul.ts needs from a peer library: set up C = A·B on given inputs, run it
// (synchronously or not), read the result back for a sanity check, and free it.

export interface MatmulRunner {
  /** One C = A·B, complete when it returns (or resolves). */
  run(): void | Promise<void>;
  /** The last result as a row-major M×N array. */
  result(): Promise<Float32Array>;
  dispose(): void;
}

export interface Peer {
  name: string;
  setup(M: number, K: number, N: number, A: Float32Array, B: Float32Array): Promise<MatmulRunner>;
}

/** A peer, or why it cannot run here. */
export type PeerOrSkip = Peer | { skip: string };
