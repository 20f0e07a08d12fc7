// @jax-js/jax on its "wasm" device. Its worker pool needs a browser Worker, which Node does not
// have, so in Node it computes on the calling thread.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { peerRequire } from "./load.ts";
import type { PeerOrSkip } from "./types.ts";

export async function jaxWasm(): Promise<PeerOrSkip> {
  const r = peerRequire("@jax-js/jax");
  if ("skip" in r) return r;
  const jax = r.require("@jax-js/jax");
  const version = JSON.parse(readFileSync(join(dirname(r.require.resolve("@jax-js/jax")), "..", "package.json"), "utf8")).version;
  const devices: string[] = await jax.init("wasm");
  if (!devices.includes("wasm")) return { skip: `jax-js found no wasm device (got ${devices.join(", ")})` };
  jax.defaultDevice("wasm");
  const np = jax.numpy;
  return {
    name: `jax-js ${version} wasm`,
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
