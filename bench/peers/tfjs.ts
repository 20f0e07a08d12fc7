// @tensorflow/tfjs-backend-wasm 4.22 (SIMD build; Node runs it single-threaded).
import { dirname } from "node:path";
import { peerRequire } from "./load.ts";
import type { PeerOrSkip } from "./types.ts";

export async function tfjsWasm(): Promise<PeerOrSkip> {
  const r = peerRequire("@tensorflow/tfjs-backend-wasm");
  if ("skip" in r) return r;
  const tf = r.require("@tensorflow/tfjs-core");
  const wasm = r.require("@tensorflow/tfjs-backend-wasm");
  // Emscripten reads the .wasm from this directory when given a file path
  wasm.setWasmPaths(dirname(r.require.resolve("@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm")) + "/");
  if (!(await tf.setBackend("wasm"))) return { skip: "tfjs could not initialise its wasm backend" };
  await tf.ready();
  const simd = tf.env().getBool("WASM_HAS_SIMD_SUPPORT");
  const mt = tf.env().getBool("WASM_HAS_MULTITHREAD_SUPPORT");
  return {
    name: `tfjs-wasm ${tf.version_core}${simd ? " simd" : ""}${mt ? " mt" : " 1t"}`,
    async setup(M, K, N, A, B) {
      const a = tf.tensor2d(A, [M, K]);
      const b = tf.tensor2d(B, [K, N]);
      let c: { dataSync(): Float32Array; dispose(): void } | null = null;
      return {
        run() {
          c?.dispose();
          c = tf.matMul(a, b); // the wasm backend computes eagerly and synchronously
        },
        async result() {
          return Float32Array.from(c!.dataSync());
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
