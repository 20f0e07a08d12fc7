// Every notebook runs to completion: they are documentation, and documentation that no longer
// runs is wrong.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { suite } from "uvu";
import * as assert from "uvu/assert";

const t = suite("notebooks");
const root = fileURLToPath(new URL("..", import.meta.url));
const tsx = fileURLToPath(new URL("../node_modules/tsx/dist/cli.mjs", import.meta.url));

for (const name of readdirSync(`${root}/notebooks`).filter((f) => f.endsWith(".ts")).sort()) {
  t(name, () => {
    const r = spawnSync(process.execPath, [tsx, `notebooks/${name}`], { cwd: root, encoding: "utf8", timeout: 120_000 });
    assert.is(r.status, 0, `${name} exited ${r.status}:\n${r.stderr}`);
    assert.ok(r.stdout.trim().length > 0, `${name} printed nothing`);
  });
}

t.run();
