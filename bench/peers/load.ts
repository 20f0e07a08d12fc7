// Loads benchmark-only peer packages from .bench-peers/ (installed by bench/install-peers.sh,
// never listed in package.json).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const peersDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".bench-peers");

/** require() rooted in .bench-peers, or a reason why the package is missing. */
export function peerRequire(pkg: string): { require: NodeRequire } | { skip: string } {
  const req = createRequire(join(peersDir, "package.json"));
  try {
    req.resolve(pkg);
  } catch {
    const where = existsSync(peersDir) ? `${pkg} is not installed in .bench-peers/` : ".bench-peers/ does not exist";
    return { skip: `${where} (run: bash bench/install-peers.sh)` };
  }
  return { require: req };
}
