// The command-line layer: one flag parser for every command (both spellings, booleans, aliases,
// did-you-mean, values checked by the library's specs), exit code 2 for every usage error,
// invalid UTF-8 input warned about, a lone "\r" a line break everywhere, and standard output
// closed early or full handled without a stack trace.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { decodeUtf8, splitLines } from "../../scripts/cli/common.ts";
import { formatHelp, fromFlag, keysToFlags, parseFlags, toFlag, UsageError, type FlagSpec } from "../../scripts/cli/flags.ts";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const tmp = mkdtempSync(join(tmpdir(), "hasten-cli-"));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const SPEC: FlagSpec = {
  "max-tokens": { spec: { kind: "int", min: 2 }, help: "tokens" },
  rate: { spec: { kind: "number", min: 0, above: true }, help: "a rate" },
  name: { spec: { kind: "string", nonEmpty: true }, alias: "-n", help: "a name" },
  mode: { spec: { kind: "enum", values: ["a", "b"] }, help: "a mode" },
  tie: { spec: { kind: "bool" }, help: "a switch" },
};

const usage = (fn: () => unknown, re: RegExp) => {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable(`expected ${re}`);
};

test("flags: kebab and camel case, inline or separate values, aliases, booleans in every spelling", () => {
  assert.equal(parseFlags("t", ["--max-tokens", "8", "--rate=0.5", "-n", "x", "--mode=b"], SPEC).flags, { "max-tokens": 8, rate: 0.5, name: "x", mode: "b" });
  assert.equal(parseFlags("t", ["--maxTokens=8"], SPEC).flags, { "max-tokens": 8 });
  assert.equal(parseFlags("t", ["--tie"], SPEC).flags, { tie: true });
  assert.equal(parseFlags("t", ["--tie=false"], SPEC).flags, { tie: false });
  assert.equal(parseFlags("t", ["--tie", "false", "--name", "y"], SPEC).flags, { tie: false, name: "y" });
  assert.equal(parseFlags("t", ["--no-tie"], SPEC).flags, { tie: false });
  assert.equal(parseFlags("t", ["a.txt", "--tie", "b.txt"], SPEC, { positional: true }), { flags: { tie: true }, positional: ["a.txt", "b.txt"] });
});

test("flags: unknown options with a suggestion, missing and bad values, stray arguments — all UsageErrors", () => {
  usage(() => parseFlags("t", ["--max-token", "3"], SPEC), /unknown option --max-token \(did you mean --max-tokens\?\)/);
  usage(() => parseFlags("t", ["--no-rate"], SPEC), /unknown option --no-rate/);
  usage(() => parseFlags("t", ["--rate"], SPEC), /--rate needs a value/);
  usage(() => parseFlags("t", ["--rate=0"], SPEC), /--rate: expected a number > 0, got "0"/);
  usage(() => parseFlags("t", ["--max-tokens", "2.5"], SPEC), /--max-tokens: expected an integer ≥ 2, got "2.5"/);
  usage(() => parseFlags("t", ["--mode", "c"], SPEC), /--mode: expected one of a, b, got "c"/);
  usage(() => parseFlags("t", ["--tie=maybe"], SPEC), /--tie: expected true or false, got "maybe"/);
  usage(() => parseFlags("t", ["stray"], SPEC), /unexpected argument "stray"/);
});

test("property: toFlag and fromFlag are inverse on camelCase keys; keysToFlags rewrites only backquoted keys", () => {
  fc.assert(fc.property(fc.array(fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/), { minLength: 1, maxLength: 4 }), (parts) => {
    const key = parts[0] + parts.slice(1).map((p) => p[0].toUpperCase() + p.slice(1)).join("");
    assert.is(fromFlag(toFlag(key)), key);
  }), { seed: 3, numRuns: 200 });
  assert.is(keysToFlags("`maxTokens` 5 is below `seqLen`; the model is fine"), "--max-tokens 5 is below --seq-len; the model is fine");
});

test("help: one format with every option, its aliases and default", () => {
  const h = formatHelp({ usage: "hasten t [options]", description: "Does t.", spec: { ...SPEC, "max-tokens": { ...SPEC["max-tokens"], default: 64 } } });
  assert.match(h, /^usage: hasten t \[options\]\n\nDoes t\.\n\noptions:\n/);
  assert.match(h, /-n, --name VALUE +a name/);
  assert.match(h, /--max-tokens N +tokens \[64\]/);
});

test("lines: \\n, \\r\\n and a lone \\r end a line, for every command alike", () => {
  assert.equal(splitLines("a\nb\r\nc\rd\n"), ["a", "b", "c", "d"]);
  assert.equal(splitLines("a\n\n"), ["a", ""]);
  assert.equal(splitLines(""), []);
});

test("invalid UTF-8 is decoded with U+FFFD and a warning naming the first bad byte", () => {
  const warnings: string[] = [];
  const text = decodeUtf8(Uint8Array.from([0x61, 0x62, 0xff, 0x63, 0xc3]), "input.txt", (s) => warnings.push(s), "translate");
  assert.is(text, "ab\uFFFDc\uFFFD");
  assert.equal(warnings, ["hasten translate: warning: input.txt is not valid UTF-8 (first bad byte at offset 2); 2 character(s) replaced with U+FFFD\n"]);
  assert.is(decodeUtf8(Buffer.from("Grüße"), "x", () => assert.unreachable("valid input warns"), "t"), "Grüße");
  // A literal U+FFFD (EF BF BD) and 2-, 3- and 4-byte characters before the bad byte: the offset
  // counts their bytes, and the literal one is not counted as replaced.
  const more: string[] = [];
  decodeUtf8(Uint8Array.from([0xef, 0xbf, 0xbd, 0xc3, 0xbc, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0x62]), "y", (s) => more.push(s), "t");
  assert.equal(more, ["hasten t: warning: y is not valid UTF-8 (first bad byte at offset 12); 1 character(s) replaced with U+FFFD\n"]);
});

function hasten(args: string[], input = "", opts: { shell?: string } = {}) {
  if (opts.shell) return spawnSync("bash", ["-c", opts.shell], { cwd: root, encoding: "utf8" });
  return spawnSync(process.execPath, ["--import", "tsx", "scripts/hasten.ts", ...args], { cwd: root, input, encoding: "utf8" });
}

test("exit codes: 2 for a usage error in every command; 0 for --help", () => {
  writeFileSync(join(tmp, "ref.txt"), "a b c\n");
  const cases: [string[], RegExp][] = [
    [["bleu"], /expected at least one reference file/],
    [["bleu", join(tmp, "ref.txt"), "--width", "99"], /--width: expected an integer in \[0, 20\]/],
    [["bleu", join(tmp, "missing.txt")], /reference file not found/],
    [["train", "--out"], /--out needs a value/],
    [["train", "--task", "lm", "--out", join(tmp, "r"), "--data", join(tmp, "none.txt")], /--data: .*none\.txt does not exist/],
    [["generate"], /--model DIR is required/],
    [["translate", "--model", "models/ar-de-en", "--beam", "100000"], /--beam: expected an integer in \[1, 1000\]/],
    [["nonsense"], /unknown command "nonsense"/],
  ];
  for (const [args, re] of cases) {
    const r = hasten(args, "x\n");
    assert.is(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.not.match(r.stderr, /\n\s+at /, "no stack trace");
  }
  const h = hasten(["bleu", "--help"]);
  assert.is(h.status, 0);
  assert.match(h.stdout, /^usage: hasten bleu/);
});

test("standard output closed early is not an error; a full disk is one line and exit 1", () => {
  // 200,000 empty lines translate instantly to 200 KB of newlines, more than a pipe holds: the
  // writes after `head` has gone fail with EPIPE.
  const closed = hasten([], "", { shell: `yes "" | head -n 200000 > ${join(tmp, "h.txt")}; node --import tsx scripts/hasten.ts translate --model models/ar-de-en -i ${join(tmp, "h.txt")} | head -c 1 > /dev/null; echo "status=\${PIPESTATUS[0]}"` });
  assert.match(closed.stdout, /status=0/, closed.stderr);
  assert.not.match(closed.stderr, /EPIPE|\n\s+at /);
  const full = hasten([], "", { shell: `echo "a b c" > ${join(tmp, "r.txt")}; node --import tsx scripts/hasten.ts bleu ${join(tmp, "r.txt")} -i ${join(tmp, "r.txt")} > /dev/full; echo "status=$?"` });
  assert.match(full.stdout, /status=1/);
  assert.match(full.stderr, /hasten: cannot write to standard output: no space left on the device/);
});

test.run();
