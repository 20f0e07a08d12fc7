// maskedCrossEntropy: label-smoothed XE over the masked, non-padding positions only (the CMLM
// loss), against its definition; no mask is crossEntropy; gradients vanish off the mask.
import fc from "fast-check";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { crossEntropy, Generator, setBackend, tensor } from "../../../core/index.ts";
import { maskedCrossEntropy } from "../../../nn/index.ts";
import { close, logSoftmax64, randomLogits, randomTarget } from "./ref.ts";

const t = suite("losses/masked-xe");
const FC = { seed: 2019, numRuns: 50 };
const PAD = 0;

t.before(async () => {
  await setBackend("cpu");
});

t("equals label-smoothed XE summed over masked non-padding positions (mean, sum, none)", () => {
  const batch = fc.record({ B: fc.integer({ min: 1, max: 3 }), N: fc.integer({ min: 1, max: 6 }), V: fc.integer({ min: 2, max: 8 }), seed: fc.nat(), ls: fc.constantFrom(0, 0.1, 0.3), float: fc.boolean() });
  fc.assert(fc.property(batch, ({ B, N, V, seed, ls, float }) => {
    const z = randomLogits([B, N, V], seed);
    const { ids, t: y } = randomTarget(B, N, V, seed + 1, PAD, 1, 0);
    const g = new Generator(seed + 2);
    const m = Array.from({ length: B * N }, () => (g.random() < 0.5 ? 1 : 0));
    const mask = float ? tensor(Float32Array.from(m), { shape: [B, N] }) : tensor(Int32Array.from(m), { shape: [B, N], dtype: "int32" });
    const lp = logSoftmax64(z.dataSync(), B * N, V);
    const per = ids.map((tok, r) => {
      if (!m[r] || tok === PAD) return 0;
      let smooth = 0;
      for (let v = 0; v < V; v++) smooth -= lp[r * V + v] / V;
      return (1 - ls) * -lp[r * V + tok] + ls * smooth;
    });
    const count = ids.filter((tok, r) => m[r] && tok !== PAD).length;
    const total = per.reduce((a, b) => a + b, 0);
    const o = { mask, ignoreIndex: PAD, labelSmoothing: ls };
    const none = Array.from(maskedCrossEntropy(z, y, { ...o, reduction: "none" }).dataSync());
    const mean = maskedCrossEntropy(z, y, o).item();
    return none.every((v, r) => close(v, per[r], 1e-5)) && close(maskedCrossEntropy(z, y, { ...o, reduction: "sum" }).item(), total, 1e-5)
      && (count === 0 ? Number.isNaN(mean) : close(mean, total / count, 1e-5));
  }), FC);
});

t("without a mask it is crossEntropy; gradients are zero at unmasked positions", () => {
  const z = randomLogits([2, 4, 5], 3);
  const { t: y } = randomTarget(2, 4, 5, 4, PAD, 1, 4);
  assert.is(maskedCrossEntropy(z, y, { ignoreIndex: PAD, labelSmoothing: 0.1 }).item(), crossEntropy(z, y, { ignoreIndex: PAD, labelSmoothing: 0.1 }).item());
  const mask = tensor([[1, 0, 0, 1], [0, 1, 0, 0]]);
  maskedCrossEntropy(z, y, { mask, ignoreIndex: PAD, labelSmoothing: 0.1 }).backward();
  const grad = z.grad!.dataSync(), m = [1, 0, 0, 1, 0, 1, 0, 0];
  m.forEach((on, r) => assert.is(grad.subarray(r * 5, r * 5 + 5).some((x) => x !== 0), on === 1, `row ${r}`));
});

t("bad input is refused with a clear message", () => {
  const z = randomLogits([2, 3, 4], 1);
  const y = tensor(Int32Array.from([1, 2, 3, 1, 2, 0]), { shape: [2, 3], dtype: "int32" });
  assert.throws(() => maskedCrossEntropy(z, y, { mask: tensor([1, 0, 1]) }), /mask \[3\] must have target's shape \[2,3\]/);
  assert.throws(() => maskedCrossEntropy(z, tensor([[1, 2, 3], [1, 2, 0]]), { mask: tensor([[1, 0, 1], [1, 1, 1]]) }), /target must be int32/);
  assert.throws(() => maskedCrossEntropy(z, y, { ignoreIndex: 0.5 }), /ignoreIndex must be an integer/);
  assert.throws(() => maskedCrossEntropy(z, y, { labelSmoothing: 2 }), /labelSmoothing must be in \[0, 1\]/);
});

t.run();
