// Integrity checks of safetensors headers and contents (used by safetensors.ts).
//
// Checksum. Files Hasten writes carry "hasten.sha256" in __metadata__ (other readers see an
// ordinary metadata string and ignore it): the hex SHA-256 of
//   UTF-8 of JSON.stringify([metadata entries except the checksum, sorted by key,
//                            tensors as [name, dtype, shape, begin, end] in data order])
//   followed by the data buffer,
// i.e. of everything the file means except the header's formatting. A reader that finds the key
// recomputes it and refuses the file on a mismatch, so flipped bytes in the data, a changed
// shape, dtype, name or metadata value are all caught; only changes that leave the meaning
// identical (whitespace in the header) pass. Files without the key (other writers, older files)
// load as before, unverified. It detects damage, not tampering: anyone can recompute it.
import { createHash } from "node:crypto";
import type { RawDType } from "./safetensors.ts";

/** The metadata key of the checksum. */
export const CHECKSUM_KEY = "hasten.sha256";
const METADATA_KEY = "__metadata__";
const HEX64 = /^[0-9a-f]{64}$/;

/** One row of a file's tensor table: offsets relative to the data buffer. */
export interface TableEntry {
  name: string;
  dtype: RawDType;
  shape: number[];
  begin: number;
  end: number;
}

function fail(why: string): never {
  throw new Error(`safetensors: ${why}`);
}

/**
 * The checksum of a file's meaning: metadata (checksum entry excluded, sorted by key), the tensor
 * table in data order, then the data buffer as `chunks`. See the top of this file.
 */
export function contentHash(
  metadata: Record<string, string>,
  table: TableEntry[],
  chunks: Iterable<Uint8Array>,
): string {
  const meta = Object.keys(metadata).filter((k) => k !== CHECKSUM_KEY).sort().map((k) => [k, metadata[k]]);
  const tensors = table.map((t) => [t.name, t.dtype, t.shape, t.begin, t.end]);
  const h = createHash("sha256").update(JSON.stringify([meta, tensors]), "utf8");
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

/** A key one to three characters away from the checksum key: that key with damaged bytes. */
export function looksLikeChecksumKey(k: string): boolean {
  if (k.length !== CHECKSUM_KEY.length || k === CHECKSUM_KEY) return false;
  let d = 0;
  for (let i = 0; i < k.length; i++) if (k[i] !== CHECKSUM_KEY[i]) d++;
  return d <= 3;
}

/**
 * Checks the "hasten.sha256" entry when there is one and removes it from `metadata`. A key one to
 * three characters away from it is refused too: that is the checksum entry with damaged bytes,
 * and reading on would load a damaged file unverified.
 */
export function verifyChecksum(
  metadata: Record<string, string>,
  table: TableEntry[],
  data: Uint8Array,
): "verified" | "absent" {
  for (const k of Object.keys(metadata)) {
    if (looksLikeChecksumKey(k)) fail(`${METADATA_KEY} key '${k}' looks like a damaged '${CHECKSUM_KEY}'; the file cannot be verified`);
  }
  const want = metadata[CHECKSUM_KEY];
  if (want === undefined) return "absent";
  delete metadata[CHECKSUM_KEY];
  if (!HEX64.test(want)) fail(`${CHECKSUM_KEY} must be 64 lowercase hex digits, got ${JSON.stringify(want.slice(0, 80))}`);
  const got = contentHash(metadata, table, [data]);
  if (got !== want) {
    fail(`checksum mismatch: the file was changed or damaged after it was written (${CHECKSUM_KEY} ${want}, contents hash to ${got})`);
  }
  return "verified";
}

/**
 * The first key that occurs twice in one object of a JSON text already accepted by JSON.parse
 * (which silently keeps the last of two equal keys), with the key of the object it is in
 * (undefined at the top level). One pass over the text.
 */
export function repeatedKey(text: string): { key: string; owner: string | undefined } | undefined {
  const stack: ({ keys: Set<string>; owner: string | undefined } | null)[] = []; // null: an array
  let expectKey = false;
  let lastKey: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // '"': find the closing quote, skipping escapes
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        const top = stack[stack.length - 1]!;
        if (top.keys.has(key)) return { key, owner: top.owner };
        top.keys.add(key);
        lastKey = key;
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b) { // '{'
      stack.push({ keys: new Set(), owner: stack.length === 0 ? undefined : lastKey });
      expectKey = true;
    } else if (c === 0x5b) stack.push(null); // '['
    else if (c === 0x7d || c === 0x5d) stack.pop(); // '}' ']'
    else if (c === 0x2c) expectKey = stack[stack.length - 1] != null; // ','
  }
  return undefined;
}

