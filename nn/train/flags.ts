// Command-line flags and config files → a partial TrainConfig, refusing anything unknown.
//
//   --max-tokens 4096   --max-tokens=4096   --maxTokens=4096     (kebab or camel case)
//   --tie-embeddings    --tie-embeddings=false   --no-tie-embeddings
//   --config run.json | run.ts   (flags given on the command line win over the file)
//   --resume            continue the checkpoint in --out
import { existsSync, readFileSync } from "node:fs";
import { extname, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CONFIG_KEYS, CONFIG_KEY_NAMES, DEFAULT_CONFIG, checkValue, fromFlag, isConfigKey, toFlag, type TrainConfig } from "./config.ts";

export interface TrainArgs {
  overrides: Partial<TrainConfig>;
  resume: boolean;
  configFile?: string;
  help: boolean;
}

const SPECIAL = ["resume", "config", "help"];

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

function validFlags(): string[] {
  return [...CONFIG_KEY_NAMES.map(toFlag), ...SPECIAL].map((f) => `--${f}`);
}

function unknownFlag(flag: string): Error {
  const all = validFlags();
  const near = all
    .map((f) => [f, distance(flag, f)] as const)
    .filter(([, d]) => d <= 3)
    .sort((x, y) => x[1] - y[1])[0];
  const hint = near ? ` (did you mean ${near[0]}?)` : "";
  return new Error(`hasten train: unknown option ${flag}${hint}\nvalid options: ${all.join(" ")}\n'hasten train --help' describes each`);
}

export function parseTrainArgs(argv: string[]): TrainArgs {
  const out: TrainArgs = { overrides: {}, resume: false, help: false };
  const set = (key: keyof TrainConfig, raw: unknown, flag: string) => {
    (out.overrides as Record<string, unknown>)[key] = checkValue(key, raw, `hasten train: ${flag}`);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h" || a === "--help") {
      out.help = true;
      continue;
    }
    if (!a.startsWith("--")) throw new Error(`hasten train: unexpected argument "${a}"; options look like --key value or --key=value`);
    const eq = a.indexOf("=");
    const flag = eq >= 0 ? a.slice(0, eq) : a;
    const inline = eq >= 0 ? a.slice(eq + 1) : undefined;
    const name = fromFlag(flag.slice(2));
    if (name === "resume") {
      out.resume = inline === undefined ? true : (checkBool(inline, flag) as boolean);
      continue;
    }
    const takeValue = (): string => {
      if (inline !== undefined) return inline;
      if (i + 1 >= argv.length) throw new Error(`hasten train: ${flag} needs a value`);
      return argv[++i];
    };
    if (name === "config") {
      out.configFile = takeValue();
      continue;
    }
    if (isConfigKey(name)) {
      if (CONFIG_KEYS[name].spec.kind === "bool" && inline === undefined) {
        // A bare boolean flag means true; "--flag false" is accepted too.
        const next = argv[i + 1];
        if (next !== undefined && /^(true|false)$/i.test(next)) set(name, argv[++i], flag);
        else set(name, true, flag);
      } else set(name, takeValue(), flag);
      continue;
    }
    // --no-tie-embeddings
    const negated = name.startsWith("no") ? name[2]?.toLowerCase() + name.slice(3) : "";
    if (inline === undefined && isConfigKey(negated) && CONFIG_KEYS[negated].spec.kind === "bool") {
      set(negated, false, flag);
      continue;
    }
    throw unknownFlag(flag);
  }
  return out;
}

function checkBool(v: string, flag: string): boolean {
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new Error(`hasten train: ${flag}: expected true or false, got ${JSON.stringify(v)}`);
}

// A config file: JSON, or a .ts/.js module whose default export (or `config` export) is the
// object. Keys are TrainConfig's (camelCase); every value is checked like a flag's.
export async function loadConfigFile(path: string): Promise<Partial<TrainConfig>> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`hasten train: config file not found: ${path}`);
  let obj: unknown;
  const ext = extname(abs);
  if (ext === ".json") {
    try {
      obj = JSON.parse(readFileSync(abs, "utf8"));
    } catch (e) {
      throw new Error(`hasten train: config file ${path} is not valid JSON: ${(e as Error).message}`);
    }
  } else if ([".ts", ".mts", ".js", ".mjs"].includes(ext)) {
    const mod = (await import(pathToFileURL(abs).href)) as { default?: unknown; config?: unknown };
    obj = mod.default ?? mod.config;
  } else {
    throw new Error(`hasten train: config file ${path}: expected a .json, .ts or .js file, got "${ext || "no extension"}"`);
  }
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw new Error(`hasten train: config file ${path} must hold an object of settings, got ${obj === null ? "null" : Array.isArray(obj) ? "an array" : typeof obj}`);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (!isConfigKey(k)) {
      throw new Error(`hasten train: config file ${path}: unknown key "${k}"\nvalid keys: ${CONFIG_KEY_NAMES.join(" ")}`);
    }
    out[k] = checkValue(k, v, `hasten train: config file ${path}: ${k}`);
  }
  return out as Partial<TrainConfig>;
}

export function trainUsage(): string {
  const rows = CONFIG_KEY_NAMES.map((k) => {
    const { help } = CONFIG_KEYS[k];
    const d = DEFAULT_CONFIG[k];
    return `  --${toFlag(k).padEnd(22)} ${help}${d === "" ? "" : ` [${d}]`}`;
  });
  return [
    "usage: hasten train --task translation --src de --tgt en --out runs/ar-de-en [options]",
    "",
    "Trains an encoder-decoder Transformer; checkpoints, log.jsonl, loss.svg and model/ go to --out.",
    "Options take --key value or --key=value; booleans also --key / --no-key.",
    "",
    "  --config FILE            settings from a .json or .ts file (flags win over it)",
    "  --resume                 continue the checkpoint in --out (flags may change only limits,",
    "                           intervals, decoding and runtime settings)",
    ...rows,
    "",
    "Ctrl-C finishes the current step, writes a checkpoint and exits; --resume continues it exactly.",
  ].join("\n");
}
