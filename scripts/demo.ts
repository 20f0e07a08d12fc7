// `npm start`: a short tour of Hasten's tensors and gradients. (The translation demo replaces this
// once a trained model ships in models/.)
import { crossEntropy, manualSeed, randn, tensor, tidy, getBackend } from "../core/index.ts";

manualSeed(0);
console.log(`backend: ${getBackend().name}`);

// y = Σ softmax(x·W) ⊙ x — a gradient flows back to both x and W.
const x = tensor([[1, 2, 3], [4, 5, 6]], { requiresGrad: true });
const W = randn([3, 3], { requiresGrad: true });
const y = x.matmul(W).softmax(-1).mul(x).sum();
y.backward();
console.log("y      =", y.item().toFixed(4));
console.log("dy/dx  =", x.grad!.toArray());

// Fit a linear classifier with plain gradient descent; tidy() frees each step's tensors.
const data = randn([64, 4]);
const labels = tensor(Array.from(data.argmax(1).dataSync()), { dtype: "int32" }); // class = largest feature
const w = randn([4, 4], { std: 0.1, requiresGrad: true });
for (let step = 0; step <= 200; step++) {
  w.zeroGrad();
  const loss = tidy(() => {
    const l = crossEntropy(data.matmul(w), labels);
    l.backward();
    return l.item();
  });
  tidy(() => w.assign_(w.sub(w.grad!.mul(0.5)).detach()));
  if (step % 50 === 0) console.log(`step ${String(step).padStart(3)}  loss ${loss.toFixed(4)}`);
}
const acc = data.matmul(w).argmax(1).eq(labels).mean().item();
console.log(`train accuracy ${(acc * 100).toFixed(1)}%`);
