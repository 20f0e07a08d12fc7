// allFinite / allFiniteSync / firstNonFinite: the guard a weight loader runs before trusting a file.
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { allFinite, allFiniteSync, firstNonFinite, tensor } from "../../core/index.ts";
import { testBackends } from "../helpers/backends.ts";

const special = fc.constantFrom(NaN, Infinity, -Infinity);
const finite = fc.float({ noNaN: true, noDefaultInfinity: true });

test("property: firstNonFinite finds the first NaN or ±∞, and only those", () => {
  fc.assert(
    fc.property(fc.array(fc.oneof({ arbitrary: finite, weight: 8 }, { arbitrary: special, weight: 1 }), { maxLength: 40 }), (xs) => {
      const want = xs.findIndex((x) => !Number.isFinite(x));
      assert.is(firstNonFinite(xs), want);
      assert.is(firstNonFinite(Float32Array.from(xs)), want);
      assert.is(allFiniteSync(xs), want < 0);
    }),
    { seed: 31337, numRuns: 300 },
  );
  assert.is(firstNonFinite([3.4e38, -3.4e38, 0, -0, 1e-45]), -1, "the extremes of float32 are finite");
});

test("allFinite on every backend, allFiniteSync on the synchronous ones; int32 always finite", async () => {
  for (const { cfg, backend } of await testBackends()) {
    const ok = tensor([1, -2, 3.4e38], { backend }), nan = tensor([[1, 2], [NaN, 0]], { backend }), inf = tensor([-Infinity], { backend });
    assert.equal([await allFinite(ok), await allFinite(nan), await allFinite(inf)], [true, false, false], cfg.label);
    assert.is(await allFinite(tensor([1, 2], { dtype: "int32", backend })), true, cfg.label);
    if (backend.sync) assert.equal([allFiniteSync(ok), allFiniteSync(nan), allFiniteSync(inf)], [true, false, false], cfg.label);
    else assert.throws(() => allFiniteSync(ok), /allFiniteSync: backend "gpujs" reads asynchronously; use await allFinite\(t\)/);
    for (const t of [ok, nan, inf]) t.dispose();
  }
});

test.run();
