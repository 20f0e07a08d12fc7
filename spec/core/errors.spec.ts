// Bad input is rejected with a message that names the op and the values.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import * as C from "../../core/index.ts";
import { testBackends } from "../helpers/backends.ts";

const t = suite("errors");
const { tensor, randn, zeros } = C;

const cases: [string, () => unknown, RegExp][] = [
  ["broadcast", () => randn([2, 3]).add(randn([4])), /add: shapes \[2,3\] and \[4\] cannot be broadcast/],
  ["matmul inner", () => randn([2, 3]).matmul(randn([4, 5])), /matmul: inner dimensions differ: \[2,3\] @ \[4,5\]/],
  ["matmul scalar", () => randn([]).matmul(randn([2])), /matmul: scalars/],
  ["matmul int", () => tensor([[1]], { dtype: "int32" }).matmul(randn([1, 1])), /matmul: expected float32/],
  ["reshape", () => randn([2, 3]).reshape(4, 2), /reshape: \[2,3\] \(6 elements\) cannot become \[4,2\]/],
  ["reshape -1", () => randn([2, 3]).reshape(4, -1), /cannot infer -1/],
  ["dim range", () => randn([2, 3]).sum(2), /sum: dim 2 out of range for a tensor with 2 dims/],
  ["repeated dim", () => randn([2, 3]).sum([1, -1]), /repeated dim/],
  ["permute", () => randn([2, 3]).permute(0, 0), /not a permutation/],
  ["expand", () => randn([2, 3]).expand(4, 3), /expand: cannot expand \[2,3\] to \[4,3\]/],
  ["narrow", () => randn([2, 3]).narrow(1, 2, 2), /narrow: range \[2, 4\) out of bounds/],
  ["cat", () => C.cat([randn([2, 3]), randn([3, 3])], 1), /cat: shapes must match except in dim 1/],
  ["split", () => randn([5]).split([2, 2]), /split: sizes \[2,2\] sum to 4/],
  ["pad", () => randn([2]).pad([1]), /pad: expected an even number/],
  ["gather dtype", () => randn([2, 3]).gather(1, randn([2, 1])), /gather: index must be int32/],
  ["gather range", () => randn([2, 3]).gather(1, tensor([[5], [0]], { dtype: "int32" })), /gather: index 5 out of range \[0, 3\)/],
  ["indexSelect", () => randn([2, 3]).indexSelect(0, tensor([2], { dtype: "int32" })), /indexSelect: index 2 out of range/],
  ["scatterAdd range", () => randn([2, 3]).scatterAdd(1, tensor([[1], [-1]], { dtype: "int32" }), randn([2, 1])), /scatterAdd: index -1 out of range \[0, 3\)/],
  ["oneHot range", () => C.oneHot(tensor([0, 3, 1], { dtype: "int32" }), 3), /oneHot: id 3 at position 1 is outside \[0, 3\)/],
  ["oneHot negative, 2-D", () => C.oneHot(tensor([[0, 1], [-2, 0]], { dtype: "int32" }), 5), /oneHot: id -2 at \[1,0\] is outside \[0, 5\)/],
  ["oneHot numClasses", () => C.oneHot(tensor([0], { dtype: "int32" }), 0), /oneHot: numClasses must be a positive integer, got 0/],
  ["embedding", () => C.embedding(randn([4]), tensor([1], { dtype: "int32" })), /embedding: weight must be \[V, D\]/],
  ["crossEntropy shape", () => C.crossEntropy(randn([3, 4]), tensor([1, 2], { dtype: "int32" })), /crossEntropy: logits \[3,4\] must be target's shape \[2\]/],
  ["crossEntropy dtype", () => C.crossEntropy(randn([2, 4]), randn([2])), /target must be int32/],
  ["crossEntropy target", () => C.crossEntropy(randn([1, 4]), tensor([7], { dtype: "int32" })), /target 7 out of range \[0, 4\)/],
  ["crossEntropy smoothing", () => C.crossEntropy(randn([1, 4]), tensor([1], { dtype: "int32" }), { labelSmoothing: 2 }), /labelSmoothing must be in \[0, 1\]/],
  ["layerNorm", () => C.layerNorm(randn([2, 3]), C.ones([4]), C.zeros([4])), /layerNorm: input \[2,3\] does not end with the normalised shape \[4\]/],
  ["layerNorm eps", () => C.layerNorm(randn([2, 4]), C.ones([4]), C.zeros([4]), 0), /eps must be > 0/],
  ["dropout p", () => C.dropout(randn([2]), 1), /dropout: p must be in \[0, 1\)/],
  ["ragged", () => tensor([[1, 2], [3]]), /ragged nested array/],
  ["shape size", () => tensor([1, 2, 3], { shape: [2, 2] }), /shape \[2,2\] needs 4 values, got 3/],
  ["int32 values", () => tensor([1.5], { dtype: "int32" }), /int32 needs 32-bit integers, got 1.5/],
  ["dtype", () => tensor([1], { dtype: "float64" as never }), /unknown dtype "float64"/],
  ["negative dim", () => zeros([2, -1]), /invalid shape/],
  ["item", () => randn([2]).item(), /item: expected a tensor with one element, got shape \[2\]/],
  ["scalar NaN", () => randn([2]).add(NaN), /add: expected a number or a Tensor, got NaN/],
  ["clamp", () => randn([2]).clamp(1, 0), /clamp: min 1 > max 0/],
  ["backend", () => C.setBackend("nope"), /unknown backend "nope"/],
];
cases.push(["mixed backends", () => {
  const a = tensor([1, 2], { backend: C.setBackend("cpu") as C.Backend });
  const b = tensor([1, 2], { backend: C.setBackend("wasm") as C.Backend });
  C.setBackend("wasm");
  return a.add(b);
}, /add: tensors live on different backends \("cpu" and "wasm"\)/]);
for (const [name, fn, re] of cases) t(name, () => assert.throws(fn as () => void, re));

// On every backend: a synchronous one refuses an out-of-range oneHot id; a GPU backend (which
// cannot read the ids inside a synchronous op) gives that row NaN — never a silent row of zeros.
t("oneHot out of range on every backend: an error, or a NaN row on GPU backends", async () => {
  for (const { cfg, backend } of await testBackends()) {
    const ids = tensor([2, 7, 0], { dtype: "int32", backend });
    if (backend.sync) {
      assert.throws(() => C.oneHot(ids, 4), /oneHot: id 7 at position 1 is outside \[0, 4\)/, cfg.label);
      continue;
    }
    const got = Array.from(await C.oneHot(ids, 4).data());
    assert.equal(got.slice(0, 4), [0, 0, 1, 0], cfg.label);
    assert.ok(got.slice(4, 8).every(Number.isNaN), `${cfg.label}: ${got}`);
    assert.equal(got.slice(8), [1, 0, 0, 0], cfg.label);
  }
});

t.run();
