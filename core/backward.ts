/**
 * The backward pass: walk the graph from the output in reverse topological order, run each
 * op's gradient rule on the gradient of its output, sum the gradients that meet at a tensor,
 * and accumulate them into the leaves. The graph is freed as it is walked.
 */
import { sameShape } from '../kernels/index.js';
import { noteLeaf } from './capture.js';
import { noGrad } from './scope.js';
import { addGradients, type Gradient } from './sparse-grad.js';
import { Tensor } from './tensor.js';

/** Back-propagates `seed` (the gradient of `root`) through the graph that produced `root`. */
export function runBackward(root: Tensor, seed: Tensor): void {
  const order = topologicalOrder(root);
  const grads = new Map<Tensor, Gradient>();
  grads.set(root, seed);
  noGrad(() => {
    for (const tensor of order) {
      const grad = grads.get(tensor);
      if (!grad) continue;
      const node = tensor.node;
      if (!node) {
        // A leaf: accumulate into .grad (or .sparseGrad) as PyTorch does across backward calls.
        const sum = tensor.gradient ? addGradients(tensor.gradient, grad) : grad;
        tensor.gradient = sum;
        markKept(sum, seed);
        noteLeaf(tensor);
        continue;
      }
      grads.delete(tensor);
      const denseGrad = grad instanceof Tensor ? grad : grad.toDense();
      const inputGrads = node.op.backward!(denseGrad, {
        inputs: node.inputs,
        output: tensor,
        attrs: node.attrs,
        saved: node.saved,
        needsGrad: node.inputs.map((t) => t.requiresGrad),
      });
      node.inputs.forEach((input, i) => {
        const g = inputGrads[i];
        if (!g || !input.requiresGrad) return;
        checkGradShape(node.op.name, input, g);
        const previous = grads.get(input);
        grads.set(input, previous ? addGradients(previous, g) : g);
      });
      // Free the graph as we go: the node's saved tensors are no longer needed.
      tensor.node = null;
    }
  });
}

/** Keep a leaf's gradient past the step's scope; a segment sum over the caller's own seed is summed now. */
function markKept(g: Gradient, seed: Tensor): void {
  if (g instanceof Tensor) g.keepAlive = true;
  else {
    if (g.pendingSource === seed) g.values.keepAlive = true;
    g.keep();
  }
}

function checkGradShape(op: string, input: Tensor, g: Gradient): void {
  const shape = g instanceof Tensor ? g.shape : g.denseShape;
  if (!sameShape(shape, input.shape)) {
    throw new Error(
      `gradient rule of '${op}' returned shape [${shape.join(', ')}] for an input of shape [${input.shape.join(', ')}]`,
    );
  }
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: deep graphs (long training loops in one graph) must not overflow the stack.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [tensor, next] = top;
    const inputs = tensor.node?.inputs ?? [];
    if (next < inputs.length) {
      top[1]++;
      const child = inputs[next];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(tensor);
    }
  }
  return order.reverse();
}
