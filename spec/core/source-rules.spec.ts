// Rules about the source itself that no input-driven test would catch in time.
//
// No spread of an array into call arguments in the library folders that handle data of
// unbounded size: f(...arr) passes every element as an argument, and V8 throws "Maximum call
// stack size exceeded" somewhere past ~120,000 of them (one long word killed `translate` that
// way). Loops, or reduce, have no such limit.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const FOLDERS = ["core", "nn/tokenizer", "nn/metrics", "nn/data"];

// Calls that take their arguments one by one and are commonly fed a whole array.
const SPREAD_CALL = /\b(push|unshift|splice|max|min|fromCharCode|fromCodePoint|hypot)\s*\(([^()]*?,\s*)?\.\.\./;
const APPLY = /\.apply\s*\(/;

// Spreads whose length is bounded by construction: LEB128 encodings are at most 5 bytes.
const BOUNDED = [/^\s*for \(const \[n, t\] of groups\) body\.push\(\.\.\.uleb\(n\), t\);$/, /^\s*out\.push\(id, \.\.\.uleb\(content\.length\)\);$/];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p)); // a handful of folders: bounded
    else if (name.endsWith(".ts")) out.push(p);
  }
  return out;
}

// The code part of a line: comments removed (a // inside a string is rare enough here).
function code(line: string): string {
  const t = line.trimStart();
  if (t.startsWith("//") || t.startsWith("*") || t.startsWith("/*")) return "";
  const i = line.indexOf("// ");
  return i >= 0 ? line.slice(0, i) : line;
}

test("no array spread into call arguments in core/, nn/tokenizer, nn/metrics, nn/data", () => {
  const found: string[] = [];
  let files = 0;
  for (const folder of FOLDERS) {
    for (const file of tsFiles(join(root, folder))) {
      files++;
      readFileSync(file, "utf8").split("\n").forEach((line, i) => {
        const c = code(line);
        // `push([a, ...b])` builds one array argument: its spread is inside a literal, not a call
        const flat = c.replace(/\[[^\[\]]*\]/g, "[]");
        if ((SPREAD_CALL.test(flat) || APPLY.test(flat)) && !BOUNDED.some((b) => b.test(c))) {
          found.push(`${relative(root, file)}:${i + 1}: ${line.trim()}`);
        }
      });
    }
  }
  assert.ok(files > 50, `scanned ${files} files`);
  assert.equal(found, [], `spread calls (use a loop):\n${found.join("\n")}`);
});

test("the rule itself catches the patterns it is meant to", () => {
  const bad = ["ids.push(...this.encodePiece(p))", "const m = Math.max(1, ...rows.map((r) => r.n));", "String.fromCharCode(...bytes)", "f.apply(null, arr)"];
  for (const b of bad) assert.ok(SPREAD_CALL.test(b) || APPLY.test(b), b);
  const ok = ["out.push(x)", "const a = [...xs, ...ys];", "function f(...args: number[]) {}", "Math.max(a, b)"];
  for (const o of ok) assert.not.ok(SPREAD_CALL.test(o) || APPLY.test(o), o);
});

test.run();
