// Reverse-mode autodiff on a dynamic tape: each differentiable op records a Node on its
// output; backward() walks the nodes in reverse topological order applying the vjp table.
import type { Tensor } from "./tensor.ts";

export interface Node {
  prim: string;
  inputs: Tensor[];
  // Computes the input cotangents from the output cotangent (under noGrad).
  vjp: (g: Tensor) => (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export function needsGrad(inputs: readonly Tensor[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t.requiresGrad) return true;
  return false;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // Iterative DFS: deep graphs (long sequences) would overflow the JS stack recursively.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length > 0) {
    const [t, done] = stack.pop()!;
    if (done) {
      order.push(t);
      continue;
    }
    if (seen.has(t)) continue;
    seen.add(t);
    stack.push([t, true]);
    if (t._node) for (const inp of t._node.inputs) if (inp.requiresGrad && !seen.has(inp)) stack.push([inp, false]);
  }
  return order;
}

export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new Error("backward: tensor does not require grad (no input had requiresGrad, or it was made under noGrad)");
  const grads = new Map<Tensor, Tensor>();
  noGrad(() => {
    if (grad) {
      if (grad.shape.join() !== root.shape.join()) {
        throw new Error(`backward: gradient shape [${grad.shape}] does not match tensor shape [${root.shape}]`);
      }
      grads.set(root, grad);
    } else {
      if (root.size !== 1) throw new Error(`backward: implicit gradient needs a scalar output, got shape [${root.shape}]; pass a gradient`);
      grads.set(root, root.onesLike());
    }
    const order = topoOrder(root);
    // Cotangents are not freed here: one tensor may flow to several inputs (add returns g
    // twice), so intermediate cotangents are left to the enclosing tidy(). A leaf never shares
    // its .grad with another leaf: a cotangent already stored somewhere is cloned first.
    const stored = new Set<Tensor>();
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i];
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      if (!t._node) {
        const own = stored.has(g) || g === grad ? g.clone() : g;
        stored.add(own);
        t._accumulateGrad(own);
        continue;
      }
      const gs = t._node.vjp(g);
      t._node.inputs.forEach((inp, k) => {
        const gi = gs[k];
        if (!gi || !inp.requiresGrad) return;
        const prev = grads.get(inp);
        grads.set(inp, prev ? prev.add(gi) : gi);
      });
    }
  });
}
