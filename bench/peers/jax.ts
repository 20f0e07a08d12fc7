// @jax-js/jax on its "wasm" device. Its worker pool needs a browser Worker, which Node does not
// have, so in Node it computes on the calling thread.
import { loadJax } from "./lm-jax.ts";
import type { PeerOrSkip } from "./types.ts";

export async function jaxWasm(): Promise<PeerOrSkip> {
  const loaded = await loadJax();
  if ("skip" in loaded) return loaded;
  const np = loaded.jax.numpy;
  return {
    name: loaded.label,
    async setup(M, K, N, A, B) {
      const a = np.array(A, { shape: [M, K] });
      const b = np.array(B, { shape: [K, N] });
      let c: { data(): Promise<Float32Array>; dispose(): void; blockUntilReady(): Promise<unknown> } | null = null;
      return {
        async run() {
          c?.dispose();
          c = np.matmul(a.ref, b.ref); // .ref: keep a and b alive (jax-js moves arguments)
          await c!.blockUntilReady();
        },
        async result() {
          const x = c!;
          c = null;
          return Float32Array.from(await x.data()); // data() consumes the array
        },
        dispose() {
          c?.dispose();
          a.dispose();
          b.dispose();
        },
      };
    },
  };
}
