// Exports a task's data as token ids for training in PyTorch (interop/pytorch/train_torch.py) on a
// machine without Node.js: the same corpus reader, tokenizer and filters as a Hasten run, so the
// PyTorch model sees exactly the sentences `hasten train` would.
//
//   npx tsx interop/pytorch/export-data.ts translation --tokenizer models/ar-de-en/tokenizer.json
//   npx tsx interop/pytorch/export-data.ts lm --data ../shared/data/janeausten --exclude northangerabbey.txt --vocab-size 8000
//
// Any setting of the task (`hasten train --task T --help`) may be given as a flag; the data ones
// (data, splits, languages, tokenizer or vocabSize, maxSentenceTokens, exclude, validFraction)
// shape the export and are recorded in it. Writes into --out (default .device-data/NAME, where
// NAME is --name or multi30k-de-en / the text's name); keep that folder out of git
// (`/.device-data/` in .gitignore or .git/info/exclude) and carry it to the GPU machine.
//
// The folder:
//   meta.json        what was exported and how; per model kind the full default TrainConfig and
//                    the option specs, so train_torch.py takes Hasten's defaults and checks values
//                    as Hasten does
//   tokenizer.json   the vocabulary (given, or learned here as `hasten train` would learn it)
//   translation:  {train,valid}.{src,tgt}.ids  token ids, little-endian uint16 (int32 when the
//                 vocabulary exceeds 65,536), sentences back to back, no bos/eos
//                 {train,valid}.{src,tgt}.len  uint32 token count of each sentence
//                 {train,valid}.line           uint32 line number of each pair in its split's files
//                 valid.src.txt, valid.ref.txt the validation text (BLEU with sacrebleu, optional)
//                 Training pairs are filtered by maxSentenceTokens here; validation pairs are all
//                 exported, and train_torch.py keeps those that fit maxLen/maxTokens (they depend
//                 on the run), as validPairsThatFit() does.
//   lm:           {train,valid}.ids  the streams  bos p₁ eos bos p₂ eos …  (encodeStream)
import { mkdirSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import {
  BpeTokenizer, checkConfig, defaultConfig, encodeParallel, encodeStream, getModelKind, optionTable, readParallelCorpus, readText, sha256,
  type OptionTable, type OptionValue, type TokenPair, type TrainConfig,
} from "../../nn/index.ts";
import { fromFlag, parseFlags, toFlag, UsageError, type FlagSpec } from "../../scripts/cli/flags.ts";

export const DEVICE_DATA_FORMAT = "hasten-device-data";

// The model kinds PyTorch trains for each exported task: [task, kind] pairs whose defaults go into
// meta.json. The glide task reads the lm task's text with the target's (= this) tokenizer.
const KINDS: Record<string, [string, string][]> = {
  translation: [["translation", "transformer"], ["translation", "markov"]],
  lm: [["lm", "lm"], ["glide", "glide"]],
};

// Settings that decide what is exported (train_torch.py refuses to change them).
const DATA_KEYS: Record<string, string[]> = {
  translation: ["data", "src", "tgt", "trainSplit", "validSplit", "tokenizer", "vocabSize", "maxSentenceTokens"],
  lm: ["data", "exclude", "validFraction", "tokenizer", "vocabSize"],
};

export interface ExportOptions {
  task: "translation" | "lm";
  settings: Record<string, OptionValue>; // task settings by key (data, tokenizer, vocabSize, …)
  out?: string;
  name?: string;
  limit?: number; // keep only the first N training and N validation items (tests)
  log?: (line: string) => void;
}

export interface ExportResult {
  out: string;
  meta: Record<string, unknown>;
}

function idArray(vocab: number, n: number): Uint16Array | Int32Array {
  return vocab <= 65536 ? new Uint16Array(n) : new Int32Array(n);
}

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// Sentences back to back (.ids) with their lengths (.len).
function packSide(pairs: TokenPair[], side: "src" | "tgt", vocab: number): { ids: Uint16Array | Int32Array; len: Uint32Array; tokens: number } {
  const len = Uint32Array.from(pairs, (p) => p[side].length);
  const tokens = len.reduce((s, n) => s + n, 0);
  const ids = idArray(vocab, tokens);
  let at = 0;
  for (const p of pairs) {
    ids.set(p[side], at);
    at += p[side].length;
  }
  return { ids, len, tokens };
}

// The run's config as `hasten train` would resolve it for this task and kind, with the data
// settings of the export (and `out` filled, which checkConfig requires).
function runConfig(task: string, kind: string, settings: Record<string, OptionValue>, keys: string[]): TrainConfig {
  const table = optionTable({ task, model: kind });
  const given = Object.fromEntries(keys.filter((k) => k in settings && k in table).map((k) => [k, settings[k]]));
  return checkConfig({ ...defaultConfig({ task, model: kind }), ...given, task, model: kind, out: "(pytorch)", ...(task === "glide" ? { target: "(trained first)" } : {}) });
}

export function exportData(o: ExportOptions): ExportResult {
  const log = o.log ?? (() => {});
  const keys = DATA_KEYS[o.task];
  const [task0, kind0] = KINDS[o.task][0];
  const c = runConfig(task0, kind0, o.settings, keys); // checks every given value, as `hasten train` would
  const name = o.name ?? (o.task === "translation" ? `${basename(resolve((c.data as string) || "multi30k"))}-${c.src}-${c.tgt}` : basename(resolve((c.data as string) || "tinyshakespeare")).replace(/\.txt$/, ""));
  const out = resolve(o.out ?? join(".device-data", name));
  const files: Record<string, Uint8Array | string> = {};
  const lim = <T>(xs: T[]) => (o.limit !== undefined ? xs.slice(0, o.limit) : xs);

  // The text, read and checked by the task's own reader.
  let tokenizerLines: () => string[], fingerprint: string;
  let trainText: unknown[], validText: unknown[];
  if (o.task === "translation") {
    const corpus = readParallelCorpus(c);
    [trainText, validText, fingerprint] = [lim(corpus.train), lim(corpus.valid), corpus.fingerprint];
    tokenizerLines = () => (trainText as typeof corpus.train).flatMap((p) => [p.src, p.tgt]);
  } else {
    const text = readText(c);
    [trainText, validText, fingerprint] = [lim(text.train), lim(text.valid), text.fingerprint];
    tokenizerLines = () => trainText as string[];
  }

  // The vocabulary: a given tokenizer.json, or one learned from the training lines (chooseTokenizer).
  let tokenizer: BpeTokenizer, tokSource: string;
  if (c.tokenizer) {
    tokenizer = BpeTokenizer.load(c.tokenizer as string);
    tokSource = `file ${c.tokenizer}`;
  } else {
    log(`learning a BPE vocabulary of ${c.vocabSize} from ${trainText.length} training ${o.task === "translation" ? "pairs" : "paragraphs"} ...`);
    tokenizer = BpeTokenizer.train(tokenizerLines(), { vocabSize: c.vocabSize as number });
    tokSource = `learned (vocabSize ${c.vocabSize})`;
  }
  const V = tokenizer.vocabSize;
  const tokJson = JSON.stringify(tokenizer.toJSON());
  files["tokenizer.json"] = tokJson;

  let splits: Record<string, unknown>;
  if (o.task === "translation") {
    const pairs = encodeParallel(tokenizer, c, trainText as never, validText as never);
    splits = {};
    for (const [split, list] of [["train", pairs.train], ["valid", pairs.valid]] as const) {
      const info: Record<string, unknown> = { pairs: list.length };
      for (const side of ["src", "tgt"] as const) {
        const p = packSide(list, side, V);
        files[`${split}.${side}.ids`] = bytes(p.ids);
        files[`${split}.${side}.len`] = bytes(p.len);
        info[`${side}Tokens`] = p.tokens;
      }
      files[`${split}.line`] = bytes(Uint32Array.from(list, (p) => p.index));
      splits[split] = info;
    }
    (splits.train as Record<string, unknown>).dropped = pairs.dropped;
    const valid = validText as { src: string; tgt: string }[];
    files["valid.src.txt"] = valid.map((p) => p.src + "\n").join("");
    files["valid.ref.txt"] = valid.map((p) => p.tgt + "\n").join("");
    log(`${pairs.train.length} training pairs (${pairs.dropped} over maxSentenceTokens ${c.maxSentenceTokens} dropped), ${pairs.valid.length} validation pairs`);
  } else {
    splits = {};
    for (const [split, text] of [["train", trainText], ["valid", validText]] as const) {
      const stream = encodeStream(tokenizer, text as string[]);
      const ids = idArray(V, stream.length);
      ids.set(stream);
      files[`${split}.ids`] = bytes(ids);
      splits[split] = { paragraphs: text.length, tokens: stream.length };
    }
    log(`${(splits.train as { tokens: number }).tokens} training and ${(splits.valid as { tokens: number }).tokens} validation tokens`);
  }

  // Per model kind: Hasten's full default config with the export's data settings, and the specs
  // that check a value (train_torch.py applies them to its flags).
  const defaults: Record<string, TrainConfig> = {}, options: Record<string, Record<string, unknown>> = {};
  for (const [task, kind] of KINDS[o.task]) {
    getModelKind(kind);
    const cfg = runConfig(task, kind, o.settings, keys);
    const table: OptionTable = optionTable({ task, model: kind });
    defaults[kind] = { ...cfg, out: "", ...(task === "glide" ? { target: "" } : {}) } as TrainConfig;
    options[kind] = Object.fromEntries(Object.entries(table).map(([k, v]) => [k, v.spec]));
  }
  const exportConfig = Object.fromEntries(keys.map((k) => [k, c[k]]));
  const meta = {
    format: DEVICE_DATA_FORMAT, version: 1, task: o.task, name,
    tasks: Object.fromEntries(KINDS[o.task].map(([t, k]) => [k, t])), // model kind → Hasten task
    exportConfig, limit: o.limit ?? null,
    // The task's fingerprint of the training files (a slice is marked as one: not the files' data).
    trainDataSha256: o.limit === undefined ? fingerprint : sha256(`${fingerprint}\0limit:${o.limit}`),
    tokenizer: { file: "tokenizer.json", vocabSize: V, sha256: sha256(tokJson), source: tokSource, padId: tokenizer.padId, bosId: tokenizer.bosId, eosId: tokenizer.eosId },
    idDtype: V <= 65536 ? "uint16" : "int32",
    splits,
    files: Object.fromEntries(Object.entries(files).map(([f, d]) => [f, { bytes: typeof d === "string" ? Buffer.byteLength(d) : d.byteLength, sha256: sha256(d) }])),
    defaults, options,
  };
  mkdirSync(out, { recursive: true });
  for (const [f, d] of Object.entries(files)) writeFileSync(join(out, f), d);
  writeFileSync(join(out, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
  return { out, meta };
}

// ---- command line ----

const USAGE = `usage: npx tsx interop/pytorch/export-data.ts translation|lm [--out DIR] [--name NAME] [--limit N] [task settings: --data, --tokenizer, --vocab-size, ...]`;

export function main(argv: string[]): void {
  const task = argv[0];
  if (task !== "translation" && task !== "lm") throw new UsageError(`${USAGE}\n(first argument: translation or lm, got ${JSON.stringify(task ?? "")})`);
  const table = optionTable({ task, model: KINDS[task][0][1] });
  const spec: Record<string, FlagSpec[string]> = {
    out: { spec: { kind: "string", nonEmpty: true }, help: "output folder (default .device-data/NAME)" },
    name: { spec: { kind: "string", nonEmpty: true }, help: "data set name" },
    limit: { spec: { kind: "int", min: 1 }, help: "first N training and N validation items only (tests)" },
  };
  for (const k of DATA_KEYS[task]) spec[toFlag(k)] = { spec: table[k].spec, help: table[k].help };
  const { flags } = parseFlags("export-data", argv.slice(1), spec);
  const settings: Record<string, OptionValue> = {};
  for (const [f, v] of Object.entries(flags)) if (!["out", "name", "limit"].includes(f)) settings[fromFlag(f)] = v;
  const t0 = Date.now();
  const r = exportData({ task, settings, out: flags.out as string | undefined, name: flags.name as string | undefined, limit: flags.limit as number | undefined, log: (l) => console.error(`export-data: ${l}`) });
  console.error(`export-data: wrote ${r.out} in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  console.log(r.out);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`export-data: ${(e as Error).message}`);
    process.exit(e instanceof UsageError ? 2 : 1);
  }
}
