import { suite } from "uvu";
import * as assert from "uvu/assert";
import { noGrad, ones, randn, tensor, tidy, Generator, getBackend } from "../../core/index.ts";

const t = suite("autograd");

t("gradients accumulate across backward calls; zeroGrad clears", () => {
  const x = tensor([1, 2, 3], { requiresGrad: true });
  x.mul(x).sum().backward();
  x.mul(3).sum().backward();
  assert.equal(Array.from(x.grad!.dataSync()), [2 + 3, 4 + 3, 6 + 3]);
  x.zeroGrad();
  assert.is(x.grad, undefined);
});

t("a tensor used twice gets both contributions", () => {
  const x = tensor([2], { requiresGrad: true });
  const y = x.mul(x).add(x.exp()); // dy/dx = 2x + eˣ
  y.sum().backward();
  assert.ok(Math.abs(x.grad!.item() - (4 + Math.exp(2))) < 1e-4);
});

t("two leaves fed the same cotangent do not share a grad tensor", () => {
  const a = tensor([1, 2], { requiresGrad: true });
  const b = tensor([3, 4], { requiresGrad: true });
  a.add(b).sum().backward();
  assert.is.not(a.grad, b.grad);
  a.zeroGrad();
  assert.equal(Array.from(b.grad!.dataSync()), [1, 1]);
});

t("detach and noGrad stop gradients", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const y = x.detach().mul(2).add(x);
  assert.not.ok(x.detach().requiresGrad);
  y.sum().backward();
  assert.equal(Array.from(x.grad!.dataSync()), [1, 1]);
  const z = noGrad(() => x.mul(5));
  assert.not.ok(z.requiresGrad);
  assert.throws(() => z.sum().backward(), /does not require grad/);
});

t("backward needs a scalar or an explicit gradient of the right shape", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  assert.throws(() => x.mul(2).backward(), /scalar/);
  assert.throws(() => x.mul(2).backward(ones([3])), /does not match/);
  x.mul(2).backward(tensor([1, 10]));
  assert.equal(Array.from(x.grad!.dataSync()), [2, 20]);
});

t("requiresGrad_ rejects int tensors and non-leaves", () => {
  assert.throws(() => tensor([1, 2], { dtype: "int32" }).requiresGrad_(), /float32/);
  const x = tensor([1.5], { requiresGrad: true });
  assert.throws(() => x.mul(2).requiresGrad_(), /leaf/);
});

t("deep chains do not overflow the stack", () => {
  const x = tensor([1], { requiresGrad: true });
  let y = x;
  for (let i = 0; i < 20000; i++) y = y.mul(1);
  y.sum().backward();
  assert.is(x.grad!.item(), 1);
});

t("tidy frees intermediates, keeps results and leaf grads; live buffers return to baseline", () => {
  const g = new Generator(3);
  const w = randn([8, 8], { generator: g, requiresGrad: true });
  const x = randn([4, 8], { generator: g });
  const base = getBackend().liveBuffers();
  for (let step = 0; step < 5; step++) {
    w.zeroGrad();
    const loss = tidy(() => {
      const l = x.matmul(w).relu().softmax(-1).sum();
      l.backward();
      return l;
    });
    assert.ok(Number.isFinite(loss.item()));
    loss.dispose();
    // The grad survives the scope: exactly one extra buffer.
    assert.is(getBackend().liveBuffers(), base + 1);
  }
  w.zeroGrad();
  assert.is(getBackend().liveBuffers(), base);
});

t("tidy frees everything when fn throws", () => {
  const base = getBackend().liveBuffers();
  assert.throws(() => tidy(() => {
    randn([3]).exp();
    throw new Error("boom");
  }), /boom/);
  assert.is(getBackend().liveBuffers(), base);
});

t("nested tidy passes results outwards", () => {
  const base = getBackend().liveBuffers();
  const out = tidy(() => {
    const inner = tidy(() => randn([2]).mul(2));
    return inner.add(1);
  });
  assert.is(getBackend().liveBuffers(), base + 1);
  out.dispose();
  assert.is(getBackend().liveBuffers(), base);
});

t("use after dispose is a clear error", () => {
  const x = randn([2]);
  x.dispose();
  assert.throws(() => x.add(1), /after dispose/);
});

t("assign_ replaces contents in place and frees the old buffer", () => {
  const p = tensor([1, 2]);
  const base = getBackend().liveBuffers();
  p.assign_(tensor([3, 4]));
  assert.equal(Array.from(p.dataSync()), [3, 4]);
  assert.is(getBackend().liveBuffers(), base);
  assert.throws(() => p.assign_(tensor([1, 2, 3])), /expected float32\[2\]/);
});

t("ops that change nothing return a new tensor: disposing it keeps the input alive", () => {
  const x = randn([2, 3]);
  const same = [x.narrow(1, 0, 3), x.permute(0, 1), x.expand(2, 3), x.sum([]), x.squeeze(0), x.pad([]), x.clamp(), x.float(), x.contiguous()];
  for (const y of same) {
    assert.is.not(y, x);
    y.dispose();
  }
  assert.equal(x.shape, [2, 3]);
  assert.ok(Number.isFinite(x.sum().item()));
});

t.run();
