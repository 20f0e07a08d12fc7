// Typed option tables: what a model kind, a task or the training loop accepts as settings, with
// defaults and one-line descriptions. Command-line flags, config files and checkpoints all go
// through checkOption(), so a bad value is refused with the same message wherever it came from.
// The library names settings by their key (maxTokens); the command line shows them as flags.

export type ValueSpec =
  | { kind: "int"; min: number; max?: number }
  | { kind: "number"; min: number; max?: number; above?: boolean } // above: min itself excluded
  | { kind: "string"; nonEmpty?: boolean }
  | { kind: "enum"; values: readonly string[] }
  | { kind: "bool" };

export type OptionValue = number | string | boolean;

export interface OptionSpec {
  spec: ValueSpec;
  default: OptionValue;
  help: string;
  // May differ from the checkpoint's value on --resume (it does not change what is computed).
  resumable?: boolean;
}

export type OptionTable = Readonly<Record<string, OptionSpec>>;

export function describeSpec(s: ValueSpec): string {
  switch (s.kind) {
    case "int": return s.max === undefined ? `an integer ≥ ${s.min}` : `an integer in [${s.min}, ${s.max}]`;
    case "number": return `a number ${s.above ? ">" : "≥"} ${s.min}${s.max === undefined ? "" : ` and ≤ ${s.max}`}`;
    case "string": return s.nonEmpty ? "a non-empty string" : "a string";
    case "enum": return `one of ${s.values.join(", ")}`;
    case "bool": return "true or false";
  }
}

// A setting's value from text (a flag) or JSON (a config file, a checkpoint); `where` names the
// source in errors ("maxTokens", "config.json: maxTokens").
export function checkOption(spec: ValueSpec, raw: unknown, where: string): OptionValue {
  const bad = () => new Error(`${where}: expected ${describeSpec(spec)}, got ${JSON.stringify(raw)}`);
  const fromText = typeof raw === "string";
  switch (spec.kind) {
    case "int":
    case "number": {
      let v: number;
      if (typeof raw === "number") v = raw;
      else if (fromText && raw.trim() !== "" && /^[-+0-9.eE]+$/.test(raw.trim())) v = Number(raw);
      else throw bad();
      if (!Number.isFinite(v) || (spec.kind === "int" && !Number.isInteger(v))) throw bad();
      if (spec.kind === "number" && spec.above ? v <= spec.min : v < spec.min) throw bad();
      if (spec.max !== undefined && v > spec.max) throw bad();
      return v;
    }
    case "string":
      if (typeof raw !== "string" || (spec.nonEmpty && raw === "")) throw bad();
      return raw;
    case "enum":
      if (typeof raw !== "string" || !spec.values.includes(raw)) throw bad();
      return raw;
    case "bool":
      if (typeof raw === "boolean") return raw;
      if (fromText && /^(true|1|yes)$/i.test(raw)) return true;
      if (fromText && /^(false|0|no)$/i.test(raw)) return false;
      throw bad();
  }
}

export function defaultsOf(table: OptionTable): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const [k, o] of Object.entries(table)) out[k] = o.default;
  return out;
}

export const hasKey = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
