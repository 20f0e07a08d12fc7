// The layering the design promises, checked on the source itself:
//   scripts/ → decoding/ → nn/ → core/, never upward; above core/, only core/index.ts is imported
//   (bench/ may reach the internals it measures); nn/ holds no command-line text.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "uvu";
import * as assert from "uvu/assert";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir))) {
    const p = join(root, dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(relative(root, p)));
    else if (name.endsWith(".ts")) out.push(relative(root, p));
  }
  return out;
}

// Every module specifier a file imports (static imports, re-exports and dynamic imports).
function imports(file: string): string[] {
  const text = readFileSync(join(root, file), "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^"';]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)|(?:^|\n)\s*import\s+"([^"]+)"/g)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

const LAYER = { core: 0, nn: 1, decoding: 2, scripts: 3 } as const;
type Layer = keyof typeof LAYER;
const layerOf = (path: string): Layer | undefined => (path.split("/")[0] as Layer) in LAYER ? (path.split("/")[0] as Layer) : undefined;

test("imports flow one way: scripts → decoding → nn → core", () => {
  const bad: string[] = [];
  for (const layer of Object.keys(LAYER) as Layer[]) {
    for (const file of sources(layer)) {
      for (const spec of imports(file)) {
        if (!spec.startsWith(".")) continue;
        const target = relative(root, resolve(root, file, "..", spec));
        const to = layerOf(target);
        if (to !== undefined && LAYER[to] > LAYER[layer]) bad.push(`${file} imports ${target}`);
      }
    }
  }
  assert.equal(bad, [], bad.join("\n"));
});

test("above core/, only core/index.ts is imported", () => {
  const bad: string[] = [];
  for (const layer of ["nn", "decoding", "scripts"] as const) {
    for (const file of sources(layer)) {
      for (const spec of imports(file)) {
        if (!spec.startsWith(".")) continue;
        const target = relative(root, resolve(root, file, "..", spec));
        if (target.startsWith("core/") && target !== "core/index.ts") bad.push(`${file} imports ${target}`);
      }
    }
  }
  assert.equal(bad, [], bad.join("\n"));
});

test("nn/ keeps no command-line text: no usage lines, no flags, no command names in messages", () => {
  const bad: string[] = [];
  for (const file of sources("nn")) {
    const text = readFileSync(join(root, file), "utf8");
    for (const [re, what] of [[/usage: hasten/, "usage text"], [/hasten (train|translate|evaluate|generate|bleu):/, "a command name"], [/[`"][^`"\n]*\s--[a-z][a-z-]+[^`"\n]*[`"]/, "a flag in a message"]] as const) {
      if (re.test(text)) bad.push(`${file}: ${what}`);
    }
  }
  assert.equal(bad, [], bad.join("\n"));
});

test("the checks above see real imports (they are not vacuous)", () => {
  const found = imports("nn/models/transformer.ts");
  assert.ok(found.includes("../../core/index.ts"), found.join(", "));
  assert.ok(imports("scripts/hasten.ts").some((s) => s.includes("commands/train.ts")), "dynamic imports are read");
});

test.run();
