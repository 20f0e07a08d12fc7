// Where the corpora live. Data stays outside the repository (see shared/data/README.md): the
// DATA_DIR environment variable wins; otherwise ../shared/data beside the project root.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: two folders above this file (nn/data/paths.ts). */
export const projectRoot = resolve(fileURLToPath(new URL("../..", import.meta.url)));

type Env = Record<string, string | undefined>;

/**
 * The data folder: $DATA_DIR when set, else `<project root>/../shared/data`.
 * Throws a clear error when that folder does not exist, rather than failing later on a missing file.
 */
export function defaultDataDir(env: Env = process.env): string {
  const dir = candidateDataDir(env);
  if (!existsSync(dir)) {
    const why = env.DATA_DIR ? `DATA_DIR=${env.DATA_DIR} does not exist` : `no data folder at ${dir}`;
    throw new Error(`defaultDataDir: ${why}; set DATA_DIR to the folder that holds multi30k/`);
  }
  return dir;
}

/** Like defaultDataDir(), but undefined instead of an error when the folder is missing (tests skip then). */
export function findDataDir(env: Env = process.env): string | undefined {
  const dir = candidateDataDir(env);
  return existsSync(dir) ? dir : undefined;
}

function candidateDataDir(env: Env): string {
  return env.DATA_DIR ? resolve(env.DATA_DIR) : resolve(projectRoot, "..", "shared", "data");
}

export type Multi30kSplit = "train" | "valid" | "test2016";

/** Paths of one Multi30k split for a language pair, e.g. multi30kFiles("train", "de", "en"). */
export function multi30kFiles(
  split: Multi30kSplit,
  src = "de",
  tgt = "en",
  dataDir: string = defaultDataDir(),
): { src: string; tgt: string } {
  return { src: join(dataDir, "multi30k", `${split}.${src}`), tgt: join(dataDir, "multi30k", `${split}.${tgt}`) };
}
