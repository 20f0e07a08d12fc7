// The one flag parser and help format of every `hasten` command.
//
//   --max-tokens 4096   --max-tokens=4096   --maxTokens=4096     (kebab or camel case)
//   --tie-embeddings    --tie-embeddings=false   --tie-embeddings false   --no-tie-embeddings
//   -i FILE             (aliases a command declares)
//
// Values are checked with the library's value specs (nn/options.ts), so a bad value reads the
// same whether it came from a flag, a config file or a checkpoint. Mistakes in how a command was
// called are UsageErrors: the dispatcher prints them and exits with code 2.
import { checkOption, type OptionValue, type ValueSpec } from "../../nn/index.ts";

export class UsageError extends Error {
  readonly exitCode = 2;
}

export interface FlagDef {
  spec: ValueSpec;
  help: string;
  alias?: string | readonly string[]; // "-i", ["-tok"]
  value?: string; // the placeholder in help: DIR, N, FILE
  default?: OptionValue; // shown in help
}

// Keys are kebab-case flag names without the dashes.
export type FlagSpec = Readonly<Record<string, FlagDef>>;

export interface ParsedArgs {
  flags: Record<string, OptionValue>;
  positional: string[];
}

// maxTokens ↔ max-tokens
export const toFlag = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
export const fromFlag = (flag: string): string => flag.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

// Library messages name settings as `key`; on the command line they are flags.
export const keysToFlags = (message: string): string => message.replace(/`([A-Za-z][A-Za-z0-9]*)`/g, (_, k: string) => `--${toFlag(k)}`);

// Levenshtein distance, for "did you mean".
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length];
}

function unknownFlag(cmd: string, flag: string, spec: FlagSpec): UsageError {
  const all = Object.keys(spec).map((f) => `--${f}`);
  let near: [string, number] | undefined;
  for (const f of all) {
    const d = distance(flag, f);
    if (d <= 3 && (!near || d < near[1])) near = [f, d];
  }
  return new UsageError(`hasten ${cmd}: unknown option ${flag}${near ? ` (did you mean ${near[0]}?)` : ""}\nvalid options: ${all.join(" ")}\n'hasten ${cmd} --help' describes each`);
}

export function parseFlags(cmd: string, argv: readonly string[], spec: FlagSpec, opts: { positional?: boolean } = {}): ParsedArgs {
  const byAlias = new Map<string, string>();
  for (const [name, d] of Object.entries(spec)) for (const a of typeof d.alias === "string" ? [d.alias] : d.alias ?? []) byAlias.set(a, name);
  const out: ParsedArgs = { flags: {}, positional: [] };
  const set = (name: string, raw: unknown, shown: string) => {
    try {
      out.flags[name] = checkOption(spec[name].spec, raw, shown);
    } catch (e) {
      throw new UsageError(`hasten ${cmd}: ${(e as Error).message}`);
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.startsWith("--") ? arg.indexOf("=") : -1;
    const shown = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    let name: string | undefined = byAlias.get(shown);
    if (name === undefined && shown.startsWith("--")) name = toFlag(shown.slice(2));
    if (name !== undefined && !Object.prototype.hasOwnProperty.call(spec, name)) {
      // --no-flag for a boolean
      const neg = name.startsWith("no-") ? name.slice(3) : "";
      if (inline === undefined && neg && spec[neg]?.spec.kind === "bool") {
        out.flags[neg] = false;
        continue;
      }
      throw unknownFlag(cmd, shown, spec);
    }
    if (name === undefined) {
      if (arg.startsWith("-") && arg !== "-") throw unknownFlag(cmd, shown, spec);
      if (!opts.positional) throw new UsageError(`hasten ${cmd}: unexpected argument "${arg}"; options look like --key value or --key=value`);
      out.positional.push(arg);
      continue;
    }
    const d = spec[name];
    if (d.spec.kind === "bool") {
      if (inline !== undefined) set(name, inline, shown);
      else if (i + 1 < argv.length && /^(true|false)$/i.test(argv[i + 1])) set(name, argv[++i], shown);
      else out.flags[name] = true;
      continue;
    }
    let raw: string;
    if (inline !== undefined) raw = inline;
    else if (i + 1 < argv.length) raw = argv[++i];
    else throw new UsageError(`hasten ${cmd}: ${shown} needs a value`);
    set(name, raw, shown);
  }
  return out;
}

// The help of a command: usage line, what it does, and one line per option with its default.
export function formatHelp(h: { usage: string; description: string; spec: FlagSpec; footer?: string }): string {
  const rows = Object.entries(h.spec).map(([name, d]) => {
    const aliases = typeof d.alias === "string" ? [d.alias] : [...(d.alias ?? [])];
    const left = [...aliases, `--${name}`].join(", ") + (d.spec.kind === "bool" ? "" : ` ${d.value ?? valueName(d.spec)}`);
    const def = d.default === undefined || d.default === "" ? "" : ` [${d.default}]`;
    return [left, `${d.help}${def}`];
  });
  const w = Math.min(34, Math.max(...rows.map((r) => r[0].length)) + 2);
  const lines = rows.map(([l, r]) => (l.length + 2 > w ? `  ${l}\n  ${" ".repeat(w)}${r}` : `  ${l.padEnd(w)}${r}`));
  return [`usage: ${h.usage}`, "", h.description, "", "options:", ...lines, ...(h.footer ? ["", h.footer] : [])].join("\n");
}

function valueName(s: ValueSpec): string {
  switch (s.kind) {
    case "int": return "N";
    case "number": return "X";
    case "enum": return s.values.join("|");
    default: return "VALUE";
  }
}
