// Notebook 01 — how reverse-mode autodiff works, in 60 lines, then the same in Hasten.
// Run: npx tsx notebooks/01-autodiff.ts
//
// Every value remembers how it was made: its parents and a rule that, given ∂L/∂out, adds each
// parent's share to the parent's gradient (the chain rule). backward() visits values from the
// output back to the inputs, in reverse topological order, so a value's gradient is complete
// before it is passed on.
import { tensor } from "../core/index.ts";

class Value {
  grad = 0;
  constructor(
    public data: number,
    readonly parents: Value[] = [],
    readonly rule: (g: number) => void = () => {},
  ) {}
  add(o: Value): Value {
    const out: Value = new Value(this.data + o.data, [this, o], (g) => {
      this.grad += g; // ∂(a+b)/∂a = 1
      o.grad += g;
    });
    return out;
  }
  mul(o: Value): Value {
    return new Value(this.data * o.data, [this, o], (g) => {
      this.grad += g * o.data; // ∂(ab)/∂a = b
      o.grad += g * this.data;
    });
  }
  tanh(): Value {
    const t = Math.tanh(this.data);
    return new Value(t, [this], (g) => {
      this.grad += g * (1 - t * t); // tanh' = 1 − tanh²
    });
  }
  backward(): void {
    const order: Value[] = [];
    const seen = new Set<Value>();
    const visit = (v: Value) => {
      if (seen.has(v)) return;
      seen.add(v);
      v.parents.forEach(visit);
      order.push(v);
    };
    visit(this);
    this.grad = 1; // ∂L/∂L
    for (let i = order.length - 1; i >= 0; i--) order[i].rule(order[i].grad);
  }
}

// A single neuron: y = tanh(w1·x1 + w2·x2 + b)
const [x1, x2, w1, w2, b] = [2, -1, 0.5, -0.25, 0.1].map((v) => new Value(v));
const y = w1.mul(x1).add(w2.mul(x2)).add(b).tanh();
y.backward();
console.log("scalar engine:   y =", y.data.toFixed(6), " dy/dw1 =", w1.grad.toFixed(6), " dy/dx2 =", x2.grad.toFixed(6));

// Hasten does the same over tensors. Each primitive's rule lives in one table (core/grad.ts):
//   mul: (g, [a, b]) => [g·b, g·a]      tanh: (g, _, out) => [g·(1 − out²)]
// and composite ops (mean, logsumexp, …) need no rule of their own.
const W = tensor([0.5, -0.25], { requiresGrad: true });
const B = tensor(0.1, { requiresGrad: true });
const Xg = tensor([2, -1], { requiresGrad: true });
const Y = W.mul(Xg).sum().add(B).tanh();
Y.backward();
console.log("Hasten tensors:  y =", Y.item().toFixed(6), " dy/dw1 =", W.grad!.dataSync()[0].toFixed(6), " dy/dx2 =", Xg.grad!.dataSync()[1].toFixed(6));

// The gradient can be checked numerically: (f(w + h) − f(w − h)) / 2h → ∂f/∂w as h → 0.
const f = (w1v: number) => Math.tanh(w1v * 2 + -0.25 * -1 + 0.1);
const h = 1e-5;
console.log("finite difference dy/dw1 =", ((f(0.5 + h) - f(0.5 - h)) / (2 * h)).toFixed(6));
