/**
 * `Module`: the base of layers and models, as `torch.nn.Module`.
 *
 * Parameters and sub-modules are discovered from a module's own properties
 * (plain fields, arrays and maps of them), so a subclass just assigns them:
 * `this.weight = parameter(...)`, `this.layers = [new Linear(...), ...]`.
 */
import type { FloatArray } from '../../kernels/index.js';
import { sameShape } from '../../kernels/index.js';
import { Tensor } from '../tensor.js';

const parameterSet = new WeakSet<Tensor>();

/** Mark a tensor as a trainable parameter: it requires grad and survives `tidy` scopes. */
export function parameter(t: Tensor): Tensor {
  t.requiresGrad = true;
  t.keepAlive = true;
  parameterSet.add(t);
  return t;
}

/** Whether a tensor was registered with {@link parameter}. */
export function isParameter(t: Tensor): boolean {
  return parameterSet.has(t);
}

/** Values accepted by {@link Module.loadStateDict}: tensors or plain arrays. */
export type StateDictValue = Tensor | FloatArray | number[];

/** Base class of every layer and model. */
export abstract class Module {
  /** Training mode (dropout active); toggled by {@link Module.train} / {@link Module.eval}. */
  training = true;

  /** Direct sub-modules with their property names. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [key, value] of Object.entries(this))
      visitValue(key, value, (name, v) => v instanceof Module && out.push([name, v]));
    return out;
  }

  /** Every parameter, named by its path (`tower.layers.0.weight`), each listed once. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    const walk = (module: Module, path: string): void => {
      for (const [key, value] of Object.entries(module)) {
        visitValue(key, value, (name, v) => {
          const full = path ? `${path}.${name}` : name;
          if (v instanceof Tensor && isParameter(v) && !seen.has(v)) {
            seen.add(v);
            out.push([full, v]);
          } else if (v instanceof Module) {
            walk(v, full);
          }
        });
      }
    };
    walk(this, prefix);
    return out;
  }

  /** Every parameter, each once (shared ones too). */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Set training mode on this module and all sub-modules. */
  train(mode = true): this {
    this.training = mode;
    for (const [, child] of this.namedChildren()) child.train(mode);
    return this;
  }

  /** Evaluation mode (dropout off). */
  eval(): this {
    return this.train(false);
  }

  /** Name → parameter tensor (the live tensors, as PyTorch returns them). */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /**
   * Copy values into the parameters. Shapes are checked; with `strict` (default)
   * missing and unexpected keys are errors. Nothing is written unless every entry checks out.
   */
  loadStateDict(state: Record<string, StateDictValue>, strict = true): void {
    const params = new Map(this.namedParameters());
    const problems: string[] = [];
    if (strict) {
      for (const name of params.keys()) if (!(name in state)) problems.push(`missing key '${name}'`);
      for (const name of Object.keys(state)) if (!params.has(name)) problems.push(`unexpected key '${name}'`);
    }
    const writes: [Tensor, ArrayLike<number>][] = [];
    for (const [name, value] of Object.entries(state)) {
      const target = params.get(name);
      if (!target) continue;
      if (value instanceof Tensor) {
        if (!sameShape(value.shape, target.shape)) {
          problems.push(
            `'${name}': shape [${value.shape.join(', ')}] does not match the parameter's [${target.shape.join(', ')}]`,
          );
          continue;
        }
        writes.push([target, value.toArray()]);
      } else {
        if (value.length !== target.size) {
          problems.push(
            `'${name}': ${value.length} values for a parameter of shape [${target.shape.join(', ')}] (${target.size})`,
          );
          continue;
        }
        writes.push([target, value]);
      }
    }
    if (problems.length > 0) throw new Error(`loadStateDict: ${problems.join('; ')}`);
    for (const [target, values] of writes) target.backend.write(target.storage, values);
  }
}

function visitValue(name: string, value: unknown, visit: (name: string, v: unknown) => void): void {
  if (value instanceof Module || value instanceof Tensor) visit(name, value);
  else if (Array.isArray(value)) value.forEach((v, i) => visitValue(`${name}.${i}`, v, visit));
  else if (value instanceof Map) for (const [k, v] of value) visitValue(`${name}.${String(k)}`, v, visit);
}
